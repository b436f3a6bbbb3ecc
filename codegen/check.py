"""`symprop check`: generated gradients against numerical ones, and against a hand-written backward.

An entry of a gradient array is wrong when |got - expected| > rtol * (|got| + |expected|) +
rtol * max|expected|: relative to the entry, with a floor relative to the array's scale, so
that a gradient entry that is zero up to rounding (a dead ReLU unit) is not a false alarm.
The relative error shown is the usual |a - b| / max(1e-8, |a| + |b|).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import symbolic
from symbolic.spec import Network

from .files import compile_module

RTOL = 1e-6


@dataclass
class ArrayReport:
    name: str
    verdict: str  # "ok", "WRONG", "missing", "wrong shape", "transposed"
    max_abs: float = float("nan")
    max_rel: float = float("nan")
    worst: list = field(default_factory=list)  # (index, got, expected), worst first
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


def random_values(network: Network, seed: int = 0, batch: int = 3) -> dict:
    """Reproducible values for every array the spec gives none for, seeded."""
    rng = np.random.default_rng(seed)
    shapes = network.shapes(batch)
    values = dict(network.values)
    if network.batch is None and network.layout == "row" and network.input in values:
        shapes = network.shapes(values[network.input].shape[0])
    for name, shape in shapes.items():
        if name in values:
            continue
        if name == network.target:
            values[name] = _random_target(network, shape, rng)
        else:
            # Entries of magnitude 0.25 to 1.25 with random signs: no pre-activation sits at a kink.
            values[name] = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.25, 1.25, size=shape)
    return values


def _random_target(network: Network, shape, rng):
    kind = network.loss.kind
    if network.loss.labels:
        return rng.integers(0, network.outputs, size=shape)
    if kind == "cross_entropy":
        labels = rng.integers(0, network.outputs, size=shape[:-1])
        return np.eye(network.outputs)[labels]
    if kind == "binary_cross_entropy":
        return rng.uniform(0, 1, size=shape)
    return rng.normal(size=shape)


def compare(name: str, got, expected, rtol: float = RTOL, worst: int = 3) -> ArrayReport:
    """How far `got` is from `expected`, entry by entry."""
    if got is None:
        return ArrayReport(name, "missing", note="no gradient returned for this array")
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        if got.shape == expected.T.shape and got.ndim == 2 and np.allclose(got.T, expected, rtol=1e-4, atol=1e-8):
            return ArrayReport(name, "transposed", note=f"returned transposed: shape {got.shape}, expected {expected.shape}")
        return ArrayReport(name, "wrong shape", note=f"shape {got.shape}, expected {expected.shape}")
    diff = np.abs(got - expected)
    rel = diff / np.maximum(1e-8, np.abs(got) + np.abs(expected))
    scale = float(np.max(np.abs(expected), initial=0.0))
    wrong = diff > rtol * (np.abs(got) + np.abs(expected)) + rtol * scale
    order = np.argsort(-(diff * wrong + rel * ~wrong).ravel(), kind="stable")[:worst]
    entries = [(tuple(int(j) for j in np.unravel_index(i, got.shape)), float(got.flat[i]), float(expected.flat[i]))
               for i in order]
    return ArrayReport(name, "WRONG" if wrong.any() else "ok", float(diff.max(initial=0.0)),
                       float(rel.max(initial=0.0)), entries,
                       f"{int(wrong.sum())} of {wrong.size} entries wrong" if wrong.any() else "")


def check(network: Network, against=None, seed: int = 0) -> dict[str, list[ArrayReport]]:
    """Reports per array: "generated vs numerical", and "<function> vs generated" if given."""
    module = compile_module(network)
    values = random_values(network, seed)
    generated = module.gradients(**values)
    numerical = symbolic.numerical_gradients(module.loss, values, network.differentiated)
    reports = {"generated vs numerical": [compare(n, generated[n], numerical[n]) for n in network.differentiated]}
    if against is not None:
        label = getattr(against, "__name__", "function")
        try:
            theirs = against(**values)
        except Exception as error:  # the user's code: report, do not crash
            raise CheckError(f"{label} raised {type(error).__name__}: {error}") from None
        if not isinstance(theirs, dict):
            raise CheckError(f"{label} returned {type(theirs).__name__}, expected a dict of gradients by name")
        reports[f"{label} vs generated"] = [compare(n, theirs.get(n), generated[n]) for n in network.differentiated]
    return reports


class CheckError(ValueError):
    """The function under check could not be run or returned something unusable."""


def format_reports(reports: dict[str, list[ArrayReport]]) -> str:
    lines = []
    for title, rows in reports.items():
        lines.append(title)
        lines.append(f"  {'array':<10} {'max abs err':>12} {'max rel err':>12}  verdict")
        for r in rows:
            lines.append(f"  {r.name:<10} {r.max_abs:>12.3e} {r.max_rel:>12.3e}  {r.verdict}"
                         + (f"  ({r.note})" if r.note else ""))
            if r.verdict == "WRONG":
                for index, got, expected in r.worst:
                    lines.append(f"      {r.name}{list(index)}: got {got:.10g}, expected {expected:.10g}")
        lines.append("")
    return "\n".join(lines)
