"""The reverse sweep: the gradient of the loss with respect to every array, for any forward pass.

How it works
------------
The forward pass is a list of equations `v = expr` over whole arrays (SymPy symbols). The sweep
walks them last first and pulls the gradient g = dL/dv back to every array `expr` uses:

- an array operation of `symbolic.arrays` (a matrix product, a sum over an axis, softmax, ...)
  gives its own vector-Jacobian product for each argument (`ArrayFunction.vjp`);
- the rest of `expr` is elementwise (SymPy algebra and the activation functions of
  `symbolic.rules`), so the pull to an array u is g * d(expr)/du, by SymPy's `diff`, the array
  operations inside held as opaque symbols meanwhile;
- a pull larger than u (broadcasting: a bias added to every row) is summed back to u's shape
  by `unbroadcast`, the one place that knows about broadcasting.

Every use of an array adds one contribution; its gradient is their sum (fan-out: residual
connections, tied weights, a batch mean used twice). A `Composite` replaces the pull through a
group of steps by a compact rule that SymPy could not find on its own (batch normalization).
Nothing here knows about layers, activations or losses; naming and simplifying the results are
the caller's policies (`symbolic.derive`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import sympy as sp

from .arrays import BATCH, ArrayFunction, BroadcastTo, RowSum, SumAxes, SumRows, Total, broadcast, shape_of
from .renamed import by_shape

_derivative = by_shape(sp.diff)  # tanh(z1), tanh(z2), ...: differentiated once


@dataclass(frozen=True)
class Composite:
    """A group of forward steps with one compact pull: `output` is computed from `input` through
    the steps `inner` (which nothing else uses); `vjp(g)` is dL/d(input) given g = dL/d(output)."""

    output: sp.Symbol
    input: sp.Symbol
    inner: tuple
    vjp: callable
    name: str  # what the rule is, in words
    zero_sum: sp.Expr | None = None  # a sum of `output` that is 0 (a normalization over the batch: sum_n xhat)


@dataclass
class Gradient:
    """dL/d(`of`), named `symbol`: the sum of `terms`, one per use of `of` (in terms of the
    gradients of the arrays computed from it)."""

    of: sp.Symbol
    symbol: sp.Symbol
    terms: list = field(default_factory=list)
    sources: list = field(default_factory=list)  # per term: the step (symbol) or Composite that pulled it
    composites: list = field(default_factory=list)  # the composite rules in its terms (also once inlined)

    @property
    def expr(self) -> sp.Expr:
        return sp.Add(*self.terms)


def sweep(forward: list, loss: sp.Symbol, wanted: tuple, shapes: dict, name, composites=(),
          data=frozenset()) -> list[Gradient]:
    """The gradients of `loss` with respect to the arrays `wanted`, and of every forward result
    between them, in the order a reverse pass computes them.

    `forward`: (symbol, expr) equations in order, the last one defining `loss`; `shapes`: every
    array's shape; `name(symbol)`: the symbol to call dL/d(symbol) by; `data`: forward results
    that are not differentiated (a comparison's mask, an index), nothing pulled through them.
    A wanted array may be a forward result (an intermediate) as well as an input.
    """
    shapes = dict(shapes)
    wanted = tuple(wanted)
    active = set(wanted)  # the arrays that depend on a wanted one: only they are pulled to
    for symbol, expr in forward:
        if expr.free_symbols & active and symbol not in data:
            active.add(symbol)
    defined = {symbol for symbol, _ in forward}
    first_use = {}
    for i, (_, expr) in enumerate(forward):
        for symbol in expr.free_symbols & (set(wanted) - defined):
            first_use.setdefault(symbol, i)
    used_first_at = defaultdict(list)  # step i -> the wanted arrays first used there, in their order
    for array in wanted:
        if array in first_use:
            used_first_at[first_use[array]].append(array)
    wanted_set = frozenset(wanted)
    compact = {c.output: c for c in composites}

    pulls = defaultdict(list)  # array -> [(source, contribution)]
    pulls[loss].append((None, sp.S.One))
    out = []
    for i in range(len(forward) - 1, -1, -1):
        symbol, expr = forward[i]
        if symbol in wanted_set and not pulls[symbol]:  # a wanted result the loss does not use
            pulls[symbol].append((None, sp.S.Zero))
        if pulls[symbol]:
            composite = compact.get(symbol)
            if symbol == loss:
                g = sp.S.One  # dL/dL
            else:
                g = name(symbol)
                shapes[g] = shapes[symbol]
                out.append(_gradient(symbol, g, pulls[symbol], shapes))
            if composite is not None:
                pulls[composite.input].append((composite, _fit(composite.vjp(g), shapes[composite.input], shapes)))
            else:
                for target, pull in _pull(expr, g, shapes, active):
                    pulls[target].append((symbol, pull))
        for array in used_first_at.get(i, ()):
            g = name(array)
            shapes[g] = shapes[array]
            out.append(_gradient(array, g, pulls[array], shapes, array=True))
    return out


def _gradient(of, symbol, pulls, shapes, array=False) -> Gradient:
    """The gradient from its pulls; their sum made as large as `of` (BroadcastTo) where it is smaller,
    and an array's (`array`: one of the function's) where it is a number (an array of their dtype)."""
    sources, terms = [source for source, _ in pulls], [term for _, term in pulls]
    want, have = shapes[of], shape_of(sp.Add(*terms), shapes)
    number = array and not want and sp.Add(*terms).free_symbols <= {BATCH}
    if len(have) < len(want) or _smaller(have, want) or number:
        sources, terms = [tuple(sources)], [BroadcastTo(sp.Add(*terms), *want)]
    return Gradient(of, symbol, terms, sources, [s for s in sources if isinstance(s, Composite)])


def _smaller(have, want) -> bool:
    return len(have) == len(want) and any(h != w and h == 1 for h, w in zip(have, want))


def _pull(expr, g, shapes, active) -> list[tuple[sp.Symbol, sp.Expr]]:
    """(array, contribution to its gradient) for every active array in `expr`, given g = dL/d(expr)."""
    if expr.is_Symbol:
        return [(expr, g)] if expr in active else []
    if not expr.free_symbols & active:
        return []
    if isinstance(expr, ArrayFunction):
        out = []
        whole, have = shape_of(expr, shapes), shape_of(g, shapes)
        if have != whole and not expr.reduces and broadcast(have, whole) == tuple(whole):
            g = BroadcastTo(g, *whole)  # a pull the same in every entry (from a sum), made whole first: the
            # operation's rule reads it entry by entry (one that sums its broadcast pull takes it larger)
        for index, arg in enumerate(expr.args):
            if arg.free_symbols & active:
                pull = expr.vjp(index, g, lambda e: shape_of(e, shapes))
                out += _pull(arg, _fit(pull, shape_of(arg, shapes), shapes), shapes, active)
        return out
    # Elementwise: the array operations inside held as dummies while SymPy differentiates.
    held = {}
    for op in _outermost_operations(expr):
        held[op] = sp.Dummy(type(op).__name__, real=True)  # real: d|u|/du is sign(u), not in re and im
    flat = expr.xreplace(held)
    back = {dummy: op for op, dummy in held.items()}
    held_shapes = {dummy: shape_of(op, shapes) for dummy, op in back.items()}  # not a copy of all the shapes
    out = []
    for u in sorted(flat.free_symbols & (active | set(back)), key=lambda s: sp.default_sort_key(back.get(s, s))):
        if u in back and not back[u].free_symbols & active:
            continue
        pull = (g * _derivative(flat, u)).xreplace(back)
        target = back.get(u, u)
        if not (u in back and target.reduces):  # an operation that sums its broadcast pull itself
            pull = _fit(pull, held_shapes[u] if u in held_shapes else shapes[u], shapes, whole=shape_of(expr, shapes))
        out += _pull(target, pull, shapes, active) if u in back else [(u, pull)]
    return out


def _outermost_operations(expr) -> list:
    """The array operations in `expr` not inside another one, in a fixed order."""
    found = []

    def visit(e):
        if isinstance(e, ArrayFunction):
            if e not in found:
                found.append(e)
            return
        for arg in e.args:
            visit(arg)

    visit(expr)
    return found


def _fit(pull, want, shapes, whole=None):
    """`pull` summed over the axes that broadcasting added, to the shape `want`. `whole`: the shape
    of the expression it is the pull of, where the pull itself may be smaller (the same in every
    entry along some axes): a sum along such an axis is the pull times the axis' length."""
    have = shape_of(pull, shapes)
    factor = sp.S.One
    if whole is not None and have != whole:
        ndim = len(whole)
        have_ = (sp.S.One,) * (ndim - len(have)) + tuple(have)
        want_ = (None,) * (ndim - len(want)) + tuple(want)
        for k in range(ndim):
            summed = want_[k] is None or (want_[k] == 1 and whole[k] != 1)
            if summed and have_[k] == 1 and whole[k] != 1:
                factor *= whole[k]
    return factor * unbroadcast(pull, have, want)


def unbroadcast(expr, have: tuple, want: tuple):
    """`expr`, of shape `have`, summed to shape `want` over the axes broadcasting added or grew
    from 1 (the inverse of broadcasting: the gradient of a bias is the sum of its rows' gradients).
    A smaller `expr` is returned as it is: it broadcasts."""
    extra = len(have) - len(want)
    if extra < 0:
        return expr
    grown = [extra + i for i, d in enumerate(want) if d == 1 and have[extra + i] != 1]
    axes = list(range(extra)) + grown
    if not axes:
        return expr
    if not want:
        return Total(expr)
    if axes == [0] and extra == 1:
        return SumRows(expr)
    if axes == [len(have) - 1] and extra == 0:
        return RowSum(expr)
    # Any other axes (the per-channel sums of an image batch): kept where broadcasting grew them,
    # so that the sum broadcasts as `want` does (dropped leading axes are kept too, as ones, then
    # dropped: a (3, 1) bias of a (2, 3, 4) array gets a (3, 1) gradient).
    total = SumAxes(expr, sp.Tuple(*axes), sp.Integer(int(bool(grown))))
    if grown and extra:
        from .ops import Reshape
        return Reshape(total, *want)
    return total
