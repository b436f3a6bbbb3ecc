#!/usr/bin/env python
"""symprop benchmark for "the engine": a 784-256(batchnorm, relu)-10 network at batch 64.

Run from the project root:

    python benchmarks/bench_batchnorm.py            # full run, about 30 s
    python benchmarks/bench_batchnorm.py --quick    # smoke run, a few seconds

The network is benchmarks/batchnorm_784_256_10.toml: dense 784->256 (identity), batchnorm
(gamma2, beta2, eps 1e-5, batch statistics) with ReLU, dense 256->10 softmax, mean cross-entropy
on integer labels, batch 64, float64. Timed, per call of the gradients:

- hand: `hand_batchnorm` below, a careful hand-written NumPy backward with the compact batchnorm
  formula dx = (gamma / (N sigma)) (N g - sum g - xhat sum(g xhat)) (g = dL/dz2), vectorised, no
  loops, temporaries updated in place, sum(g) and sum(g xhat) shared with dL/dbeta and dL/dgamma;
- gen: the generated `gradients` (`symprop.generate`, compiled in memory with
  `symprop.codegen.files.compile_module`) with its defaults, VALIDATE and CHECK_FINITE True;
- gen noval: a second compiled copy with VALIDATE = False (no argument checks: the computation);
- torch: PyTorch autograd, float64, one thread, tensors built once, fresh grads every call
  (`torch.addmm`, `F.batch_norm(training=True)`, `torch.relu`, `F.cross_entropy` on the labels),
  when PyTorch is installed.

Before any timing, every implementation must agree with the hand-written one to 1e-10 relative
(each gradient's largest difference over its largest entry; a gradient whose entries are all
below 1e-6 of the largest entry of all the gradients, dL/db1 here, zero in exact arithmetic
because the batchnorm subtracts the batch mean, is measured against that largest entry), the hand-written one must agree with `symprop.reference` (PyTorch's own
layers, when installed), the generated `loss` must equal an independent NumPy loss, and no input
may be modified. Timing: `timeit`, the best of several repeats of enough loops (each repeat runs
every implementation once, in a fresh random order), the garbage collector off (timeit's
default); OpenBLAS set to one thread as bench.py does (--blas-threads to change).

Unless --no-lines, it also times every statement of the generated `gradients` (VALIDATE False) on its
own (the statements before it executed once, so each is timed on its real inputs), and a few
faster forms of the costliest statements: which lines cost the time beyond the hand-written code.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
import timeit
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench  # noqa: E402  (set_blas_threads, environment_lines, md_table, fmt_us, Report)
import symprop  # noqa: E402
from symprop.codegen.files import compile_module  # noqa: E402

SPEC = HERE / "batchnorm_784_256_10.toml"
SEED = 20240601
GOAL = 1.1                      # the issue: generated gradients within 1.1x of the hand-written
AGREE = 1e-10                   # relative agreement required before timing
EPS = 1e-5                      # the spec's batchnorm eps (the default)


# ================================================================================================
# The hand-written backward


def hand_batchnorm(*, x, y, W1, b1, gamma2, beta2, W3, b3):
    """dL/d(parameter) of dense(identity) -> batchnorm(relu) -> dense(softmax), mean cross-entropy
    on integer labels y. Row layout, float64, no loops; every temporary is a fresh array updated
    in place (never an input)."""
    n = len(x)
    xhat = x @ W1
    xhat += b1                          # z1 (b1 cancels in the batchnorm, but the spec has it)
    xhat -= xhat.mean(axis=0)           # z1 - mu
    inv = np.square(xhat).mean(axis=0)  # biased variance
    inv += EPS
    np.sqrt(inv, out=inv)               # sigma
    np.reciprocal(inv, out=inv)         # 1 / sigma
    xhat *= inv                         # xhat
    a = xhat * gamma2
    a += beta2                          # z2
    active = a > 0
    np.maximum(a, 0.0, out=a)           # a2 = relu(z2)
    p = a @ W3
    p += b3
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)   # softmax
    p[np.arange(n), y] -= 1.0           # dL/dz3 = (p - onehot(y)) / N
    p *= 1.0 / n
    dW3 = a.T @ p
    db3 = p.sum(axis=0)
    g = p @ W3.T
    g *= active                         # g = dL/dz2
    dbeta = g.sum(axis=0)               # sum g
    dgamma = np.einsum("ij,ij->j", g, xhat)  # sum g xhat
    # dx = (gamma / (N sigma)) (N g - sum g - xhat sum(g xhat)), with dxhat = gamma g factored out
    g *= n
    g -= dbeta
    xhat *= dgamma
    g -= xhat
    inv *= gamma2
    inv *= 1.0 / n
    g *= inv                            # g = dL/dz1
    return {"W1": x.T @ g, "b1": g.sum(axis=0), "gamma2": dgamma, "beta2": dbeta, "W3": dW3, "b3": db3}


def reference_loss(*, x, y, W1, b1, gamma2, beta2, W3, b3):
    """The spec's loss by a plain NumPy forward pass (checks the generated `loss`)."""
    z1 = x @ W1 + b1
    xhat = (z1 - z1.mean(axis=0)) / np.sqrt(z1.var(axis=0) + EPS)
    z3 = np.maximum(gamma2 * xhat + beta2, 0.0) @ W3 + b3
    z3 = z3 - z3.max(axis=1, keepdims=True)
    logp = z3 - np.log(np.exp(z3).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(x)), y].mean())


