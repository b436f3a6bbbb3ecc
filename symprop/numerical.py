"""Numerical gradients by finite differences, always in float64.

Each entry v gets its own steps, h = eps * max(1, |v|) and then h/10, h/100, h/1000. At each
step the five-point formula (f(-2h) - 8 f(-h) + 8 f(h) - f(2h)) / 12h, whose error is of order
h^4, estimates the derivative, and the asymmetry |f(h) - 2 f(v) + f(-h)| / h tells a smooth f
(where it shrinks with h) from a kink within h (where it is the jump of f'). As soon as two
successive steps agree and the asymmetry shrank, the larger step's estimate is taken; an entry
for which that never happens is reported as near a kink (ReLU at 0), where a finite difference
may legitimately differ from the exact derivative. Given the gradient being checked
(`finite_differences(..., expected=...)`, as `symprop check` does), an entry whose first estimate
already agrees with it to a tenth of the tolerance is taken at once: four evaluations of the
loss instead of eight or more, and the smaller steps only where they can change a verdict.

Comparing gradients (`relative_errors`, `mismatched`): an array's error is measured relative to
its scale, its largest entry |expected|, the normwise relative error max |got - expected| /
max |expected|. A gradient that is zero up to rounding (a shared bias before a softmax, a bias
before a batch normalization) has no scale of its own, so the scale is floored at
FLOOR * max(1, |L|), a finite difference's rounding being about 1e-12 of the loss (1e-15 relative
over a step of 1e-3), and at OVERALL * the largest entry of all the network's gradients
(`overall`): what such a gradient sums to zero is of that size, and its rounding with it (a sum of
N rows cancels to N eps of its terms; a finite difference whose step shrank to 1e-6 rounds to
1e-9 of the loss). A gradient 1e-4 of the largest is still compared to 1e-10 of the largest
against finite differences. One definition, used by `symprop check` and by the tests.
"""

from __future__ import annotations

import math

import numpy as np

SHRINKS = (1, 1e-1, 1e-2, 1e-3)  # the steps tried, as fractions of the first
AGREE_RTOL = 1e-7  # two estimates this close (or within rounding) agree
ROUNDING = 1e-15  # relative rounding of one loss evaluation, with some margin
FLOOR = 1e-6  # the smallest gradient scale, as a fraction of max(1, |loss|)
OVERALL = 1e-4  # the smallest gradient scale, as a fraction of the largest gradient entry of all


def gradient_scale(expected, loss: float = 0.0, overall: float = 0.0) -> float:
    """max |expected|, floored at FLOOR * max(1, |loss|) and OVERALL * `overall`, the largest
    gradient entry of all the arrays (see the module docstring)."""
    return max(float(np.max(np.abs(expected), initial=0.0)), FLOOR * max(1.0, abs(float(loss))),
               OVERALL * float(overall))


def largest(gradients: dict) -> float:
    """The largest finite |entry| of all the gradients: the `overall` of `gradient_scale`."""
    return max((float(np.max(np.abs(g[np.isfinite(g)]), initial=0.0))
                for g in map(np.asarray, gradients.values())), default=0.0)


def relative_errors(got, expected, loss: float = 0.0, overall: float = 0.0) -> np.ndarray:
    """|got - expected| / gradient_scale(expected, loss, overall), entry by entry (NaN where either is)."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return np.abs(got - expected) / gradient_scale(expected[~np.isnan(expected)], loss, overall)


def mismatched(got, expected, rtol: float, loss: float = 0.0, overall: float = 0.0) -> np.ndarray:
    """Entries whose relative error exceeds rtol, or that are NaN where `expected` is not (entries
    not compared, NaN in `expected`, are not counted)."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ((relative_errors(got, expected, loss, overall) > rtol)
                | (np.isnan(got) & ~np.isnan(expected)))


def sample_entries(shape, count: int | None, seed: int = 0) -> list[tuple] | None:
    """`count` distinct indices of an array of `shape`, drawn with `seed` and listed in order;
    None (every entry) when count is None or covers the array."""
    size = int(np.prod(shape, dtype=np.int64))
    if count is None or count >= size:
        return None
    flat = np.sort(np.random.default_rng(seed).choice(size, size=count, replace=False))
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]


