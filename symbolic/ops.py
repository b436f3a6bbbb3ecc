"""The array operations a traced NumPy function records beyond those of `symbolic.arrays`.

Each operation stands in one place with everything known about it (STYLE.md, "The program"):

    shape(*shapes, *settings)   its result's shape
    vjp(i, g, shape)            dL/d(argument i) given g = dL/d(self)
    numpy(*values, *settings)   its value, on float arrays or exactly on object arrays of SymPy numbers
    _sympystr                   its plain-text notation (`symbolic.notation.TextPrinter`)
    _latex                      its LaTeX (`symbolic.notation.ArrayLatexPrinter`)
    _numpycode              its NumPy code (`codegen.printer.GradientPrinter`)

Arguments are arrays first, then settings (`ArrayFunction.arrays`). An index (what `a[...]` takes)
is a run of components after the arrays: a whole number, a `Slice`, `NewAxis`, or an integer array
(a data array, `Arange(n)`, `IntArray(...)`), exactly as NumPy reads the index tuple.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from . import arrays
from .arrays import ArrayFunction, Columns



class Op(ArrayFunction):
    """An array operation of a traced program: real-valued (SymPy's Max and Min accept it)."""

    is_real = True


# ---------------------------------------------------------------------------------------------
# Index components


class Slice(sp.Basic):
    """start:stop:step of an axis of length `size`, the numbers already resolved (`slice.indices`)."""

    def __new__(cls, start, stop, step, size):
        return super().__new__(cls, *(sp.Integer(v) for v in (start, stop, step, size)))

    @property
    def value(self) -> slice:
        start, stop, step, size = (int(v) for v in self.args)
        return slice(start, stop if stop >= 0 else None, step)

    def code(self) -> str:
        start, stop, step, size = (int(v) for v in self.args)
        if step == 1:
            return (str(start) if start else "") + ":" + ("" if stop == size else str(stop))
        if step < 0:
            return f"{start}:{stop if stop >= 0 else ''}:{step}"
        return (str(start) if start else "") + ":" + ("" if stop >= size else str(stop)) + f":{step}"

    @property
    def free_symbols(self):
        return set()


class NewAxis(sp.Basic):
    """`None` (np.newaxis) in an index: a new axis of length one."""

    value = None

    def code(self) -> str:
        return "None"

    @property
    def free_symbols(self):
        return set()


class Arange(Op):
    """np.arange(n): the integers 0 to n - 1 (an index, data)."""

    nargs = 1
    arrays = 0

    @staticmethod
    def numpy(n):
        return np.arange(n)

    @classmethod
    def shape(cls, n):
        return (sp.Integer(n),)

    def _sympystr(self, printer):
        return f"arange({self.args[0]})"

    def _latex(self, printer):
        return rf"\operatorname{{arange}}({self.args[0]})"

    def _numpycode(self, printer):
        return f"np.arange({self.args[0]})"


class IntArray(Op):
    """A fixed list of whole numbers (an index written as a list)."""

    arrays = 0

    @staticmethod
    def numpy(*values):
        return np.array(values, dtype=np.int64)

    @classmethod
    def shape(cls, *values):
        return (sp.Integer(len(values)),)

    def _sympystr(self, printer):
        return "[" + ", ".join(map(str, self.args)) + "]"

    _latex = _sympystr

    def _numpycode(self, printer):
        return "np.array([" + ", ".join(map(str, self.args)) + "])"


class Eye(Op):
    """np.eye(n): the identity matrix (np.eye(K)[y] is y's one-hot rows)."""

    nargs = 1
    arrays = 0

    @staticmethod
    def numpy(n):
        return np.eye(n, dtype=np.int64)

    @classmethod
    def shape(cls, n):
        return (sp.Integer(n), sp.Integer(n))

    def _sympystr(self, printer):
        return f"eye({self.args[0]})"

    def _latex(self, printer):
        return rf"I_{{{self.args[0]}}}"

    def _numpycode(self, printer):
        return f"np.eye({self.args[0]})"


class Full(Op):
    """An array of one value: np.zeros(shape), np.ones(shape), np.full(shape, v)."""

    arrays = 0

    @staticmethod
    def numpy(value, *shape):
        return np.full(tuple(int(d) for d in shape), value, dtype=object if isinstance(value, sp.Basic) else float)

    @classmethod
    def shape(cls, value, *shape):
        return tuple(sp.Integer(d) for d in shape)

    def _sympystr(self, printer):
        value, *shape = self.args
        return f"full({tuple(int(d) for d in shape)}, {printer._print(value)})"

    def _latex(self, printer):
        return printer._print(self.args[0])

    def _numpycode(self, printer):
        value, *shape = self.args
        dims = "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"
        whole = ", dtype=int" if value.is_Integer else ""  # an integer fill is integer data (an index)
        if value == 0:
            return f"np.zeros({dims}{whole})"
        if value == 1:
            return f"np.ones({dims}{whole})"
        return f"np.full({dims}, {printer._print(value)}{whole})"


class FullLike(Full):
    """An array of one float value in the dtype of the arrays computed with (np.zeros_like(h0),
    np.zeros(shape, dtype=x.dtype)): float32 arrays in, float32 zeros."""

    def _numpycode(self, printer):
        value, *shape = self.args
        dims = "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"
        dtype = printer.arguments_dtype()
        if value == 0:
            return f"np.zeros({dims}, dtype={dtype})"
        if value == 1:
            return f"np.ones({dims}, dtype={dtype})"
        return f"np.full({dims}, {printer._print(value)}, dtype={dtype})"


def _index_value(component, env_value):
    """An index component as NumPy takes it, given the value of an array component."""
    if isinstance(component, (Slice, NewAxis)):
        return component.value
    if component.is_Integer:
        return int(component)
    return np.asarray(env_value).astype(np.int64) if np.asarray(env_value).dtype != bool else env_value


def _index_code(printer, index) -> str:
    """The index as it stands between brackets: `:, 0`, `np.arange(4), y`."""
    words = []
    for component in index:
        if isinstance(component, (Slice, NewAxis)):
            words.append(component.code())
        elif component.is_Integer:
            words.append(str(int(component)))
        else:
            words.append(printer._print(component))
    return ", ".join(words) if words else "()"


def _index_tuple(printer, index) -> str:
    """The index as a tuple expression (slices as slice(...)), an argument of a helper."""
    words = []
    for component in index:
        if isinstance(component, Slice):
            start, stop, step, size = (int(v) for v in component.args)
            words.append(f"slice({start}, {stop if stop >= 0 else None}, {step})")
        elif isinstance(component, NewAxis):
            words.append("None")
        elif component.is_Integer:
            words.append(str(int(component)))
        else:
            words.append(printer._print(component))
    return "(" + ", ".join(words) + ("," if len(words) == 1 else "") + ")"


def _index_text(printer, index) -> str:
    return _index_code(printer, index)


def _stand_in(shape) -> np.ndarray:
    """A zero-strided float array of `shape`: indexing it tells the shape of a result for free."""
    return np.lib.stride_tricks.as_strided(np.zeros(1), tuple(int(d) for d in shape), (0,) * len(shape))


def _components(index, shapes) -> tuple:
    """The index with every array component replaced by zeros of its shape (for shapes)."""
    out, k = [], 0
    for component in index:
        if isinstance(component, (Slice, NewAxis)) or getattr(component, "is_Integer", False):
            out.append(_index_value(component, None))
        else:
            shape, dtype = shapes[k]
            out.append(np.zeros(tuple(int(d) for d in shape), dtype=dtype))
            k += 1
    return tuple(out)


def indexed_shape(shape, index, index_shapes) -> tuple:
    """The shape of a[index], NumPy's rules (advanced indexing included)."""
    return tuple(sp.Integer(d) for d in _stand_in(shape)[_components(index, index_shapes)].shape)


class _Indexed(Op):
    """Base: an operation whose last arguments are an index into an array (the arrays of the index
    are arguments too: data, never differentiated)."""

    lead = 1  # the arguments before the index

    @property
    def index(self) -> tuple:
        return self.args[self.lead:]

    def _index_shapes(self, shape) -> list:
        return [(shape(c), np.int64) for c in self.index
                if not (isinstance(c, (Slice, NewAxis)) or getattr(c, "is_Integer", False))]

    def result_shape(self, shape) -> tuple:
        return type(self).shape(*(shape(a) for a in self.args[:self.lead]), *self._index_shapes(shape))

    def value(self, evaluate):
        index = tuple(_index_value(c, None if isinstance(c, (Slice, NewAxis)) or getattr(c, "is_Integer", False)
                                   else evaluate(c)) for c in self.index)
        return self.apply(*(evaluate(a) for a in self.args[:self.lead]), index=index)


class GetItem(_Indexed):
    """a[index]: slicing, whole numbers, new axes and gathers by integer arrays (p[arange(N), y],
    W[tokens]); its gradient scatters g back, adding where an entry was gathered twice."""

    def result_shape(self, shape) -> tuple:
        return indexed_shape(shape(self.args[0]), self.index, self._index_shapes(shape))

    @staticmethod
    def apply(a, index):
        return np.asarray(a)[index]

    @staticmethod
    def samples():
        a, y = sp.symbols("a y")
        return [(GetItem(a, Slice(1, 3, 1, 3), sp.Integer(0)), {"a": (3, 2)}, {}),
                (GetItem(a, Arange(4), y), {"a": (4, 3)}, {"y": [2, 0, 2, 1]}),
                (GetItem(a, NewAxis(), Slice(0, 4, 2, 4)), {"a": (4, 3)}, {}),
                (GetItem(a, y), {"a": (5, 3)}, {"y": [[0, 4], [4, 4]]}),  # a gather with repeats
                (GetItem(a, Slice(2, -1, -1, 3), IntArray(1, 0, 1)), {"a": (3, 2)}, {})]

    def vjp(self, index, g, shape):
        if index != 0:
            raise TypeError("an index is data: not differentiated")
        return IndexAdd(g, sp.Tuple(*shape(self.args[0])), *self.index)

    def _sympystr(self, printer):
        return printer.parenthesize(self.args[0], 1000, strict=True) + "[" + _index_text(printer, self.index) + "]"

    def _latex(self, printer):
        return printer.parenthesize(self.args[0], 1000, strict=True) + r"\left[" + _index_text(printer, self.index) + r"\right]"

    def _numpycode(self, printer):
        return printer._method_target(self.args[0]) + "[" + _index_code(printer, self.index) + "]"


class IndexAdd(_Indexed):
    """zeros(shape) with g added at index (np.add.at: an entry indexed twice gets both): the
    gradient of a gather."""

    lead = 2
    named = True
    linear = True

    def result_shape(self, shape) -> tuple:
        return tuple(self.args[1])

    @staticmethod
    def apply(g, shape, index):
        out = np.zeros(tuple(int(d) for d in shape), dtype=np.asarray(g).dtype)
        if out.dtype == object:
            out[...] = sp.S.Zero
        np.add.at(out, index, g)
        return out

    @staticmethod
    def samples():
        g, y = sp.symbols("g y")
        return [(IndexAdd(g, sp.Tuple(5, 3), y), {"g": (2, 2, 3)}, {"y": [[0, 4], [4, 4]]}),
                (IndexAdd(g, sp.Tuple(4, 3), Arange(4), y), {"g": (4,)}, {"y": [2, 0, 2, 1]})]

    def vjp(self, index, g, shape):
        return GetItem(g, *self.index)

    def _sympystr(self, printer):
        return f"index_add({printer._print(self.args[0])}, {_index_text(printer, self.index)})"

    def _latex(self, printer):
        return r"\operatorname{scatter}\left(" + printer._print(self.args[0]) + r"\right)"

    def _numpycode(self, printer):
        printer.helpers.add("_index_add")
        g, shape = self.args[:2]
        dims = "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"
        return f"_index_add({printer._print(g)}, {dims}, {_index_tuple(printer, self.index)})"


class Lookup(Op):
    """W[x]: the rows of a table picked by integer indices x of any shape (an embedding: tokens
    (N, T) pick rows of W (vocab, units), giving (N, T, units)); its gradient adds each pick's
    row of g into the table's row of that index (`IndexAdd`, np.add.at: a token seen twice gets
    both)."""

    @staticmethod
    def numpy(W, x):
        return np.asarray(W)[np.asarray(x)]

    @classmethod
    def shape(cls, W, x):
        return (*x, *W[1:])

    def result_shape(self, shape) -> tuple:
        return type(self).shape(shape(self.args[0]), shape(self.args[1]))

    @staticmethod
    def samples():
        W, x = sp.symbols("W x")
        return [(Lookup(W, x), {"W": (5, 3)}, {"x": [[0, 4], [4, 4]]}), (Lookup(W, x), {"W": (4, 2)}, {"x": [3, 1, 3]})]

    def vjp(self, index, g, shape):
        if index != 0:
            raise TypeError("indices are data: not differentiated")
        return IndexAdd(g, sp.Tuple(*shape(self.args[0])), self.args[1])

    def _sympystr(self, printer):
        return printer.parenthesize(self.args[0], 1000, strict=True) + "[" + printer._print(self.args[1]) + "]"

    def _latex(self, printer):
        return printer.parenthesize(self.args[0], 1000, strict=True) + r"\left[" + printer._print(self.args[1]) + r"\right]"

    def _numpycode(self, printer):
        return printer._method_target(self.args[0]) + "[" + printer._print(self.args[1]) + "]"


class SetItem(_Indexed):
    """a copy of a with a[index] = v (v broadcast): an in-place write, as what it computes."""

    lead = 2

    def result_shape(self, shape) -> tuple:
        return shape(self.args[0])

    @staticmethod
    def apply(a, v, index):
        out = np.array(a, dtype=np.result_type(np.asarray(a), np.asarray(v)), copy=True)
        out[index] = v
        return out

    @staticmethod
    def samples():
        a, v = sp.symbols("a v")
        return [(SetItem(a, v, Slice(0, 3, 1, 3), sp.Integer(1)), {"a": (3, 4), "v": (3,)}, {}),
                (SetItem(a, v, sp.Integer(1)), {"a": (3, 4), "v": ()}, {}),
                (SetItem(a, sp.S.Zero, Arange(2), IntArray(3, 0)), {"a": (2, 4)}, {})]

    def vjp(self, index, g, shape):
        a, v = self.args[:2]
        if index == 0:  # the entries written over receive nothing
            return SetItem(g, sp.S.Zero, *self.index)
        if index == 1:
            return GetItem(g, *self.index)
        raise TypeError("an index is data: not differentiated")

    def _sympystr(self, printer):
        a, v = self.args[:2]
        return f"set({printer._print(a)}[{_index_text(printer, self.index)}] = {printer._print(v)})"

    def _latex(self, printer):
        a, v = self.args[:2]
        return (printer._print(a) + r"\left[" + _index_text(printer, self.index)
                + r"\right] \leftarrow " + printer._print(v))

    def _numpycode(self, printer):
        printer.helpers.add("_set_item")
        a, v = self.args[:2]
        return f"_set_item({printer._print(a)}, {_index_tuple(printer, self.index)}, {printer._print(v)})"


class Reshape(Op):
    """a.reshape(shape), C order."""

    arrays = 1
    linear = True

    @staticmethod
    def numpy(a, *shape):
        return np.reshape(a, shape)

    @classmethod
    def shape(cls, a, *shape):
        return tuple(sp.Integer(d) for d in shape)

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(Reshape(a, 2, 6), {"a": (3, 4)}, {}), (Reshape(a, 12), {"a": (2, 3, 2)}, {})]

    def vjp(self, index, g, shape):
        return Reshape(g, *shape(self.args[0]))

    def _sympystr(self, printer):
        return f"{printer.parenthesize(self.args[0], 1000, strict=True)}.reshape{tuple(int(d) for d in self.args[1:])}"

    def _latex(self, printer):
        return r"\operatorname{reshape}\left(" + printer._print(self.args[0]) + r"\right)"

    def _numpycode(self, printer):
        dims = ", ".join(str(int(d)) for d in self.args[1:])
        return f"{printer._method_target(self.args[0])}.reshape({dims})"


