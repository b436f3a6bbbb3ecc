"""Network specs: TOML files (or presets) read into a validated, immutable `Network`.

Every rule of the contract's spec section is checked here, and every violation raises
`SpecError` with one line naming the file, the key and the rule. Nothing from a spec is ever
evaluated: names are checked to be identifiers, numbers to be numbers.
"""

from __future__ import annotations

import difflib
import importlib.resources
import keyword
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PRESETS_DIR = Path(str(importlib.resources.files(__package__) / "networks"))  # installed with the package

ACTIVATION_NAMES = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softmax")
LOSS_KINDS = ("squared_error", "cross_entropy", "binary_cross_entropy")
LAYOUTS = ("row", "column")
REDUCTIONS = ("mean", "sum")

# Names the generated code uses for its own intermediates; a spec may not take them.
RESERVED = re.compile(r"^(z|a|delta|t)\d+$|^dL_d|^(N|L|np|arrays)$|^_")


class SpecError(ValueError):
    """A spec that breaks a rule: the message names the file, the key and the rule."""

    def __init__(self, source: str, key: str, rule: str):
        self.source, self.key, self.rule = source, key, rule
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + rule)


@dataclass(frozen=True)
class Layer:
    units: int
    activation: str
    weight: str
    bias: str | None  # None: the layer has no bias
    shared_bias: bool = False
    negative_slope: float = 0.01


@dataclass(frozen=True)
class Loss:
    kind: str
    reduction: str = "mean"
    scale: float = 1.0
    labels: bool = False
    l2: float = 0.0


