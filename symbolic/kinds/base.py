"""What every layer kind is: a `Layer` (one `[[layers]]` table, read) and the `Kind` that defines it.

A kind is one self-describing class: the keys its table takes with their rules and defaults
(`read`), the arrays it reads with their shapes and roles (`arrays`), its forward pass in array
operations (`forward`), the same layer in PyTorch (`torch`), its words (`summary`) and its row of
the README's table (`doc`). The spec reader, the program's front end, the PyTorch reference and
the docs read these; nothing else switches on a layer's kind.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    """One `[[layers]]` table, read and checked. `units` is the layer's output width (for the kinds
    that keep their input's width, that width); the other fields apply to the kinds that take them."""

    units: int
    activation: str = "identity"
    weight: str | None = None  # dense, conv2d
    bias: str | None = None  # dense, conv2d; None: the layer has no bias
    shared_bias: bool = False
    negative_slope: float = 0.01
    kind: str = "dense"
    residual: int = 0  # dense: k >= 1 adds the output of the layer k below (0: none)
    transpose_weight: bool = False  # dense: the layer uses the transpose of its weight
    eps: float = 1e-5  # batchnorm, layernorm
    scale: str | None = None  # batchnorm, layernorm: gamma; None: no scale
    shift: str | None = None  # batchnorm, layernorm: beta; None: no shift
    p: float = 0.0  # dropout: the probability of dropping an entry
    mask: str | None = None  # dropout: the mask's array name
    inputs: int = 0  # the width of the layer's input (flattened: C*H*W for an image)
    input_shape: tuple = ()  # one sample's input: (width,) or an image (C, H, W); () for (inputs,)
    shape: tuple = ()  # one sample's output: (units,) or an image (C, H, W); () for (units,)
    filters: int = 0  # conv2d
    kernel: tuple = ()  # conv2d: (kh, kw); the pools: the window (h, w)
    stride: tuple = (1, 1)  # conv2d, the pools
    padding: tuple = (0, 0)  # conv2d: zero rows and columns on each side
    recurrent: str | None = None  # rnn, lstm: the weight Wh of the previous state
    initial: str | None = None  # rnn, lstm: the initial state's array (N, H); None: zeros
    output: str = "sequence"  # rnn, lstm: "sequence" (N, T, H) or "last" (N, H)
    vocab: int = 0  # embedding: the number of tokens
    heads: int = 1  # attention
    causal: bool = False  # attention: a step attends to itself and the steps before it only
    names: tuple = ()  # attention: its weights Wq, Wk, Wv, Wo and biases bq, bk, bv, bo (None: no biases)

    def __post_init__(self):
        if not self.shape:
            object.__setattr__(self, "shape", (self.units,))
        if not self.input_shape:
            object.__setattr__(self, "input_shape", (self.inputs,))

    @property
    def definition(self) -> Kind:
        """The kind this layer is (`symbolic.kinds.KINDS`)."""
        from . import KINDS
        return KINDS[self.kind]

    @property
    def image(self) -> bool:
        """Whether the layer's output is an image batch (N, C, H, W)."""
        return len(self.shape) == 3

    @property
    def sequence(self) -> bool:
        """Whether the layer's output is a sequence (N, T, features)."""
        return len(self.shape) == 2

    def arrays(self, layout: str) -> tuple[Parameter, ...]:
        """The arrays the layer reads besides its input, in order."""
        return self.definition.arrays(self, layout)

    def weight_shape(self, layout: str) -> tuple:
        """The shape of the layer's named weight array (transposed when it uses W.T)."""
        return next(a.shape for a in self.arrays(layout) if a.name == self.weight)

    @property
    def fan_in(self) -> int:
        """The inputs each output of a weighted layer sums over."""
        return self.definition.fan_in(self)

    @property
    def weights(self) -> tuple[str, ...]:
        """The layer's weight arrays: what `l2` penalises."""
        return tuple(a.name for a in self.arrays("row") if a.role == "weight")

    @property
    def parameters(self) -> tuple[str, ...]:
        """The layer's parameter names, in order (absent ones left out; masks and initial states are
        not parameters)."""
        return tuple(a.name for a in self.arrays("row") if a.differentiated and not a.input)


