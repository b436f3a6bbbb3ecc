"""The hand-written NumPy backprops every implementation is checked and timed against.

Careful code, as a person who cares about speed writes it: vectorised, every temporary a fresh
array that is then updated in place where that is safe (never an input), no copies of the
inputs, no needless intermediates, the constant factors folded into one multiplication. Each
function takes the arrays by keyword with the network's names and returns a dict of gradients
by name, like `gradients` of a generated module; it checks nothing. relu'(0) = 0, as in the spec.

Cross-entropy functions on one-hot targets assume each row of y sums to 1, so dL/dz = p - y; the
generated code does not assume this and computes p * sum(y) - y.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

def _sigmoid_(z):
    """sigmoid(z), in place."""
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1.0
    np.reciprocal(z, out=z)
    return z


def _sigmoid_grad(a):
    """a * (1 - a), sigmoid' from the activation, in one fresh array."""
    g = 1.0 - a
    g *= a
    return g


def _tanh_grad(a):
    """1 - a**2, tanh' from the activation, in one fresh array."""
    g = np.square(a)
    np.subtract(1.0, g, out=g)
    return g


# ------------------------------------------------------------------------------------------------
# Presets (spec values): one straight-line function each


def hand_sigmoid_mse_2_2_1(*, x, y, W1, b1, W2, b2):
    """Row 2-2-1 sigmoid/sigmoid, L = 0.5 * mean((yhat - y)^2) over all elements."""
    a1 = x @ W1
    a1 += b1
    _sigmoid_(a1)
    a2 = a1 @ W2
    a2 += b2
    _sigmoid_(a2)
    d2 = a2 - y
    d2 *= _sigmoid_grad(a2)
    d2 *= 1.0 / y.size
    dW2 = a1.T @ d2
    db2 = d2.sum(axis=0)
    d1 = d2 @ W2.T
    d1 *= _sigmoid_grad(a1)
    return {"W1": x.T @ d1, "b1": d1.sum(axis=0), "W2": dW2, "b2": db2}


def hand_relu_regression_3_4_3_1(*, X, y_true, W1, B1, W2, B2, W3, B3):
    """Column 3-4-3-1 relu/relu/identity, L = 0.5 * sum((yhat - y)^2), the seed's names."""
    h1 = W1 @ X
    h1 += B1
    np.maximum(h1, 0.0, out=h1)
    h2 = W2 @ h1
    h2 += B2
    np.maximum(h2, 0.0, out=h2)
    d3 = W3 @ h2
    d3 += B3
    d3 -= y_true                          # dL/dyhat = yhat - y
    d2 = W3.T @ d3
    d2 *= h2 > 0
    d1 = W2.T @ d2
    d1 *= h1 > 0
    return {"W1": np.outer(d1, X), "B1": d1, "W2": np.outer(d2, h1), "B2": d2,
            "W3": np.outer(d3, h2), "B3": d3}


def hand_relu_softmax_3_4_2(*, x, y, W, b1, U, b2):
    """Column 3-4-2 relu/softmax, L = -sum(y log p) (one-hot y); also dL/dx."""
    h = W @ x
    h += b1
    np.maximum(h, 0.0, out=h)
    p = U @ h
    p += b2
    p -= p.max()
    np.exp(p, out=p)
    p /= p.sum()
    p -= y                                # dL/dtheta = p - y
    d1 = U.T @ p
    d1 *= h > 0
    return {"W": np.outer(d1, x), "b1": d1, "U": np.outer(p, h), "b2": p, "x": W.T @ d1}


def hand_sigmoid_shared_bias_2_2_2(*, x, y, W1, b1, W2, b2):
    """Row 2-2-2 sigmoid/sigmoid, one scalar bias per layer, L = 0.5 * sum((yhat - y)^2)."""
    a1 = x @ W1
    a1 += b1
    _sigmoid_(a1)
    a2 = a1 @ W2
    a2 += b2
    _sigmoid_(a2)
    d2 = a2 - y
    d2 *= _sigmoid_grad(a2)
    dW2 = a1.T @ d2
    db2 = d2.sum()                        # the shared bias feeds every unit: a sum, shape ()
    d1 = d2 @ W2.T
    d1 *= _sigmoid_grad(a1)
    return {"W1": x.T @ d1, "b1": d1.sum(), "W2": dW2, "b2": db2}


def hand_relu_identity_mse(*, x, y, W1, b1, W2, b2):
    """Row relu / identity (relu_batch_10_20_1), L = 0.5 * mean((yhat - y)^2) over all elements."""
    a1 = x @ W1
    a1 += b1
    np.maximum(a1, 0.0, out=a1)          # a1 = relu(z1); a1 > 0 exactly where z1 > 0
    d2 = a1 @ W2
    d2 += b2                             # yhat
    d2 -= y
    d2 *= 1.0 / y.size                   # d(0.5 * mean(e^2)) / d yhat = e / size
    dW2 = a1.T @ d2
    db2 = d2.sum(axis=0)
    d1 = d2 @ W2.T
    d1 *= a1 > 0
    dW1 = x.T @ d1
    db1 = d1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


