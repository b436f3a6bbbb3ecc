"""`symprop check`: generated gradients against numerical ones, a hand-written backward and PyTorch.

Every comparison is a table per array: the largest absolute error, the relative error, the worst
entries with their indices and both values, and a verdict. The relative error is the normwise one,
max |got - expected| / max |expected| over the array (its largest entry is its scale, floored at
1e-6 of max(1, |L|) for a gradient that is zero up to rounding); an entry is wrong when its error
exceeds rtol times that scale (`symprop.numerical.mismatched`, the tests' definition too). For a
wrong array the report shows what one wrong entry should have been, from the derivation's formula.

Large arrays are compared with finite differences on a seeded sample of their entries (`entries`;
the report says how many), and in full against a hand-written backward (an exact, cheap comparison).
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field, replace

import numpy as np

from ._child import describe
from .diagnosis import diagnose
from .numerical import finite_differences, gradient_scale, largest, mismatched, relative_errors, sample_entries
from .symbolic.spec import Network, as_network

from .codegen.files import compile_module
from .codegen.module import generate, loss_source, steps_source
from .sandbox import Failed

RTOL = 1e-6  # float64 against finite differences
RTOL_TORCH = 1e-10  # float64 against float64 autograd
RTOL_FLOAT32 = 1e-5  # a float32 backward pass: about 7 digits, less what it loses on the way
RTOL_FLOAT16 = 1e-2  # a float16 one: about 3 digits, less the same
KINK_MARGIN = 1e-3  # random values: every pre-activation at least this far from a kink
ALL_ENTRIES_UP_TO = 1000  # arrays this large are differenced in full by default
SAMPLE = 100  # beyond: a seeded sample of this many entries
WIDE = 16  # random weights of layers with more inputs are scaled by sqrt(WIDE / inputs)
CALLING_CONVENTION = ("FUNCTION is called with every array by keyword (the spec's names; names that differ "
                      "only in case are matched) and returns a dict of gradients by name, or a (loss, dict) pair")


@dataclass
class ArrayReport:
    name: str
    verdict: str  # "ok", "WRONG", "missing", "wrong shape", "transposed", "renamed"
    max_abs: float = float("nan")
    max_rel: float = float("nan")
    worst: list = field(default_factory=list)  # (index, got, expected), worst first
    note: str = ""
    should_be: str = ""  # for a wrong entry: its formula and value
    compared: int = 0  # entries compared
    size: int = 0  # entries in the array
    diagnosis: list = field(default_factory=list)  # what the differences fit (`symprop.diagnosis`)

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def as_dict(self) -> dict:
        return {"name": self.name, "verdict": self.verdict, "ok": self.ok, "max_abs_error": _number(self.max_abs),
                "max_rel_error": _number(self.max_rel), "compared": self.compared, "size": self.size,
                "worst": [{"index": list(i), "got": _number(g), "expected": _number(e)} for i, g, e in self.worst],
                "note": self.note, "should_be": self.should_be,
                "diagnosis": [{k: _number(v) if isinstance(v, float) else v for k, v in d.items()}
                              for d in self.diagnosis]}


@dataclass
class Report:
    network: Network
    sections: dict = field(default_factory=dict)  # title -> list of ArrayReport
    notes: list = field(default_factory=list)  # one line each: float32, kinks, random values
    failures: list = field(default_factory=list)  # one line each: a function that failed
    order: list = field(default_factory=list)  # "loss", then the arrays in the order the backward computes them

    @property
    def first_wrong(self) -> str | None:
        """The first array found wrong in backward order ("loss": the returned loss differs, look
        at the forward pass first); None when all agree."""
        wrong = set(self.wrong)
        return next((name for name in self.order if name in wrong), None)

    @property
    def ok(self) -> bool:
        return not self.failures and all(r.ok for rows in self.sections.values() for r in rows)

    def __bool__(self) -> bool:  # `assert symprop.check(net, backward)` fails when it should
        return self.ok

    @property
    def wrong(self) -> list:
        """The names of the arrays found wrong, once each, in order."""
        return list(dict.fromkeys(r.name for rows in self.sections.values() for r in rows if not r.ok))

    @property
    def verdict(self) -> str:
        """One line: "all gradients agree", or FAILED and what failed."""
        if self.ok:
            return "all gradients agree"
        wrong = self.wrong
        parts = self.failures + ([f"{len(wrong)} array(s) wrong: {', '.join(wrong)}"] if wrong else [])
        return "FAILED: " + "; ".join(parts)

    def format(self) -> str:
        return format_report(self)

    def __str__(self) -> str:
        return format_report(self)

    def as_dict(self) -> dict:
        return {"network": self.network.name, "ok": self.ok, "verdict": self.verdict,
                "first_wrong": self.first_wrong,
                "sections": [{"title": title, "arrays": [r.as_dict() for r in rows]}
                             for title, rows in self.sections.items()],
                "notes": self.notes + self._null_notes(), "failures": self.failures}

    def _null_notes(self) -> list:
        """Why a figure of the JSON is null: the arrays whose entries were NaN or infinite."""
        odd = [r.name for rows in self.sections.values() for r in rows
               if any(not math.isfinite(x) for _, got, expected in r.worst for x in (got, expected))
               or math.isinf(r.max_abs)]
        return [f"null in the JSON: a NaN or infinite value ({', '.join(dict.fromkeys(odd))})"] if odd else []

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, allow_nan=False)


def _number(value):
    """A figure for strict JSON (RFC 8259): NaN and infinities are null."""
    value = float(value)
    return value if math.isfinite(value) else None


class CheckError(ValueError):
    """Bad input to a check (exit 2)."""


# ---------------------------------------------------------------------------------------------
# Values


def random_values(network: Network, seed: int = 0, batch: int = 3) -> dict:
    """Reproducible values for every array the spec gives none for, from `seed`."""
    rng = np.random.default_rng(seed)
    values = dict(network.values)
    n = batch
    data = (network.target,) if network.loss.labels else ()
    given = [name for name in (network.input, *network.masks, *data) if name in values]
    if network.batch is None and network.layout == "row" and given:  # the batch of the arrays given
        n = np.shape(values[given[0]])[0]
    fan_in = {}  # a weight's fan-in: the inputs of its first layer (transposed or not)
    for layer in network.layers:
        for weight in layer.weights:
            fan_in.setdefault(weight, layer.fan_in)
    keep = network.keep
    for name, shape in network.shapes(n).items():
        if name in values:
            continue
        if name == network.target:
            values[name] = _random_target(network, shape, rng)
        elif name == network.input and network.tokens:  # tokens: any of the embedding's rows
            values[name] = rng.integers(0, network.layers[0].vocab, size=shape)
        elif name == network.loss.mask:  # the steps that count: most, never none in a sample
            values[name] = (rng.uniform(size=shape) < 0.75).astype(np.float64)
            values[name][:, 0] = 1.0
        elif name in keep:  # 1 (kept) with probability 1 - p, else 0; never all dropped
            values[name] = (rng.uniform(size=shape) < keep[name]).astype(np.float64)
            if values[name].size and not values[name].any():
                values[name].flat[rng.integers(values[name].size)] = 1.0
        else:  # magnitudes 0.25 to 1.25, random signs
            values[name] = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.25, 1.25, size=shape)
            if fan_in.get(name, 0) > WIDE:  # as an initialisation does: pre-activations of order 1
                values[name] *= np.sqrt(WIDE / fan_in[name])
    return values


def _random_target(network: Network, shape, rng):
    if network.loss.labels:
        return rng.integers(0, network.outputs, size=shape)
    if network.loss.kind in ("cross_entropy", "multiclass_hinge"):  # one-hot rows
        return np.eye(network.outputs)[rng.integers(0, network.outputs, size=shape[:-1])]
    if network.loss.kind == "binary_cross_entropy":
        return rng.uniform(0, 1, size=shape)
    return rng.normal(size=shape)


def kink_steps(network: Network) -> list[str]:
    """The forward steps at whose zeros the loss has a kink: the arguments of every ReLU (the
    layers' pre-activations, the hinge's margins)."""
    from .symbolic.derive import derive
    from .symbolic.rules import ACTIVATIONS

    kinked = (ACTIVATIONS["relu"].function, ACTIVATIONS["leaky_relu"].function)
    names = []
    for step in derive(network).steps:
        if step.stage in ("forward", "loss"):
            for applied in sorted(step.expr.atoms(*kinked), key=str):
                if applied.args[0].is_Symbol and applied.args[0].name not in names:
                    names.append(applied.args[0].name)
    return names


def values_away_from_kinks(network: Network, seed: int, steps, batch: int = 3) -> tuple[dict, int]:
    """Random values (for the arrays the spec lacks) whose ReLU pre-activations are all at least
    KINK_MARGIN from zero: the seed is advanced until they are. Returns (values, seed used)."""
    kinked = [name for name in kink_steps(network)  # the label's own hinge margin is the margin itself
              if not (name == "margins" and abs(network.loss.margin) < KINK_MARGIN)]
    for attempt in range(100):
        values = random_values(network, seed + attempt, batch)
        if len(values) == len(network.values) or not kinked:
            return values, seed + attempt
        inter = steps(**values)
        if all(np.min(np.abs(inter[z]), initial=np.inf) >= KINK_MARGIN for z in kinked):
            return values, seed + attempt
    return random_values(network, seed, batch), seed  # none avoids every kink: the entries near one are excused


# ---------------------------------------------------------------------------------------------
# Comparing arrays


def compare(name: str, got, expected, rtol: float = RTOL, loss: float = 0.0, worst: int = 3,
            overall: float = 0.0) -> ArrayReport:
    """How far `got` is from `expected`, entry by entry (NaN entries of `expected`: not compared)."""
    if got is None:
        return ArrayReport(name, "missing", note="no gradient returned for this array")
    try:
        got = np.asarray(got)
    except (ValueError, TypeError) as error:  # ragged lists
        return ArrayReport(name, "wrong shape", note=f"not an array: {str(error).splitlines()[0]}")
    if got.dtype.kind not in "biuf":
        return ArrayReport(name, "wrong shape", note=f"not a numeric array (dtype {got.dtype})")
    got = got.astype(np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        if got.ndim == 2 and got.shape == expected.T.shape and _close(got.T, expected, rtol, loss, overall):
            return ArrayReport(name, "transposed",
                               note=f"returned transposed: shape {got.shape}, expected {expected.shape}")
        if got.size == expected.size and _close(got.reshape(expected.shape), expected, rtol, loss, overall):
            return ArrayReport(name, "wrong shape",
                               note=f"right values in shape {got.shape}, expected {expected.shape}")
        return ArrayReport(name, "wrong shape", note=f"shape {got.shape}, expected {expected.shape}")
    compared = ~np.isnan(expected)
    diff = np.where(compared, np.abs(got - expected), 0.0)
    rel = np.where(compared, relative_errors(got, expected, loss, overall), 0.0)
    wrong = mismatched(got, expected, rtol, loss, overall)
    badness = np.where(wrong, np.where(np.isnan(diff), np.inf, diff), rel * 1e-300)  # wrong ones (NaN worst) first
    order = np.argsort(-badness.ravel(), kind="stable")[:worst]
    entries = [(tuple(int(j) for j in np.unravel_index(i, got.shape)), float(got.flat[i]), float(expected.flat[i]))
               for i in order if compared.flat[i] and (wrong.flat[i] or not wrong.any())]
    count = int(wrong.sum())
    return ArrayReport(name, "WRONG" if count else "ok", float(diff.max(initial=0.0)), float(rel.max(initial=0.0)),
                       entries, f"{count} of {int(compared.sum())} entries wrong" if count else "",
                       compared=int(compared.sum()), size=int(got.size))


def _close(got, expected, rtol, loss, overall=0.0):
    return not mismatched(got, expected, max(rtol, 1e-6), loss, overall).any()


# ---------------------------------------------------------------------------------------------
# The check


def check(network: Network, against=None, values: dict | None = None, seed: int = 0, *,
          torch: bool = False, entries: int | None = -1, batch: int = 3, progress=None,
          numerical: bool = True, rtol: float = RTOL, names: dict | None = None) -> Report:
    """Check the generated gradients of `network` (and `against`, a hand-written backward, and
    PyTorch autograd with `torch=True`) on `values`, the spec's, or seeded random ones.

    `entries`: how many entries of each array to compare with finite differences (None: all;
    the default -1: all for arrays of up to 1,000 entries, a seeded sample of 100 beyond).
    `batch`: the samples drawn where the spec leaves the batch size open. `progress(done, total)`
    is called as the finite differences go. `numerical=False` leaves the finite differences out;
    `rtol` is the tolerance of the comparison with `against` (at least 1e-5 for float32 results).
    `names`: the backward's own names of the network's arrays, {"gamma2": "gamma1", ...}: it is
    called with the arrays under those names, and its gradients are read back by them.
    A traced `Program` is checked by `symprop.check_program.check_program`.
    """
    from .symbolic.program import Program
    _require_settings(against, rtol, entries)
    if isinstance(network, Program):
        from .check_program import check_program
        return check_program(network, against, values, seed, entries=entries, numerical=numerical, rtol=rtol,
                             names=names)
    network = as_network(network)
    names = name_map(network, names)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CheckError(f"seed must be a whole number >= 0, not {seed!r}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise CheckError(f"batch must be a whole number >= 1, not {batch!r}")
    if batch < network.least_batch() and network.batch is None:  # a batchnorm over one value each
        raise CheckError(f"batch must be at least 2 for a batchnorm (over one sample it gives 0, and no "
                         f"gradient before it), not {batch}")
    positional, order = loss_source(network)
    module = compile_module(network, generate(network) + "\n\n" + steps_source(network) + "\n\n" + positional)
    module.POSITIONAL = order  # the arguments of _loss_positional, in order
    report = Report(network)
    report.order = ["loss", *backward_order(network)]
    if values is None:
        values, used = values_away_from_kinks(network, seed, module.steps, batch)
        drawn = [name for name in values if name not in network.values]
        if drawn:
            rest = "; the rest from the spec" if network.values else ""
            report.notes.append(f"random values (seed {used}) for {', '.join(drawn)}{rest}")
    else:
        for name, value in values.items():  # before anything is drawn beside them
            if value is None or np.asarray(value).dtype.kind not in "biuf":
                raise CheckError(f"values[{name!r}] is not an array of numbers ({type(value).__name__})")
        missing = [name for name in network.shapes() if name not in values]
        if missing:  # the arrays not given are drawn, as for the spec's [values]
            values = random_values(replace(network, values=dict(values)), seed, batch)
            report.notes.append(f"random values (seed {seed}) for {', '.join(missing)}; the rest as given")
        low = [n for n, v in values.items() if np.asarray(v).dtype in (np.float32, np.float16)]
        if low:
            report.notes.append(
                f"{', '.join(low)} are {np.asarray(values[low[0]]).dtype}: the numerical gradients are computed in "
                "float64 from them (a float32 difference quotient keeps only about 3 digits)")
    values64 = {k: (np.asarray(v, dtype=np.float64) if np.asarray(v).dtype.kind == "f" else np.asarray(v))
                for k, v in values.items()}
    with np.errstate(all="ignore"):  # a NaN or an overflow: said in one line below
        loss, generated = module.loss_and_gradients(**values64)  # validates every array once
    require_finite(loss, generated)
    steps = module.steps(**values64)
    module.VALIDATE = False  # our own module from here on, called thousands of times with these arrays

    if numerical:
        _check_numerical(report, module, values64, loss, generated, entries, seed, progress)
    if against is not None:
        _check_against(report, against, values, loss, generated, steps, values64, rtol, names)
    if torch:
        _check_torch(report, values64, loss, generated)
    return report


def _require_settings(against, rtol, entries) -> None:
    """CheckError for settings that would make every verdict meaningless (rtol NaN: all agree)."""
    if against is not None and not callable(against):
        raise CheckError(f"against must be a function (the backward pass), not {type(against).__name__}")
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float, np.floating, np.integer)) or not (
            math.isfinite(rtol) and rtol > 0):
        raise CheckError(f"rtol must be a finite number > 0, not {rtol!r}")
    if entries is not None and (isinstance(entries, bool) or not isinstance(entries, (int, np.integer))
                                or entries < -1 or entries == 0):
        raise CheckError(f"entries must be a whole number >= 1 (None: all; -1: the default), not {entries!r}")


def require_finite(loss: float, generated: dict) -> None:
    """CheckError when the loss is NaN or inf at the values: nothing can be compared there (finite
    differences of inf are not a gradient). A gradient that is not finite where the loss is stays
    in the report, where it is compared (the values are fine; the gradient may not be)."""
    if not math.isfinite(loss):
        raise CheckError(f"the loss is {loss} at these values: no gradient can be checked there; give "
                         "values where the function is finite (a log of a negative number, an overflow?)")


def backward_order(network: Network) -> list[str]:
    """The differentiated arrays in the order the backward pass computes their gradients."""
    from .symbolic.derive import derive
    computed = [s.of.name for s in derive(network).steps if s.stage == "gradient"]
    return computed + [name for name in network.differentiated if name not in computed]


def _check_numerical(report, module, values64, loss, generated, entries, seed, progress):
    network = report.network
    sampled = _sampled_entries(network, values64, entries, seed)
    def loss_of(**arrays):  # by position: the loss of hundreds of arrays, without matching their names
        return module._loss_positional(*(arrays[name] for name in module.POSITIONAL))
    numerical, kinks = finite_differences(loss_of, values64, network.differentiated, entries=sampled,
                                          progress=progress, expected=agreement(generated, loss))
    rows = []
    for name in network.differentiated:
        row = compare(name, generated[name], numerical[name], RTOL, loss, overall=largest(generated))
        if kinks[name]:
            row = _excuse_kinks(row, name, generated[name], numerical[name], kinks[name], loss, report,
                                largest(generated))
        rows.append(row)
    report.sections["generated vs numerical"] = rows
    sampled = {name: row for name, row in zip(network.differentiated, rows) if sampled[name] is not None
               and len(sampled[name]) < row.size}
    if sampled:
        report.notes.append("numerical gradients on a seeded sample of entries: " + ", ".join(
            f"{name} {row.compared} of {row.size}" for name, row in sampled.items()) + " (--entries to change)")


def agreement(generated: dict, loss: float) -> dict:
    """name -> (gradient, tolerance) for `finite_differences`: an entry whose first estimate is this
    close to the generated gradient needs no smaller steps (RTOL of the gradient's scale)."""
    overall = largest(generated)
    return {name: (gradient, RTOL * gradient_scale(gradient, loss, overall)) for name, gradient in generated.items()}


def _sampled_entries(network, values, entries, seed):
    """name -> the indices to difference (None: all), for `check`'s `entries`."""
    result = {}
    for name in network.differentiated:
        shape = np.shape(values[name])
        count = entries
        if entries == -1:
            count = None if int(np.prod(shape)) <= ALL_ENTRIES_UP_TO else SAMPLE
        result[name] = sample_entries(shape, count, seed)
    return result


def _excuse_kinks(row, name, generated, numerical, indices, loss, report, overall=0.0):
    """Entries within the finite-difference step of a kink are reported, not counted: the row's
    verdict and figures are those of the other entries."""
    counted = np.array(numerical, dtype=np.float64)
    for index in indices:
        counted[index] = np.nan  # as an entry not sampled
    listed = ", ".join(f"{name}{list(i)}" for i in indices[:4]) + (" ..." if len(indices) > 4 else "")
    report.notes.append(f"warning: {listed} within the finite-difference step of a kink (a ReLU or the hinge at 0, "
                        "a tie for a window's maximum): numerical value unreliable there, not counted")
    row = compare(name, generated, counted, RTOL, loss, overall=overall)
    excused = f"{len(indices)} entries near a kink not counted"
    row.note = f"{row.note}; {excused}" if row.note else excused
    return row


def name_map(network, names) -> dict:
    """`names` ({the network's name: the backward's name}) checked: CheckError unless every key
    is an array of the network and the names the backward sees are distinct identifiers."""
    if not names:
        return {}
    if not isinstance(names, dict):
        raise CheckError(f"names must be a dict {{the network's name: your backward's name}}, not "
                         f"{type(names).__name__}")
    from .symbolic.program import Program
    arrays = list(network.inputs if isinstance(network, Program) else network.shapes())
    for ours, theirs in names.items():
        if ours not in arrays:
            raise CheckError(f"--names: {ours!r} is not an array of {network.name} (its arrays are "
                             f"{', '.join(arrays)})")
        if not isinstance(theirs, str) or not theirs.isidentifier():
            raise CheckError(f"--names: {ours}={theirs}: {theirs!r} is not a Python identifier")
    seen = [names.get(name, name) for name in arrays]
    twice = sorted({name for name in seen if seen.count(name) > 1})
    if twice:
        raise CheckError(f"--names: two arrays of {network.name} would both be called {twice[0]!r}")
    return dict(names)


def call_backward(network: Network, against, values: dict, names: dict | None = None):
    """Call a hand-written backward the way `check` does: (loss or None, gradients dict).
    `names`: the backward's own names of the arrays (`name_map`), for its arguments and its
    gradients' keys.

    Raises BackwardFailed with one line saying what went wrong (an exception, with the file and
    line where it was raised; or a return value of another form)."""
    label = getattr(against, "__name__", "function")
    names = names or {}

    def theirs_of(arrays):  # copies, under the backward's names: theirs to spoil
        return {names.get(k, k): theirs_of(v) if isinstance(v, dict) else np.array(v) for k, v in arrays.items()}
    arguments = _arguments(against, theirs_of(values))
    try:
        theirs = against(**arguments)
    except Failed as error:  # in its child process (symprop.sandbox): a hang, an exit, a crash, an exception
        raise BackwardFailed(str(error)) from None
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # the code under check: report it, do not crash
        raise BackwardFailed(describe(error, label, against)) from None
    loss = None
    if isinstance(theirs, (tuple, list)) and len(theirs) == 2 and isinstance(theirs[1], dict):
        loss, theirs = theirs
    if isinstance(theirs, (tuple, list)) and len(theirs) == 2 and isinstance(theirs[0], dict):
        raise BackwardFailed(f"{label} returned (dict, loss): expected a (loss, dict) pair, the loss first")
    if not isinstance(theirs, dict):
        what = "None" if theirs is None else type(theirs).__name__
        raise BackwardFailed(f"{label} returned {what}, expected a dict of gradients by name "
                             "or a (loss, dict) pair")
    ours = {their: our for our, their in names.items()}
    ours.update({f"d{their}": f"d{our}" for their, our in list(ours.items())})  # dWa for Wa: dW1
    theirs = {ours.get(key, key): value for key, value in theirs.items()}
    if loss is not None:
        try:
            number = np.asarray(loss)
        except Exception:
            number = np.asarray(None, dtype=object)
        if number.dtype.kind not in "biuf":
            raise BackwardFailed(f"{label} returned a loss that is not a number ({type(loss).__name__}: "
                                 f"{str(loss)[:40]!r}), with its gradients")
    by_case = {name.casefold(): name for name in network.differentiated}
    matched = {key: value for key, value in theirs.items() if key in network.differentiated}  # exact names win
    for key, value in theirs.items():
        name = by_case.get(str(key).casefold())
        if key not in matched:
            matched[name if name is not None and name not in matched else key] = value  # w1 for W1
    theirs = matched
    return loss, theirs


class BackwardFailed(RuntimeError):
    """A hand-written backward raised or returned something that is not gradients."""


def _arguments(function, values):
    """The arrays by keyword, renamed to the function's parameters that differ only in case."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return values
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return values
    by_case = {name.casefold(): name for name in parameters}
    return {(name if name in parameters else by_case.get(name.casefold(), name)): value
            for name, value in values.items()}


def compare_backward(report, label, their_loss, theirs, names, generated, loss, rtol, values=None,
                     batch=None, l2=0.0, regularized=None, sequences=()):
    """The rows of a backward's gradients (and its loss, when it returned one) against the
    generated ones, and the names it returned that are not among `names`; a float32 backward is
    compared at float32 precision, with a note saying so. A wrong array gets its diagnosis
    (`symprop.diagnosis`): `values` the arrays (for the regularization fit of the arrays
    `regularized`, default all), `batch` and `l2` the figures a factor is recognised as."""
    regularized = names if regularized is None else regularized
    low = sorted(k for k, v in theirs.items() if getattr(v, "dtype", None) in (np.float32, np.float16))
    if low:
        lowest = min((theirs[k].dtype for k in low), key=lambda d: d.itemsize)  # float16 before float32
        rtol = max(rtol, RTOL_FLOAT16 if lowest == np.float16 else RTOL_FLOAT32)
        report.notes.append(
            f"note: {label} returned {lowest} arrays ({', '.join(low)}): compared at {lowest} "
            f"precision (rtol {rtol:g}); symprop's numerical gradients are float64 whatever the inputs")
    extra = [k for k in theirs if k not in names]
    rows = []
    if their_loss is not None:
        rows.append(compare("loss", np.asarray(their_loss, dtype=float).reshape(()) if np.size(their_loss) == 1
                            else their_loss, np.array(loss), rtol))
    for name in names:
        if name in theirs:
            rows.append(compare(name, theirs[name], generated[name], rtol, loss, overall=largest(generated)))
        else:
            rows.append(_renamed(name, theirs, extra, generated[name], rtol, loss, largest(generated)))
        if rows[-1].verdict == "WRONG":
            weight = None if values is None or name not in regularized else values.get(name)
            with np.errstate(all="ignore"):  # a backward that overflowed: fits of inf are no fits, no warnings
                rows[-1].diagnosis = diagnose(theirs[name], generated[name], weight=weight, weight_name=name,
                                              rtol=rtol, loss=loss, overall=largest(generated), batch=batch, l2=l2,
                                              steps=name in sequences)
    return rows, extra


def _check_against(report, against, values, loss, generated, steps, values64, rtol=RTOL, names=None):
    network = report.network
    label = getattr(against, "__name__", "function")
    try:
        their_loss, theirs = call_backward(network, against, values, names)
    except BackwardFailed as error:
        report.failures.append(str(error))
        return
    batch = np.shape(values[network.input])[0] if network.layout == "row" else None
    rows, extra = compare_backward(report, label, their_loss, theirs, network.differentiated, generated, loss, rtol,
                                   values64, batch, network.loss.l2, regularized=network.weights,
                                   sequences=(network.input,) if len(network.input_shape) == 2 else ())
    for name, row in zip(network.differentiated, rows[1:] if their_loss is not None else rows):
        if row.verdict == "WRONG":
            index, got, _ = row.worst[0]
            row.should_be = should_be(network, name, index, steps, values64, generated[name], got)
    for key in extra:
        if key in network.shapes():
            report.notes.append(f"{label} returned '{key}', an array {network.name} does not differentiate"
                                + (" (wrt_input = false)" if key == network.input else ""))
        else:
            report.notes.append(f"{label} returned '{key}', which names no array of {network.name}")
    if any(not row.ok for row in rows):
        report.notes += _kink_hints(network, steps)
    report.sections[f"{label} vs generated"] = rows


def _kink_hints(network, steps) -> list[str]:
    """Pre-activations exactly at a ReLU's kink, where conventions differ: a hint for a wrong array."""
    hints = []
    for i, layer in enumerate(network.layers, 1):
        if layer.activation in ("relu", "leaky_relu") and not np.all(steps[f"z{i}"]):
            slope = "0" if layer.activation == "relu" else f"negative_slope = {layer.negative_slope:g}"
            hints.append(f"note: z{i} has entries exactly at 0, where symprop (as PyTorch) takes "
                         f"{layer.activation}'(0) = {slope}; a backward using (z{i} >= 0) differs there")
    return hints


def _renamed(name, theirs, extra, expected, rtol, loss, overall=0.0):
    """A missing array: returned under another name (dW1, W1_grad), perhaps reshaped (keepdims),
    or not at all."""
    shape, size = np.shape(expected), np.size(expected)
    candidates = [k for k in extra if np.size(theirs[k]) == size and np.asarray(theirs[k]).dtype.kind in "biuf"]
    candidates.sort(key=lambda k: (np.shape(theirs[k]) != shape, name.casefold() not in str(k).casefold(), str(k)))
    for key in candidates:
        got = np.asarray(theirs[key])
        row = compare(name, got.reshape(shape), expected, rtol, loss, overall=overall)
        if row.ok:
            extra.remove(key)
            if got.shape == shape:
                note = f"returned as '{key}' (its values are right): name it '{name}'"
            else:
                note = (f"returned as '{key}' in shape {got.shape} (its values are right): "
                        f"name it '{name}', shape {shape}")
            return ArrayReport(name, "renamed", row.max_abs, row.max_rel, note=note,
                               compared=row.compared, size=row.size)
    return ArrayReport(name, "missing", note="no gradient returned for this array"
                       + (f" (the returned {', '.join(repr(k) for k in candidates)} have its size)" if candidates else ""))


def should_be(network: Network, name: str, index: tuple, steps: dict, values: dict, expected, got) -> str:
    """One wrong entry: what it should be, as the derivation's formula with numbers."""
    from .symbolic.derive import derive
    from .symbolic.notation import TextPrinter

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
    delta = next((s for s in derivation.steps if s.role == "delta" and s.symbol in step.expr.free_symbols), None)
    if delta is not None:
        lines.append(f"with {delta.name} = {printer.doprint(delta.expr)}")
    return "\n".join(lines)


def _entry_formula(network, name, index, steps, values):
    """The entry's formula in indexed form, with the numbers of this check."""
    if name in network.weights and len(network.using(name)) > 1:
        return ""  # a tied weight: the sum of two layers' formulas
    for i, layer in enumerate(network.layers, 1):
        formula = layer.definition.formula(network, layer, i, name, index, steps, values)
        if formula:
            return formula
    return ""


def _check_torch(report, values64, loss, generated):
    from .reference import torch_loss_and_gradients

    network = report.network
    torch_loss, torch_grads = torch_loss_and_gradients(network, values64)
    rows = [compare(name, generated[name], torch_grads[name], RTOL_TORCH, loss, overall=largest(generated))
            for name in network.differentiated]
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
        lines.append(f"  {'array':<10} {'max abs err':>12} {'rel err':>12}  verdict")
        for r in rows:
            lines.append(f"  {r.name:<10} {_figure(r.max_abs):>12} {_figure(r.max_rel):>12}  {r.verdict}"
                         + (f"  ({r.note})" if r.note else ""))
            if r.verdict == "WRONG":
                for index, got, expected in r.worst:
                    lines.append(f"      {r.name}{list(index)}: got {got:.10g}, expected {expected:.10g}")
                for line in r.should_be.splitlines():
                    lines.append(f"      {line}")
                for found in r.diagnosis:
                    lines.append(f"      diagnosis: {found['text']}")
        lines.append("")
    lines += report.notes
    if report.first_wrong is not None:
        where = ("the returned loss differs: look at the forward pass first" if report.first_wrong == "loss"
                 else "the first array found wrong in backward order")
        lines.append(f"first wrong: {report.first_wrong} ({where})")
    lines.append(report.verdict)
    return "\n".join(lines) + "\n"
