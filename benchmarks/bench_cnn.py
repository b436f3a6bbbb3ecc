#!/usr/bin/env python
"""symprop benchmark for the convolution layers: a CIFAR-sized CNN at batch 16.

Run from the project root:

    python benchmarks/bench_cnn.py                       # full run, about 65 s
    python benchmarks/bench_cnn.py --quick               # smoke run, about 15 s
    python benchmarks/bench_cnn.py --no-lines            # only the per-call tables
    python benchmarks/bench_cnn.py --malloc tuned        # only the tuned-malloc processes (see below)

The network is benchmarks/cnn_3x32x32.toml: input (16, 3, 32, 32); conv2d of 16 3x3 filters,
padding 1, stride 1, with bias and ReLU; 2x2 max-pooling; flatten; dense 4096 -> 10 softmax; mean
cross-entropy on integer labels; float64. Timed, per call of the loss and every parameter
gradient (W1, b1, W4, b4):

- gen: the generated `loss_and_gradients` (`symprop.generate`, compiled in memory with
  `symprop.codegen.files.compile_module`) with its defaults, VALIDATE and CHECK_FINITE True;
- gen noval: the same with VALIDATE = False (no argument checks: the computation);
- hand: `hand_cnn` below, a careful hand-written NumPy backward: im2col as one explicit
  contiguous copy, computed once and used by both the forward product and the weight gradient;
  the convolution as one np.matmul over the batch; bias and ReLU in place; max-pooling by
  reshape (the im2col columns put the output pixels in pooling order, so the four entries of
  every 2x2 window are four contiguous slabs and need no transpose); the gradient routed to
  each window's first maximum in row-major order (what np.argmax picks, and PyTorch; computed by
  comparisons: np.argmax over a 4-long axis costs more than the whole pool, see the last table);
  the ReLU mask and dL/db1 taken on the pooled array (a window passes its gradient to its
  maximum only, where relu'(z1) = [a2 > 0]); no Python loop over samples or pixels (one loop over
  the four window offsets);
- torch: PyTorch autograd, float64, torch.set_num_threads(1), tensors built once, fresh grads
  every call (F.conv2d, torch.relu, F.max_pool2d, flatten, F.linear, F.cross_entropy on the
  labels), when PyTorch is installed.

Before any timing, every implementation must agree with the hand-written one and with
`symprop.reference.torch_loss_and_gradients` (PyTorch's own layers) to 1e-10, normwise relative
(|loss - loss'| / |loss'| and ||g - g'|| / ||g'||, Frobenius norms, for every gradient), the
generated `loss` must equal the hand-written loss, and no input may be modified.

Timing: each implementation runs in processes of its own (this script, re-executed with
--child), so that what one implementation allocates does not change the malloc state another one
is timed in: glibc malloc serves blocks of 128 KiB and more by mmap, and raises that threshold
(up to 32 MiB, the trim threshold to twice that) only when such a block is freed. The CNN's
temporaries are megabytes: in a fresh process the generated code faults its pages in again on
every call, until something frees a block larger than them (one PyTorch call does: in one
process, the order of the implementations would decide the result). Two malloc settings:
"as started" (the environment as given) and "tuned" (MALLOC_MMAP_THRESHOLD_=67108864 and
MALLOC_TRIM_THRESHOLD_=268435456 added to the child's environment: no mmap below 64 MiB, no
trimming below 256 MiB); --malloc picks one or both (the default). In each of --rounds rounds,
one process per implementation and setting, in a fresh random order; each process first checks
its result against the hand-written one (1e-10), then takes `timeit` measurements (--repeats,
loops calibrated to last ~50 ms, the garbage collector off, timeit's default), counts minor
page faults per call (getrusage) and measures the memory of a call (`memory`: tracemalloc's
peak, and the buffers a generated module keeps between calls). Reported: the best and the median
over all measurements, the median page faults. OpenBLAS runs with one thread as bench.py sets it
(--blas-threads to change).

Unless --no-lines: the gen and hand processes also time every statement of `loss_and_gradients`
(VALIDATE True) and of `hand_cnn` inside real calls (perf_counter and page faults between the
statements, median over the calls); this process times every statement of the generated
`loss_and_gradients` on its own (VALIDATE False; the statements before it executed once, so each
is timed on its real inputs; after the PyTorch checks, so with few page faults), faster forms of
the costliest generated statements, and forms the hand-written code does not use: which lines
cost the time beyond the hand-written code.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import timeit
import tracemalloc
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

try:
    import resource
except ImportError:                     # not Unix: no page fault counts
    resource = None

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench  # noqa: E402  (set_blas_threads, environment_lines, md_table, fmt_us, Report)
import symprop  # noqa: E402
from symprop.codegen.files import compile_module  # noqa: E402

SPEC = HERE / "cnn_3x32x32.toml"
SEED = 20240601
AGREE = 1e-10                   # normwise relative agreement required before timing
PARAMETERS = ("W1", "b1", "W4", "b4")
IMPLS = ("gen", "gen_noval", "hand", "torch")
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "67108864", "MALLOC_TRIM_THRESHOLD_": "268435456"}


# ================================================================================================
# The hand-written backward


def hand_cnn(*, x, y, W1, b1, W4, b4):
    """(loss, dL/d(parameter)) of conv2d 3x3 (padding 1, stride 1, relu) -> maxpool 2x2 -> flatten
    -> dense softmax, mean cross-entropy on integer labels y. Every temporary is a fresh array
    updated in place (never an input)."""
    n, channels, height, width = x.shape
    filters, _, kh, kw = W1.shape
    h2, w2 = height // 2, width // 2
    # im2col, once: columns[n, (c, p, q), (s, t, i, j)] = xp[n, c, 2i + s + p, 2j + t + q], xp = x
    # padded by one zero; the output pixel (2i + s, 2j + t) is ordered by its pooling offset (s, t)
    xp = np.zeros((n, channels, height + 2, width + 2))
    xp[:, :, 1:-1, 1:-1] = x
    windows = sliding_window_view(xp, (kh, kw), axis=(2, 3)).reshape(n, channels, h2, 2, w2, 2, kh, kw)
    columns = np.ascontiguousarray(windows.transpose(0, 1, 6, 7, 3, 5, 2, 4)).reshape(n, channels*kh*kw, -1)
    a1 = np.matmul(W1.reshape(filters, -1), columns)   # z1[n, f, (s, t, i, j)]: one GEMM per sample
    a1 += b1[:, None]
    np.maximum(a1, 0.0, out=a1)                          # a1 = relu(z1); a1 > 0 exactly where z1 > 0
    # max-pool by reshape: a1[:, :, k] (k = 2s + t) holds entry (s, t) of every window (i, j)
    a1 = a1.reshape(n, filters, 4, h2*w2)
    a2 = np.maximum(a1[:, :, 0], a1[:, :, 1])
    np.maximum(a2, a1[:, :, 2], out=a2)
    np.maximum(a2, a1[:, :, 3], out=a2)
    a3 = a2.reshape(n, -1)                               # flatten: (f, i, j), C order
    z4 = a3 @ W4
    z4 += b4
    z4 -= z4.max(axis=1, keepdims=True)
    p = np.exp(z4)
    total = p.sum(axis=1)
    rows = np.arange(n)
    loss = float(np.log(total).sum() - z4[rows, y].sum()) / n
    p /= total[:, None]
    p[rows, y] -= 1.0
    p *= 1.0 / n                                         # p = dL/dz4 = (softmax - onehot(y)) / N
    dW4 = a3.T @ p
    db4 = p.sum(axis=0)
    g = (p @ W4.T).reshape(n, filters, h2*w2)            # dL/da2
    g *= a2 > 0                                          # relu'(z1) at each window's maximum
    # dL/dz1: g goes to the first maximum of its window in row-major order (np.argmax's choice)
    delta1 = np.empty_like(a1)
    unclaimed = np.ones(a2.shape, dtype=bool)
    for k in range(4):                                   # the four window offsets, not pixels
        first = a1[:, :, k] == a2
        first &= unclaimed
        unclaimed ^= first
        np.multiply(g, first, out=delta1[:, :, k])
    dW1 = np.matmul(delta1.reshape(n, filters, -1), columns.transpose(0, 2, 1)).sum(axis=0).reshape(W1.shape)
    db1 = g.sum(axis=(0, 2))                             # = delta1 summed over (n, pixels)
    return loss, {"W1": dW1, "b1": db1, "W4": dW4, "b4": db4}


# ================================================================================================
# Values, PyTorch, agreement


def random_arrays(network, rng):
    """Seeded float64 values of the spec's shapes (He-scaled weights); integer labels 0..9."""
    shapes = network.shapes(network.batch)
    fan_in = int(np.prod(shapes["W1"][1:]))
    return {
        "x": rng.standard_normal(shapes["x"]),
        "y": rng.integers(0, network.outputs, shapes["x"][0]),
        "W1": rng.standard_normal(shapes["W1"]) * np.sqrt(2.0 / fan_in),
        "b1": 0.1 * rng.standard_normal(shapes["b1"]),
        "W4": rng.standard_normal(shapes["W4"]) * np.sqrt(2.0 / shapes["W4"][0]),
        "b4": 0.1 * rng.standard_normal(shapes["b4"]),
    }


