"""Test networks: `mlp` for a fixed one, Hypothesis strategies for random specs covering every
activation, loss and layout."""

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
def specs(draw, max_depth: int = 4, max_width: int = 6) -> str:
    """The TOML text of a random valid network."""
    depth = draw(st.integers(1, max_depth))
    layout = draw(st.sampled_from(["row", "column"]))
    kind = draw(st.sampled_from(["squared_error", "cross_entropy", "binary_cross_entropy"]))
    widths = [draw(st.integers(1, max_width)) for _ in range(depth + 1)]
    lines = ['name = "random_net"', f'layout = "{layout}"', f"inputs = {widths[0]}",
             f"wrt_input = {str(draw(st.booleans())).lower()}"]
    if layout == "row" and draw(st.booleans()):
        lines.append(f"batch = {draw(st.integers(1, 3))}")
    for i, units in enumerate(widths[1:], 1):
        last = i == depth
        if last and kind == "cross_entropy":
            activation = "softmax"
        elif last and kind == "binary_cross_entropy":
            activation = "sigmoid"
        else:
            activation = draw(st.sampled_from(HIDDEN + (["softmax"] if last and units > 1 else [])))
        if activation == "softmax" and units == 1:  # a softmax over one class is a spec error
            units = widths[i] = 2
        lines += ["", "[[layers]]", f"units = {units}", f'activation = "{activation}"']
        bias = draw(st.sampled_from(["vector", "shared", "none"]))
        if bias == "shared":
            lines.append("shared_bias = true")
        elif bias == "none":
            lines.append("bias = false")
        if activation == "leaky_relu":
            lines.append(f"negative_slope = {draw(st.sampled_from([0.01, 0.2, 1.5]))}")
    lines += ["", "[loss]", f'kind = "{kind}"',
              f'reduction = "{draw(st.sampled_from(["mean", "sum"]))}"',
              f"scale = {draw(st.sampled_from([1.0, 0.5, 2.0]))}",
              f"l2 = {draw(st.sampled_from([0.0, 0.0, 0.1]))}"]
    if kind == "cross_entropy":
        lines.append(f"labels = {str(draw(st.booleans())).lower()}")
    return "\n".join(lines) + "\n"


def networks(**kwargs):
    return specs(**kwargs).map(lambda text: symbolic.loads(text, source="<hypothesis>"))
