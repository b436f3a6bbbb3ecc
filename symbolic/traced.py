"""The traced array: a stand-in for a user's NumPy array whose entries are symbolic.

A `Traced` has the shape and dtype of the array it stands for, and a SymPy expression (a step's
symbol) for its value. NumPy hands every operation on it back (`__array_ufunc__`,
`__array_function__`, the operators and the methods); `symbolic.numpy_rules` records each as a
step of the `Tracer`. What would need a number the trace does not have raises `TraceError`,
naming the user's file and line.
"""

from __future__ import annotations

import functools
import linecache
import numbers
from fractions import Fraction
import os
import sys

import numpy as np
import sympy as sp

from . import ops
from .names import LOCALS, READ
from .program import Step

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE = os.path.dirname(_HERE)
_NUMPY = os.path.dirname(np.__file__)
_SYMPY = os.path.dirname(sp.__file__)

# Names a step may not take: the generated module's own (and Python's).
RESERVED = READ | LOCALS  # the generated module's own names (`symbolic.names`)


class TraceError(ValueError):
    """An operation that cannot be traced exactly: the message names the user's file and line."""


@functools.lru_cache(maxsize=None)
def user_code(filename: str) -> bool:
    """Whether a file is the user's (not symprop's, NumPy's, SymPy's or Python's own)."""
    name = os.path.abspath(filename)
    return not (name.startswith((_HERE, _NUMPY, _SYMPY)) or name.startswith(os.path.join(_PACKAGE, "symprop"))
                or filename.startswith("<frozen"))


def _user_frame():
    """The innermost frame of the user's code (not symprop's, NumPy's or SymPy's)."""
    frame = sys._getframe(1)
    while frame is not None:
        if user_code(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
    return None


def _where() -> tuple[str, int]:
    frame = _user_frame()
    return (frame.f_code.co_filename, frame.f_lineno) if frame else ("<unknown>", 0)


def _message(operation: str, advice: str) -> str:
    """'FILE:LINE: operation: advice (in: the line)', at the user's line that is running."""
    file, line = _where()
    text = linecache.getline(file, line).strip()
    shown = f" (in: {text})" if text else ""
    return f"{file}:{line}: {operation}: {advice}{shown}"


def _fail(operation: str, advice: str):
    raise TraceError(_message(operation, advice))


_FLOAT_KINDS = "f"
_DATA_KINDS = "biu"


def _dtype_of(value) -> np.dtype:
    return value.dtype if isinstance(value, (Traced, np.ndarray, np.generic)) else np.asarray(value).dtype


class Tracer:
    """The recording: steps in order, and the names of the arrays."""

    def __init__(self):
        self.steps: list[Step] = []
        self.poisons: dict = {}  # symbol -> the TraceError message, raised if the value uses it
        self.count = 0
        self.taken: set[str] = set()
        self.narrowed = False  # a float64 value made float32 (.astype(np.float32))
        self.bounds: dict = {}  # a data array (its symbol) used as an index -> the shortest axis it indexes

    def poison(self, shape, dtype, operation: str, advice: str) -> Traced:
        """An array the trace cannot compute (a random draw, an argmax): an error only if it reaches
        the value, since results that never do are never traced (cs231n's `loss` computes its own
        gradients beside it)."""
        symbol = sp.Symbol(f"_p{len(self.poisons)}")
        self.poisons[symbol] = _message(operation, advice)
        return Traced(self, symbol, shape, dtype)

    def new(self, expr, shape, dtype, data=False) -> Traced:
        shape = tuple(int(d) for d in shape)
        if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):  # x / 0.0, x / (x - x), log(0 * x), a mean over 0 entries
            _fail("a division by zero (or the log of 0)", "the value is infinite or undefined for every input; "
                  "with a mean over the batch, the arrays may hold no samples")
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
        simple = Fraction(value).limit_denominator(10**6)
        if float(simple) == value:  # 1/n for n = 6 is the float nearest 1/6: 1/6 is what was meant
            return sp.Rational(simple.numerator, simple.denominator)
        return sp.Rational(repr(value))
    _fail(f"a {type(value).__name__} value", "only numbers and arrays can be traced")


