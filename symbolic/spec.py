"""Network specs: TOML files (or presets) read into a validated, immutable `Network`.

Every rule of the contract's spec section is checked here, and every violation raises
`SpecError` with one line naming the file, the key and the rule. Nothing from a spec is ever
evaluated: names are checked to be identifiers, numbers to be numbers.
"""

from __future__ import annotations

import difflib
import errno
import importlib.resources
import keyword
import math
import os
import stat
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .kinds import KINDS, Layer
from .names import module_name_problem, reserved

PRESETS_DIR = Path(str(importlib.resources.files(__package__) / "networks"))  # installed with the package

ACTIVATION_NAMES = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softmax")
LOSS_KINDS = ("squared_error", "cross_entropy", "binary_cross_entropy", "multiclass_hinge")
LAYER_KINDS = tuple(KINDS)
LAYOUTS = ("row", "column")
REDUCTIONS = ("mean", "sum")



class SpecError(ValueError):
    """A spec that breaks a rule: the message names the file, the key and the rule."""

    def __init__(self, source: str, key: str, rule: str):
        self.source, self.key, self.rule = source, key, rule
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + rule)


@dataclass(frozen=True)
class Loss:
    kind: str
    reduction: str = "mean"
    scale: float = 1.0
    labels: bool = False
    l2: float = 0.0
    margin: float = 1.0  # multiclass_hinge
    mask: str | None = None  # over a sequence: a data array (N, T) of 0/1, a masked step counts 0


@dataclass(frozen=True)
class Network:
    name: str
    inputs: int | tuple  # a width, an image's (C, H, W), a sequence's (T, D) or tokens' (T,)
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
    def input_shape(self) -> tuple:
        """One sample's input: (width,), (C, H, W), (T, D) or (T,) tokens."""
        return self.inputs if isinstance(self.inputs, tuple) else (self.inputs,)

    @property
    def tokens(self) -> bool:
        """Whether the input is a sequence of integer tokens (N, T)."""
        return isinstance(self.inputs, tuple) and len(self.inputs) == 1

    @property
    def outputs(self) -> int:
        return self.layers[-1].units

    @property
    def states(self) -> tuple[str, ...]:
        """The initial states given with the input (an rnn's `initial`)."""
        return tuple(dict.fromkeys(array.name for layer in self.layers for array in layer.arrays(self.layout)
                                   if array.input))

    @property
    def given(self) -> tuple[str, ...]:
        """The arrays passed with the input, besides the parameters: masks and initial states."""
        return self.masks + self.states

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameter names in order: W1, b1, W2, b2, ... (absent biases left out, a weight used
        by two layers named once)."""
        return tuple(dict.fromkeys(name for layer in self.layers for name in layer.parameters))

    @property
    def weights(self) -> tuple[str, ...]:
        """The weight matrices (what `l2` penalises), each once."""
        return tuple(dict.fromkeys(name for layer in self.layers for name in layer.weights))

    def roles(self) -> dict[str, str]:
        """What each array is, in words: input, target, weight, bias, ... (see `using`)."""
        roles = {self.input: "input", self.target: "target"}
        if self.loss.mask:
            roles[self.loss.mask] = "mask of the steps the loss counts"
        for layer in self.layers:
            for array in layer.arrays(self.layout):
                roles.setdefault(array.name, array.role)
        return roles

    def using(self, name: str) -> tuple[int, ...]:
        """The 1-based positions of the layers that use the array `name`."""
        return tuple(l for l, layer in enumerate(self.layers, 1)
                     if any(array.name == name for array in layer.arrays(self.layout)))

    @property
    def masks(self) -> tuple[str, ...]:
        """The inputs never differentiated: the dropout masks, the loss's mask over the steps."""
        return tuple(array.name for layer in self.layers for array in layer.arrays(self.layout)
                     if not array.differentiated) + ((self.loss.mask,) if self.loss.mask else ())

    @property
    def keep(self) -> dict[str, float]:
        """Each dropout mask's probability of keeping an entry, by name."""
        return {layer.mask: 1 - layer.p for layer in self.layers if layer.mask is not None}

    @property
    def differentiated(self) -> tuple[str, ...]:
        """The arrays `gradients` returns: every parameter, and the input (and the initial states)
        when `wrt_input`."""
        return self.parameters + ((self.input, *self.states) if self.wrt_input else ())

    def least_batch(self) -> int:
        """The fewest samples every layer means something over (a batchnorm over rows: 2)."""
        return max(layer.definition.least_batch(layer) for layer in self.layers)

    def shapes(self, n="N") -> dict[str, tuple]:
        """Expected shape of every array, the batch size given as `n` (or the spec's batch)."""
        if self.batch is not None:
            n = self.batch
        row = self.layout == "row"
        shapes = {self.input: (n, *self.input_shape) if row else self.input_shape}
        out = self.layers[-1].shape  # (K,), or (T, K) for a sequence
        if self.loss.labels:
            shapes[self.target] = (n, *out[:-1]) if row else ()
        else:
            shapes[self.target] = (n, *out) if row else out
        if self.loss.mask:  # the steps of the output sequence that count
            shapes[self.loss.mask] = (n, out[0])
        arrays = [array for layer in self.layers for array in layer.arrays(self.layout)]
        for array in sorted(arrays, key=lambda array: array.differentiated and not array.input):  # masks, states first
            shape = (n, *array.shape) if array.per_sample and row else array.shape
            shapes.setdefault(array.name, shape)
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
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"load takes a preset name or a spec path, not {type(name_or_path).__name__}")
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


