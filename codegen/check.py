"""`symprop check`: generated gradients against numerical ones, a hand-written backward and PyTorch.

Every comparison is a table per array: the largest absolute and relative errors, the worst
entries with their indices and both values, and a verdict. An entry is wrong when
|got - expected| > rtol * (|got| + |expected|) + rtol * max|expected| (relative to the entry,
with a floor relative to the array's scale, so that a gradient that is zero up to rounding is no
false alarm); the relative error shown is the usual |a - b| / max(1e-8, |a| + |b|). For a wrong
array the report shows what one wrong entry should have been, from the derivation's formula.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symbolic.numerical import finite_differences
from symbolic.spec import Network

from .files import compile_module
from .module import generate, steps_source

RTOL = 1e-6  # float64 against finite differences
RTOL_TORCH = 1e-10  # float64 against float64 autograd
RTOL_FLOAT32 = 1e-5  # a float32 backward pass: about 7 digits, less what it loses on the way
KINK_MARGIN = 1e-3  # random values: every pre-activation at least this far from a kink


@dataclass
class ArrayReport:
    name: str
    verdict: str  # "ok", "WRONG", "missing", "wrong shape", "transposed", "renamed"
    max_abs: float = float("nan")
    max_rel: float = float("nan")
    worst: list = field(default_factory=list)  # (index, got, expected), worst first
    note: str = ""
    should_be: str = ""  # for a wrong entry: its formula and value

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass
class Report:
    network: Network
    sections: dict = field(default_factory=dict)  # title -> list of ArrayReport
    notes: list = field(default_factory=list)  # one line each: float32, kinks, random values
    failures: list = field(default_factory=list)  # one line each: a function that failed

    @property
    def ok(self) -> bool:
        return not self.failures and all(r.ok for rows in self.sections.values() for r in rows)

    def format(self) -> str:
        return format_report(self)


class CheckError(ValueError):
    """Bad input to a check (exit 2)."""


# ---------------------------------------------------------------------------------------------
# Values


def random_values(network: Network, seed: int = 0, batch: int = 3) -> dict:
    """Reproducible values for every array the spec gives none for, from `seed`."""
    rng = np.random.default_rng(seed)
    values = dict(network.values)
    n = batch
    if network.batch is None and network.layout == "row" and network.input in values:
        n = values[network.input].shape[0]
    for name, shape in network.shapes(n).items():
        if name in values:
            continue
        if name == network.target:
            values[name] = _random_target(network, shape, rng)
        else:  # magnitudes 0.25 to 1.25, random signs
            values[name] = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.25, 1.25, size=shape)
    return values


def _random_target(network: Network, shape, rng):
    if network.loss.labels:
        return rng.integers(0, network.outputs, size=shape)
    if network.loss.kind == "cross_entropy":
        return np.eye(network.outputs)[rng.integers(0, network.outputs, size=shape[:-1])]
    if network.loss.kind == "binary_cross_entropy":
        return rng.uniform(0, 1, size=shape)
    return rng.normal(size=shape)


def values_away_from_kinks(network: Network, seed: int, steps) -> tuple[dict, int]:
    """Random values (for the arrays the spec lacks) whose ReLU pre-activations are all at least
    KINK_MARGIN from zero: the seed is advanced until they are. Returns (values, seed used)."""
    kinked = [f"z{i}" for i, layer in enumerate(network.layers, 1) if "relu" in layer.activation]
    for attempt in range(100):
        values = random_values(network, seed + attempt)
        if len(values) == len(network.values) or not kinked:
            return values, seed + attempt
        inter = steps(**values)
        if all(np.min(np.abs(inter[z]), initial=np.inf) >= KINK_MARGIN for z in kinked):
            return values, seed + attempt
    return values, seed + attempt


# ---------------------------------------------------------------------------------------------
# Comparing arrays


def compare(name: str, got, expected, rtol: float = RTOL, worst: int = 3) -> ArrayReport:
    """How far `got` is from `expected`, entry by entry."""
    if got is None:
        return ArrayReport(name, "missing", note="no gradient returned for this array")
    got = np.asarray(got)
    if got.dtype.kind not in "biuf":
        return ArrayReport(name, "wrong shape", note=f"not a numeric array (dtype {got.dtype})")
    got = got.astype(np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        if got.ndim == 2 and got.shape == expected.T.shape and _close(got.T, expected, rtol):
            return ArrayReport(name, "transposed",
                               note=f"returned transposed: shape {got.shape}, expected {expected.shape}")
        if got.size == expected.size and _close(got.reshape(expected.shape), expected, rtol):
            return ArrayReport(name, "wrong shape",
                               note=f"right values in shape {got.shape}, expected {expected.shape}")
        return ArrayReport(name, "wrong shape", note=f"shape {got.shape}, expected {expected.shape}")
    diff = np.abs(got - expected)
    rel = diff / np.maximum(1e-8, np.abs(got) + np.abs(expected))
    wrong = _wrong(got, expected, rtol)
    order = np.argsort(-(diff * wrong + rel * 1e-300 * ~wrong).ravel(), kind="stable")[:worst]
    entries = [(tuple(int(j) for j in np.unravel_index(i, got.shape)), float(got.flat[i]), float(expected.flat[i]))
               for i in order]
    count = int(wrong.sum())
    return ArrayReport(name, "WRONG" if count else "ok", float(diff.max(initial=0.0)),
                       float(rel.max(initial=0.0)), entries,
                       f"{count} of {wrong.size} entries wrong" if count else "")


def _wrong(got, expected, rtol):
    scale = float(np.max(np.abs(expected), initial=0.0))
    return np.abs(got - expected) > rtol * (np.abs(got) + np.abs(expected)) + rtol * scale


def _close(got, expected, rtol):
    return not _wrong(got, expected, max(rtol, 1e-6)).any()


# ---------------------------------------------------------------------------------------------
# The check


def check(network: Network, against=None, seed: int = 0, values: dict | None = None,
          torch: bool = False) -> Report:
    """Check the generated gradients of `network` (and `against`, a hand-written backward, and
    PyTorch autograd with `torch=True`) on `values`, the spec's, or seeded random ones."""
    module = compile_module(network, generate(network) + "\n\n" + steps_source(network))
    report = Report(network)
    if values is None:
        values, used = values_away_from_kinks(network, seed, module.steps)
        drawn = [name for name in values if name not in network.values]
        if drawn:
            rest = "; the rest from the spec" if network.values else ""
            report.notes.append(f"random values (seed {used}) for {', '.join(drawn)}{rest}")
    else:
        low = [n for n, v in values.items() if np.asarray(v).dtype in (np.float32, np.float16)]
        if low:
            report.notes.append(
                f"{', '.join(low)} are {np.asarray(values[low[0]]).dtype}: the numerical gradients are computed in "
                "float64 from them (a float32 difference quotient keeps only about 3 digits)")
    values64 = {k: (np.asarray(v, dtype=np.float64) if np.asarray(v).dtype.kind == "f" else np.asarray(v))
                for k, v in values.items()}
    generated = module.gradients(**values64)
    steps = module.steps(**values64)

    numerical, kinks = finite_differences(module.loss, values64, network.differentiated)
    rows = []
    for name in network.differentiated:
        row = compare(name, generated[name], numerical[name])
        if kinks[name]:
            row = _excuse_kinks(row, name, generated[name], numerical[name], kinks[name], report)
        rows.append(row)
    report.sections["generated vs numerical"] = rows

    if against is not None:
        _check_against(report, against, values, generated, steps, values64)
    if torch:
        _check_torch(report, values64, module.loss(**values64), generated)
    return report


