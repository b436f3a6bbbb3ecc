"""Seed 001's network with a correct backward pass, returned the ways hand-written code goes
astray: W1's gradient transposed, W2's under another name, B3's forgotten.

    symprop check relu_regression_3_4_3_1 --against examples/odd001.py:backward
"""

import numpy as np


def backward(X, y_true, W1, B1, W2, B2, W3, B3):
    Z1 = W1 @ X + B1
    H1 = np.maximum(0, Z1)
    Z2 = W2 @ H1 + B2
    H2 = np.maximum(0, Z2)
    delta3 = W3 @ H2 + B3 - y_true
    delta2 = (W3.T @ delta3) * (Z2 > 0)
    delta1 = (W2.T @ delta2) * (Z1 > 0)
    return {"W1": np.outer(X, delta1),  # transposed: should be np.outer(delta1, X)
            "B1": delta1,
            "dW2": np.outer(delta2, H1),  # another name
            "B2": delta2,
            "W3": np.outer(delta3, H2)}  # and no "B3"
