#!/usr/bin/env python
"""symprop benchmark: generated gradient modules against hand-written NumPy, PyTorch and SymPy.

Run from the project root:

    python benchmarks/bench.py                  # full run (about 4 minutes); writes
                                                # benchmarks/results.{md,csv,png}
    python benchmarks/bench.py --quick          # smoke run (a few seconds); writes nothing
    python benchmarks/bench.py --quick --csv out.csv --plot out.png --only sigmoid_mse

Everything is measured in one process:

1. Gradient time per call, for every preset (on its spec values), 784-256-10 and
   784-512-256-10 ReLU/softmax cross-entropy nets at batch 1, 64 and 1024, and a 10-layer tanh
   net (64 wide, squared error, batch 64): the generated `gradients` (the defaults, with
   CHECK_FINITE False, and with VALIDATE False), a careful hand-written NumPy backprop (bench_hand.py), the
   element-level SymPy path (`lambdify(..., cse=True)` of `sympy.diff` of the loss written over
   scalar symbols; small presets only), PyTorch autograd (float64, one thread) when installed,
   and the generated `loss` alone. Before any timing every implementation must agree with the
   hand-written one (np.allclose, rtol 1e-9), which must agree with tests/handwritten.py on the
   presets; the generated `loss` must equal an independent NumPy loss; no input may be modified.
   Timing is interleaved: every round runs one block of k calls of each implementation (in a
   fresh random order each round, so that no implementation always follows the same one; one
   untimed call before each block; k calibrated so that a block lasts a few milliseconds; the
   garbage collector off). Reported: medians of the per-call times (block time / k), ratios of
   medians, and the 25th-75th percentiles of the same-round ratios as a gauge of the noise.
2. Derivation + generation time, `symprop.generate(symprop.load(spec))` with SymPy's cache
   cleared before every repetition, for the networks above and against width (2 to 4096) and
   depth (1 to 20).
3. Peak memory (tracemalloc) of one generated `gradients` call against one `forward` call,
   and of the hand-written backprop.
4. The goals, met or not, with the measured worst case.

OpenBLAS runs with one thread unless OPENBLAS_NUM_THREADS / OMP_NUM_THREADS is set or
--blas-threads says otherwise: on a noisy 2-core machine a two-thread GEMM stalls for tens of
milliseconds whenever the other core is busy. PyTorch is set to one thread too
(`torch.set_num_threads(1)`); it uses its own BLAS (MKL), not NumPy's OpenBLAS.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import gc
import importlib.util
import itertools
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_hand  # noqa: E402
import bench_others  # noqa: E402
import bench_plot  # noqa: E402
from symprop import codegen  # noqa: E402
from symprop import symbolic  # noqa: E402
from symprop.codegen.files import compile_module  # noqa: E402
from symprop.symbolic import elements  # noqa: E402

SEED = 20240601
SYMPY_MAX_ENTRIES = 64     # the element-level SymPy path only up to this many gradient entries
CSV_FIELDS = ("section", "case", "network", "batch", "impl", "metric", "value", "unit", "note")
IMPLS = ("hand", "gen", "gen_nofinite", "gen_noval", "loss", "torch", "sympy")
GRADIENT_IMPLS = ("gen", "gen_nofinite", "gen_noval", "sympy", "torch")      # compared with "hand"
GOAL_GEN_OVER_HAND, GOAL_GRAD_OVER_LOSS, GOAL_MEMORY = 1.05, 3.0, 2.0
GOAL_PRESET_S, GOAL_BIG_S = 1.0, 3.0
GOAL_FLAT = 0.05           # |k| of the least-squares fit time ~ width**k: 2**11 wider, at most 1.46x slower


# ================================================================================================
# Networks and values


def mlp_toml(name, inputs, hidden, outputs, batch=None):
    """Row-layout ReLU hidden layers, softmax output, mean cross-entropy."""
    lines = [f'name = "{name}"', 'layout = "row"', f"inputs = {inputs}"]
    if batch is not None:
        lines.append(f"batch = {batch}")
    for units in hidden:
        lines += ["", "[[layers]]", f"units = {units}", 'activation = "relu"']
    lines += ["", "[[layers]]", f"units = {outputs}", 'activation = "softmax"',
              "", "[loss]", 'kind = "cross_entropy"', 'reduction = "mean"', ""]
    return "\n".join(lines)


def tanh_toml(name, width, depth, batch):
    """Row layout, `depth` tanh layers of `width` units, 0.5 * mean squared error."""
    lines = [f'name = "{name}"', 'layout = "row"', f"inputs = {width}", f"batch = {batch}"]
    for _ in range(depth):
        lines += ["", "[[layers]]", f"units = {width}", 'activation = "tanh"']
    lines += ["", "[loss]", 'kind = "squared_error"', 'reduction = "mean"', "scale = 0.5", ""]
    return "\n".join(lines)


def random_arrays(network, rng):
    """Seeded float64 values: x ~ N(0, 1), He (ReLU) or 1/sqrt(fan-in) (tanh) weights, small
    biases; one-hot target rows for cross-entropy, uniform in (-0.9, 0.9) for squared error."""
    n = network.batch
    sizes = [network.inputs] + [layer.units for layer in network.layers]
    arrays = {"x": rng.standard_normal((n, sizes[0]))}
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
        gain = 2.0 if network.layers[i - 1].activation == "relu" else 1.0
        arrays[f"W{i}"] = rng.standard_normal((fan_in, fan_out)) * np.sqrt(gain / fan_in)
        arrays[f"b{i}"] = rng.standard_normal(fan_out) * 0.1
    if network.loss.kind == "cross_entropy":
        y = np.zeros((n, sizes[-1]))
        y[np.arange(n), rng.integers(0, sizes[-1], n)] = 1.0
    else:
        y = rng.uniform(-0.9, 0.9, (n, sizes[-1]))
    arrays["y"] = y
    return arrays


def layers_text(net):
    sizes = "-".join(str(n) for n in (net.inputs, *(l.units for l in net.layers)))
    acts = [l.activation for l in net.layers]
    acts = f"{acts[0]} x{len(acts)}" if len(set(acts)) == 1 and len(acts) > 3 else "/".join(acts)
    return f"{sizes} {net.layout}, {acts}, {net.loss.kind} {net.loss.reduction}"


@dataclass
class Case:
    label: str
    network: object
    arrays: dict
    hand: object
    sympy_note: str = ""            # why the SymPy path is skipped ("" = run it)
    results: dict = field(default_factory=dict)

    @property
    def batch(self):
        return len(self.arrays[self.network.input]) if self.network.layout == "row" else 1


def build_cases(quick, only, sympy_max=SYMPY_MAX_ENTRIES):
    """The networks of section 1, in order; `only` keeps those whose label contains a pattern."""
    rng = np.random.default_rng(SEED)
    cases = []
    for name in symbolic.presets():
        net = symbolic.load(name)
        values = {k: np.asarray(v, dtype=np.float64) for k, v in net.values.items()}
        cases.append(Case(name, net, values, bench_hand.PRESET_BACKWARD[name]))
    mlps = [((256,), 1), ((256,), 64)] if quick else \
        [((256,), 1), ((256,), 64), ((256,), 1024), ((512, 256), 1), ((512, 256), 64), ((512, 256), 1024)]
    for hidden, batch in mlps:
        dims = "-".join(map(str, (784, *hidden, 10)))
        net = symbolic.loads(mlp_toml(f"mlp_{dims.replace('-', '_')}_b{batch}", 784, hidden, 10, batch))
        hand = bench_hand.hand_relu_softmax_ce if len(hidden) == 1 else bench_hand.hand_relu_relu_softmax_ce
        cases.append(Case(dims, net, random_arrays(net, rng), hand))
    net = symbolic.loads(tanh_toml("tanh10_64_b64", 64, 10, 64))
    cases.append(Case("tanh 10x64", net, random_arrays(net, rng), bench_hand.make_hand_tanh_mse(10)))
    if only:
        patterns = [p.strip() for p in only.split(",") if p.strip()]
        cases = [c for c in cases if any(p in c.label for p in patterns)]
    for case in cases:
        entries = bench_others.sympy_entries(case.network, case.arrays)
        if entries > min(sympy_max, elements.MAX_ENTRIES):
            case.sympy_note = f"n/a (too large: {entries} entries)"
        elif quick and entries > 9:
            case.sympy_note = "n/a (skipped in --quick)"
    return cases


# ================================================================================================
# Agreement: never time wrong code


def _seed_backward():
    """tests/handwritten.py's BACKWARD (the seed-style hand-written gradients), or {}."""
    path = ROOT / "tests" / "handwritten.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location("symprop_tests_handwritten", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, "BACKWARD", {})


