"""The "backprop ninja" exercise (makemore, part 4) in NumPy: a character-level MLP's forward pass
in small steps, and the answer, the gradient of every step by hand, as learners name them
(dlogprobs for logprobs). symprop derives every one of them under the same names:

    import backprop_ninja as ninja
    arrays = ninja.example_arrays(np.random.default_rng(0))
    program = symprop.trace(ninja.forward, wrt=ninja.INTERMEDIATES + ninja.PARAMETERS, **arrays)
    symprop.check(program, against=ninja.backward)      # every gradient, one by one

`backward(..., slip="no Bessel")` plants a classic mistake (the variance's gradient averaged over
n instead of n - 1): check then names dbndiff2 the first wrong in backward order.
"""

import numpy as np


def forward(Xb, Yb, C, W1, b1, W2, b2, bngain, bnbias):
    """makemore part 4's forward pass in NumPy: an embedding, batchnorm with Bessel's correction,
    tanh, and the cross-entropy in small steps, every one of which the exercise differentiates."""
    n = Xb.shape[0]
    emb = C[Xb]
    embcat = emb.reshape(n, -1)
    hprebn = embcat @ W1 + b1
    bnmeani = 1 / n * hprebn.sum(0, keepdims=True)
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff ** 2
    bnvar = 1 / (n - 1) * bndiff2.sum(0, keepdims=True)
    bnvar_inv = (bnvar + 1e-5) ** -0.5
    bnraw = bndiff * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    h = np.tanh(hpreact)
    logits = h @ W2 + b2
    logit_maxes = logits.max(1, keepdims=True)
    norm_logits = logits - logit_maxes
    counts = np.exp(norm_logits)
    counts_sum = counts.sum(1, keepdims=True)
    counts_sum_inv = counts_sum ** -1
    probs = counts * counts_sum_inv
    logprobs = np.log(probs)
    loss = -logprobs[range(n), Yb].mean()
    return loss


INTERMEDIATES = ["logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes",
               "logits", "h", "hpreact", "bnraw", "bnvar_inv", "bnvar", "bndiff2", "bndiff", "bnmeani", "hprebn",
               "embcat", "emb"]
PARAMETERS = ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"]


def example_arrays(rng, n=6, block=3, d=2, hidden=5, vocab=7):
    return {"Xb": rng.integers(0, vocab, size=(n, block)), "Yb": rng.integers(0, vocab, size=n),
            "C": rng.normal(size=(vocab, d)), "W1": rng.normal(size=(block * d, hidden)) / 2,
            "b1": rng.normal(size=hidden) / 10, "W2": rng.normal(size=(hidden, vocab)) / 2,
            "b2": rng.normal(size=vocab) / 10, "bngain": 1 + rng.normal(size=(1, hidden)) / 10,
            "bnbias": rng.normal(size=(1, hidden)) / 10}


def backward(Xb, Yb, C, W1, b1, W2, b2, bngain, bnbias, slip=""):
    """The exercise's answer, every intermediate's gradient by hand, as learners name them
    (dlogprobs, dprobs, ...); `slip` plants one mistake."""
    n = Xb.shape[0]
    emb = C[Xb]
    embcat = emb.reshape(n, -1)
    hprebn = embcat @ W1 + b1
    bnmeani = 1 / n * hprebn.sum(0, keepdims=True)
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff ** 2
    bnvar = 1 / (n - 1) * bndiff2.sum(0, keepdims=True)
    bnvar_inv = (bnvar + 1e-5) ** -0.5
    bnraw = bndiff * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    h = np.tanh(hpreact)
    logits = h @ W2 + b2
    logit_maxes = logits.max(1, keepdims=True)
    norm_logits = logits - logit_maxes
    counts = np.exp(norm_logits)
    counts_sum = counts.sum(1, keepdims=True)
    counts_sum_inv = counts_sum ** -1
    probs = counts * counts_sum_inv
    g = {}
    g["dlogprobs"] = np.zeros_like(probs)
    g["dlogprobs"][range(n), Yb] = -1.0 / n
    g["dprobs"] = g["dlogprobs"] / probs
    g["dcounts_sum_inv"] = (counts * g["dprobs"]).sum(1, keepdims=True)
    g["dcounts_sum"] = -counts_sum ** -2 * g["dcounts_sum_inv"]
    g["dcounts"] = counts_sum_inv * g["dprobs"] + np.ones_like(counts) * g["dcounts_sum"]
    g["dnorm_logits"] = counts * g["dcounts"]
    g["dlogit_maxes"] = -g["dnorm_logits"].sum(1, keepdims=True)
    onehot = np.eye(logits.shape[1])[logits.argmax(1)]
    g["dlogits"] = g["dnorm_logits"].copy() + onehot * g["dlogit_maxes"]
    g["dh"] = g["dlogits"] @ W2.T
    g["dW2"] = h.T @ g["dlogits"]
    g["db2"] = g["dlogits"].sum(0)
    g["dhpreact"] = (1.0 - h ** 2) * g["dh"]
    g["dbngain"] = (bnraw * g["dhpreact"]).sum(0, keepdims=True)
    g["dbnraw"] = bngain * g["dhpreact"]
    g["dbnbias"] = g["dhpreact"].sum(0, keepdims=True)
    g["dbndiff"] = bnvar_inv * g["dbnraw"]
    g["dbnvar_inv"] = (bndiff * g["dbnraw"]).sum(0, keepdims=True)
    g["dbnvar"] = -0.5 * (bnvar + 1e-5) ** -1.5 * g["dbnvar_inv"]
    bessel = n if slip == "no Bessel" else n - 1
    g["dbndiff2"] = 1.0 / bessel * np.ones_like(bndiff2) * g["dbnvar"]
    g["dbndiff"] += 2 * bndiff * g["dbndiff2"]
    g["dhprebn"] = g["dbndiff"].copy()
    g["dbnmeani"] = -g["dbndiff"].sum(0, keepdims=True)
    g["dhprebn"] += 1.0 / n * np.ones_like(hprebn) * g["dbnmeani"]
    g["dembcat"] = g["dhprebn"] @ W1.T
    g["dW1"] = embcat.T @ g["dhprebn"]
    g["db1"] = g["dhprebn"].sum(0)
    g["demb"] = g["dembcat"].reshape(emb.shape)
    g["dC"] = np.zeros_like(C)
    np.add.at(g["dC"], Xb, g["demb"])
    return g
