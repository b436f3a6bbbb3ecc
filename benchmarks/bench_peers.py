"""symprop's NumPy and Numba modules beside hand-written NumPy and the peers, one process.

    python benchmarks/bench_peers.py [--budget SECONDS] [--md FILE] [--quick]

A case is a row of CASES (a network as a spec, a preset or a file, a batch size, the hand-written
backprop of `bench_hand`, or of bench_batchnorm and bench_cnn for the batchnorm MLP and the CNN);
a peer is a row of PEERS (a name and a function that builds its gradient function from the case,
with the peer's own library, or None where its builder does not write the network: n/a). The
dense peers write row-layout dense networks with the default names; PyTorch through
`symprop.reference` (PyTorch's own layers, tensors built from the arrays in every call) takes the
others. A peer that is not installed is left out (the `bench` extra installs them:
`pip install -e ".[bench]"`). Every implementation must agree with the
hand-written one (rtol 1e-7) before it is timed. Timing: interleaved rounds, each a block of calls
of every implementation in a fresh random order, one untimed call before each block, GC off;
reported: the median per-call time and its ratio to the hand-written one. One BLAS thread, and
the process pinned to one core (Linux), so that no library computes on two.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
if hasattr(os, "sched_setaffinity"):  # one core for every implementation: JAX's XLA runs its own thread
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # pool whatever the BLAS variables say

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_hand  # noqa: E402

import symprop  # noqa: E402
from symprop.codegen.files import compile_module  # noqa: E402


def _spec(name, inputs, layers, loss):
    text = [f'name = "{name}"', 'layout = "row"', f"inputs = {inputs}"]
    for units, activation in layers:
        text += ["[[layers]]", f"units = {units}", f'activation = "{activation}"']
    text += ["[loss]", f'kind = "{loss}"', 'reduction = "mean"'] + (['scale = 0.5'] if loss == "squared_error" else [])
    return symprop.loads("\n".join(text))


def _preset(name):
    return lambda: symprop.load(name)


def _file(name):
    return lambda: symprop.load(str(Path(__file__).resolve().parent / name))


def _gradients_of(loss_and_gradients):
    """The gradients of a hand-written (loss, gradients) function."""
    def gradients(**arrays):
        return loss_and_gradients(**arrays)[1]
    gradients.__name__ = loss_and_gradients.__name__
    return gradients


CASES = [  # name, network, N (None: the spec's own values), hand-written gradients (bench_hand)
    ("2-2-1 sigmoid, MSE", lambda: _spec("p221", 2, [(2, "sigmoid"), (1, "sigmoid")], "squared_error"), 1,
     bench_hand.hand_sigmoid_mse_2_2_1),
    ("10-20-10 ReLU/softmax", lambda: _spec("p10", 10, [(20, "relu"), (10, "softmax")], "cross_entropy"), 5,
     bench_hand.hand_relu_softmax_ce),
    ("784-256-10 ReLU/softmax", lambda: _spec("p784", 784, [(256, "relu"), (10, "softmax")], "cross_entropy"), 1,
     bench_hand.hand_relu_softmax_ce),
    ("784-256-10 ReLU/softmax", lambda: _spec("p784", 784, [(256, "relu"), (10, "softmax")], "cross_entropy"), 64,
     bench_hand.hand_relu_softmax_ce),
    ("784-256-10 ReLU/softmax", lambda: _spec("p784", 784, [(256, "relu"), (10, "softmax")], "cross_entropy"), 1024,
     bench_hand.hand_relu_softmax_ce),
    ("10-layer tanh, width 64, MSE", lambda: _spec("t10", 64, [(64, "tanh")] * 10, "squared_error"), 64,
     bench_hand.make_hand_tanh_mse(10)),
    *((f"preset {name}", _preset(name), None, hand) for name, hand in bench_hand.PRESET_BACKWARD.items()),
    ("784-256(batchnorm, relu)-10", _file("batchnorm_784_256_10.toml"), 64, None),  # hands: bench_batchnorm
    ("CNN 3x32x32, conv 16 3x3, maxpool 2, dense 10", _file("cnn_3x32x32.toml"), 16, None),  # bench_cnn
]


def _file_cases():
    """The hand-written backward and the values of the two file cases, from their own benchmarks."""
    import bench_batchnorm
    import bench_cnn
    return {"784-256(batchnorm, relu)-10": (bench_batchnorm.hand_batchnorm, bench_batchnorm.random_arrays),
            "CNN 3x32x32, conv 16 3x3, maxpool 2, dense 10": (_gradients_of(bench_cnn.hand_cnn),
                                                               bench_cnn.random_arrays)}


def _values(network, n, seed=0):
    rng = np.random.default_rng(seed)
    values = {"x": rng.normal(size=(n, network.inputs))}
    k = network.outputs
    if network.loss.kind == "cross_entropy":
        values["y"] = np.eye(k)[rng.integers(0, k, n)]
    else:
        values["y"] = rng.uniform(size=(n, k))
    for name, shape in network.shapes(n).items():
        if name not in values:
            values[name] = rng.normal(size=shape) * (1 / np.sqrt(shape[0]) if len(shape) == 2 else 0.1)
    return values


def _plain(network) -> bool:
    """A network the peers' builders write (`_loss_with`): row layout, dense layers with the
    default names W1, b1, ..., one-hot or real targets; anything else is n/a for them."""
    names = [name for pair in _layers(network) for name in pair[:2]]
    return (network.layout == "row" and all(layer.kind == "dense" and not layer.shared_bias for layer in network.layers)
            and list(network.parameters) == names and network.input == "x" and network.target == "y"
            and not network.loss.labels and network.loss.kind in ("cross_entropy", "squared_error")
            and network.loss.reduction == "mean" and not network.loss.l2 and not network.wrt_input
            and (network.loss.kind == "cross_entropy") == (network.layers[-1].activation == "softmax")
            and network.loss.scale == (0.5 if network.loss.kind == "squared_error" else 1))


def _layers(network):
    return [(f"W{i + 1}", f"b{i + 1}", layer.activation) for i, layer in enumerate(network.layers)]


def _loss_with(ops, network):
    """The network's loss written with a peer's array operations `ops`."""
    layers = _layers(network)

    def loss(params, x, y):
        a = x
        for w, b, activation in layers:
            z = ops["dot"](a, params[w]) + params[b]
            a = z if activation in ("softmax", "identity") else ops[activation](z)
        if network.loss.kind == "cross_entropy":
            return -ops["sum"](y * ops["log_softmax"](a)) / x.shape[0]
        return 0.5 * ops["sum"]((a - y) ** 2) / (y.shape[0] * y.shape[1])  # the mean over every entry
    return loss


def peer_symprop(backend, validate):
    def build(network, values):
        source = symprop.generate(network, backend=backend)
        module = compile_module(network, source)
        module.VALIDATE = validate
        return module.gradients
    return build


def peer_torch_reference(network, values):
    """PyTorch for any network (`symprop.reference`, PyTorch's own layers): its tensors built
    from the NumPy arrays in every call, as a NumPy program calling it would. For the networks
    the lean builder (`peer_torch`) does not write."""
    if _plain(network):
        return None
    from symprop.reference import torch_loss_and_gradients

    def gradients(**arrays):
        return torch_loss_and_gradients(network, arrays)[1]
    return gradients


def peer_torch(network, values):
    if not _plain(network):
        return None
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    ops = {"dot": torch.matmul, "sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh, "sum": torch.sum,
           "log_softmax": lambda z: F.log_softmax(z, dim=1)}
    loss = _loss_with(ops, network)
    names = [n for n in values if n not in ("x", "y")]
    params = {n: torch.tensor(values[n], requires_grad=True) for n in names}
    x, y = torch.tensor(values["x"]), torch.tensor(values["y"])

    def gradients(**_):
        for p in params.values():
            p.grad = None
        loss(params, x, y).backward()
        return {n: p.grad for n, p in params.items()}
    return gradients


def peer_jax(network, values):
    if not _plain(network):
        return None
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    ops = {"dot": jnp.dot, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "tanh": jnp.tanh, "sum": jnp.sum,
           "log_softmax": lambda z: jax.nn.log_softmax(z, axis=1)}
    grad = jax.jit(jax.grad(_loss_with(ops, network)))
    names = [n for n in values if n not in ("x", "y")]
    params = {n: jnp.asarray(values[n]) for n in names}
    x, y = jnp.asarray(values["x"]), jnp.asarray(values["y"])

    def gradients(**_):
        out = grad(params, x, y)
        jax.block_until_ready(out)
        return out
    return gradients


def peer_pytensor(network, values):
    if not _plain(network):
        return None
    import pytensor
    import pytensor.tensor as pt
    from pytensor.tensor.special import log_softmax
    ops = {"dot": pt.dot, "sigmoid": pt.sigmoid, "relu": lambda z: pt.maximum(z, 0), "tanh": pt.tanh, "sum": pt.sum,
           "log_softmax": lambda z: log_softmax(z, axis=1)}
    names = [n for n in values if n not in ("x", "y")]
    symbols = {n: pt.tensor(n, shape=values[n].shape, dtype="float64") for n in names}
    x, y = pt.matrix("x", dtype="float64"), pt.matrix("y", dtype="float64")
    cost = _loss_with(ops, network)(symbols, x, y)
    function = pytensor.function([x, y, *symbols.values()], pytensor.grad(cost, list(symbols.values())),
                                 mode="NUMBA", trust_input=True)
    order = [values[n] for n in names]
    xv, yv = values["x"], values["y"]

    def gradients(**_):
        return dict(zip(names, function(xv, yv, *order)))
    return gradients


def peer_autograd(network, values):
    if not _plain(network):
        return None
    import autograd
    import autograd.numpy as anp

    def log_softmax(z):
        shifted = z - anp.max(z, axis=1, keepdims=True)
        return shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
    ops = {"dot": anp.dot, "sigmoid": lambda z: 1 / (1 + anp.exp(-z)), "relu": lambda z: anp.maximum(z, 0),
           "tanh": anp.tanh, "sum": anp.sum, "log_softmax": log_softmax}
    grad = autograd.grad(_loss_with(ops, network))
    names = [n for n in values if n not in ("x", "y")]
    params = {n: values[n] for n in names}

    def gradients(**_):
        return grad(params, values["x"], values["y"])
    return gradients


PEERS = [  # column, builder, the module it needs (None: always there)
    ("symprop numba", peer_symprop("numba", True), "numba"),
    ("symprop numba noval", peer_symprop("numba", False), "numba"),
    ("symprop numpy", peer_symprop("numpy", True), None),
    ("symprop numpy noval", peer_symprop("numpy", False), None),
    ("PyTensor (Numba)", peer_pytensor, "pytensor"),
    ("JAX jit", peer_jax, "jax"),
    ("PyTorch", peer_torch, "torch"),
    ("PyTorch (symprop.reference)", peer_torch_reference, "torch"),
    ("autograd", peer_autograd, "autograd"),
]


def _installed(module):
    if module is None:
        return True
    import importlib.util
    return importlib.util.find_spec(module) is not None


def _time(functions: dict, values: dict, budget: float) -> dict:
    """Median seconds per call of each function, from interleaved rounds."""
    calls = {}
    for name, f in functions.items():  # calls per block: about 4 ms
        start = time.perf_counter()
        f(**values)
        calls[name] = max(1, int(0.004 / max(time.perf_counter() - start, 1e-7)))
    times = {name: [] for name in functions}
    gc.disable()
    try:
        end = time.perf_counter() + budget
        rounds = 0
        while rounds < 20 or time.perf_counter() < end and rounds < 400:
            order = list(functions)
            random.shuffle(order)
            for name in order:
                f, k = functions[name], calls[name]
                f(**values)
                start = time.perf_counter()
                for _ in range(k):
                    f(**values)
                times[name].append((time.perf_counter() - start) / k)
            rounds += 1
    finally:
        gc.enable()
    return {name: float(np.median(t)) for name, t in times.items()}


def _agree(got, expected, what):
    for name, value in expected.items():
        if not np.allclose(np.asarray(got[name]), value, rtol=1e-7, atol=1e-12):
            raise AssertionError(f"{what}: the gradient of {name} differs from the hand-written one")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=6.0, help="seconds of timed rounds per case")
    parser.add_argument("--md", type=Path, help="also write the table to this file")
    parser.add_argument("--quick", action="store_true", help="a smoke run: the first case, 20 rounds")
    parser.add_argument("--only", help="only the cases whose name contains this text")
    args = parser.parse_args(argv)
    cases = CASES[:1] if args.quick else [case for case in CASES if not args.only or args.only in case[0]]
    budget = 0.0 if args.quick else args.budget
    peers = [(name, build) for name, build, module in PEERS if _installed(module)]
    header = ["network", "N", "hand µs"] + [f"{name} µs (×hand)" for name, _ in peers]
    rows = []
    files = _file_cases()
    for title, make, n, hand in cases:
        network = make()
        if title in files:
            hand, draw = files[title]
            values = draw(network, np.random.default_rng(0))
        else:
            values = {k: np.asarray(v, dtype=float) for k, v in network.values.items()} if n is None \
                else _values(network, n)
        expected = hand(**values)
        functions = {"hand": hand}
        for name, build in peers:
            print(f"{title} N={n}: {name}", file=sys.stderr)
            f = build(network, values)
            if f is None:  # the peer's builder does not write this network
                continue
            _agree(f(**values), expected, f"{title}, {name}")
            functions[name] = f
        medians = _time(functions, values, budget)
        hand_time = medians["hand"]
        batch = str(n or (1 if network.layout == "column" else network.batch or len(values[network.input])))
        rows.append([title, batch, f"{hand_time * 1e6:,.1f}"] + [
            f"{medians[name] * 1e6:,.1f} ({medians[name] / hand_time:.2f})" if name in medians else "n/a"
            for name, _ in peers])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    import platform
    versions = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    for module in ("numba", "pytensor", "jax", "torch", "autograd"):
        if _installed(module):
            from importlib.metadata import version
            try:
                versions.append(f"{module} {version(module)}")
            except Exception:
                pass
    text = ("\n".join(lines) + "\n\n" + ", ".join(versions) + f"; {os.cpu_count()} CPUs, pinned to one core, "
            f"one BLAS thread; command: python benchmarks/bench_peers.py --budget {args.budget:g}\n")
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