def assert_same_gradients(what, got, want, arrays):
    assert set(got) == set(want), f"{what} returns {sorted(got)}, hand-written {sorted(want)}"
    for key, ref in want.items():
        have = np.asarray(got[key].detach().numpy() if hasattr(got[key], "detach") else got[key])
        ref = np.asarray(ref)
        assert have.shape == ref.shape == np.shape(arrays[key]), f"{what}: shape of d{key}"
        scale = float(np.max(np.abs(ref))) or 1.0
        assert np.allclose(have, ref, rtol=1e-9, atol=1e-12 * scale), (
            f"{what}: d{key} differs from hand-written (max abs diff {np.max(np.abs(have - ref)):.3g})")


def check_agreement(case, impls, module, seed_backward):
    arrays, net = case.arrays, case.network
    before = {k: v.copy() for k, v in arrays.items()}
    ref = impls["hand"](**arrays)
    if case.label in seed_backward:
        assert_same_gradients(f"{case.label}: tests/handwritten.py", seed_backward[case.label](**arrays),
                              ref, arrays)
    for name in GRADIENT_IMPLS:
        if name in impls:
            assert_same_gradients(f"{case.label}: {name}", impls[name](**arrays), ref, arrays)
    gen_loss, ref_loss = module.loss(**arrays), bench_hand.reference_loss(net, arrays)
    assert np.isclose(gen_loss, ref_loss, rtol=1e-9, atol=0), f"{case.label}: loss {gen_loss} vs {ref_loss}"
    for k, v in arrays.items():
        assert np.array_equal(v, before[k]), f"{case.label}: array {k} was modified"