def make_torch_loss_and_gradients(torch, arrays):
    """fn(**ignored) -> (loss tensor, {name: grad tensor}): lean PyTorch autograd, tensors built once."""
    F = torch.nn.functional
    t = {k: torch.tensor(v, dtype=torch.long if k == "y" else torch.float64, requires_grad=k in PARAMETERS)
         for k, v in arrays.items()}
    leaves = [t[k] for k in PARAMETERS]

    def torch_loss_and_gradients(**_ignored):
        for leaf in leaves:
            leaf.grad = None
        a1 = torch.relu(F.conv2d(t["x"], t["W1"], t["b1"], stride=1, padding=1))
        a3 = torch.flatten(F.max_pool2d(a1, 2), 1)
        loss = F.cross_entropy(F.linear(a3, t["W4"].T, t["b4"]), t["y"], reduction="mean")
        loss.backward()
        return loss, {k: leaf.grad for k, leaf in zip(PARAMETERS, leaves)}

    return torch_loss_and_gradients


def _numpy(value):
    return np.asarray(value.detach().numpy() if hasattr(value, "detach") else value, dtype=np.float64)


def relative_difference(got, want):
    """The largest normwise relative difference over the loss and every gradient of two
    (loss, {name: gradient}) results."""
    (loss, grads), (ref_loss, ref_grads) = got, want
    loss, ref_loss = float(_numpy(loss)), float(_numpy(ref_loss))
    worst = abs(loss - ref_loss) / abs(ref_loss)
    for key, ref in ref_grads.items():
        have, ref = _numpy(grads[key]), _numpy(ref)
        assert have.shape == ref.shape, f"d{key}: shape {have.shape}, expected {ref.shape}"
        worst = max(worst, float(np.linalg.norm(have - ref)) / float(np.linalg.norm(ref)))
    return worst


