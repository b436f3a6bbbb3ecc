"""The source of a generated gradient module, from a network's matrix-level derivation.

Each function of the module (`forward`, `loss`, `gradients`, `loss_and_gradients`) is the list
of derivation steps it needs (the others are dropped), common subexpressions named `t0, t1, ...`
by `sympy.cse`, each line printed by `GradientPrinter`. The output depends only on the spec:
no timestamps, no paths but the spec's, sorted and fixed order everywhere.
"""

from __future__ import annotations

import inspect
import os
import shlex

import sympy as sp

from .. import symbolic
from ..symbolic.arrays import BATCH
from ..symbolic.derive import Derivation, Step
from ..symbolic.program import needed_steps
from ..symbolic.spec import Network, as_network

from . import numba_backend, runtime, workspaces
from .fused import fused
from .loops import statements
from .pooled import pooled
from .printer import GradientPrinter, code_forms, helper_source

INDENT = "    "
_FUNCTIONS = ("forward", "loss", "gradients", "loss_and_gradients")


BACKENDS = ("numpy", "numba")


def generate(network: Network, out: str | None = None, backend: str = "numpy") -> str:
    try:
        return _generate(network, out, backend)
    except numba_backend.Unsupported as error:  # named after the network
        raise numba_backend.Unsupported(error.what, getattr(network, "name", str(network))) from None


def _generate(network: Network, out: str | None = None, backend: str = "numpy") -> str:
    """The module source that `symprop generate` writes for `network` (or the preset or spec it
    names, or a traced `Program`); `out`: the folder written to, named in its regenerate line
    (None and "generated", the default folder, are not named); `backend`: "numpy" (imports
    nothing but NumPy) or "numba" (the same API, each function compiled: `codegen.numba_backend`)."""
    from ..symbolic.program import Program
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if isinstance(network, Program):  # its regenerate line is run from where it was traced
        if backend == "numba":
            raise numba_backend.Unsupported("a traced function")
        from .program_module import generate_program
        return generate_program(network, "" if out in (None, "generated") else f" --out {shlex.quote(str(out))}")
    network = as_network(network)
    again = _out_option(network, out) + ("" if backend == "numpy" else f" --backend {backend}")
    derivation = symbolic.derive(network)
    if backend == "numpy":
        printer = GradientPrinter(layout=network.layout)
    else:  # it prints a product by the number of axes of its operands
        shapes = {sp.Symbol(name): shape for name, shape in network.shapes(BATCH).items()}
        printer = numba_backend.NumbaPrinter(network.layout, shapes | {s.symbol: s.shape for s in derivation.steps})
    net = network
    forward_names = (net.input,) + net.given + net.parameters
    all_names = (net.input, net.target) + net.given + net.parameters
    scalars = {name for name, shape in net.shapes("N").items() if shape == ()}  # shared biases
    returns = "{" + ", ".join(f'"{name}": np.asarray({sym.name})' if name in scalars else f'"{name}": {sym.name}'
                              for name, sym in derivation.gradients.items()) + "}"
    loss_value = f"float({derivation.loss.name})"

    functions = [
        _function(printer, derivation, "forward", forward_names, [derivation.output],
                  f"The network output yhat = {derivation.output.name}, from the input and the parameters.",
                  derivation.output.name, backend=backend),
        _function(printer, derivation, "loss", all_names, [derivation.loss],
                  "The loss L, from the input, the target and the parameters.", loss_value, backend=backend),
        _function(printer, derivation, "gradients", all_names, list(derivation.gradients.values()),
                  "dL/d(array) for every parameter" + (" and the input" if net.wrt_input else "")
                  + ", by name.", returns, backend=backend),
        _function(printer, derivation, "loss_and_gradients", all_names,
                  [derivation.loss, *derivation.gradients.values()],
                  "The loss and the gradients, from one forward pass.", f"{loss_value}, {returns}",
                  backend=backend),
    ]
    shapes = net.shapes("N")
    classes = (f"CLASSES = {net.outputs}  # the target holds class labels 0 to {net.outputs - 1}" if net.loss.labels
               else "CLASSES = None  # the target holds values, not class labels")
    vocab = net.layers[0].vocab
    tokens = (f"TOKENS = {vocab}  # the input holds tokens 0 to {vocab - 1}" if net.tokens
              else "TOKENS = None  # the input holds values, not tokens")
    arguments = {name: args for name, (_, args) in zip(_FUNCTIONS, functions)}
    parts = [
        _header(net, again) + "\n" + HASH_PREFIX + HASH_BLANK,
        "import numpy as np\n" if backend == "numpy" else "import numba\nimport numpy as np\n",
        f"PARAMETERS = {tuple(net.parameters)!r}\n"
        f"DIFFERENTIATED = {tuple(net.differentiated)!r}\n"
        "SHAPES = {\n" + "".join(f"    {name!r}: {shape!r},\n" for name, shape in shapes.items()) + "}\n"
        f"INPUT, TARGET = {net.input!r}, {net.target!r}\n"
        f"{classes}\n{tokens}\n"
        "VALIDATE = True  # False skips the argument checks of every function (then: float arrays of one dtype)\n"
        "CHECK_FINITE = True  # False skips the look for NaN and inf in the results (and the arguments)\n"
        + ("FLOAT = None  # float arrays keep their dtype (float32 in, float32 out)\n" if backend == "numpy" else
           "FLOAT = np.float64  # the dtype the compiled functions take: other float arrays are converted\n"
           "CACHE = not globals().get('__file__', '<').startswith('<')  # imported from its file: Numba keeps "
           "what it compiled in __pycache__\n") +
        "ARGUMENTS = {\n" + "".join(f"    {f!r}: {a!r},\n" for f, a in arguments.items()) + "}\n"
        "_EXPECTED = {}  # (function, input length) -> (type, shape, dtype) of each argument\n",
        *(source for source, _ in functions),
        _VALIDATION,
        *(helper_source(name) for name in sorted(printer.helpers) if backend == "numpy"),
        *(numba_backend.kernel_helpers(printer) if backend == "numba" else ()),
    ]
    source = "\n\n".join(part.rstrip("\n") + "\n" for part in parts).replace("\n\n\n\n", "\n\n\n")
    return source.replace(HASH_PREFIX + HASH_BLANK, HASH_PREFIX + content_hash(source), 1)


