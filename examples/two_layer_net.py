"""A two-layer network written by hand in plain NumPy, the way a learner writes it: its loss, a
backward pass that is right, and one with the classic slip (the regularization's factor 2 lost).

    symprop derive examples/two_layer_net.py:loss --values examples/two_layer_net.npz
    symprop generate examples/two_layer_net.py:loss --values examples/two_layer_net.npz --out gen
    symprop check examples/two_layer_net.py:loss --values examples/two_layer_net.npz \\
        --against examples/two_layer_net.py:backward

two_layer_net.npz holds example arrays X (4, 3), y (4,), W1 (3, 5), b1 (5,), W2 (5, 3), b2 (3,).
"""

import numpy as np


def loss(X, y, W1, b1, W2, b2, reg=0.05):
    N = X.shape[0]
    hidden = np.maximum(0, X @ W1 + b1)
    scores = hidden @ W2 + b2
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    data_loss = -log_probs[np.arange(N), y].sum() / N
    return data_loss + reg * (np.sum(W1 * W1) + np.sum(W2 * W2))


def backward(X, y, W1, b1, W2, b2, reg=0.05):
    N = X.shape[0]
    hidden = np.maximum(0, X @ W1 + b1)
    scores = hidden @ W2 + b2
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    dscores = probs.copy()
    dscores[np.arange(N), y] -= 1
    dscores /= N
    dhidden = dscores @ W2.T
    dhidden[hidden <= 0] = 0
    return {"W1": X.T @ dhidden + 2 * reg * W1, "b1": dhidden.sum(axis=0),
            "W2": hidden.T @ dscores + 2 * reg * W2, "b2": dscores.sum(axis=0), "X": dhidden @ W1.T}


def backward_slip(X, y, W1, b1, W2, b2, reg=0.05):
    grads = backward(X, y, W1, b1, W2, b2, reg)
    grads["W1"] = grads["W1"] - reg * W1  # reg * W1 where the penalty's gradient is 2 * reg * W1
    return grads
