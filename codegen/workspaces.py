"""Workspaces and in-place arithmetic: where the large intermediates of a generated function live.

A line `name = expression` is printed as it reads, a new array on every call, unless the plan
places it:

    Buffer    computed into a buffer kept between calls, `out=work.empty(name, shape, dtype)`
              (`runtime._Workspace`): an operation that takes `out` (im2col, a convolution, a
              pooling and its gradient, a ReLU or tanh); a sum with such an operation as a term
              computes it into the buffer and adds the rest in place
              (z1 = _conv2d(...); z1 += b1[:, None, None])
    InPlace   a product of an array of the call's own (in a buffer, or new) that no later line
              reads, and one mask or number (which cannot change its dtype), or a ReLU or tanh of
              such an array, computed in that array's memory:
              delta1 = np.multiply(dL_da1, (z1 > 0), out=dL_da1); a1 = np.tanh(z1, out=z1)
    Split     a sum or product with a matrix product as a term or factor (a new array of the
              line's shape): the product first, the rest added or multiplied in place, as one
              writes it by hand: z1 = np.dot(x, W1); z1 += b1 (one new array, not two)

Buffers hold lines of three axes or more (images and sequences: the megabytes whose pages a fresh
allocation faults in on every call; a dense layer's (N, units) is a new array on each call, and
the tiny networks keep nothing); in place and split are lines of any shape but a scalar. Placed
lines are neither a result nor what a result is a view of (a reshape, a transpose, an index):
what a call returns is always its own (a split line may be a result: it is a new array). Functions
with a loop over time are left as they are.

In place and split keep the dtype NumPy's promotion gives only when the arrays share one: the
functions that are planned check their arguments (`_converted` computes float arrays of mixed
dtypes, integers and booleans in one common dtype), and with VALIDATE = False the arguments
must be float arrays of one dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..symbolic import arrays
from ..symbolic.arrays import BATCH, AvgPool2d, MaxPool2d, MaxPool2dGrad, broadcast, shape_of
from ..symbolic.rules import ElementwiseBase
from ..symbolic.notation import array_order
from .printer import (GradientPrinter, _ConvColumns, _Im2col, _is_step, _PooledIm2col, _PooledMax, _PooledMaxGrad,
                      _WeightColumns)

OUT = (_Im2col, _ConvColumns, MaxPool2d, MaxPool2dGrad, AvgPool2d, _PooledMax, _PooledMaxGrad)  # operations that take `out`
ELEMENTWISE = ("relu", "tanh")  # activations whose ufunc (np.maximum, np.tanh) takes `out`
FRESH = OUT + (  # a new array, never a view of an operand (anything else may be one: a reshape)
    sp.Add, sp.Mul, sp.Pow, sp.Max, sp.Min, sp.Piecewise, sp.core.relational.Relational, ElementwiseBase,
    _WeightColumns, arrays.Matmul, arrays.Outer, arrays.StepsOuter, arrays.SumRows, arrays.SumAxes, arrays.Total,
    arrays.RowSum, arrays.LogSoftmax, arrays.OneHot, arrays.PadColumns, arrays.BatchMatmul, arrays.Conv2d,
    arrays.Conv2dInputGrad, arrays.Conv2dWeightGrad, arrays.AvgPool2dGrad, arrays._Normalized)
ARITHMETIC = (sp.Add, sp.Mul, sp.Pow, sp.Max, sp.Min, ElementwiseBase)  # a ufunc's new array (im2col of a 1x1
# kernel may be a view of its input: a helper's result is not counted new unless in a buffer)
SMALLEST_NDIM = 3  # buffers: lines of this many axes or more
SMALLEST_IN_PLACE_NDIM = 1  # in place and split: lines of this many axes or more (not scalars)


@dataclass(frozen=True)
class Buffer:
    shape: tuple
    dtype: tuple  # (arrays, float literal): the dtype NumPy's promotion gives the line, np.result_type of
    op: sp.Expr  # what writes into it: the line's expression, or the first term of its sum


@dataclass(frozen=True)
class InPlace:
    operand: sp.Symbol


@dataclass(frozen=True)
class Split:
    first: sp.Expr  # the matrix product computed first, a new array the rest is applied to


def plan(lines: list, results, shapes: dict, data=frozenset()) -> dict:
    """symbol -> Buffer or InPlace for the lines ((symbol, expression) pairs in order) that are
    placed; `results`: the symbols the function returns; `shapes`: the arrays' shapes (those of
    the lines are worked out here); `data`: names of integer arrays (class labels, tokens)."""
    from ..symbolic.scan import Scan, ScanGrad
    if any(isinstance(expr, Scan) or expr.has(ScanGrad) for _, expr in lines):
        return {}
    shapes = line_shapes(lines, shapes)
    escaping = _escaping(lines, results)
    placed = {}
    for i, (symbol, expr) in enumerate(lines):
        shape = shapes.get(symbol)
        if shape is None or len(shape) < min(SMALLEST_NDIM, SMALLEST_IN_PLACE_NDIM):
            continue
        if symbol not in escaping and len(shape) >= SMALLEST_IN_PLACE_NDIM:
            owned = {s for s in placed if s not in escaping} | {  # new float arrays of this call, not returned
                s for s, e in lines[:i] if s not in escaping and isinstance(e, ARITHMETIC) and not _is_step(e)}
            operand = _reusable(expr, owned, lines[i + 1:], shape, shapes)
            if operand is not None:
                placed[symbol] = InPlace(operand)
                continue
        if symbol not in escaping and len(shape) >= SMALLEST_NDIM and (op := _into(expr, shape, shapes)) is not None:
            placed[symbol] = Buffer(shape, _dtype(op, expr, data), op)
        elif len(shape) >= SMALLEST_IN_PLACE_NDIM and (first := _split(expr, shape, shapes, data)) is not None:
            placed[symbol] = Split(first)
    return placed


def _dtype(op, expr, data) -> tuple:
    """(arrays, float literal): the line's dtype as NumPy's promotion gives it without a buffer,
    np.result_type(*arrays[, 1.0]): a copy (im2col) and a maximum (max pooling) keep their
    input's, a division (average pooling), a ReLU's np.maximum(z, 0.0) and np.tanh make integers
    float, a product and a sum promote their operands."""
    if isinstance(op, (_Im2col, MaxPool2d, _PooledMax)):
        arrays, literal = op.args[:1], False
    elif isinstance(op, (MaxPool2dGrad, _PooledMaxGrad)):
        arrays, literal = (op.args[0], op.args[2]), False  # np.result_type(a, delta), as the helper's own
    elif isinstance(op, (AvgPool2d, ElementwiseBase)):
        arrays, literal = op.args[:1], True
    else:  # a convolution, and the rest of its sum
        arrays, literal = expr.args if expr.is_Add else op.args, False
    names = sorted({s.name for a in arrays for s in a.free_symbols if s != BATCH and s.name not in data})
    return tuple(names), literal


def _into(expr, shape, shapes):
    """The operation of `expr` that can write into a buffer of `shape`: expr itself, or the first
    term of a sum (the rest then added in place); None if there is none."""
    if isinstance(expr, OUT) or isinstance(expr, ElementwiseBase) and expr.rule.name in ELEMENTWISE:
        return expr
    if expr.is_Add:
        first = next((term for term in expr.args if isinstance(term, OUT)), None)
        if first is not None and _shape(first, shapes) == shape:
            return first
    return None


def _split(expr, shape, shapes, data):
    """The matrix product a sum or product `expr` is computed from (then the rest in place), of
    the line's shape; None if there is none, or if an array of whole numbers (class labels,
    tokens) takes part, whose dtype is not the others'. The same operations in the same order
    as the plain line, so the same bits: a sum's first or second term (its terms are then added
    one by one, in the order the plain line adds them: a + b = b + a exactly); one of a product
    of two factors, neither a division."""
    if any(s.name in data for s in expr.free_symbols):
        return None
    if expr.is_Add:
        candidates = array_order(expr.as_ordered_terms(), GradientPrinter.products)[:2]
    elif expr.is_Mul and len(expr.args) == 2 and not any(arg.is_Pow and arg.exp.is_negative for arg in expr.args):
        candidates = expr.args
    else:
        return None
    return next((arg for arg in candidates if isinstance(arg, arrays.Matmul) and _shape(arg, shapes) == shape), None)


def _reusable(expr, owned, later, shape, shapes):
    """The operand whose memory `expr` can be computed in: a factor of a product of it and a mask
    or a number, or the argument of a ReLU or tanh, of the line's shape, a float array of this
    call's own (`owned`: in a buffer, or new) that no later line reads."""
    if isinstance(expr, ElementwiseBase) and expr.rule.name in ELEMENTWISE and len(expr.args) == 1:
        argument = expr.args[0]
        if argument in owned and _shape(argument, shapes) == shape and not any(
                argument in e.free_symbols for _, e in later):
            return argument
        return None
    if not expr.is_Mul or len(expr.args) != 2:  # one multiplication, the same bits either way round
        return None  # ((2/3)*t0)*mask is not t0*((2/3)*mask) in float32: a float64 mask times t0
    for factor in expr.args:
        (other,) = (f for f in expr.args if f is not factor)
        if (factor in owned and _shape(factor, shapes) == shape
                and (other.is_Number or other.is_Relational or _is_step(other))
                and not any(factor in e.free_symbols for _, e in later)):
            return factor
    return None