class Permute(Op):
    """np.transpose(a, axes): the axes reordered."""

    arrays = 1
    linear = True

    @staticmethod
    def numpy(a, *axes):
        return np.transpose(a, axes)

    @classmethod
    def shape(cls, a, *axes):
        return tuple(a[k] for k in axes)

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(Permute(a, 2, 0, 1), {"a": (2, 3, 4)}, {})]

    def vjp(self, index, g, shape):
        axes = [int(k) for k in self.args[1:]]
        return Permute(g, *np.argsort(axes).tolist())

    def _sympystr(self, printer):
        return f"{printer.parenthesize(self.args[0], 1000, strict=True)}.transpose{tuple(int(k) for k in self.args[1:])}"

    def _latex(self, printer):
        return printer.parenthesize(self.args[0], 1000, strict=True) + r"^{\top}"

    def _numpycode(self, printer):
        return f"{printer._method_target(self.args[0])}.transpose({', '.join(str(int(k)) for k in self.args[1:])})"


class KeepDims(Op):
    """A reduced array with its reduced axes put back as ones (so that it broadcasts): the
    gradient of a sum, mean or max that dropped them."""

    arrays = 1
    linear = True

    @staticmethod
    def numpy(g, *axes):
        return np.expand_dims(g, tuple(int(k) for k in axes))

    @classmethod
    def shape(cls, g, *axes):
        out = list(g)
        for k in sorted(int(a) for a in axes):
            out.insert(k, sp.S.One)
        return tuple(out)

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(KeepDims(a, 1), {"a": (3, 4)}, {}), (KeepDims(a, 0, 2), {"a": (3,)}, {})]

    def vjp(self, index, g, shape):
        return Reshape(g, *shape(self.args[0]))

    def _sympystr(self, printer):
        return f"keepdims({printer._print(self.args[0])}, {tuple(int(k) for k in self.args[1:])})"

    def _latex(self, printer):
        return printer._print(self.args[0])

    def _numpycode(self, printer):
        axes = tuple(int(k) for k in self.args[1:])
        return f"np.expand_dims({printer._print(self.args[0])}, {axes!r})"