# ================================================================================================
# Timing


def _block(fn, arrays, k):
    fn(**arrays)                       # untimed: whatever ran before left caches and the allocator cold
    it = itertools.repeat(None, k)
    t0 = time.perf_counter()
    for _ in it:
        fn(**arrays)
    return time.perf_counter() - t0


def time_interleaved(impls, arrays, block_target, budget, min_rounds, max_rounds):
    """{name: per-call times, one per round}, k calls per block, rounds."""
    for fn in impls.values():          # warm up (also fills the generated module's shape cache)
        for _ in range(3):
            fn(**arrays)
    k = 1
    while True:                        # calibrate k on the slowest implementation
        t = max(_block(fn, arrays, k) for fn in impls.values())
        if t >= block_target or k >= 1 << 16:
            break
        k = max(k * 2, int(k * block_target / max(t, 1e-9) * 1.1))
    rounds = int(min(max_rounds, max(min_rounds, budget / (len(impls) * max(t, 1e-9)))))
    names = list(impls)
    times = {name: [] for name in names}
    order = np.random.default_rng(SEED)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):        # a fresh random order every round: no fixed neighbours
            for i in order.permutation(len(names)):
                times[names[i]].append(_block(impls[names[i]], arrays, k) / k)
    finally:
        if enabled:
            gc.enable()
    return times, k, rounds


def summarize_times(times, k, rounds):
    """Medians, minimums and same-round ratios to the hand-written time."""
    med = {n: statistics.median(ts) for n, ts in times.items()}
    out = {"median": med, "min": {n: min(ts) for n, ts in times.items()}, "k": k, "rounds": rounds,
           "over_hand": {}, "over_hand_q": {}}
    for n in times:
        if n in ("hand", "loss"):
            continue
        paired = [a / b for a, b in zip(times[n], times["hand"])]
        q = statistics.quantiles(paired, n=4) if len(paired) > 1 else [paired[0]] * 3
        out["over_hand"][n] = med[n] / med["hand"]
        out["over_hand_q"][n] = (q[0], q[2])
    out["grad_over_loss"] = med["gen"] / med["loss"]
    out["grad_over_loss_q"] = tuple(statistics.quantiles(
        [a / b for a, b in zip(times["gen"], times["loss"])], n=4)[i] for i in (0, 2)) \
        if len(times["gen"]) > 1 else (out["grad_over_loss"],) * 2
    if "torch" in med:
        out["gen_over_torch"] = med["gen"] / med["torch"]
        out["nofinite_over_torch"] = med["gen_nofinite"] / med["torch"]
    return out


# ================================================================================================
# Peak memory (tracemalloc sees NumPy's array buffers)


def _nbytes(result):
    values = result.values() if isinstance(result, dict) else [result]
    return sum(np.asarray(v).nbytes for v in values)


def peak_bytes(fn, arrays):
    """(peak bytes allocated during one call, bytes of what it returned)."""
    fn(**arrays)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn(**arrays)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, _nbytes(result)


def measure_memory(case, module):
    fwd_args = {k: v for k, v in case.arrays.items() if k != case.network.target}
    fwd, _ = peak_bytes(module.forward, fwd_args)
    lean, _ = peak_bytes(lambda **a: bench_hand.lean_forward(case.network, a), fwd_args)
    gen, returned = peak_bytes(module.gradients, case.arrays)
    hand, hand_returned = peak_bytes(case.hand, case.arrays)
    args = sum(v.nbytes for v in case.arrays.values())
    return {"args": args, "forward": fwd, "lean_forward": lean, "lean_ratio": gen / lean, "gen": gen, "returned": returned, "hand": hand,
            "hand_returned": hand_returned, "ratio": gen / fwd, "scratch_ratio": (gen - returned) / fwd,
            "footprint_ratio": (args + gen) / (args + fwd)}


# ================================================================================================
# Section 1 (+3): one network


def run_case(case, args, torch, seed_backward):
    module = compile_module(case.network)
    noval = compile_module(case.network)
    noval.VALIDATE = False
    nofinite = compile_module(case.network)
    nofinite.CHECK_FINITE = False
    assert module.VALIDATE is True and module.CHECK_FINITE is True
    impls = {"hand": case.hand, "gen": module.gradients, "gen_nofinite": nofinite.gradients,
             "gen_noval": noval.gradients, "loss": module.loss}
    if torch is not None:
        impls["torch"] = bench_others.make_torch_gradients(torch, case.network, case.arrays)
    if not case.sympy_note:
        impls["sympy"], case.results["sympy_setup"] = bench_others.make_sympy_gradients(
            case.network, case.arrays)
    check_agreement(case, impls, module, seed_backward)
    if args.quick:
        timing = dict(block_target=0.5e-3, budget=0.15, min_rounds=5, max_rounds=20)
    else:
        timing = dict(block_target=4e-3, budget=args.budget, min_rounds=20, max_rounds=400)
    times, k, rounds = time_interleaved(impls, case.arrays, **timing)
    case.results["time"] = summarize_times(times, k, rounds)
    case.results["memory"] = measure_memory(case, noval)  # the computation's memory, not the checks'
    print(f"  done: {case.label}, batch {case.batch} ({rounds} rounds x {k} calls)", file=sys.stderr)


