"""Whole-array operations, as SymPy functions: the rule table of the reverse sweep.

The matrix-level derivation writes every equation over whole arrays. A SymPy `Symbol` stands for
an array; `+`, `*`, `**`, `exp`, `log`, ... act elementwise with NumPy's broadcasting, so SymPy's
scalar algebra is exactly the algebra of those arrays. The operations that are not elementwise
are the functions below. Each carries its knowledge and nothing else:

    shape(*shapes)    the shape of its result, from the shapes of its arguments
    vjp(i, g)         the vector-Jacobian product for argument i: dL/d(arg i), given g = dL/d(self),
                      as an array expression (broadcastable to the argument's shape)
    numpy(*values)    its value, exactly on (object) arrays of SymPy numbers (`evaluate`)

The printers (`symbolic.notation`, `codegen.printer`) know how to write each one. In the rules,
`self` is the forward output ("ans" in autograd) and `g` the incoming gradient.
"""

from __future__ import annotations

import operator
from functools import reduce

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE


BATCH = sp.Symbol("N", integer=True, positive=True)  # the batch size, where the spec leaves it open


def _is_scalar(expr) -> bool:
    """A number or a power of the batch size N: no array in it."""
    return not expr.atoms(sp.Function) and expr.free_symbols <= {BATCH}


# ---------------------------------------------------------------------------------------------
# Printing helpers the operations share (each operation prints itself: _sympystr for the text
# notation, _latex, _numpycode for the generated module)


def _call(printer, name: str, args) -> str:
    """name(arg, ...), the text notation of an operation applied."""
    return f"{name}({', '.join(printer._print(arg) for arg in args)})"


def _operator(printer, name: str, *args, transposed: bool = False) -> str:
    """\\operatorname{name}(args) in LaTeX; ^T for an adjoint (the gradient of an operation)."""
    return (r"\operatorname{" + name + "}" + (r"^{\top}" if transposed else "") + r"\left("
            + ", ".join(printer._print(a) for a in args) + r"\right)")


def _image_call(printer, op, name: str, *settings: str, skip=None) -> str:
    """An image operation in the text notation: its arrays (but the one at `skip`), then its
    settings by name (a square one as one number; an empty name: left out)."""
    arrays, values = op.split()
    words = [printer._print(arg) for k, arg in enumerate(arrays) if k != skip]
    for setting, value in zip(settings, values):
        if setting:
            words.append(f"{setting}={value[0] if value[0] == value[1] else value}")
    return f"{name}({', '.join(words)})"


_LETTERS = "ncijklmpqrs"  # an image batch's n, c, i, j (sample, channel, row, column), then more axes


def _axis_letters(axes) -> str:
    """The axes of an image batch by their index letters: (0, 2, 3) is nij (sample, row, column)."""
    if any(int(k) >= len(_LETTERS) for k in axes):
        return "_".join(str(int(k)) for k in axes)
    return "".join(_LETTERS[int(k)] for k in axes)


class ArrayFunction(sp.Function):
    """An operation on whole arrays that is not elementwise."""

    linear = False  # f(c * A) == c * f(A) for a number c
    arrays = None  # how many leading arguments are arrays (None: all); the rest are settings (sizes)
    named = False  # a gradient computed by it keeps its name in the derivation (never inlined)
    reduces = False  # its vjp takes the pull as broadcast, larger than its result, and sums it
    rounds = False  # its float value depends on how it is computed (exp, log, a sum in another order)

    @classmethod
    def eval(cls, *args):
        if cls.linear:  # a scalar factor comes out: Total(a/5 - y/5) = Total(a - y)/5, RowSum(y/N)
            coeff, rest = args[0].as_coeff_Mul()
            if rest.is_Add:
                content, rest = rest.primitive()
                coeff *= content
            factors = sp.Mul.make_args(rest)
            scalars = [f for f in factors if _is_scalar(f)]
            if scalars:
                coeff *= sp.Mul(*scalars)
                rest = sp.Mul(*(f for f in factors if not _is_scalar(f)))
            if coeff is not sp.S.One:
                return coeff * cls(rest, *args[1:])
        return None

    @staticmethod
    def numpy(*args):
        raise NotImplementedError

    @classmethod
    def shape(cls, *shapes) -> tuple:
        return shapes[0]  # the shape of the first argument, unless the operation says otherwise

    def vjp(self, index: int, g, shape):
        raise NotImplementedError(f"{type(self).__name__} has no gradient with respect to argument {index}")

    def result_shape(self, shape) -> tuple:
        """Its shape, `shape(e)` giving that of an argument."""
        arrays, settings = self.split()
        return type(self).shape(*(shape(arg) for arg in arrays), *settings)

    def value(self, evaluate):
        """Its value, `evaluate(e)` giving that of an argument."""
        arrays, settings = self.split()
        return type(self).numpy(*(evaluate(arg) for arg in arrays), *settings)

    def split(self) -> tuple[tuple, tuple]:
        """(the array arguments, the settings as Python ints or tuples of ints)."""
        if self.arrays is None:
            return self.args, ()
        return self.args[:self.arrays], tuple(_setting(arg) for arg in self.args[self.arrays:])


