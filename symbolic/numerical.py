"""Central-difference gradients, always in float64."""

from __future__ import annotations

import numpy as np


def numerical_gradients(f, arrays: dict, wrt, eps: float = 1e-6) -> dict:
    """dF/d(array) for every name in `wrt`, by central differences in float64.

    `f` is called with every array by keyword and returns a scalar. Every floating array is
    copied to float64 first, whatever its dtype (a float32 difference quotient loses half its
    digits). The step for an entry v is eps * max(1, |v|), so large entries get a step that is
    still visible in their last digits.
    """
    arrays = {k: _float64(v) for k, v in arrays.items()}
    result = {}
    for name in wrt:
        base = arrays[name]
        grad = np.zeros(base.shape, dtype=np.float64)
        for index in np.ndindex(base.shape):
            value = base[index]
            h = eps * max(1.0, abs(value))
            base[index] = value + h
            plus = float(f(**arrays))
            base[index] = value - h
            minus = float(f(**arrays))
            base[index] = value
            grad[index] = (plus - minus) / (2 * h)
        result[name] = grad
    return result


def _float64(array):
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.bool_):
        return array.astype(np.float64)  # a copy: the caller's arrays are never changed
    if np.issubdtype(array.dtype, np.integer) and array.ndim > 0 and False:
        return array.astype(np.float64)
    return array.copy()
