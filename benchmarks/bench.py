#!/usr/bin/env python
"""symprop benchmark: generated gradient modules vs hand-written NumPy backprop, and derivation time.

Run from the project root:

    python benchmarks/bench.py            # full run (about 100 s)
    python benchmarks/bench.py --quick    # smoke test (a few seconds)
    python benchmarks/bench.py --csv results.csv

1. Gradient time. For each case, three implementations are timed in one process:
   the generated `gradients` (VALIDATE True, the default), the generated `gradients` with
   VALIDATE False (a second compiled copy of the module), and a hand-written NumPy backprop
   defined below (same maths, same loss definition as the spec). Before any timing, the three
   must agree (np.allclose, rtol 1e-9) and the hand-written loss must equal the generated one.
   Timing is interleaved: every round runs one block of k calls of each implementation (the
   order rotated from round to round), k calibrated so that a block lasts a few milliseconds;
   the garbage collector is off inside the rounds. Per implementation we report the median
   and the minimum of the per-call times (block time / k), and the ratio of the medians; the
   bracket holds the 25th-75th percentiles of the per-round ratios (same-round pairs), a
   measure of how much the noise of the machine moves the ratio.

2. Derivation + generation time: wall time of `codegen.generate(symbolic.load(spec))`, with
   SymPy's cache cleared before every repetition (so each is a fresh derivation), for every
   preset, a 784-256-128-10 ReLU/softmax network and a width sweep.

OpenBLAS runs with one thread unless OPENBLAS_NUM_THREADS / OMP_NUM_THREADS is set or
--blas-threads says otherwise: on a noisy 2-core machine a two-thread GEMM stalls for tens of
milliseconds whenever the other core is busy. OPENBLAS_CORETYPE is never touched.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import gc
import itertools
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sympy

import codegen
import symbolic
from codegen.files import compile_module

SEED = 20240601


# --------------------------------------------------------------------------------------------
# Hand-written backprop: row layout (x is (N, inputs), W is (inputs, units), b is (units,)).
# Vectorised; every temporary is a fresh array that is then updated in place (no copies of the
# inputs, no needless intermediates). relu'(0) = 0, as in the spec.
# --------------------------------------------------------------------------------------------

def hand_relu_identity_mse(*, x, y, W1, b1, W2, b2):
    """10-20-1 style: relu / identity, loss 0.5 * mean((yhat - y)^2) over all elements."""
    a1 = x @ W1
    a1 += b1
    np.maximum(a1, 0.0, out=a1)          # a1 = relu(z1); a1 > 0 exactly where z1 > 0
    d2 = a1 @ W2
    d2 += b2                             # yhat
    d2 -= y
    d2 *= 1.0 / y.size                   # d(0.5 * mean(e^2)) / d yhat = e / size
    dW2 = a1.T @ d2
    db2 = d2.sum(axis=0)
    d1 = d2 @ W2.T
    d1 *= a1 > 0
    dW1 = x.T @ d1
    db1 = d1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def hand_relu_softmax_ce(*, x, y, W1, b1, W2, b2):
    """relu / softmax, loss mean over samples of -sum_k y_k log p_k (one-hot rows of y)."""
    a1 = x @ W1
    a1 += b1
    np.maximum(a1, 0.0, out=a1)
    p = a1 @ W2
    p += b2
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)    # softmax
    p -= y                               # dL/dz2 = (p - y) / N (rows of y sum to 1)
    p *= 1.0 / len(x)
    dW2 = a1.T @ p
    db2 = p.sum(axis=0)
    d1 = p @ W2.T
    d1 *= a1 > 0
    dW1 = x.T @ d1
    db1 = d1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def hand_relu_relu_softmax_ce(*, x, y, W1, b1, W2, b2, W3, b3):
    """relu / relu / softmax, mean cross-entropy (one-hot rows of y)."""
    a1 = x @ W1
    a1 += b1
    np.maximum(a1, 0.0, out=a1)
    a2 = a1 @ W2
    a2 += b2
    np.maximum(a2, 0.0, out=a2)
    p = a2 @ W3
    p += b3
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    p -= y
    p *= 1.0 / len(x)
    dW3 = a2.T @ p
    db3 = p.sum(axis=0)
    d2 = p @ W3.T
    d2 *= a2 > 0
    dW2 = a1.T @ d2
    db2 = d2.sum(axis=0)
    d1 = d2 @ W2.T
    d1 *= a1 > 0
    dW1 = x.T @ d1
    db1 = d1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}


def _hand_forward(arrays, n_layers, last):
    a = arrays["x"]
    for i in range(1, n_layers + 1):
        z = a @ arrays[f"W{i}"] + arrays[f"b{i}"]
        if i < n_layers:
            a = np.maximum(z, 0.0)
        elif last == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        else:
            a = z
    return a


def hand_loss(arrays, n_layers, kind):
    """The spec's loss, written out independently: checks the hand-written maths is the spec's."""
    y = arrays["y"]
    if kind == "mse":      # 0.5 * mean over all elements of (yhat - y)^2
        yhat = _hand_forward(arrays, n_layers, "identity")
        return 0.5 * np.mean((yhat - y) ** 2)
    p = _hand_forward(arrays, n_layers, "softmax")      # mean over samples of -sum y log p
    return -np.sum(y * np.log(p)) / len(y)


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------

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


def random_arrays(network, rng):
    """Seeded float64 values: x ~ N(0, 1), He-scaled weights, small biases, one-hot targets."""
    n = network.batch
    sizes = [network.inputs] + [layer.units for layer in network.layers]
    arrays = {"x": rng.standard_normal((n, sizes[0]))}
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
        arrays[f"W{i}"] = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        arrays[f"b{i}"] = rng.standard_normal(fan_out) * 0.1
    y = np.zeros((n, sizes[-1]))
    y[np.arange(n), rng.integers(0, sizes[-1], n)] = 1.0
    arrays["y"] = y
    return arrays


# --------------------------------------------------------------------------------------------
# Gradient timing
# --------------------------------------------------------------------------------------------

IMPLS = ("hand", "gen", "gen_noval")


def check_agreement(case, impls, arrays, module, n_layers, kind):
    """Never time wrong code: all implementations agree, the losses agree, inputs untouched."""
    before = {k: v.copy() for k, v in arrays.items()}
    ref = impls["hand"](**arrays)
    for name in ("gen", "gen_noval"):
        got = impls[name](**arrays)
        assert set(got) == set(ref), f"{case}: {name} returns {sorted(got)}, hand {sorted(ref)}"
        for key, want in ref.items():
            have = got[key]
            assert have.shape == want.shape == arrays[key].shape, f"{case}: shape of d{key}"
            scale = float(np.max(np.abs(want))) or 1.0
            assert np.allclose(have, want, rtol=1e-9, atol=1e-12 * scale), (
                f"{case}: {name} d{key} differs from hand-written "
                f"(max abs diff {np.max(np.abs(have - want)):.3g})")
    gen_loss, ref_loss = module.loss(**arrays), hand_loss(arrays, n_layers, kind)
    assert np.isclose(gen_loss, ref_loss, rtol=1e-9, atol=0), f"{case}: loss {gen_loss} vs {ref_loss}"
    for k, v in arrays.items():
        assert np.array_equal(v, before[k]), f"{case}: array {k} was modified"


def _block(fn, arrays, k):
    it = itertools.repeat(None, k)
    t0 = time.perf_counter()
    for _ in it:
        fn(**arrays)
    return time.perf_counter() - t0


def time_interleaved(impls, arrays, block_target, budget, min_rounds, max_rounds):
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
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            s = r % len(names)
            for name in names[s:] + names[:s]:
                times[name].append(_block(impls[name], arrays, k) / k)
    finally:
        if enabled:
            gc.enable()
    return times, k, rounds


def gradient_cases(quick):
    """(case label, network, arrays, hand function, layers, loss kind)."""
    rng = np.random.default_rng(SEED)
    preset = symbolic.load("relu_batch_10_20_1")
    loss = preset.loss
    assert (loss.kind, loss.reduction, loss.scale, loss.l2) == ("squared_error", "mean", 0.5, 0.0)
    assert [l.activation for l in preset.layers] == ["relu", "identity"] and preset.layout == "row"
    values = {k: np.asarray(v, dtype=np.float64) for k, v in preset.values.items()}
    cases = [("relu_batch_10_20_1 (preset values)", preset, values, hand_relu_identity_mse, 2, "mse")]
    for hidden, batch in (((256,), 64), ((256,), 1), ((256,), 1024), ((512, 256), 64)):
        dims = "-".join(map(str, (784, *hidden, 10)))
        net = symbolic.loads(mlp_toml(f"mlp_{dims.replace('-', '_')}_b{batch}", 784, hidden, 10, batch))
        hand = hand_relu_softmax_ce if len(hidden) == 1 else hand_relu_relu_softmax_ce
        cases.append((f"{dims} relu/softmax CE", net, random_arrays(net, rng), hand, len(hidden) + 1, "ce"))
    return cases


def run_gradients(args):
    if args.quick:
        block_target, budget, min_rounds, max_rounds = 0.5e-3, 0.25, 8, 30
    else:
        block_target, budget, min_rounds, max_rounds = 4e-3, 20.0, 60, 1000
    rows = []
    for case, net, arrays, hand, n_layers, kind in gradient_cases(args.quick):
        module = compile_module(net)
        noval = compile_module(net)
        noval.VALIDATE = False
        assert module.VALIDATE is True
        impls = {"hand": hand, "gen": module.gradients, "gen_noval": noval.gradients}
        check_agreement(case, impls, arrays, module, n_layers, kind)
        times, k, rounds = time_interleaved(impls, arrays, block_target, budget, min_rounds, max_rounds)
        med = {n: statistics.median(times[n]) for n in IMPLS}
        row = {"section": "gradients", "case": case, "batch": len(arrays["x"]),
               "calls_per_block": k, "rounds": rounds}
        for n in IMPLS:
            row[f"{n}_median_us"] = med[n] * 1e6
            row[f"{n}_min_us"] = min(times[n]) * 1e6
        for n in ("gen", "gen_noval"):
            paired = [a / b for a, b in zip(times[n], times["hand"])]
            q = statistics.quantiles(paired, n=4)
            row[f"{n}_over_hand"] = med[n] / med["hand"]
            row[f"{n}_over_hand_p25"], row[f"{n}_over_hand_p75"] = q[0], q[2]
        rows.append(row)
        print(f"  done: {case}, batch {row['batch']} ({rounds} rounds x {k} calls)", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------------------------
# Derivation + generation timing
# --------------------------------------------------------------------------------------------

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


def run_generate(args, tmp):
    repeats = 2 if args.quick else 15
    t0 = time.perf_counter()
    codegen.generate(symbolic.load(symbolic.presets()[0]))     # warm-up (lazy imports), untimed
    warm = time.perf_counter() - t0
    jobs = [(name, "preset", name) for name in symbolic.presets()]
    spec = Path(tmp) / "mlp_784_256_128_10.toml"
    spec.write_text(mlp_toml("mlp_784_256_128_10", 784, (256, 128), 10, 64), encoding="utf-8")
    jobs.append(("mlp_784_256_128_10", "784-256-128-10 relu/softmax CE, batch 64", str(spec)))
    for w in (2, 64, 4096):
        spec = Path(tmp) / f"width_{w}.toml"
        spec.write_text(mlp_toml(f"width_{w}", w, (w,), w, 64), encoding="utf-8")
        jobs.append((f"width sweep w={w}", f"{w}-{w}-{w} relu/softmax CE, batch 64", str(spec)))
    rows = []
    for name, what, path in jobs:
        if what == "preset":
            net = symbolic.load(path)
            what = "-".join(str(n) for n in (net.inputs, *(l.units for l in net.layers)))
            what += f" {net.layout}, " + "/".join(l.activation for l in net.layers) + f", {net.loss.kind}"
        times = time_generate(path, repeats)
        rows.append({"section": "generate", "case": name, "network": what, "repeats": repeats,
                     "median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3})
        print(f"  done: generate {name}", file=sys.stderr)
    return rows, warm


# --------------------------------------------------------------------------------------------
# Environment and output
# --------------------------------------------------------------------------------------------

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
    """Apply --blas-threads; returns a note for the header.

    Default (None): one thread, unless OPENBLAS_NUM_THREADS or OMP_NUM_THREADS is set, which is
    then left alone. On a noisy 2-core machine a two-thread GEMM stalls whenever one core is
    busy (we measured medians of ~48 ms for a ~1.3 ms call), which swamps what we compare.
    """
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


def environment_lines(args):
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
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                          "MKL_NUM_THREADS")}
    lines.append("- environment: " + ", ".join(f"{k}={v if v is not None else '(unset)'}" for k, v in env.items()))
    lines.append(f"- mode: {'--quick' if args.quick else 'full'}; command: python {' '.join(sys.argv)}")
    return lines


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(out)


def fmt_us(v):
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def gradient_table(rows):
    header = ["case", "N", "hand med µs", "hand min µs", "gen med µs", "gen min µs",
              "gen/hand [p25–p75]", "gen noval med µs", "gen noval min µs", "noval/hand [p25–p75]",
              "rounds×calls"]
    body = []
    for r in rows:
        body.append([r["case"], r["batch"], fmt_us(r["hand_median_us"]), fmt_us(r["hand_min_us"]),
                     fmt_us(r["gen_median_us"]), fmt_us(r["gen_min_us"]),
                     f"{r['gen_over_hand']:.3f} [{r['gen_over_hand_p25']:.2f}–{r['gen_over_hand_p75']:.2f}]",
                     fmt_us(r["gen_noval_median_us"]), fmt_us(r["gen_noval_min_us"]),
                     f"{r['gen_noval_over_hand']:.3f} [{r['gen_noval_over_hand_p25']:.2f}–"
                     f"{r['gen_noval_over_hand_p75']:.2f}]",
                     f"{r['rounds']}×{r['calls_per_block']}"])
    return md_table(header, body)


def generate_table(rows):
    header = ["network", "layers", "median ms", "min ms", "repeats"]
    return md_table(header, [[r["case"], r["network"], f"{r['median_ms']:.1f}", f"{r['min_ms']:.1f}",
                              r["repeats"]] for r in rows])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke test of a few seconds")
    parser.add_argument("--csv", metavar="FILE", help="also write every row to this CSV file")
    parser.add_argument("--blas-threads", type=int, metavar="N",
                        help="OpenBLAS threads for the run (default 1 unless OPENBLAS_NUM_THREADS or "
                             "OMP_NUM_THREADS is set; 0 = the library's default)")
    args = parser.parse_args(argv)
    args.blas_note = set_blas_threads(args.blas_threads)

    start = time.perf_counter()
    print("# symprop benchmark\n")
    print("\n".join(environment_lines(args)))

    grad_rows = run_gradients(args)
    print("\n## 1. Gradient time per call: generated `gradients` vs hand-written NumPy backprop\n")
    print("gen = generated module (VALIDATE True, the default); gen noval = VALIDATE False; "
          "hand = hand-written in benchmarks/bench.py. All agree (np.allclose, rtol 1e-9) before timing. "
          "Ratios are ratios of medians of per-block times from the same interleaved rounds; "
          "[p25–p75] of the per-round ratios.\n")
    print(gradient_table(grad_rows))

    with tempfile.TemporaryDirectory(prefix="symprop-bench-") as tmp:
        gen_rows, warm = run_generate(args, tmp)
    print("\n## 2. Derivation + generation: `codegen.generate(symbolic.load(spec))`, fresh\n")
    print(f"SymPy cache cleared before every repetition; the first generate of the process "
          f"(imports, untimed warm-up) took {warm * 1e3:.0f} ms. Width sweep: inputs = hidden = outputs = w.\n")
    print(generate_table(gen_rows))
    print(f"\ntotal wall time: {time.perf_counter() - start:.1f} s")

    if args.csv:
        rows = grad_rows + gen_rows
        fields = list(dict.fromkeys(key for row in rows for key in row))
        with open(args.csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        print(f"rows written to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