def check_agreement(network, arrays, impls, module, torch):
    """([(name, vs hand, vs symprop.reference)], the hand-written result); raises when any
    difference is > AGREE."""
    before = {k: v.copy() for k, v in arrays.items()}
    results = {name: fn(**arrays) for name, fn in impls.items()}
    assert set(results["hand"][1]) == set(network.differentiated) == set(PARAMETERS)
    reference = None
    if torch is not None:
        from symprop.reference import torch_loss_and_gradients
        reference = torch_loss_and_gradients(network, arrays)
        results["symprop.reference"] = reference
    rows = []
    for name, result in results.items():
        vs_hand = relative_difference(result, results["hand"])
        vs_ref = relative_difference(result, reference) if reference is not None else None
        for against, d in (("the hand-written code", vs_hand), ("symprop.reference", vs_ref)):
            assert d is None or d <= AGREE, f"{name} differs from {against} by {d:.3g} (normwise relative) > {AGREE:g}"
        rows.append((name, vs_hand, vs_ref))
    got, ref = module.loss(**arrays), results["hand"][0]
    assert abs(got - ref) <= AGREE * abs(ref), f"generated loss {got!r}, hand-written loss {ref!r}"
    for k, v in arrays.items():
        assert np.array_equal(v, before[k]), f"array {k} was modified"
    return rows, results["hand"]


def make_impls(names, network, source, arrays, torch):
    """{name: fn(**arrays) -> (loss, gradients)} for the names asked (torch only when installed)."""
    impls = {}
    for name in names:
        if name in ("gen", "gen_noval"):
            module = compile_module(network, source)
            module.VALIDATE = name == "gen"
            assert module.CHECK_FINITE is True
            impls[name] = module.loss_and_gradients
        elif name == "hand":
            impls[name] = hand_cnn
        elif name == "torch" and torch is not None:
            impls[name] = make_torch_loss_and_gradients(torch, arrays)
    return impls


# ================================================================================================
# Timing, in a process of its own (--child)


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0


def faults_per_call(fn, arrays, calls):
    """Minor page faults per call of fn."""
    before = minor_faults()
    for _ in range(calls):
        fn(**arrays)
    return (minor_faults() - before) / calls


