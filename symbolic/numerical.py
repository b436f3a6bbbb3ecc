"""Numerical gradients by finite differences, always in float64.

Each entry v gets its own steps, h = eps * max(1, |v|) and then h/10, h/100, h/1000. At each
step the five-point formula (f(-2h) - 8 f(-h) + 8 f(h) - f(2h)) / 12h, whose error is of order
h^4, estimates the derivative, and the asymmetry |f(h) - 2 f(v) + f(-h)| / h tells a smooth f
(where it shrinks with h) from a kink within h (where it is the jump of f'). As soon as two
successive steps agree and the asymmetry shrank, the larger step's estimate is taken; an entry
for which that never happens is reported as near a kink (ReLU at 0), where a finite difference
may legitimately differ from the exact derivative.
"""

from __future__ import annotations

import numpy as np

SHRINKS = (1, 1e-1, 1e-2, 1e-3)  # the steps tried, as fractions of the first
AGREE_RTOL = 1e-7  # two estimates this close (or within rounding) agree
ROUNDING = 1e-15  # relative rounding of one loss evaluation, with some margin


def numerical_gradients(f, arrays: dict, wrt, eps: float = 1e-3) -> dict:
    """dF/d(array) for every name in `wrt`, by finite differences in float64.

    `f` is called with every array by keyword and returns a scalar. The arrays are copied to
    float64 first, whatever their dtype (a float32 difference quotient loses half its digits);
    the caller's arrays are never changed.
    """
    return finite_differences(f, arrays, wrt, eps)[0]


def finite_differences(f, arrays: dict, wrt, eps: float = 1e-3):
    """(gradients, kinks): kinks maps each name to the indices found near a kink."""
    arrays = {name: _float64(value) for name, value in arrays.items()}
    centre = float(f(**arrays))
    gradients, kinks = {}, {}
    for name in wrt:
        base = arrays[name]
        grad = np.zeros(base.shape, dtype=np.float64)
        kinks[name] = []
        for index in np.ndindex(base.shape):
            value = float(base[index])
            scale = eps * max(1.0, abs(value))
            previous, previous_asymmetry = _estimate(f, arrays, base, index, centre, scale * SHRINKS[0])
            for shrink in SHRINKS[1:]:
                h = scale * shrink
                current, asymmetry = _estimate(f, arrays, base, index, centre, h)
                rounding = ROUNDING * (1 + abs(centre)) / h
                settled = abs(current - previous) <= AGREE_RTOL * (abs(current) + abs(previous)) + rounding
                smooth = asymmetry <= 0.2 * previous_asymmetry + 4 * rounding
                if settled and smooth:  # the larger step: as exact, and less rounding
                    grad[index] = previous
                    break
                previous, previous_asymmetry = current, asymmetry
            else:
                grad[index] = previous
                kinks[name].append(index)
            base[index] = value
        gradients[name] = grad
    return gradients, kinks


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
