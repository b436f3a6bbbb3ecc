#!/usr/bin/env python
"""symprop benchmark for traced programs (`symprop.trace`).

Run from the project root:

    python benchmarks/bench_trace.py            # about 20 s
    python benchmarks/bench_trace.py --quick    # a few seconds

Two figures:

1. Trace + derive + generate of a 10-layer ReLU MLP written as a NumPy loop (32 wide, batch 64,
   softmax cross-entropy on labels), end to end: the best and the median of 5 runs, in seconds.
2. The generated `gradients` of examples/mnist_784_512_256_10.toml (batch 64, float64) from its spec
   and from the same network written in NumPy and traced, per call: both compiled in memory,
   VALIDATE True (each with its own argument checks) and False (the computation alone). Before
   timing, the two must agree to 1e-12 relative. Timing: `timeit`, the best of 7 repeats, the
   implementations in a fresh random order each repeat, OpenBLAS at one thread (threadpoolctl,
   when installed).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import timeit
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import symprop  # noqa: E402


def mlp10(x, y, W1, b1, W2, b2, W3, b3, W4, b4, W5, b5, W6, b6, W7, b7, W8, b8, W9, b9, W10, b10):
    weights = [W1, W2, W3, W4, W5, W6, W7, W8, W9, W10]
    biases = [b1, b2, b3, b4, b5, b6, b7, b8, b9, b10]
    a = x
    for W, b in zip(weights[:-1], biases[:-1]):
        a = np.maximum(0, a @ W + b)
    scores = a @ weights[-1] + biases[-1]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(x.shape[0]), y].sum() / x.shape[0]


def mnist(x, y, W1, b1, W2, b2, W3, b3):
    a1 = np.maximum(0, x @ W1 + b1)
    a2 = np.maximum(0, a1 @ W2 + b2)
    z3 = a2 @ W3 + b3
    shifted = z3 - z3.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.mean(log_probs[np.arange(x.shape[0]), y])


def _mlp10_arrays(rng):
    arrays = {"x": rng.normal(size=(64, 32)), "y": rng.integers(0, 10, 64)}
    for l in range(1, 11):
        arrays[f"W{l}"] = rng.normal(size=(32, 10 if l == 10 else 32)) / 6
        arrays[f"b{l}"] = rng.normal(size=10 if l == 10 else 32) / 10
    return arrays


def time_pipeline(runs: int) -> list[float]:
    arrays = _mlp10_arrays(np.random.default_rng(0))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        symprop.generate(symprop.trace(mlp10, **arrays))
        times.append(time.perf_counter() - start)
    return times


def _compiled(source: str, name: str, validate: bool) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, name, "exec"), module.__dict__)
    module.VALIDATE = validate
    return module


def time_modules(repeat: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    arrays = {"x": rng.normal(size=(64, 784)), "y": rng.integers(0, 10, 64),
              "W1": rng.normal(size=(784, 512)) / 28, "b1": np.zeros(512), "W2": rng.normal(size=(512, 256)) / 22,
              "b2": np.zeros(256), "W3": rng.normal(size=(256, 10)) / 16, "b3": np.zeros(10)}
    spec_source = symprop.generate(symprop.load(str(ROOT / "examples" / "mnist_784_512_256_10.toml")))
    traced_source = symprop.generate(symprop.trace(mnist, wrt=["W1", "b1", "W2", "b2", "W3", "b3"], **arrays))
    modules = {f"{kind} {'checks' if validate else 'no checks'}": _compiled(source, kind, validate)
               for kind, source in (("spec", spec_source), ("traced", traced_source)) for validate in (True, False)}
    reference = modules["spec checks"].gradients(**arrays)
    for name, module in modules.items():
        got = module.gradients(**arrays)
        for key, value in reference.items():
            error = np.max(np.abs(got[key] - value)) / np.max(np.abs(value))
            assert error < 1e-12, (name, key, error)
    best = {name: float("inf") for name in modules}
    calls = {name: (lambda m=module: m.gradients(**arrays)) for name, module in modules.items()}
    for _ in range(repeat):
        order = list(calls)
        random.shuffle(order)
        for name in order:
            best[name] = min(best[name], min(timeit.repeat(calls[name], number=20, repeat=1)) / 20)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="fewer runs and repeats: a smoke run")
    args = parser.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)
    except ImportError:
        limits = None
    times = time_pipeline(2 if args.quick else 5)
    print(f"trace + derive + generate, 10-layer MLP: best {min(times):.3f} s, median {statistics.median(times):.3f} s "
          f"({len(times)} runs)")
    best = time_modules(2 if args.quick else 7)
    print("gradients per call, 784-512-256-10 at batch 64, float64:")
    for name, seconds in best.items():
        print(f"  {name:<18} {seconds * 1e3:8.3f} ms")
    for validate in ("checks", "no checks"):
        print(f"  traced / spec ({validate}): {best[f'traced {validate}'] / best[f'spec {validate}']:.2f}")
    del limits
    return 0


if __name__ == "__main__":
    sys.exit(main())