def memory(fn, arrays):
    """(peak bytes one call allocates, bytes kept between calls): the peak as tracemalloc sees it
    (NumPy reports its arrays to it; PyTorch's tensors it does not see: None), in a call after the
    warm-up, on top of the buffers a generated module keeps between calls (the second figure)."""
    tracemalloc.start()
    fn(**arrays)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    kept = sum(b.nbytes for buffers in fn.__globals__.get("_SPARE", {}).values() for b in buffers.values())
    return peak, kept


def time_calls(fn, arrays, repeats, target):
    """(seconds per call of each of `repeats` timeit measurements, loops per measurement)."""
    timer = timeit.Timer(lambda: fn(**arrays))
    timer.timeit(3)                                       # warm up (fills the shape cache)
    loops = max(1, int(target / (min(timer.repeat(3, 3)) / 3)))
    return [timer.timeit(loops) / loops for _ in range(repeats)], loops


def child(args):
    """Times one implementation in this process; prints the results as JSON (the last line)."""
    bench.set_blas_threads(args.blas_threads)
    torch = bench.bench_others.torch_or_none() if args.child == "torch" else None
    folder = Path(args.child_dir)
    network = symprop.load(str(SPEC))
    source = (folder / "generated.py").read_text(encoding="utf-8")
    arrays = random_arrays(network, np.random.default_rng(SEED))
    with np.load(folder / "hand.npz") as saved:
        want = (float(saved["loss"]), {k: saved[k] for k in PARAMETERS})
    fn = make_impls([args.child], network, source, arrays, torch)[args.child]
    d = relative_difference(fn(**arrays), want)
    assert d <= AGREE, f"{args.child} differs from the hand-written result by {d:.3g} > {AGREE:g}"
    times, loops = time_calls(fn, arrays, args.repeats, args.target)
    peak, kept = memory(fn, arrays) if args.child != "torch" else (None, None)
    result = {"times": times, "loops": loops, "faults": faults_per_call(fn, arrays, args.fault_calls),
              "malloc": {k: os.environ.get(k) for k in TUNED_MALLOC}, "peak": peak, "kept": kept}
    if args.lines and args.child in ("gen", "hand"):
        if args.child == "gen":
            module = compile_module(network, source)
            fn = instrumented(source, "loss_and_gradients", vars(module))
        else:
            fn = instrumented(inspect.getsource(hand_cnn), "hand_cnn", globals())
        result["lines"] = time_in_calls(fn, arrays, args.line_calls)
    print(json.dumps(result))
    return 0


def run_children(args, folder, impls, settings, out):
    """{setting: {impl: {"times": [...], "faults": [...], "loops": [...], "lines": [[...], ...]}}}:
    `args.rounds` rounds, each one child process per implementation and setting, shuffled."""
    results = {setting: {impl: {"times": [], "faults": [], "loops": [], "lines": [], "memory": (None, None)}
                         for impl in impls}
               for setting in settings}
    jobs = [(setting, impl) for setting in settings for impl in impls]
    order = np.random.default_rng(SEED)
    passed = [f"--repeats={args.repeats}", f"--target={args.target}", f"--fault-calls={args.fault_calls}",
              f"--line-calls={args.line_calls}", f"--child-dir={folder}"]
    if args.blas_threads is not None:
        passed.append(f"--blas-threads={args.blas_threads}")
    if args.no_lines:
        passed.append("--no-lines")
    for round_ in range(args.rounds):
        for i in order.permutation(len(jobs)):
            setting, impl = jobs[i]
            env = dict(os.environ, **(TUNED_MALLOC if setting == "tuned" else {}))
            command = [sys.executable, str(Path(__file__).resolve()), f"--child={impl}", *passed]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"child {impl} ({setting}) failed:\n{done.stderr[-3000:]}")
            got = json.loads(done.stdout.strip().splitlines()[-1])
            slot = results[setting][impl]
            slot["times"] += got["times"]
            slot["faults"].append(got["faults"])
            slot["loops"].append(got["loops"])
            slot["memory"] = (got["peak"], got["kept"])
            if "lines" in got:
                slot["lines"].append(got["lines"])
        print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    return results


LABELS = {"gen": "generated `loss_and_gradients`, VALIDATE True (default)",
          "gen_noval": "generated `loss_and_gradients`, VALIDATE False",
          "hand": "hand-written NumPy (im2col once, pool by reshape)",
          "torch": "PyTorch autograd, float64, 1 thread"}