def numerical_gradients(f, arrays: dict, wrt, eps: float = 1e-3) -> dict:
    """dF/d(array) for the array named `wrt` (a name, or a list of names), by finite differences
    in float64: a dict name -> gradient.

    `f` is called with every array by keyword and returns a scalar. The arrays differentiated are
    copied to float64 first, whatever their dtype (a float32 difference quotient loses half its
    digits); the others (a mask, labels, None) are passed as they are. The caller's arrays are
    never changed by it.
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, not {eps!r}")
    names = [wrt] if isinstance(wrt, str) else list(wrt)
    unknown = [name for name in names if name not in arrays]
    if unknown:
        raise KeyError(f"no array named {', '.join(map(repr, unknown))} among {', '.join(map(repr, arrays))}")
    others = {name: value for name, value in arrays.items() if name not in names}
    return finite_differences(lambda **varied: f(**varied, **others), {name: arrays[name] for name in names},
                              names, eps)[0]


def finite_differences(f, arrays: dict, wrt, eps: float = 1e-3, entries: dict | None = None, progress=None,
                       expected: dict | None = None):
    """(gradients, kinks): kinks maps each name to the indices found near a kink.

    `expected` maps a name to (gradient, tolerance): the gradient being checked and the largest
    difference from it that counts as agreement. An entry whose first estimate (step h) is within
    a tenth of the tolerance of it is taken at once, with four evaluations of f instead of eight
    or more: a wrong or doubtful entry (a kink) still gets every step. It halves the time of a
    check whose gradients are right, and changes no verdict.

    The arrays differentiated are float64 copies whatever their dtype (an integer array would
    truncate each step); the others keep theirs (class labels stay integers).

    `entries` maps a name to the indices to difference (missing or None: every entry); the
    others are NaN in the result. `progress(done, total)` is called after each entry.
    """
    wrt = [wrt] if isinstance(wrt, str) else list(wrt)
    unknown = [name for name in wrt if name not in arrays]
    if unknown:
        raise KeyError(f"no array named {', '.join(map(repr, unknown))} among {', '.join(map(repr, arrays))}")
    arrays = {name: (np.array(value, dtype=np.float64) if name in wrt else _float64(value))
              for name, value in arrays.items()}
    entries = {name: (entries or {}).get(name) for name in wrt}
    agreed = {name: (np.asarray(gradient, dtype=np.float64), float(tolerance))
              for name, (gradient, tolerance) in (expected or {}).items() if name in wrt}
    total = sum(arrays[n].size if entries[n] is None else len(entries[n]) for n in wrt)
    done = 0
    centre = float(f(**arrays))
    gradients, kinks = {}, {}
    for name in wrt:
        base = arrays[name]
        grad = np.zeros(base.shape, dtype=np.float64)
        if entries[name] is not None:
            grad[...] = np.nan
        kinks[name] = []
        for index in (np.ndindex(base.shape) if entries[name] is None else entries[name]):
            value = float(base[index])
            target = (agreed[name][0][index], agreed[name][1] / 10) if name in agreed else None
            grad[index], kink = _entry(f, arrays, base, index, centre, eps * max(1.0, abs(value)), target)
            if kink:
                kinks[name].append(index)
            base[index] = value
            done += 1
            if progress is not None:
                progress(done, total)
        gradients[name] = grad
    return gradients, kinks


def _entry(f, arrays, base, index, centre, scale, target=None):
    """(the derivative along one entry, whether a kink is within the step): the estimates with
    steps scale * SHRINKS until two agree and the asymmetry shrank (see the module docstring).
    `target`: (expected, tolerance), the first estimate taken if it is that close to expected."""
    previous, previous_asymmetry = _estimate(f, arrays, base, index, centre, scale * SHRINKS[0])
    if target is not None and abs(previous - target[0]) <= target[1]:
        return previous, False
    for shrink in SHRINKS[1:]:
        h = scale * shrink
        current, asymmetry = _estimate(f, arrays, base, index, centre, h)
        rounding = ROUNDING * (1 + abs(centre)) / h
        settled = abs(current - previous) <= AGREE_RTOL * (abs(current) + abs(previous)) + rounding
        smooth = asymmetry <= 0.2 * previous_asymmetry + 4 * rounding
        if settled and smooth:  # the larger step: as exact, and less rounding
            return previous, False
        previous, previous_asymmetry = current, asymmetry
    return previous, True


def _estimate(f, arrays, base, index, centre, h):
    """The five-point estimate with step h, and the asymmetry |f(h) - 2 f(0) + f(-h)| / h: about
    |f''| h where f is smooth (it shrinks with h), the jump of f' at a kink. Restores the entry."""
    value = float(base[index])
    f_m2, f_m1, f_p1, f_p2 = (_at(f, arrays, base, index, value + k * h) for k in (-2, -1, 1, 2))
    base[index] = value
    return (8 * (f_p1 - f_m1) - (f_p2 - f_m2)) / (12 * h), abs(f_p1 - 2 * centre + f_m1) / h


def _at(f, arrays, base, index, value):
    base[index] = value
    return float(f(**arrays))


def _float64(array):
    array = np.asarray(array)
    if array.dtype.kind in "fb":
        return array.astype(np.float64)  # a copy, in float64
    return array.copy()  # integers (class labels) stay integers