# ================================================================================================
# Section 2: derivation + generation


def time_generate(path, repeats):
    times = []
    for _ in range(repeats):
        sympy.core.cache.clear_cache()        # a fresh derivation, not SymPy's memo of the last one
        gc.collect()
        t0 = time.perf_counter()
        source = codegen.generate(symbolic.load(path))
        times.append(time.perf_counter() - t0)
        assert "def gradients(" in source
    return times


def generate_jobs(quick, tmp):
    """(table, key, label, spec path): named networks, then the width and depth sweeps."""
    def spec(name, text):
        path = Path(tmp) / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    jobs = [("networks", name, name, name) for name in symbolic.presets()]
    jobs.append(("networks", "784-256-10", "784-256-10",
                 spec("mlp_784_256_10", mlp_toml("mlp_784_256_10", 784, (256,), 10, 64))))
    jobs.append(("networks", "784-512-256-10", "784-512-256-10",
                 spec("mlp_784_512_256_10", mlp_toml("mlp_784_512_256_10", 784, (512, 256), 10, 64))))
    jobs.append(("networks", "tanh 10x64", "tanh 10x64", spec("tanh10", tanh_toml("tanh10", 64, 10, 64))))
    for w in ((2, 64, 4096) if quick else (2, 8, 32, 128, 512, 2048, 4096)):
        jobs.append(("width", w, f"w={w}", spec(f"width_{w}", mlp_toml(f"width_{w}", w, (w,), w, 64))))
    for d in ((1, 5, 20) if quick else (1, 2, 3, 5, 8, 10, 15, 20)):
        jobs.append(("depth", d, f"d={d}", spec(f"depth_{d}", tanh_toml(f"depth_{d}", 16, d, 64))))
    return jobs


def run_generate(quick):
    repeats = 1 if quick else 9
    t0 = time.perf_counter()
    codegen.generate(symbolic.load(symbolic.presets()[0]))     # warm-up (lazy imports), untimed
    warm = time.perf_counter() - t0
    rows = []
    with tempfile.TemporaryDirectory(prefix="symprop-bench-") as tmp:
        for table, key, label, path in generate_jobs(quick, tmp):
            times = time_generate(path, repeats)
            rows.append({"table": table, "key": key, "label": label, "network": layers_text(symbolic.load(path)),
                         "repeats": repeats, "median": statistics.median(times), "min": min(times)})
        print(f"  done: derivation + generation ({len(rows)} networks x {repeats})", file=sys.stderr)
    return rows, warm


# ================================================================================================
# Section 4: goals


def _worst(items):
    """(value, label) of the largest value, or (nan, 'n/a')."""
    items = [(v, label) for v, label in items if v == v]
    return max(items) if items else (float("nan"), "n/a")