@dataclass(frozen=True)
class Parameter:
    """An array a layer reads besides its input: its name, shape (one sample's for a `per_sample`
    array, which has the batch axis first in the row layout) and role in words."""

    name: str
    shape: tuple
    role: str  # "weight", "bias", "shared bias", "scale", "shift", "dropout mask"
    key: str  # the layer's key that names it: "weight", "bias", "scale", "mask", ...
    per_sample: bool = False
    differentiated: bool = True  # False: an input such as a mask, never differentiated
    input: bool = False  # given with the input (an initial state): differentiated when the input is


class Kind:
    """A layer kind. Subclasses set `name`, `keys` (what the table takes besides `kind`), `takes`
    (the input it needs: "rows", "images" or "any") and `doc`, and define `read` and `forward`."""

    name: str = ""
    keys: tuple[str, ...] = ()
    takes: str = "any"  # "rows", "images", "rows or images", "sequences", "tokens", "any"
    doc: tuple[str, str, str] = ("", "", "")  # README: keys (defaults), what it computes, PyTorch equivalent
    activated: bool = False  # it has an activation (and a pre-activation z<l>)

    @property
    def article(self) -> str:
        """"a" or "an", as the name is said: an avgpool2d, an rnn (ar-en-en), an lstm (el-es-...)."""
        return "an" if self.name[0] in "aeiou" or self.name in ("rnn", "lstm") else "a"

    def read(self, r, table: dict, prefix: str, l: int, last: bool, widths: list) -> Layer:
        """The layer of `table` (layer `l`, 1-based; `widths[k]` one sample's shape of a_k, a_0 the
        input), through the reader `r` whose `fail` raises the spec error."""
        raise NotImplementedError

    def arrays(self, layer: Layer, layout: str) -> tuple[Parameter, ...]:
        return ()

    def forward(self, f, layer: Layer, l: int, a):
        """Write the layer's forward steps into `f` (a `symbolic.layers.Forward`); its output's symbol."""
        raise NotImplementedError

    def torch(self, t, layer: Layer, a):
        """The same layer in PyTorch: (output, pre-activation or None); `t` holds the tensors by
        name, `F` and `torch` (`symprop.reference`)."""
        raise NotImplementedError

    def summary(self, layer: Layer) -> str:
        """The layer in a few words, for a module's docstring: dense 4 relu, dropout 0.5."""
        return self.name + (f" {layer.activation}" if layer.activation != "identity" else "")

    def plain(self, layer: Layer) -> bool:
        """Whether the layer is said by its width and activation alone (3-4-2, relu/softmax)."""
        return False

    def fan_in(self, layer: Layer) -> int:
        return layer.inputs

    def locals(self, layer: Layer, l: int) -> tuple[str, ...]:
        """Names the layer's generated code defines besides its steps (a loop's values over all
        steps, h1, c1): no array may take them."""
        return ()

    def least_batch(self, layer: Layer) -> int:
        """The fewest samples the layer means something over (batchnorm: 2)."""
        return 1

    def scratch(self, layer: Layer) -> int:
        """Entries per sample a computation of the layer holds beyond its output (im2col columns)."""
        return 0

    def formula(self, network, layer: Layer, l: int, name: str, index: tuple, steps: dict, values: dict) -> str:
        """The formula of entry `index` of the gradient of `name` (an array of this layer), with the
        numbers of a check (`steps`: every step's value, `values`: the arrays'); "" for none."""
        return ""

    def row(self) -> str:
        """The layer's row of the README's table."""
        return "| " + " | ".join((f"`{self.name}`", *self.doc)) + " |"


def pair_words(value: tuple) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"