# ------------------------------------------------------------------------------------------------
# MNIST-sized row-layout ReLU/softmax nets, mean cross-entropy


def hand_relu_softmax_ce(*, x, y, W1, b1, W2, b2):
    """relu / softmax, loss mean over samples of -sum_k y_k log p_k (one-hot rows of y)."""
    a1 = x @ W1
    a1 += b1
    np.maximum(a1, 0.0, out=a1)
    p = a1 @ W2
    p += b2
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)    # softmax
    p -= y                               # dL/dz2 = (p - y) / N (rows of y sum to 1)
    p *= 1.0 / len(x)
    dW2 = a1.T @ p
    db2 = p.sum(axis=0)
    d1 = p @ W2.T
    d1 *= a1 > 0
    dW1 = x.T @ d1
    db1 = d1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def hand_relu_relu_softmax_ce(*, x, y, W1, b1, W2, b2, W3, b3):
    """relu / relu / softmax, mean cross-entropy (one-hot rows of y)."""
    a1 = x @ W1
    a1 += b1
    np.maximum(a1, 0.0, out=a1)
    a2 = a1 @ W2
    a2 += b2
    np.maximum(a2, 0.0, out=a2)
    p = a2 @ W3
    p += b3
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    p -= y
    p *= 1.0 / len(x)
    dW3 = a2.T @ p
    db3 = p.sum(axis=0)
    d2 = p @ W3.T
    d2 *= a2 > 0
    dW2 = a1.T @ d2
    db2 = d2.sum(axis=0)
    d1 = d2 @ W2.T
    d1 *= a1 > 0
    dW1 = x.T @ d1
    db1 = d1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}


# ------------------------------------------------------------------------------------------------
# Deep tanh net: a loop over the layers, as anyone writes it by hand for 10 layers


def make_hand_tanh_mse(depth: int, scale: float = 0.5):
    """Row layout, `depth` tanh layers W1, b1, ..., L = scale * mean((yhat - y)^2)."""
    names = [(f"W{i}", f"b{i}") for i in range(1, depth + 1)]

    def hand_tanh_mse(*, x, y, **params):
        acts = [x]
        for w, b in names:
            a = acts[-1] @ params[w]
            a += params[b]
            np.tanh(a, out=a)
            acts.append(a)
        d = acts[-1] - y
        d *= _tanh_grad(acts[-1])
        d *= 2.0 * scale / y.size
        grads = {}
        for i in range(depth, 0, -1):
            w, b = names[i - 1]
            grads[w] = acts[i - 1].T @ d
            grads[b] = d.sum(axis=0)
            if i > 1:
                d = d @ params[w].T
                d *= _tanh_grad(acts[i - 1])
        return grads

    hand_tanh_mse.__name__ = f"hand_tanh{depth}_mse"
    return hand_tanh_mse


# ------------------------------------------------------------------------------------------------
# Batch normalization, convolution, LSTM


EPS = 1e-5  # the batchnorm's eps (the spec's default)


def hand_batchnorm(*, x, y, W1, b1, gamma2, beta2, W3, b3):
    """dL/d(parameter) of dense(identity) -> batchnorm(relu) -> dense(softmax), mean cross-entropy
    on integer labels y. Row layout, float64, no loops; every temporary is a fresh array updated
    in place (never an input)."""
    n = len(x)
    xhat = x @ W1
    xhat += b1                          # z1 (b1 cancels in the batchnorm, but the spec has it)
    xhat -= xhat.mean(axis=0)           # z1 - mu
    inv = np.square(xhat).mean(axis=0)  # biased variance
    inv += EPS
    np.sqrt(inv, out=inv)               # sigma
    np.reciprocal(inv, out=inv)         # 1 / sigma
    xhat *= inv                         # xhat
    a = xhat * gamma2
    a += beta2                          # z2
    active = a > 0
    np.maximum(a, 0.0, out=a)           # a2 = relu(z2)
    p = a @ W3
    p += b3
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)   # softmax
    p[np.arange(n), y] -= 1.0           # dL/dz3 = (p - onehot(y)) / N
    p *= 1.0 / n
    dW3 = a.T @ p
    db3 = p.sum(axis=0)
    g = p @ W3.T
    g *= active                         # g = dL/dz2
    dbeta = g.sum(axis=0)               # sum g
    dgamma = np.einsum("ij,ij->j", g, xhat)  # sum g xhat
    # dx = (gamma / (N sigma)) (N g - sum g - xhat sum(g xhat)), with dxhat = gamma g factored out
    g *= n
    g -= dbeta
    xhat *= dgamma
    g -= xhat
    inv *= gamma2
    inv *= 1.0 / n
    g *= inv                            # g = dL/dz1
    return {"W1": x.T @ g, "b1": g.sum(axis=0), "gamma2": dgamma, "beta2": dbeta, "W3": dW3, "b3": db3}