class Matmul(ArrayFunction):
    """Matrix product A @ B (matrix-vector in the column layout)."""

    nargs = 2
    precedence = PRECEDENCE["Mul"] - 1  # parenthesized inside elementwise products
    numpy = staticmethod(np.dot)

    @classmethod
    def shape(cls, left, right):
        if len(left) == 1:
            return tuple(right[1:])
        return tuple(left[:-1]) + tuple(right[1:])

    def vjp(self, index, g, shape):
        A, B = self.args
        if index == 0:  # dL/dA = g B^T, or the outer product g b^T for a matrix-vector product
            return Outer(g, B) if len(shape(B)) == 1 and len(shape(A)) == 2 else Matmul(g, Transposed(B))
        if len(shape(A)) == 1:  # a vector times a matrix: a g^T
            return Outer(A, g)
        if len(shape(A)) > 2:  # a dense layer at every step of a sequence: summed over samples and steps
            return StepsOuter(A, g)
        return Matmul(Transposed(A), g)

    @staticmethod
    def samples():
        a, b, x = sp.symbols("a b x")
        return [(Matmul(a, b), {"a": (3, 4), "b": (4, 2)}, {}), (Matmul(a, x), {"a": (3, 4), "x": (4,)}, {}),
                (Matmul(x, b), {"x": (4,), "b": (4, 2)}, {}), (Matmul(a, b), {"a": (2, 3, 4), "b": (4, 2)}, {})]

    def _sympystr(self, printer):  # @ and * bind alike, from the left: a product on the right is parenthesized
        left, right = self.args
        return (printer.parenthesize(left, PRECEDENCE["Mul"], strict=True) + " @ "
                + printer.parenthesize(right, PRECEDENCE["Mul"], strict=False))

    def _latex(self, printer):
        return " ".join(printer.parenthesize(arg, PRECEDENCE["Mul"], strict=False) for arg in self.args)

    def _numpycode(self, printer):
        # np.dot, not @: the same product with less call overhead on small arrays. Row-layout
        # weight gradients go through _weight_gradient, which uses einsum for a large outer
        # product at batch 1: np.dot and @ send a product with an inner dimension of one to a
        # general matrix multiply, up to 4x slower there (benchmarks/README.md)
        left, right = self.args
        if printer.layout == "row" and isinstance(left, Transposed):
            printer.helpers.add("_weight_gradient")
            return f"_weight_gradient({printer._print(left.args[0])}, {printer._print(right)})"
        return f"np.dot({printer._print(left)}, {printer._print(right)})"

class StepsOuter(ArrayFunction):
    """A^T g summed over every axis but the last: the weight gradient of a dense layer applied at
    every step of a sequence (A (N, T, D), g (N, T, H) -> (D, H)); for rows it is A.T @ g."""

    nargs = 2

    @staticmethod
    def numpy(a, g):
        a, g = np.asarray(a), np.asarray(g)
        lead = list(range(a.ndim - 1))
        return np.tensordot(a, g, axes=(lead, lead))

    @classmethod
    def shape(cls, a, g):
        return (a[-1], g[-1])

    def _sympystr(self, printer):
        return _call(printer, "steps_outer", self.args)

    def _latex(self, printer):
        a, g = self.args
        return (r"\sum_{n,t} " + printer.parenthesize(a, PRECEDENCE["Pow"], strict=False) + r"^{\top} "
                + printer.parenthesize(g, PRECEDENCE["Mul"], strict=False))

    def _numpycode(self, printer):
        a, g = (printer._print(arg) for arg in self.args)
        return f"np.tensordot({a}, {g}, axes=([0, 1], [0, 1]))"


class Transposed(ArrayFunction):
    """A.T"""

    nargs = 1
    linear = True
    numpy = staticmethod(np.transpose)

    @classmethod
    def eval(cls, a):
        if isinstance(a, Transposed):
            return a.args[0]
        if isinstance(a, Matmul):  # (A B)^T = B^T A^T
            return Matmul(Transposed(a.args[1]), Transposed(a.args[0]))
        return super().eval(a)

    @classmethod
    def shape(cls, a):
        return tuple(reversed(a))

    def vjp(self, index, g, shape):
        return Transposed(g)

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(Transposed(a), {"a": (3, 4)}, {})]

    def _sympystr(self, printer):
        return printer.parenthesize(self.args[0], PRECEDENCE["Atom"], strict=True) + ".T"

    def _latex(self, printer):
        return printer.parenthesize(self.args[0], PRECEDENCE["Pow"], strict=False) + r"^{\top}"

    def _numpycode(self, printer):
        return printer._method_target(self.args[0]) + ".T"

class Outer(ArrayFunction):
    """Outer product of two vectors: u v^T."""

    nargs = 2
    numpy = staticmethod(np.outer)

    @classmethod
    def shape(cls, u, v):
        return (u[0], v[0])

    def vjp(self, index, g, shape):
        u, v = self.args
        return Matmul(g, v) if index == 0 else Matmul(Transposed(g), u)

    @staticmethod
    def samples():
        u, v = sp.symbols("u v")
        return [(Outer(u, v), {"u": (3,), "v": (4,)}, {})]

    def _sympystr(self, printer):
        return _call(printer, "outer", self.args)

    def _latex(self, printer):
        u, v = self.args
        return (printer.parenthesize(u, PRECEDENCE["Mul"], strict=False) + r"\,"
                + printer.parenthesize(v, PRECEDENCE["Pow"], strict=False) + r"^{\top}")

    def _numpycode(self, printer):
        u, v = self.args
        return f"np.outer({printer._print(u)}, {printer._print(v)})"

class SumRows(ArrayFunction):
    """Sum over the batch axis (axis 0): a bias gradient in the row layout."""

    nargs = 1
    linear = True

    @staticmethod
    def numpy(a):
        return np.sum(a, axis=0)

    @classmethod
    def shape(cls, a):
        return tuple(a[1:])

    def vjp(self, index, g, shape):
        return g  # every row receives g: broadcasting

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(SumRows(a), {"a": (3, 4)}, {})]

    def _sympystr(self, printer):
        return _call(printer, "sum_rows", self.args)

    def _latex(self, printer):
        return r"\sum_{n} " + printer.parenthesize(self.args[0], PRECEDENCE["Mul"], strict=False)

    def _numpycode(self, printer):
        return printer._method_target(self.args[0]) + ".sum(axis=0)"

