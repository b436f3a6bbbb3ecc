"""`trace`: a user's NumPy function, run once on symbolic stand-ins, recorded as a `Program`.

How it works
------------
Every floating-point argument becomes a `Traced` array: it has the argument's shape and dtype,
and stands for a SymPy symbol. NumPy hands every operation on it back to us (the
`__array_ufunc__` and `__array_function__` protocols, the operators and the methods); each is
recorded as one step `v = expr`, with the user's file and line, and gives a new `Traced`. The
constructors that take no array (`np.zeros`, `np.arange`, `np.eye`, ...) are seen through a
NumPy namespace put in place of the user's `np` while the function runs. An in-place write
(`a[idx] = v`, `a += v`) records what it computes (a copy with the entries replaced) and makes
the array stand for that. Python loops simply unroll.

Anything that would need a number the trace does not have (control flow on a traced value,
`float(t)`, `np.asarray(t)`) or an operation we have no rule for raises `TraceError` naming the
user's file and line: a program is exact or is not made.

After the run, every step takes the name of the local variable that held it (the learner's own
names: `scores`, `bnvar_inv`), and the unnamed steps used once are written into their user.
"""

from __future__ import annotations

import keyword
import linecache
import numbers
import os
import sys
import types
from dataclasses import dataclass

import numpy as np
import sympy as sp

from . import ops, rules
from .arrays import LogSoftmax, Matmul, RowSum, Softmax, SumAxes, SumRows, Total, Transposed, broadcast
from .program import Array, Program, Step
from .rewrites import rewrite_steps

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE = os.path.dirname(_HERE)
_NUMPY = os.path.dirname(np.__file__)
_SYMPY = os.path.dirname(sp.__file__)

# Names a step may not take: the generated module's own (and Python's).
RESERVED = frozenset({"np", "N", "L", "dout", "arrays", "unknown", "PARAMETERS", "SHAPES", "VALIDATE"})


class TraceError(ValueError):
    """An operation that cannot be traced exactly: the message names the user's file and line."""