# ================================================================================================
# Values, PyTorch, agreement


def random_arrays(network, rng):
    """Seeded float64 values of the spec's shapes; integer labels 0..9."""
    shapes = network.shapes(network.batch)
    n, classes = shapes["x"][0], network.outputs
    return {
        "x": rng.standard_normal(shapes["x"]),
        "y": rng.integers(0, classes, n),
        "W1": rng.standard_normal(shapes["W1"]) / np.sqrt(network.inputs),
        "b1": 0.1 * rng.standard_normal(shapes["b1"]),
        "gamma2": 1.0 + 0.1 * rng.standard_normal(shapes["gamma2"]),
        "beta2": 0.1 * rng.standard_normal(shapes["beta2"]),
        "W3": rng.standard_normal(shapes["W3"]) * np.sqrt(2.0 / shapes["W3"][0]),
        "b3": 0.1 * rng.standard_normal(shapes["b3"]),
    }


def make_torch_gradients(torch, arrays):
    """fn(**ignored) -> {name: grad tensor}: lean PyTorch autograd, tensors built once."""
    F = torch.nn.functional
    t = {k: torch.tensor(v, dtype=torch.long if k == "y" else torch.float64, requires_grad=k not in ("x", "y"))
         for k, v in arrays.items()}
    names = ("W1", "b1", "gamma2", "beta2", "W3", "b3")
    leaves = [t[k] for k in names]

    def torch_gradients(**_ignored):
        for leaf in leaves:
            leaf.grad = None
        z1 = torch.addmm(t["b1"], t["x"], t["W1"])
        z2 = F.batch_norm(z1, None, None, weight=t["gamma2"], bias=t["beta2"], training=True, eps=EPS)
        z3 = torch.addmm(t["b3"], torch.relu(z2), t["W3"])
        F.cross_entropy(z3, t["y"], reduction="mean").backward()
        return {k: leaf.grad for k, leaf in zip(names, leaves)}

    return torch_gradients


def _numpy(value):
    return np.asarray(value.detach().numpy() if hasattr(value, "detach") else value)


def max_relative_difference(got, want):
    """The largest over the gradients of max|got - want| / max|want|; a gradient that is zero up
    to rounding (dL/db1) is measured against the largest entry of all the gradients instead."""
    scale = max(float(np.max(np.abs(_numpy(v)))) for v in want.values())
    worst = 0.0
    for key, ref in want.items():
        have, ref = _numpy(got[key]), _numpy(ref)
        assert have.shape == ref.shape, f"d{key}: shape {have.shape}, expected {ref.shape}"
        own = float(np.max(np.abs(ref)))
        worst = max(worst, float(np.max(np.abs(have - ref))) / (own if own > 1e-6 * scale else scale))
    return worst


def check_agreement(network, arrays, impls, module, torch):
    """{name: max relative difference to the hand-written gradients}; raises when any is > AGREE."""
    before = {k: v.copy() for k, v in arrays.items()}
    want = impls["hand"](**arrays)
    assert set(want) == set(network.differentiated)
    diffs = {}
    if torch is not None:                # the hand-written code against PyTorch's own layers
        from symprop.reference import torch_loss_and_gradients
        diffs["symprop.reference"] = max_relative_difference(torch_loss_and_gradients(network, arrays)[1], want)
    for name, fn in impls.items():
        if name != "hand":
            diffs[name] = max_relative_difference(fn(**arrays), want)
    for name, d in diffs.items():
        assert d <= AGREE, f"{name} differs from the hand-written gradients by {d:.3g} (relative) > {AGREE:g}"
    got, ref = module.loss(**arrays), reference_loss(**arrays)
    assert abs(got - ref) <= AGREE * abs(ref), f"generated loss {got!r}, NumPy loss {ref!r}"
    for k, v in arrays.items():
        assert np.array_equal(v, before[k]), f"array {k} was modified"
    return diffs