def evaluate_goals(cases, gen_rows):
    """[(goal, measured worst case, met?, value)]."""
    goals = []
    timed = [c for c in cases if "time" in c.results]

    def add(goal, value, where, met, extra=""):
        goals.append((goal, f"{value:.3g} ({where}){extra}" if value == value else "n/a",
                      "n/a" if value != value else ("met" if met else "NOT met"), value))

    # Like for like: the hand-written backprop checks nothing, so the goal is measured with the
    # generated module's checks off; what the checks cost is reported beside it.
    v, where = _worst((c.results["time"]["over_hand"]["gen_noval"], f"{c.label}, N={c.batch}") for c in timed)
    v2, where2 = _worst((c.results["time"]["over_hand"]["gen"], f"{c.label}, N={c.batch}") for c in timed)
    v3, where3 = _worst((c.results["time"]["over_hand"]["gen_nofinite"], f"{c.label}, N={c.batch}") for c in timed)
    add(f"generated <= {GOAL_GEN_OVER_HAND}x hand-written at every size (like for like: VALIDATE False)", v, where,
        v <= GOAL_GEN_OVER_HAND, f"; with the default checks: {v2:.3g} ({where2}); "
        f"shapes and dtypes only (CHECK_FINITE False): {v3:.3g} ({where3})")
    # Like for like again: PyTorch checks shapes and dtypes, not values for NaN and inf.
    small = [c for c in timed if c.batch < 64 and "gen_over_torch" in c.results["time"]]
    v, where = _worst((c.results["time"]["nofinite_over_torch"], f"{c.label}, N={c.batch}") for c in small)
    v2, where2 = _worst((c.results["time"]["gen_over_torch"], f"{c.label}, N={c.batch}") for c in small)
    add("faster than PyTorch below batch 64 (generated / torch < 1; like for like: CHECK_FINITE False)",
        v, where, v < 1.0, f"; with the default checks: {v2:.3g} ({where2})")
    v, where = _worst((c.results["time"]["grad_over_loss"], f"{c.label}, N={c.batch}") for c in timed)
    add(f"gradient <= {GOAL_GRAD_OVER_LOSS:g}x loss (generated, time)", v, where, v <= GOAL_GRAD_OVER_LOSS)
    presets = set(symbolic.presets())
    named = [r for r in gen_rows if r["table"] == "networks"]
    v, where = _worst((r["median"], r["label"]) for r in named if r["key"] in presets)
    add(f"derivation + generation < {GOAL_PRESET_S:g} s per preset (median, s)", v, where, v < GOAL_PRESET_S)
    v, where = _worst((r["median"], r["label"]) for r in named if r["key"] == "784-512-256-10")
    add(f"derivation + generation < {GOAL_BIG_S:g} s for 784-512-256-10 (median, s)", v, where, v < GOAL_BIG_S)
    widths = [r for r in gen_rows if r["table"] == "width"]
    if len(widths) > 1:
        hi, lo = max(widths, key=lambda r: r["median"]), min(widths, key=lambda r: r["median"])
        k = float(np.polyfit(np.log([r["key"] for r in widths]), np.log([r["median"] for r in widths]), 1)[0])
        add(f"flat in width: exponent k of a fit median time ~ w^k, w = {widths[0]['key']}..{widths[-1]['key']} "
            f"(abs(k) <= {GOAL_FLAT})", k, f"{len(widths)} widths", abs(k) <= GOAL_FLAT,
            f"; slowest / fastest median: {hi['median'] / lo['median']:.2f} ({hi['label']} / {lo['label']})")
    v, where = _worst((c.results["memory"]["ratio"], f"{c.label}, N={c.batch}") for c in timed)
    v2, where2 = _worst((c.results["memory"]["footprint_ratio"], f"{c.label}, N={c.batch}") for c in timed)
    v3, where3 = _worst((c.results["memory"]["scratch_ratio"], f"{c.label}, N={c.batch}") for c in timed)
    v4, where4 = _worst((c.results["memory"]["lean_ratio"], f"{c.label}, N={c.batch}") for c in timed)
    # Restated: the returned gradients are as large as the parameters, so at batch 1 (a forward
    # pass of a few KiB) no implementation comes within 2x; the goal counts what the call needs
    # beyond its result. The raw ratio is reported beside it.
    add(f"working memory <= {GOAL_MEMORY:g}x forward: (peak - returned gradients) / forward peak",
        v3, where3, v3 <= GOAL_MEMORY, f"; with the returned gradients: {v:.3g} ({where}); "
        f"counting the arguments too: {v2:.3g} ({where2}); against a lean forward: {v4:.3g} ({where4})")
    return goals


# ================================================================================================
# Output: Markdown tables, CSV rows, the figure


class Report:
    """Prints to stdout and keeps the lines for results.md."""

    def __init__(self):
        self.lines = []

    def __call__(self, text=""):
        print(text, flush=True)
        self.lines.append(text)


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(out)


def fmt_us(seconds):
    v = seconds * 1e6
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def fmt_kib(n):
    return f"{n / 1024:,.1f}" if n < 100 * 1024 else f"{n / 1024:,.0f}"


def time_table(cases):
    header = ["network", "N", "hand µs", "gen µs (×hand) [p25–p75]", "gen nofinite µs (×hand)", "gen noval µs (×hand)",
              "SymPy µs (×hand)", "torch µs (×hand)", "gen / torch", "loss µs", "gen / loss", "hand / loss",
              "rounds×calls"]
    body = []
    for c in cases:
        t = c.results["time"]
        med, over, q = t["median"], t["over_hand"], t["over_hand_q"]

        def cell(n, bracket=False):
            if n not in med:
                return c.sympy_note if n == "sympy" else "n/a (torch not installed)"
            text = f"{fmt_us(med[n])} ({over[n]:.3f})"
            return text + f" [{q[n][0]:.2f}–{q[n][1]:.2f}]" if bracket else text
        body.append([c.label, c.batch, fmt_us(med["hand"]), cell("gen", True), cell("gen_nofinite"), cell("gen_noval"),
                     cell("sympy"), cell("torch"),
                     f"{t['gen_over_torch']:.2f}" if "gen_over_torch" in t else "n/a",
                     fmt_us(med["loss"]), f"{t['grad_over_loss']:.2f}",
                     f"{med['hand'] / med['loss']:.2f}", f"{t['rounds']}×{t['k']}"])
    return md_table(header, body)


