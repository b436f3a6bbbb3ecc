"""The rule table of the tracer: how each NumPy operation on traced arrays is recorded.

One entry per NumPy function: `UFUNCS` (elementwise: SymPy algebra with NumPy's broadcasting),
`FUNCTIONS` (reductions, products, shapes, joins), indexing, and the constructors of the NumPy
namespace a traced function sees (`np.zeros`, `np.arange`, `np.eye`, ...). Each rule takes the
`Tracer` and NumPy's own arguments, checks them as NumPy would, and records one step whose
operation is a SymPy expression (`symbolic.arrays`, `symbolic.ops`, `symbolic.rules`).
"""

from __future__ import annotations

import numbers
import os
import sys
import types

import numpy as np
import sympy as sp

from . import ops, rules
from .arrays import Matmul, RowSum, SumAxes, SumRows, Total, Transposed
from .traced import _DATA_KINDS, Traced, _as_traced, _constant, _dtype_of, _fail

# Elementwise operations (the ufuncs): SymPy algebra with NumPy's broadcasting


def _elementwise(tracer, make, *inputs, data=False):
    arrays = [_as_traced(tracer, v) for v in inputs]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    if data:
        dtype = np.dtype(bool)
    else:
        dtype = _result_dtype(arrays, inputs)
        if not any(a.dtype.kind == "f" for a in arrays) and make in _FLOAT_RESULT:
            dtype = np.dtype(np.float64)
    exprs = [ops.AsFloat(a.expr) if not data and a.dtype.kind == "b" and not a.expr.is_Number and dtype.kind == "f"
             else a.expr for a in arrays]  # a mask in float arithmetic counts as 0.0 and 1.0
    return tracer.new(make(*exprs), shape, dtype, data=data)


def _result_dtype(arrays, inputs) -> np.dtype:
    """NumPy's result dtype of an operation on `inputs` (traced as `arrays`): a Python number is
    weak (x32 * 0.5 stays float32, NEP 50); a NumPy scalar or array has its dtype."""
    return np.result_type(*(v if isinstance(v, (bool, int, float)) and not isinstance(v, np.generic) else a.dtype
                            for a, v in zip(arrays, inputs)))


def maximum(tracer, a, b):
    """np.maximum: relu(a) against 0, PyTorch's relu (relu'(0) = 0); else the larger value itself,
    where(a > b, a, b), its derivative 1 for a where a > b, for b elsewhere (a tie: b's, as the
    relu's). Not b + relu(a - b): adding and taking back a bound far from the values loses them."""
    a, b = (b, a) if _number(a) and not _number(b) else (a, b)
    if _number(b) and float(b) == 0:
        return _elementwise(tracer, rules.Relu, a)
    return where(tracer, np.greater(a, b), a, b)


def minimum(tracer, a, b):
    """np.minimum: where(a > b, b, a), the smaller value itself (a tie: a's)."""
    a, b = (b, a) if _number(a) and not _number(b) else (a, b)
    return where(tracer, np.greater(a, b), b, a)


def _number(v) -> bool:
    return isinstance(v, (numbers.Number, np.generic)) or isinstance(v, np.ndarray) and v.ndim == 0


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
    "maximum": maximum,
    "minimum": minimum,
    "greater": _ufunc(sp.StrictGreaterThan, data=True),
    "greater_equal": _ufunc(sp.GreaterThan, data=True),
    "less": _ufunc(sp.StrictLessThan, data=True),
    "less_equal": _ufunc(sp.LessThan, data=True),
    "equal": _ufunc(sp.Eq, data=True),
    "not_equal": _ufunc(sp.Ne, data=True),
    "matmul": lambda tracer, a, b: matmul(tracer, a, b),
    # masks (booleans, data): and is a product, or a maximum, not a negation; never differentiated
    "logical_and": _ufunc(lambda a, b: a * b, data=True),
    "bitwise_and": _ufunc(lambda a, b: a * b, data=True),
    "logical_or": _ufunc(sp.Max, data=True),
    "bitwise_or": _ufunc(sp.Max, data=True),
    "logical_not": _ufunc(ops.LogicalNot, data=True),
    "invert": _ufunc(ops.LogicalNot, data=True),
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
        return tracer.new(Transposed(a.expr), a.shape[::-1], a.dtype, data=a.data).viewing(a, a.layout().T)
    axes = tuple(int(k) % a.ndim for k in axes)
    if axes == tuple(range(a.ndim)):
        return a
    result = tracer.new(ops.Permute(a.expr, *axes), tuple(a.shape[k] for k in axes), a.dtype, data=a.data)
    return result.viewing(a, a.layout().transpose(axes))


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
    result = tracer.new(ops.Reshape(a.expr, *shape), shape, a.dtype, data=a.data)
    layout = a.layout()
    positions = layout.reshape(shape)  # NumPy's reshape of the positions: a view where the array's is
    # one, a copy where its memory is not in that order (a transposed array): then a new array
    return result.viewing(a, positions) if np.may_share_memory(positions, layout) else result