class Total(ArrayFunction):
    """Sum of every element: a scalar."""

    nargs = 1
    linear = True

    @staticmethod
    def numpy(a):
        return np.sum(a)

    @classmethod
    def shape(cls, a):
        return ()

    def vjp(self, index, g, shape):
        return g  # every entry receives g

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(Total(a), {"a": (3, 4)}, {})]

    def _sympystr(self, printer):
        return _call(printer, "sum", self.args)

    def _latex(self, printer):
        return r"\sum " + printer.parenthesize(self.args[0], PRECEDENCE["Mul"], strict=False)

    def _numpycode(self, printer):
        arg = self.args[0]
        return printer._print(arg) + ".sum()" if arg.is_Symbol else f"np.sum({printer._print(arg)})"

class RowSum(ArrayFunction):
    """Sum over the last axis, kept as an axis of length one (per sample, for softmax)."""

    nargs = 1
    linear = True

    @classmethod
    def eval(cls, a):
        if isinstance(a, OneHot):
            return sp.S.One  # every one-hot row sums to one
        return super().eval(a)

    @staticmethod
    def numpy(a):
        return np.sum(a, axis=-1, keepdims=True)

    @classmethod
    def shape(cls, a):
        return tuple(a[:-1]) + (1,)

    def vjp(self, index, g, shape):
        return g  # every entry of a row receives its row's g

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(RowSum(a), {"a": (3, 4)}, {})]

    def _sympystr(self, printer):
        return _call(printer, "rowsum", self.args)

    def _latex(self, printer):
        return r"\sum_{k} " + printer.parenthesize(self.args[0], PRECEDENCE["Mul"], strict=False)

    def _numpycode(self, printer):
        return printer._method_target(self.args[0]) + ".sum(axis=-1, keepdims=True)"

class _Normalized(ArrayFunction):
    """A softmax over the last axis (of every entry, or of those a mask keeps): p = e / sum(e), so
    its VJP is p * (g - RowSum(p * g)) whichever entries it leaves out (they are 0 and get 0)."""

    nargs = 1
    rounds = True

    def vjp(self, index, g, shape):
        return self * (g - RowSum(self * g))


class Softmax(_Normalized):
    """exp(z) / RowSum(exp(z)), over the last axis."""

    @staticmethod
    def numpy(z):
        e = _elementwise(sp.exp, z)
        return e / np.sum(e, axis=-1, keepdims=True)

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(Softmax(a), {"a": (3, 4)}, {})]

    def _sympystr(self, printer):
        return _call(printer, "softmax", self.args)

    def _latex(self, printer):
        return r"\operatorname{softmax}\left(" + printer._print(self.args[0]) + r"\right)"

    def _numpycode(self, printer):
        printer.helpers.add("_softmax")
        return f"_softmax({printer._print(self.args[0])})"

class LogSoftmax(ArrayFunction):
    """log(softmax(z)) = z - log(RowSum(exp(z))), over the last axis."""

    nargs = 1
    rounds = True

    @staticmethod
    def numpy(z):
        return z - _elementwise(sp.log, np.sum(_elementwise(sp.exp, z), axis=-1, keepdims=True))

    def vjp(self, index, g, shape):
        return g - Softmax(self.args[0]) * RowSum(g)

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(LogSoftmax(a), {"a": (3, 4)}, {})]

    def _sympystr(self, printer):
        return _call(printer, "log_softmax", self.args)

    def _latex(self, printer):
        return r"\log\operatorname{softmax}\left(" + printer._print(self.args[0]) + r"\right)"

    def _numpycode(self, printer):
        printer.helpers.add("_log_softmax")
        return f"_log_softmax({printer._print(self.args[0])})"

class OneHot(ArrayFunction):
    """Integer labels as one-hot rows: OneHot(y, K)[i, k] = 1 if y[i] == k else 0."""

    nargs = 2

    @staticmethod
    def numpy(labels, classes):
        labels = np.asarray(labels)
        return (labels[..., None] == np.arange(int(classes))).astype(int) * sp.S.One

    def vjp(self, index, g, shape):
        raise TypeError("class labels are not differentiated")

    @staticmethod
    def samples():
        a, y = sp.symbols("a y")
        return [(OneHot(y, 3) * a, {"a": (4, 3)}, {"y": np.array([0, 2, 1, 2])})]

    def _sympystr(self, printer):
        return _call(printer, "onehot", self.args)

    def _latex(self, printer):
        return r"\operatorname{onehot}\left(" + printer._print(self.args[0]) + r"\right)"

    def _numpycode(self, printer):
        labels, classes = self.args  # a 0/1 (boolean) mask: keeps the logits' dtype
        return f"np.eye({printer._print(classes)}, dtype=bool)[{printer._print(labels)}]"