class MaxAxes(Op):
    """The maximum over some axes (np.max(a, axis, keepdims)); its gradient is shared evenly by the
    entries that equal the maximum (PyTorch's `amax`)."""

    nargs = 3
    arrays = 1

    @staticmethod
    def numpy(a, axes, keepdims):
        if a.dtype == object:
            return _object_reduce(a, axes, keepdims, lambda e: sp.Max(*e))
        return np.max(a, axis=axes, keepdims=bool(keepdims))

    @classmethod
    def shape(cls, a, axes, keepdims):
        return tuple(sp.S.One if k in axes else d for k, d in enumerate(a) if keepdims or k not in axes)

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(MaxAxes(a, sp.Tuple(1), sp.Integer(1)), {"a": (3, 4)}, {}),
                (MaxAxes(a, sp.Tuple(0, 2), sp.Integer(0)), {"a": (2, 3, 4)}, {})]

    def vjp(self, index, g, shape):
        a, axes, keepdims = self.args
        return MaxAxesGrad(a, g, axes, sp.Integer(int(bool(keepdims) or shape(g) == ())))  # a scalar g broadcasts

    def _sympystr(self, printer):
        a, axes, keepdims = self.args
        return f"max({printer._print(a)}, axis={_axes_text(axes)}{', keepdims' if keepdims else ''})"

    def _latex(self, printer):
        return r"\max_{" + _axes_text(self.args[1]) + r"}\left(" + printer._print(self.args[0]) + r"\right)"

    def _numpycode(self, printer):
        a, axes, keepdims = self.args
        return (f"{printer._method_target(a)}.max(axis={_axes_text(axes)}"
                + (", keepdims=True)" if keepdims else ")"))


