"""Whole-array operations, as SymPy functions.

The matrix-level derivation writes every equation over whole arrays. A SymPy `Symbol` stands for
an array; `+`, `*`, `**`, `exp`, `log`, ... act elementwise with NumPy's broadcasting, so SymPy's
scalar algebra is exactly the algebra of those arrays. The few operations that are not
elementwise are the functions below: SymPy treats them as opaque, the printers know how to write
them, and `evaluate` knows how to compute them exactly on arrays of SymPy numbers.
"""

from __future__ import annotations

import operator
from functools import reduce

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE


class ArrayFunction(sp.Function):
    """An operation on whole arrays that is not elementwise."""

    linear = False  # f(c * A) == c * f(A) for a number c

    @classmethod
    def eval(cls, *args):
        if cls.linear:  # a numeric factor comes out: Total(a/5 - y/5) = Total(a - y)/5
            coeff, rest = args[0].as_coeff_Mul()
            if rest.is_Add:
                content, rest = rest.primitive()
                coeff *= content
            if coeff is not sp.S.One:
                return coeff * cls(rest, *args[1:])
        return None

    @staticmethod
    def numpy(*args):
        raise NotImplementedError


class Matmul(ArrayFunction):
    """Matrix product A @ B (matrix-vector in the column layout)."""

    nargs = 2
    precedence = PRECEDENCE["Mul"] - 1  # parenthesized inside elementwise products
    numpy = staticmethod(np.dot)


class Transposed(ArrayFunction):
    """A.T"""

    nargs = 1
    linear = True
    numpy = staticmethod(np.transpose)


class Outer(ArrayFunction):
    """Outer product of two vectors: u v^T."""

    nargs = 2
    numpy = staticmethod(np.outer)


class SumRows(ArrayFunction):
    """Sum over the batch axis (axis 0): a bias gradient in the row layout."""

    nargs = 1
    linear = True

    @staticmethod
    def numpy(a):
        return np.sum(a, axis=0)


class Total(ArrayFunction):
    """Sum of every element: a scalar."""

    nargs = 1
    linear = True

    @staticmethod
    def numpy(a):
        return np.sum(a)


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


class Softmax(ArrayFunction):
    """exp(z) / RowSum(exp(z)), over the last axis."""

    nargs = 1

    @staticmethod
    def numpy(z):
        e = _elementwise(sp.exp, z)
        return e / np.sum(e, axis=-1, keepdims=True)


class LogSoftmax(ArrayFunction):
    """log(softmax(z)) = z - log(RowSum(exp(z))), over the last axis."""

    nargs = 1

    @staticmethod
    def numpy(z):
        return z - _elementwise(sp.log, np.sum(_elementwise(sp.exp, z), axis=-1, keepdims=True))


class OneHot(ArrayFunction):
    """Integer labels as one-hot rows: OneHot(y, K)[i, k] = 1 if y[i] == k else 0."""

    nargs = 2

    @staticmethod
    def numpy(labels, classes):
        labels = np.asarray(labels)
        return (labels[..., None] == np.arange(int(classes))).astype(int) * sp.S.One


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
