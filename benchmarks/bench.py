#!/usr/bin/env python
"""symprop's benchmark: every implementation of a network's gradients, timed side by side.

Run from the project root:

    python benchmarks/bench.py                   # the table: every case, every peer installed
    python benchmarks/bench.py --only CNN        # the cases whose name holds this text
    python benchmarks/bench.py --quick           # a smoke run: the first case, 20 rounds
    python benchmarks/bench.py --fresh --only CNN [--malloc tuned]
                                                 # each implementation in fresh processes
    python benchmarks/bench.py --depth [--check] # derive, generate, check against depth

A case is a row of CASES (a name, a network, a batch size, the hand-written backprop of
`hand.py` it is checked and timed against); a peer is a row of `peers.PEERS` (a column: symprop's
NumPy and Numba modules, PyTensor, JAX, PyTorch, autograd, SymPy element by element); a peer
that cannot write a case's network is n/a there. Every implementation must agree with the
hand-written gradients (to 1e-7 of the largest entry) before it is timed.

Timing, in one process: interleaved rounds, each a block of calls (about 4 ms) of every
implementation in a fresh random order, one untimed call before each block, the garbage
collector off; reported, the median time per call and its ratio to the hand-written one. One
BLAS thread, and the process pinned to one core (Linux), so that no library computes on two.
With --fresh, each implementation runs alone in `--processes` fresh processes (the allocator as
a fresh program finds it: the large arrays of a call are new mappings whose pages fault in),
which also report the page faults and the peak memory of a call (tracemalloc, after a warm-up
call; PyTorch's tensors it does not see) and what a generated module keeps between calls.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

if __name__ == "__main__":  # before NumPy loads its BLAS; not when a test imports the cases
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    if hasattr(os, "sched_setaffinity"):  # one core for every implementation: JAX's XLA runs its own
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # thread pool whatever BLAS is told

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import hand  # noqa: E402
from peers import PEERS, installed  # noqa: E402

import symprop  # noqa: E402
from symprop.check import random_values  # noqa: E402

AGREE = 1e-7  # the largest difference from the hand-written gradients, relative to their largest entry
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "67108864", "MALLOC_TRIM_THRESHOLD_": "268435456"}


# ------------------------------------------------------------------------------------------------
# The cases


@dataclass(frozen=True)
class Case:
    name: str
    network: Callable  # () -> a symprop Network or traced Program
    n: int | None      # the batch (None: the spec's own values)
    hand: Callable     # the hand-written gradients (hand.py)
    values: Callable | None = None  # (network) -> the arrays; default: random_values at batch n


def dense(inputs, layers, loss):
    """A row-layout dense network: `layers` as (units, activation), the mean loss."""
    text = ['name = "dense"', 'layout = "row"', f"inputs = {inputs}"]
    for units, activation in layers:
        text += ["[[layers]]", f"units = {units}", f'activation = "{activation}"']
    text += ["[loss]", f'kind = "{loss}"', 'reduction = "mean"'] + (['scale = 0.5'] if loss == "squared_error" else [])
    return lambda: symprop.loads("\n".join(text))


LSTM = """name = "lstm"
inputs = [20, 64]
[[layers]]
kind = "lstm"
units = 64
output = "last"
[[layers]]
units = 10
activation = "softmax"
[loss]
kind = "cross_entropy"
labels = true
"""


def mlp_numpy(x, y, W1, b1, W2, b2, W3, b3):
    """784-512-256-10 written in NumPy by a user, traced by symprop.trace."""
    a1 = np.maximum(0, x @ W1 + b1)
    a2 = np.maximum(0, a1 @ W2 + b2)
    z3 = a2 @ W3 + b3
    shifted = z3 - z3.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.sum(y * log_probs) / x.shape[0]


def mlp_values(_=None):
    rng = np.random.default_rng(0)
    sizes = [784, 512, 256, 10]
    values = {"x": rng.normal(size=(64, 784)), "y": np.eye(10)[rng.integers(0, 10, 64)]}
    for i, (fan_in, units) in enumerate(zip(sizes, sizes[1:]), 1):
        values[f"W{i}"] = rng.normal(size=(fan_in, units)) / np.sqrt(fan_in)
        values[f"b{i}"] = 0.1 * rng.normal(size=units)
    return values


def traced_mlp():
    return symprop.trace(mlp_numpy, wrt=["W1", "b1", "W2", "b2", "W3", "b3"], **mlp_values())


def spec_values(network):
    return {name: np.asarray(value, dtype=float) for name, value in network.values.items()}


CASES = [
    Case("2-2-1 sigmoid, MSE", dense(2, [(2, "sigmoid"), (1, "sigmoid")], "squared_error"), 1,
         hand.hand_sigmoid_mse_2_2_1),
    Case("10-20-10 ReLU/softmax", dense(10, [(20, "relu"), (10, "softmax")], "cross_entropy"), 5,
         hand.hand_relu_softmax_ce),
    *(Case("784-256-10 ReLU/softmax", dense(784, [(256, "relu"), (10, "softmax")], "cross_entropy"), n,
           hand.hand_relu_softmax_ce) for n in (1, 64, 1024)),
    Case("10-layer tanh, width 64, MSE", dense(64, [(64, "tanh")] * 10, "squared_error"), 64,
         hand.make_hand_tanh_mse(10)),
    *(Case(f"preset {name}", lambda name=name: symprop.load(name), None, backward, spec_values)
      for name, backward in hand.PRESETS.items()),
    Case("784-256(batchnorm, relu)-10", lambda: symprop.load(str(HERE / "batchnorm_784_256_10.toml")), 64,
         hand.hand_batchnorm),
    Case("CNN 3x32x32, conv 16 3x3, maxpool 2, dense 10", lambda: symprop.load(str(HERE / "cnn_3x32x32.toml")), 16,
         hand.hand_cnn),
    Case("LSTM, T 20, 64 inputs, 64 units, softmax 10", lambda: symprop.loads(LSTM), 32, hand.hand_lstm),
    Case("784-512-256-10 ReLU/softmax, traced NumPy", traced_mlp, 64, hand.hand_relu_relu_softmax_ce, mlp_values),
]


def values_of(case, network):
    return case.values(network) if case.values else random_values(network, 0, case.n)


# ------------------------------------------------------------------------------------------------
# Agreement and timing


def agree(got, expected, what):
    """Every gradient of the hand-written ones' shape and within AGREE of them, relative to
    their largest entry."""
    scale = max(float(np.max(np.abs(value))) for value in expected.values())
    for name, value in expected.items():
        mine = np.asarray(got[name], dtype=float)
        if mine.shape != np.shape(value):
            raise AssertionError(f"{what}: the gradient of {name} has shape {mine.shape}, not {np.shape(value)}")
        error = float(np.max(np.abs(mine - value)))
        if not error <= AGREE * scale:
            raise AssertionError(f"{what}: the gradient of {name} differs from the hand-written one by {error:.3g}")


def time_interleaved(functions: dict, values: dict, budget: float) -> dict:
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


def implementations(case, columns, log=True):
    """(network, values, {column: gradients function}) of a case, each checked against the hand."""
    network = case.network()
    values = values_of(case, network)
    expected = case.hand(**values)
    functions = {"hand": case.hand}
    for column, build in columns:
        if log:
            print(f"{case.name} N={case.n}: {column}", file=sys.stderr, flush=True)
        f = build(network, values)
        if f is not None:  # None: the peer does not write this network
            agree(f(**values), expected, f"{case.name}, {column}")
            functions[column] = f
    return network, values, functions


def batch_of(case, network, values):
    if case.n:
        return case.n
    return 1 if network.layout == "column" else len(values[network.input])


def table(cases, columns, budget):
    """The rows of the main table: [case, N, hand µs, then µs (× hand) per column]."""
    rows = []
    for case in cases:
        network, values, functions = implementations(case, columns)
        medians = time_interleaved(functions, values, budget)
        rows.append([case.name, batch_of(case, network, values), medians])
    return rows


# ------------------------------------------------------------------------------------------------
# Fresh processes


def minor_faults():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def child(index: int, column: str, calls: int) -> dict:
    """One implementation of one case, alone in this process: seconds per call of `calls` calls,
    minor page faults per call, the peak bytes a call allocates after a warm-up call, and the
    bytes a generated module keeps between calls."""
    columns = [(name, build) for name, build, _ in PEERS if name == column]
    _, values, functions = implementations(CASES[index], columns, log=False)
    f = functions[column]
    f(**values)
    times, before = [], minor_faults()
    for _ in range(calls):
        start = time.perf_counter()
        f(**values)
        times.append(time.perf_counter() - start)
    faults = (minor_faults() - before) / calls
    tracemalloc.start()
    f(**values)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    spare = getattr(f, "__globals__", {}).get("_SPARE", {})
    kept = sum(b.nbytes for buffers in spare.values() for b in buffers.values())
    return {"median": float(np.median(times)), "faults": faults, "peak": peak, "kept": kept}


def fresh(cases, columns, processes, calls, malloc):
    """Rows like `table`'s, each implementation timed in `processes` fresh processes of its own
    (shuffled): the median over the processes of each one's median."""
    env = dict(os.environ, **(TUNED_MALLOC if malloc == "tuned" else {}))
    rows = []
    for case in cases:
        index = CASES.index(case)
        network = case.network()
        values = values_of(case, network)
        names = ["hand"] + [name for name, build in columns if build(network, values) is not None]
        got = {name: [] for name in names}
        jobs = [name for name in names for _ in range(processes)]
        random.shuffle(jobs)
        for name in jobs:
            print(f"{case.name}: {name} in a fresh process", file=sys.stderr, flush=True)
            command = [sys.executable, str(Path(__file__).resolve()), "--child", f"{index}:{name}", "--calls", str(calls)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
            if done.returncode:
                raise RuntimeError(f"{case.name}, {name} failed in its process:\n{done.stderr[-3000:]}")
            got[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
        medians = {name: float(np.median([r["median"] for r in runs])) for name, runs in got.items()}
        extra = {name: runs[-1] | {"faults": float(np.median([r["faults"] for r in runs]))} for name, runs in got.items()}
        rows.append([case.name, batch_of(case, network, values), medians, extra])
    return rows


# ------------------------------------------------------------------------------------------------
# Against depth


def deep_tanh(layers: int):
    text = f'name = "deep{layers}"\ninputs = 8\n' + '[[layers]]\nunits = 8\nactivation = "tanh"\n' * layers
    return symprop.loads(text + '[[layers]]\nunits = 3\nactivation = "softmax"\n[loss]\nkind = "cross_entropy"\n')


def seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def depth(depths, check):
    """Rows [network, derive s, generate s, check s or None]: L tanh layers of 8 units (8 inputs,
    a softmax of 3, cross-entropy) and the traced NumPy MLP (its trace in each figure). One run
    each, SymPy's caches warm from the runs before, as in a session, after an untimed run of each
    kind (the first imports modules: seconds on a cold disk)."""
    symprop.check(deep_tanh(1)) if check else symprop.generate(deep_tanh(1))
    symprop.generate(traced_mlp())
    rows = []
    for layers in depths:
        network = deep_tanh(layers)
        rows.append([f"{layers} tanh layers", seconds(lambda: symprop.derive(network)),
                     seconds(lambda: symprop.generate(network)),
                     seconds(lambda: symprop.check(network)) if check else None])
    rows.append(["784-512-256-10, traced NumPy", seconds(lambda: symprop.derive(traced_mlp())),
                 seconds(lambda: symprop.generate(traced_mlp())), None])
    return rows


# ------------------------------------------------------------------------------------------------
# Output


def markdown(header, rows):
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def timing_table(rows, columns, fresh_rows=False):
    header = ["network", "N", "hand µs"] + [f"{name} µs (×hand)" for name in columns]
    lines = []
    for row in rows:
        name, n, medians = row[:3]
        hand_time = medians["hand"]
        cells = [name, n, f"{hand_time * 1e6:,.1f}"]
        for column in columns:
            if column not in medians:
                cells.append("n/a")
                continue
            cell = f"{medians[column] * 1e6:,.1f} ({medians[column] / hand_time:.2f})"
            if fresh_rows:
                extra = row[3][column]
                cell += f", {extra['faults']:,.0f} faults"
                if "PyTorch" not in column:  # tracemalloc does not see PyTorch's tensors
                    cell += f", peak {extra['peak'] / 1e6:.1f} MB"
                    cell += f" + {extra['kept'] / 1e6:.1f} kept" if extra["kept"] else ""
            cells.append(cell)
        if fresh_rows:
            extra = row[3]["hand"]
            cells[2] += f", {extra['faults']:,.0f} faults, peak {extra['peak'] / 1e6:.1f} MB"
        lines.append(cells)
    return markdown(header, lines)


def versions():
    from importlib.metadata import PackageNotFoundError, version
    found = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    for module in ("numba", "pytensor", "jax", "torch", "autograd", "sympy"):
        try:
            found.append(f"{module} {version(module)}")
        except PackageNotFoundError:
            pass
    return ", ".join(found)


def write_csv(path, rows, columns):
    import csv
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["network", "N", "implementation", "median_us", "ratio_to_hand"])
        for name, n, medians, *_ in rows:
            for column in ["hand", *columns]:
                if column in medians:
                    out.writerow([name, n, column, f"{medians[column] * 1e6:.3f}",
                                  f"{medians[column] / medians['hand']:.4f}"])


def write_plot(path, rows, columns):
    """Each case's time as a ratio to the hand-written one, a bar per implementation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(12, 0.45 * len(rows) * (1 + len(columns) / 8) + 1.5))
    height = 0.8 / max(len(columns), 1)
    for k, column in enumerate(columns):
        ratios = [row[2][column] / row[2]["hand"] if column in row[2] else np.nan for row in rows]
        ax.barh(np.arange(len(rows)) + k * height, ratios, height, label=column)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(np.arange(len(rows)) + 0.4 - height / 2, [f"{row[0]}, N={row[1]}" for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel("time per gradient call / hand-written NumPy's (log scale; left of 1 is faster)")
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only the cases whose name contains this text")
    parser.add_argument("--peers", help="only the peers whose column contains one of these comma-separated texts")
    parser.add_argument("--budget", type=float, default=4.0, help="seconds of timed rounds per case (default 4)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: the first case (or --only's), 20 rounds")
    parser.add_argument("--md", type=Path, help="also write the output to this file")
    parser.add_argument("--csv", type=Path, help="also write the medians to this CSV file")
    parser.add_argument("--plot", type=Path, help="also draw the ratios to this PNG file (matplotlib)")
    parser.add_argument("--fresh", action="store_true", help="each implementation in fresh processes of its own")
    parser.add_argument("--processes", type=int, default=4, help="with --fresh: processes per implementation")
    parser.add_argument("--calls", type=int, default=40, help="with --fresh: timed calls per process")
    parser.add_argument("--malloc", choices=("default", "tuned"), default="default",
                        help="with --fresh: glibc's malloc as started, or with " + " ".join(
                            f"{k}={v}" for k, v in TUNED_MALLOC.items()))
    parser.add_argument("--depth", action="store_true", help="derive, generate (and check) against depth instead")
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    parser.add_argument("--check", action="store_true", help="with --depth: also time symprop.check")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        index, column = args.child.split(":", 1)
        print(json.dumps(child(int(index), column, args.calls)))
        return 0
    if args.plot and not installed("matplotlib"):
        parser.error('--plot needs matplotlib: pip install -e ".[plot]"')
    if args.depth:
        rows = depth(args.depths, args.check)
        text = markdown(["network", "derive s", "generate s", "check s"],
                        [[name, *(f"{t:.2f}" if t is not None else "-" for t in times)] for name, *times in rows])
    else:
        cases = [case for case in CASES if not args.only or args.only in case.name][:1 if args.quick else None]
        if not cases:
            parser.error(f"no case's name contains {args.only!r}")
        wanted = args.peers.split(",") if args.peers else None
        columns = [(name, build) for name, build, module in PEERS
                   if installed(module) and (wanted is None or any(w in name for w in wanted))]
        if args.fresh:
            rows = fresh(cases, columns, 1 if args.quick else args.processes, 3 if args.quick else args.calls,
                         args.malloc)
        else:
            rows = table(cases, columns, 0.0 if args.quick else args.budget)
        names = [name for name, _ in columns if any(name in row[2] for row in rows)]
        text = timing_table(rows, names, args.fresh)
        if args.csv:
            write_csv(args.csv, rows, names)
        if args.plot:
            write_plot(args.plot, rows, names)
    command = " ".join(["python benchmarks/bench.py", *(argv if argv is not None else sys.argv[1:])])
    text += (f"\n\n{versions()}; {os.cpu_count()} CPUs, pinned to one core, one BLAS thread; "
             f"command: {command}\n")
    print(text)
    if args.md:
        args.md.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