def hand_cnn(*, x, y, W1, b1, W4, b4):
    """dL/d(parameter) of conv2d 3x3 (padding 1, stride 1, relu) -> maxpool 2x2 -> flatten
    -> dense softmax, mean cross-entropy on integer labels y. Every temporary is a fresh array
    updated in place (never an input)."""
    n, channels, height, width = x.shape
    filters, _, kh, kw = W1.shape
    h2, w2 = height // 2, width // 2
    # im2col, once: columns[n, (c, p, q), (s, t, i, j)] = xp[n, c, 2i + s + p, 2j + t + q], xp = x
    # padded by one zero; the output pixel (2i + s, 2j + t) is ordered by its pooling offset (s, t)
    xp = np.zeros((n, channels, height + 2, width + 2))
    xp[:, :, 1:-1, 1:-1] = x
    windows = sliding_window_view(xp, (kh, kw), axis=(2, 3)).reshape(n, channels, h2, 2, w2, 2, kh, kw)
    columns = np.ascontiguousarray(windows.transpose(0, 1, 6, 7, 3, 5, 2, 4)).reshape(n, channels*kh*kw, -1)
    a1 = np.matmul(W1.reshape(filters, -1), columns)   # z1[n, f, (s, t, i, j)]: one GEMM per sample
    a1 += b1[:, None]
    np.maximum(a1, 0.0, out=a1)                          # a1 = relu(z1); a1 > 0 exactly where z1 > 0
    # max-pool by reshape: a1[:, :, k] (k = 2s + t) holds entry (s, t) of every window (i, j)
    a1 = a1.reshape(n, filters, 4, h2*w2)
    a2 = np.maximum(a1[:, :, 0], a1[:, :, 1])
    np.maximum(a2, a1[:, :, 2], out=a2)
    np.maximum(a2, a1[:, :, 3], out=a2)
    a3 = a2.reshape(n, -1)                               # flatten: (f, i, j), C order
    z4 = a3 @ W4
    z4 += b4
    z4 -= z4.max(axis=1, keepdims=True)
    p = np.exp(z4)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), y] -= 1.0
    p *= 1.0 / n                                         # p = dL/dz4 = (softmax - onehot(y)) / N
    dW4 = a3.T @ p
    db4 = p.sum(axis=0)
    g = (p @ W4.T).reshape(n, filters, h2*w2)            # dL/da2
    g *= a2 > 0                                          # relu'(z1) at each window's maximum
    # dL/dz1: g goes to the first maximum of its window in row-major order (np.argmax's choice)
    delta1 = np.empty_like(a1)
    unclaimed = np.ones(a2.shape, dtype=bool)
    for k in range(4):                                   # the four window offsets, not pixels
        first = a1[:, :, k] == a2
        first &= unclaimed
        unclaimed ^= first
        np.multiply(g, first, out=delta1[:, :, k])
    dW1 = np.matmul(delta1.reshape(n, filters, -1), columns.transpose(0, 2, 1)).sum(axis=0).reshape(W1.shape)
    db1 = g.sum(axis=(0, 2))                             # = delta1 summed over (n, pixels)
    return {"W1": dW1, "b1": db1, "W4": dW4, "b4": db4}


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def hand_lstm(*, x, y, Wx1, Wh1, b1, W2, b2):
    """An LSTM over x (N, T, D) as cs231n's lstm_forward/lstm_backward write it (gates i, f, o, g
    in that order, zero initial state), its last h through a dense softmax, mean cross-entropy on
    integer labels y: backpropagation through time by hand."""
    N, T, _ = x.shape
    H = Wh1.shape[0]
    h, c = np.zeros((N, H)), np.zeros((N, H))
    cache = []
    for t in range(T):
        a = x[:, t] @ Wx1 + h @ Wh1 + b1
        i, f, o, g = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
        c_prev, h_prev = c, h
        c = f * c + i * g
        tc = np.tanh(c)
        h = o * tc
        cache.append((h_prev, c_prev, i, f, o, g, tc))
    z = h @ W2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = p
    dz[np.arange(N), y] -= 1
    dz /= N
    dW2, db2 = h.T @ dz, dz.sum(axis=0)
    dh, dc = dz @ W2.T, np.zeros((N, H))
    dWx, dWh, db = np.zeros_like(Wx1), np.zeros_like(Wh1), np.zeros_like(b1)
    for t in reversed(range(T)):
        h_prev, c_prev, i, f, o, g, tc = cache[t]
        dc = dc + dh * o * (1 - tc ** 2)
        da = np.hstack((dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dh * tc * o * (1 - o), dc * i * (1 - g ** 2)))
        dWx += x[:, t].T @ da
        dWh += h_prev.T @ da
        db += da.sum(axis=0)
        dh, dc = da @ Wh1.T, dc * f
    return {"Wx1": dWx, "Wh1": dWh, "b1": db, "W2": dW2, "b2": db2}


PRESETS = {
    "sigmoid_mse_2_2_1": hand_sigmoid_mse_2_2_1,
    "relu_regression_3_4_3_1": hand_relu_regression_3_4_3_1,
    "relu_softmax_3_4_2": hand_relu_softmax_3_4_2,
    "sigmoid_shared_bias_2_2_2": hand_sigmoid_shared_bias_2_2_2,
    "relu_batch_10_20_1": hand_relu_identity_mse,
}
