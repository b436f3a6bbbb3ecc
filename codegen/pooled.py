"""A convolution computed in the order of the max pooling that follows it, as one writes a CNN by
hand: the im2col columns ordered by the pooling windows' offsets, so that the pooling and its
gradient read and write contiguous blocks rather than every other entry.

    t0 = _im2col(x, ..., pooled=(2, 2))           the columns of output pixel (2i + s, 2j + t)
                                                  at [..., 2s + t, i*W' + j]
    z1 = _conv2d(t0, W1); z1 += b1[:, None, None]  z1 (N, F, 4, H'*W'): the same entries, reordered
    a1 = np.maximum(z1, 0.0, out=z1)               elementwise: the order does not matter
    a2 = _max_pool2d_pooled(a1, shape=(H', W'))    three maxima of contiguous blocks
    delta1 = _max_pool2d_pooled_gradient(a1, a2, g)
    dL_dW1 = _conv2d_weight_gradient(t0, delta1)   a sum over the pixels, in any order
    dL_db1 = delta1.sum(axis=(0, 2, 3))

It applies to a convolution whose output, and everything computed from it elementwise, is read
only by elementwise lines, one max pooling whose windows tile it exactly (stride = size, not 1x1,
the output's height and width multiples of it), that pooling's gradient, and the weight and bias
gradients (as they are, or within a sum: an L2 term), and is neither a result nor what a result
is a view of; its columns are read by the convolution and the weight gradient only. Anything
else (the input's gradient through the convolution, a batch normalization, a pooling that
overlaps or leaves rows over) keeps the image layout. The values are the same up to rounding:
the weight and bias gradients sum the pixels in another order, and the matrix product may round
an entry differently at another column.
"""

from __future__ import annotations

import sympy as sp

from ..symbolic.arrays import BATCH, MaxPool2d, MaxPool2dGrad, PerChannel, SumAxes
from ..symbolic.rules import ElementwiseBase
from .printer import _ConvColumns, _Im2col, _PooledIm2col, _PooledMax, _PooledMaxGrad, _WeightColumns
from .workspaces import _escaping, line_shapes

SUMMED = sp.Dummy("summed")  # a sum over the pixels of an array in pooling order (`_reduced`)
ELEMENTWISE = (sp.Add, sp.Mul, sp.Pow, sp.Max, sp.Min, sp.Piecewise, sp.functions.elementary.piecewise.ExprCondPair,
               sp.core.relational.Relational, ElementwiseBase)


def pooled(lines: list, results, shapes: dict) -> list:
    """`lines` ((symbol, expression) pairs in order) with every convolution that qualifies (above)
    computed in pooling order; `results`: the symbols the function returns; `shapes`: the arrays'
    shapes by symbol."""
    shapes = line_shapes(lines, shapes)
    for i, (symbol, expr) in enumerate(lines):
        columns = _columns(expr)
        if columns is not None:
            lines = _reordered(lines, i, columns, results, shapes) or lines
    return lines


def _columns(expr):
    """The columns (a symbol, or the `_Im2col` itself) of a line that is a convolution, with or
    without its bias; None for any other line."""
    terms = expr.args if expr.is_Add else (expr,)
    convs = [t for t in terms if isinstance(t, _ConvColumns)]
    if len(convs) != 1 or any(not isinstance(t, (_ConvColumns, PerChannel)) for t in terms):
        return None
    return convs[0].args[0]


def _reordered(lines, i, columns, results, shapes):
    """The lines with the convolution of line i in pooling order, None if it does not qualify."""
    definitions = dict(lines)
    im2col = definitions.get(columns, columns)
    if type(im2col) is not _Im2col:
        return None
    conv, _ = lines[i]
    image = set([conv])  # the arrays in pooling order
    pool, changed = None, {}
    for symbol, expr in lines[i + 1:]:
        expr = _reduced(expr, columns, image)  # dL_dW1 = 0.2*W1 + _conv2d_weight_gradient(t0, delta1): not read here
        if columns in expr.free_symbols:
            return None  # the columns read by something else
        if not expr.free_symbols & image:
            continue
        if isinstance(expr, MaxPool2d) and expr.args[0] in image and pool is None:
            a, size, stride = expr.args
            size, out = tuple(int(k) for k in size), shapes.get(conv)
            if size != tuple(int(k) for k in stride) or size == (1, 1) or out is None or len(out) != 4 or any(
                    not isinstance(d, (int, sp.Integer)) or d % k for d, k in zip(out[2:], size)):
                return None
            pool = (symbol, a, size)
            changed[symbol] = _PooledMax(a, sp.Tuple(*(out[2 + k] // size[k] for k in (0, 1))))
        elif isinstance(expr, MaxPool2dGrad) and pool is not None and expr.args[:2] == (pool[1], pool[0]) \
                and not expr.args[2].free_symbols & image:
            image.add(symbol)
            changed[symbol] = _PooledMaxGrad(*expr.args[:3])
        elif _elementwise(expr, image, shapes):
            image.add(symbol)
        else:
            return None
    escaping = _escaping(lines, results)
    if pool is None or image & escaping or columns in escaping:  # (an _Im2col expression is never a result)
        return None
    reordered = _PooledIm2col(*im2col.args, sp.Tuple(*pool[2]))
    if columns.is_Symbol:
        changed[columns] = reordered
    else:
        changed[conv] = definitions[conv].xreplace({im2col: reordered})
    return [(s, changed.get(s, e)) for s, e in lines]


def _reduced(expr, columns, image):
    """`expr` with the weight and bias gradients of arrays in pooling order (sums over the pixels,
    in whatever order they are) replaced by a placeholder: what remains is what reads the layout."""
    def summed(e):
        if isinstance(e, _WeightColumns):
            return columns.is_Symbol and e.args[0] == columns and e.args[1] in image
        if isinstance(e, SumAxes):
            return e.args[0] in image and tuple(e.args[1]) == (0, 2, 3) and not e.args[2]
        return False
    return expr.replace(summed, lambda e: SUMMED)


def _elementwise(expr, image, shapes) -> bool:
    """Whether `expr` is computed entry by entry from arrays in pooling order and numbers (a
    scalar array, a per-channel vector broadcast over the pixels)."""
    for e in sp.preorder_traversal(expr):
        if e.is_Symbol:
            if e not in image and e != BATCH and shapes.get(e) != ():  # an array, or of a shape not known
                return False
        elif not (e.is_Number or isinstance(e, ELEMENTWISE) or e in (sp.true, sp.false)):
            return False
    return True