# ================================================================================================
# Timing


def time_best(impls, arrays, repeats, target):
    """{name: (best, median) seconds per call}: timeit, `repeats` rounds, each implementation once
    per round in a fresh random order, loops calibrated so one measurement lasts `target` s."""
    timers = {name: timeit.Timer(lambda fn=fn: fn(**arrays)) for name, fn in impls.items()}
    loops = {}
    for name, timer in timers.items():
        timer.timeit(3)                                   # warm up (fills the shape cache)
        per_call = min(timer.repeat(3, 3)) / 3
        loops[name] = max(1, int(target / per_call))
    times = {name: [] for name in impls}
    order = np.random.default_rng(SEED)
    names = list(impls)
    for _ in range(repeats):
        for i in order.permutation(len(names)):
            times[names[i]].append(timers[names[i]].timeit(loops[names[i]]) / loops[names[i]])
    return {name: (min(ts), float(np.median(ts))) for name, ts in times.items()}, loops


# ================================================================================================
# Line timings of the generated gradients


def gradient_statements(source):
    """The statements of the generated `gradients`, without its docstring, checks and return."""
    tree = ast.parse(source)
    fn = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "gradients")
    return [st for st in fn.body if isinstance(st, ast.Assign)]


def time_statement(code, scope, repeats, target):
    """Best seconds per execution of compiled `code` in `scope` (not changed: a fresh dict)."""
    env = dict(scope)
    timer = timeit.Timer(lambda: exec(code, env))
    loops = max(1, int(target / max(min(timer.repeat(3, 2)) / 2, 1e-7)))
    return min(timer.repeat(repeats, loops)) / loops


def time_lines(module, source, arrays, repeats, target):
    """[(name assigned, statement text, best s)], every assignment of `gradients` timed on its own,
    in order; and the scope they leave (every intermediate array, by name)."""
    scope = {**vars(module), **arrays}
    rows = []
    for st in gradient_statements(source):
        code = compile(ast.Module(body=[st], type_ignores=[]), "<gradients>", "exec")
        exec(code, scope)                  # the statements run in order once: the next one's inputs
        rows.append((ast.unparse(st.targets[0]), ast.unparse(st), time_statement(code, scope, repeats, target)))
    return rows, scope


def time_checks(module, arrays, repeats, target):
    """[(call, best s)]: the argument checks of `gradients` (VALIDATE True) and their parts."""
    values = tuple(arrays[name] for name in module.ARGUMENTS["gradients"])
    module.gradients(**arrays)             # fills the shape cache: the fast path is what is timed
    scope = {**vars(module), "values": values, "y": arrays["y"]}
    calls = ["_arrays('gradients', values, {})", "_finite(values)", "_labels_in_range(y, CLASSES)",
             "_signature(values)"]
    return [(call, time_statement(compile(call, "<check>", "exec"), scope, repeats, target))
            for call in calls if call.split("(")[0] in scope]


# Faster forms of generated statements: (the generated assignments replaced, code, the fresh
# name computed and the generated name it must equal). Run in the scope the generated statements
# leave; they only write fresh names (f_...), so they are timed exactly like the generated lines.
ALTERNATIVES = [
    (("dL_dxhat2", "delta1"),
     "f_d1 = delta2*64.0\nf_d1 -= dL_dbeta2\nf_d1 -= xhat2*dL_dgamma2\nf_d1 *= t1*gamma2*0.015625", "f_d1", "delta1"),
    (("delta2",), "f_d2 = np.dot(delta3, W3.T)\nf_d2 *= z2 > 0", "f_d2", "delta2"),
    (("z2",), "f_z2 = gamma2*xhat2\nf_z2 += beta2", "f_z2", "z2"),
    (("var2",), "f_var = np.einsum('ij,ij->j', t0, t0)\nf_var *= 0.015625", "f_var", "var2"),
    (("dL_dgamma2",), "f_dg = np.einsum('ij,ij->j', delta2, xhat2)", "f_dg", "dL_dgamma2"),
]


def time_alternatives(lines, scope, repeats, target):
    """[(generated statements, their µs, faster form, its µs)]; the forms must give the same values
    (to 1e-12 relative: the delta1 form sums in another order)."""
    by_name = {name: (text, t) for name, text, t in lines}
    rows = []
    for replaced, code, fresh, same in ALTERNATIVES:
        compiled = compile(code, "<alternative>", "exec")
        try:
            exec(compiled, scope)
        except NameError:                  # the generated code no longer names what this form uses
            continue
        if not all(r in by_name for r in replaced):
            continue
        want = scope[same]
        assert np.allclose(scope[fresh], want, rtol=1e-12, atol=1e-12 * np.abs(want).max()), f"{fresh} != {same}"
        rows.append(("; ".join(by_name[r][0] for r in replaced), sum(by_name[r][1] for r in replaced),
                     code.replace("\n", "; "), time_statement(compiled, scope, repeats, target)))
    return rows


