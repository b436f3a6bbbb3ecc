"""Layer kinds: forward definitions only, one entry per `kind` of the spec.

A layer writes the equations of its forward pass, `name = expression` over whole arrays, with the
array operations of `symbolic.arrays` and the activations of `symbolic.rules`; it never says how
to differentiate them (`symbolic.sweep` does, from the operations' rules). Adding a layer kind is
one function here and one entry in `KINDS` (and its keys in `symbolic.spec`).

Names: layer l computes a<l> (its output) from a<l-1> (a0 is the input); z<l> is the
pre-activation where the layer has an activation.
"""

from __future__ import annotations

import sympy as sp

from . import rules
from .arrays import Matmul, RowSum, Softmax, SumRows, Transposed, shape_of
from .sweep import Composite


class Forward:
    """The forward pass being written: steps in order, the shapes of every array."""

    def __init__(self, network, n):
        self.network, self.n = network, n
        self.row = network.layout == "row"
        shapes = network.shapes(n)
        self.arrays = {name: sp.Symbol(name) for name in shapes}
        self.shapes = {self.arrays[name]: tuple(sp.sympify(d) for d in shape) for name, shape in shapes.items()}
        self.steps = []  # (symbol, expr, rule, layer, role, activation)
        self.composites = []
        self.outputs = [self.arrays[network.input]]  # a_0 (the input), a_1, ...
        self.pre = None  # the last pre-activation written

    def step(self, name: str, expr: sp.Expr, rule: str, layer: int, role: str = "", activation=None) -> sp.Symbol:
        symbol = sp.Symbol(name)
        self.shapes[symbol] = shape_of(expr, self.shapes)
        self.steps.append((symbol, expr, rule, layer, role, activation))
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


def dense(f: Forward, layer, l: int, a: sp.Symbol) -> sp.Symbol:
    W = f.arrays[layer.weight]
    if layer.transpose_weight:
        W = Transposed(W)
    z = Matmul(a, W) if f.row else Matmul(W, a)
    if layer.bias is not None:
        z = z + f.arrays[layer.bias]
    words = "Z = A @ W + b, one row per sample" if f.row else "z = W @ a + b, one sample"
    if layer.transpose_weight:
        words += f", W the transpose of {layer.weight}"
    z = f.step(f"z{l}", z, "affine map: " + words, l, "pre-activation")
    return f.activate(layer, l, z)


def _normalization(f: Forward, layer, l: int, a: sp.Symbol, over_batch: bool) -> sp.Symbol:
    """xhat = (a - mean) / sqrt(var + eps) over the batch (each feature) or over each sample's
    features; then z = gamma xhat + beta and a = f(z)."""
    total, count = (SumRows, f.n) if over_batch else (RowSum, sp.Integer(layer.units))
    where = "over the batch, per feature" if over_batch else "over the features, per sample"
    mu = f.step(f"mu{l}", total(a) / count, f"mean {where}", l)
    var = f.step(f"var{l}", total((a - mu) ** 2) / count, f"variance {where} (biased: divided by {count})", l)
    eps = sp.Rational(repr(layer.eps))
    sigma = f.step(f"sigma{l}", sp.sqrt(var + eps), f"standard deviation, eps = {layer.eps:g}", l)
    xhat = f.step(f"xhat{l}", (a - mu) / sigma, "normalized input", l)
    f.composites.append(Composite(xhat, a, (mu, var, sigma), rules.standardize_vjp(xhat, sigma, total, count),
                                  "normalization"))
    z = xhat
    if layer.scale is not None:
        z = f.arrays[layer.scale] * z
    if layer.shift is not None:
        z = z + f.arrays[layer.shift]
    z = f.step(f"z{l}", z, "scale and shift: gamma * xhat + beta", l, "pre-activation")
    return f.activate(layer, l, z)


def batchnorm(f: Forward, layer, l: int, a: sp.Symbol) -> sp.Symbol:
    return _normalization(f, layer, l, a, over_batch=True)


def layernorm(f: Forward, layer, l: int, a: sp.Symbol) -> sp.Symbol:
    return _normalization(f, layer, l, a, over_batch=False)


def dropout(f: Forward, layer, l: int, a: sp.Symbol) -> sp.Symbol:
    keep = 1 - sp.Rational(repr(layer.p))
    return f.step(f"a{l}", f.arrays[layer.mask] * a / keep,
                  f"dropout: the mask keeps each entry with probability {float(keep):g}, scaled by 1/{float(keep):g}",
                  l, "activation")


KINDS = {"dense": dense, "batchnorm": batchnorm, "layernorm": layernorm, "dropout": dropout}


def forward(network, n) -> Forward:
    """The forward pass of `network`, the batch size `n` (a number or the symbol N)."""
    f = Forward(network, n)
    for l, layer in enumerate(network.layers, 1):
        f.outputs.append(KINDS[layer.kind](f, layer, l, f.outputs[-1]))
    return f
