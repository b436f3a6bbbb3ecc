"""A vanilla RNN layer as cs231n's assignment 3 writes it: one step, the forward loop over time,
and backpropagation through time written by hand, right (`rnn_backward`) and with the classic
slip (`rnn_backward_no_carry`: the gradient of the next state is not carried back).

    symprop derive examples/rnn_layers.py:rnn_forward --values examples/rnn_layers.npz
    symprop check examples/rnn_layers.py:rnn_forward --values examples/rnn_layers.npz --against examples/rnn_layers.py:rnn_backward
"""

import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    h = np.zeros((N, T, h0.shape[1]))
    prev_h = h0
    for t in range(T):
        next_h, _ = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        h[:, t, :] = next_h
        prev_h = next_h
    return h


def _backward(dout, x, h0, Wx, Wh, b, carry):
    N, T, D = x.shape
    h = rnn_forward(x, h0, Wx, Wh, b)
    dx, dWx, dWh, db = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dprev_h = np.zeros_like(h0)
    for t in reversed(range(T)):
        prev_h = h[:, t - 1, :] if t > 0 else h0
        dnext_h = dout[:, t, :] + (dprev_h if carry else 0)
        da = dnext_h * (1 - h[:, t, :] ** 2)
        dx[:, t, :] = da @ Wx.T
        dWx += x[:, t, :].T @ da
        dWh += prev_h.T @ da
        db += da.sum(axis=0)
        dprev_h = da @ Wh.T
    return {"x": dx, "h0": dprev_h, "Wx": dWx, "Wh": dWh, "b": db}


def rnn_backward(dout, x, h0, Wx, Wh, b):
    return _backward(dout, x, h0, Wx, Wh, b, carry=True)


def rnn_backward_no_carry(dout, x, h0, Wx, Wh, b):
    return _backward(dout, x, h0, Wx, Wh, b, carry=False)