# ================================================================================================
# Main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few short repeats: a smoke run of a few seconds")
    parser.add_argument("--repeats", type=int, metavar="R", help="timeit repeats (default 60; 3 with --quick)")
    parser.add_argument("--blas-threads", type=int, metavar="N",
                        help="OpenBLAS threads (default 1 unless OPENBLAS_NUM_THREADS or OMP_NUM_THREADS is set; "
                             "0 = the library's default)")
    parser.add_argument("--no-lines", action="store_true", help="skip the line timings of the generated code")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    args.blas_note = bench.set_blas_threads(args.blas_threads)
    torch = bench.bench_others.torch_or_none()
    repeats = args.repeats or (3 if args.quick else 60)
    target = 0.01 if args.quick else 0.05              # seconds per timeit measurement
    start = time.perf_counter()
    out = bench.Report()
    out("# symprop benchmark: 784-256(batchnorm, relu)-10, batch 64\n")
    out("\n".join(bench.environment_lines(args, torch)))

    network = symprop.load(str(SPEC))
    source = symprop.generate(network)
    module = compile_module(network, source)
    noval = compile_module(network, source)
    noval.VALIDATE = False
    assert module.VALIDATE is True and module.CHECK_FINITE is True
    arrays = random_arrays(network, np.random.default_rng(SEED))
    impls = {"hand": hand_batchnorm, "gen": module.gradients, "gen_noval": noval.gradients}
    if torch is not None:
        impls["torch"] = make_torch_gradients(torch, arrays)
    diffs = check_agreement(network, arrays, impls, module, torch)
    out("\nAgreement with the hand-written gradients (max relative difference, must be <= "
        f"{AGREE:g}): " + ", ".join(f"{name} {d:.1e}" for name, d in diffs.items()) + ": passed")

    best, loops = time_best(impls, arrays, repeats, target)
    hand = best["hand"][0]
    labels = {"hand": "hand-written NumPy (compact batchnorm formula)",
              "gen": "generated `gradients`, VALIDATE True (default)",
              "gen_noval": "generated `gradients`, VALIDATE False",
              "torch": "PyTorch autograd, float64, 1 thread"}
    rows = [[labels[name], bench.fmt_us(b), bench.fmt_us(med), f"{b / hand:.3f}", loops[name]]
            for name, (b, med) in best.items()]
    if torch is None:
        rows.append([labels["torch"], "n/a", "n/a", "n/a (not installed)", ""])
    out(f"\n## Gradient time per call (timeit, best of {repeats} repeats)\n")
    out(bench.md_table(["implementation", "best µs", "median µs", "× hand (best)", "loops"], rows))
    out("")
    for name in ("gen", "gen_noval"):
        ratio = best[name][0] / hand
        out(f"- goal generated <= {GOAL}x hand-written, {labels[name].split(', ')[1]}: {ratio:.3f}x, "
            f"{'met' if ratio <= GOAL else 'NOT met'}")

    if not args.no_lines:
        line_repeats, line_target = (3, 0.002) if args.quick else (15, 0.02)
        lines, scope = time_lines(noval, source, arrays, line_repeats, line_target)
        total = sum(t for _, _, t in lines)
        out(f"\n## Line timings of the generated `gradients` (VALIDATE False; each statement timed alone, "
            f"best of {line_repeats})\n")
        out(bench.md_table(["statement", "µs", "share"],
                           [[f"`{text}`", bench.fmt_us(t), f"{t / total:.1%}"] for _, text, t in lines]
                           + [["sum of the statements", bench.fmt_us(total), ""]]))
        checks = time_checks(module, arrays, line_repeats, line_target)
        out("\nThe checks VALIDATE = True adds before these statements (the module's own functions, "
            "timed the same way):\n")
        out(bench.md_table(["check", "µs"], [[f"`{text}`", bench.fmt_us(t)] for text, t in checks]))
        out("\nFaster forms of the generated statements (the same values; timed the same way):\n")
        out(bench.md_table(["generated", "µs", "faster form", "µs"],
                           [[f"`{was}`", bench.fmt_us(t_was), f"`{code}`", bench.fmt_us(t)]
                            for was, t_was, code, t in time_alternatives(lines, scope, line_repeats, line_target)]))
    out(f"\ntotal wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