class MaxAxesGrad(Op):
    """dL/da of m = max(a, axes): g shared by the entries of a equal to their maximum."""

    nargs = 4
    arrays = 2
    named = True

    @staticmethod
    def numpy(a, g, axes, keepdims):
        axes = tuple(axes)
        top = np.max(a, axis=axes, keepdims=True) if a.dtype != object else _object_reduce(
            a, axes, True, lambda e: sp.Max(*e))
        mask = (a == top)
        if not keepdims:
            g = np.expand_dims(g, axes)
        return mask * g / np.sum(mask, axis=axes, keepdims=True)

    @classmethod
    def shape(cls, a, g, axes, keepdims):
        return a

    def _sympystr(self, printer):
        a, g, axes, keepdims = self.args
        return f"max_grad({printer._print(a)}, {printer._print(g)}, axis={_axes_text(axes)})"

    def _latex(self, printer):
        a, g = self.args[:2]
        return r"\operatorname{argmax-share}\left(" + printer._print(a) + ", " + printer._print(g) + r"\right)"

    def _numpycode(self, printer):
        printer.helpers.add("_max_gradient")
        a, g, axes, keepdims = self.args
        return (f"_max_gradient({printer._print(a)}, {printer._print(g)}, axis={_axes_text(axes)}, "
                f"keepdims={bool(keepdims)})")


