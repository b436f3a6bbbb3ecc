"""Test networks: `mlp` for a fixed one, Hypothesis strategies for random specs covering every
activation, loss and layout (and, with `kinds=True`, every layer kind of section 1a but the
convolutional ones, residuals, tied weights and multiclass_hinge); `images` for random
convolutional networks."""

from __future__ import annotations

from hypothesis import strategies as st

from symprop import symbolic
from symprop.symbolic.spec import ACTIVATION_NAMES

HIDDEN = [a for a in ACTIVATION_NAMES if a != "softmax"]


def mlp(inputs: int, *layers: tuple[int, str], loss: str = "squared_error", layout: str = "row",
        labels: bool = False, name: str = "net") -> symbolic.Network:
    """The network of a spec with `layers` given as (units, activation) pairs."""
    lines = [f'name = "{name}"', f'layout = "{layout}"', f"inputs = {inputs}"]
    for units, activation in layers:
        lines += ["[[layers]]", f"units = {units}", f'activation = "{activation}"']
    lines += ["[loss]", f'kind = "{loss}"'] + (["labels = true"] if labels else [])
    return symbolic.loads("\n".join(lines) + "\n")


@st.composite
def specs(draw, max_depth: int = 4, max_width: int = 6, kinds: bool = False) -> str:
    """The TOML text of a random valid network. With `kinds`, it may also hold batchnorm (row layout),
    layernorm and dropout layers between the dense ones, dense residuals where the widths match, a
    weight tied (transposed) to an earlier layer's where the shapes allow, and the multiclass_hinge
    loss. Without, it draws exactly what it always has (dense layers only)."""
    depth = draw(st.integers(1, max_depth))
    layout = draw(st.sampled_from(["row", "column"]))
    kind = draw(st.sampled_from(["squared_error", "cross_entropy", "binary_cross_entropy"]
                                + (["multiclass_hinge"] if kinds else [])))
    widths = [draw(st.integers(1, max_width)) for _ in range(depth + 1)]
    if kinds and depth >= 2 and draw(st.booleans()):  # a mirrored width: room for a tied transposed weight
        mirror = draw(st.integers(2, depth))
        widths[mirror] = widths[mirror - 2]
    lines = ['name = "random_net"', f'layout = "{layout}"', f"inputs = {widths[0]}",
             f"wrt_input = {str(draw(st.booleans())).lower()}"]
    batch = None
    if layout == "row" and draw(st.booleans()):
        batch = draw(st.integers(1, 3))
        lines.append(f"batch = {batch}")
    position, outputs = 0, [widths[0]]  # [[layers]] tables so far; outputs[k]: the width of a_k
    weights = {}  # weight name -> the shape of its array (kinds only)
    for i, units in enumerate(widths[1:], 1):
        last = i == depth
        if last and kind == "cross_entropy":
            activation = "softmax"
        elif last and kind == "binary_cross_entropy":
            activation = "sigmoid"
        elif last and kind == "multiclass_hinge":
            activation = "identity"
        else:
            activation = draw(st.sampled_from(HIDDEN + (["softmax"] if last and units > 1 else [])))
        if activation == "softmax" and units == 1:  # a softmax over one class is a spec error
            units = widths[i] = 2
        if kind == "multiclass_hinge" and last and units == 1:  # so is a hinge over one class
            units = widths[i] = 2
        position += 1
        lines += ["", "[[layers]]", f"units = {units}", f'activation = "{activation}"']
        bias = draw(st.sampled_from(["vector", "shared", "none"]))
        if bias == "shared":
            lines.append("shared_bias = true")
        elif bias == "none":
            lines.append("bias = false")
        if activation == "leaky_relu":
            lines.append(f"negative_slope = {draw(st.sampled_from([0.01, 0.2, 1.5]))}")
        if kinds:
            lines += _kinds_of_dense(draw, layout, position, units, outputs, weights,
                                     residual=not (last and kind in ("cross_entropy", "binary_cross_entropy")))
            outputs.append(units)
            if not last:
                for table in _between(draw, layout, units, batch):
                    position += 1
                    outputs.append(units)
                    lines += ["", "[[layers]]"] + table
    lines += ["", "[loss]", f'kind = "{kind}"',
              f'reduction = "{draw(st.sampled_from(["mean", "sum"]))}"',
              f"scale = {draw(st.sampled_from([1.0, 0.5, 2.0]))}",
              f"l2 = {draw(st.sampled_from([0.0, 0.0, 0.1]))}"]
    if kind in ("cross_entropy", "multiclass_hinge"):
        lines.append(f"labels = {str(draw(st.booleans())).lower()}")
    if kind == "multiclass_hinge":
        lines.append(f"margin = {draw(st.sampled_from([1.0, 0.5]))}")
    return "\n".join(lines) + "\n"


