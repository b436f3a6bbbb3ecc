"""A batch normalization layer's forward pass as cs231n writes it (training mode, in small steps,
returning `out` and a cache). Traced, its gradients are the vector-Jacobian products with the
upstream gradient `dout`: the closed forms of `batchnorm_backward`.

    symprop derive examples/batchnorm_layer.py:batchnorm_forward --values examples/batchnorm_layer.npz

batchnorm_layer.npz holds example arrays x (4, 3), gamma (3,), beta (3,).
"""

import numpy as np


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    N, D = x.shape
    mu = 1. / N * np.sum(x, axis=0)
    xmu = x - mu
    var = 1. / N * np.sum(xmu ** 2, axis=0)
    sqrtvar = np.sqrt(var + eps)
    ivar = 1. / sqrtvar
    xhat = xmu * ivar
    out = gamma * xhat + beta
    return out, (xhat, gamma, xmu, ivar, sqrtvar, var, eps)
