"""What the differences of a wrong gradient fit: the likely cause, from the numbers alone.

`diagnose(got, expected, ...)` tries a small table of shapes the differences of a hand-written
backward take when a known mistake was made, and returns those that hold on every entry at the
check's own tolerance (`symprop.numerical.mismatched`: the fitted array equals `got` wherever
`got` was compared):

    zero            got is all zeros (the gradient never written, or overwritten)
    scale           got = factor * expected (N: the 1/N of a mean forgotten; -1: a sign)
    regularization  got = expected + coefficient * weight (-2 l2: the penalty's gradient missing)
    transposed      got = expected.T (a square array: the indices swapped)
    offset          got = expected + value (a constant added to every entry)
    rows, columns   the differences lie only in these rows (columns) of a matrix
    steps           a sequence's gradient right at the last steps, wrong before, the error growing
                    toward the first: the carried state's gradient forgotten (backpropagation
                    through time)

Each diagnosis is a dict `{"kind", "text", ...its figures}`. A fit that does not hold on every
entry is not reported, and a right gradient (within the tolerance) gets none.
"""

from __future__ import annotations

import math

import numpy as np

from .numerical import mismatched

SHOWN = 8  # row or column indices listed at most


def diagnose(got, expected, *, weight=None, weight_name: str = "", rtol: float = 1e-6, loss: float = 0.0, overall: float = 0.0,
             batch: int | None = None, l2: float = 0.0, steps: bool = False) -> list[dict]:
    """The diagnoses of `got` against `expected` (same shape; NaN in `expected`: not compared).
    `weight`: the array's own value, named `weight_name` (for the regularization fit); `batch`,
    `l2`: the figures a factor or a coefficient is recognised as; `steps`: the array is a
    sequence's (N, T, ...), its axis 1 the time steps of a loop."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    compared = ~np.isnan(expected)
    if got.shape != expected.shape or not compared.any() or not np.isfinite(got[compared]).all():
        return []  # NaN or inf in what it returned: the table shows where; no fit explains them
    g, e = got[compared], expected[compared]

    def holds(fitted) -> bool:
        fitted = np.asarray(fitted, dtype=np.float64)
        return not mismatched(got, np.where(compared, fitted, np.nan), rtol, loss, overall).any()

    if not mismatched(got, expected, rtol, loss, overall).any():
        return []  # right: nothing to explain
    found = []
    if not g.any():
        return [{"kind": "zero", "text": "got is all zeros"}] if e.any() else []
    if g.size < 2:
        return found  # one entry: every factor and every term fits it
    if e @ e > 0:
        factor = float(g @ e / (e @ e))
        if not np.isclose(factor, 1.0) and holds(factor * expected):
            found.append({"kind": "scale", "factor": factor,
                          "text": f"got = {_nice(factor)} * expected{_factor_hint(factor, batch)}"})
    if weight is not None and np.shape(weight) == got.shape:
        w = np.asarray(weight, dtype=np.float64)[compared]
        if w @ w > 0:
            coefficient = float((g - e) @ w / (w @ w))
            if coefficient and holds(expected + coefficient * np.asarray(weight, dtype=np.float64)):
                found.append({"kind": "regularization", "coefficient": coefficient, "weight": weight_name,
                              "text": f"got = expected {_signed(coefficient)} * {weight_name}"
                                      + _penalty_hint(coefficient, l2)})
    if got.ndim == 2 and got.shape[0] == got.shape[1] > 1 and holds(expected.T):
        found.append({"kind": "transposed", "text": "got = expected.T: rows and columns swapped"})
    if g.size > 1:
        value = float(np.mean(g - e))
        if value and not np.isclose(value, 0.0, atol=1e-300) and holds(expected + value):
            found.append({"kind": "offset", "value": value,
                          "text": f"got = expected {_signed(value)} in every entry"})
    if not found and steps and got.ndim >= 3 and got.shape[1] > 1:
        found += _over_steps(got, expected, compared, rtol, loss, overall)
    if not found and got.ndim == 2:
        wrong = mismatched(got, np.where(compared, expected, np.nan), rtol, loss, overall)
        for axis, kind in ((1, "rows"), (0, "columns")):
            lines = np.flatnonzero(wrong.any(axis=axis))
            if 0 < lines.size < wrong.shape[1 - axis]:
                shown = ", ".join(map(str, lines[:SHOWN])) + (", ..." if lines.size > SHOWN else "")
                found.append({"kind": kind, "indices": [int(i) for i in lines],
                              "text": f"the differences lie only in {kind} {shown} "
                                      f"({lines.size} of {wrong.shape[1 - axis]})"})
    return found


def _over_steps(got, expected, compared, rtol, loss, overall) -> list[dict]:
    """A sequence's gradient (N, T, ...) right at the last steps and wrong before them, the error
    growing toward the first: the state's gradient not carried back from step t + 1 (or carried
    wrong), which only the steps before the last receive."""
    wrong = mismatched(got, np.where(compared, expected, np.nan), rtol, loss, overall)
    axes = tuple(k for k in range(got.ndim) if k != 1)
    wrong_at = wrong.any(axis=axes)
    if wrong_at[-1] or not wrong_at.any():
        return []
    error = np.nanmax(np.abs(np.where(compared, got - expected, np.nan)), axis=axes)
    first_right = int(np.flatnonzero(wrong_at)[-1]) + 1  # from here to the last step, all right
    text = (f"right at step{'s' if first_right < got.shape[1] - 1 else ''} {first_right}"
            + (f" to {got.shape[1] - 1}" if first_right < got.shape[1] - 1 else "")
            + " (the last), wrong before")
    growing = bool(np.all(np.diff(error[:first_right]) <= 1e-12 * max(1.0, float(error.max()))))
    if growing:
        text += ", the error growing toward the first steps: is the state's gradient carried back from step t + 1?"
    else:
        text += ": what step t receives from the steps after it (the carried state's gradient) looks wrong"
    return [{"kind": "steps", "right_from": first_right, "growing": growing, "text": text}]


def _nice(value: float) -> str:
    """A figure as one reads it: -1, 4, 0.25, 1/3 where it is that to 9 digits, else %.6g."""
    if not math.isfinite(value):  # a gradient that overflowed: inf, nan as they are
        return f"{value}"
    for denominator in (1, 2, 3, 4):
        numerator = round(value * denominator)
        if numerator and abs(value * denominator - numerator) <= 1e-9 * abs(value * denominator):
            return str(numerator) if denominator == 1 else f"{numerator}/{denominator}"
    return f"{value:.6g}"


def _signed(value: float) -> str:
    """+ 0.1, - 0.02: a term added, as one writes it."""
    return f"- {_nice(-value)}" if value < 0 else f"+ {_nice(value)}"


def _factor_hint(factor: float, batch: int | None) -> str:
    if np.isclose(factor, -1.0):
        return ": the sign is wrong"
    if batch and batch > 1 and np.isclose(factor, batch):
        return f": a factor of N = {batch}, the 1/N of the mean forgotten"
    if batch and batch > 1 and np.isclose(factor, 1 / batch):
        return f": a factor of 1/N = 1/{batch}, divided by N once too often"
    if np.isclose(factor, 2.0) or np.isclose(factor, 0.5):
        return ": a factor of 2 (the derivative of a square?)"
    if np.isclose(factor, 0.0):
        return ": nearly zero"
    return ""


def _penalty_hint(coefficient: float, l2: float) -> str:
    if l2 and np.isclose(coefficient, -2 * l2):
        return f": the regularization term's gradient 2 * l2 * W (l2 = {l2:g}) is missing"
    if l2 and np.isclose(coefficient, -l2):
        return f": the regularization term's gradient is halved (l2 * W, not 2 * l2 * W; l2 = {l2:g})"
    if l2 and np.isclose(coefficient, 2 * l2):
        return f": the regularization term's gradient 2 * l2 * W (l2 = {l2:g}) is counted twice"
    return ": a regularization term's gradient missing or wrong"
