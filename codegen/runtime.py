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
TOKENS = None  # the number of tokens when the input holds tokens (an embedding)
CHECK_FINITE = True
FLOAT = None  # the float dtype a compiled module computes in (None: float arrays keep theirs)
_EXPECTED: dict = {}
KEEP_WORKSPACES = True  # False: no buffers kept between calls (`_Workspace`)
_SPARE: dict = {}  # function name -> the buffers its last call left (`_Workspace`)
KINDS: dict = {}  # a traced module's arrays: name -> "f" (floats) or "d" (data: whole numbers, booleans)


def _arrays(function, values, unknown):
    """The arguments of `function`, checked against SHAPES (N is the input's length).

    The common case (the NumPy float arrays of an earlier call's shapes, labels in range) costs a
    microsecond or two and no pass over the values: NaN and inf are looked for in the results
    (`_finite`); anything else takes the slow path, which converts lists, integers and booleans,
    looks at every entry and explains errors.
    """
    try:
        signature = _signature(values)
    except AttributeError:  # a missing array (None), or a list
        return _converted(function, values, unknown)
    if (unknown or signature != _EXPECTED.get((function, signature[0][1][:1]))
            or CLASSES and function != "forward"
            and not _labels_in_range(values[ARGUMENTS[function].index(TARGET)], CLASSES)
            or TOKENS and not _labels_in_range(values[0], TOKENS)):
        return _converted(function, values, unknown)
    return values


def _signature(arrays):
    return [(type(a), a.shape, a.dtype.char) for a in arrays]


def _labels_in_range(labels, count):
    return labels.min() >= 0 and labels.max() < count


def _finite(results):
    """True when no result holds NaN or inf: the sum of their squares (one BLAS dot each, no
    copy), or of their entries for a result of a few (Python's sum of a short list is quicker than
    a call into NumPy), is finite. A function checks what it computed rather than its arguments:
    a NaN or inf argument that reaches a result makes it non-finite, and the caller then runs the
    slow path over the arguments (`_converted`), which names it. False may also mean that a
    finite sum overflowed (entries beyond 1e154): the slow path then finds nothing and the results
    stand. Always True when CHECK_FINITE is False."""
    if not CHECK_FINITE:
        return True
    total = 0.0
    for result in results:  # Python floats: inf - inf is nan, no warning
        if isinstance(result, (int, float)):  # a constant loss (scale = 0)
            total += result
        else:
            total += sum(result.ravel().tolist()) if result.size <= 16 else float(np.vdot(result, result))
    return total - total == 0.0


def _converted(function, values, unknown):
    names = ARGUMENTS[function]
    for name in unknown:
        if name not in SHAPES:
            close = [known for known in SHAPES if known.lower() == name.lower()]  # w1 for W1
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown array {name!r}{hint}; this network's arrays are {', '.join(SHAPES)}")
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
        count = CLASSES if name == TARGET else TOKENS if name == INPUT else None
        labels = _labelled(name)  # class labels, or tokens: whole numbers from 0 to count - 1
        what = "class labels" if name == TARGET else "tokens"
        if labels and array.dtype.kind not in "iu":
            raise ValueError(f"array {name!r} holds {what}: expected integers of shape "
                             f"{_expected(name, n)}, not {array.dtype} of shape {_shape(array.shape)}")
        if not labels and (array.dtype.kind != "f" or FLOAT and array.dtype != FLOAT):
            array = array.astype(FLOAT or np.float64)  # integers and booleans: computed in float64
        if not _fits(array.shape, _shape_tuple(SHAPES[name], n)):
            raise ValueError(f"array {name!r} has shape {_shape(array.shape)}, expected {_expected(name, n)}")
        if name == INPUT and SHAPES[name][:1] == ("N",):
            n = array.shape[0]
            if n == 0:
                raise ValueError(f"array {name!r} has shape {_shape(array.shape)}: no samples, "
                                 f"expected {_shape(SHAPES[name])} with N >= 1")
        if labels and array.size and not _labels_in_range(array, count):
            raise ValueError(f"array {name!r} holds {what} from {array.min()} to {array.max()}, "
                             f"expected {what.split()[-1]} from 0 to {count - 1}")
        if CHECK_FINITE and not np.isfinite(array).all():
            where = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(f"array {name!r} of shape {_shape(array.shape)} holds {array[tuple(where)]}"
                             f"{' at ' + str(list(map(int, where))) if array.ndim else ''}, expected finite numbers")
        result.append(array)
    # one float dtype for all (the widest, as NumPy's promotion gives the results): the generated
    # code computes in place, which keeps the dtype of the array it computes in
    common = FLOAT or np.result_type(*(a for name, a in zip(names, result) if not _labelled(name)))
    result = [a if _labelled(name) or a.dtype == common else a.astype(common) for name, a in zip(names, result)]
    if len(_EXPECTED) < 64:
        _EXPECTED[(function, result[0].shape[:1])] = _signature(result)
    return result


