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


def _weight_gradient_squares(a, delta):
    """(a.T @ delta, the sum of the squares of its entries): a dense layer's weight gradient that
    is also a result, and its share of the look for NaN and inf, in one pass. At batch 1 it is an
    outer product, written as a loop: a matrix multiply with an inner dimension of one, then a
    second pass over its (large) result, took three times as long."""
    if a.shape[0] != 1:
        out = np.dot(a.T, delta)
        return out, _sum_squares(out)
    out = np.empty((a.shape[1], delta.shape[1]), dtype=delta.dtype)  # as np.dot's: float32 stays float32
    total = 0.0
    for i in range(a.shape[1]):
        ai = a[0, i]
        for j in range(delta.shape[1]):
            value = ai * delta[0, j]
            out[i, j] = value
            total += value * value
    return out, total


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


# ---------------------------------------------------------------------------------------------
# Images (N, C, H, W): the convolution and pooling helpers of codegen.runtime, as loops


def _im2col(x, kernel, stride, padding):
    """columns[n, c, p, q, i, j] = xp[n, c, i*sh + p, j*sw + q], xp = x padded by zeros: for
    each sample a (C*kh*kw, H'*W') matrix whose column (i, j) holds the window (i, j)."""
    n, channels, height, width = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    out_h, out_w = (height + 2*ph - kh) // sh + 1, (width + 2*pw - kw) // sw + 1
    columns = np.zeros((n, channels, kh, kw, out_h, out_w), dtype=x.dtype)
    for b in range(n):
        for c in range(channels):
            for p in range(kh):
                for q in range(kw):
                    for i in range(out_h):
                        row = i*sh + p - ph
                        if 0 <= row < height:
                            for j in range(out_w):
                                col = j*sw + q - pw
                                if 0 <= col < width:
                                    columns[b, c, p, q, i, j] = x[b, c, row, col]
    return columns


def _conv2d(columns, W):
    """The cross-correlation of x with the filters W (F, C, kh, kw) from the columns of x: one
    matrix product per sample, (F, C*kh*kw) @ (C*kh*kw, H'*W')."""
    n, channels, kh, kw, out_h, out_w = columns.shape
    filters = W.shape[0]
    matrix = np.ascontiguousarray(W).reshape(filters, channels*kh*kw)
    flat = columns.reshape(n, channels*kh*kw, out_h*out_w)
    y = np.empty((n, filters, out_h*out_w), dtype=columns.dtype)
    for b in range(n):
        y[b] = np.dot(matrix, flat[b])
    return y.reshape(n, filters, out_h, out_w)


def _conv2d_weight_gradient(columns, delta):
    """dL/dW (F, C, kh, kw) = sum over the samples of delta[n] (F, H'*W') @ columns[n].T."""
    n, channels, kh, kw, out_h, out_w = columns.shape
    filters = delta.shape[1]
    flat = columns.reshape(n, channels*kh*kw, out_h*out_w)
    rows = np.ascontiguousarray(delta).reshape(n, filters, out_h*out_w)
    out = np.zeros((filters, channels*kh*kw), dtype=columns.dtype)
    for b in range(n):
        out += np.dot(rows[b], flat[b].T)
    return out.reshape(filters, channels, kh, kw)


def _conv2d_input_gradient(delta, W, stride, padding, size):
    """dL/dx (N, C, H, W) of the convolution: the columns' gradient W.T @ delta[n] per sample,
    added back at the windows' places; what lands in the padding is dropped."""
    n, filters, out_h, out_w = delta.shape
    _, channels, kh, kw = W.shape
    (sh, sw), (ph, pw), (height, width) = stride, padding, size
    matrix = np.ascontiguousarray(W).reshape(filters, channels*kh*kw).T.copy()
    rows = np.ascontiguousarray(delta).reshape(n, filters, out_h*out_w)
    dx = np.zeros((n, channels, height, width), dtype=delta.dtype)
    for b in range(n):
        g = np.dot(matrix, rows[b]).reshape(channels, kh, kw, out_h, out_w)
        for c in range(channels):
            for p in range(kh):
                for q in range(kw):
                    for i in range(out_h):
                        row = i*sh + p - ph
                        if 0 <= row < height:
                            for j in range(out_w):
                                col = j*sw + q - pw
                                if 0 <= col < width:
                                    dx[b, c, row, col] += g[c, p, q, i, j]
    return dx


def _max_pool2d(a, size, stride):
    """out[n, c, i, j] = max over the window (i, j) of a (no padding); NaN wins, as in PyTorch."""
    n, channels, height, width = a.shape
    (h, w), (sh, sw) = size, stride
    out_h, out_w = (height - h) // sh + 1, (width - w) // sw + 1
    out = np.empty((n, channels, out_h, out_w), dtype=a.dtype)
    for b in range(n):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    best = a[b, c, i*sh, j*sw]
                    for p in range(h):
                        for q in range(w):
                            value = a[b, c, i*sh + p, j*sw + q]
                            if value > best or value != value:
                                best = value
                                if value != value:
                                    break
                        if best != best:
                            break
                    out[b, c, i, j] = best
    return out


def _max_pool2d_gradient(a, largest, delta, size, stride):
    """dL/da of `_max_pool2d`: each window's gradient goes to its first maximum in row-major order
    (np.argmax's, and PyTorch's among ties); a window holding NaN passes none."""
    n, channels, out_h, out_w = largest.shape
    (h, w), (sh, sw) = size, stride
    gradient = np.zeros(a.shape, dtype=delta.dtype)
    for b in range(n):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    found = False
                    for p in range(h):
                        for q in range(w):
                            if not found and a[b, c, i*sh + p, j*sw + q] == largest[b, c, i, j]:
                                gradient[b, c, i*sh + p, j*sw + q] += delta[b, c, i, j]
                                found = True
    return gradient


def _avg_pool2d(a, size, stride):
    """out[n, c, i, j] = the mean of the window (i, j) of a (no padding)."""
    n, channels, height, width = a.shape
    (h, w), (sh, sw) = size, stride
    out_h, out_w = (height - h) // sh + 1, (width - w) // sw + 1
    out = np.zeros((n, channels, out_h, out_w), dtype=a.dtype)
    for b in range(n):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    total = 0.0
                    for p in range(h):
                        for q in range(w):
                            total += a[b, c, i*sh + p, j*sw + q]
                    out[b, c, i, j] = total / (h * w)
    return out


def _avg_pool2d_gradient(delta, size, stride, shape):
    """dL/da (N, C, *shape) of `_avg_pool2d`: each window's gradient shared evenly by its entries."""
    n, channels, out_h, out_w = delta.shape
    (h, w), (sh, sw) = size, stride
    gradient = np.zeros((n, channels, shape[0], shape[1]), dtype=delta.dtype)
    for b in range(n):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    share = delta[b, c, i, j] / (h * w)
                    for p in range(h):
                        for q in range(w):
                            gradient[b, c, i*sh + p, j*sw + q] += share
    return gradient


def _sum_channels(a):
    """The sum of an image batch (N, C, H, W) over all but its channels: (C,)."""
    out = np.zeros(a.shape[1], dtype=np.float64)
    for b in range(a.shape[0]):
        for c in range(a.shape[1]):
            out[c] += a[b, c].sum()
    return out


def _sum_samples(a):
    """The sum of each sample of an image batch (N, C, H, W): (N,)."""
    out = np.zeros(a.shape[0], dtype=np.float64)
    for b in range(a.shape[0]):
        out[b] = a[b].sum()
    return out
