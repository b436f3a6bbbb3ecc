"""Learner-style NumPy functions, written as people write them (cs231n's layers and losses, the
seed documents' networks): the table that `tests/test_trace.py` traces, generates and checks.

Each CASES entry: (function, arrays(rng) -> dict of example arrays, torch reference or None).
A torch reference takes the same arrays as float64 tensors and returns the same value.
"""

import numpy as np

# -- layers (array-valued: gradients with the upstream dout) -----------------------------------


def affine_forward(x, w, b):
    N = x.shape[0]
    out = x.reshape(N, -1) @ w + b
    return out


def relu_forward(x):
    out = np.maximum(0, x)
    return out


def sigmoid_forward(x):
    out = 1 / (1 + np.exp(-x))
    return out


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def batchnorm_staged(x, gamma, beta, eps=1e-5):
    N, D = x.shape
    mu = 1. / N * np.sum(x, axis=0)
    xmu = x - mu
    sq = xmu ** 2
    var = 1. / N * np.sum(sq, axis=0)
    sqrtvar = np.sqrt(var + eps)
    ivar = 1. / sqrtvar
    xhat = xmu * ivar
    gammax = gamma * xhat
    out = gammax + beta
    return out


def batchnorm_compact(x, gamma, beta, eps=1e-5):
    xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)
    return gamma * xhat + beta


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    return gamma * xhat + beta


def dropout_forward(x, mask, p=0.5):
    out = x * mask / p
    return out


def word_embedding_forward(x, W):
    out = W[x]
    return out