def sympy_table(cases):
    """The small networks only (at most elements.MAX_ENTRIES gradient entries)."""
    cases = [c for c in cases if bench_others.sympy_entries(c.network, c.arrays) <= elements.MAX_ENTRIES]
    header = ["network", "gradient entries", "expand s", "diff s", "lambdify s", "diff + lambdify s", "printer"]
    body = []
    for c in cases:
        s = c.results.get("sympy_setup")
        if s is None:
            entries = bench_others.sympy_entries(c.network, c.arrays)
            body.append([c.label, entries, c.sympy_note, "", "", "", ""])
        else:
            body.append([c.label, s["entries"], f"{s['expand_s']:.2f}", f"{s['diff_s']:.2f}",
                         f"{s['lambdify_s']:.2f}", f"{s['diff_s'] + s['lambdify_s']:.2f}", s["modules"]])
    return md_table(header, body)


def memory_table(cases):
    header = ["network", "N", "arguments KiB", "forward peak KiB", "lean forward peak KiB",
              "gen gradients peak KiB", "gradients / forward", "gradients / lean forward", "returned gradients KiB", "gen peak − returned KiB",
              "(gen peak − returned) / forward",
              "hand peak − returned KiB", "(args + gradients) / (args + forward)"]
    body = []
    for c in cases:
        m = c.results["memory"]
        body.append([c.label, c.batch, fmt_kib(m["args"]), fmt_kib(m["forward"]), fmt_kib(m["lean_forward"]),
                     fmt_kib(m["gen"]), f"{m['ratio']:.2f}", f"{m['lean_ratio']:.2f}", fmt_kib(m["returned"]), fmt_kib(m["gen"] - m["returned"]),
                     f"{m['scratch_ratio']:.2f}",
                     fmt_kib(m["hand"] - m["hand_returned"]),
                     f"{m['footprint_ratio']:.2f}"])
    return md_table(header, body)


def generate_table(rows, table):
    header = ["network" if table == "networks" else table, "layers", "median ms", "min ms", "repeats"]
    return md_table(header, [[r["label"], r["network"], f"{r['median'] * 1e3:.1f}", f"{r['min'] * 1e3:.1f}",
                              r["repeats"]] for r in rows if r["table"] == table])


def csv_rows(cases, gen_rows, goals):
    rows = []

    def add(section, case, network, batch, impl, metric, value, unit, note=""):
        rows.append(dict(zip(CSV_FIELDS, (section, case, network, batch, impl, metric, value, unit, note))))

    for c in cases:
        net, t, m = layers_text(c.network), c.results["time"], c.results["memory"]
        for impl in t["median"]:
            add("time", c.label, net, c.batch, impl, "median", t["median"][impl] * 1e6, "us")
            add("time", c.label, net, c.batch, impl, "min", t["min"][impl] * 1e6, "us")
            if impl in t["over_hand"]:
                add("time", c.label, net, c.batch, impl, "over_hand", t["over_hand"][impl], "ratio")
                add("time", c.label, net, c.batch, impl, "over_hand_p25", t["over_hand_q"][impl][0], "ratio")
                add("time", c.label, net, c.batch, impl, "over_hand_p75", t["over_hand_q"][impl][1], "ratio")
        if "sympy" not in t["median"]:
            add("time", c.label, net, c.batch, "sympy", "median", "", "us", c.sympy_note)
        add("time", c.label, net, c.batch, "gen", "over_loss", t["grad_over_loss"], "ratio")
        add("time", c.label, net, c.batch, "hand", "over_loss", t["median"]["hand"] / t["median"]["loss"], "ratio")
        if "gen_over_torch" in t:
            add("time", c.label, net, c.batch, "gen", "over_torch", t["gen_over_torch"], "ratio")
        add("time", c.label, net, c.batch, "all", "rounds", t["rounds"], "count", f"{t['k']} calls per block")
        s = c.results.get("sympy_setup")
        if s:
            for key in ("expand_s", "diff_s", "lambdify_s"):
                add("sympy_setup", c.label, net, c.batch, "sympy", key[:-2], s[key], "s", s["modules"])
        for key, impl in (("forward", "gen_forward"), ("lean_forward", "lean_forward"), ("gen", "gen"),
                          ("hand", "hand")):
            add("memory", c.label, net, c.batch, impl, "peak", m[key], "bytes")
        add("memory", c.label, net, c.batch, "gen", "returned", m["returned"], "bytes")
        add("memory", c.label, net, c.batch, "all", "arguments", m["args"], "bytes")
        add("memory", c.label, net, c.batch, "gen", "over_forward", m["ratio"], "ratio")
        add("memory", c.label, net, c.batch, "gen", "footprint_over_forward", m["footprint_ratio"], "ratio")
        add("memory", c.label, net, c.batch, "gen", "scratch_over_forward", m["scratch_ratio"], "ratio")
    for r in gen_rows:
        for metric in ("median", "min"):
            add("generate", r["label"], r["network"], "", r["table"], metric, r[metric], "s", f"{r['repeats']} repeats")
    for goal, measured, status, value in goals:
        add("goal", goal, "", "", "", "worst", value, "", f"{status}: {measured}")
    return rows


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def write_plot(path, cases, gen_rows, title):
    points = [{"label": f"{c.label} N={c.batch}", "over_hand": c.results["time"]["over_hand"],
               "grad_over_loss": c.results["time"]["grad_over_loss"],
               "memory_ratio": c.results["memory"]["ratio"],
               "footprint_ratio": c.results["memory"]["footprint_ratio"]} for c in cases]
    sweep = {t: [(r["key"], r["median"], r["min"]) for r in gen_rows if r["table"] == t] for t in ("width", "depth")}
    return bench_plot.plot(path, points, sweep["width"], sweep["depth"], title)