def _object_reduce(a, axes, keepdims, reduce):
    axes = tuple(int(k) for k in axes)
    moved = np.moveaxis(a, axes, tuple(range(a.ndim - len(axes), a.ndim)))
    flat = moved.reshape(moved.shape[:a.ndim - len(axes)] + (-1,))
    out = np.empty(flat.shape[:-1], dtype=object)
    for i in np.ndindex(out.shape):
        out[i] = reduce(list(flat[i]))
    return np.expand_dims(out, axes) if keepdims else out


def _axes_text(axes) -> str:
    axes = tuple(int(k) for k in axes)
    return str(axes[0]) if len(axes) == 1 else str(axes)


class Where(Op):
    """np.where(c, a, b): a where the (data) condition c holds, else b."""

    nargs = 3

    @staticmethod
    def numpy(c, a, b):
        c = np.asarray(c)
        if c.dtype == object and any(isinstance(v, sp.Basic) and not v.is_Boolean for v in c.flat) or any(
                isinstance(v, sp.Rel) for v in c.flat):  # conditions on symbols: exact, entry by entry
            return _where_exact(c, a, b)
        return np.where(c.astype(bool), a, b)

    @classmethod
    def shape(cls, c, a, b):
        from .arrays import broadcast
        return broadcast(c, a, b)

    @staticmethod
    def samples():
        c, a, b = sp.symbols("c a b")
        return [(Where(c, a, b), {"a": (3, 4), "b": (4,)}, {"c": [[True, False, True, True]] * 2 + [[False] * 4]})]

    def vjp(self, index, g, shape):
        c = self.args[0]
        if index == 1:
            return Where(c, g, sp.S.Zero)
        if index == 2:
            return Where(c, sp.S.Zero, g)
        raise TypeError("a condition is data: not differentiated")

    def _sympystr(self, printer):
        return "where(" + ", ".join(printer._print(arg) for arg in self.args) + ")"

    def _latex(self, printer):
        c, a, b = (printer._print(arg) for arg in self.args)
        return rf"\begin{{cases}} {a} & {c} \\ {b} & \text{{otherwise}} \end{{cases}}"

    def _numpycode(self, printer):
        return "np.where(" + ", ".join(printer._print(arg) for arg in self.args) + ")"