HASH_PREFIX = "# symprop content hash: "
HASH_BLANK = "-" * 64


def content_hash(source: str) -> str:
    """sha256 of a module's text with its hash line blanked: what the header records."""
    import hashlib
    import re

    blanked = re.sub("^" + re.escape(HASH_PREFIX) + ".*$", HASH_PREFIX + HASH_BLANK, source, count=1, flags=re.M)
    return hashlib.sha256(blanked.encode("utf-8")).hexdigest()


def recorded_hash(source: str) -> str | None:
    """The hash a module's header records, or None when it has no hash line."""
    for line in source.splitlines()[:40]:
        if line.startswith(HASH_PREFIX):
            return line[len(HASH_PREFIX):].strip()
    return None


def spec_path(network: Network) -> str:
    """The spec as the header names it: symbolic/networks/NAME.toml for a preset, the file name
    for a spec file (the module is then the same wherever it is generated from)."""
    if network.preset:
        return f"symbolic/networks/{network.path.name}"
    return network.path.name if network.path else network.source


def spec_argument(network: Network) -> str:
    """What names the network on the command line, run from the spec's folder."""
    if network.preset or network.path is None:  # a network from text: its name is all there is
        return network.name
    name = network.path.name
    return shlex.quote("./" + name if name.startswith("-") else name)


def _out_option(network: Network, out: str | None) -> str:
    """` --out DIR` for the regenerate line, DIR as seen from the spec's folder (where the line is
    run); nothing for the default folder."""
    if out in (None, "generated"):
        return ""
    if not network.preset and network.path is not None:
        out = os.path.relpath(os.path.abspath(out), network.path.parent)
    return f" --out {shlex.quote(str(out))}"