def time_table(out, setting, results, torch_installed, args):
    """Prints the per-call table of one malloc setting; {impl: best s}."""
    best = {impl: min(r["times"]) for impl, r in results.items()}
    hand, torch_t = best["hand"], best.get("torch")
    rows = [[LABELS[impl], bench.fmt_us(b), bench.fmt_us(float(np.median(results[impl]["times"]))),
             f"{b / torch_t:.2f}" if torch_t else "n/a", f"{b / hand:.2f}",
             f"{np.median(results[impl]['faults']):,.0f}" if resource else "n/a",
             *_megabytes(results[impl]["memory"]), "/".join(map(str, sorted(set(results[impl]["loops"]))))]
            for impl, b in best.items()]
    if not torch_installed:
        rows.append([LABELS["torch"], "n/a", "n/a", "n/a (not installed)", "", "", "", "", ""])
    out(f"\n## Loss and gradients per call, malloc {SETTING_NOTES[setting]} (timeit, best of "
        f"{args.rounds} processes × {args.repeats} repeats)\n")
    out(bench.md_table(["implementation", "best µs", "median µs", "× torch (best)", "× hand (best)",
                        "page faults / call", "peak MB / call", "kept MB", "loops"], rows))
    return best


def _megabytes(memory):
    """The peak and kept memory of a call in MB ("n/a" where tracemalloc does not see it: PyTorch)."""
    return ["n/a" if value is None else f"{value / 1e6:.1f}" for value in memory]


# ================================================================================================
# Line timings: every statement alone, and inside real calls


def function_statements(source, name):
    """The function `name` in `source`, and its body without the docstring."""
    fn = next(node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef) and node.name == name)
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return fn, body


def statement_text(st):
    """The statement's first line, `…` when it has more (an `if` or a `for`)."""
    if isinstance(st, ast.If) and "VALIDATE" in ast.unparse(st.test):
        return "if VALIDATE: (the argument checks)"
    lines = ast.unparse(st).splitlines()
    return lines[0] + (" …" if len(lines) > 1 else "")


def assignments(source, name):
    """The statements of `name` that compute something: not the checks (`if`), not the return."""
    return [st for st in function_statements(source, name)[1] if not isinstance(st, (ast.If, ast.Return))]


def time_statement(code, scope, repeats, target):
    """Best seconds per execution of compiled `code` in `scope` (not changed: a fresh dict, its
    arrays copied, so that a statement in place, z1 += b1, repeated does not change scope's z1)."""
    env = {name: value.copy() if isinstance(value, np.ndarray) else value for name, value in scope.items()}
    timer = timeit.Timer(lambda: exec(code, env))
    loops = max(1, int(target / max(min(timer.repeat(3, 2)) / 2, 1e-7)))
    return min(timer.repeat(repeats, loops)) / loops


def run_statements(statements, scope):
    """Executes the statements in order in `scope` (so that each next one has its inputs)."""
    for st in statements:
        exec(compile(ast.Module(body=[st], type_ignores=[]), "<statement>", "exec"), scope)
    return scope


def time_alone(module, source, arrays, repeats, target):
    """{statement text: best s}, every statement of `loss_and_gradients` timed on its own, in
    order; and the scope they leave (every intermediate array, by name)."""
    scope = {**vars(module), **arrays}
    times = {}
    for st in assignments(source, "loss_and_gradients"):
        run_statements([st], scope)
        code = compile(ast.Module(body=[st], type_ignores=[]), "<loss_and_gradients>", "exec")
        times[statement_text(st)] = time_statement(code, scope, repeats, target)
    return times, scope


def instrumented(source, name, namespace):
    """(fn, statement texts, log): `name` from `source` recompiled in a copy of `namespace` with a
    mark (perf_counter, minor page faults) appended to `log` before its first statement and after
    each one (the return excepted)."""
    fn, body = function_statements(source, name)
    mark = ast.parse("_mark()").body[0]
    fn.body = [mark]
    texts = []
    for st in body:
        fn.body.append(st)
        if not isinstance(st, ast.Return):
            fn.body.append(mark)
            texts.append(statement_text(st))
    log = []
    clock = time.perf_counter
    env = dict(namespace)
    env["_mark"] = lambda: log.append((clock(), minor_faults()))
    exec(compile(ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[])), f"<{name}>", "exec"), env)
    return env[name], texts, log


def time_in_calls(instrumented_fn, arrays, calls):
    """[(statement text, median s, mean faults)]: the instrumented function called `calls` times
    (after one untimed call), the time and the page faults between the marks of each statement."""
    fn, texts, log = instrumented_fn
    fn(**arrays)
    runs = []
    for _ in range(calls):
        log.clear()
        fn(**arrays)
        runs.append(np.diff(np.array(log, dtype=np.float64), axis=0))
    stacked = np.stack(runs)                              # (calls, statements, (s, faults))
    return [(text, float(np.median(stacked[:, i, 0])), float(stacked[:, i, 1].mean()))
            for i, text in enumerate(texts)]