class Traced(np.lib.mixins.NDArrayOperatorsMixin):
    """An array of known shape and dtype whose entries are symbolic: a stand-in for the user's."""

    __array_priority__ = 1000

    def __init__(self, tracer: Tracer, expr, shape, dtype):
        self.tracer, self.expr, self.shape, self.dtype = tracer, expr, tuple(shape), np.dtype(dtype)
        self.base = None  # the array this one is a NumPy view of (a slice, .T, a reshape)
        self.positions = None  # a view: the flat positions of the base it shows, in its shape
        self.version = 0  # a view: how many writes the base had when the view was taken
        self.written = []  # the flat positions of each write in place into this array

    def layout(self) -> np.ndarray:
        """The flat positions of the memory this array shows (its own, or its base's for a view)."""
        return self.positions if self.base is not None else np.arange(self.size).reshape(self.shape)

    def viewing(self, base: Traced, positions: np.ndarray) -> Traced:
        """This array, marked a view of `base` showing `positions` of it: NumPy would share memory."""
        self.base = base.base if base.base is not None else base
        self.positions = positions
        self.version = len(self.base.written)
        return self

    def fresh(self) -> Traced:
        """This array, its value taken again from its base when it is a view of entries written
        since: a NumPy view shows every write into the memory it shares."""
        if self.base is not None and any(np.intersect1d(w, self.positions).size
                                         for w in self.base.written[self.version:]):
            base = self.base
            flat = ops.Reshape(base.expr, base.size) if len(base.shape) != 1 else base.expr
            taken = ops.GetItem(flat, ops.IntArray(*self.positions.ravel().tolist()))
            if len(self.shape) != 1:
                taken = ops.Reshape(taken, *self.shape)
            self.expr = self.tracer.new(taken, self.shape, base.dtype).expr
            self.version = len(base.written)
        return self

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
        rule = _rules.UFUNCS.get(ufunc.__name__)
        if rule is None:
            _fail(f"np.{ufunc.__name__}", f"symprop has no rule for this function yet (traced: "
                  f"{', '.join(sorted(_rules.UFUNCS))})")
        result = rule(self.tracer, *inputs)
        if out is not None:
            target = out[0] if isinstance(out, tuple) else out
            if not isinstance(target, Traced):
                _fail(f"np.{ufunc.__name__}(..., out=...)", "out= must be a traced array")
            target._become(result)
            return target
        return result

    def __array_function__(self, func, types_, args, kwargs):
        rule = _rules.FUNCTIONS.get(func.__name__)
        if rule is None or func.__module__ not in ("numpy", "numpy.core.fromnumeric"):
            where = "np" if func.__module__ == "numpy" else func.__module__.replace("numpy", "np", 1)
            _fail(f"{where}.{func.__name__}", "symprop has no rule for this function yet")
        return rule(self.tracer, *args, **kwargs)

    # -- methods ---------------------------------------------------------------------------------

    @property
    def T(self):
        return _rules.transpose(self.tracer, self)

    def transpose(self, *axes):
        return _rules.transpose(self.tracer, self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else
                         (axes or None))

    def reshape(self, *shape, order="C"):
        return _rules.reshape(self.tracer, self, shape[0] if len(shape) == 1 else shape, order=order)

    def sum(self, axis=None, keepdims=False, dtype=None, out=None):
        return _rules.reduce_sum(self.tracer, self, axis, keepdims=keepdims, out=out)

    def mean(self, axis=None, keepdims=False, dtype=None, out=None):
        return _rules.mean(self.tracer, self, axis, keepdims=keepdims, out=out)

    def var(self, axis=None, ddof=0, keepdims=False, dtype=None, out=None):
        return _rules.var(self.tracer, self, axis, ddof=ddof, keepdims=keepdims, out=out)

    def std(self, axis=None, ddof=0, keepdims=False, dtype=None, out=None):
        return _rules.std(self.tracer, self, axis, ddof=ddof, keepdims=keepdims, out=out)

    def max(self, axis=None, keepdims=False, out=None):
        return _rules.amax(self.tracer, self, axis, keepdims=keepdims, out=out)

    def min(self, axis=None, keepdims=False, out=None):
        return _rules.amin(self.tracer, self, axis, keepdims=keepdims, out=out)

    def dot(self, other):
        return _rules.dot(self.tracer, self, other)

    def astype(self, dtype, copy=True):
        return _rules.astype(self.tracer, self, dtype)

    def copy(self, order="C"):
        return Traced(self.tracer, self.fresh().expr, self.shape, self.dtype)

    def flatten(self, order="C"):  # always a copy
        return _rules.reshape(self.tracer, self, (-1,), order=order).copy()

    def ravel(self, order="C"):  # a view where it can be
        return _rules.reshape(self.tracer, self, (-1,), order=order)

    def squeeze(self, axis=None):
        return _rules._squeeze(self.tracer, self, axis)

    def __getattr__(self, name):  # an ndarray method without a rule: said so, not an AttributeError
        if not name.startswith("_") and hasattr(np.ndarray, name):
            _fail(f".{name} of a traced array", "symprop has no rule for it yet; write it with the operations "
                  "the README lists")
        raise AttributeError(f"'Traced' object has no attribute {name!r}")

    def clip(self, a_min=None, a_max=None, out=None, *, min=None, max=None):  # NumPy 2.1's min= and max= too
        return _rules.clip(self.tracer, self, a_min, a_max, out=out, min=min, max=max)

    def argmax(self, axis=None, out=None, keepdims=False):
        shape = () if axis is None else _rules._reduced_shape(self.shape, _rules._axes(axis, self.ndim), keepdims)
        return self.tracer.poison(shape, np.int64, ".argmax() of a traced array", "an index computed from the "
                                  "values is not traced yet; pass it as data")

    def argmin(self, axis=None, out=None, keepdims=False):
        shape = () if axis is None else _rules._reduced_shape(self.shape, _rules._axes(axis, self.ndim), keepdims)
        return self.tracer.poison(shape, np.int64, ".argmin() of a traced array", "an index computed from the "
                                  "values is not traced yet; pass it as data")

    # -- indexing, and writes in place -----------------------------------------------------------

    def __getitem__(self, key):
        return _rules.getitem(self.tracer, self.fresh(), key)

    def __setitem__(self, key, value):
        value = _as_traced(self.tracer, value)
        if isinstance(key, Traced) and key.dtype.kind == "b" and key.shape == self.shape:  # a[mask] = v
            if value.shape not in ((), self.shape):
                _fail("a[mask] = values", "only a number or an array of a's shape can be written through a mask")
            expr = ops.Where(key.expr, value.expr, self.expr)
            self._become(self.tracer.new(expr, self.shape, np.result_type(self.dtype, value.dtype)))
            return
        index, shapes = _rules._index(self.tracer, self.shape, key)
        _rules.check_unique_write(self.layout(), index, shapes)
        if value.dtype.kind == "f" and self.dtype.kind != "f":
            _fail("writing floats into an integer array", "make the array with a float dtype")
        expr = ops.SetItem(self.expr, value.expr, *index)
        self._become(self.tracer.new(expr, self.shape, self.dtype, data=self.data and value.data),
                     _rules.basic_positions(self.layout(), index))

    def _become(self, other: Traced, written=None):
        """Stand from now on for what `other` stands for (an in-place write of the flat positions
        `written`; None: all)."""
        if other.shape != self.shape:
            _fail("a write in place that changes the array's shape", "assign to a new name instead")
        if self.base is not None:  # NumPy writes through a view into the array it shows
            self._write_through(other)
            return
        self.written.append(np.arange(self.size) if written is None else np.ravel(written))
        self.expr = other.expr
        if np.result_type(self.dtype, other.dtype) == self.dtype:
            return
        self.dtype = other.dtype

    def _write_through(self, other: Traced):
        """A write into a view: the base takes the view's new values at the view's positions, and
        the view stands for them (b[:, -1] += 1 writes column -1 of b, as in NumPy)."""
        base, positions = self.fresh().base, self.positions.ravel()
        flat = ops.Reshape(base.expr, base.size) if len(base.shape) != 1 else base.expr
        values = ops.Reshape(other.expr, self.size) if len(self.shape) != 1 else other.expr
        written = ops.SetItem(flat, values, ops.IntArray(*positions.tolist()))
        if len(base.shape) != 1:
            written = ops.Reshape(written, *base.shape)
        base._become(self.tracer.new(written, base.shape, np.result_type(base.dtype, other.dtype)), positions)
        self.expr, self.dtype, self.version = other.expr, other.dtype, len(base.written)

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
        return value.fresh()
    if isinstance(value, np.ndarray) and value.ndim > 0:
        _fail(f"a NumPy array of shape {value.shape} made inside the function",
              "make it with np.zeros/np.ones/np.arange/np.eye (traced), or pass it as an argument")
    if isinstance(value, (list, tuple)):
        _fail("a Python list or tuple used as an array", "pass it as an array argument")
    value = np.asarray(value).item() if isinstance(value, np.ndarray) else value
    return Traced(tracer, _constant(value), (), _dtype_of(value))


from . import numpy_rules as _rules  # noqa: E402  (the rules take Traced: imported once it exists)
