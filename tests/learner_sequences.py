"""cs231n's third assignment as learners write it: the RNN and LSTM layers as Python loops over
the time steps (calling a step function, filling an (N, T, H) buffer or appending to a list),
word embeddings, the temporal affine layer and the masked temporal softmax loss, and the image
captioning loss built from them. `tests/test_rolled_loops.py` traces them: each loop must roll
up into one loop of the program."""

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    cache = []
    prev_h = h0
    for t in range(T):
        next_h, step_cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        h[:, t, :] = next_h
        cache.append(step_cache)
        prev_h = next_h
    return h, cache


def rnn_forward_list(x, h0, Wx, Wh, b):
    hs = []
    h = h0
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ Wx + h @ Wh + b)
        hs.append(h)
    return np.array(hs).transpose(1, 0, 2)


def rnn_last_state(x, h0, Wx, Wh, b):
    h = h0
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ Wx + h @ Wh + b)
    return h


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x.dot(Wx) + prev_h.dot(Wh) + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    o = sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, i, f, o, g, next_c)


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    h = np.zeros((N, T, h0.shape[1]))
    prev_h, prev_c = h0, np.zeros_like(h0)
    for t in range(T):
        next_h, next_c, _ = lstm_step_forward(x[:, t, :], prev_h, prev_c, Wx, Wh, b)
        h[:, t, :] = next_h
        prev_h, prev_c = next_h, next_c
    return h


def word_embedding_forward(x, W):
    return W[x]


def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    M = b.shape[0]
    return x.reshape(N * T, D).dot(w).reshape(N, T, M) + b


def temporal_softmax_loss(x, y, mask):
    N, T, V = x.shape
    x_flat = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    probs = np.exp(x_flat - np.max(x_flat, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    return -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / N


def captioning_loss(features, captions, W_proj, b_proj, W_embed, Wx, Wh, b, W_vocab, b_vocab):
    captions_in = captions[:, :-1]
    captions_out = captions[:, 1:]
    mask = captions_out != 0
    h0 = features.dot(W_proj) + b_proj
    x = word_embedding_forward(captions_in, W_embed)
    h, _ = rnn_forward(x, h0, Wx, Wh, b)
    scores = temporal_affine_forward(h, W_vocab, b_vocab)
    return temporal_softmax_loss(scores, captions_out, mask)


def lstm_classifier(x, y, Wx, Wh, b, W, c):
    N, T, D = x.shape
    h = lstm_forward(x, np.zeros((N, Wh.shape[0])), Wx, Wh, b)
    scores = h[:, -1, :] @ W + c
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(N), y].mean()