def _excuse_kinks(row, name, generated, numerical, indices, report):
    """Entries within the finite-difference step of a kink are reported, not counted."""
    mask = np.ones(np.shape(generated), dtype=bool)
    for index in indices:
        mask[index] = False
    listed = ", ".join(f"{name}{list(i)}" for i in indices[:4]) + (" ..." if len(indices) > 4 else "")
    report.notes.append(f"warning: {listed} within the finite-difference step of a kink (ReLU at 0): "
                        "numerical value unreliable there, not counted")
    if row.verdict == "WRONG" and not _wrong(np.asarray(generated)[mask], numerical[mask], RTOL).any():
        row.verdict, row.note = "ok", f"{len(indices)} entries near a kink not counted"
    return row


def _check_against(report, against, values, generated, steps, values64):
    network = report.network
    label = getattr(against, "__name__", "function")
    title = f"{label} vs generated"
    try:
        theirs = against(**{k: np.array(v) for k, v in values.items()})  # copies: theirs to spoil
    except Exception as error:  # the code under check: report it, do not crash
        report.failures.append(f"{label} raised {type(error).__name__}: {error}")
        return
    if not isinstance(theirs, dict):
        report.failures.append(f"{label} returned {type(theirs).__name__}, expected a dict of gradients by name")
        return
    low = sorted(k for k, v in theirs.items() if np.asarray(v).dtype in (np.float32, np.float16))
    rtol = RTOL
    if low:
        rtol = RTOL_FLOAT32
        report.notes.append(
            f"note: {label} returned {np.asarray(theirs[low[0]]).dtype} arrays ({', '.join(low)}): compared at float32 "
            f"precision (rtol {RTOL_FLOAT32:g}); symprop's numerical gradients are float64 whatever the inputs")
    extra = [k for k in theirs if k not in network.differentiated]
    rows = []
    for name in network.differentiated:
        if name in theirs:
            row = compare(name, theirs[name], generated[name], rtol)
        else:
            row = _renamed(name, theirs, extra, generated[name], rtol)
        if row.verdict == "WRONG":
            index, got, _ = row.worst[0]
            row.should_be = should_be(network, name, index, steps, values64, generated[name], got)
        rows.append(row)
    for key in extra:
        report.notes.append(f"{label} returned '{key}', which is not an array of {network.name}")
    report.sections[title] = rows


