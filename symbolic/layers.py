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
from .arrays import (AvgPool2d, Conv2d, Flatten, Matmul, MaxPool2d, PerChannel, RowSum, Softmax, SumAxes,
                     SumRows, Transposed, pair, shape_of)
from .program import Step
from .sweep import Composite


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
    """xhat = (a - mean) / sqrt(var + eps) over the batch (each feature; each channel of an
    image, over the batch and the pixels) or over each sample's features (all of C, H, W);
    then z = gamma xhat + beta and a = f(z)."""
    image = layer.image
    if image:
        axes = (0, 2, 3) if over_batch else (1, 2, 3)
        count = f.n * layer.shape[1] * layer.shape[2] if over_batch else sp.Integer(layer.units)

        def total(e):
            return SumAxes(e, sp.Tuple(*axes), sp.S.One)
        where = "over the batch and the pixels, per channel" if over_batch else "over C, H and W, per sample"
    else:
        total, count = (SumRows, f.n) if over_batch else (RowSum, sp.Integer(layer.units))
        where = "over the batch, per feature" if over_batch else "over the features, per sample"
    mu = f.step(f"mu{l}", total(a) / count, f"mean {where}", l)
    var = f.step(f"var{l}", total((a - mu) ** 2) / count, f"variance {where} (biased: divided by {count})", l)
    eps = sp.Rational(repr(layer.eps))
    sigma = f.step(f"sigma{l}", sp.sqrt(var + eps), f"standard deviation, eps = {layer.eps:g}", l)
    xhat = f.step(f"xhat{l}", (a - mu) / sigma, "normalized input", l)
    f.composites.append(Composite(xhat, a, (mu, var, sigma), rules.standardize_vjp(xhat, sigma, total, count),
                                  "normalization", zero_sum=total(xhat) if over_batch else None))
    z = xhat
    per_channel = PerChannel if image and over_batch else (lambda array: array)  # gamma[c]: along axis 1
    if layer.scale is not None:
        z = per_channel(f.arrays[layer.scale]) * z
    if layer.shift is not None:
        z = z + per_channel(f.arrays[layer.shift])
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


def conv2d(f: Forward, layer, l: int, a: sp.Symbol) -> sp.Symbol:
    z = Conv2d(a, f.arrays[layer.weight], pair(layer.kernel), pair(layer.stride), pair(layer.padding))
    if layer.bias is not None:
        z = z + PerChannel(f.arrays[layer.bias])
    words = (f"convolution: {layer.filters} filters {layer.kernel[0]}x{layer.kernel[1]}, "
             f"stride {_pair_words(layer.stride)}, padding {_pair_words(layer.padding)}")
    z = f.step(f"z{l}", z, words + (", plus a bias per filter" if layer.bias is not None else ""),
               l, "pre-activation")
    return f.activate(layer, l, z)


def maxpool2d(f: Forward, layer, l: int, a: sp.Symbol) -> sp.Symbol:
    return f.step(f"a{l}", MaxPool2d(a, pair(layer.kernel), pair(layer.stride)),
                  f"max pooling: the maximum of each {layer.kernel[0]}x{layer.kernel[1]} window, "
                  f"stride {_pair_words(layer.stride)}", l, "activation")


def avgpool2d(f: Forward, layer, l: int, a: sp.Symbol) -> sp.Symbol:
    return f.step(f"a{l}", AvgPool2d(a, pair(layer.kernel), pair(layer.stride)),
                  f"average pooling: the mean of each {layer.kernel[0]}x{layer.kernel[1]} window, "
                  f"stride {_pair_words(layer.stride)}", l, "activation")


def flatten(f: Forward, layer, l: int, a: sp.Symbol) -> sp.Symbol:
    return f.step(f"a{l}", Flatten(a), "flatten: each sample's C x H x W values as one row, in C order",
                  l, "activation")


def _pair_words(value: tuple) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"


KINDS = {"dense": dense, "batchnorm": batchnorm, "layernorm": layernorm, "dropout": dropout,
         "conv2d": conv2d, "maxpool2d": maxpool2d, "avgpool2d": avgpool2d, "flatten": flatten}


def forward(network, n) -> Forward:
    """The forward pass of `network`, the batch size `n` (a number or the symbol N)."""
    f = Forward(network, n)
    for l, layer in enumerate(network.layers, 1):
        f.outputs.append(KINDS[layer.kind](f, layer, l, f.outputs[-1]))
    return f
