"""The forward pass of a spec's layers, written as program steps.

Each layer kind (`symbolic.kinds`) writes the equations of its forward pass into a `Forward`,
`name = expression` over whole arrays, with the array operations of `symbolic.arrays` and the
activations of `symbolic.rules`; it never says how to differentiate them (`symbolic.sweep` does,
from the operations' rules).

Names: layer l computes a<l> (its output) from a<l-1> (a0 is the input); z<l> is the
pre-activation where the layer has an activation.
"""

from __future__ import annotations

import sympy as sp

from . import rules
from .arrays import Softmax, shape_of
from .kinds import KINDS
from .program import Step


class Forward:
    """The forward pass being written: steps in order, the shapes of every array."""

    def __init__(self, network, n):
        self.network, self.n = network, n
        self.row = network.layout == "row"
        shapes = network.shapes(n)
        self.arrays = {name: sp.Symbol(name) for name in shapes}
        self.shapes = {self.arrays[name]: tuple(sp.sympify(d) for d in shape) for name, shape in shapes.items()}
        self.steps = []  # program Steps, in order
        self.composites = []
        self.outputs = [self.arrays[network.input]]  # a_0 (the input), a_1, ...
        self.pre = None  # the last pre-activation written

    def step(self, name: str, expr: sp.Expr, rule: str, layer: int, role: str = "", activation=None,
             notes=None) -> sp.Symbol:
        symbol = sp.Symbol(name)
        if symbol in self.shapes:  # two steps of one name would be one symbol to SymPy: merged silently
            raise ValueError(f"the forward pass writes {name} twice (layer {layer}): every step needs its own name")
        self.shapes[symbol] = shape_of(expr, self.shapes)
        self.steps.append(Step(symbol, expr, self.shapes[symbol], stage="loss" if role == "loss" else "forward",
                               rule=rule, layer=layer, role=role, activation=activation, notes=notes or {}))
        if role == "pre-activation":
            self.pre = symbol
        return symbol

    def activate(self, layer, l: int, z: sp.Symbol, rule: str = "") -> sp.Symbol:
        """a<l> = f(z<l>), plus the output k layers below for a residual connection."""
        activation = rules.ACTIVATIONS[layer.activation]
        expr = Softmax(z) if layer.activation == "softmax" else activation.apply(z, layer.negative_slope)
        words = f"activation: {layer.activation}"
        if layer.residual:
            expr = expr + self.outputs[l - layer.residual]
            below = "the input" if l == layer.residual else f"a{l - layer.residual}"
            words += f", plus {below} (residual connection)"
        return self.step(f"a{l}", expr, rule or words, l, "activation", layer.activation)


def forward(network, n) -> Forward:
    """The forward pass of `network`, the batch size `n` (a number or the symbol N)."""
    f = Forward(network, n)
    for l, layer in enumerate(network.layers, 1):
        f.outputs.append(KINDS[layer.kind].forward(f, layer, l, f.outputs[-1]))
    return f