class BroadcastTo(ArrayFunction):
    """An array repeated to a larger shape (NumPy broadcasting made explicit): a gradient that
    reaches a whole array from a sum over some of its axes only."""

    @staticmethod
    def numpy(a, *shape):
        return np.broadcast_to(a, tuple(int(d) for d in shape))

    def vjp(self, index, g, shape):
        return g

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(BroadcastTo(a, 3, 4), {"a": (4,)}, {})]

    def _sympystr(self, printer):  # a gradient smaller than its array, repeated over it
        a, *shape = self.args
        if not shape:  # a scalar's: the number itself
            return printer._print(a)
        return f"broadcast({printer._print(a)}, {self._dims(printer, shape)})"

    @staticmethod
    def _dims(printer, shape) -> str:
        """The shape as a tuple in code, (N, 3) with the batch size N."""
        return "(" + ", ".join(printer._print(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"

    def _latex(self, printer):  # broadcasting is implicit in the notation
        return printer._print(self.args[0])

    def _numpycode(self, printer):  # a gradient smaller than its array: a new float array of its shape
        a, *shape = self.args
        if a.free_symbols <= {BATCH}:  # a number (0 for an unused array, 3 from sum(3 * b)): in the
            # dtype of the function's float arrays (a number alone would make float32 gradients float64)
            return f"np.full({self._dims(printer, shape)}, {printer._print(a)}, dtype={printer.arguments_dtype()})"
        return f"(np.broadcast_to({printer._print(a)}, {self._dims(printer, shape)}) + 0.0)"  # + 0.0: floats, float32 kept

class ZerosLike(ArrayFunction):
    """A gradient that is 0 in every entry, of the shape of its array: proved so by the
    derivation (the bias before a batch normalization), written 0, computed as zeros."""

    nargs = 1

    @staticmethod
    def numpy(a):
        return np.zeros(np.shape(a), dtype=int) * sp.S.Zero

    def _sympystr(self, printer):
        return "0"

    def _latex(self, printer):
        return "0"

    def _numpycode(self, printer):
        return f"np.zeros_like({printer._print(self.args[0])})"


# ---------------------------------------------------------------------------------------------
# Images: arrays of shape (N, C, H, W). Sizes, strides and paddings are (height, width) pairs.


class SumAxes(ArrayFunction):
    """Sum over the given axes, kept as axes of length one or dropped: the per-channel sums of
    an image batch (axes 0, 2, 3), its per-sample sums (axes 1, 2, 3)."""

    nargs = 3
    linear = True
    arrays = 1

    @staticmethod
    def numpy(a, axes, keepdims):
        return np.sum(a, axis=axes, keepdims=bool(keepdims))

    @classmethod
    def shape(cls, a, axes, keepdims):
        return tuple(sp.S.One if k in axes else d for k, d in enumerate(a) if keepdims or k not in axes)

    def vjp(self, index, g, shape):
        if not self.args[2] and shape(g) != ():  # the summed axes put back as ones: g broadcasts over them
            from .ops import KeepDims
            return KeepDims(g, *self.args[1])
        return g  # it broadcasts back over the summed axes

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(SumAxes(a, sp.Tuple(0, 2, 3), sp.S.One), {"a": (2, 3, 2, 2)}, {}),
                (SumAxes(a, sp.Tuple(1, 2, 3), sp.S.Zero), {"a": (2, 3, 2, 2)}, {})]

    def _sympystr(self, printer):
        a, axes, keepdims = self.args
        return f"sum_{_axis_letters(axes)}({printer._print(a)})"

    def _latex(self, printer):
        a, axes, keepdims = self.args
        return (r"\sum_{" + ",".join(_axis_letters((k,)) for k in axes) + "} "
                + printer.parenthesize(a, PRECEDENCE["Mul"], strict=False))

    def _numpycode(self, printer):
        a, axes, keepdims = self.args
        axis = "(" + ", ".join(str(int(k)) for k in axes) + ("," if len(axes) == 1 else "") + ")"
        return printer._method_target(a) + f".sum(axis={axis}" + (", keepdims=True)" if keepdims else ")")

class PerChannel(ArrayFunction):
    """A vector of one value per channel, (C,) -> (C, 1, 1): it broadcasts along the channel axis
    of an image batch (a convolution's bias, a batch normalization's gamma and beta)."""

    nargs = 1
    linear = True
    reduces = True

    @staticmethod
    def numpy(b):
        return b[:, None, None]

    @classmethod
    def shape(cls, b):
        return (b[0], sp.S.One, sp.S.One)

    def vjp(self, index, g, shape):
        """g as broadcast, (N, C, H, W) or any shape ending in (C, h, w): summed over every axis
        but the channel axis (the third from the end)."""
        ndim = len(shape(g))
        axes = [k for k in range(ndim) if k != ndim - 3]
        return SumAxes(g, sp.Tuple(*axes), sp.S.Zero)

    @staticmethod
    def samples():
        b, x = sp.symbols("b x")
        return [(PerChannel(b) * x, {"b": (3,), "x": (2, 3, 2, 2)}, {})]

    def _sympystr(self, printer):  # b[c]: one value per channel, along axis 1
        return printer._print(self.args[0]) + "[c]"

    def _latex(self, printer):  # b_c, broadcast along the channel axis
        return printer._print(self.args[0])

    def _numpycode(self, printer):  # (C,) -> (C, 1, 1): along the channel axis of (N, C, H, W)
        return printer._method_target(self.args[0]) + "[:, None, None]"

class Flatten(ArrayFunction):
    """(N, C, H, W) -> (N, C*H*W), C order: an image batch as rows for a dense layer."""

    nargs = 1
    linear = True

    @staticmethod
    def numpy(a):
        return np.reshape(a, (np.shape(a)[0], -1))

    @classmethod
    def shape(cls, a):
        return (a[0], sp.Mul(*a[1:]))

    def vjp(self, index, g, shape):
        return Unflatten(g, sp.Tuple(*shape(self.args[0])[1:]))

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(Flatten(a), {"a": (2, 3, 2, 2)}, {})]

    def _sympystr(self, printer):
        return _call(printer, "flatten", self.args)

    def _latex(self, printer):
        return _operator(printer, "flatten", self.args[0])

    def _numpycode(self, printer):  # (N, C, H, W) -> (N, C*H*W)
        a = self.args[0]
        return printer._method_target(a) + f".reshape({printer._method_target(a)}.shape[0], -1)"