def _user_frame():
    """The innermost frame of the user's code (not symprop's, NumPy's or SymPy's)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if not (name.startswith((_HERE, _NUMPY, _SYMPY)) or name.startswith(os.path.join(_PACKAGE, "symprop"))
                or frame.f_code.co_filename.startswith("<frozen")):
            return frame
        frame = frame.f_back
    return None


def _where() -> tuple[str, int]:
    frame = _user_frame()
    return (frame.f_code.co_filename, frame.f_lineno) if frame else ("<unknown>", 0)


def _fail(operation: str, advice: str):
    file, line = _where()
    text = linecache.getline(file, line).strip()
    shown = f" (in: {text})" if text else ""
    raise TraceError(f"{file}:{line}: {operation}: {advice}{shown}")


_FLOAT_KINDS = "f"
_DATA_KINDS = "biu"


def _dtype_of(value) -> np.dtype:
    return value.dtype if isinstance(value, (Traced, np.ndarray, np.generic)) else np.asarray(value).dtype


class Tracer:
    """The recording: steps in order, and the names of the arrays."""

    def __init__(self):
        self.steps: list[Step] = []
        self.count = 0
        self.taken: set[str] = set()

    def new(self, expr, shape, dtype, data=False) -> Traced:
        shape = tuple(int(d) for d in shape)
        if expr.is_Symbol or expr.is_Number or isinstance(expr, (ops.Arange, ops.Eye, ops.IntArray)):
            return Traced(self, expr, shape, dtype)  # nothing computed: no step
        self.count += 1
        symbol = sp.Symbol(f"_v{self.count}")
        self.steps.append(Step(symbol, expr, shape, np.dtype(dtype).name, data, _where()))
        return Traced(self, symbol, shape, dtype)


def _constant(value):
    """A Python or NumPy number as an exact SymPy number (a float by its shortest decimal)."""
    if isinstance(value, (bool, np.bool_)):
        return sp.Integer(int(value))
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if not np.isfinite(value):
            _fail(f"the number {value}", "only finite numbers can be traced")
        return sp.Rational(repr(value))
    _fail(f"a {type(value).__name__} value", "only numbers and arrays can be traced")


class Traced(np.lib.mixins.NDArrayOperatorsMixin):
    """An array of known shape and dtype whose entries are symbolic: a stand-in for the user's."""

    __array_priority__ = 1000

    def __init__(self, tracer: Tracer, expr, shape, dtype):
        self.tracer, self.expr, self.shape, self.dtype = tracer, expr, tuple(shape), np.dtype(dtype)

    # -- what a NumPy array tells about itself ---------------------------------------------------

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self):
        return f"<traced array {self.expr} shape={self.shape} dtype={self.dtype}>"

    @property
    def data(self) -> bool:
        return self.dtype.kind in _DATA_KINDS

    # -- refusals: a value the trace does not have --------------------------------------------

    def __bool__(self):
        _fail("control flow on a traced array (if, while, and, or, a comparison used as a bool)",
              "the trace has no numbers; write it with np.where or np.maximum, or pass the value as a constant")

    def __float__(self):
        _fail("float() of a traced array", "the trace has no numbers; keep the value an array (a 0-d array "
              "works wherever a float does)")

    def __int__(self):
        _fail("int() of a traced array", "the trace has no numbers; sizes come from .shape")

    __index__ = __int__

    def __complex__(self):
        _fail("complex() of a traced array", "complex numbers are not traced")

    def __array__(self, dtype=None, copy=None):
        _fail("np.asarray/np.array of a traced array (or a function that converts its argument)",
              "the trace has no numbers; pass the array itself, or use a NumPy function symprop traces")

    def item(self, *args):
        _fail(".item() of a traced array", "the trace has no numbers; keep the value an array")

    def tolist(self):
        _fail(".tolist() of a traced array", "the trace has no numbers; keep the value an array")

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    # -- NumPy's protocols ---------------------------------------------------------------------

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            _fail(f"np.{ufunc.__name__}.{method}", "only plain calls of NumPy's elementwise functions are traced")
        out = kwargs.pop("out", None)
        kwargs.pop("dtype", None) if kwargs.get("dtype") in (None, float, np.float64) else None
        if kwargs and set(kwargs) - {"casting"}:
            _fail(f"np.{ufunc.__name__} with {', '.join(sorted(kwargs))}", "call it without those keywords")
        rule = UFUNCS.get(ufunc.__name__)
        if rule is None:
            _fail(f"np.{ufunc.__name__}", f"symprop has no rule for this function yet (traced: "
                  f"{', '.join(sorted(UFUNCS))})")
        result = rule(self.tracer, *inputs)
        if out is not None:
            target = out[0] if isinstance(out, tuple) else out
            if not isinstance(target, Traced):
                _fail(f"np.{ufunc.__name__}(..., out=...)", "out= must be a traced array")
            target._become(result)
            return target
        return result

    def __array_function__(self, func, types_, args, kwargs):
        rule = FUNCTIONS.get(func.__name__)
        if rule is None or func.__module__ not in ("numpy", "numpy.linalg", "numpy.core.fromnumeric"):
            _fail(f"np.{func.__name__}", "symprop has no rule for this function yet")
        return rule(self.tracer, *args, **kwargs)

    # -- methods ---------------------------------------------------------------------------------

    @property
    def T(self):
        return transpose(self.tracer, self)

    def transpose(self, *axes):
        return transpose(self.tracer, self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else
                         (axes or None))

    def reshape(self, *shape, order="C"):
        return reshape(self.tracer, self, shape[0] if len(shape) == 1 else shape, order=order)

    def sum(self, axis=None, keepdims=False, dtype=None, out=None):
        return reduce_sum(self.tracer, self, axis, keepdims=keepdims, out=out)

    def mean(self, axis=None, keepdims=False, dtype=None, out=None):
        return mean(self.tracer, self, axis, keepdims=keepdims, out=out)

    def var(self, axis=None, ddof=0, keepdims=False, dtype=None, out=None):
        return var(self.tracer, self, axis, ddof=ddof, keepdims=keepdims, out=out)

    def std(self, axis=None, ddof=0, keepdims=False, dtype=None, out=None):
        return std(self.tracer, self, axis, ddof=ddof, keepdims=keepdims, out=out)

    def max(self, axis=None, keepdims=False, out=None):
        return amax(self.tracer, self, axis, keepdims=keepdims, out=out)

    def min(self, axis=None, keepdims=False, out=None):
        return amin(self.tracer, self, axis, keepdims=keepdims, out=out)

    def dot(self, other):
        return dot(self.tracer, self, other)

    def astype(self, dtype, copy=True):
        return astype(self.tracer, self, dtype)

    def copy(self, order="C"):
        return Traced(self.tracer, self.expr, self.shape, self.dtype)

    def flatten(self, order="C"):
        return reshape(self.tracer, self, (-1,))

    ravel = flatten

    def clip(self, a_min=None, a_max=None):
        return clip(self.tracer, self, a_min, a_max)

    def argmax(self, *args, **kwargs):
        _fail(".argmax() of a traced array", "an index computed from the values is not traced yet; pass it "
              "as data")

    argmin = argmax

    # -- indexing, and writes in place -----------------------------------------------------------

    def __getitem__(self, key):
        return getitem(self.tracer, self, key)

    def __setitem__(self, key, value):
        value = _as_traced(self.tracer, value)
        if isinstance(key, Traced) and key.dtype.kind == "b" and key.shape == self.shape:  # a[mask] = v
            if value.shape not in ((), self.shape):
                _fail("a[mask] = values", "only a number or an array of a's shape can be written through a mask")
            expr = ops.Where(key.expr, value.expr, self.expr)
            self._become(self.tracer.new(expr, self.shape, np.result_type(self.dtype, value.dtype)))
            return
        index, _ = _index(self.tracer, self.shape, key)
        if value.dtype.kind == "f" and self.dtype.kind != "f":
            _fail("writing floats into an integer array", "make the array with a float dtype")
        expr = ops.SetItem(self.expr, value.expr, *index)
        self._become(self.tracer.new(expr, self.shape, self.dtype, data=self.data and value.data))

    def _become(self, other: Traced):
        """Stand from now on for what `other` stands for (an in-place write)."""
        if other.shape != self.shape:
            _fail("a write in place that changes the array's shape", "assign to a new name instead")
        self.expr = other.expr
        if np.result_type(self.dtype, other.dtype) == self.dtype:
            return
        self.dtype = other.dtype

    def _inplace(ufunc):
        def method(self, other):
            self._become(ufunc(self, other))
            return self
        return method

    __iadd__ = _inplace(np.add)
    __isub__ = _inplace(np.subtract)
    __imul__ = _inplace(np.multiply)
    __itruediv__ = _inplace(np.true_divide)
    __ipow__ = _inplace(np.power)
    del _inplace