def _kinds_of_dense(draw, layout, position, units, outputs, weights, residual) -> list[str]:
    """The keys of a dense layer beyond what `specs` draws without kinds: a residual (k such that
    a_(position - k) is `units` wide) and a weight tied, transposed, to an earlier layer's."""
    lines = []
    inputs = outputs[-1]
    fits = [k for k in range(1, position + 1) if outputs[position - k] == units]
    if residual and fits and draw(st.booleans()):
        k = draw(st.sampled_from(fits))
        lines.append(f"residual = {'true' if k == 1 and draw(st.booleans()) else k}")
    shape = (inputs, units) if layout == "row" else (units, inputs)
    tied = [name for name, array in weights.items() if array == shape[::-1]]
    if tied and draw(st.booleans()):
        lines += [f'weight = "{draw(st.sampled_from(tied))}"', "transpose_weight = true"]
    else:
        weights[f"W{position}"] = shape
    return lines


def _between(draw, layout, width, batch=None) -> list[list[str]]:
    """Normalization and dropout layers (each a table's lines) after a dense layer `width` wide
    (no batchnorm over a batch of one: a spec error)."""
    choices = (["dropout"] + (["batchnorm"] if layout == "row" and batch != 1 else [])
               + (["layernorm"] if width > 1 else []))
    tables = []
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(choices))
        table = [f'kind = "{kind}"']
        if kind == "dropout":
            table.append(f"p = {draw(st.sampled_from([0.0, 0.5]))}")
        else:
            table.append(f'activation = "{draw(st.sampled_from(HIDDEN))}"')
            table.append(f"eps = {draw(st.sampled_from([1e-5, 1e-3]))}")
            for key in ("scale", "shift"):
                if not draw(st.booleans()):
                    table.append(f"{key} = false")
        tables.append(table)
    return tables


