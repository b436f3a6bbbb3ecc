"""Hand-written backpropagation, one function per preset: a reference for the generated modules.

Each function is written in the style of the seed notebook that defines its preset (see
/work/shared/seeds/ and symbolic/networks/<preset>.toml), but with the chain rule done right:
the seeds' own backward passes have bugs and are not copied here.

Every function takes the arrays by keyword with the spec's names (input, target and every
parameter) and returns a dict of gradients by name, each with exactly the shape of its array,
like `gradients` of a generated module. So each one also works with
`symprop check NET --against tests/handwritten.py:FUNCTION`.

NumPy only. ReLU'(0) = 0, as in PyTorch.
"""

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def relu(z):
    return np.maximum(0.0, z)


def softmax(theta):
    """Softmax of a vector, shifted by its maximum so exp cannot overflow."""
    e = np.exp(theta - np.max(theta))
    return e / np.sum(e)


# -------------------------------------------------------------------------------------------------
# Seed 000: row layout, Z = X @ W + b


def backward_sigmoid_mse_2_2_1(*, x, y, W1, b1, W2, b2):
    """Seed 000 (000_844250364521bb67.txt): row layout 2-2-1, sigmoid/sigmoid.

    Loss: squared_error, reduction "mean", scale 0.5:  L = 0.5 * mean((a2 - y)**2),
    the mean taken over all N * 1 entries of a2.
    """
    # forward
    z1 = x @ W1 + b1          # (N, 2)
    a1 = sigmoid(z1)
    z2 = a1 @ W2 + b2         # (N, 1)
    a2 = sigmoid(z2)

    # backward: dL/da2 = 0.5 * 2 * (a2 - y) / (number of entries)
    dL_da2 = (a2 - y) / a2.size
    delta2 = dL_da2 * a2 * (1 - a2)             # dL/dz2, sigmoid'(z) = a (1 - a)
    dW2 = a1.T @ delta2
    db2 = delta2.sum(axis=0)                    # (1,), not keepdims: b2 is 1-D

    delta1 = (delta2 @ W2.T) * a1 * (1 - a1)    # dL/dz1
    dW1 = x.T @ delta1
    db1 = delta1.sum(axis=0)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


# -------------------------------------------------------------------------------------------------
# Seed 001: column layout, Z = W @ X + B, one sample


def backward_relu_regression_3_4_3_1(*, X, y_true, W1, B1, W2, B2, W3, B3):
    """Seed 001 (001_13b613ccf6844929.txt): column layout 3-4-3-1, relu/relu/identity.

    Loss: squared_error, reduction "sum", scale 0.5:  L = 0.5 * sum((y_pred - y_true)**2).
    """
    # forward
    Z1 = W1 @ X + B1          # (4,)
    H1 = relu(Z1)
    Z2 = W2 @ H1 + B2         # (3,)
    H2 = relu(Z2)
    y_pred = W3 @ H2 + B3     # (1,)

    # backward: dL/dy_pred = y_pred - y_true
    y_diff = y_pred - y_true
    B3_grad = y_diff
    W3_grad = np.outer(y_diff, H2)              # (1, 3)

    B2_grad = (W3.T @ y_diff) * (Z2 > 0)        # dL/dZ2, (3,)
    W2_grad = np.outer(B2_grad, H1)             # (3, 4)

    B1_grad = (W2.T @ B2_grad) * (Z1 > 0)       # dL/dZ1, (4,)
    # The seed multiplied elementwise here and paired the input index of X with the index of
    # the second layer; dL/dW1[i, k] = dL/dZ1[i] * X[k] is an outer product.
    W1_grad = np.outer(B1_grad, X)              # (4, 3)

    return {"W1": W1_grad, "B1": B1_grad, "W2": W2_grad, "B2": B2_grad, "W3": W3_grad, "B3": B3_grad}


# -------------------------------------------------------------------------------------------------
# Seed 002: column layout, z = W @ x + b1, softmax output


def backward_relu_softmax_3_4_2(*, x, y, W, b1, U, b2):
    """Seed 002 (002_c5a88d9c918753b3.txt): column layout 3-4-2, relu/softmax; also dL/dx.

    Loss: cross_entropy, reduction "sum", scale 1:  L = -sum(y * log(softmax(theta))).
    """
    # forward
    z = W @ x + b1            # (4,)
    h = relu(z)
    theta = U @ h + b2        # (2,)
    p = softmax(theta)

    # backward: dL/dtheta_j = p_j * sum_k y_k - y_j, which is p - y for a one-hot y
    dL_dtheta = p * np.sum(y) - y
    dL_dU = np.outer(dL_dtheta, h)              # (2, 4)
    dL_db2 = dL_dtheta

    dL_dh = U.T @ dL_dtheta
    dL_dz = dL_dh * (z > 0)
    dL_dW = np.outer(dL_dz, x)                  # (4, 3)
    dL_db1 = dL_dz
    dL_dx = W.T @ dL_dz                         # (3,)

    return {"W": dL_dW, "b1": dL_db1, "U": dL_dU, "b2": dL_db2, "x": dL_dx}