def astype(tracer, a, dtype, **kwargs):
    a = _as_traced(tracer, a)
    dtype = np.dtype(dtype)
    if a.dtype.kind == "f" and dtype.kind in _DATA_KINDS:
        _fail(f".astype({dtype.name}) of a float array", "a float made whole is not differentiable; compute the "
              "integers from data (labels, masks) instead")
    if a.dtype.kind == "f" and dtype.kind == "f" and dtype != a.dtype:  # computed on in that precision
        if dtype.itemsize not in (4, 8):
            _fail(f".astype({dtype.name})", "float32 and float64 are traced")
        tracer.narrowed |= dtype.itemsize < a.dtype.itemsize
        return tracer.new(ops.Cast(a.expr, sp.Integer(8 * dtype.itemsize)), a.shape, dtype)
    return Traced(tracer, a.expr, a.shape, dtype)


def where(tracer, condition, x=None, y=None):
    if x is None or y is None:
        _fail("np.where with one argument", "an index computed from the values is not traced")
    c, a, b = (_as_traced(tracer, v) for v in (condition, x, y))
    if c.dtype.kind == "f":
        _fail("np.where with a float condition", "use a comparison (a > 0) as the condition")
    shape = np.broadcast_shapes(c.shape, a.shape, b.shape)
    return tracer.new(ops.Where(c.expr, a.expr, b.expr), shape, _result_dtype((a, b), (x, y)))


def clip(tracer, a, a_min=None, a_max=None, out=None, *, min=None, max=None, **kwargs):
    """np.clip: the value itself between the bounds, a bound outside them; its derivative 1 from
    a_min to a_max, both included (PyTorch's clamp). `min` and `max`: NumPy 2.1's other names."""
    if a_min is not None and min is not None or a_max is not None and max is not None:
        _fail("np.clip with both a_min and min (or a_max and max)", "give each bound once")
    a_min, a_max = (a_min if a_min is not None else min), (a_max if a_max is not None else max)
    result = _as_traced(tracer, a)
    if a_min is not None:
        result = where(tracer, np.greater_equal(result, a_min), result, a_min)
    if a_max is not None:
        result = where(tracer, np.less_equal(result, a_max), result, a_max)
    return _out(out, result)


def concatenate(tracer, arrays, axis=0, out=None, **kwargs):
    arrays = [_as_traced(tracer, a) for a in arrays]
    if axis is None:  # NumPy flattens every array first
        arrays, axis = [reshape(tracer, a, (-1,)) for a in arrays], 0
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
    return _full(tracer, a.shape, 0, dtype or a.dtype, like=dtype is None)


def ones_like(tracer, a, dtype=None, **kwargs):
    a = _as_traced(tracer, a)
    return _full(tracer, a.shape, 1, dtype or a.dtype, like=dtype is None)


def _full(tracer, shape, value, dtype=None, like=False):
    """An array of one value; a float one `like` an array (np.zeros_like(h0)), or of a float dtype
    other than NumPy's default (np.zeros(shape, dtype=x.dtype)), in the dtype of the arrays the
    module is called with: float32 in, float32 zeros (a float32 trace's too)."""
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(int(d) for d in shape)
    dtype = np.dtype(dtype or np.float64)
    value = sp.Float(float(value)) if dtype.kind == "f" else _constant(value)  # a float fill: 0.0, not 0
    full = ops.FullLike if dtype.kind == "f" and (like or dtype != np.float64) else ops.Full
    return tracer.new(full(value, *shape), shape, dtype, data=dtype.kind != "f")


FUNCTIONS = {
    "sum": reduce_sum, "mean": mean, "var": var, "std": std, "max": amax, "amax": amax, "min": amin,
    "amin": amin, "dot": dot, "matmul": matmul, "transpose": transpose, "reshape": reshape, "where": where,
    "clip": clip, "concatenate": concatenate, "stack": stack, "zeros_like": zeros_like, "ones_like": ones_like,
    "hstack": lambda tracer, arrays, **kw: concatenate(tracer, arrays, axis=1 if _as_traced(
        tracer, arrays[0]).ndim > 1 else 0),
    "vstack": lambda tracer, arrays, **kw: concatenate(  # 1-D arrays are rows (1, n)
        tracer, [reshape(tracer, a, (1, -1)) if _as_traced(tracer, a).ndim == 1 else a for a in arrays], axis=0),
    "squeeze": lambda tracer, a, axis=None: _squeeze(tracer, a, axis),
    "expand_dims": lambda tracer, a, axis: _expand_dims(tracer, a, axis),
    "ravel": lambda tracer, a, order="C": reshape(tracer, a, (-1,), order=order),
    "copy": lambda tracer, a, **kw: _as_traced(tracer, a).copy(),
    "outer": lambda tracer, a, b, out=None: _out(out, reshape(tracer, a, (-1, 1)) * reshape(tracer, b, (1, -1))),
}