_CONTROL_NAMES = {"\0": "NUL", "\r": "carriage return", "\x1b": "escape", "\x7f": "delete"}
MAX_DIMENSION = 2**31 - 1  # a width, a batch size, a kernel: what NumPy's shapes hold on every platform
MAX_ENTRIES = 2**31  # an array of more entries is refused before anything is allocated
MAX_NUMBER = 1e12  # a number of the spec (a scale, a slope, l2, eps): beyond this, no network is meant
MAX_FILE_BYTES = 16 * 2**20  # spec and data files: regular files of at most 16 MiB


class NotReadable(ValueError):
    """Why a spec or data file is not read: not a regular file, or too large."""


def read_file(path) -> bytes:
    """The bytes of a regular file of at most 16 MiB: a FIFO, a device (/dev/zero) or a larger
    file raises `NotReadable` before anything is read (a FIFO would block, /dev/zero never ends);
    OSError for a missing or unreadable file."""
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise NotReadable("is not a regular file (a FIFO, a device or a socket)")
    if info.st_size > MAX_FILE_BYTES:
        raise NotReadable(f"is larger than 16 MiB ({info.st_size:,} bytes)")
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise NotReadable("is larger than 16 MiB")
    return data


def _read(path: Path) -> str:
    """The text of a spec file; raises `SpecError` naming the file when it cannot be read."""
    try:
        return read_file(path).decode("utf-8-sig")  # a byte-order mark (Windows editors) is no TOML error
    except NotReadable as error:
        reason = str(error)
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
    if isinstance(text, (bytes, bytearray)):
        raise TypeError("loads takes the spec's text (a str); decode bytes first, or give the path to load")
    if not isinstance(text, str):
        raise TypeError(f"loads takes the spec's text (a str), not {type(text).__name__}")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(source, "", f"invalid TOML: {error}") from None
    except RecursionError:
        raise SpecError(source, "", "invalid TOML: arrays or tables nested too deeply") from None
    return _Reader(source).network(document)


_TOP_KEYS = ("name", "description", "layout", "inputs", "batch", "input", "target",
             "wrt_input", "layers", "loss", "values")
_LOSS_KEYS = ("kind", "reduction", "scale", "labels", "l2", "margin", "mask")