def _where_exact(c, a, b):
    c, a, b = np.broadcast_arrays(c, np.asarray(a, dtype=object), np.asarray(b, dtype=object))
    out = np.empty(c.shape, dtype=object)
    for i in np.ndindex(c.shape):
        out[i] = sp.Piecewise((a[i], c[i]), (b[i], True))
    return out


class Concatenate(Op):
    """np.concatenate(arrays, axis); its gradient is the matching slice of g for each array."""

    def split(self):
        return self.args[:-1], (int(self.args[-1]),)

    @staticmethod
    def numpy(*args):
        *arrays, axis = args
        return np.concatenate(arrays, axis=axis)

    @classmethod
    def shape(cls, *args):
        *shapes, axis = args
        out = list(shapes[0])
        out[axis] = sum((s[axis] for s in shapes), sp.S.Zero)
        return tuple(out)

    @staticmethod
    def samples():
        a, b = sp.symbols("a b")
        return [(Concatenate(a, b, sp.Integer(1)), {"a": (2, 3), "b": (2, 2)}, {}),
                (Concatenate(a, b, a, sp.Integer(0)), {"a": (1, 3), "b": (2, 3)}, {})]

    def vjp(self, index, g, shape):
        arrays, axis = self.args[:-1], int(self.args[-1])
        sizes = [int(shape(a)[axis]) for a in arrays]
        start = sum(sizes[:index])
        full = shape(self)
        if axis in (-1, len(full) - 1):  # along the last axis: a block of columns, whatever the batch
            return Columns(g, start, start + sizes[index])
        index_ = [Slice(0, int(d), 1, int(d)) for d in full[:axis + 1]]
        index_[axis] = Slice(start, start + sizes[index], 1, int(full[axis]))
        return GetItem(g, *index_)

    def _sympystr(self, printer):
        return f"concatenate([{', '.join(printer._print(a) for a in self.args[:-1])}], axis={self.args[-1]})"

    def _latex(self, printer):
        return r"\left[" + ", ".join(printer._print(a) for a in self.args[:-1]) + r"\right]"

    def _numpycode(self, printer):
        return (f"np.concatenate(({', '.join(printer._print(a) for a in self.args[:-1])},), "
                f"axis={int(self.args[-1])})")


