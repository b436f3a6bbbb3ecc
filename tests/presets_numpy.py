"""The five presets written as plain NumPy functions, as the seed documents write them: tracing
each must give the gradients, and the forward step names, of its spec."""

import numpy as np


def sigmoid_mse_2_2_1(x, y, W1, b1, W2, b2):
    z1 = x @ W1 + b1
    a1 = 1 / (1 + np.exp(-z1))
    z2 = a1 @ W2 + b2
    a2 = 1 / (1 + np.exp(-z2))
    L = 0.5 * np.mean((a2 - y) ** 2)
    return L


def relu_regression_3_4_3_1(X, y_true, W1, B1, W2, B2, W3, B3):
    z1 = W1 @ X + B1
    a1 = np.maximum(0, z1)
    z2 = W2 @ a1 + B2
    a2 = np.maximum(0, z2)
    z3 = W3 @ a2 + B3
    L = 0.5 * np.sum((z3 - y_true) ** 2)
    return L


def relu_softmax_3_4_2(x, y, W, b1, U, b2):
    z1 = W @ x + b1
    a1 = np.maximum(0, z1)
    z2 = U @ a1 + b2
    a2 = np.exp(z2 - np.max(z2)) / np.sum(np.exp(z2 - np.max(z2)))
    L = -np.sum(y * np.log(a2))
    return L


def sigmoid_shared_bias_2_2_2(x, y, W1, b1, W2, b2):
    z1 = x @ W1 + b1
    a1 = 1 / (1 + np.exp(-z1))
    z2 = a1 @ W2 + b2
    a2 = 1 / (1 + np.exp(-z2))
    L = 0.5 * np.sum((a2 - y) ** 2)
    return L


def relu_batch_10_20_1(x, y, W1, b1, W2, b2):
    z1 = x.dot(W1) + b1
    a1 = np.maximum(0, z1)
    z2 = a1.dot(W2) + b2
    L = 0.5 * np.mean((z2 - y) ** 2)
    return L