def _header(net: Network, again: str = "") -> str:
    if all(layer.definition.plain(layer) for layer in net.layers):  # 3-4-2, relu/softmax
        layers = "-".join(str(n) for n in (net.inputs, *(layer.units for layer in net.layers)))
        acts = "/".join(layer.activation for layer in net.layers)
        summary = f"{layers}, {acts}"
    else:
        inputs = "x".join(map(str, net.input_shape))
        summary = f"{inputs} inputs; " + ", ".join(layer.definition.summary(layer) for layer in net.layers)
    lines = [
        f"Gradients of the network {net.name}: {summary}, {net.loss.kind} ({net.layout} layout).",
        "",
        f"Generated by symprop from {spec_path(net)}; do not edit.",
        f"Regenerate with: symprop generate {spec_argument(net)}{again}",
    ]
    if net.description:
        lines += ["", net.description]
    lines += ["", f"Each line below is a step of `symprop derive {spec_argument(net)}`."]
    return '"""' + _docstring_safe("\n".join(lines)) + '\n"""'


def _docstring_safe(text: str) -> str:
    """Free text (a spec's description or path) that cannot end the docstring it stands in."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _worth_naming(expr: sp.Expr) -> bool:
    """Whether a common subexpression is worth a line of its own."""
    if expr.is_Relational or expr.is_Atom:
        return False
    if expr.could_extract_minus_sign() and (-expr).is_Atom:
        return False
    return bool(expr.free_symbols - {BATCH})


def _cse(steps: list[Step]) -> list[tuple[sp.Symbol, sp.Expr]]:
    """(symbol, expression) lines: the steps with common subexpressions named t0, t1, ..."""
    temps, reduced = sp.cse([code_forms(s.expr) for s in steps], symbols=sp.numbered_symbols("t"), order="none")
    inline = {}
    named = []
    for symbol, expr in temps:
        expr = expr.xreplace(inline)
        if _worth_naming(expr):
            named.append((symbol, expr))
        else:
            inline[symbol] = expr
    named = [(s, e.xreplace(inline)) for s, e in named]
    renumber = {s: sp.Symbol(f"t{i}") for i, (s, _) in enumerate(named)}
    named = [(renumber[s], e.xreplace(renumber)) for s, e in named]
    lines, emitted = [], set()

    def emit_temps(expr):
        for symbol, temp in named:
            if symbol in expr.free_symbols and symbol not in emitted:
                emit_temps(temp)
                lines.append((symbol, temp))
                emitted.add(symbol)

    for step, expr in zip(steps, reduced):
        expr = expr.xreplace(inline).xreplace(renumber)
        emit_temps(expr)
        lines.append((step.symbol, expr))
    return lines


def steps_source(network: Network) -> str:
    """`def steps(**arrays)`: every named step of the derivation, by name (for reports).

    Not part of the generated modules; `symprop check` appends it to one compiled in memory.
    """
    derivation = symbolic.derive(network)
    names = (network.input, network.target) + network.given + network.parameters
    result = "{" + ", ".join(f'"{s.name}": {s.name}' for s in derivation.steps) + "}"
    printer = GradientPrinter(layout=network.layout)
    source, _ = _function(printer, derivation, "steps", names, [s.symbol for s in derivation.steps],
                          "Every named step of the derivation.", result, validate=False)
    return source + _helpers(printer)


def loss_source(network: Network) -> tuple[str, tuple]:
    """`def _loss_positional(x, y, W1, ...)`: the loss, its arrays by position, unchecked; and their
    order. Not part of the generated modules: `symprop check` appends it to the one it compiles in
    memory and calls it thousands of times (Python matches keyword arguments to keyword-only
    parameters one by one: for a network of hundreds of arrays, that matching cost more than the
    loss itself)."""
    derivation = symbolic.derive(network)
    names = (network.input, network.target) + network.given + network.parameters
    printer = GradientPrinter(layout=network.layout)
    source, order = _function(printer, derivation, "_loss_positional", names, [derivation.loss],
                              "The loss, its arrays by position.", f"float({derivation.loss.name})",
                              validate=False, positional=True)
    return source + _helpers(printer), order


def _helpers(printer) -> str:
    """The helpers a function appended to a generated module uses: those the module's own
    functions need may differ (its steps are all results, so no convolution of `steps` is in
    pooling order, `codegen.pooled`). Defined again, the same functions."""
    return "".join("\n\n" + helper_source(name) for name in sorted(printer.helpers))


def _function(printer, derivation: Derivation, name: str, arguments: tuple, wanted: list,
              doc: str, result: str, validate: bool = True, positional: bool = False,
              backend: str = "numpy") -> str:
    steps = needed_steps(derivation.steps, wanted)
    lines = fused(_cse(steps), wanted)
    used = set().union(*(expr.free_symbols for _, expr in lines)) if lines else set()
    network = derivation.network
    arguments = tuple(a for a in arguments if sp.Symbol(a) in used or a == network.input)
    values = ", ".join(arguments) + ("," if len(arguments) == 1 else "")
    signature = ", ".join(f"{a}=None" for a in arguments)
    printer.floats = tuple(a for a in arguments if a not in _data(network))  # labels and tokens are not
    if backend == "numba":  # the steps compiled in a kernel, the checks in Python around it
        printer.learn(lines)
        body = [f"{INDENT}N = {network.input}.shape[0]"] if BATCH in used and network.batch is None else []
        body += [INDENT + line for line in statements(printer, lines, _cse)]
        return (numba_backend.function(name, arguments, values, body, wanted, result, doc, signature, printer.squares),
                arguments)
    lines = pooled(lines, wanted, _shapes(derivation))  # the NumPy code only (Numba loops over pixels)
    body = [f'{INDENT}"""{doc}"""']
    if validate:
        body += [f"{INDENT}if VALIDATE:", f"{INDENT * 2}{values} = _arrays({name!r}, ({values}), unknown)"]
    # the large intermediates of the exported functions in buffers kept between calls
    printer.placements = workspaces.plan(lines, wanted, _shapes(derivation), _data(network)) if validate else {}
    buffers = [place for place in printer.placements.values() if isinstance(place, workspaces.Buffer)]
    if BATCH in used and network.batch is None or any(BATCH in place.shape for place in buffers):
        body.append(f"{INDENT}N = {network.input}.shape[0]")
    if buffers:
        body.append(f"{INDENT}work = _Workspace({name!r})  # the buffers of the large intermediates")
    body += [INDENT + line for line in statements(printer, lines, _cse)]
    if buffers:
        body.append(f"{INDENT}work.keep()  # the buffers, left to the next call")
    printer.placements = {}
    if validate:  # NaN or inf looked for in what was computed; the slow path names the argument
        results = ", ".join(symbol.name for symbol in wanted) + ("," if len(wanted) == 1 else "")
        body += [f"{INDENT}if VALIDATE and not _finite(({results})):",
                 f"{INDENT * 2}_converted({name!r}, ({values}), unknown)  # raises if an argument holds NaN or inf"]
    body.append(f"{INDENT}return {result}")
    header = f"def {name}({', '.join(arguments)}):" if positional else f"def {name}(*, {signature}, **unknown):"
    return header + "\n" + "\n".join(body) + "\n", arguments


def _shapes(derivation: Derivation) -> dict:
    """Every array's shape by symbol: the network's arrays and the derivation's steps."""
    arrays = {sp.Symbol(name): shape for name, shape in derivation.network.shapes(BATCH).items()}
    return arrays | {s.symbol: s.shape for s in derivation.steps}


def _data(network: Network) -> frozenset:
    """The names of the arrays of whole numbers: class labels, tokens."""
    return frozenset(([network.target] if network.loss.labels else []) + ([network.input] if network.tokens else []))


_VALIDATION = "\n\n".join(inspect.getsource(function) for function in (
    runtime._arrays, runtime._signature, runtime._labels_in_range, runtime._finite, runtime._converted,
    runtime._labelled, runtime._fits, runtime._expected, runtime._shape_tuple, runtime._shape))