@st.composite
def images(draw) -> str:
    """The TOML text of a random valid convolutional network: an image input [C, H, W], one to
    three image layers (conv2d with any kernel, stride, padding and activation, with or without a
    bias; max or average pooling, overlapping or not; batchnorm per channel, layernorm over C, H, W,
    dropout), a flatten, an optional hidden dense layer and an output layer for any loss."""
    shape = [draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 6))]
    batch = draw(st.sampled_from([None, 2, 3]))
    lines = ['name = "random_cnn"', f"inputs = {shape}", f"wrt_input = {str(draw(st.booleans())).lower()}"]
    lines += [f"batch = {batch}"] if batch else []
    pair = st.one_of(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=2, max_size=2))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv2d", "conv2d", "maxpool2d", "avgpool2d", "batchnorm", "layernorm",
                                     "dropout"]))
        table = [f'kind = "{kind}"']
        if kind == "conv2d":
            kernel, stride, padding = draw(pair), draw(pair), draw(st.sampled_from([0, 1, [1, 0], [0, 2]]))
            k, s, p = (_pair(v) for v in (kernel, stride, padding))
            size = [shape[1] + 2 * p[0], shape[2] + 2 * p[1]]
            if k[0] > size[0] or k[1] > size[1]:
                continue
            shape = [draw(st.integers(1, 3))] + [(size[i] - k[i]) // s[i] + 1 for i in (0, 1)]
            table += [f"filters = {shape[0]}", f"kernel = {kernel}", f"stride = {stride}", f"padding = {padding}",
                      f'activation = "{draw(st.sampled_from(HIDDEN))}"']
            if draw(st.booleans()):
                table.append("bias = false")
        elif kind.endswith("pool2d"):
            window = draw(pair)
            k = _pair(window)
            if k[0] > shape[1] or k[1] > shape[2]:
                continue
            s = [draw(st.integers(1, k[0])), draw(st.integers(1, k[1]))]
            shape = [shape[0]] + [(shape[1 + i] - k[i]) // s[i] + 1 for i in (0, 1)]
            table += [f"size = {window}", f"stride = {s}"]
        elif kind == "dropout":
            table.append(f"p = {draw(st.sampled_from([0.0, 0.5]))}")
        else:
            if kind == "layernorm" and shape[0] * shape[1] * shape[2] == 1:
                continue
            table.append(f'activation = "{draw(st.sampled_from(HIDDEN))}"')
            if not draw(st.booleans()):
                table.append(f'{draw(st.sampled_from(["scale", "shift"]))} = false')
        lines += ["", "[[layers]]"] + table
    lines += ["", "[[layers]]", 'kind = "flatten"']
    if draw(st.booleans()):
        lines += ["", "[[layers]]", f"units = {draw(st.integers(1, 4))}", f'activation = "{draw(st.sampled_from(HIDDEN))}"']
    loss = draw(st.sampled_from(["squared_error", "cross_entropy", "binary_cross_entropy", "multiclass_hinge"]))
    last = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss, "identity")
    units = draw(st.integers(1 if loss in ("squared_error", "binary_cross_entropy") else 2, 3))
    lines += ["", "[[layers]]", f"units = {units}", f'activation = "{last}"', "", "[loss]", f'kind = "{loss}"',
              f'reduction = "{draw(st.sampled_from(["mean", "sum"]))}"', f"l2 = {draw(st.sampled_from([0.0, 0.1]))}"]
    if loss in ("cross_entropy", "multiclass_hinge"):
        lines.append(f"labels = {str(draw(st.booleans())).lower()}")
    return "\n".join(lines) + "\n"


def _pair(value) -> list:
    return value if isinstance(value, list) else [value, value]


def networks(**kwargs):
    return specs(**kwargs).map(lambda text: symbolic.loads(text, source="<hypothesis>"))


@st.composite
def sequences(draw) -> str:
    """A random spec over sequences: tokens through an embedding or a (N, T, D) input, then one
    to three of rnn, lstm, attention and dense-at-every-step layers, and a loss over the last step
    (a classifier) or over every step (masked or not)."""
    steps = draw(st.integers(1, 4))
    tokens = draw(st.booleans())
    lines = ['name = "seq"', f"inputs = [{steps}]" if tokens else f"inputs = [{steps}, {draw(st.integers(1, 3))}]"]
    layers = []
    if tokens:
        layers.append(f'kind = "embedding"\nvocab = {draw(st.integers(2, 5))}\nunits = {draw(st.integers(1, 3))}')
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["rnn", "lstm", "attention", "dense"]))
        units = draw(st.integers(1, 3))
        if kind == "rnn":
            layers.append(f'kind = "rnn"\nunits = {units}\nactivation = "{draw(st.sampled_from(["tanh", "relu"]))}"'
                          + draw(st.sampled_from(["", '\ninitial = "h0"', "\nbias = false"])))
        elif kind == "lstm":
            layers.append(f'kind = "lstm"\nunits = {units}' + draw(st.sampled_from(["", '\ninitial = "s0"'])))
        elif kind == "attention":
            layers.append(f'kind = "attention"\ncausal = {str(draw(st.booleans())).lower()}'
                          + draw(st.sampled_from(["", "\nbias = false"])))
        else:
            layers.append(f'units = {units}\nactivation = "{draw(st.sampled_from(["identity", "tanh", "relu"]))}"')
    if draw(st.booleans()):  # a classifier of the last state
        layers.append(f'kind = "{draw(st.sampled_from(["rnn", "lstm"]))}"\nunits = 2\noutput = "last"')
        layers.append('units = 3\nactivation = "softmax"')
        loss = 'kind = "cross_entropy"\nlabels = true'
    elif draw(st.booleans()):  # the next token at every step
        layers.append('units = 3\nactivation = "softmax"')
        loss = 'kind = "cross_entropy"\nlabels = true' + draw(st.sampled_from(["", '\nmask = "m"']))
    else:
        loss = 'kind = "squared_error"' + draw(st.sampled_from(["", '\nmask = "m"', '\nreduction = "sum"']))
    names = set()
    text = "\n".join(lines) + ("\nwrt_input = true" if not tokens and draw(st.booleans()) else "") + "\n"
    for layer in layers:
        if 'initial = "' in layer:  # one initial state per layer: names of their own
            name = f"h0_{len(names)}"
            names.add(name)
            layer = layer.replace('initial = "h0"', f'initial = "{name}"').replace('initial = "s0"', f'initial = "{name}"')
        text += "[[layers]]\n" + layer + "\n"
    return text + "[loss]\n" + loss + "\n"