# Faster forms of generated statements: (the generated statements replaced, code, [(fresh name,
# the generated name it must equal)]). Run in the scope the generated statements leave; they only
# write fresh names (f_...), so they are timed exactly like the generated lines. Shapes are the
# spec's: x (16, 3, 32, 32), W1 (16, 3, 3, 3), z1 (16, 16, 32, 32), a2 (16, 16, 16, 16).
ALTERNATIVES = [
    # im2col once: the forward product and the weight gradient share the columns; bias in place
    (("z1", "dL_dW1"),
     "f_xp = np.zeros((16, 3, 34, 34))\n"
     "f_xp[:, :, 1:-1, 1:-1] = x\n"
     "f_cols = np.ascontiguousarray(sliding_window_view(f_xp, (3, 3), axis=(2, 3)).transpose(0, 1, 4, 5, 2, 3))"
     ".reshape(16, 27, 1024)\n"
     "f_z1 = np.matmul(W1.reshape(16, 27), f_cols).reshape(16, 16, 32, 32)\n"
     "f_z1 += b1[:, None, None]\n"
     "f_dW1 = np.matmul(delta1.reshape(16, 16, 1024), f_cols.transpose(0, 2, 1)).sum(axis=0).reshape(W1.shape)",
     [("f_z1", "z1"), ("f_dW1", "dL_dW1")]),
    # the pool as three maxima of the four strided offsets (no separable helper)
    (("a2",),
     "f_a2 = np.maximum(a1[:, :, 0::2, 0::2], a1[:, :, 0::2, 1::2])\n"
     "np.maximum(f_a2, a1[:, :, 1::2, 0::2], out=f_a2)\n"
     "np.maximum(f_a2, a1[:, :, 1::2, 1::2], out=f_a2)",
     [("f_a2", "a2")]),
    # the ReLU mask and dL/db1 on the pooled array; route with the pooled a2 (not recomputed), no
    # zeros (the windows tile a1), writes into the four strided offsets
    (("dL_da1", "delta1", "dL_db1"),
     "f_g = dL_da2 * (a2 > 0)\n"
     "f_d1 = np.empty(a1.shape)\n"
     "f_free = np.ones(a2.shape, dtype=bool)\n"
     "for f_k in range(4):\n"
     "    f_first = a1[:, :, f_k // 2::2, f_k % 2::2] == a2\n"
     "    f_first &= f_free\n"
     "    f_free ^= f_first\n"
     "    np.multiply(f_g, f_first, out=f_d1[:, :, f_k // 2::2, f_k % 2::2])\n"
     "f_db1 = f_g.sum(axis=(0, 2, 3))",
     [("f_d1", "delta1"), ("f_db1", "dL_db1")]),
]

# Forms the hand-written code does not use, in the scope its statements leave.
HAND_ALTERNATIVES = [
    ("the `for k in range(4)` routing loop",
     "f_first = np.argmax(a1, axis=2)\n"
     "f_d1 = (f_first[:, :, None] == np.arange(4)[:, None]) * g[:, :, None]",
     "first-max routing by np.argmax over the window axis (a (16, 16, 4, 256) array)", [("f_d1", "delta1")]),
    ("the `for k in range(4)` routing loop",
     "f_first = a1_nchw.reshape(16, 16, 16, 2, 16, 2).transpose(0, 1, 2, 4, 3, 5).reshape(16, 16, 16, 16, 4)"
     ".argmax(axis=-1)",
     "np.argmax of every window of a1 in NCHW pixel order (the plain im2col order), after the copy to "
     "(..., 4) windows that needs; the routing itself not included", [("f_first", "first_nchw")]),
]


def close(a, b):
    return np.allclose(a, b, rtol=1e-12, atol=1e-12 * float(np.abs(b).max()))


def time_alternatives(alternatives, scope, repeats, target):
    """[(key, code, description, best s)]: each form run once in `scope` (its values checked
    against the names it must equal), then timed alone. Forms whose names are gone are skipped."""
    rows = []
    for key, code, *rest in alternatives:
        if not all(same in scope for _, same in rest[-1]):
            continue                       # the generated code no longer has what this form replaces
        compiled = compile(code, "<alternative>", "exec")
        try:
            exec(compiled, scope)
        except NameError:                  # the generated code no longer names what this form uses
            continue
        for fresh, same in rest[-1]:
            assert close(scope[fresh], scope[same]), f"{fresh} != {same}"
        rows.append((key, code, rest[0] if len(rest) > 1 else None, time_statement(compiled, scope, repeats, target)))
    return rows


