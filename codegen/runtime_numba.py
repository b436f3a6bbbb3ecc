"""The run-time helpers of the compiled (Numba) modules, as real, tested functions.

Numba compiles a subset of NumPy: no `keepdims`, no `np.errstate`, no `np.einsum`. These are the
helpers of `codegen.runtime` that the NumPy modules use, written in that subset (over the last
axis of an array of any number of axes, as a 2-D array of rows); `codegen.numba_backend` copies the
ones a module uses into it, each under `@numba.njit`. They are plain Python functions here, so the
tests run them without Numba too.
"""

import numpy as np


def _sigmoid(z):
    """1 / (1 + exp(-z)); compiled code raises no floating-point warnings, and exp(-z) = inf for
    z < -709 gives 0, as it should."""
    return 1.0 / (1.0 + np.exp(-z))


def _rows(a):
    """`a` as a 2-D array of rows over its last axis (a view: a new array is contiguous)."""
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


def _row_sum(a):
    """The sum over the last axis, kept as an axis of length 1 (NumPy's `keepdims=True`), in
    float64 (a mask's sum counts its True entries)."""
    rows = _rows(a)
    out = np.empty((rows.shape[0], 1))
    for n in range(rows.shape[0]):
        out[n, 0] = rows[n].sum()
    return out.reshape(a.shape[:-1] + (1,))


def _softmax(z):
    """exp(z) / sum(exp(z)) over the last axis, shifted by the maximum of each row."""
    rows = _rows(z)
    out = np.empty_like(rows)
    for n in range(rows.shape[0]):
        e = np.exp(rows[n] - rows[n].max())
        out[n] = e / e.sum()
    return out.reshape(z.shape)


def _log_softmax(z):
    """log(softmax(z)) over the last axis, from the shifted logits."""
    rows = _rows(z)
    out = np.empty_like(rows)
    for n in range(rows.shape[0]):
        shifted = rows[n] - rows[n].max()
        out[n] = shifted - np.log(np.exp(shifted).sum())
    return out.reshape(z.shape)


def _weight_gradient(a, delta):
    """a.T @ delta, the sum over the batch of outer products."""
    return np.dot(a.T, delta)


def _sum_squares(a):
    """The sum of the squares of an array's entries: finite when every entry is (or NaN or inf
    when one is not, or when it overflows); the compiled functions' look for NaN and inf. Compiled
    with fastmath "reassoc" only: the sum in any order (vectorized), NaN and inf kept."""
    total = 0.0
    for value in np.asarray(a).flat:  # any layout, and a number (a loss) too
        total += value * value
    return total


def _one_hot(labels, count):
    """The rows of the identity of size `count` picked by `labels` (NumPy: np.eye(count,
    dtype=bool)[labels]), for a label (0-d) or a vector of them."""
    flat = labels.ravel()
    out = np.zeros((flat.shape[0], count), dtype=np.bool_)
    for n in range(flat.shape[0]):
        out[n, flat[n]] = True
    return out.reshape(labels.shape + (count,))


def _lookup(table, indices):
    """The rows of `table` picked by integer `indices` of any shape (NumPy: table[indices])."""
    flat = np.ascontiguousarray(indices).ravel()
    rows = np.empty((flat.shape[0], table.shape[1]), dtype=table.dtype)
    for k in range(flat.shape[0]):
        rows[k] = table[flat[k]]
    return rows.reshape(indices.shape + (table.shape[1],))


def _index_add(g, shape, index):
    """zeros(shape) with the rows of g added at the rows `index[0]` names (any shape of integers):
    a row picked twice receives both (the gradient of `_lookup`)."""
    flat = np.ascontiguousarray(index[0]).ravel()
    rows = np.ascontiguousarray(g).reshape(flat.shape[0], -1)
    out = np.zeros((shape[0], rows.shape[1]))
    for k in range(flat.shape[0]):
        out[flat[k]] += rows[k]
    return out.reshape(shape)


def _dot(a, b):
    """The product of an array of any number of axes with a matrix or a vector over its last axis
    (NumPy's np.dot; Numba's takes vectors and matrices): a sequence (N, T, D) times W (D, H) is
    (N, T, H)."""
    product = np.dot(_rows(a), b)
    return product.reshape(a.shape[:-1] + product.shape[1:])


def _steps_outer(a, g):
    """A^T g summed over every axis but the last (NumPy: np.tensordot(a, g, axes=([0, 1], [0, 1]))):
    the weight gradient of a dense layer applied at every step of a sequence."""
    return np.dot(_rows(a).T, _rows(g))