class Unflatten(ArrayFunction):
    """(N, C*H*W) -> (N, C, H, W): rows back into images (the gradient of a flatten)."""

    named = True
    nargs = 2
    linear = True
    arrays = 1

    @staticmethod
    def numpy(g, image):
        return np.reshape(g, (np.shape(g)[0], *image))

    @classmethod
    def shape(cls, g, image):
        return (g[0], *image)

    def vjp(self, index, g, shape):
        return Flatten(g)

    @staticmethod
    def samples():
        g = sp.Symbol("g")
        return [(Unflatten(g, sp.Tuple(3, 2, 2)), {"g": (2, 12)}, {})]

    def _sympystr(self, printer):
        g, image = self.args
        return f"unflatten({printer._print(g)}, {tuple(int(d) for d in image)})"

    def _latex(self, printer):
        return _operator(printer, "unflatten", self.args[0])

    def _numpycode(self, printer):  # (N, C*H*W) -> (N, C, H, W)
        g, image = self.args
        return printer._method_target(g) + f".reshape(-1, {', '.join(str(int(d)) for d in image)})"

class Columns(ArrayFunction):
    """a[..., start:stop]: a block of the last axis (an LSTM's gate); its gradient pads g with
    zeros back to the full width (`PadColumns`), and the blocks of one array together join
    (`symbolic.backward`: the pads of blocks that tile the width are one concatenation)."""

    arrays = 1
    linear = True

    @staticmethod
    def numpy(a, start, stop):
        return np.asarray(a)[..., start:stop]

    @classmethod
    def shape(cls, a, start, stop):
        return (*a[:-1], sp.Integer(stop - start))

    def vjp(self, index, g, shape):
        start, stop = (int(v) for v in self.args[1:])
        return PadColumns(g, start, stop, shape(self.args[0])[-1])

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(Columns(a, 0, 2), {"a": (3, 6)}, {}), (Columns(a, 2, 5), {"a": (2, 5)}, {})]

    def _sympystr(self, printer):
        start, stop = (int(v) for v in self.args[1:])
        return printer.parenthesize(self.args[0], PRECEDENCE["Atom"], strict=True) + f"[..., {start or ''}:{stop}]"

    def _latex(self, printer):
        start, stop = (int(v) for v in self.args[1:])
        return (r"\left[" + printer._print(self.args[0]) + r"\right]_{:,\," + f"{start + 1}" + r"\dots " + f"{stop}"
                + "}")

    def _numpycode(self, printer):
        start, stop = (int(v) for v in self.args[1:])
        return printer._method_target(self.args[0]) + f"[..., {start or ''}:{stop}]"


class PadColumns(ArrayFunction):
    """g in the columns start:stop of zeros `width` wide: the gradient of a block of columns."""

    arrays = 1
    linear = True

    @staticmethod
    def numpy(g, start, stop, width):
        g = np.asarray(g)
        out = np.zeros((*g.shape[:-1], width), dtype=g.dtype)
        if g.dtype == object:
            out[...] = sp.S.Zero
        out[..., start:stop] = g
        return out

    @classmethod
    def shape(cls, g, start, stop, width):
        return (*g[:-1], sp.Integer(width))

    def vjp(self, index, g, shape):
        start, stop = (int(v) for v in self.args[1:3])
        return Columns(g, start, stop)

    @staticmethod
    def samples():
        g = sp.Symbol("g")
        return [(PadColumns(g, 1, 3, 5), {"g": (2, 2)}, {})]

    def _sympystr(self, printer):
        start, stop, width = (int(v) for v in self.args[1:])
        return f"pad({printer._print(self.args[0])}, {start}:{stop} of {width})"

    def _latex(self, printer):
        start, stop, width = (int(v) for v in self.args[1:])
        return (r"\operatorname{pad}_{" + f"{start + 1}" + r"\dots " + f"{stop}" + r"}\left("
                + printer._print(self.args[0]) + r"\right)")

    def _numpycode(self, printer):
        start, stop, width = (int(v) for v in self.args[1:])
        printer.helpers.add("_pad_columns")
        return f"_pad_columns({printer._print(self.args[0])}, {start}, {stop}, {width})"


class SwapLast(ArrayFunction):
    """A with its last two axes swapped (a batch of matrices, each transposed): K^T in Q K^T."""

    nargs = 1
    linear = True

    @classmethod
    def eval(cls, a):
        if isinstance(a, SwapLast):
            return a.args[0]
        return super().eval(a)

    @staticmethod
    def numpy(a):
        return np.swapaxes(np.asarray(a), -1, -2)

    @classmethod
    def shape(cls, a):
        return (*a[:-2], a[-1], a[-2])

    def vjp(self, index, g, shape):
        return SwapLast(g)

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(SwapLast(a), {"a": (2, 3, 4)}, {})]

    def _sympystr(self, printer):
        return _call(printer, "swap_last", self.args)

    def _latex(self, printer):
        return printer.parenthesize(self.args[0], PRECEDENCE["Pow"], strict=False) + r"^{\top}"

    def _numpycode(self, printer):
        return f"np.swapaxes({printer._print(self.args[0])}, -1, -2)"


class BatchMatmul(ArrayFunction):
    """A @ B for batches of matrices (N, T, k) @ (N, k, m): attention's Q K^T and P V."""

    nargs = 2
    precedence = PRECEDENCE["Mul"] - 1

    @staticmethod
    def numpy(a, b):
        return np.matmul(np.asarray(a), np.asarray(b))

    @classmethod
    def shape(cls, a, b):
        return (*a[:-1], b[-1])

    def vjp(self, index, g, shape):
        a, b = self.args
        return BatchMatmul(g, SwapLast(b)) if index == 0 else BatchMatmul(SwapLast(a), g)

    @staticmethod
    def samples():
        a, b = sp.symbols("a b")
        return [(BatchMatmul(a, b), {"a": (2, 3, 4), "b": (2, 4, 3)}, {})]

    def _sympystr(self, printer):
        left, right = self.args
        return (printer.parenthesize(left, PRECEDENCE["Mul"], strict=True) + " @ "
                + printer.parenthesize(right, PRECEDENCE["Mul"], strict=False))

    def _latex(self, printer):
        return " ".join(printer.parenthesize(arg, PRECEDENCE["Mul"], strict=False) for arg in self.args)

    def _numpycode(self, printer):
        return f"np.matmul({printer._print(self.args[0])}, {printer._print(self.args[1])})"