def rnn_list(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    hs = []
    h = h0
    for t in range(T):
        h = np.tanh(x[:, t, :] @ Wx + h @ Wh + b)
        hs.append(h)
    return np.stack(hs, axis=1)


def rnn_buffer(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    prev_h = h0
    for t in range(T):
        next_h = np.tanh(x[:, t, :].dot(Wx) + prev_h.dot(Wh) + b)
        h[:, t, :] = next_h
        prev_h = next_h
    return h


def conv_naive(x, w, b, stride=1):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H - HH) // stride
    W_out = 1 + (W - WW) // stride
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out


# -- losses (scalar) ---------------------------------------------------------------------------


def softmax_loss(x, y):
    shifted_logits = x - np.max(x, axis=1, keepdims=True)
    Z = np.sum(np.exp(shifted_logits), axis=1, keepdims=True)
    log_probs = shifted_logits - np.log(Z)
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    return loss


def svm_loss(x, y):
    N = x.shape[0]
    correct_class_scores = x[np.arange(N), y]
    margins = np.maximum(0, x - correct_class_scores[:, np.newaxis] + 1.0)
    margins[np.arange(N), y] = 0
    loss = np.sum(margins) / N
    return loss


def two_layer_net(X, y, params, reg=0.05):
    W1, b1 = params["W1"], params["b1"]
    W2, b2 = params["W2"], params["b2"]
    N = X.shape[0]
    hidden = np.maximum(0, X @ W1 + b1)
    scores = hidden @ W2 + b2
    scores -= scores.max(axis=1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -np.log(probs[range(N), y]).sum() / N
    loss += reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    return loss, {}


def sigmoid_mse(x, y, W1, b1, W2, b2):
    a1 = 1 / (1 + np.exp(-(x @ W1 + b1)))
    a2 = 1 / (1 + np.exp(-(a1 @ W2 + b2)))
    return 0.5 * np.mean((a2 - y) ** 2)


def column_relu_softmax(x, y, W, b1, U, b2):
    h = np.maximum(0, W @ x + b1)
    s = U @ h + b2
    p = np.exp(s - s.max()) / np.sum(np.exp(s - s.max()))
    return -np.sum(y * np.log(p))


def two_inputs(x1, x2, W1, W2):
    return np.sum((np.tanh(x1 @ W1) * np.tanh(x2 @ W2)) ** 2)


def one_hot_cross_entropy(x, y, W):
    K = W.shape[1]
    scores = x @ W
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    return -np.sum(np.eye(K)[y] * log_probs) / x.shape[0]


def concatenated(x, u, W):
    both = np.concatenate([x, u], axis=1)
    return np.sum(np.tanh(both @ W) ** 2)


def l1_regularized(x, y, W, reg=0.1):
    scores = x @ W
    loss = np.mean((scores - y) ** 2)
    loss += reg * np.sum(np.abs(W))
    return loss


def bessel_batchnorm(x, gamma, beta):
    n = x.shape[0]
    bnmeani = 1 / n * x.sum(0, keepdims=True)
    bndiff = x - bnmeani
    bndiff2 = bndiff ** 2
    bnvar = 1 / (n - 1) * bndiff2.sum(0, keepdims=True)
    bnvar_inv = (bnvar + 1e-5) ** -0.5
    bnraw = bndiff * bnvar_inv
    hpreact = gamma * bnraw + beta
    h = np.tanh(hpreact)
    return np.sum(h ** 2)


def inplace_bias(x, W, b):
    scores = x @ W
    scores += b
    scores *= 2.0
    return np.sum(np.exp(-scores))


def transposed_layers(x, W):
    return np.sum((x @ W.T).T ** 2) + np.sum(np.transpose(W) ** 2)


def leaky_clip(x, W):
    z = x @ W
    a = np.where(z > 0, z, 0.1 * z)
    return np.sum(np.clip(a, -1.0, 1.0) ** 2) + np.sum(np.minimum(z, 0.5))


def std_and_sqrt(x):
    s = x.std(axis=0)
    return np.sum(np.sqrt(s + 1.0)) + np.sum(np.log1p(x ** 2))


def reductions_dropping_axes(x):
    per_row = np.sum(x ** 2, axis=1)  # (N, D): axis 1 of three, dropped
    return (np.sum(per_row ** 2) + np.sum(x.mean(axis=1)) + np.max(x, axis=-1).sum()
            + np.sum(np.tanh(x).sum(axis=-1) * x.max(axis=(0, 2)).reshape(1, 4)))


def gather_sum(W, idx):
    rows = W[idx]
    return np.sum(rows ** 2) + np.sum(W[0] * W[1])


# -- example arrays ----------------------------------------------------------------------------


def _n(rng, *shape):
    return rng.normal(size=shape)


def _labels(rng, n, k):
    return rng.integers(0, k, size=n)


CASES = {
    "affine_forward": (affine_forward, lambda r: dict(x=_n(r, 3, 2, 2), w=_n(r, 4, 5), b=_n(r, 5))),
    "relu_forward": (relu_forward, lambda r: dict(x=_n(r, 3, 4))),
    "sigmoid_forward": (sigmoid_forward, lambda r: dict(x=_n(r, 3, 4))),
    "rnn_step_forward": (rnn_step_forward, lambda r: dict(x=_n(r, 3, 4), prev_h=_n(r, 3, 5), Wx=_n(r, 4, 5),
                                                          Wh=_n(r, 5, 5), b=_n(r, 5))),
    "batchnorm_staged": (batchnorm_staged, lambda r: dict(x=_n(r, 4, 3), gamma=_n(r, 3), beta=_n(r, 3))),
    "batchnorm_compact": (batchnorm_compact, lambda r: dict(x=_n(r, 4, 3), gamma=_n(r, 3), beta=_n(r, 3))),
    "layernorm_forward": (layernorm_forward, lambda r: dict(x=_n(r, 4, 3), gamma=_n(r, 3), beta=_n(r, 3))),
    "dropout_forward": (dropout_forward, lambda r: dict(x=_n(r, 4, 3), mask=r.uniform(size=(4, 3)) < 0.5)),
    "word_embedding_forward": (word_embedding_forward, lambda r: dict(x=np.array([[0, 3, 1], [3, 3, 2]]),
                                                                      W=_n(r, 5, 4))),
    "rnn_list": (rnn_list, lambda r: dict(x=_n(r, 2, 3, 4), h0=_n(r, 2, 5), Wx=_n(r, 4, 5), Wh=_n(r, 5, 5),
                                          b=_n(r, 5))),
    "rnn_buffer": (rnn_buffer, lambda r: dict(x=_n(r, 2, 3, 4), h0=_n(r, 2, 5), Wx=_n(r, 4, 5),
                                              Wh=_n(r, 5, 5), b=_n(r, 5))),
    "conv_naive": (conv_naive, lambda r: dict(x=_n(r, 2, 2, 4, 4), w=_n(r, 2, 2, 3, 3), b=_n(r, 2))),
    "softmax_loss": (softmax_loss, lambda r: dict(x=_n(r, 5, 4), y=_labels(r, 5, 4))),
    "svm_loss": (svm_loss, lambda r: dict(x=_n(r, 5, 4), y=_labels(r, 5, 4))),
    "two_layer_net": (two_layer_net, lambda r: dict(X=_n(r, 4, 3), y=_labels(r, 4, 3), params=dict(
        W1=_n(r, 3, 5), b1=_n(r, 5), W2=_n(r, 5, 3), b2=_n(r, 3)))),
    "sigmoid_mse": (sigmoid_mse, lambda r: dict(x=_n(r, 4, 2), y=_n(r, 4, 1), W1=_n(r, 2, 2), b1=_n(r, 2),
                                                W2=_n(r, 2, 1), b2=_n(r, 1))),
    "column_relu_softmax": (column_relu_softmax, lambda r: dict(x=_n(r, 3), y=np.eye(2)[1], W=_n(r, 4, 3),
                                                                b1=_n(r, 4), U=_n(r, 2, 4), b2=_n(r, 2))),
    "two_inputs": (two_inputs, lambda r: dict(x1=_n(r, 3, 2), x2=_n(r, 3, 4), W1=_n(r, 2, 3), W2=_n(r, 4, 3))),
    "one_hot_cross_entropy": (one_hot_cross_entropy, lambda r: dict(x=_n(r, 5, 3), y=_labels(r, 5, 4),
                                                                    W=_n(r, 3, 4))),
    "concatenated": (concatenated, lambda r: dict(x=_n(r, 3, 2), u=_n(r, 3, 3), W=_n(r, 5, 2))),
    "l1_regularized": (l1_regularized, lambda r: dict(x=_n(r, 4, 3), y=_n(r, 4, 2), W=_n(r, 3, 2))),
    "bessel_batchnorm": (bessel_batchnorm, lambda r: dict(x=_n(r, 5, 3), gamma=_n(r, 1, 3), beta=_n(r, 1, 3))),
    "inplace_bias": (inplace_bias, lambda r: dict(x=_n(r, 3, 2) / 2, W=_n(r, 2, 4) / 2, b=_n(r, 4) / 2)),
    "transposed_layers": (transposed_layers, lambda r: dict(x=_n(r, 3, 4), W=_n(r, 2, 4))),
    "leaky_clip": (leaky_clip, lambda r: dict(x=_n(r, 4, 3), W=_n(r, 3, 5))),
    "std_and_sqrt": (std_and_sqrt, lambda r: dict(x=_n(r, 4, 3))),
    "reductions_dropping_axes": (reductions_dropping_axes, lambda r: dict(x=_n(r, 3, 4, 2))),
    "gather_sum": (gather_sum, lambda r: dict(W=_n(r, 4, 3), idx=np.array([2, 0, 2, 3]))),
}


class TwoLayerNet:
    """cs231n's TwoLayerNet as learners write it: parameters in self.params, a `loss` that computes
    its own gradients beside the loss (never traced: they do not reach the loss)."""

    def __init__(self, input_dim=3, hidden_dim=5, num_classes=3, reg=0.1, seed=0):
        rng = np.random.default_rng(seed)
        self.reg = reg
        self.params = {"W1": rng.normal(size=(input_dim, hidden_dim)), "b1": rng.normal(size=hidden_dim),
                       "W2": rng.normal(size=(hidden_dim, num_classes)), "b2": rng.normal(size=num_classes)}

    def loss(self, X, y=None):
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        hidden = np.maximum(0, X.dot(W1) + b1)
        scores = hidden.dot(W2) + b2
        if y is None:
            return scores
        N = X.shape[0]
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
        loss = -np.sum(np.log(probs[np.arange(N), y])) / N
        loss += 0.5 * self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        grads = {}
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads["W2"] = hidden.T.dot(dscores) + self.reg * W2
        grads["b2"] = np.sum(dscores, axis=0)
        dhidden = dscores.dot(W2.T)
        dhidden[hidden <= 0] = 0
        grads["W1"] = X.T.dot(dhidden) + self.reg * W1
        grads["b1"] = np.sum(dhidden, axis=0)
        return loss, grads