def one_line(code):
    """Code of several lines as one table cell: statements joined by `; `, a loop body in ( )."""
    parts, loop = [], []
    for line in code.splitlines():
        if line.startswith(" "):
            loop.append(line.strip())
        else:
            if loop:
                parts[-1] += " (" + "; ".join(loop) + ")"
                loop = []
            parts.append(line)
    if loop:
        parts[-1] += " (" + "; ".join(loop) + ")"
    return "`" + "; ".join(parts).replace("|", "\\|") + "`"


def merged_lines(runs):
    """[(text, median µs over the processes' medians, mean faults)] from several processes."""
    return [(texts[0][0], float(np.median([r[1] for r in texts])), float(np.mean([r[2] for r in texts])))
            for texts in zip(*runs)]


def line_tables(out, alone, results, settings):
    """Prints the per-statement tables of gen and hand."""
    heads = []
    for setting in settings:
        heads += [f"in call µs ({setting})", f"faults ({setting})"]
    for impl, title in (("gen", "the generated `loss_and_gradients`"), ("hand", "`hand_cnn`")):
        merged = {setting: merged_lines(results[setting][impl]["lines"]) for setting in settings}
        first = merged[settings[0]]
        rows, totals = [], [0.0] * len(settings)
        for i, (text, _, _) in enumerate(first):
            row = ["`" + text.replace("|", "\\|") + "`"]
            if impl == "gen":
                row.append(bench.fmt_us(alone[text]) if text in alone else "")
            for j, setting in enumerate(settings):
                _, t, f = merged[setting][i]
                totals[j] += t
                row += [bench.fmt_us(t), f"{f:,.0f}" if resource else "n/a"]
            rows.append(row)
        total_row = ["sum of the statements"] + ([bench.fmt_us(sum(alone.values()))] if impl == "gen" else [])
        for t in totals:
            total_row += [bench.fmt_us(t), ""]
        rows.append(total_row)
        alone_how = ("alone: VALIDATE False, each statement on its own in this process, best of the repeats; "
                     if impl == "gen" else "")
        checks = "VALIDATE True, " if impl == "gen" else ""
        out(f"\n### Statements of {title} ({alone_how}in call: {checks}perf_counter between the statements "
            "of real calls in the timing processes, median; faults: minor page faults per call)\n")
        out(bench.md_table(["statement"] + (["alone µs"] if impl == "gen" else []) + heads, rows))


