"""A batch normalization layer's forward pass as cs231n writes it (training mode, in small steps,
returning `out` and a cache). Traced, its gradients are the vector-Jacobian products with the
upstream gradient `dout`: the closed forms of `batchnorm_backward`.

    symprop derive examples/batchnorm_layer.py:batchnorm_forward --values examples/batchnorm_layer.npz
    symprop check examples/batchnorm_layer.py:batchnorm_forward --values examples/batchnorm_layer.npz \\
        --against examples/batchnorm_layer.py:batchnorm_backward

batchnorm_layer.npz holds example arrays x (4, 3), gamma (3,), beta (3,); the check draws `dout`.
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


def batchnorm_backward(x, gamma, beta, dout, eps=1e-5):
    """The layer's backward pass in cs231n's compact form, given the upstream gradient `dout`
    (here from the arrays, as `symprop check` calls it, rather than from a cache)."""
    N = x.shape[0]
    xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)
    ivar = 1. / np.sqrt(x.var(axis=0) + eps)
    dxhat = dout * gamma
    dx = ivar / N * (N * dxhat - dxhat.sum(axis=0) - xhat * np.sum(dxhat * xhat, axis=0))
    return {"dx": dx, "dgamma": np.sum(dout * xhat, axis=0), "dbeta": dout.sum(axis=0)}
