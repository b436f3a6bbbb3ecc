"""The run-time helpers of the generated modules, as real, tested functions.

`codegen.module` copies the functions a module needs into it (`inspect.getsource`), so a
generated module imports nothing but NumPy. The names below the imports are the constants every
generated module defines for itself; here they only make this file valid Python.
"""

import numpy as np

SHAPES: dict = {}  # array name -> shape, "N" for the batch size
ARGUMENTS: dict = {}  # function name -> the names of its arguments, in order
INPUT, TARGET = "x", "y"
CLASSES = None  # the number of classes when the target holds class labels
CHECK_FINITE = True
_EXPECTED: dict = {}


def _arrays(function, values, unknown):
    """The arguments of `function`, checked against SHAPES (N is the input's length).

    The common case (the NumPy float arrays of an earlier call's shapes, labels in range, finite
    values) costs a few microseconds and one pass over the arrays (CHECK_FINITE); anything else
    takes the slow path, which converts lists, integers and booleans, and explains errors.
    """
    try:
        signature = _signature(values)
    except AttributeError:  # a missing array (None), or a list
        return _converted(function, values, unknown)
    if (unknown or signature != _EXPECTED.get((function, signature[0][1][:1]))
            or CLASSES and function != "forward"
            and not _labels_in_range(values[ARGUMENTS[function].index(TARGET)])
            or CHECK_FINITE and not _finite(values)):
        return _converted(function, values, unknown)
    return values


def _signature(arrays):
    return [(type(a), a.shape, a.dtype.kind) for a in arrays]


def _labels_in_range(labels):
    return labels.min() >= 0 and labels.max() < CLASSES


def _finite(values):
    """True when no array holds NaN or inf.

    The small arrays are joined and checked in one pass; each large one by its sum of squares
    (BLAS dot, faster than np.isfinite), where False may also mean that the sum overflowed
    (entries beyond 1e154): the slow path then checks entry by entry.
    """
    small = [a for a in values if a.size <= 4096]
    if small:
        joined = np.concatenate(small, axis=None)
        if np.count_nonzero(np.isfinite(joined)) != joined.size:
            return False
    large = [a.reshape(-1) for a in values if a.size > 4096]
    if not large:
        return True
    with np.errstate(all="ignore"):
        return all(np.isfinite(np.dot(a, a)) for a in large)


def _converted(function, values, unknown):
    names = ARGUMENTS[function]
    for name in unknown:
        if name not in SHAPES:
            raise ValueError(f"unknown array {name!r}; this network's arrays are {', '.join(SHAPES)}")
    result, n = [], None  # n: the batch size N, once the input has fixed it
    for name, array in zip(names, values):
        if array is None:
            raise ValueError(f"missing array {name!r}, expected shape {_expected(name, n)}")
        try:
            array = np.asarray(array)
        except ValueError:  # ragged nested lists
            raise ValueError(f"array {name!r} is not rectangular, expected shape {_expected(name, n)}") from None
        if array.dtype.kind not in "biuf":
            raise ValueError(f"array {name!r} has dtype {array.dtype}, expected real numbers")
        labels = CLASSES and name == TARGET
        if labels and array.dtype.kind not in "iu":
            raise ValueError(f"array {name!r} holds class labels: expected integers, not {array.dtype}")
        if not labels and array.dtype.kind != "f":  # integers and booleans: computed in float64
            array = array.astype(np.float64)
        if not _fits(array.shape, _shape_tuple(SHAPES[name], n)):
            raise ValueError(f"array {name!r} has shape {_shape(array.shape)}, expected {_expected(name, n)}")
        if name == INPUT and SHAPES[name][:1] == ("N",):
            n = array.shape[0]
            if n == 0:
                raise ValueError(f"array {name!r} has shape {_shape(array.shape)}: no samples, "
                                 f"expected {_shape(SHAPES[name])} with N >= 1")
        if labels and not _labels_in_range(array):
            raise ValueError(f"array {name!r} holds class labels from {array.min()} to {array.max()}, "
                             f"expected labels from 0 to {CLASSES - 1}")
        if CHECK_FINITE and not np.isfinite(array).all():
            where = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(f"array {name!r} of shape {_shape(array.shape)} holds {array[tuple(where)]}"
                             f"{' at ' + str(list(map(int, where))) if array.ndim else ''}, expected finite numbers")
        result.append(array)
    if len(_EXPECTED) < 64:
        _EXPECTED[(function, result[0].shape[:1])] = _signature(result)
    return result


def _fits(shape, expected):
    """Whether `shape` is `expected`, where an "N" left in `expected` stands for any length."""
    return len(shape) == len(expected) and all(want in ("N", got) for got, want in zip(shape, expected))


def _expected(name, n):
    """The expected shape of an array, in words: N stays N until the input fixes it."""
    if n is None or "N" not in SHAPES[name]:
        return _shape(SHAPES[name])
    return f"{_shape(SHAPES[name], n)} (N = {n}, the samples in {INPUT!r})"


def _shape_tuple(shape, n):
    """`shape` with the batch size n in place of N (N stays while n is None)."""
    return shape if n is None else tuple(n if d == "N" else d for d in shape)


def _shape(shape, n=None):
    shape = _shape_tuple(shape, n)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _log_softmax(z):
    """log(softmax(z)) over the last axis, from the shifted logits (finite for any z)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _sigmoid(z):
    """1 / (1 + exp(-z)); where exp(-z) overflows to inf, the result is 0, as it should be."""
    with np.errstate(over="ignore"):
        return 1/(1 + np.exp(-z))


def _softmax(z):
    """exp(z) / sum(exp(z)) over the last axis, shifted by the row maximum (no overflow)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _weight_gradient(a, delta):
    """a.T @ delta, the sum over the batch of outer products.

    With one row (batch 1), np.dot and @ hand the product to a general matrix multiply that is
    slow for an inner dimension of one once the result is large; einsum writes it directly.
    """
    if a.shape[0] == 1 and a.size * delta.size > 65536:
        return np.einsum("ni,nj->ij", a, delta)
    return np.dot(a.T, delta)