def _squeeze(tracer, a, axis=None):
    a = _as_traced(tracer, a)
    axes = _axes(axis, a.ndim) if axis is not None else tuple(k for k, d in enumerate(a.shape) if d == 1)
    if any(a.shape[k] != 1 for k in axes):
        raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
    return reshape(tracer, a, tuple(d for k, d in enumerate(a.shape) if k not in axes))


def _expand_dims(tracer, a, axis):
    a = _as_traced(tracer, a)
    return reshape(tracer, a, np.expand_dims(np.broadcast_to(np.empty(()), a.shape), axis).shape)


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
            labels = k.expr.args[0] if isinstance(k.expr, ops.GetItem) else k.expr  # y, or y[:, t]
            if labels.is_Symbol:  # its entries must index this axis: -size to size - 1
                tracer.bounds[labels] = min(tracer.bounds.get(labels, size), size)
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
    result = tracer.new(ops.GetItem(a.expr, *index), shape, a.dtype, data=a.data)
    positions = basic_positions(a.layout(), index)
    return result.viewing(a, positions) if positions is not None and shape else result  # a view, as in NumPy


def check_unique_write(layout: np.ndarray, index, shapes: list) -> None:
    """Refuse a write at an index that may name one entry twice: NumPy keeps the last value
    written there, and a gradient through a repeated write cannot be read off the index alone
    (`a[[1, 1]] += v`). Constant indices are checked; an index with data in it (labels) must pair
    it with an np.arange of its whole length (margins[np.arange(N), y] = 0), or be one entry."""
    arrays = [c for c in index if not (isinstance(c, (ops.Slice, ops.NewAxis)) or c.is_Integer)]
    if not arrays:
        return
    if all(isinstance(c, (ops.Arange, ops.IntArray)) for c in arrays):
        values = tuple(c.value(lambda e: e) if c in arrays else
                       (c.value if isinstance(c, (ops.Slice, ops.NewAxis)) else int(c)) for c in index)
        written = layout[values].ravel()
        if np.unique(written).size == written.size:
            return
        _fail("a write at an index that names an entry twice", "NumPy keeps only the last value written there; "
              "write each entry once (or add with a sum over the repeats)")
    size = int(np.prod(np.broadcast_shapes(*(tuple(s) for s in shapes)), dtype=np.int64)) if shapes else 1
    if size <= 1 or any(isinstance(c, ops.Arange) and int(c.args[0]) == size for c in arrays):
        return
    _fail("a write at an index array of data (labels, indices) that may name an entry twice",
          "pair it with np.arange of its length (a[np.arange(N), y] = v), or write the entries one by one")


def basic_positions(layout: np.ndarray, index):
    """layout[index] for a basic index (slices, whole numbers, new axes): the positions a view or a
    write covers; None for an index with arrays in it (a copy; a write anywhere)."""
    if not all(isinstance(c, (ops.Slice, ops.NewAxis)) or c.is_Integer for c in index):
        return None
    return layout[tuple(c.value if isinstance(c, (ops.Slice, ops.NewAxis)) else int(c) for c in index)]


class _NoRandom:
    """np.random inside a traced function: a program computes the same at every call, so a draw is
    an error if it reaches the value (a dropout mask: pass it as an argument); `seed` does nothing."""

    _SIZES = {"rand": lambda *d: d, "randn": lambda *d: d, "random": lambda size=None: size,
              "random_sample": lambda size=None: size, "uniform": lambda low=0.0, high=1.0, size=None: size,
              "normal": lambda loc=0.0, scale=1.0, size=None: size, "randint": lambda low, high=None, size=None: size,
              "binomial": lambda n, p, size=None: size}

    def __init__(self, tracer):
        self._tracer = tracer

    def seed(self, *args, **kwargs):
        return None

    def __getattr__(self, name):
        advice = ("random numbers would be fixed at the values of the trace; pass them as an argument "
                  "(a dropout mask, as the spec's dropout does)")
        if name not in self._SIZES:
            _fail(f"np.random.{name} inside a traced function", advice)

        def draw(*args, **kwargs):
            size = self._SIZES[name](*args, **kwargs)
            shape = () if size is None else (size,) if isinstance(size, numbers.Integral) else tuple(size)
            dtype = np.int64 if name in ("randint", "binomial") else np.float64
            return self._tracer.poison(shape, dtype, f"np.random.{name} inside a traced function", advice)
        return draw