class _Reader:
    """Reads one TOML document, raising `SpecError` at the first broken rule."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, rule: str):
        raise SpecError(self.source, key, rule)

    def keys(self, table: dict, allowed: tuple, prefix: str = "", kind: str = ""):
        for key in table:
            if key not in allowed:
                other = [k for k, definition in KINDS.items() if key in definition.keys] if kind else []
                close = difflib.get_close_matches(key, allowed, n=1)
                if other:
                    article = KINDS[kind].article
                    hint = f" for {article} {kind} layer (it applies to {', '.join(other)})"
                elif close:
                    hint = f"; did you mean '{close[0]}'?"
                else:
                    hint = f"; known keys: {', '.join(allowed)}"
                self.fail(prefix + key, "unknown key" + hint)

    def get(self, table, key, kind, default=None, prefix="", required=False):
        if key not in table:
            if required:
                self.fail(prefix + key, "required key is missing")
            return default
        value = table[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(prefix + key, f"must be an integer, not {_describe(value)}")
        if kind is int and abs(value) > MAX_DIMENSION:
            self.fail(prefix + key, f"must be at most {MAX_DIMENSION:,} (2**31 - 1), not {value:.3g}")
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(prefix + key, f"must be a number, not {_describe(value)}")
            if isinstance(value, float) and not np.isfinite(value):
                self.fail(prefix + key, "must be a finite number")
            if abs(value) > MAX_NUMBER:  # a Python int of any size compares exactly
                self.fail(prefix + key, f"must be at most {MAX_NUMBER:g} in magnitude, not {float(value):.3g}")
            value = float(value)
        if kind in (str, bool, dict, list) and not isinstance(value, kind):
            self.fail(prefix + key, f"must be {_KIND_WORDS[kind]}, not {_describe(value)}")
        return value

    def text(self, table, key):
        """A string of plain text: tabs and line breaks, no other control character (a NUL makes
        the module's source uncompilable; a carriage return is read back as a line break)."""
        value = self.get(table, key, str, "")
        bad = next((ch for ch in value if unicodedata.category(ch) == "Cc" and ch not in "\t\n"), None)
        if bad is not None:
            name = _CONTROL_NAMES.get(bad, "a control character")
            self.fail(key, f"holds the control character U+{ord(bad):04X} ({name}) at position "
                           f"{value.index(bad)}: plain text only (tabs and line breaks allowed)")
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
        layout = self.layout = self.choice(doc, "layout", LAYOUTS, "row")
        batch = self.batch = self.size(doc, "batch", required=False)
        if batch is not None and layout == "column":
            self.fail("batch", "only the row layout has a batch; the column layout is one sample")
        layers = self.get(doc, "layers", list, required=True)
        if not layers:
            self.fail("layers", "at least one layer is required")
        loss = self.loss(self.get(doc, "loss", dict, required=True))
        inputs = self.inputs(doc)
        self.tokens = isinstance(inputs, tuple) and len(inputs) == 1
        network = Network(
            name=name,
            description=self.text(doc, "description"),
            layout=layout,
            inputs=inputs,
            batch=batch,
            input=self.get(doc, "input", str, "x"),
            target=self.get(doc, "target", str, "y"),
            wrt_input=self.get(doc, "wrt_input", bool, False),
            layers=self.layers(layers, inputs),
            loss=loss,
            source=self.source,
        )
        self.check_names(network)
        self.check_sizes(network)
        self.check_loss(network)
        values = self.values(network, self.get(doc, "values", dict, {}))
        object.__setattr__(network, "values", values)
        return network

    def inputs(self, doc: dict):
        """`inputs`: a width, an image's [C, H, W], a sequence's [T, D] or tokens' [T] (a tuple)."""
        value = doc.get("inputs")
        if not isinstance(value, list):
            return self.size(doc, "inputs")
        if not 1 <= len(value) <= 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in value):
            self.fail("inputs", f"must be a width, tokens' [steps], a sequence's [steps, features] or an image's "
                      f"[channels, height, width] (one, two or three whole numbers >= 1), not {value!r}")
        if any(d > MAX_DIMENSION for d in value):
            self.fail("inputs", f"must be at most {MAX_DIMENSION:,} (2**31 - 1) in each dimension")
        if self.layout == "column":
            what, shape = {1: ("tokens", "(N, T)"), 2: ("sequences", "(N, T, D)"), 3: ("images", "(N, C, H, W)")}[len(value)]
            self.fail("inputs", f"{what} need the row layout (x of shape {shape}); the column layout is one flat sample")
        return tuple(value)

    def layers(self, tables: list, inputs) -> tuple[Layer, ...]:
        shapes = [inputs if isinstance(inputs, tuple) else (inputs,)]  # shapes[k]: one sample of a_k
        layers = []
        for index, table in enumerate(tables):
            layer = self.layer(table, index, len(tables), shapes)
            layers.append(layer)
            shapes.append(layer.shape)
        if layers[-1].image:
            self.fail(f"layers[{len(layers)}].kind", f"the network's output is an image {_words(layers[-1].shape)} "
                      "per sample; the loss takes rows: end with a flatten layer (and a dense layer)")
        return tuple(layers)

    def layer(self, table, index: int, count: int, widths: list) -> Layer:
        """Layer `index` (from 0); `widths[k]` is one sample's shape of a_k, a_0 the input."""
        prefix = f"layers[{index + 1}]."
        if not isinstance(table, dict):
            self.fail(prefix[:-1], f"must be a table, not {_describe(table)}")
        kind = KINDS[self.choice(table, "kind", LAYER_KINDS, "dense", prefix)]
        self.keys(table, ("kind", *kind.keys), prefix, kind.name)
        self.takes(kind, prefix, index, widths[-1])
        return kind.read(self, table, prefix, index + 1, index == count - 1, widths)

    def form(self, index: int, below: tuple) -> str:
        """What layer `index` (from 0) takes: "tokens", "rows", "sequences" or "images"."""
        if index == 0 and self.tokens:
            return "tokens"
        return {1: "rows", 2: "sequences", 3: "images"}[len(below)]

    def takes(self, kind, prefix: str, index: int, below: tuple) -> None:
        """A spec error when layer `index` cannot take what the layer below gives it."""
        form = self.form(index, below)
        if form in kind.takes or kind.takes == "any" and form != "tokens":
            return
        where = "the input" if index == 0 else f"layer {index}'s output"
        article = kind.article
        needs = {"rows": "rows", "images": "images (N, C, H, W)", "sequences": "sequences (N, T, D)",
                 "tokens": "integer tokens (N, T)", "rows or images": "rows or images",
                 "rows or sequences": "rows"}[kind.takes]
        got = {"rows": f"rows of {below[0]} features", "images": f"an image {_words(below)} per sample",
               "sequences": f"a sequence of {below[0]} steps of {below[-1]} features",
               "tokens": f"a sequence of {below[0]} integer tokens"}[form]
        hint = ""
        if form == "images" and "rows" in kind.takes:
            hint = ": put a flatten layer before it"
        elif form == "tokens":
            hint = ": the first layer of a token input is an embedding"
        elif kind.takes == "images" and index == 0:
            hint = "; images need inputs = [C, H, W]"
        elif kind.takes == "sequences" and index == 0:
            hint = "; a sequence needs inputs = [T, D]"
        elif kind.takes == "tokens":
            hint = ": an embedding is the first layer, its input tokens (inputs = [T])"
        what = f"{article} {kind.name} layer" if "rows" in kind.takes else kind.name
        self.fail(prefix + "kind", f"{what} takes {needs}, but {where} is {got}{hint}")

    def activation(self, table, prefix: str, last: bool) -> tuple[str, float]:
        activation = self.choice(table, "activation", ACTIVATION_NAMES, "identity", prefix)
        if activation == "softmax" and not last:
            self.fail(prefix + "activation", "softmax is allowed on the last layer only")
        slope = self.get(table, "negative_slope", float, 0.01, prefix)
        if "negative_slope" in table and activation != "leaky_relu":
            self.fail(prefix + "negative_slope", "applies to leaky_relu only")
        return activation, slope

    def name(self, table, key: str, default: str, prefix: str) -> str | None:
        """A parameter's name: a string, or false for none."""
        value = table.get(key, default)
        if value is not False and not isinstance(value, str):
            self.fail(prefix + key, f"must be a name or false, not {_describe(value)}")
        return None if value is False else value

    def pair(self, table, key, prefix, default=None, least=1):
        """An int or a [height, width] pair of ints >= `least`, as a tuple."""
        if key not in table:
            if default is None:
                self.fail(prefix + key, "required key is missing")
            return default
        value = table[key]
        pair = value if isinstance(value, list) else [value, value]
        if len(pair) != 2 or any(isinstance(d, bool) or not isinstance(d, int) for d in pair):
            self.fail(prefix + key, f"must be a whole number or a pair [height, width], not {value!r}")
        if min(pair) < least:
            self.fail(prefix + key, f"must be at least {least}, not {value!r}")
        return tuple(pair)

    @staticmethod
    def words(shape: tuple) -> str:
        return _words(shape)

    def loss(self, table) -> Loss:
        self.keys(table, _LOSS_KEYS, "loss.")
        self.loss_keys = set(table)  # a key given for a loss it does not apply to is an error
        if "kind" not in table:
            self.fail("loss.kind", "required key is missing")
        return Loss(
            kind=self.choice(table, "kind", LOSS_KINDS, None, "loss."),
            reduction=self.choice(table, "reduction", REDUCTIONS, "mean", "loss."),
            scale=self.get(table, "scale", float, 1.0, "loss."),
            labels=self.get(table, "labels", bool, False, "loss."),
            l2=self.get(table, "l2", float, 0.0, "loss."),
            margin=self.get(table, "margin", float, 1.0, "loss."),
            mask=self.get(table, "mask", str, None, "loss."),
        )

    def check_loss(self, net: Network):
        kind, layer = net.loss.kind, net.layers[-1]
        last = layer.activation if layer.definition.activated else f"a {layer.kind} layer"
        needs = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(kind)
        if needs is not None:
            if last != needs:
                self.fail("loss.kind", f"{kind} needs a {needs} last layer, not {last}")
            if layer.residual:  # yhat = f(z) + a would not be a probability: its log is undefined
                self.fail(f"layers[{len(net.layers)}].residual", f"{kind} takes the log of the last layer's "
                          f"{needs} output; a residual added to it is no longer a probability")
        if kind == "multiclass_hinge":
            if last != "identity":
                what = (f"the last layer cannot be a {layer.kind} layer" if not layer.definition.activated
                        else f"the last layer's activation must be identity, not {last}")
                self.fail("loss.kind", f"multiclass_hinge scores the last layer's raw outputs: {what}")
            if net.outputs < 2:
                self.fail("loss.kind", "multiclass_hinge needs at least 2 classes (the last layer has 1 unit)")
        elif "margin" in self.loss_keys:
            self.fail("loss.margin", "applies to multiclass_hinge only")
        if net.loss.labels and net.loss.kind not in ("cross_entropy", "multiclass_hinge"):
            self.fail("loss.labels", "integer labels apply to cross_entropy and multiclass_hinge only")
        if net.loss.l2 < 0:
            self.fail("loss.l2", f"must be at least 0, not {net.loss.l2}")
        if net.loss.mask is not None and not layer.sequence:
            self.fail("loss.mask", f"masks the steps of a sequence, but the network's output is rows "
                                   f"{_words(layer.shape)} per sample")
        if layer.sequence and kind == "multiclass_hinge":
            self.fail("loss.kind", "multiclass_hinge scores rows; the network's output is a sequence: use "
                                   "cross_entropy (per step, summed over the steps)")
        if net.tokens and net.wrt_input:
            self.fail("wrt_input", "the input is integer tokens, not differentiated (the embedding's table is)")

    def check_sizes(self, net: Network):
        """No array of more than MAX_ENTRIES entries: a parameter, or one batch of a layer's
        outputs (the spec's batch, or one sample where it is open)."""
        n = net.batch or 1
        arrays = {name: (f"the array {name}", shape) for name, shape in net.shapes(n).items()}
        arrays.update({f"layers[{i}]": (f"layer {i}'s output", (n, *layer.shape) if net.layout == "row" else layer.shape)
                       for i, layer in enumerate(net.layers, 1)})
        for key, (what, shape) in arrays.items():
            entries = math.prod(int(d) for d in shape)
            if entries > MAX_ENTRIES:
                where = key if key.startswith("layers[") else "layers"
                self.fail(where, f"{what} would have {entries:.3g} entries ({' x '.join(map(str, shape))}), more than "
                                 f"2**31")

    def check_names(self, net: Network):
        keys = [("name", (net.name, None)), ("input", (net.input, None)), ("target", (net.target, None))]
        for i, layer in enumerate(net.layers, 1):
            for array in layer.arrays(net.layout):
                keys.append((f"layers[{i}].{array.key}", (array.name, (layer, array) if array.role == "weight" else None)))
        if net.loss.mask is not None:
            keys.append(("loss.mask", (net.loss.mask, None)))
        seen, weights = {}, {}  # weights: name -> (its first layer's number, the array's shape)
        taken = {name: (l, layer) for l, layer in enumerate(net.layers, 1)
                 for name in layer.definition.locals(layer, l)}
        for key, (value, weighted) in keys:  # a list: an attention layer's four biases share the key "bias"
            if not value.isidentifier():
                self.fail(key, f"'{value}' is not a Python identifier")
            if not value.isascii():
                self.fail(key, f"'{value}' is not ASCII: names are ASCII identifiers (Python folds some letters "
                               "of other scripts into others, ﬁ into fi)")
            if keyword.iskeyword(value) or keyword.issoftkeyword(value):
                self.fail(key, f"'{value}' is a Python keyword")
            if key == "name":
                problem = module_name_problem(value)
                if problem:
                    self.fail(key, f"'{value}' {problem}")
                continue
            why = reserved(value)
            if why:
                self.fail(key, f"'{value}' is {why}")
            if value in taken:
                l, layer = taken[value]
                self.fail(key, f"'{value}' is the name layer {l} ({layer.kind}) gives its values over the time "
                               "steps: choose another")
            if weighted is not None and value in weights:  # one array used by two layers
                self._check_tied(key, value, *weighted, *weights[value])
                continue
            if value in seen:
                self.fail(key, f"'{value}' is already the name of {seen[value]}")
            seen[value] = key
            if weighted is not None:
                weights[value] = (key.rsplit(".", 1)[0], weighted[1].shape)

    def _check_tied(self, key: str, name: str, layer: Layer, array, first: str, shape: tuple):
        """A weight name used again: the same array, so the shapes must agree."""
        here = array.shape
        if here != shape:
            hint = "" if layer.transpose_weight or here[::-1] != shape else "; transpose_weight = true uses its transpose"
            self.fail(key, f"'{name}' is the weight of {first} with shape {_words(shape)}; "
                      f"here it needs shape {_words(here)}{hint}")

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
            if name in net.masks and not np.all((array == 0) | (array == 1)):
                what = "the loss's mask" if name == net.loss.mask else "a dropout mask"
                self.fail(key, f"{what} holds 0 (dropped) and 1 (kept) only")
            if name == net.input and net.tokens:
                vocab = net.layers[0].vocab
                if not np.all(array == np.round(array)) or np.any(array < 0) or np.any(array >= vocab):
                    self.fail(key, f"tokens must be integers from 0 to {vocab - 1} (the embedding's vocab)")
                array = array.astype(np.int64)
            if name == net.target and net.loss.kind == "multiclass_hinge" and not net.loss.labels:
                if not (np.all((array == 0) | (array == 1)) and np.all(array.sum(axis=-1) == 1)):
                    self.fail(key, "multiclass_hinge targets are one-hot: a single 1 per sample, 0 elsewhere "
                              "(or labels = true for integer labels)")
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