# ================================================================================================
# Environment


def _openblas():
    """(library file name, ctypes handle) of the OpenBLAS that NumPy loaded, or None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for lib in sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", maps))):
        try:
            return os.path.basename(lib), ctypes.CDLL(lib)
        except OSError:
            continue
    return None


def _openblas_call(handle, names, restype, *args):
    for name in names:
        fn = getattr(handle, name, None)
        if fn is not None:
            fn.restype = restype
            value = fn(*args)
            return value.decode() if isinstance(value, bytes) else value
    return None


_GET_CONFIG = ("scipy_openblas_get_config64_", "openblas_get_config64_", "openblas_get_config")
_GET_CORE = ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename")
_GET_THREADS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")
_SET_THREADS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")


def openblas_runtime():
    """Config, core type and threads of the OpenBLAS that NumPy loaded (via ctypes), or None."""
    found = _openblas()
    if found is None:
        return None
    lib, handle = found
    return {"lib": lib, "config": _openblas_call(handle, _GET_CONFIG, ctypes.c_char_p),
            "core": _openblas_call(handle, _GET_CORE, ctypes.c_char_p),
            "threads": _openblas_call(handle, _GET_THREADS, ctypes.c_int)}


def set_blas_threads(requested):
    """Apply --blas-threads; returns a note for the header (default: one thread, unless
    OPENBLAS_NUM_THREADS or OMP_NUM_THREADS is set, which is then left alone)."""
    if requested is None and (os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")):
        return "BLAS threads: left as the environment sets them"
    if requested == 0:
        return "BLAS threads: library default (--blas-threads 0)"
    threads = 1 if requested is None else requested
    found = _openblas()
    setter = next((getattr(found[1], n) for n in _SET_THREADS if hasattr(found[1], n)), None) if found else None
    if setter is None:
        return f"BLAS threads: could not set {threads} (no OpenBLAS found), library default"
    setter.restype = None
    setter(ctypes.c_int(threads))
    return f"BLAS threads: set to {threads} for this run (--blas-threads N to change, 0 = library default)"


def environment_lines(args, torch):
    lines = [f"- python {platform.python_version()}, numpy {np.__version__}, sympy {sympy.__version__}, "
             f"{platform.system()} {platform.machine()}, os.cpu_count() = {os.cpu_count()}"]
    try:
        model = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)
        lines.append(f"- CPU: {model}")
    except (OSError, AttributeError):
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        lines.append(f"- BLAS (numpy build): {blas.get('name')} {blas.get('version')}")
    except Exception:                          # older NumPy: no mode="dicts"
        lines.append("- BLAS (numpy build): unknown (numpy.show_config has no dicts mode)")
    rt = openblas_runtime()
    if rt:
        lines.append(f"- BLAS (runtime): {rt.get('lib')}: {rt.get('config', '?')}; core {rt.get('core', '?')}, "
                     f"BLAS threads now: {rt.get('threads', '?')}")
    lines.append(f"- {args.blas_note}")
    if torch is None:
        lines.append("- PyTorch: not installed (its columns say n/a)")
    else:
        mkl = "MKL" if torch.backends.mkl.is_available() else "its own BLAS"
        lines.append(f"- PyTorch {torch.__version__} (float64 autograd, {mkl}), "
                     f"torch.set_num_threads(1): {torch.get_num_threads()} thread")
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                          "MKL_NUM_THREADS")}
    lines.append("- environment: " + ", ".join(f"{k}={v if v is not None else '(unset)'}" for k, v in env.items()))
    lines.append(f"- mode: {'--quick' if args.quick else 'full'}; command: python {' '.join(sys.argv)}")
    return lines


# ================================================================================================
# Main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, fewer networks: a smoke run "
                        "of a few seconds; writes only the files asked for")
    parser.add_argument("--csv", metavar="FILE", help="write every measurement to this CSV file "
                        "(default without --quick: benchmarks/results.csv)")
    parser.add_argument("--plot", metavar="FILE.png", help="write the figure to this PNG file "
                        "(default without --quick: benchmarks/results.png)")
    parser.add_argument("--md", metavar="FILE", help="write the printed tables to this Markdown file "
                        "(default without --quick: benchmarks/results.md)")
    parser.add_argument("--only", metavar="PATTERNS", help="comma-separated substrings: time only the "
                        "networks whose label contains one (e.g. sigmoid_mse,784-256-10)")
    parser.add_argument("--sympy-max", type=int, default=SYMPY_MAX_ENTRIES, metavar="N",
                        help=f"run the element-level SymPy path on networks with at most N gradient "
                             f"entries (default {SYMPY_MAX_ENTRIES}; relu_batch_10_20_1 has 241 and takes "
                             f"about 90 s to build)")
    parser.add_argument("--budget", type=float, default=16.0, metavar="SECONDS",
                        help="timing budget per network in a full run (default 16)")
    parser.add_argument("--blas-threads", type=int, metavar="N",
                        help="OpenBLAS threads for the run (default 1 unless OPENBLAS_NUM_THREADS or "
                             "OMP_NUM_THREADS is set; 0 = the library's default)")
    args = parser.parse_args(argv)
    if not args.quick:
        args.csv = args.csv or str(HERE / "results.csv")
        args.plot = args.plot or str(HERE / "results.png")
        args.md = args.md or str(HERE / "results.md")
    return args


def report_sections(out, args, cases, gen_rows, warm, goals):
    out("\n## 1. Gradient time per call\n")
    out("hand = hand-written NumPy backprop (benchmarks/bench_hand.py); gen = generated `gradients` "
        "(VALIDATE and CHECK_FINITE True, the defaults); gen nofinite = CHECK_FINITE False (shapes "
        "and dtypes still checked); gen noval = VALIDATE False (no checks); SymPy = element-level "
        "`lambdify(..., cse=True)`; torch = PyTorch autograd, float64, tensors built once, fresh "
        "grads each call, one thread; loss = generated `loss` alone. All gradients agree "
        "(np.allclose, rtol 1e-9) before timing. Medians of per-call times from the same "
        "interleaved rounds; (×hand) = ratio of medians; [p25–p75] of the per-round ratios. "
        "gen / loss: the cheap-gradient bound of reverse mode (goal <= 3); hand / loss: the same "
        "bound for the hand-written backprop, against the same generated `loss`.\n")
    out(time_table(cases))
    out("\nSymPy element path, one-off cost of building it (the loss over scalar symbols, "
        "`sympy.diff` per entry, `lambdify` with cse):\n")
    out(sympy_table(cases))
    out(f"\nNot in this table: networks with more than {elements.MAX_ENTRIES} gradient entries, which "
        f"symbolic.elements refuses to write out; the timed path is limited to {args.sympy_max} "
        f"(--sympy-max).")
    out("\n## 2. Derivation + generation: `symprop.generate(symprop.load(spec))`, fresh\n")
    out(f"SymPy cache cleared before every repetition; the first generate of the process "
        f"(imports, untimed warm-up) took {warm * 1e3:.0f} ms.\n")
    out(generate_table(gen_rows, "networks"))
    out("\nWidth sweep: w-w-w ReLU/softmax cross-entropy, batch 64.\n")
    out(generate_table(gen_rows, "width"))
    out("\nDepth sweep: d tanh layers of width 16, squared error, batch 64.\n")
    out(generate_table(gen_rows, "depth"))
    out("\n## 3. Peak memory of one call (tracemalloc; NumPy buffers included, PyTorch's not)\n")
    out("Peak = the most bytes allocated during the call above what was allocated before it, "
        "including what the call returns. The gradients are as large as the parameters, so "
        "'peak − returned' is what the call needs beyond its result. forward = the generated "
        "`forward`, which keeps every layer's z and a alive until it returns; lean forward = "
        "bench_hand.lean_forward, one layer's activations at a time, in place. The generated "
        "functions are measured with VALIDATE = False: this is the computation's memory; the "
        "checks add the NaN/inf pass's copy of the small arrays (at most 4096 entries each).\n")
    out(memory_table(cases))
    out("\n## 4. Goals\n")
    out(md_table(["goal", "measured worst case", "status"], [g[:3] for g in goals]))


def main(argv=None):
    args = parse_args(argv)
    args.blas_note = set_blas_threads(args.blas_threads)
    torch = bench_others.torch_or_none()
    start = time.perf_counter()
    out = Report()
    out("# symprop benchmark\n")
    out("\n".join(environment_lines(args, torch)))

    cases = build_cases(args.quick, args.only, args.sympy_max)
    if not cases:
        print(f"bench.py: --only {args.only!r} matches no network", file=sys.stderr)
        return 2
    seed_backward = _seed_backward()
    for case in cases:
        run_case(case, args, torch, seed_backward)
    gen_rows, warm = run_generate(args.quick)
    goals = evaluate_goals(cases, gen_rows)
    report_sections(out, args, cases, gen_rows, warm, goals)
    out(f"\ntotal wall time: {time.perf_counter() - start:.1f} s")

    if args.csv:
        write_csv(args.csv, csv_rows(cases, gen_rows, goals))
        print(f"rows written to {args.csv}")
    if args.plot:
        title = f"symprop benchmark ({'--quick' if args.quick else 'full run'}), {platform.machine()}, " \
                f"numpy {np.__version__}, {args.blas_note}"
        if write_plot(args.plot, cases, gen_rows, title):
            print(f"figure written to {args.plot}")
        else:
            print("figure not written: matplotlib is not installed (pip install matplotlib)")
    if args.md:
        Path(args.md).write_text("\n".join(out.lines) + "\n", encoding="utf-8")
        print(f"tables written to {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