def _renamed(name, theirs, extra, expected, rtol):
    """A missing array: returned under another name (dW1, W1_grad), or not at all."""
    shape = np.shape(expected)
    candidates = [k for k in extra if np.shape(theirs[k]) == shape]
    candidates.sort(key=lambda k: (name not in k, k))
    for key in candidates:
        row = compare(name, theirs[key], expected, rtol)
        if row.ok:
            extra.remove(key)
            return ArrayReport(name, "renamed", row.max_abs, row.max_rel,
                               note=f"returned as '{key}' (its values are right): name it '{name}'")
    return ArrayReport(name, "missing", note="no gradient returned for this array"
                       + (f" (the returned {', '.join(repr(k) for k in candidates)} have its shape)" if candidates else ""))


def should_be(network: Network, name: str, index: tuple, steps: dict, values: dict, expected, got) -> str:
    """One wrong entry: what it should be, as the derivation's formula with numbers."""
    from symbolic.derive import derive
    from symbolic.notation import TextPrinter

    derivation = derive(network)
    step = derivation.step(f"dL_d{name}")
    printer = TextPrinter()
    lines = [f"{step.name} = {printer.doprint(step.expr)}"]
    entry = _entry_formula(network, name, index, steps, values)
    value = float(np.asarray(expected)[index])
    label = f"{name}{list(index)}"
    if entry:
        lines.append(f"{label} should be {entry} = {value:.10g}, not {got:.10g}")
    else:
        lines.append(f"{label} should be {value:.10g}, not {got:.10g}")
    delta = next((s for s in derivation.steps if s.name.startswith("delta") and s.symbol in step.expr.free_symbols), None)
    if delta is not None:
        lines.append(f"with {delta.name} = {printer.doprint(delta.expr)}")
    return "\n".join(lines)


def _entry_formula(network, name, index, steps, values):
    """The entry's formula in indexed form, with the numbers of this check."""
    row = network.layout == "row"
    for i, layer in enumerate(network.layers, 1):
        previous = network.input if i == 1 else f"a{i - 1}"
        A = values[network.input] if i == 1 else steps[previous]
        delta = steps[f"delta{i}"]
        if name == layer.weight:
            r, c = index
            if row:
                return f"sum_n {previous}[n, {r}] * delta{i}[n, {c}]" + (" + 2 l2 W" if network.loss.l2 else "")
            return (f"delta{i}[{r}] * {previous}[{c}] = {delta[r]:.6g} * {A[c]:.6g}"
                    + (" + 2 l2 W" if network.loss.l2 else ""))
        if name == layer.bias:
            if layer.shared_bias:
                return f"sum of delta{i}"
            if row:
                return f"sum_n delta{i}[n, {index[0]}]"
            return f"delta{i}[{index[0]}]"
    return ""


def _check_torch(report, values64, loss, generated):
    from .reference import torch_loss_and_gradients

    network = report.network
    torch_loss, torch_grads = torch_loss_and_gradients(network, values64)
    rows = [compare(name, generated[name], torch_grads[name], RTOL_TORCH) for name in network.differentiated]
    loss_row = compare("loss", np.array(loss), np.array(torch_loss), RTOL_TORCH)
    report.sections["generated vs PyTorch autograd (float64)"] = [loss_row, *rows]


# ---------------------------------------------------------------------------------------------
# Printing


def _figure(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3e}"


def format_report(report: Report) -> str:
    lines = []
    for title, rows in report.sections.items():
        lines.append(title)
        lines.append(f"  {'array':<10} {'max abs err':>12} {'max rel err':>12}  verdict")
        for r in rows:
            lines.append(f"  {r.name:<10} {_figure(r.max_abs):>12} {_figure(r.max_rel):>12}  {r.verdict}"
                         + (f"  ({r.note})" if r.note else ""))
            if r.verdict == "WRONG":
                for index, got, expected in r.worst:
                    lines.append(f"      {r.name}{list(index)}: got {got:.10g}, expected {expected:.10g}")
                for line in r.should_be.splitlines():
                    lines.append(f"      {line}")
        lines.append("")
    lines += report.failures + report.notes
    bad = [f"{r.name}" for rows in report.sections.values() for r in rows if not r.ok]
    if report.failures or bad:
        lines.append(f"FAILED: {len(bad)} array(s) wrong" + (f": {', '.join(dict.fromkeys(bad))}" if bad else ""))
    else:
        lines.append("all gradients agree")
    return "\n".join(lines) + "\n"