class CausalSoftmax(_Normalized):
    """softmax over the last axis of scores (..., T, T) where entry (i, j) with j > i is left out
    (0): a step attends to itself and the steps before it (PyTorch's causal mask of -inf)."""

    @staticmethod
    def numpy(s):
        s = np.asarray(s)
        size = s.shape[-1]
        keep = np.tril(np.ones((size, size), dtype=bool))
        e = np.where(keep, _elementwise(sp.exp, np.where(keep, s, 0)), 0)
        if e.dtype != object:
            e = e.astype(float)
        return e / np.sum(e, axis=-1, keepdims=True)

    @staticmethod
    def samples():
        a = sp.Symbol("a")
        return [(CausalSoftmax(a), {"a": (2, 3, 3)}, {})]

    def _sympystr(self, printer):
        return _call(printer, "causal_softmax", self.args)

    def _latex(self, printer):
        return r"\operatorname{softmax}_{j \leq i}\left(" + printer._print(self.args[0]) + r"\right)"

    def _numpycode(self, printer):
        printer.helpers.add("_causal_softmax")
        return f"_causal_softmax({printer._print(self.args[0])})"


def _conv_size(size, kernel, stride, padding) -> int:
    """An output's height (or width): (H + 2 padding - kernel) // stride + 1."""
    return (int(size) + 2 * padding - kernel) // stride + 1