def _as_traced(tracer: Tracer, value) -> Traced:
    if isinstance(value, Traced):
        return value
    if isinstance(value, np.ndarray) and value.ndim > 0:
        _fail(f"a NumPy array of shape {value.shape} made inside the function",
              "make it with np.zeros/np.ones/np.arange/np.eye (traced), or pass it as an argument")
    if isinstance(value, (list, tuple)):
        _fail("a Python list or tuple used as an array", "pass it as an array argument")
    value = np.asarray(value).item() if isinstance(value, np.ndarray) else value
    return Traced(tracer, _constant(value), (), _dtype_of(value))


# ---------------------------------------------------------------------------------------------
# Elementwise operations (the ufuncs): SymPy algebra with NumPy's broadcasting


def _elementwise(tracer, make, *inputs, data=False):
    arrays = [_as_traced(tracer, v) for v in inputs]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    if data:
        dtype = np.dtype(bool)
    else:
        dtype = np.result_type(*(a.dtype if a.shape or isinstance(v, Traced) else
                                 np.result_type(type(v) if not isinstance(v, np.generic) else v.dtype)
                                 for a, v in zip(arrays, inputs)))
        if not any(a.dtype.kind == "f" for a in arrays) and make in _FLOAT_RESULT:
            dtype = np.dtype(np.float64)
    return tracer.new(make(*(a.expr for a in arrays)), shape, dtype, data=data)


def _maximum(a, b):
    """max(a, b) as b + relu(a - b): relu(z) itself for max(z, 0); its derivative is the mask
    a > b, 0 at a tie (relu'(0) = 0, as PyTorch's relu)."""
    if a.is_Number and not b.is_Number:
        a, b = b, a
    return rules.Relu(a) if b == 0 else b + rules.Relu(a - b)


def _minimum(a, b):
    """min(a, b) = a - relu(a - b)."""
    if a.is_Number and not b.is_Number:
        a, b = b, a
    return a - rules.Relu(a - b)


_FLOAT_RESULT = set()


def _ufunc(make, data=False, float_result=False):
    if float_result:
        _FLOAT_RESULT.add(make)

    def rule(tracer, *inputs):
        return _elementwise(tracer, make, *inputs, data=data)
    return rule


def _divide(a, b):
    return a / b


def _power(a, b):
    return a ** b


UFUNCS = {
    "add": _ufunc(lambda a, b: a + b),
    "subtract": _ufunc(lambda a, b: a - b),
    "multiply": _ufunc(lambda a, b: a * b),
    "true_divide": _ufunc(_divide, float_result=True),
    "divide": _ufunc(_divide, float_result=True),
    "negative": _ufunc(lambda a: -a),
    "positive": _ufunc(lambda a: a),
    "power": _ufunc(_power),
    "float_power": _ufunc(_power, float_result=True),
    "square": _ufunc(lambda a: a ** 2),
    "reciprocal": _ufunc(lambda a: 1 / a),
    "sqrt": _ufunc(sp.sqrt, float_result=True),
    "exp": _ufunc(sp.exp, float_result=True),
    "log": _ufunc(sp.log, float_result=True),
    "log1p": _ufunc(lambda a: sp.log(1 + a), float_result=True),
    "expm1": _ufunc(lambda a: sp.exp(a) - 1, float_result=True),
    "tanh": _ufunc(sp.tanh, float_result=True),
    "sin": _ufunc(sp.sin, float_result=True),
    "cos": _ufunc(sp.cos, float_result=True),
    "absolute": _ufunc(ops.Absolute),
    "maximum": _ufunc(_maximum),
    "minimum": _ufunc(_minimum),
    "greater": _ufunc(sp.StrictGreaterThan, data=True),
    "greater_equal": _ufunc(sp.GreaterThan, data=True),
    "less": _ufunc(sp.StrictLessThan, data=True),
    "less_equal": _ufunc(sp.LessThan, data=True),
    "equal": _ufunc(sp.Eq, data=True),
    "not_equal": _ufunc(sp.Ne, data=True),
    "matmul": lambda tracer, a, b: matmul(tracer, a, b),
}


# ---------------------------------------------------------------------------------------------
# Array functions


def _axes(axis, ndim) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for k in axes:
        if not -ndim <= int(k) < ndim:
            _fail(f"axis {k}", f"out of range for an array of {ndim} dimensions")
        out.append(int(k) % ndim)
    return tuple(sorted(set(out)))


