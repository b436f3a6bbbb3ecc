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


class ArrayFunction(sp.Function):
    """An operation on whole arrays that is not elementwise."""

    linear = False  # f(c * A) == c * f(A) for a number c

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
        return Matmul(Transposed(A), g)


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


class Softmax(ArrayFunction):
    """exp(z) / RowSum(exp(z)), over the last axis."""

    nargs = 1

    @staticmethod
    def numpy(z):
        e = _elementwise(sp.exp, z)
        return e / np.sum(e, axis=-1, keepdims=True)

    def vjp(self, index, g, shape):
        return self * (g - RowSum(self * g))


class LogSoftmax(ArrayFunction):
    """log(softmax(z)) = z - log(RowSum(exp(z))), over the last axis."""

    nargs = 1

    @staticmethod
    def numpy(z):
        return z - _elementwise(sp.log, np.sum(_elementwise(sp.exp, z), axis=-1, keepdims=True))

    def vjp(self, index, g, shape):
        return g - Softmax(self.args[0]) * RowSum(g)


class OneHot(ArrayFunction):
    """Integer labels as one-hot rows: OneHot(y, K)[i, k] = 1 if y[i] == k else 0."""

    nargs = 2

    @staticmethod
    def numpy(labels, classes):
        labels = np.asarray(labels)
        return (labels[..., None] == np.arange(int(classes))).astype(int) * sp.S.One

    def vjp(self, index, g, shape):
        raise TypeError("class labels are not differentiated")


class BroadcastTo(ArrayFunction):
    """An array repeated to a larger shape (NumPy broadcasting made explicit): a gradient that
    reaches a whole array from a sum over some of its axes only."""

    @staticmethod
    def numpy(a, *shape):
        return np.broadcast_to(a, tuple(int(d) for d in shape))

    def vjp(self, index, g, shape):
        return g


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
        return type(expr).shape(*(shape_of(arg, shapes) for arg in expr.args))
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
        return type(expr).numpy(*(evaluate(arg, env) for arg in expr.args))
    if type(expr) in _BINARY:
        return reduce(_BINARY[type(expr)], (evaluate(arg, env) for arg in expr.args))
    if expr.is_Pow:
        base, exponent = (evaluate(arg, env) for arg in expr.args)
        return _elementwise(lambda b, e: b**e, base, exponent)
    if expr.atoms(ArrayFunction):
        raise ValueError(f"cannot evaluate {expr} elementwise")
    symbols = sorted(expr.free_symbols, key=str)
    return _elementwise(lambda *v: expr.xreplace(dict(zip(symbols, v))),
                        *(env[s] for s in symbols))
