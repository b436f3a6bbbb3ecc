"""Seed 002's analytical gradients: right, but computed in float32 as the notebook does.

    symprop check relu_softmax_3_4_2 --against examples/seed002.py:backward --torch
"""

import numpy as np


def backward(x, y, W, b1, U, b2):
    x, y, W, b1, U, b2 = (np.asarray(v, dtype=np.float32) for v in (x, y, W, b1, U, b2))
    z = W @ x + b1
    h = np.maximum(0, z)
    theta = U @ h + b2
    p = np.exp(theta - theta.max())
    p /= p.sum()
    d_theta = p - y
    d_z = (U.T @ d_theta) * (z > 0)
    return {"U": np.outer(d_theta, h), "b2": d_theta, "W": np.outer(d_z, x), "b1": d_z, "x": W.T @ d_z}