class Stack(Op):
    """np.stack(arrays, axis): a new axis; its gradient is g's slice at each array's position."""

    def split(self):
        return self.args[:-1], (int(self.args[-1]),)

    @staticmethod
    def numpy(*args):
        *arrays, axis = args
        return np.stack(arrays, axis=axis)

    @classmethod
    def shape(cls, *args):
        *shapes, axis = args
        out = list(shapes[0])
        out.insert(axis, sp.Integer(len(shapes)))
        return tuple(out)

    @staticmethod
    def samples():
        a, b = sp.symbols("a b")
        return [(Stack(a, b, sp.Integer(0)), {"a": (2, 3), "b": (2, 3)}, {}),
                (Stack(a, b, a, sp.Integer(2)), {"a": (2, 3), "b": (2, 3)}, {})]

    def vjp(self, index, g, shape):
        axis = int(self.args[-1])
        full = shape(self)
        index_ = [Slice(0, int(d), 1, int(d)) for d in full[:axis]] + [sp.Integer(index)]
        return GetItem(g, *index_)

    def _sympystr(self, printer):
        return f"stack([{', '.join(printer._print(a) for a in self.args[:-1])}], axis={self.args[-1]})"

    def _latex(self, printer):
        return r"\left[" + ", ".join(printer._print(a) for a in self.args[:-1]) + r"\right]"

    def _numpycode(self, printer):
        return f"np.stack(({', '.join(printer._print(a) for a in self.args[:-1])},), axis={int(self.args[-1])})"


