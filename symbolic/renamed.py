"""SymPy work done once per expression up to the names of its symbols.

A deep network repeats one layer: the sweep differentiates tanh(z1), tanh(z2), ... and the
backward pass simplifies delta2 @ W2.T * (1 - a1**2), delta3 @ W3.T * (1 - a2**2), ... SymPy's
assumption queries make each such call cost milliseconds, the same for every layer. `by_shape`
wraps a function of an expression so that it runs once per *shape* of expression: the symbols
are renamed to canonical ones (in their sorted order, each keeping its assumptions and its kind,
Symbol or Dummy), the result is computed or found for the renamed expression, and renamed back.

Exact by construction: a renaming is a bijection of symbols with the same assumptions, and the
functions wrapped (differentiation, cancellation, factoring) commute with it. Their results are
also the same expressions as without the cache (tests/test_depth.py compares): the canonical
names keep the symbols' order, which is all that the form of SymPy's results depends on.
"""

from __future__ import annotations

import functools

import sympy as sp

ENABLED = True  # False: every call computed (the tests compare)
_CANONICAL: dict = {}  # (position, kind, assumptions) -> the canonical symbol


def _canonical(position: int, symbol: sp.Symbol) -> sp.Symbol:
    kind = type(symbol)
    assumptions = tuple(sorted(symbol.assumptions0.items()))
    key = (position, kind, assumptions)
    if key not in _CANONICAL:
        name = f"_{position:04d}"
        _CANONICAL[key] = (sp.Dummy(name, **dict(assumptions)) if kind is sp.Dummy
                           else kind(name, **dict(assumptions)))
    return _CANONICAL[key]


def _renamed(expr, names: dict):
    """`expr` with its symbols renamed by `names` and nothing else changed: sums, products and
    powers are not evaluated again (2*(a - y) stays a product; evaluated, it is 2*a - 2*y). Not
    SymPy's `evaluate(False)`, which empties SymPy's caches on the way in and out."""
    done = dict(names)

    def visit(e):
        if e in done:
            return done[e]
        args = tuple(visit(arg) for arg in e.args)
        if args == e.args:
            out = e
        elif isinstance(e, (sp.Add, sp.Mul, sp.Pow)):
            out = e.func(*args, evaluate=False)
        else:
            out = e.func(*args)
        done[e] = out
        return out

    return visit(expr)


def by_shape(function):
    """`function(expr, *symbols)` computed once per expression up to a renaming of its symbols;
    `symbols` (the variable of a derivative) are renamed with it and must be among its free
    symbols. Symbols of a class other than Symbol and Dummy leave `function` uncached."""
    cache: dict = {}

    @functools.wraps(function)
    def wrapper(expr, *symbols):
        if not ENABLED:
            return function(expr, *symbols)
        free = sorted(expr.free_symbols, key=sp.default_sort_key)
        if any(type(s) not in (sp.Symbol, sp.Dummy) for s in free) or not set(symbols) <= set(free):
            return function(expr, *symbols)
        forward = {s: _canonical(i, s) for i, s in enumerate(free)}
        key = (_renamed(expr, forward), tuple(forward[s] for s in symbols))
        if key not in cache:
            cache[key] = function(*key[:1], *key[1])
        return _renamed(cache[key], {c: s for s, c in forward.items()})

    wrapper.cache = cache
    return wrapper