# ================================================================================================
# Main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, few short repeats: a smoke run")
    parser.add_argument("--rounds", type=int, metavar="K",
                        help="processes per implementation and malloc setting (default 4; 1 with --quick)")
    parser.add_argument("--repeats", type=int, metavar="R",
                        help="timeit repeats in each process (default 10; 2 with --quick)")
    parser.add_argument("--blas-threads", type=int, metavar="N",
                        help="OpenBLAS threads (default 1 unless OPENBLAS_NUM_THREADS or OMP_NUM_THREADS is set; "
                             "0 = the library's default)")
    parser.add_argument("--malloc", choices=("both", "as-started", "tuned"), default="both",
                        help="time with malloc as the environment sets it, with the tuned glibc thresholds "
                             "(MALLOC_MMAP_THRESHOLD_ 64 MiB, MALLOC_TRIM_THRESHOLD_ 256 MiB), or both (default)")
    parser.add_argument("--no-lines", action="store_true", help="skip the line timings")
    # internal: one timing process (see the module docstring)
    parser.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", help=argparse.SUPPRESS)
    parser.add_argument("--target", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--fault-calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--line-calls", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 4)
    args.repeats = args.repeats or (2 if args.quick else 10)
    args.target = args.target or (0.01 if args.quick else 0.05)      # seconds per timeit measurement
    args.fault_calls = args.fault_calls or (3 if args.quick else 20)
    args.line_calls = args.line_calls or (3 if args.quick else 30)
    args.lines = not args.no_lines
    return args


SETTING_NOTES = {}


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    args.blas_note = bench.set_blas_threads(args.blas_threads)
    torch = bench.bench_others.torch_or_none()
    start = time.perf_counter()
    out = bench.Report()
    out("# symprop benchmark: CNN 3x32x32, conv 16 3x3 (relu), maxpool 2, dense 10 softmax, batch 16\n")
    out("\n".join(bench.environment_lines(args, torch)))
    given = {k: os.environ[k] for k in TUNED_MALLOC if k in os.environ}
    SETTING_NOTES["as started"] = "as started (" + (", ".join(f"{k}={v}" for k, v in given.items())
                                                    if given else "glibc's defaults") + ")"
    SETTING_NOTES["tuned"] = "tuned (" + ", ".join(f"{k}={v}" for k, v in TUNED_MALLOC.items()) + ")"
    settings = {"both": ["as started", "tuned"], "as-started": ["as started"], "tuned": ["tuned"]}[args.malloc]
    libc = " ".join(platform.libc_ver()) or "unknown"
    out(f"- malloc: {'; '.join(SETTING_NOTES[s] for s in settings)}; C library {libc}"
        + ("" if platform.libc_ver()[0] == "glibc" else " (not glibc: the MALLOC_* variables do nothing)"))

    network = symprop.load(str(SPEC))
    source = symprop.generate(network)
    arrays = random_arrays(network, np.random.default_rng(SEED))
    module = compile_module(network, source)
    impls = make_impls(IMPLS, network, source, arrays, torch)
    rows, hand_result = check_agreement(network, arrays, impls, module, torch)
    out(f"\n## Agreement (loss and every gradient, normwise relative; must be <= {AGREE:g}): passed\n")
    out(bench.md_table(["implementation", "vs hand-written", "vs symprop.reference"],
                       [[name, f"{h:.1e}", "n/a (no PyTorch)" if r is None else f"{r:.1e}"] for name, h, r in rows]))

    with tempfile.TemporaryDirectory(prefix="bench_cnn_") as folder:
        (Path(folder) / "generated.py").write_text(source, encoding="utf-8")
        np.savez(Path(folder) / "hand.npz", loss=hand_result[0], **hand_result[1])
        results = run_children(args, folder, list(impls), settings, out)

    best = {setting: time_table(out, setting, results[setting], torch is not None, args) for setting in settings}
    out("\n## Ratios (best per call)\n")
    ratio_rows = []
    for setting, b in best.items():
        t = b.get("torch")
        ratio_rows.append([setting] + [f"{b[name] / t:.2f}" if t else "n/a" for name in ("gen", "gen_noval")]
                          + [f"{b[name] / b['hand']:.2f}" for name in ("gen", "gen_noval")]
                          + [f"{b['hand'] / t:.2f}" if t else "n/a"])
    out(bench.md_table(["malloc", "gen / torch", "gen noval / torch", "gen / hand", "gen noval / hand",
                        "hand / torch"], ratio_rows))

    if args.lines:
        line_repeats, line_target = (3, 0.002) if args.quick else (15, 0.02)
        noval = compile_module(network, source)
        noval.VALIDATE = False
        alone, scope = time_alone(noval, source, arrays, line_repeats, line_target)
        line_tables(out, alone, results, settings)
        scope["sliding_window_view"] = sliding_window_view
        out("\nFaster forms of the generated statements (the same values; each timed alone, as the "
            "`alone` column):\n")
        alt_rows = []
        for replaced, code, _, t in time_alternatives(ALTERNATIVES, scope, line_repeats, line_target):
            texts = [text for text in alone if any(text.startswith(f"{name} = ") for name in replaced)]
            if len(texts) == len(replaced):
                alt_rows.append(["; ".join(f"`{text}`" for text in texts),
                                 bench.fmt_us(sum(alone[text] for text in texts)), one_line(code), bench.fmt_us(t)])
        out(bench.md_table(["generated", "µs", "faster form", "µs"], alt_rows))
        hand_scope = run_statements(assignments(inspect.getsource(hand_cnn), "hand_cnn"),
                                    {**globals(), **{k: v.copy() for k, v in arrays.items()}})
        a1 = hand_scope["a1"]              # (n, f, (s, t), (i, j)) -> NCHW, for the second form
        hand_scope["a1_nchw"] = np.ascontiguousarray(a1.reshape(16, 16, 2, 2, 16, 16).transpose(0, 1, 4, 2, 5, 3))
        hand_scope["first_nchw"] = np.argmax(a1, axis=2).reshape(16, 16, 16, 16)
        out("\nForms the hand-written code does not use (timed alone, in the scope its statements leave):\n")
        out(bench.md_table(["instead of", "form", "code", "µs"],
                           [[used, what, one_line(code), bench.fmt_us(t)]
                            for used, code, what, t in time_alternatives(HAND_ALTERNATIVES, hand_scope,
                                                                          line_repeats, line_target)]))
    out(f"\ntotal wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