def _sum_expr(expr, axes, keepdims, ndim):
    """The sum over `axes` in the derivation's own notation where there is one."""
    if len(axes) == ndim and not keepdims:
        return Total(expr)
    if axes == (0,) and not keepdims:
        return SumRows(expr)
    if axes == (ndim - 1,) and keepdims and ndim >= 1:
        return RowSum(expr)
    return SumAxes(expr, sp.Tuple(*axes), sp.Integer(int(bool(keepdims))))


def _reduced_shape(shape, axes, keepdims):
    return tuple(1 if k in axes else d for k, d in enumerate(shape) if keepdims or k not in axes)


def _out(out, result):
    if out is None:
        return result
    target = out[0] if isinstance(out, tuple) else out
    target._become(result)
    return target


def reduce_sum(tracer, a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    _no_keywords("np.sum", kwargs)
    a = _as_traced(tracer, a)
    axes = _axes(axis, a.ndim)
    if not axes:
        return a
    dtype = a.dtype if a.dtype.kind == "f" else np.dtype(np.int64) if a.dtype.kind in "biu" else a.dtype
    return _out(out, tracer.new(_sum_expr(a.expr, axes, keepdims, a.ndim), _reduced_shape(a.shape, axes, keepdims),
                                dtype, data=a.data))


def mean(tracer, a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    _no_keywords("np.mean", kwargs)
    a = _as_traced(tracer, a)
    axes = _axes(axis, a.ndim)
    count = int(np.prod([a.shape[k] for k in axes], dtype=np.int64))
    total = reduce_sum(tracer, a, axis, keepdims=keepdims)
    result = _elementwise(tracer, lambda s: s / count, total)
    return _out(out, result)


def var(tracer, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    _no_keywords("np.var", kwargs)
    a = _as_traced(tracer, a)
    axes = _axes(axis, a.ndim)
    count = int(np.prod([a.shape[k] for k in axes], dtype=np.int64)) - ddof
    centered = a - mean(tracer, a, axis, keepdims=True)
    total = reduce_sum(tracer, centered ** 2, axis, keepdims=keepdims)
    return _out(out, _elementwise(tracer, lambda s: s / count, total))


def std(tracer, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    return _out(out, np.sqrt(var(tracer, a, axis, ddof=ddof, keepdims=keepdims, **kwargs)))


def amax(tracer, a, axis=None, out=None, keepdims=False, **kwargs):
    _no_keywords("np.max", kwargs)
    a = _as_traced(tracer, a)
    axes = _axes(axis, a.ndim)
    expr = ops.MaxAxes(a.expr, sp.Tuple(*axes), sp.Integer(int(bool(keepdims))))
    return _out(out, tracer.new(expr, _reduced_shape(a.shape, axes, keepdims), a.dtype, data=a.data))


def amin(tracer, a, axis=None, out=None, keepdims=False, **kwargs):
    return _out(out, -amax(tracer, -_as_traced(tracer, a), axis, keepdims=keepdims, **kwargs))


def _no_keywords(name, kwargs):
    kwargs = {k: v for k, v in kwargs.items() if v is not np._NoValue and v is not None}
    if kwargs:
        _fail(f"{name} with {', '.join(sorted(kwargs))}", "call it without those keywords")


def matmul(tracer, a, b):
    a, b = _as_traced(tracer, a), _as_traced(tracer, b)
    if a.ndim == 0 or b.ndim == 0:
        _fail("a matrix product with a scalar", "use * for a scalar")
    if a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
        _fail(f"a matrix product of shapes {a.shape} and {b.shape}", "the inner dimensions differ")
    dtype = np.result_type(a.dtype, b.dtype)
    if a.ndim == 1 and b.ndim == 1:
        return tracer.new(Total(a.expr * b.expr), (), dtype)
    if b.ndim > 2:
        _fail(f"a batched matrix product of shapes {a.shape} and {b.shape}", "not traced yet; write it per sample")
    if a.ndim > 2:  # (..., D) @ (D, H): as rows, then back
        rows = reshape(tracer, a, (-1, a.shape[-1]))
        product = matmul(tracer, rows, b)
        return reshape(tracer, product, a.shape[:-1] + b.shape[1:])
    return tracer.new(Matmul(a.expr, b.expr), a.shape[:-1] + b.shape[1:], dtype)


def dot(tracer, a, b, out=None):
    a, b = _as_traced(tracer, a), _as_traced(tracer, b)
    if a.ndim == 0 or b.ndim == 0:
        return _out(out, a * b)
    if b.ndim > 2:
        _fail(f"np.dot of shapes {a.shape} and {b.shape}", "not traced yet")
    return _out(out, matmul(tracer, a, b))


def transpose(tracer, a, axes=None):
    a = _as_traced(tracer, a)
    if axes is None or tuple(axes) == tuple(range(a.ndim))[::-1]:
        if a.ndim < 2:
            return a
        return tracer.new(Transposed(a.expr), a.shape[::-1], a.dtype, data=a.data)
    axes = tuple(int(k) % a.ndim for k in axes)
    if axes == tuple(range(a.ndim)):
        return a
    return tracer.new(ops.Permute(a.expr, *axes), tuple(a.shape[k] for k in axes), a.dtype, data=a.data)


def reshape(tracer, a, shape, order="C", **kwargs):
    a = _as_traced(tracer, a)
    if order != "C":
        _fail(f"reshape with order={order!r}", "only C order is traced")
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if any(isinstance(d, Traced) for d in shape):
        _fail("a reshape to a traced size", "sizes come from .shape")
    shape = np.broadcast_to(np.empty(()), a.shape).reshape(shape).shape  # NumPy's rules, -1 included
    if shape == a.shape:
        return a
    return tracer.new(ops.Reshape(a.expr, *shape), shape, a.dtype, data=a.data)


def astype(tracer, a, dtype, **kwargs):
    a = _as_traced(tracer, a)
    dtype = np.dtype(dtype)
    if a.dtype.kind == "f" and dtype.kind in _DATA_KINDS:
        _fail(f".astype({dtype.name}) of a float array", "a float made whole is not differentiable; compute the "
              "integers from data (labels, masks) instead")
    return Traced(tracer, a.expr, a.shape, dtype)


def where(tracer, condition, x=None, y=None):
    if x is None or y is None:
        _fail("np.where with one argument", "an index computed from the values is not traced")
    c, a, b = (_as_traced(tracer, v) for v in (condition, x, y))
    if c.dtype.kind == "f":
        _fail("np.where with a float condition", "use a comparison (a > 0) as the condition")
    shape = np.broadcast_shapes(c.shape, a.shape, b.shape)
    return tracer.new(ops.Where(c.expr, a.expr, b.expr), shape, np.result_type(a.dtype, b.dtype))


def clip(tracer, a, a_min=None, a_max=None, out=None, **kwargs):
    result = _as_traced(tracer, a)
    if a_min is not None:
        result = np.maximum(result, a_min)
    if a_max is not None:
        result = np.minimum(result, a_max)
    return _out(out, result)


def concatenate(tracer, arrays, axis=0, out=None, **kwargs):
    arrays = [_as_traced(tracer, a) for a in arrays]
    axis = int(axis) % arrays[0].ndim
    shape = np.concatenate([np.broadcast_to(np.empty(()), a.shape) for a in arrays], axis=axis).shape
    dtype = np.result_type(*(a.dtype for a in arrays))
    return _out(out, tracer.new(ops.Concatenate(*(a.expr for a in arrays), sp.Integer(axis)), shape, dtype,
                                data=all(a.data for a in arrays)))


def stack(tracer, arrays, axis=0, out=None, **kwargs):
    arrays = [_as_traced(tracer, a) for a in arrays]
    axis = int(axis) % (arrays[0].ndim + 1)
    shape = np.stack([np.broadcast_to(np.empty(()), a.shape) for a in arrays], axis=axis).shape
    dtype = np.result_type(*(a.dtype for a in arrays))
    return _out(out, tracer.new(ops.Stack(*(a.expr for a in arrays), sp.Integer(axis)), shape, dtype,
                                data=all(a.data for a in arrays)))


def zeros_like(tracer, a, dtype=None, **kwargs):
    a = _as_traced(tracer, a)
    return _full(tracer, a.shape, 0, dtype or a.dtype)


def ones_like(tracer, a, dtype=None, **kwargs):
    a = _as_traced(tracer, a)
    return _full(tracer, a.shape, 1, dtype or a.dtype)


def _full(tracer, shape, value, dtype=None):
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(int(d) for d in shape)
    dtype = np.dtype(dtype or np.float64)
    return tracer.new(ops.Full(_constant(value), *shape), shape, dtype, data=dtype.kind != "f")


FUNCTIONS = {
    "sum": reduce_sum, "mean": mean, "var": var, "std": std, "max": amax, "amax": amax, "min": amin,
    "amin": amin, "dot": dot, "matmul": matmul, "transpose": transpose, "reshape": reshape, "where": where,
    "clip": clip, "concatenate": concatenate, "stack": stack, "zeros_like": zeros_like, "ones_like": ones_like,
    "hstack": lambda tracer, arrays, **kw: concatenate(tracer, arrays, axis=1 if _as_traced(
        tracer, arrays[0]).ndim > 1 else 0),
    "vstack": lambda tracer, arrays, **kw: concatenate(tracer, arrays, axis=0),
}


# ---------------------------------------------------------------------------------------------
# Indexing


def _index(tracer, shape, key) -> tuple[tuple, list]:
    """The index `key` into an array of `shape` as index components (see `symbolic.ops`), and the
    shapes of its array components, in order."""
    key = key if isinstance(key, tuple) else (key,)
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis)
    if sum(k is Ellipsis for k in key) > 1:
        _fail("an index with two ellipses", "use one")
    out, arrays, axis = [], [], 0
    for k in key:
        if k is Ellipsis:
            for _ in range(len(shape) - consumed):
                out.append(ops.Slice(0, shape[axis], 1, shape[axis]))
                axis += 1
            continue
        if k is None:
            out.append(ops.NewAxis())
            continue
        if axis >= len(shape):
            _fail(f"an index of {consumed} axes into an array of shape {shape}", "too many indices")
        size = shape[axis]
        if isinstance(k, slice):
            if any(isinstance(v, Traced) for v in (k.start, k.stop, k.step)):
                _fail("a slice with traced bounds", "slice bounds must be numbers")
            start, stop, step = k.indices(size)
            out.append(ops.Slice(start, stop, step, size))
        elif isinstance(k, (bool, np.bool_)):
            _fail("a boolean scalar index", "not traced")
        elif isinstance(k, numbers.Integral):
            if not -size <= int(k) < size:
                raise IndexError(f"index {k} is out of bounds for axis {axis} with size {size}")
            out.append(sp.Integer(int(k) % size))
        elif isinstance(k, range):
            values = np.arange(k.start, k.stop, k.step)
            out.append(_index_array(tracer, values, size))
            arrays.append(values.shape)
        elif isinstance(k, Traced):
            if k.dtype.kind == "f":
                _fail("an index that is a float array", "index with integers (labels, np.arange)")
            if k.dtype.kind == "b":
                _fail("a boolean mask as an index", "multiply by the mask, or use np.where, instead")
            out.append(k.expr)
            arrays.append(k.shape)
        elif isinstance(k, (list, np.ndarray)):
            values = np.asarray(k)
            if values.dtype.kind not in "iu" or values.ndim != 1:
                _fail("an index that is a list or array of other than whole numbers in one axis",
                      "use whole numbers, np.arange, or the labels")
            out.append(_index_array(tracer, values, size))
            arrays.append(values.shape)
        else:
            _fail(f"an index of type {type(k).__name__}", "use numbers, slices, None, ... and integer arrays")
        axis += 1
    return tuple(out), arrays


def _index_array(tracer, values, size):
    values = np.asarray(values, dtype=np.int64) % max(size, 1)
    if values.size and np.array_equal(values, np.arange(values.size)):
        return ops.Arange(values.size)
    return ops.IntArray(*values.tolist())


def getitem(tracer, a, key):
    index, shapes = _index(tracer, a.shape, key)
    if all(isinstance(c, ops.Slice) and c.code() == ":" for c in index):
        return a
    shape = ops.indexed_shape(a.shape, index, [(s, np.int64) for s in shapes])
    return tracer.new(ops.GetItem(a.expr, *index), shape, a.dtype, data=a.data)


# ---------------------------------------------------------------------------------------------
# The NumPy namespace the user's function sees while it runs: NumPy itself, but its constructors
# make traced arrays.


class _Namespace(types.ModuleType):
    def __init__(self, tracer):
        super().__init__("numpy")
        self._tracer = tracer

    def __getattr__(self, name):
        return getattr(np, name)

    def zeros(self, shape, dtype=float, order="C"):
        return _full(self._tracer, shape, 0, dtype)

    def ones(self, shape, dtype=float, order="C"):
        return _full(self._tracer, shape, 1, dtype)

    def empty(self, shape, dtype=float, order="C"):
        return _full(self._tracer, shape, 0, dtype)

    def full(self, shape, fill_value, dtype=None, order="C"):
        if isinstance(fill_value, Traced):
            _fail("np.full with a traced value", "multiply np.ones(shape) by it")
        return _full(self._tracer, shape, fill_value, dtype or np.result_type(fill_value))

    def zeros_like(self, a, dtype=None, **kwargs):
        return _full(self._tracer, np.shape(a) if not isinstance(a, Traced) else a.shape, 0,
                     dtype or _dtype_of(a))

    empty_like = zeros_like

    def ones_like(self, a, dtype=None, **kwargs):
        return _full(self._tracer, np.shape(a) if not isinstance(a, Traced) else a.shape, 1, dtype or _dtype_of(a))

    def arange(self, *args, **kwargs):
        values = np.arange(*args, **kwargs)
        if values.dtype.kind not in "iu":
            _fail("np.arange of non-whole numbers", "only integer ranges (indices) are traced")
        expr = _index_array(self._tracer, values, values.size + (values.max() + 1 if values.size else 0))
        return Traced(self._tracer, expr, values.shape, np.int64)

    def eye(self, n, m=None, k=0, dtype=float, **kwargs):
        if m not in (None, n) or k:
            _fail("np.eye with a second size or an offset", "only np.eye(n) is traced")
        return Traced(self._tracer, ops.Eye(int(n)), (int(n), int(n)), np.dtype(dtype))

    def array(self, value, dtype=None, copy=True, **kwargs):
        if isinstance(value, Traced):
            return value.copy() if dtype is None else value.astype(dtype)
        if isinstance(value, (list, tuple)) and any(isinstance(v, Traced) for v in np.ravel(
                np.array(value, dtype=object))):
            return stack(self._tracer, value)
        return np.array(value, dtype=dtype, copy=copy, **kwargs)

    def asarray(self, value, dtype=None, **kwargs):
        if isinstance(value, Traced):
            return value if dtype is None else value.astype(dtype)
        return np.asarray(value, dtype=dtype, **kwargs)


# ---------------------------------------------------------------------------------------------
# Naming: the user's local variables


@dataclass
class _Names:
    """Watches the user's frames and names each step after the local variable that holds it."""

    tracer: Tracer
    code: types.CodeType

    def __post_init__(self):
        self.names: dict[sp.Symbol, str] = {}
        self.taken: set[str] = set()

    def global_trace(self, frame, event, arg):
        if frame.f_code is self.code:
            return self.local_trace
        return None

    def local_trace(self, frame, event, arg):
        if event in ("line", "return"):
            self.collect(frame.f_locals)
        return self.local_trace

    def collect(self, local: dict):
        for name, value in local.items():
            if isinstance(value, Traced):
                self.name(value.expr, name)
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Traced) and isinstance(key, str):
                        self.name(item.expr, key)

    def name(self, expr, name):
        if not (expr.is_Symbol and expr.name.startswith("_v")) or expr in self.names:
            return
        base = name if name.isidentifier() and not keyword.iskeyword(name) else "v"
        candidate, k = base, 2
        while candidate in self.taken or candidate in RESERVED or candidate.startswith("_") or \
                _generated_name(candidate):
            candidate, k = f"{base}_{k}", k + 1
        self.names[expr] = candidate
        self.taken.add(candidate)


def _generated_name(name: str) -> bool:
    """Names of the generated code's own: gradients dL_d..., temporaries t0, t1, ..."""
    return name.startswith("dL_d") or (name[0] == "t" and name[1:].isdigit())


# ---------------------------------------------------------------------------------------------
# trace


def trace(fn, *, wrt=None, **arrays) -> Program:
    """`fn` run once on symbolic stand-ins for `arrays` (by the names of its parameters) and
    recorded as a `Program` (see the module docstring); `wrt`: the names to differentiate
    (default: every floating-point array); a name may be an intermediate (a local variable)."""
    if not callable(fn):
        raise TypeError(f"trace takes a function, not {type(fn).__name__}")
    tracer = Tracer()
    inputs, call, constants = [], {}, {}
    taken = set()
    for name, value in arrays.items():
        if isinstance(value, dict):  # a parameter dict: traced entry by entry under its keys
            entries = {}
            for key, item in value.items():
                entries[key] = _argument(tracer, str(key), item, inputs, constants, taken)
            call[name] = entries
        else:
            call[name] = _argument(tracer, name, value, inputs, constants, taken)
    owner = getattr(fn, "__self__", None)
    attributes = {}  # a bound method's dicts of float arrays (cs231n's self.params), traced entry by entry
    for attr, value in (vars(owner).items() if hasattr(owner, "__dict__") else ()):
        if (isinstance(value, dict) and value and all(isinstance(k, str) for k in value)
                and all(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in value.values())):
            attributes[attr] = (value, {k: _argument(tracer, k, v, inputs, constants, taken) for k, v in value.items()})
    names = _Names(tracer, getattr(fn, "__code__", None) or getattr(getattr(fn, "__func__", None), "__code__", None))
    names.taken |= taken
    namespace = _Namespace(tracer)
    module_globals = getattr(fn, "__globals__", None) or getattr(getattr(fn, "__func__", None), "__globals__", {})
    swapped = {k: v for k, v in module_globals.items() if v is np}
    previous = sys.gettrace()
    try:
        for attr, (_, entries) in attributes.items():
            setattr(owner, attr, entries)
        for k in swapped:
            module_globals[k] = namespace
        sys.settrace(names.global_trace)
        try:
            result = fn(**call)
        finally:
            sys.settrace(previous)
    except TraceError:
        raise
    finally:
        for k, v in swapped.items():
            module_globals[k] = v
        for attr, (value, _) in attributes.items():
            setattr(owner, attr, value)
    if isinstance(result, tuple):
        if not result:
            raise TraceError(f"{_describe(fn)} returned an empty tuple: return the loss, or an array")
        result = result[0]
    if not isinstance(result, Traced):
        raise TraceError(f"{_describe(fn)} returned {type(result).__name__}, not a traced array: its value does "
                         "not depend on the floating-point arrays given")
    if result.dtype.kind != "f":
        raise TraceError(f"{_describe(fn)} returned an array of {result.dtype.name}: only a float result is "
                         "differentiated")
    program = _program(fn, tracer, inputs, names, result, wrt, constants)
    values = {k: v for value, _ in attributes.values() for k, v in value.items()}
    for name, value in arrays.items():
        values.update(value) if isinstance(value, dict) else values.__setitem__(name, value)
    object.__setattr__(program, "values", {a.name: np.array(values[a.name]) for a in inputs})
    object.__setattr__(program, "function", fn)
    return program


def _argument(tracer, name, value, inputs, constants, taken):
    if not name.isidentifier() or keyword.iskeyword(name):
        raise TraceError(f"the array name {name!r} is not a Python identifier")
    if name in RESERVED or name.startswith("_") or _generated_name(name):
        raise TraceError(f"the array name {name!r} is reserved for the generated code's own names")
    if name in taken:
        raise TraceError(f"two arrays named {name!r}")
    if isinstance(value, (bool, numbers.Number)) and not isinstance(value, np.ndarray) or value is None:
        constants[name] = value
        return value
    array = np.asarray(value)
    if array.dtype.kind == "f":
        role = "differentiated"
    elif array.dtype.kind in _DATA_KINDS:
        role = "data"
    else:
        raise TraceError(f"the array {name!r} holds {array.dtype}: give floats (differentiated), or whole "
                         "numbers or booleans (data)")
    taken.add(name)
    inputs.append(Array(name, array.shape, array.dtype.name, role))
    return Traced(tracer, sp.Symbol(name), array.shape, array.dtype)


def _describe(fn) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return getattr(fn, "__name__", "the function")
    return f"{code.co_filename}:{code.co_firstlineno}: {fn.__name__}"


def _program(fn, tracer, inputs, names, result, wrt, constants) -> Program:
    steps = tracer.steps
    # The steps the output (or a wanted intermediate) needs, in order.
    wanted_names = list(wrt) if wrt is not None else [a.name for a in inputs if a.role == "differentiated"]
    by_name = {v: k for k, v in names.names.items()}
    needed = {result.expr}
    for w in wanted_names:
        if w in by_name:
            needed.add(by_name[w])
    kept = []
    for step in reversed(steps):
        if step.symbol in needed:
            kept.append(step)
            needed |= step.expr.free_symbols
    kept.reverse()
    known = {a.name for a in inputs}
    for w in wanted_names:
        if w not in known and w not in by_name:
            local = sorted(names.names.values())
            raise TraceError(f"wrt names {w!r}, which is neither an array given nor a local variable of "
                             f"{getattr(fn, '__name__', 'the function')} that holds a traced array"
                             + (f" (those: {', '.join(local)})" if local else ""))
        if w in known and next(a for a in inputs if a.name == w).role != "differentiated":
            raise TraceError(f"wrt names {w!r}, which holds integers or booleans (data, not differentiated)")
    # Names: each kept step takes its local variable's name; an unnamed one used once is written
    # into its user, one used more often gets a name of its own.
    uses = {}
    for step in kept:
        for s in step.expr.free_symbols:
            uses[s] = uses.get(s, 0) + 1
    rename, inline = {}, {}
    taken = set(names.taken)
    for step in kept:
        expr = step.expr.xreplace(inline).xreplace(rename)
        if step.symbol in names.names:
            rename[step.symbol] = sp.Symbol(names.names[step.symbol])
        elif step.symbol == result.expr:
            rename[step.symbol] = sp.Symbol(_fresh("out", taken))
        elif uses.get(step.symbol, 0) == 1 and not step.data and not _keeps_name(expr):
            inline[step.symbol] = expr
            continue
        else:
            rename[step.symbol] = sp.Symbol(_fresh("v", taken))
        taken.add(rename[step.symbol].name)
    final = []
    for step in kept:
        if step.symbol in inline:
            continue
        expr = step.expr.xreplace(inline).xreplace(rename)
        expr = expr.xreplace(inline).xreplace(rename)
        final.append(Step(rename[step.symbol], expr, step.shape, step.dtype, step.data, step.where))
    output = rename.get(result.expr, result.expr)
    final = _rewritten(final, inputs, output, {rename[by_name[w]] for w in wanted_names if w in by_name})
    scalar = result.shape == ()
    arrays = list(inputs)
    if not scalar:
        if "dout" in {a.name for a in inputs}:
            raise TraceError("an argument is named 'dout', the name of the upstream gradient")
        arrays.append(Array("dout", result.shape, result.dtype.name, "upstream"))
    wrt_final = tuple(wanted_names)
    code = getattr(fn, "__code__", None)
    source = f"{os.path.basename(code.co_filename)}:{fn.__name__}" if code else getattr(fn, "__name__", "function")
    return Program(name=getattr(fn, "__name__", "traced"), arrays=tuple(arrays), steps=tuple(final), output=output,
                   wrt=wrt_final, scalar=scalar, source=source, constants=constants)


def _rewritten(steps, inputs, output, keep) -> list:
    """The steps with the idioms rewritten (`symbolic.rewrites`), and those no longer needed dropped."""
    shapes = {sp.Symbol(a.name): tuple(sp.Integer(d) for d in a.shape) for a in inputs}
    shapes.update({s.symbol: tuple(sp.Integer(d) for d in s.shape) for s in steps})
    steps = rewrite_steps(steps, shapes, keep)
    needed, kept = {output} | set(keep), []
    for step in reversed(steps):
        if step.symbol in needed:
            kept.append(step)
            needed |= step.expr.free_symbols
    return kept[::-1]


def _keeps_name(expr) -> bool:
    """An expression that should stay a step of its own even when used once: a write in place."""
    return isinstance(expr, ops.SetItem)


def _fresh(base, taken) -> str:
    candidate, k = base, 1
    while candidate in taken:
        k += 1
        candidate = f"{base}{k}"
    return candidate