class LogicalNot(Op):
    """~m, np.logical_not(m): a mask's complement (data, never differentiated)."""

    nargs = 1

    @staticmethod
    def numpy(m):
        m = np.asarray(m)
        return 1 - m if m.dtype == object else np.logical_not(m)

    def _sympystr(self, printer):
        return f"~{printer.parenthesize(self.args[0], 1000, strict=True)}"

    def _latex(self, printer):
        return r"\neg " + printer._print(self.args[0])

    def _numpycode(self, printer):
        return f"np.logical_not({printer._print(self.args[0])})"


class AsFloat(Op):
    """A boolean mask used in float arithmetic (x * mask): as 0.0 and 1.0, so that masks add up as
    numbers where a gradient sums them (NumPy adds booleans as a logical or)."""

    nargs = 1

    @staticmethod
    def numpy(m):
        m = np.asarray(m)
        if m.dtype != object:
            return m.astype(float)
        out = np.empty(m.shape, dtype=object)  # exact entries: SymPy's true and false are 1 and 0
        for index, v in np.ndenumerate(m):
            out[index] = sp.S.One if v in (True, sp.true) else sp.S.Zero if v in (False, sp.false) else v * sp.S.One
        return out

    def _sympystr(self, printer):
        return printer._print(self.args[0])

    def _latex(self, printer):
        return printer._print(self.args[0])

    def _numpycode(self, printer):  # in the float arrays' dtype: a float32 computation stays float32
        return f"{printer._method_target(self.args[0])}.astype({printer.arguments_dtype()})"


class Absolute(sp.Function):
    """|u|, entry by entry; its derivative is sign(u) (0 at 0, as PyTorch)."""

    nargs = 1
    is_real = True

    @classmethod
    def eval(cls, u):
        if u.is_Number:
            return abs(u)
        return None

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(Absolute(a), {"a": (3, 2)}, {})]

    def fdiff(self, argindex=1):
        return sp.sign(self.args[0])

    def _sympystr(self, printer):
        return f"abs({printer._print(self.args[0])})"

    def _latex(self, printer):
        return r"\left|" + printer._print(self.args[0]) + r"\right|"

    def _numpycode(self, printer):
        return f"np.abs({printer._print(self.args[0])})"


class Cast(sp.Function):
    """u.astype(float32 or float64), a float array made another float dtype: the same numbers,
    computed on in that precision; its derivative is 1. `bits`: 32 or 64."""

    nargs = 2
    is_real = True

    @classmethod
    def eval(cls, u, bits):
        if u.is_Number:
            return u
        return None

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(Cast(a, 64) * a, {"a": (3, 2)}, {})]

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise TypeError("a dtype is not differentiated")
        return sp.S.One

    def _sympystr(self, printer):
        return f"float{self.args[1]}({printer._print(self.args[0])})"

    def _latex(self, printer):
        return printer._print(self.args[0])

    def _numpycode(self, printer):  # float32: the module's _SINGLE, which symprop check makes float64
        dtype = "_SINGLE" if self.args[1] == 32 else f"np.float{self.args[1]}"
        return f"{printer._method_target(self.args[0])}.astype({dtype})"


# The registered operations: each differentiable one has `samples()`, (expression, float arrays' shapes,
# data arrays' values) triples that one test loop differentiates; the others only give values (data,
# constants) or are a gradient themselves (MaxAxesGrad, proved by MaxAxes' samples).
TRACED = (GetItem, IndexAdd, SetItem, Reshape, Permute, KeepDims, MaxAxes, Where, Concatenate, Stack, Absolute, Lookup,
          Cast)
OPERATIONS = arrays.OPERATIONS + TRACED  # every registered operation: one test loop over all of them
VALUES_ONLY = (Arange, IntArray, Eye, Full, FullLike, MaxAxesGrad, LogicalNot, AsFloat)