def _labelled(name):
    """Whether the array `name` holds whole numbers that stay integers: class labels, tokens."""
    return bool(CLASSES if name == TARGET else TOKENS if name == INPUT else None)


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
    """1 / (1 + exp(-z)), in one new array, without `np.errstate` (which costs more than the rest
    at small sizes): -z is capped where exp would overflow (709 in float64, 88 in float32), so
    below z = -709 the result is about 1e-308 in place of a smaller number or 0 (float32: 6e-39
    below -88; float16 is computed in float32)."""
    if z.dtype.itemsize < 4:
        return _sigmoid(z.astype(np.float32)).astype(z.dtype)
    e = np.minimum(-z, 709.0 if z.dtype.itemsize >= 8 else 88.0)
    np.exp(e, out=e)
    e += 1.0
    return np.divide(1.0, e, out=e)


def _softmax(z):
    """exp(z) / sum(exp(z)) over the last axis, shifted by the row maximum (no overflow)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _causal_softmax(s):
    """softmax over the last axis of (..., T, T) scores, entries above the diagonal left out (0)."""
    above = np.triu(np.ones(s.shape[-2:], dtype=bool), 1)
    s = np.where(above, -np.inf, s)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

def _weight_gradient(a, delta):
    """a.T @ delta, the sum over the batch of outer products.

    With one row (batch 1), np.dot and @ hand the product to a general matrix multiply that is
    slow for an inner dimension of one once the result is large; einsum writes it directly.
    """
    if a.shape[0] == 1 and a.size * delta.size > 65536:
        return np.einsum("ni,nj->ij", a, delta)
    return np.dot(a.T, delta)



def _pad_columns(g, start, stop, width):
    """g in the columns start:stop of zeros `width` wide (the gradient of a block of columns)."""
    out = np.zeros(g.shape[:-1] + (width,), dtype=g.dtype)
    out[..., start:stop] = g
    return out


# --- Workspaces: the buffers of large intermediates, kept between calls ---


class _Workspace(dict):
    """The buffers of the large intermediates of one call of a generated function, by name, kept
    for its next call: an array of several megabytes is allocated, and its pages faulted in by the
    operating system, once rather than on every call (glibc gives such arrays back to the system
    when they are freed, and a fresh process would fault in every page of every call).

    `_Workspace(function)` takes the buffers the last completed call of `function` left
    (`_SPARE.pop`, atomic: a call running at the same time in another thread, or a nested one,
    finds none and allocates its own); `empty(name, shape, dtype)` gives the buffer of that name,
    a new one if the shape or dtype changed (the batch size, float32 after float64); `keep()`, at
    the end of the call, leaves them for the next. Only intermediates go into buffers, never a
    result or an array a result is a view of: what a call returns stays the caller's. A call that
    raises keeps nothing. KEEP_WORKSPACES = False: every call allocates its own (less memory
    held between calls).
    """

    def __init__(self, function):
        super().__init__(_SPARE.pop(function, None) or ())
        self.function = function

    def empty(self, name, shape, dtype):
        buffer = self.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self[name] = np.empty(shape, dtype)
        return buffer

    def keep(self):
        if KEEP_WORKSPACES:
            _SPARE[self.function] = self


# --- 2-D convolution and pooling (PyTorch semantics: F.conv2d, F.max_pool2d, F.avg_pool2d) ---
#
# Arrays are (N, C, H, Wd): batch, channels, height, width. `size`, `kernel`, `stride` and
# `padding` are pairs (along the height, along the width). A layer's windows are read through a
# strided view (`_windows`, no copy); the loops below run over the kh*kw offsets inside a window
# only, never over samples, channels or pixels.


def _windows(a, size, stride, writeable=False):
    """The windows of a (N, C, H, Wd) as a view, no copy: windows[n, c, i, j, p, q] = a[n, c, i*sh + p, j*sw + q].

    Shape (N, C, H', W', h, w), H' = (H - h) // sh + 1 and W' = (Wd - w) // sw + 1: the window (i, j)
    starts at row i*sh and column j*sw. `windows[..., p, q]` is the (N, C, H', W') view of every
    window's entry (p, q). Windows may overlap (stride < size), but at one offset (p, q) no two
    share an entry of a, so with writeable=True `windows[..., p, q] += g` is an exact scatter-add.
    """
    # every window, at every start: (N, C, H - h + 1, Wd - w + 1, h, w)
    every = np.lib.stride_tricks.sliding_window_view(a, size, axis=(2, 3), writeable=writeable)
    return every[:, :, ::stride[0], ::stride[1]]  # keep the windows that start on the stride


def _add_windows(g, stride, shape):
    """The sum of window gradients g (N, C, H', W', h, w) at their windows' places: the adjoint of `_windows`.

    out[n, c, i*sh + p, j*sw + q] += g[n, c, i, j, p, q] over all (i, j, p, q), out of shape
    (N, C, *shape) and zero where no window reaches. One `+=` of a whole (N, C, H', W') slice per
    offset (p, q).
    """
    n, channels, out_h, out_w, h, w = g.shape
    out = np.zeros((n, channels) + tuple(shape), dtype=g.dtype)
    targets = _windows(out, (h, w), stride, writeable=True)  # targets[..., p, q] is a view into out
    for p, q in np.ndindex(h, w):
        targets[:, :, :, :, p, q] += g[:, :, :, :, p, q]
    return out


def _padded(x, padding):
    """x (N, C, H, Wd) with ph rows of zeros above and below and pw columns left and right."""
    ph, pw = padding
    if not (ph or pw):
        return x
    n, channels, height, width = x.shape
    out = np.zeros((n, channels, height + 2*ph, width + 2*pw), dtype=x.dtype)  # faster than np.pad
    out[:, :, ph:ph + height, pw:pw + width] = x
    return out


def _im2col(x, kernel, stride, padding, pooled=None, out=None):
    """im2col: the windows of the padded x, copied to columns[n, c, p, q, i, j] = xp[n, c, i*sh + p, j*sw + q].

    Shape (N, C, kh, kw, H', W'), C-contiguous: for each sample, a (C*kh*kw, H'*W') matrix whose
    column (i, j) holds the window (i, j), so that a convolution is one matrix product per sample.
    The forward pass and the weight gradient share it (`_conv2d`, `_conv2d_weight_gradient`).

    pooled=(h, w): the columns in the order of the h x w max pooling that tiles the convolution's
    output (H' and W' multiples of h and w): shape (N, C, kh, kw, h*w, H'/h * W'/w), the column of
    output pixel (h*i + s, w*j + t) at [..., s*w + t, i*(W'/w) + j]. The convolution is then
    computed in that order too: entry (s, t) of every pooling window is one contiguous block
    (`_max_pool2d_pooled`). `out`: a C-contiguous array of the shape to write the columns into.
    """
    windows = _windows(_padded(x, padding), kernel, stride)  # a view (N, C, H', W', kh, kw)
    n, channels, out_h, out_w, kh, kw = windows.shape
    if pooled is None:
        windows = windows.transpose(0, 1, 4, 5, 2, 3)  # (N, C, kh, kw, H', W')
    else:
        h, w = pooled
        windows = windows.reshape(n, channels, out_h // h, h, out_w // w, w, kh, kw).transpose(0, 1, 6, 7, 3, 5, 2, 4)
    if out is None:
        out = np.empty(windows.shape, dtype=x.dtype)
    np.copyto(out.reshape(windows.shape), windows)  # the copy
    return out if pooled is None else out.reshape(n, channels, kh, kw, h * w, -1)


def _max_pool2d_pooled(a, shape, out=None):
    """Max pooling of a convolution computed in pooling order (`_im2col(..., pooled=(h, w))`):
    a (N, C, h*w, H'*W') holds entry k = s*w + t of every window (i, j) at [:, :, k, i*W' + j];
    out[n, c, i, j] = max over k, shape (N, C, H', W') = (N, C) + shape. h*w - 1 maxima of
    contiguous blocks; NaN wins, as in PyTorch. `out`: an array of that shape to write into.
    """
    n, channels, k, _ = a.shape  # k >= 2
    flat = np.maximum(a[:, :, 0], a[:, :, 1], out=None if out is None else out.reshape(n, channels, -1))
    for i in range(2, k):
        np.maximum(flat, a[:, :, i], out=flat)
    return flat.reshape((n, channels) + tuple(shape))


def _max_pool2d_pooled_gradient(a, largest, delta, out=None):
    """dL/da (N, C, h*w, H'*W') of largest = `_max_pool2d_pooled(a, ...)` from delta = dL/dlargest
    (N, C, H', W'), in a's pooling order: each window's delta goes to its FIRST maximum in
    row-major order (as `_max_pool2d_gradient`), the other entries get 0. `out`: a C-contiguous
    array of a's shape and the result's dtype to write into (a workspace).
    """
    n, channels, k, pixels = a.shape
    largest, delta = largest.reshape(n, channels, pixels), delta.reshape(n, channels, pixels)
    gradient = np.empty(a.shape, dtype=np.result_type(a, delta)) if out is None else out
    unclaimed = np.ones(largest.shape, dtype=bool)  # the windows whose maximum is not found yet
    for i in range(k):  # row-major (s, t), so the first maximum claims its window
        first = a[:, :, i] == largest
        first &= unclaimed
        unclaimed ^= first
        np.multiply(delta, first, out=gradient[:, :, i])
    return gradient


def _conv2d(columns, W, out=None):
    """The cross-correlation of x (N, C, H, Wd) with the filters W (F, C, kh, kw), no bias (F.conv2d),
    from the columns of x, `_im2col(x, (kh, kw), stride, padding)`:

    y[n, f, i, j] = sum_{c, p, q} W[f, c, p, q] * xp[n, c, i*sh + p, j*sw + q], xp = x padded by
    (ph, pw) zeros; y has shape (N, F, H', W'), H' = (H + 2ph - kh) // sh + 1, W' likewise.
    `out`: a C-contiguous array of that shape to write y into (a workspace).
    """
    filters, channels, kh, kw = W.shape
    n, _, _, _, out_h, out_w = columns.shape  # (N, C, kh, kw, H', W')
    # per sample: (F, C*kh*kw) @ (C*kh*kw, H'*W'), the batch as the leading axis of np.matmul
    y = np.matmul(W.reshape(filters, channels*kh*kw), columns.reshape(n, channels*kh*kw, out_h*out_w),
                  out=None if out is None else out.reshape(n, filters, out_h*out_w))
    return y.reshape(n, filters, out_h, out_w)


def _conv2d_input_gradient(delta, W, stride, padding, size):
    """dL/dx (N, C, H, Wd) of the convolution of x with W, stride and padding (`_conv2d`), from delta = dL/dy (N, F, H', W').

    dx[n, c, i*sh + p - ph, j*sw + q - pw] += sum_f delta[n, f, i, j] * W[f, c, p, q] over all
    (i, j, p, q), size = (H, Wd). Input rows and columns that no window reaches (when
    (H + 2ph - kh) % sh != 0) get 0; gradients that land in the padding are dropped.
    """
    n, filters, out_h, out_w = delta.shape
    _, channels, kh, kw = W.shape
    # the gradient of the im2col columns, per sample (C*kh*kw, F) @ (F, H'*W'):
    # g[n, (c, p, q), (i, j)] = sum_f W[f, (c, p, q)] * delta[n, f, (i, j)]
    g = np.matmul(W.reshape(filters, channels*kh*kw).T, delta.reshape(n, filters, out_h*out_w))
    # (N, C, kh, kw, H', W') -> the window layout (N, C, H', W', kh, kw) of `_add_windows`, a view
    g = g.reshape(n, channels, kh, kw, out_h, out_w).transpose(0, 1, 4, 5, 2, 3)
    ph, pw = padding
    dxp = _add_windows(g, stride, (size[0] + 2*ph, size[1] + 2*pw))  # dL/dxp, the padded input
    return np.ascontiguousarray(dxp[:, :, ph:ph + size[0], pw:pw + size[1]])  # crop the padding


def _conv2d_weight_gradient(columns, delta):
    """dL/dW (F, C, kh, kw) of `_conv2d(columns, W)` from delta = dL/dy (N, F, H', W'), the columns
    `_im2col(x, (kh, kw), stride, padding)` of its input x:

    dW[f, c, p, q] = sum_{n, i, j} delta[n, f, i, j] * xp[n, c, i*sh + p, j*sw + q].
    """
    n, channels, kh, kw, out_h, out_w = columns.shape  # (N, C, kh, kw, H', W')
    filters = delta.shape[1]
    # per sample (F, H'*W') @ (H'*W', C*kh*kw): the transposed columns are a view (BLAS reads them transposed)
    per_sample = np.matmul(delta.reshape(n, filters, out_h*out_w),
                           columns.reshape(n, channels*kh*kw, out_h*out_w).transpose(0, 2, 1))
    return per_sample.sum(axis=0).reshape(filters, channels, kh, kw)


def _window_max(windows, out=None):
    """The maximum of each window of a windows view (..., h, w): out[...] = max_{p, q} windows[..., p, q].

    By h*w - 1 elementwise maxima of the (...) offset slices: NumPy's own reduction over the two
    short window axes of a strided view is many times slower. NaN wins, as in PyTorch. `out`: an
    array of shape (...) to write the result into (None: a new one).
    """
    entries = [windows[..., p, q] for p, q in np.ndindex(*windows.shape[-2:])]  # views, row-major
    if len(entries) == 1:
        if out is None:
            return entries[0].copy()
        np.copyto(out, entries[0])
        return out
    out = np.maximum(entries[0], entries[1], out=out)  # a new contiguous array, or `out`
    for entry in entries[2:]:
        np.maximum(out, entry, out=out)
    return out


def _max_pool2d(a, size, stride, out=None):
    """Max pooling of a (N, C, H, Wd) (F.max_pool2d without padding).

    out[n, c, i, j] = max_{p, q} a[n, c, i*sh + p, j*sw + q], shape (N, C, H', W'),
    H' = (H - h) // sh + 1, W' = (Wd - w) // sw + 1. Separable: the maximum over the h rows of
    each window for every column, then over the w columns (h + w - 2 maxima, not h*w - 1).
    `out`: an array of that shape to write the result into (a workspace).
    """
    (h, w), (sh, sw) = size, stride
    column_max = _window_max(_windows(a, (h, 1), (sh, 1)))  # (N, C, H', Wd): max_p a[n, c, i*sh + p, col]
    return _window_max(_windows(column_max, (1, w), (1, sw)), out)  # (N, C, H', W')


def _max_pool2d_gradient(a, largest, delta, size, stride, out=None):
    """dL/da (N, C, H, Wd) of largest = `_max_pool2d(a, size, stride)` from delta = dL/dlargest (N, C, H', W').

    da[n, c, i*sh + p, j*sw + q] += delta[n, c, i, j] for the FIRST (p, q) in row-major order with
    a[n, c, i*sh + p, j*sw + q] = out[n, c, i, j]: the maximum np.argmax picks, and PyTorch's CPU
    kernel among ties. Overlapping windows (stride < size) add up; entries no window picks get 0.
    (Non-finite values differ from PyTorch: an inf or NaN in delta spreads NaN over its window,
    0 * inf; a window holding NaN passes no gradient, where PyTorch picks its last NaN.)
    `out`: a C-contiguous array of a's shape and the result's dtype to write dL/da into (a workspace).
    """
    windows = _windows(a, size, stride)  # (N, C, H', W', h, w)
    disjoint = stride[0] >= size[0] and stride[1] >= size[1]  # no entry of a in two windows
    tiled = tuple(stride) == tuple(size) and largest.shape[2] * size[0] == a.shape[2] \
        and largest.shape[3] * size[1] == a.shape[3]  # every entry of a in one window: all written below
    if out is None:
        gradient = (np.empty if tiled else np.zeros)(a.shape, dtype=np.result_type(a, delta))
    else:
        gradient = out
        if not tiled:
            gradient[...] = 0
    targets = _windows(gradient, size, stride, writeable=True)  # targets[..., p, q] is a view into gradient
    unclaimed = np.ones(largest.shape, dtype=bool)  # the windows whose maximum is not found yet
    for p, q in np.ndindex(*size):  # row-major, so the first maximum claims its window
        first = (windows[:, :, :, :, p, q] == largest) & unclaimed
        unclaimed ^= first
        if disjoint:  # each entry gets one window's gradient at most: write it (faster than +=)
            np.multiply(delta, first, out=targets[:, :, :, :, p, q])
        else:  # no two windows share an entry at one offset (p, q)
            targets[:, :, :, :, p, q] += delta * first
    return gradient


def _avg_pool2d(a, size, stride, out=None):
    """Average pooling of a (N, C, H, Wd) (F.avg_pool2d without padding).

    out[n, c, i, j] = (1 / (h*w)) * sum_{p, q} a[n, c, i*sh + p, j*sw + q], shape (N, C, H', W'):
    the sum of the h*w offset slices, in row-major order, then one division. `out`: an array of
    that shape to write the result into (a workspace).
    """
    windows = _windows(a, size, stride)
    if out is None:
        total = windows[:, :, :, :, 0, 0].copy()  # a contiguous (N, C, H', W')
    else:
        total = out
        np.copyto(total, windows[:, :, :, :, 0, 0])
    for p, q in list(np.ndindex(*size))[1:]:
        total += windows[:, :, :, :, p, q]
    if out is None:
        return total / (size[0] * size[1])  # integers give floats
    return np.divide(total, size[0] * size[1], out=total)


def _avg_pool2d_gradient(delta, size, stride, shape):
    """dL/da (N, C, H, Wd) of `_avg_pool2d(a, size, stride)` from delta = dL/dout (N, C, H', W'), shape = (H, Wd).

    da[n, c, i*sh + p, j*sw + q] += delta[n, c, i, j] / (h*w) for every (i, j, p, q): overlapping
    windows add up, entries no window reaches get 0.
    """
    share = delta / (size[0] * size[1])  # each entry of a window gets this share, (N, C, H', W')
    g = np.broadcast_to(share[:, :, :, :, None, None], share.shape + tuple(size))  # (N, C, H', W', h, w), no copy
    return _add_windows(g, stride, shape)


# ---------------------------------------------------------------------------------------------
# Traced programs: writes, scatters and maxima, and the argument check of a traced module


def _index_add(g, shape, index):
    """zeros(shape) with g added at `index`: an entry indexed twice receives both (a gather's gradient)."""
    out = np.zeros(shape, dtype=np.result_type(g, 1.0))
    np.add.at(out, index, g)
    return out


def _set_item(a, index, value):
    """A copy of `a` with a[index] = value: a write in place, as what it computes."""
    out = np.array(a, dtype=np.result_type(a, value))
    out[index] = value
    return out


def _max_gradient(a, g, axis, keepdims):
    """dL/da of max(a, axis), given g: shared evenly by the entries equal to their maximum."""
    if not keepdims:
        g = np.expand_dims(g, axis)
    mask = a == a.max(axis=axis, keepdims=True)
    return mask * (g / mask.sum(axis=axis, keepdims=True, dtype=np.result_type(a, g)))  # float32 kept


def _program_arrays(function, values, unknown):
    """The arguments of a traced module's `function`, checked against SHAPES and KINDS: a missing,
    misshapen or wrongly typed array is a ValueError naming it."""
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ValueError(f"{function}() got unknown array(s) {names}; it takes {', '.join(ARGUMENTS[function])}")
    out = []
    for name, value in zip(ARGUMENTS[function], values):
        if value is None:
            raise ValueError(f"{function}() needs the array {name} of shape {SHAPES[name]}")
        array = np.asarray(value)
        if array.shape != SHAPES[name]:
            raise ValueError(f"{name} has shape {array.shape}, expected {SHAPES[name]}")
        if KINDS[name] == "f" and array.dtype.kind not in "fiub":
            raise ValueError(f"{name} holds {array.dtype}, expected floating-point numbers")
        if KINDS[name] != "f" and array.dtype.kind not in "iub":
            raise ValueError(f"{name} holds {array.dtype}, expected whole numbers (data)")
        if name in RANGES and array.dtype.kind == "b":  # True and False would be a mask, not indices
            raise ValueError(f"{name} holds booleans, expected whole numbers (an index into an axis of {RANGES[name]})")
        if name in RANGES and array.size and not -RANGES[name] <= array.min() <= array.max() < RANGES[name]:
            raise ValueError(f"{name} holds {array.min()} to {array.max()}: as an index into an axis of "
                             f"{RANGES[name]} entries it must lie from {-RANGES[name]} to {RANGES[name] - 1}")
        out.append(array.astype(np.float64) if KINDS[name] == "f" and array.dtype.kind != "f" else array)
    return out


def _program_nonfinite(function, values):
    """A traced module's results hold NaN or inf: ValueError naming the first argument that holds
    one, if any (else the results stand: the function overflowed on finite arrays)."""
    for name, array in zip(ARGUMENTS[function], values):
        bad = ~np.isfinite(array) if KINDS[name] == "f" else None
        if bad is not None and bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} holds {array[index]} at {index}: expected finite numbers")


NEEDS = {  # conv/pool helper -> every other runtime function it calls, directly or not
    "_windows": (),
    "_add_windows": ("_windows",),
    "_padded": (),
    "_im2col": ("_windows", "_padded"),
    "_conv2d": (),
    "_conv2d_input_gradient": ("_add_windows", "_windows"),
    "_conv2d_weight_gradient": (),
    "_window_max": (),
    "_max_pool2d": ("_window_max", "_windows"),
    "_max_pool2d_gradient": ("_windows",),
    "_max_pool2d_pooled": (),
    "_max_pool2d_pooled_gradient": (),
    "_avg_pool2d": ("_windows",),
    "_avg_pool2d_gradient": ("_add_windows", "_windows"),
}
