"""Exact rewrites of a generated function's lines: the same values from less work, as one writes
backprop by hand. The derivation keeps the textbook steps; only the code reads them fused.

    the activation's derivative on the pooled gradient
        dL_da1 = maxpool_grad(a1, a2, g)          delta1 = maxpool_grad(a1, a2, g * h(a2))
        delta1 = dL_da1 * h(a1)
    A max pooling's gradient is g routed to one entry of each window, where a1 equals the
    window's maximum a2, and 0 elsewhere; so a factor h of a1 alone (tanh's 1 - a1**2, the
    sigmoid's a1*(1 - a1)), or a ReLU's mask [z1 > 0] (= [a1 > 0], a1 = relu(z1)), is the
    same taken at a2 before the routing: over the pooled array (a quarter of the entries for
    2x2 windows), and the convolution's output z1 is no longer read, so the ReLU can be
    computed in its memory (`workspaces`). The same products in another order: the same bits,
    for windows that do not overlap (an entry in two windows would get (g1 + g2) h, not
    g1 h + g2 h, which round differently): those are left as they are.

A rule applies only where the line it removes is read by nothing else and is not a result.
"""

from __future__ import annotations

import sympy as sp

from ..symbolic.arrays import MaxPool2d, MaxPool2dGrad
from ..symbolic.rules import ElementwiseBase, Relu
from .printer import _is_step, _stepped


def fused(lines: list, results) -> list:
    """`lines` ((symbol, expression) pairs in order) with the rules applied; `results`: the
    symbols the function returns."""
    definitions = dict(lines)
    readers = {}
    for symbol, expr in lines:
        for s in expr.free_symbols:
            readers.setdefault(s, []).append(symbol)
    removed, replaced = set(), {}
    for symbol, expr in lines:
        routed = _pooled_factor(symbol, expr, definitions, readers, results)
        if routed is not None:
            gradient, new = routed
            removed.add(gradient)
            replaced[symbol] = new
    return [(s, replaced.get(s, e)) for s, e in lines if s not in removed]


def _pooled_factor(symbol, expr, definitions, readers, results):
    """(the pooling gradient's line, the new expression) for `symbol = maxpool_grad(...) * h`
    (the first rule above), None if it does not apply."""
    if not expr.is_Mul:
        return None
    gradient = next((f for f in expr.args if f.is_Symbol and isinstance(definitions.get(f), MaxPool2dGrad)), None)
    if gradient is None or gradient in results or readers.get(gradient) != [symbol]:
        return None
    a, largest, g, size, stride = definitions[gradient].args
    pooled = definitions.get(largest)
    if not (isinstance(pooled, MaxPool2d) and pooled.args == (a, size, stride)
            and all(s >= k for s, k in zip(stride, size))):  # no entry in two windows (see above)
        return None
    rest = sp.Mul(*(f for f in expr.args if f != gradient))
    if rest.free_symbols == {a} and _elementwise(rest):
        at_maximum = rest.xreplace({a: largest})  # h(a1) at the window's maximum: h(a2)
    elif _is_step(rest) and _relu_of(definitions.get(a), rest):
        at_maximum = rest.xreplace({_stepped(rest): largest})  # [z1 > 0] = [a1 > 0], at the maximum [a2 > 0]
    else:
        return None
    return gradient, MaxPool2dGrad(a, largest, sp.Mul(g, at_maximum), size, stride)


def _elementwise(expr) -> bool:
    """Whether `expr` is built of numbers, one array, sums, products, powers and elementwise
    functions only (its value at an entry depends on that entry alone)."""
    return all(e.is_Symbol or e.is_Number or e.is_Add or e.is_Mul or e.is_Pow or isinstance(e, ElementwiseBase)
               for e in sp.preorder_traversal(expr))


def _relu_of(definition, step) -> bool:
    """Whether `step` is [z > 0] and `definition` relu(z)."""
    z = _stepped(step)
    return (z is not None and step.args[0].cond == sp.StrictGreaterThan(z, 0)
            and isinstance(definition, Relu) and definition.args == (z,))