@dataclass(frozen=True)
class Network:
    name: str
    inputs: int
    layers: tuple[Layer, ...]
    loss: Loss
    description: str = ""
    layout: str = "row"
    batch: int | None = None
    input: str = "x"
    target: str = "y"
    wrt_input: bool = False
    values: dict = field(default_factory=dict, compare=False)
    source: str = "<spec>"  # what error messages name: the spec file as given, or a label
    path: Path | None = field(default=None, compare=False)  # the spec file, resolved; None: text

    @property
    def preset(self) -> bool:
        """Whether the network is one of the presets in symbolic/networks."""
        return self.path is not None and self.path.parent == PRESETS_DIR.resolve()

    @property
    def outputs(self) -> int:
        return self.layers[-1].units

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameter names in order: W1, b1, W2, b2, ... (absent biases left out)."""
        names = []
        for layer in self.layers:
            names.append(layer.weight)
            if layer.bias is not None:
                names.append(layer.bias)
        return tuple(names)

    @property
    def differentiated(self) -> tuple[str, ...]:
        """The arrays `gradients` returns: every parameter, and the input when `wrt_input`."""
        return self.parameters + ((self.input,) if self.wrt_input else ())

    def shapes(self, n="N") -> dict[str, tuple]:
        """Expected shape of every array, the batch size given as `n` (or the spec's batch)."""
        if self.batch is not None:
            n = self.batch
        row = self.layout == "row"
        shapes = {self.input: (n, self.inputs) if row else (self.inputs,)}
        if self.loss.labels:
            shapes[self.target] = (n,) if row else ()
        else:
            shapes[self.target] = (n, self.outputs) if row else (self.outputs,)
        fan_in = self.inputs
        for layer in self.layers:
            shapes[layer.weight] = (fan_in, layer.units) if row else (layer.units, fan_in)
            if layer.bias is not None:
                shapes[layer.bias] = () if layer.shared_bias else (layer.units,)
            fan_in = layer.units
        return shapes


# ---------------------------------------------------------------------------------------------
# Loading


def as_network(network) -> Network:
    """`network` itself, or the preset or spec file it names; TypeError for anything else."""
    if isinstance(network, Network):
        return network
    if isinstance(network, (str, os.PathLike)):
        return load(network)
    raise TypeError(f"expected a Network, a preset name or a spec path, not {type(network).__name__}")


def load(name_or_path) -> Network:
    """A preset by name, or a spec file by path; raises `SpecError` on any broken rule."""
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        preset = PRESETS_DIR / f"{name_or_path}.toml"
        if not preset.exists():
            known = ", ".join(presets())
            raise SpecError(str(name_or_path), "", f"no such preset or spec file (presets: {known})")
        path = preset
    network = loads(_read(path), source=str(path))
    object.__setattr__(network, "path", path.resolve())
    return network


def _read(path: Path) -> str:
    """The text of a spec file; raises `SpecError` naming the file when it cannot be read."""
    try:
        return path.read_bytes().decode("utf-8")
    except IsADirectoryError:
        reason = "is a directory, not a spec file"
    except FileNotFoundError:
        reason = "no such file"
    except OSError as error:
        reason = f"cannot read the file ({error.strerror or error})"
    except UnicodeDecodeError as error:
        reason = f"not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start})"
    except ValueError as error:  # a path the OS cannot represent, such as one with a NUL byte
        reason = f"not a usable file path ({error})"
    raise SpecError(str(path), "", reason)


def presets() -> list[str]:
    """The names of the preset networks, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def loads(text: str, source: str = "<spec>") -> Network:
    """A network from the text of a TOML spec."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(source, "", f"invalid TOML: {error}") from None
    return _Reader(source).network(document)


_TOP_KEYS = ("name", "description", "layout", "inputs", "batch", "input", "target",
             "wrt_input", "layers", "loss", "values")
_LAYER_KEYS = ("units", "activation", "weight", "bias", "shared_bias", "negative_slope")
_LOSS_KEYS = ("kind", "reduction", "scale", "labels", "l2")


class _Reader:
    """Reads one TOML document, raising `SpecError` at the first broken rule."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, rule: str):
        raise SpecError(self.source, key, rule)

    def keys(self, table: dict, allowed: tuple, prefix: str = ""):
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(allowed)}"
                self.fail(prefix + key, "unknown key" + hint)

    def get(self, table, key, kind, default=None, prefix="", required=False):
        if key not in table:
            if required:
                self.fail(prefix + key, "required key is missing")
            return default
        value = table[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(prefix + key, f"must be an integer, not {_describe(value)}")
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(prefix + key, f"must be a number, not {_describe(value)}")
            if not np.isfinite(value):
                self.fail(prefix + key, "must be a finite number")
            value = float(value)
        if kind in (str, bool, dict, list) and not isinstance(value, kind):
            self.fail(prefix + key, f"must be {_KIND_WORDS[kind]}, not {_describe(value)}")
        return value

    def choice(self, table, key, options, default, prefix=""):
        value = self.get(table, key, str, default, prefix)
        if value not in options:
            close = difflib.get_close_matches(value, options, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.fail(prefix + key, f"must be one of {', '.join(options)}, not '{value}'{hint}")
        return value

    def size(self, table, key, prefix="", required=True, default=None):
        value = self.get(table, key, int, default, prefix, required)
        if value is not None and value < 1:
            self.fail(prefix + key, f"must be at least 1, not {value}")
        return value

    def network(self, doc: dict) -> Network:
        self.keys(doc, _TOP_KEYS)
        name = self.get(doc, "name", str, required=True)
        layout = self.choice(doc, "layout", LAYOUTS, "row")
        batch = self.size(doc, "batch", required=False)
        if batch is not None and layout == "column":
            self.fail("batch", "only the row layout has a batch; the column layout is one sample")
        layers = self.get(doc, "layers", list, required=True)
        if not layers:
            self.fail("layers", "at least one layer is required")
        loss = self.loss(self.get(doc, "loss", dict, required=True))
        network = Network(
            name=name,
            description=self.get(doc, "description", str, ""),
            layout=layout,
            inputs=self.size(doc, "inputs"),
            batch=batch,
            input=self.get(doc, "input", str, "x"),
            target=self.get(doc, "target", str, "y"),
            wrt_input=self.get(doc, "wrt_input", bool, False),
            layers=tuple(self.layer(table, i, len(layers)) for i, table in enumerate(layers)),
            loss=loss,
            source=self.source,
        )
        self.check_names(network)
        self.check_loss(network)
        values = self.values(network, self.get(doc, "values", dict, {}))
        object.__setattr__(network, "values", values)
        return network

    def layer(self, table, index: int, count: int) -> Layer:
        prefix = f"layers[{index + 1}]."
        if not isinstance(table, dict):
            self.fail(prefix[:-1], f"must be a table, not {_describe(table)}")
        self.keys(table, _LAYER_KEYS, prefix)
        activation = self.choice(table, "activation", ACTIVATION_NAMES, "identity", prefix)
        if activation == "softmax" and index != count - 1:
            self.fail(prefix + "activation", "softmax is allowed on the last layer only")
        units = self.size(table, "units", prefix)
        if activation == "softmax" and units == 1:
            self.fail(prefix + "units", "a softmax over one class is always 1 (its cross-entropy always 0): "
                      "at least 2 units; for one class use sigmoid with binary_cross_entropy")
        bias = table.get("bias", f"b{index + 1}")
        if bias is not False and not isinstance(bias, str):
            self.fail(prefix + "bias", f"must be a name or false, not {_describe(bias)}")
        shared = self.get(table, "shared_bias", bool, False, prefix)
        if shared and bias is False:
            self.fail(prefix + "shared_bias", "a layer without a bias cannot share it")
        slope = self.get(table, "negative_slope", float, 0.01, prefix)
        if "negative_slope" in table and activation != "leaky_relu":
            self.fail(prefix + "negative_slope", "applies to leaky_relu only")
        return Layer(
            units=units,
            activation=activation,
            weight=self.get(table, "weight", str, f"W{index + 1}", prefix),
            bias=None if bias is False else bias,
            shared_bias=shared,
            negative_slope=slope,
        )

    def loss(self, table) -> Loss:
        self.keys(table, _LOSS_KEYS, "loss.")
        if "kind" not in table:
            self.fail("loss.kind", "required key is missing")
        return Loss(
            kind=self.choice(table, "kind", LOSS_KINDS, None, "loss."),
            reduction=self.choice(table, "reduction", REDUCTIONS, "mean", "loss."),
            scale=self.get(table, "scale", float, 1.0, "loss."),
            labels=self.get(table, "labels", bool, False, "loss."),
            l2=self.get(table, "l2", float, 0.0, "loss."),
        )

    def check_loss(self, net: Network):
        last = net.layers[-1].activation
        if net.loss.kind == "cross_entropy" and last != "softmax":
            self.fail("loss.kind", f"cross_entropy needs a softmax last layer, not {last}")
        if net.loss.kind == "binary_cross_entropy" and last != "sigmoid":
            self.fail("loss.kind", f"binary_cross_entropy needs a sigmoid last layer, not {last}")
        if net.loss.labels and net.loss.kind != "cross_entropy":
            self.fail("loss.labels", "integer labels apply to cross_entropy only")
        if net.loss.l2 < 0:
            self.fail("loss.l2", f"must be at least 0, not {net.loss.l2}")

    def check_names(self, net: Network):
        keys = {"name": net.name, "input": net.input, "target": net.target}
        for i, layer in enumerate(net.layers, 1):
            keys[f"layers[{i}].weight"] = layer.weight
            if layer.bias is not None:
                keys[f"layers[{i}].bias"] = layer.bias
        seen = {}
        for key, value in keys.items():
            if not value.isidentifier() or not value.isascii():
                self.fail(key, f"'{value}' is not a Python identifier")
            if keyword.iskeyword(value) or keyword.issoftkeyword(value):
                self.fail(key, f"'{value}' is a Python keyword")
            if key == "name":
                continue
            if RESERVED.match(value):
                self.fail(key, f"'{value}' is reserved for the generated code's intermediates")
            if value in seen:
                self.fail(key, f"'{value}' is already the name of {seen[value]}")
            seen[value] = key

    def values(self, net: Network, table: dict) -> dict:
        """The spec's concrete arrays, checked against the network's shapes."""
        shapes = net.shapes()
        self.keys(table, tuple(shapes), "values.")
        arrays, n, n_from = {}, None, None  # the batch size N, once an array fixes it
        for name, value in table.items():
            key = f"values.{name}"
            try:
                array = np.array(value, dtype=float)
            except (TypeError, ValueError):
                self.fail(key, "must be a number or nested lists of numbers of equal lengths")
            if not np.all(np.isfinite(array)):
                self.fail(key, "must hold finite numbers only")
            expected, why = shapes[name], ""  # a fixed batch is in place of N already
            if n is not None and "N" in expected:
                expected = tuple(n if d == "N" else d for d in expected)
                why = f" (N = {n}, the samples in {n_from})"
            if not _fits(array.shape, expected):
                self.fail(key, f"has shape {array.shape}, expected {_words(expected)}{why}")
            if "N" in expected:
                n, n_from = array.shape[expected.index("N")], key
            if name == net.target and net.loss.labels:
                if not np.all(array == np.round(array)) or np.any(array < 0) or np.any(array >= net.outputs):
                    self.fail(key, f"labels must be integers from 0 to {net.outputs - 1}")
                array = array.astype(np.int64)
            arrays[name] = array
        return arrays


_KIND_WORDS = {str: "a string", bool: "true or false", dict: "a table", list: "an array of tables"}


def _fits(shape: tuple, expected: tuple) -> bool:
    """Whether `shape` is `expected`, where an "N" in `expected` stands for any length."""
    return len(shape) == len(expected) and all(want in ("N", got) for got, want in zip(shape, expected))


def _words(shape: tuple) -> str:
    """A shape as messages write it: (N, 3), (4,), ()."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _describe(value) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)