# -------------------------------------------------------------------------------------------------
# Seed 003: row layout, one scalar bias shared by all units of a layer; chain rule unit by unit


def backward_sigmoid_shared_bias_2_2_2(*, x, y, W1, b1, W2, b2):
    """Seed 003 (003_1e29b2629ac4a171.txt): row layout 2-2-2, sigmoid/sigmoid, shared scalar biases.

    Loss: squared_error, reduction "sum", scale 0.5:  L = 0.5 * sum((out_o - y)**2),
    summed over every sample and output unit.

    net_h[j] = sum_i x[i] * W1[i, j] + b1,  out_h[j] = sigmoid(net_h[j])
    net_o[k] = sum_j out_h[j] * W2[j, k] + b2,  out_o[k] = sigmoid(net_o[k])
    """
    n_samples, n_in = x.shape
    n_hidden, n_out = W2.shape

    grad_W1 = np.zeros_like(W1, dtype=float)
    grad_W2 = np.zeros_like(W2, dtype=float)
    grad_b1 = 0.0
    grad_b2 = 0.0

    for n in range(n_samples):
        # forward, one unit at a time
        out_h = [sigmoid(sum(x[n, i] * W1[i, j] for i in range(n_in)) + b1) for j in range(n_hidden)]
        out_o = [sigmoid(sum(out_h[j] * W2[j, k] for j in range(n_hidden)) + b2) for k in range(n_out)]

        # output units: delta_o[k] = dL/dnet_o[k] = (out_o[k] - y[k]) * out_o[k] * (1 - out_o[k])
        delta_o = [(out_o[k] - y[n, k]) * out_o[k] * (1 - out_o[k]) for k in range(n_out)]
        for k in range(n_out):
            for j in range(n_hidden):
                grad_W2[j, k] += delta_o[k] * out_h[j]     # weight from hidden j to output k
            grad_b2 += delta_o[k]                          # b2 feeds every output unit: a sum

        # hidden units: hidden j reaches output k through W2[j, k] (the seed used W2[k, j])
        delta_h = [
            sum(delta_o[k] * W2[j, k] for k in range(n_out)) * out_h[j] * (1 - out_h[j])
            for j in range(n_hidden)
        ]
        for j in range(n_hidden):
            for i in range(n_in):
                grad_W1[i, j] += delta_h[j] * x[n, i]      # weight from input i to hidden j
            grad_b1 += delta_h[j]                          # b1 feeds every hidden unit: a sum

    return {
        "W1": grad_W1,
        "b1": np.asarray(grad_b1, dtype=float).reshape(()),
        "W2": grad_W2,
        "b2": np.asarray(grad_b2, dtype=float).reshape(()),
    }


# -------------------------------------------------------------------------------------------------
# Seed 004: row layout, a batch


def backward_relu_batch_10_20_1(*, x, y, W1, b1, W2, b2):
    """Seed 004 (004_53ab24e8b1f1bbf4.txt): row layout 10-20-1, relu/identity, batch of 5.

    Loss: squared_error, reduction "mean", scale 0.5:  L = 0.5 * mean((scores - y)**2),
    the mean taken over all N * 1 entries of scores.
    """
    # forward
    z1 = x @ W1 + b1          # (N, 20)
    a1 = relu(z1)
    scores = a1 @ W2 + b2     # (N, 1)

    # backward: dL/dscores = 0.5 * 2 * (scores - y) / (number of entries)
    dL_dscores = (scores - y) / scores.size
    dW2 = a1.T @ dL_dscores
    db2 = dL_dscores.sum(axis=0)

    da1 = dL_dscores @ W2.T
    dz1 = da1 * (z1 > 0)
    dW1 = x.T @ dz1
    db1 = dz1.sum(axis=0)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


BACKWARD = {
    "sigmoid_mse_2_2_1": backward_sigmoid_mse_2_2_1,
    "relu_regression_3_4_3_1": backward_relu_regression_3_4_3_1,
    "relu_softmax_3_4_2": backward_relu_softmax_3_4_2,
    "sigmoid_shared_bias_2_2_2": backward_sigmoid_shared_bias_2_2_2,
    "relu_batch_10_20_1": backward_relu_batch_10_20_1,
}
