"""`check` for a traced program: its generated gradients against central differences of the
generated function, and a hand-written backward against the generated gradients.

The same report as a spec's check (`symprop.check`): a table per array, the worst entries, and
`first_wrong`, the first array found wrong in the order the backward pass computes them.
Values: the arrays the program was traced with, or `values`; with a seed other than 0 the
floating-point arrays are drawn at random (seeded) and the data arrays (labels, masks, indices)
are kept as given, since only the user knows what makes them valid.
"""

from __future__ import annotations

import inspect
import types

import numpy as np

from .check import (RTOL, BackwardFailed, CheckError, Report, agreement, call_backward, compare, compare_backward,
                    name_map, require_finite)
from .codegen.program_module import generate_program
from .numerical import finite_differences, largest, sample_entries
from .symbolic.program import Program, derive_program
from .symbolic.scan import Scan

ALL_ENTRIES_UP_TO = 1000
SAMPLE = 100


def program_values(program: Program, values: dict | None = None, seed: int = 0) -> dict:
    """The arrays to check at: `values` (or the traced ones), the float arrays redrawn for a seed > 0."""
    given = dict(program.values if values is None else values)
    missing = [a.name for a in program.arrays if a.role != "upstream" and a.name not in given]
    if missing:
        raise CheckError(f"no values for {', '.join(missing)} (the program takes "
                         f"{', '.join(a.name for a in program.arrays if a.role != 'upstream')})")
    rng = np.random.default_rng(seed)
    out = {}
    for array in program.arrays:
        if array.role == "upstream":
            continue
        value = np.asarray(given[array.name])
        if value.shape != tuple(array.shape):
            raise CheckError(f"{array.name} has shape {value.shape}, expected {tuple(array.shape)}")
        if seed and array.role == "differentiated":  # magnitudes 0.25 to 1.25, random signs
            value = rng.choice([-1.0, 1.0], size=value.shape) * rng.uniform(0.25, 1.25, size=value.shape)
        out[array.name] = value
    if not program.scalar:  # the upstream gradient: always drawn, seeded
        out["dout"] = np.random.default_rng(seed + 1_000_003).normal(size=program.array("dout").shape)
    return out


def compile_program(program: Program) -> types.ModuleType:
    module = types.ModuleType(program.name)
    module.__file__ = f"<symprop generated {program.name}>"
    exec(compile(generate_program(program), module.__file__, "exec"), module.__dict__)  # our own generated code
    return module


def backward_order(program: Program) -> list[str]:
    """The wrt names in the order the backward pass computes their gradients."""
    derivation = derive_program(program)
    computed = [s.of.name for s in derivation.steps if getattr(s, "stage", "") == "gradient"]
    return computed + [name for name in program.wrt if name not in computed]


def check_program(program: Program, against=None, values: dict | None = None, seed: int = 0, *,
                  entries: int | None = -1, numerical: bool = True, rtol: float = RTOL,
                  names: dict | None = None) -> Report:
    """Check the generated gradients of a traced `program` against central differences, and
    `against` (a hand-written backward called with the arrays by keyword) against them. A
    gradient returned as d<name> (dlogprobs) is the gradient of <name>, as learners write it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CheckError(f"seed must be a whole number >= 0, not {seed!r}")
    names = name_map(program, names)
    module = compile_program(program)
    arrays = program_values(program, values, seed)
    report = Report(program)
    report.order = ["loss", *backward_order(program)]
    if seed:
        report.notes.append(f"random values (seed {seed}) for the floating-point arrays; data arrays as given")
    floats = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
    if program.narrowed:  # finite differences of a float32 value keep about 3 digits: float64 throughout
        module._SINGLE = np.float64
        report.notes.append(f"{program.source} makes values float32 (.astype): checked in float64 throughout, "
                            "the casts left out")
    with np.errstate(all="ignore"):  # a NaN or an overflow: said in one line below
        generated = module.gradients(**floats)
        value = module.forward(**{k: v for k, v in floats.items() if k != "dout"})
        loss = float(value) if program.scalar else float(np.sum(value * floats["dout"]))
    require_finite(loss, generated)
    if numerical:
        _numerical(report, program, module, floats, generated, loss, entries, seed)
    if against is not None:
        _against(report, program, against, arrays, generated, loss, rtol, names)
    return report


def _numerical(report, program, module, floats, generated, loss, entries, seed):
    inputs = [a.name for a in program.arrays if a.role == "differentiated" and a.name in program.wrt]
    module.VALIDATE = False
    if program.scalar:
        f = module.loss
    else:
        dout = floats["dout"]

        def f(**arrays):
            return float(np.sum(module.forward(**arrays) * dout))
    given = {k: v for k, v in floats.items() if k != "dout"}
    sampled = {}
    for name in inputs:
        shape = np.shape(given[name])
        count = entries
        if entries == -1:
            count = None if int(np.prod(shape)) <= ALL_ENTRIES_UP_TO else SAMPLE
        sampled[name] = sample_entries(shape, count, seed)
    numerical, kinks = finite_differences(f, given, inputs, entries=sampled, expected=agreement(generated, loss))
    rows = [compare(name, generated[name], numerical[name], RTOL, loss, overall=largest(generated))
            for name in inputs]
    report.sections["generated vs numerical"] = rows
    intermediates = [name for name in program.wrt if name not in inputs]
    if intermediates:
        report.notes.append(f"{', '.join(intermediates)}: intermediates, compared with the backward given only "
                            "(no finite differences reach them)")


def _grouped(program: Program, against, arrays: dict) -> dict:
    """The arrays as the backward takes them: a dict argument of the traced function (cs231n's
    `params`) passed as that dict again where the backward has a parameter of its name."""
    try:
        parameters = inspect.signature(against).parameters
    except (TypeError, ValueError):
        return arrays
    out = dict(arrays)
    for name, keys in program.groups.items():
        if name in parameters:
            out[name] = {key: out.pop(key) for key in keys if key in out}
    return out


def _against(report, program, against, arrays, generated, loss, rtol, names=None):
    label = getattr(against, "__name__", "function")
    try:
        their_loss, theirs = call_backward(program, against, _grouped(program, against, arrays), names)
    except BackwardFailed as error:
        report.failures.append(str(error))
        return
    # the learner's convention for an intermediate's gradient: dlogprobs for logprobs
    for key in [k for k in theirs if k not in program.wrt]:
        if isinstance(key, str) and key.startswith("d") and key[1:] in program.wrt and key[1:] not in theirs:
            theirs[key[1:]] = theirs.pop(key)
    first = np.shape(arrays[program.arrays[0].name]) if program.arrays else ()
    batch = first[0] if len(first) >= 2 else None  # X of shape (N, D): N the batch, as a factor is read
    sequences = {outer for step in program.steps if isinstance(step.expr, Scan) for _, outer in step.expr.loop.sequences}
    rows, _ = compare_backward(report, label, their_loss if program.scalar else None, theirs, program.wrt,
                               generated, loss, rtol, arrays, batch, sequences=sequences)
    report.sections[f"{label} vs generated"] = rows
