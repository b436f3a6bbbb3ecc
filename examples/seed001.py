"""Seed 001's backward pass as its notebook wrote it: right, but for W1_grad.

`symprop check` calls it with every array by keyword, under the spec's names:

    symprop check relu_regression_3_4_3_1 --against examples/seed001.py:backward
"""

import numpy as np


def backward(X, y_true, W1, B1, W2, B2, W3, B3):
    Z1 = W1 @ X + B1
    H1 = np.maximum(0, Z1)
    Z2 = W2 @ H1 + B2
    H2 = np.maximum(0, Z2)
    y_diff = W3 @ H2 + B3 - y_true
    B2_grad = (y_diff * W3 * (Z2 > 0)).flatten()
    B1_grad = (y_diff * ((W3 * (Z2 > 0)) @ W2) * (Z1 > 0)).flatten()
    W1_grad = y_diff * W3 * (Z2 > 0) * W2.T * (np.reshape(Z1, (4, 1)) > 0) * X  # the bug: not an outer product
    return {"B3": y_diff, "W3": y_diff * H2[None, :], "B2": B2_grad, "W2": np.outer(B2_grad, H1),
            "B1": B1_grad, "W1": W1_grad}
