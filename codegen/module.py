"""The source of a generated gradient module, from a network's matrix-level derivation.

Each function of the module (`forward`, `loss`, `gradients`, `loss_and_gradients`) is the list
of derivation steps it needs (the others are dropped), common subexpressions named `t0, t1, ...`
by `sympy.cse`, each line printed by `GradientPrinter`. The output depends only on the spec:
no timestamps, no paths but the spec's, sorted and fixed order everywhere.
"""

from __future__ import annotations

import shlex

import sympy as sp

from .. import symbolic
from ..symbolic.derive import Derivation, Step
from ..symbolic.spec import Network, as_network

from .printer import HELPERS, GradientPrinter, stable_forms

INDENT = "    "
_FUNCTIONS = ("forward", "loss", "gradients", "loss_and_gradients")


def generate(network: Network) -> str:
    """The module source that `symprop generate` writes for `network` (or the preset or spec it names)."""
    network = as_network(network)
    derivation = symbolic.derive(network)
    printer = GradientPrinter(layout=network.layout)
    net = network
    forward_names = (net.input,) + net.masks + net.parameters
    all_names = (net.input, net.target) + net.masks + net.parameters
    scalars = {name for name, shape in net.shapes("N").items() if shape == ()}  # shared biases
    returns = "{" + ", ".join(f'"{name}": np.asarray({sym.name})' if name in scalars else f'"{name}": {sym.name}'
                              for name, sym in derivation.gradients.items()) + "}"
    loss_value = f"float({derivation.loss.name})"

    functions = [
        _function(printer, derivation, "forward", forward_names, [derivation.output],
                  f"The network output yhat = {derivation.output.name}, from the input and the parameters.",
                  derivation.output.name),
        _function(printer, derivation, "loss", all_names, [derivation.loss],
                  "The loss L, from the input, the target and the parameters.", loss_value),
        _function(printer, derivation, "gradients", all_names, list(derivation.gradients.values()),
                  "dL/d(array) for every parameter" + (" and the input" if net.wrt_input else "")
                  + ", by name.", returns),
        _function(printer, derivation, "loss_and_gradients", all_names,
                  [derivation.loss, *derivation.gradients.values()],
                  "The loss and the gradients, from one forward pass.", f"{loss_value}, {returns}"),
    ]
    shapes = net.shapes("N")
    classes = (f"CLASSES = {net.outputs}  # the target holds class labels 0 to {net.outputs - 1}" if net.loss.labels
               else "CLASSES = None  # the target holds values, not class labels")
    arguments = {name: args for name, (_, args) in zip(_FUNCTIONS, functions)}
    parts = [
        _header(net) + "\n" + HASH_PREFIX + HASH_BLANK,
        "import numpy as np\n",
        f"PARAMETERS = {tuple(net.parameters)!r}\n"
        f"DIFFERENTIATED = {tuple(net.differentiated)!r}\n"
        "SHAPES = {\n" + "".join(f"    {name!r}: {shape!r},\n" for name, shape in shapes.items()) + "}\n"
        f"INPUT, TARGET = {net.input!r}, {net.target!r}\n"
        f"{classes}\n"
        "VALIDATE = True  # False skips the argument checks of every function\n"
        "CHECK_FINITE = True  # False skips the one pass over the arrays that looks for NaN and inf\n"
        "ARGUMENTS = {\n" + "".join(f"    {f!r}: {a!r},\n" for f, a in arguments.items()) + "}\n"
        "_EXPECTED = {}  # (function, input length) -> (type, shape, dtype kind) of each argument\n",
        *(source for source, _ in functions),
        _VALIDATION,
        *(HELPERS[name] for name in sorted(printer.helpers)),
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


def _header(net: Network) -> str:
    if all(layer.kind == "dense" and not layer.residual and not layer.transpose_weight for layer in net.layers):
        layers = "-".join(str(n) for n in (net.inputs, *(layer.units for layer in net.layers)))
        acts = "/".join(layer.activation for layer in net.layers)
        summary = f"{layers}, {acts}"
    else:
        summary = f"{net.inputs} inputs; " + ", ".join(_describe(layer) for layer in net.layers)
    lines = [
        f"Gradients of the network {net.name}: {summary}, {net.loss.kind} ({net.layout} layout).",
        "",
        f"Generated by symprop from {spec_path(net)}; do not edit.",
        f"Regenerate with: symprop generate {spec_argument(net)}",
    ]
    if net.description:
        lines += ["", net.description]
    lines += ["", f"Each line below is a step of `symprop derive {spec_argument(net)}`."]
    return '"""' + _docstring_safe("\n".join(lines)) + '\n"""'


def _describe(layer) -> str:
    """A layer in a few words: dense 4 relu (+a1), batchnorm tanh, dropout 0.5."""
    if layer.kind == "dropout":
        return f"dropout {layer.p:g}"
    words = f"dense {layer.units}" if layer.kind == "dense" else layer.kind
    if layer.activation != "identity":
        words += f" {layer.activation}"
    if layer.transpose_weight:
        words += f" ({layer.weight}.T)"
    if layer.residual:
        words += f" (residual, k = {layer.residual})"
    return words


def _docstring_safe(text: str) -> str:
    """Free text (a spec's description or path) that cannot end the docstring it stands in."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _needed(steps: tuple[Step, ...], wanted: list) -> list[Step]:
    """The steps that `wanted` depends on, in order."""
    needed, kept = set(wanted), []
    for step in reversed(steps):
        if step.symbol in needed:
            kept.append(step)
            needed |= step.expr.free_symbols
    return kept[::-1]


def _worth_naming(expr: sp.Expr) -> bool:
    """Whether a common subexpression is worth a line of its own."""
    if expr.is_Relational or expr.is_Atom:
        return False
    if expr.could_extract_minus_sign() and (-expr).is_Atom:
        return False
    return bool(expr.free_symbols - {sp.Symbol("N", integer=True, positive=True)})


def _cse(steps: list[Step]) -> list[tuple[sp.Symbol, sp.Expr]]:
    """(symbol, expression) lines: the steps with common subexpressions named t0, t1, ..."""
    temps, reduced = sp.cse([stable_forms(s.expr) for s in steps], symbols=sp.numbered_symbols("t"), order="none")
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
    names = (network.input, network.target) + network.masks + network.parameters
    result = "{" + ", ".join(f'"{s.name}": {s.name}' for s in derivation.steps) + "}"
    source, _ = _function(GradientPrinter(layout=network.layout), derivation, "steps", names, [s.symbol for s in derivation.steps],
                          "Every named step of the derivation.", result, validate=False)
    return source


def _function(printer, derivation: Derivation, name: str, arguments: tuple, wanted: list,
              doc: str, result: str, validate: bool = True) -> str:
    steps = _needed(derivation.steps, wanted)
    lines = _cse(steps)
    used = set().union(*(expr.free_symbols for _, expr in lines)) if lines else set()
    network = derivation.network
    arguments = tuple(a for a in arguments if sp.Symbol(a) in used or a == network.input)
    values = ", ".join(arguments) + ("," if len(arguments) == 1 else "")
    signature = ", ".join(f"{a}=None" for a in arguments)
    body = [f'{INDENT}"""{doc}"""']
    if validate:
        body += [f"{INDENT}if VALIDATE:", f"{INDENT * 2}{values} = _arrays({name!r}, ({values}), unknown)"]
    if any(s.name == "N" for s in used) and network.batch is None:
        body.append(f"{INDENT}N = {network.input}.shape[0]")
    for symbol, expr in lines:
        body.append(f"{INDENT}{symbol.name} = {printer.doprint(expr)}")
    body.append(f"{INDENT}return {result}")
    return f"def {name}(*, {signature}, **unknown):\n" + "\n".join(body) + "\n", arguments


_VALIDATION = '''def _arrays(function, values, unknown):
    \"\"\"The arguments of `function`, checked against SHAPES (N is the input's length).

    The common case (the NumPy float arrays of an earlier call's shapes, labels in range, finite
    values) costs a few microseconds and one pass over the arrays (CHECK_FINITE); anything else
    takes the slow path, which converts lists, integers and booleans, and explains errors.
    \"\"\"
    try:
        signature = _signature(values)
    except AttributeError:  # a missing array (None), or a list
        return _converted(function, values, unknown)
    if (unknown or signature != _EXPECTED.get((function, signature[0][1][:1]))
            or CLASSES and function != "forward"
            and not _labels_in_range(values[ARGUMENTS[function].index(TARGET)])
            or CHECK_FINITE and not _finite(values)):
        return _converted(function, values, unknown)
    return values


def _signature(arrays):
    return [(type(a), a.shape, a.dtype.kind) for a in arrays]


def _labels_in_range(labels):
    return labels.min() >= 0 and labels.max() < CLASSES


def _finite(values):
    """True when no array holds NaN or inf.

    The small arrays are joined and checked in one pass; each large one by its sum of squares
    (BLAS dot, faster than np.isfinite), where False may also mean that the sum overflowed
    (entries beyond 1e154): the slow path then checks entry by entry.
    """
    small = [a for a in values if a.size <= 4096]
    if small:
        joined = np.concatenate(small, axis=None)
        if np.count_nonzero(np.isfinite(joined)) != joined.size:
            return False
    large = [a.reshape(-1) for a in values if a.size > 4096]
    if not large:
        return True
    with np.errstate(all="ignore"):
        return all(np.isfinite(np.dot(a, a)) for a in large)


def _converted(function, values, unknown):
    names = ARGUMENTS[function]
    for name in unknown:
        if name not in SHAPES:
            raise ValueError(f"unknown array {name!r}; this network's arrays are {', '.join(SHAPES)}")
    result, n = [], None  # n: the batch size N, once the input has fixed it
    for name, array in zip(names, values):
        if array is None:
            raise ValueError(f"missing array {name!r}, expected shape {_expected(name, n)}")
        try:
            array = np.asarray(array)
        except ValueError:  # ragged nested lists
            raise ValueError(f"array {name!r} is not rectangular, expected shape {_expected(name, n)}") from None
        if array.dtype.kind not in "biuf":
            raise ValueError(f"array {name!r} has dtype {array.dtype}, expected real numbers")
        labels = CLASSES and name == TARGET
        if labels and array.dtype.kind not in "iu":
            raise ValueError(f"array {name!r} holds class labels: expected integers, not {array.dtype}")
        if not labels and array.dtype.kind != "f":  # integers and booleans: computed in float64
            array = array.astype(np.float64)
        if not _fits(array.shape, _shape_tuple(SHAPES[name], n)):
            raise ValueError(f"array {name!r} has shape {_shape(array.shape)}, expected {_expected(name, n)}")
        if name == INPUT and SHAPES[name][:1] == ("N",):
            n = array.shape[0]
            if n == 0:
                raise ValueError(f"array {name!r} has shape {_shape(array.shape)}: no samples, "
                                 f"expected {_shape(SHAPES[name])} with N >= 1")
        if labels and not _labels_in_range(array):
            raise ValueError(f"array {name!r} holds class labels from {array.min()} to {array.max()}, "
                             f"expected labels from 0 to {CLASSES - 1}")
        if CHECK_FINITE and not np.isfinite(array).all():
            where = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(f"array {name!r} of shape {_shape(array.shape)} holds {array[tuple(where)]}"
                             f"{' at ' + str(list(map(int, where))) if array.ndim else ''}, expected finite numbers")
        result.append(array)
    if len(_EXPECTED) < 64:
        _EXPECTED[(function, result[0].shape[:1])] = _signature(result)
    return result


def _fits(shape, expected):
    \"\"\"Whether `shape` is `expected`, where an "N" left in `expected` stands for any length.\"\"\"
    return len(shape) == len(expected) and all(want in ("N", got) for got, want in zip(shape, expected))


def _expected(name, n):
    \"\"\"The expected shape of an array, in words: N stays N until the input fixes it.\"\"\"
    if n is None or "N" not in SHAPES[name]:
        return _shape(SHAPES[name])
    return f"{_shape(SHAPES[name], n)} (N = {n}, the samples in {INPUT!r})"


def _shape_tuple(shape, n):
    \"\"\"`shape` with the batch size n in place of N (N stays while n is None).\"\"\"
    return shape if n is None else tuple(n if d == "N" else d for d in shape)


def _shape(shape, n=None):
    shape = _shape_tuple(shape, n)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
'''