def line_shapes(lines: list, shapes: dict) -> dict:
    """`shapes` with those of the lines as the code computes them (the code forms, a convolution
    in pooling order, included), where a rule gives one."""
    shapes = dict(shapes)
    for symbol, expr in lines:
        shape = _shape(expr, shapes)
        if shape is not None:
            shapes[symbol] = shape
    return shapes


def _escaping(lines, results) -> set:
    """The results, and every line a result may be a view of (through reshapes, transposes,
    indexing: any operation not known to make a new array)."""
    exprs = dict(lines)
    escaping, todo = set(results), list(results)
    while todo:
        expr = exprs.get(todo.pop())
        if expr is None or isinstance(expr, FRESH):
            continue
        for symbol in expr.free_symbols - escaping:
            escaping.add(symbol)
            todo.append(symbol)
    return escaping


def _shape(expr, shapes):
    """The shape of a line's expression, the code forms (`_Im2col`, `_ConvColumns`) included;
    None where no rule gives it."""
    try:
        if isinstance(expr, _PooledIm2col):  # (N, C, kh, kw, h*w, H'/h * W'/w)
            n, channels, kh, kw, out_h, out_w = _shape(_Im2col(*expr.args[:4]), shapes)
            h, w = (int(d) for d in expr.args[4])
            return (n, channels, kh, kw, h * w, (out_h // h) * (out_w // w))
        if isinstance(expr, _PooledMax):
            return _shape(expr.args[0], shapes)[:2] + tuple(int(d) for d in expr.args[1])
        if isinstance(expr, _PooledMaxGrad):
            return _shape(expr.args[0], shapes)
        if isinstance(expr, _Im2col):
            x, kernel, stride, padding = expr.args
            n, channels, height, width = shapes[x] if x in shapes else _shape(x, shapes)
            (kh, kw), (sh, sw), (ph, pw) = (tuple(int(d) for d in t) for t in (kernel, stride, padding))
            return (n, channels, kh, kw, (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1)
        if isinstance(expr, _ConvColumns):
            columns, W = (_shape(arg, shapes) for arg in expr.args)
            return (columns[0], W[0], columns[4], columns[5])
        if expr.has(_Im2col, _ConvColumns):  # a sum or product of one (a convolution plus its bias)
            parts = [_shape(arg, shapes) for arg in expr.args] if expr.is_Add or expr.is_Mul else [None]
            return None if None in parts else broadcast(*parts)
        return shape_of(expr, shapes)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):  # no rule, or an unknown array
        return None
