"""Generated LSTM gradients against PyTorch's nn.LSTM autograd and a hand-written NumPy BPTT.

One process, one thread each (OMP/MKL/OpenBLAS threads 1, torch.set_num_threads(1)), float64,
N = 32, T = 20, D = H = 64, the LSTM's last state through a softmax classifier; the best of
`--repeats` calls after a warm-up, interleaved. Run: python benchmarks/bench_lstm.py
"""

import argparse
import os
import time

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import numpy as np  # noqa: E402

import symprop  # noqa: E402
from symprop.check import random_values  # noqa: E402
from symprop.codegen.files import compile_module  # noqa: E402

SPEC = """
name = "lstm_bench"
inputs = [{T}, {D}]
[[layers]]
kind = "lstm"
units = {H}
output = "last"
[[layers]]
units = 10
activation = "softmax"
[loss]
kind = "cross_entropy"
labels = true
"""


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def hand(x, y, Wx1, Wh1, b1, W2, b2):
    """cs231n's lstm_forward/lstm_backward, then the affine softmax loss, written by hand."""
    N, T, _ = x.shape
    H = Wh1.shape[0]
    h, c = np.zeros((N, H)), np.zeros((N, H))
    cache = []
    for t in range(T):
        a = x[:, t] @ Wx1 + h @ Wh1 + b1
        i, f, o, g = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
        c_prev, h_prev = c, h
        c = f * c + i * g
        tc = np.tanh(c)
        h = o * tc
        cache.append((h_prev, c_prev, i, f, o, g, tc))
    z = h @ W2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(N), y]).sum() / N
    dz = p.copy()
    dz[np.arange(N), y] -= 1
    dz /= N
    dW2, db2 = h.T @ dz, dz.sum(axis=0)
    dh, dc = dz @ W2.T, np.zeros((N, H))
    dWx, dWh, db = np.zeros_like(Wx1), np.zeros_like(Wh1), np.zeros_like(b1)
    for t in reversed(range(T)):
        h_prev, c_prev, i, f, o, g, tc = cache[t]
        dc = dc + dh * o * (1 - tc ** 2)
        da = np.hstack((dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dh * tc * o * (1 - o), dc * i * (1 - g ** 2)))
        dWx += x[:, t].T @ da
        dWh += h_prev.T @ da
        db += da.sum(axis=0)
        dh, dc = da @ Wh1.T, dc * f
    return loss, {"Wx1": dWx, "Wh1": dWh, "b1": db, "W2": dW2, "b2": db2}


def _torch_run(torch, values, H):
    """nn.LSTM forward and backward on tensors made once (its gate rows in PyTorch's order i, f, g, o)."""
    lstm = torch.nn.LSTM(values["x"].shape[2], H, batch_first=True, dtype=torch.float64)
    order = [0, 1, 3, 2]

    def rows(W):
        return torch.cat([W[:, k * H:(k + 1) * H] for k in order], dim=1).T.contiguous()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(rows(torch.tensor(values["Wx1"])))
        lstm.weight_hh_l0.copy_(rows(torch.tensor(values["Wh1"])))
        lstm.bias_ih_l0.copy_(torch.cat([torch.tensor(values["b1"])[k * H:(k + 1) * H] for k in order]))
        lstm.bias_hh_l0.zero_()
    x, y = torch.tensor(values["x"]), torch.tensor(values["y"])
    W2 = torch.tensor(values["W2"], requires_grad=True)
    b2 = torch.tensor(values["b2"], requires_grad=True)
    params = [*lstm.parameters(), W2, b2]

    def run():
        for p in params:
            p.grad = None
        out, _ = lstm(x)
        loss = torch.nn.functional.cross_entropy(out[:, -1] @ W2 + b2, y)
        loss.backward()
        return loss
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("-N", type=int, default=32)
    parser.add_argument("-T", type=int, default=20)
    parser.add_argument("-D", type=int, default=64)
    parser.add_argument("-H", type=int, default=64)
    args = parser.parse_args()
    net = symprop.loads(SPEC.format(T=args.T, D=args.D, H=args.H))
    values = random_values(net, seed=0, batch=args.N)
    module = compile_module(net)
    loss, grads = module.loss_and_gradients(**values)
    hand_loss, hand_grads = hand(**values)
    assert abs(loss - hand_loss) < 1e-12 * max(1, abs(loss))
    assert all(np.allclose(grads[k], hand_grads[k], rtol=1e-10, atol=1e-14) for k in grads)
    runs = {"symprop": lambda: module.loss_and_gradients(**values), "hand NumPy": lambda: hand(**values)}
    try:
        import torch
        torch.set_num_threads(1)
        from symprop.reference import torch_loss_and_gradients
        t_loss, t_grads = torch_loss_and_gradients(net, values)
        assert abs(loss - t_loss) < 1e-10 and all(np.allclose(grads[k], t_grads[k], atol=1e-10) for k in grads)
        runs["PyTorch nn.LSTM"] = _torch_run(torch, values, args.H)
    except ImportError:
        pass
    best = {name: float("inf") for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    print(f"LSTM gradients, N = {args.N}, T = {args.T}, D = {args.D}, H = {args.H}, float64, one thread; "
          f"best of {args.repeats}")
    for name, seconds in best.items():
        print(f"  {name:16} {seconds * 1e3:8.2f} ms   {seconds / best['hand NumPy']:5.2f} x hand")


if __name__ == "__main__":
    main()
