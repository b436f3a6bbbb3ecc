"""The source of a generated gradient module for a traced program (`symprop.trace`).

The same machinery as a spec's module (`codegen.module`): each function is the derivation steps it
needs, common subexpressions named t0, t1, ..., each line printed by `GradientPrinter`. Its API is
the contract's: `gradients(**arrays)` keyed by the `wrt` names, `loss` (a scalar function) or
`forward` (the function's value), `loss_and_gradients`, `PARAMETERS`.
"""

from __future__ import annotations

import inspect

from ..symbolic.program import Program, ProgramDerivation, derive_program, needed_steps
from . import runtime
from .loops import statements
from .module import HASH_BLANK, HASH_PREFIX, INDENT, _cse, _docstring_safe, content_hash
from .printer import GradientPrinter, helper_source


def generate_program(program: Program, again: str = "") -> str:
    """The module source for a traced `program`; `again`: the options its regenerate line adds
    (` --out gen`)."""
    derivation = derive_program(program)
    printer = GradientPrinter(layout="row")
    names = program.inputs
    forward_names = tuple(n for n in names if n != "dout")
    dtype = GradientPrinter.float_dtype(list(_floats(program, names)))
    returns = "{" + ", ".join(f'"{w}": {_gradient(derivation, w, dtype)}' for w in program.wrt) + "}"
    output = program.output.name
    functions = [_function(printer, derivation, "forward", forward_names, [program.output],
                           "The function's value, from its arrays.",
                           f"float({output})" if program.scalar else output)]
    if program.scalar:
        functions.append(_function(printer, derivation, "loss", forward_names, [program.output],
                                   "The loss, from the arrays.", f"float({output})"))
    what = "dL/d(name)" if program.scalar else "The vector-Jacobian products dout . d(out)/d(name)"
    wanted = [s for s in derivation.gradients.values() if s is not None]
    functions.append(_function(printer, derivation, "gradients", names, wanted,
                               f"{what} for each name of PARAMETERS.", returns))
    if program.scalar:
        functions.append(_function(printer, derivation, "loss_and_gradients", names, [program.output, *wanted],
                                   "The loss and the gradients, from one forward pass.",
                                   f"float({output}), {returns}"))
    shapes = {a.name: tuple(a.shape) for a in program.arrays}
    kinds = {a.name: "f" if a.dtype.startswith("float") else "d" for a in program.arrays}
    arguments = {name: args for name, (_, args) in zip(("forward", "loss", "gradients", "loss_and_gradients")
                                                       if program.scalar else ("forward", "gradients"), functions)}
    parts = [
        _header(program, again) + "\n" + HASH_PREFIX + HASH_BLANK,
        "import numpy as np\n",
        f"PARAMETERS = {tuple(program.wrt)!r}\n"
        "SHAPES = {\n" + "".join(f"    {n!r}: {s!r},\n" for n, s in shapes.items()) + "}\n"
        "KINDS = {\n" + "".join(f"    {n!r}: {k!r},\n" for n, k in kinds.items()) + "}  # f: floats, d: data\n"
        "RANGES = {" + ", ".join(f"{n!r}: {b}" for n, b in program.bounds.items()) + "}  # data that indexes: "
        "from -length to length - 1 of the axis\n"
        "VALIDATE = True  # False skips the argument checks of every function\n"
        "CHECK_FINITE = True  # False skips the look for NaN and inf in the results (and the arguments)\n"
        + ("_SINGLE = np.float32  # the function's .astype(np.float32) (symprop check computes in float64)\n"
           if program.narrowed else "") +
        "ARGUMENTS = {\n" + "".join(f"    {f!r}: {a!r},\n" for f, a in arguments.items()) + "}\n",
        *(source for source, _ in functions),
        inspect.getsource(runtime._program_arrays),
        inspect.getsource(runtime._finite),
        inspect.getsource(runtime._program_nonfinite),
        *(helper_source(name) for name in sorted(printer.helpers)),
    ]
    source = "\n\n".join(part.rstrip("\n") + "\n" for part in parts).replace("\n\n\n\n", "\n\n\n")
    return source.replace(HASH_PREFIX + HASH_BLANK, HASH_PREFIX + content_hash(source), 1)


def _floats(program: Program, arguments) -> tuple:
    """The float arrays among `arguments` (the upstream gradient dout among them), not the data."""
    data = {a.name for a in program.arrays if not a.dtype.startswith("float")}
    return tuple(a for a in arguments if a not in data)


def _gradient(derivation: ProgramDerivation, name: str, dtype: str) -> str:
    """The gradient of `name` as `gradients` returns it; `dtype`: the code of its arrays' float dtype."""
    symbol = derivation.gradients[name]
    if symbol is None:  # the value does not depend on it
        return f"np.zeros(SHAPES[{name!r}], dtype={dtype})"
    shape = next(s.shape for s in derivation.steps if s.symbol == symbol)
    if shape == ():
        return f"np.asarray({symbol.name}, dtype=np.result_type({symbol.name}, 1.0))"
    # floats always (a mask, a one-hot or an integer range is not), float32 kept; no copy of a float array
    return f"np.asarray({symbol.name}, dtype=np.result_type({symbol.name}, 1.0))"


def _header(program: Program, out: str = "") -> str:
    kind = "loss" if program.scalar else "array-valued function (gradients with the upstream dout)"
    again = (f"symprop generate {program.origin}{out}" if program.origin
             else "symprop.generate(symprop.trace(...)) of the same function and shapes")
    lines = [f"Gradients of the traced {kind} {program.name}, from {program.source}.", "",
             "Generated by symprop from a trace; do not edit.", f"Regenerate with: {again}", "",
             "Each line below is a step of its derivation (symprop derive of the same function)."]
    return '"""' + _docstring_safe("\n".join(lines)) + '\n"""'


def _function(printer, derivation: ProgramDerivation, name: str, arguments: tuple, wanted: list, doc: str,
              result: str):
    steps = needed_steps(derivation.steps, wanted)
    lines = _cse(steps)
    values = ", ".join(arguments) + ("," if len(arguments) == 1 else "")
    signature = "".join(f"{a}=None, " for a in arguments)
    body = [f'{INDENT}"""{doc}"""']
    printer.floats = _floats(derivation.program, arguments)
    if arguments:
        body += [f"{INDENT}if VALIDATE:", f"{INDENT * 2}{values} = _program_arrays({name!r}, ({values}), unknown)"]
    body += [INDENT + line for line in statements(printer, lines, _cse)]
    if arguments:  # NaN or inf looked for in what was computed; then the argument that holds it named
        results = ", ".join(symbol.name for symbol in wanted) + ("," if len(wanted) == 1 else "")
        body += [f"{INDENT}if VALIDATE and not _finite(({results})):",
                 f"{INDENT * 2}_program_nonfinite({name!r}, ({values}))"]
    body.append(f"{INDENT}return {result}")
    return f"def {name}(*, {signature}**unknown):\n" + "\n".join(body) + "\n", arguments
