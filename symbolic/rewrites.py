"""Rewrites of a traced program: the idioms learners write, recognised as the operation they are.

Each rule is exact (the same function, not an approximation) and turns a naive graph into the
compact one, as pytensor's rewrites do after tracing:

    u - log(rowsum(exp(u)))          log_softmax(u)
    exp(u) / rowsum(exp(u))          softmax(u)
    softmax(u - c), log_softmax(...) softmax(u): c constant along the last axis (the stable
                                     shift by the row maximum, which the helpers do themselves)
    1 / (1 + exp(-u))                sigmoid(u), whose derivative is a (1 - a)
    log(softmax(u))                  log_softmax(u): no log of an underflowed 0
    sum(a[arange(N), y])             sum(onehot(y, K) * a): the label's entry of each row, as the
                                     cross-entropy is written (its gradient is a mask, not a scatter)
    a[:, j:k]                        columns(a, j, k): a block of the last axis (an LSTM's gates),
                                     whose gradient pads with zeros, and the blocks' pads of one
                                     array join in one concatenation (not a scatter each)

A rule may look through a step's name to its definition (the shift is usually a step of its
own, `shifted = scores - scores.max(axis=1, keepdims=True)`); a step the caller keeps (asked for
in `wrt`) is never looked through.
"""

from __future__ import annotations

import sympy as sp

from .arrays import Columns, LogSoftmax, OneHot, RowSum, Softmax, Total, shape_of
from .ops import Arange, GetItem, Slice
from .rules import Sigmoid


def rewrite_steps(steps: list, shapes: dict, keep: set) -> list:
    """`steps` with every rule applied, in order (a rule sees the steps above rewritten)."""
    definitions = {}
    out = []
    for step in steps:
        expr = _rewrite(step.expr, definitions, shapes, keep)
        if expr != step.expr:
            step = type(step)(step.symbol, expr, *_rest(step))
        definitions[step.symbol] = step.expr
        out.append(step)
    return out


def _rest(step) -> tuple:
    return (step.shape, step.dtype, step.data, step.where, step.stage)


def _rewrite(expr, definitions, shapes, keep):
    def look(e):  # a step's definition, through its name (unless the caller keeps the step)
        return definitions[e] if e in definitions and e not in keep else e

    expr = expr.replace(lambda e: isinstance(e, Total), lambda e: _label_entries(e, shapes))
    expr = expr.replace(lambda e: isinstance(e, GetItem), lambda e: _columns(e, shapes))
    expr = expr.replace(lambda e: e.is_Pow and e.exp == -1, _sigmoid)
    expr = expr.replace(lambda e: e.is_Add, lambda e: _log_softmax(e, look, shapes))
    expr = expr.replace(lambda e: e.is_Mul, lambda e: _softmax(e, look, shapes))
    expr = expr.replace(lambda e: isinstance(e, sp.log) and isinstance(look(e.args[0]), Softmax),
                        lambda e: LogSoftmax(look(e.args[0]).args[0]))
    return expr.replace(lambda e: isinstance(e, (Softmax, LogSoftmax)),
                        lambda e: type(e)(_unshifted(e.args[0], definitions, shapes, keep)))


def _label_entries(total, shapes):
    gather = total.args[0]
    coeff, gather = gather.as_coeff_Mul()
    if not (isinstance(gather, GetItem) and len(gather.index) == 2 and isinstance(gather.index[0], Arange)):
        return total
    a, (rows, labels) = gather.args[0], gather.index
    shape = shape_of(a, shapes)
    if len(shape) != 2 or rows.args[0] != shape[0] or not labels.is_Symbol or shape_of(labels, shapes) != shape[:1]:
        return total
    return coeff * Total(OneHot(labels, shape[1]) * a)


def _columns(e, shapes):
    """a[:, j:k] (every axis whole but the last, of which a block): Columns(a, j, k)."""
    shape = shape_of(e.args[0], shapes)
    index = e.index
    if not index or len(index) != len(shape) or not all(isinstance(c, Slice) for c in index):
        return e
    if any(c.value != slice(0, int(d), 1) for c, d in zip(index[:-1], shape[:-1])):
        return e
    start, stop, step, size = (int(v) for v in index[-1].args)
    if step != 1 or stop < 0 or start >= stop or (start, stop) == (0, size):
        return e
    return Columns(e.args[0], start, stop)


def _sigmoid(power):
    base = power.base
    if base.is_Add and len(base.args) == 2 and sp.S.One in base.args:
        (other,) = [a for a in base.args if a != 1]
        if isinstance(other, sp.exp):
            return Sigmoid(-other.args[0])
    return power


def _exp_rowsum(e, look, shapes):
    """u when `e` is rowsum(exp(u)) (through names; the sum of a vector too), else None."""
    e = look(e)
    if isinstance(e, RowSum) or isinstance(e, Total) and len(shape_of(e.args[0], shapes)) == 1:
        inner = look(e.args[0])
        if isinstance(inner, sp.exp):
            return inner.args[0]
    return None


def _log_softmax(add, look, shapes):
    for term in add.args:
        coeff, rest = term.as_coeff_Mul()
        if coeff == -1 and isinstance(rest, sp.log):
            u = _exp_rowsum(rest.args[0], look, shapes)
            if u is not None and sp.expand((add - term) - u) == 0:
                return LogSoftmax(u)
    return add


def _softmax(mul, look, shapes):
    for factor in mul.args:
        if factor.is_Pow and factor.exp == -1:
            u = _exp_rowsum(factor.base, look, shapes)
            numerators = [f for f in mul.args if f is not factor and look(f) == sp.exp(u)] if u is not None else []
            if numerators:
                others = [f for f in mul.args if f is not factor and f is not numerators[0]]
                return sp.Mul(*others) * Softmax(u)
    return mul


def _unshifted(u, definitions, shapes, keep):
    """u without the terms that are constant along the last axis (softmax does not see them)."""
    target = definitions[u] if u in definitions and u not in keep else u
    if not target.is_Add:
        return u
    shape = shape_of(target, shapes)
    if not shape or shape[-1] == 1:  # a softmax over one entry: nothing varies along the axis
        return u
    kept = [t for t in target.args if _varies_along_last(t, shapes)]
    if len(kept) == len(target.args):
        return u
    return sp.Add(*kept)


def _varies_along_last(term, shapes) -> bool:
    """Whether `term` may differ along the last axis: it has one longer than 1 (a (K,) bias does;
    a scalar, a column (N, 1) or a row maximum kept as (N, 1) do not)."""
    shape = shape_of(term, shapes)
    return bool(shape) and shape[-1] != 1