def _holds_traced(value) -> bool:
    return any(_holds_traced(v) if isinstance(v, (list, tuple)) else isinstance(v, Traced) for v in value)


_CONSTRUCTORS = tuple((getattr(np, name), name) for name in (  # imported by name: from numpy import zeros
    "zeros", "ones", "empty", "full", "zeros_like", "ones_like", "arange", "eye"))
_HERE = os.path.dirname(os.path.abspath(__file__))  # symprop's own: symbolic/, codegen/, symprop/
_LIBRARIES = tuple({os.path.dirname(os.path.dirname(np.__file__)), sys.prefix, sys.base_prefix, _HERE + os.sep,
                    os.path.join(os.path.dirname(_HERE), "codegen") + os.sep,
                    os.path.join(os.path.dirname(_HERE), "symprop") + os.sep})


def _users(filename: str) -> bool:
    """Whether `filename` is the user's code (not a library's, NumPy's or symprop's own)."""
    path = os.path.abspath(filename) if filename and not filename.startswith("<") else filename
    return bool(path) and not (path.startswith("<frozen") or path.startswith(_LIBRARIES)) or path.startswith("<")


# ---------------------------------------------------------------------------------------------
# The NumPy namespace the user's function sees while it runs: NumPy itself, but its constructors
# make traced arrays.


class Namespace(types.ModuleType):
    """NumPy as a traced function sees it: put in place of `np` (and of constructors imported by
    name) in the globals of every module of the user's code it enters, and taken out after."""

    def __init__(self, tracer):
        super().__init__("numpy")
        self._tracer = tracer
        self._swapped = []  # (globals, name, the original)

    def enter(self, module_globals: dict, filename: str) -> None:
        if not _users(filename) or module_globals.get("__symprop_traced__"):
            return
        for name, value in list(module_globals.items()):
            replacement = self if value is np else next((n for f, n in _CONSTRUCTORS if value is f), None)
            if replacement is not None:
                if replacement is not self:
                    replacement = getattr(self, replacement)
                self._swapped.append((module_globals, name, value))
                module_globals[name] = replacement
        self._swapped.append((module_globals, "__symprop_traced__", None))
        module_globals["__symprop_traced__"] = True

    def leave(self) -> None:
        for module_globals, name, value in reversed(self._swapped):
            if value is None:
                module_globals.pop(name, None)
            else:
                module_globals[name] = value
        self._swapped = []

    def __getattr__(self, name):
        return getattr(np, name)

    @property
    def random(self):
        return _NoRandom(self._tracer)

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
                     dtype or _dtype_of(a), like=dtype is None)

    empty_like = zeros_like

    def ones_like(self, a, dtype=None, **kwargs):
        return _full(self._tracer, np.shape(a) if not isinstance(a, Traced) else a.shape, 1, dtype or _dtype_of(a),
                     like=dtype is None)

    def arange(self, *args, **kwargs):
        values = np.arange(*args, **kwargs)
        if values.dtype.kind not in "iu":
            _fail("np.arange of non-whole numbers", "only integer ranges (indices) are traced")
        if values.size and np.array_equal(values, np.arange(values.size)):
            expr = ops.Arange(values.size)
        else:  # the values as they are (negative ones too): data, or an index NumPy reads as written
            expr = ops.IntArray(*values.tolist())
        return Traced(self._tracer, expr, values.shape, np.int64)

    def eye(self, n, m=None, k=0, dtype=float, **kwargs):
        if m not in (None, n) or k:
            _fail("np.eye with a second size or an offset", "only np.eye(n) is traced")
        return Traced(self._tracer, ops.Eye(int(n)), (int(n), int(n)), np.dtype(dtype))

    def array(self, value, dtype=None, copy=True, **kwargs):
        if isinstance(value, Traced):
            return value.copy() if dtype is None else value.astype(dtype)
        if isinstance(value, (list, tuple)) and _holds_traced(value):  # np.array([a, b]): a stack of them
            return stack(self._tracer, [self.array(v) if isinstance(v, (list, tuple)) else v for v in value])
        return np.array(value, dtype=dtype, copy=copy, **kwargs)

    def asarray(self, value, dtype=None, **kwargs):
        if isinstance(value, Traced):
            return value if dtype is None else value.astype(dtype)
        return np.asarray(value, dtype=dtype, **kwargs)