def _padded(x, padding):
    """An object array of images with `padding` zero rows and columns on each side."""
    ph, pw = padding
    out = np.full(x.shape[:2] + (x.shape[2] + 2 * ph, x.shape[3] + 2 * pw), sp.S.Zero, dtype=object)
    out[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x
    return out


def _window(i, j, kernel, stride) -> tuple:
    """The slice of the (padded) image that output pixel (i, j) sees."""
    return (slice(i * stride[0], i * stride[0] + kernel[0]), slice(j * stride[1], j * stride[1] + kernel[1]))


class Conv2d(ArrayFunction):
    """Cross-correlation of images x (N, C, H, W) with filters W (F, C, kh, kw), zero padding:

        out[n, f, i, j] = sum over c, p, q of W[f, c, p, q] x_pad[n, c, i sh + p, j sw + q]

    (PyTorch's `conv2d`), of shape (N, F, H', W'), H' = (H + 2 ph - kh) // sh + 1; the kernel
    (kh, kw) is W's, and a setting of its own too (code shares the windows of x by it)."""

    nargs = 5
    linear = True
    arrays = 2
    rounds = True  # the code sums by BLAS, in its own order

    @staticmethod
    def numpy(x, W, kernel, stride, padding):
        x = _padded(x, padding)
        out = np.empty((x.shape[0], W.shape[0], (x.shape[2] - kernel[0]) // stride[0] + 1,
                        (x.shape[3] - kernel[1]) // stride[1] + 1), dtype=object)
        for n, f, i, j in np.ndindex(out.shape):
            out[n, f, i, j] = np.sum(x[(n, slice(None)) + _window(i, j, kernel, stride)] * W[f])
        return out

    @classmethod
    def shape(cls, x, W, kernel, stride, padding):
        return (x[0], W[0]) + tuple(_conv_size(x[k + 2], kernel[k], stride[k], padding[k]) for k in (0, 1))

    def vjp(self, index, g, shape):
        x, W, kernel, stride, padding = self.args
        if index == 0:  # each input pixel gathers delta through every filter entry that saw it
            return Conv2dInputGrad(g, W, stride, padding, sp.Tuple(*shape(x)[2:]))
        return Conv2dWeightGrad(x, g, stride, padding, kernel)

    @staticmethod
    def samples():
        x, W = sp.symbols("x W")
        return [(Conv2d(x, W, pair(3), pair(1), pair(1)), {"x": (2, 2, 4, 4), "W": (3, 2, 3, 3)}, {}),
                (Conv2d(x, W, pair(2), pair(2), pair(0)), {"x": (1, 2, 5, 5), "W": (2, 2, 2, 2)}, {})]

    def _sympystr(self, printer):
        return _image_call(printer, self, "conv2d", "", "stride", "padding")

    def _latex(self, printer):
        return _operator(printer, "conv", *self.split()[0])

    def _numpycode(self, printer):  # codegen.printer.code_forms shares the columns with the weight gradient
        x, W, kernel, stride, padding = self.args
        printer.need("_conv2d")
        printer.need("_im2col")
        settings = ", ".join(f"{name}={tuple(int(d) for d in value)!r}"
                             for name, value in zip(("kernel", "stride", "padding"), (kernel, stride, padding)))
        return f"_conv2d(_im2col({printer._print(x)}, {settings}), {printer._print(W)})"

class Conv2dInputGrad(ArrayFunction):
    """dL/dx of a convolution, given g = dL/d(out): the full convolution of g with the flipped
    filters, stride and padding accounted for:

        dx[n, c, h, w] = sum over f, i, j, p, q with i sh + p = h + ph, j sw + q = w + pw
                         of g[n, f, i, j] W[f, c, p, q]"""

    named = True
    nargs = 5
    linear = True
    arrays = 2

    @staticmethod
    def numpy(g, W, stride, padding, size):
        kernel = W.shape[2:]
        dx = np.full((g.shape[0], W.shape[1], size[0] + 2 * padding[0], size[1] + 2 * padding[1]), sp.S.Zero,
                     dtype=object)
        for n, f, i, j in np.ndindex(g.shape):
            dx[(n, slice(None)) + _window(i, j, kernel, stride)] += g[n, f, i, j] * W[f]
        return dx[:, :, padding[0]:padding[0] + size[0], padding[1]:padding[1] + size[1]]

    @classmethod
    def shape(cls, g, W, stride, padding, size):
        return (g[0], W[1]) + tuple(size)

    def _sympystr(self, printer):
        return _image_call(printer, self, "conv2d_input_grad", "stride", "padding")

    def _latex(self, printer):
        return _operator(printer, "conv", *self.split()[0], transposed=True)

    def _numpycode(self, printer):
        return printer._helper("_conv2d_input_gradient", self, "stride", "padding", "size")

class Conv2dWeightGrad(ArrayFunction):
    """dL/dW of a convolution, given g = dL/d(out): the correlation of the input with g,

        dW[f, c, p, q] = sum over n, i, j of g[n, f, i, j] x_pad[n, c, i sh + p, j sw + q]"""

    nargs = 5
    arrays = 2

    @staticmethod
    def numpy(x, g, stride, padding, kernel):
        x = _padded(x, padding)
        dW = np.full((g.shape[1], x.shape[1]) + tuple(kernel), sp.S.Zero, dtype=object)
        for n, f, i, j in np.ndindex(g.shape):
            dW[f] += g[n, f, i, j] * x[(n, slice(None)) + _window(i, j, kernel, stride)]
        return dW

    @classmethod
    def shape(cls, x, g, stride, padding, kernel):
        return (g[1], x[1]) + tuple(kernel)

    def _sympystr(self, printer):
        return _image_call(printer, self, "conv2d_weight_grad", "stride", "padding")

    def _latex(self, printer):
        return _operator(printer, "corr", *self.split()[0])

class _Pool2d(ArrayFunction):
    """A pooling: one value from each window, out[n, c, i, j] = reduce over p, q of
    a[n, c, i sh + p, j sw + q] (`window` says how)."""

    nargs = 3
    arrays = 1

    @classmethod
    def numpy(cls, a, size, stride):
        out = np.empty(a.shape[:2] + _pooled(a.shape[2:], size, stride), dtype=object)
        for n, c, i, j in np.ndindex(out.shape):
            out[n, c, i, j] = cls.window(a[(n, c) + _window(i, j, size, stride)])
        return out

    @classmethod
    def shape(cls, a, size, stride):
        return tuple(a[:2]) + _pooled(a[2:], size, stride)


class MaxPool2d(_Pool2d):
    """The maximum of each window: out[n, c, i, j] = max over p, q of a[n, c, i sh + p, j sw + q]."""

    @staticmethod
    def window(entries):
        return sp.Max(*entries.ravel())

    def vjp(self, index, g, shape):
        a, size, stride = self.args
        return MaxPool2dGrad(a, self, g, size, stride)

    @staticmethod
    def samples():
        x = sp.Symbol("x")
        return [(MaxPool2d(x, pair(2), pair(2)), {"x": (2, 2, 4, 4)}, {}),
                (MaxPool2d(x, pair(3), pair(1)), {"x": (1, 2, 4, 5)}, {})]

    def _sympystr(self, printer):
        return _image_call(printer, self, "max_pool2d", "size", "stride")

    def _latex(self, printer):
        return _operator(printer, "maxpool", *self.split()[0])

    def _numpycode(self, printer):
        return printer._helper("_max_pool2d", self, "size", "stride")

class MaxPool2dGrad(ArrayFunction):
    """dL/da of out = max-pooling(a), given g = dL/d(out): each window routes its g to the first
    maximum of the window in row-major order (a mask), overlapping windows add up:

        da[n, c, h, w] = sum over i, j of g[n, c, i, j] [(h, w) is the first argmax of window (i, j)]

    Its arguments are a, out (the maxima, which the code finds again in each window) and g."""

    named = True
    nargs = 5
    arrays = 3

    @staticmethod
    def numpy(a, out, g, size, stride):
        da = np.full(a.shape, sp.S.Zero, dtype=object)
        for n, c, i, j in np.ndindex(g.shape):
            rows, cols = _window(i, j, size, stride)
            window = a[n, c, rows, cols]
            first = max(np.ndindex(window.shape), key=lambda pq: (window[pq], -pq[0], -pq[1]))
            da[n, c, rows.start + first[0], cols.start + first[1]] += g[n, c, i, j]
        return da

    @classmethod
    def shape(cls, a, out, g, size, stride):
        return a

    def _sympystr(self, printer):  # a and g: the maxima are a's
        return _image_call(printer, self, "max_pool2d_grad", "size", "stride", skip=1)

    def _latex(self, printer):
        a, largest, g = self.split()[0]
        return _operator(printer, "maxpool", a, g, transposed=True)

    def _numpycode(self, printer):
        return printer._helper("_max_pool2d_gradient", self, "size", "stride")

class AvgPool2d(_Pool2d):
    """The mean of each window: out[n, c, i, j] = sum over p, q of a[n, c, i sh + p, j sw + q] / (h w)."""

    linear = True
    rounds = True  # the code sums the windows in its own order

    @staticmethod
    def window(entries):
        return np.sum(entries) / entries.size

    def vjp(self, index, g, shape):
        a, size, stride = self.args
        return AvgPool2dGrad(g, size, stride, sp.Tuple(*shape(a)[2:]))

    @staticmethod
    def samples():
        x = sp.Symbol("x")
        return [(AvgPool2d(x, pair(2), pair(2)), {"x": (2, 2, 4, 4)}, {}),
                (AvgPool2d(x, pair(3), pair(1)), {"x": (1, 2, 4, 5)}, {})]

    def _sympystr(self, printer):
        return _image_call(printer, self, "avg_pool2d", "size", "stride")

    def _latex(self, printer):
        return _operator(printer, "avgpool", *self.split()[0])

    def _numpycode(self, printer):
        return printer._helper("_avg_pool2d", self, "size", "stride")

class AvgPool2dGrad(ArrayFunction):
    """dL/da of an average pooling, given g = dL/d(out): every entry of each window receives
    its g / (h w), overlapping windows add up."""

    named = True
    nargs = 4
    linear = True
    arrays = 1

    @staticmethod
    def numpy(g, size, stride, image):
        da = np.full(g.shape[:2] + tuple(image), sp.S.Zero, dtype=object)
        for n, c, i, j in np.ndindex(g.shape):
            da[(n, c) + _window(i, j, size, stride)] += g[n, c, i, j] / (size[0] * size[1])
        return da

    @classmethod
    def shape(cls, g, size, stride, image):
        return tuple(g[:2]) + tuple(image)

    def _sympystr(self, printer):
        return _image_call(printer, self, "avg_pool2d_grad", "size", "stride")

    def _latex(self, printer):
        return _operator(printer, "avgpool", *self.split()[0], transposed=True)

    def _numpycode(self, printer):
        return printer._helper("_avg_pool2d_gradient", self, "size", "stride", "shape")

def _pooled(image, size, stride) -> tuple:
    return tuple(_conv_size(image[k], size[k], stride[k], 0) for k in (0, 1))


def _setting(arg):
    """A size setting of an operation (stride, padding, a shape) as Python ints."""
    return tuple(int(d) for d in arg) if isinstance(arg, sp.Tuple) else int(arg)


def pair(value) -> sp.Tuple:
    """An int or a pair of ints as a SymPy pair: an operation's (height, width) setting."""
    return sp.Tuple(*value) if isinstance(value, (tuple, list, sp.Tuple)) else sp.Tuple(value, value)


def broadcast(*shapes) -> tuple:
    """NumPy's broadcasting of shapes whose lengths may be symbols (the batch size N)."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(ndim):
        dims = {s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0}
        dims = {sp.sympify(d) for d in dims} - {sp.S.One}
        if len(dims) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        out.append(dims.pop() if dims else sp.S.One)
    return tuple(out)


def shape_of(expr, shapes: dict) -> tuple:
    """The shape of an array expression, `shapes` giving those of its symbols (scalars that are
    not arrays, such as the batch size N, need not be given)."""
    if expr in shapes:
        return shapes[expr]
    if isinstance(expr, OneHot):
        return shape_of(expr.args[0], shapes) + (expr.args[1],)
    if isinstance(expr, BroadcastTo):
        return tuple(expr.args[1:])
    if isinstance(expr, ArrayFunction):
        return expr.result_shape(lambda e: shape_of(e, shapes))
    if expr.is_Symbol and expr != BATCH:
        raise KeyError(f"no shape known for the array {expr}")
    if expr.is_Atom:  # a number, the batch size, true and false
        return ()
    return broadcast(*(shape_of(arg, shapes) for arg in expr.args))


def _elementwise(func, *arrays):
    result = np.vectorize(func, otypes=[object])(*arrays)
    return result if np.ndim(result) else result[()]


_BINARY = {sp.Add: operator.add, sp.Mul: operator.mul}


def evaluate(expr: sp.Expr, env: dict):
    """The value of an array expression, `env` mapping its symbols to (object) NumPy arrays.

    With arrays of SymPy numbers the result is exact: this is how the matrix-level formulas are
    compared with the element-level oracle.
    """
    if expr in env:
        return env[expr]
    if expr.is_Number:
        return expr
    if isinstance(expr, ArrayFunction):
        return expr.value(lambda e: evaluate(e, env))
    if type(expr) in _BINARY:
        return reduce(_BINARY[type(expr)], (evaluate(arg, env) for arg in expr.args))
    if expr.is_Pow:
        base, exponent = (evaluate(arg, env) for arg in expr.args)
        return _elementwise(lambda b, e: b**e, base, exponent)
    if expr.atoms(ArrayFunction) and (isinstance(expr, sp.Function) or expr.is_Relational):
        args = [evaluate(arg, env) for arg in expr.args]  # an elementwise function of array operations
        return _elementwise(lambda *v: expr.func(*v), *args)
    if expr.atoms(ArrayFunction):
        raise ValueError(f"cannot evaluate {expr} elementwise")
    symbols = sorted(expr.free_symbols, key=str)
    return _elementwise(lambda *v: expr.xreplace(dict(zip(symbols, v))),
                        *(env[s] for s in symbols))


# Every operation of this module that carries its own samples and printing, for the one test
# loop over all operations (`symbolic.ops.OPERATIONS`, `tests/test_ops.py`).
OPERATIONS = (Matmul, Transposed, Outer, SumRows, Total, RowSum, Softmax, LogSoftmax, OneHot, BroadcastTo, SumAxes,
              PerChannel, Flatten, Unflatten, Columns, PadColumns, SwapLast, BatchMatmul, CausalSoftmax, Conv2d,
              MaxPool2d, AvgPool2d)
GRADIENTS = (Conv2dInputGrad, Conv2dWeightGrad, MaxPool2dGrad, AvgPool2dGrad, ZerosLike, StepsOuter)  # no gradient of their own: tested
# through the operations they are the gradients of
