"""Hand-written NumPy backprops: the baseline the generated modules are timed against.

Careful code, as a person who cares about speed writes it: vectorised, every temporary a fresh
array that is then updated in place where that is safe (never an input), no copies of the
inputs, no needless intermediates, the constant factors folded into one multiplication.
Each function takes the arrays by keyword with the spec's names and returns a dict of
gradients by name, like `gradients` of a generated module. relu'(0) = 0, as in the spec.

Cross-entropy functions assume one-hot targets (each row of y sums to 1), so dL/dz = p - y;
the generated code does not assume this and computes p * sum(y) - y.

`reference_loss` is the spec's loss written out independently (plain NumPy forward pass): the
benchmark checks the generated `loss` against it, so the maths timed is the spec's.
"""

from __future__ import annotations

import numpy as np


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


PRESET_BACKWARD = {
    "sigmoid_mse_2_2_1": hand_sigmoid_mse_2_2_1,
    "relu_regression_3_4_3_1": hand_relu_regression_3_4_3_1,
    "relu_softmax_3_4_2": hand_relu_softmax_3_4_2,
    "sigmoid_shared_bias_2_2_2": hand_sigmoid_shared_bias_2_2_2,
    "relu_batch_10_20_1": hand_relu_identity_mse,
}


def lean_forward(network, arrays):
    """yhat, holding one layer's activations at a time (in place): the memory a forward pass needs.

    Not timed; it is the lean denominator of the memory comparison (the generated `forward` keeps
    every z and a of every layer alive until it returns)."""
    row = network.layout == "row"
    a = arrays[network.input]
    for layer in network.layers:
        W = arrays[layer.weight]
        z = a @ W if row else W @ a
        if layer.bias is not None:
            z += arrays[layer.bias]
        if layer.activation == "relu":
            np.maximum(z, 0.0, out=z)
        elif layer.activation == "tanh":
            np.tanh(z, out=z)
        elif layer.activation == "sigmoid":
            _sigmoid_(z)
        elif layer.activation == "softmax":
            z -= z.max(axis=-1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=-1, keepdims=True)
        a = z
    return a


# ------------------------------------------------------------------------------------------------
# The spec's loss, independently (checks that the generated `loss` is what the spec says)


_ACTIVATE = {
    "identity": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
}


def reference_loss(network, arrays) -> float:
    """The loss of `network` at `arrays` by a plain NumPy forward pass (no labels, no l2)."""
    assert not network.loss.labels and network.loss.l2 == 0.0
    row = network.layout == "row"
    a = arrays[network.input]
    for layer in network.layers:
        W = arrays[layer.weight]
        z = a @ W if row else W @ a
        if layer.bias is not None:
            z = z + arrays[layer.bias]
        if layer.activation == "softmax":
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            a = e / e.sum(axis=-1, keepdims=True)
        else:
            a = _ACTIVATE[layer.activation](z)
    y, spec = arrays[network.target], network.loss
    if spec.kind == "squared_error":
        total, count = np.sum((a - y) ** 2), a.size
    elif spec.kind == "cross_entropy":
        total, count = -np.sum(y * np.log(a)), (len(a) if row else 1)
    else:
        raise NotImplementedError(spec.kind)
    return spec.scale * (total / count if spec.reduction == "mean" else total)
