"""`batchnorm` and `layernorm`: xhat = (a - mean) / sqrt(var + eps), z = gamma xhat + beta, f(z).

Over the batch (each feature; each channel of an image, over the batch and the pixels) or over
each sample's features (all of C, H, W). The compact rule of xhat's gradient is a composite the
sweep applies (`symbolic.rules.standardize_vjp`).
"""

from __future__ import annotations

import math

import sympy as sp

from .. import rules
from ..arrays import PerChannel, RowSum, SumAxes, SumRows
from ..sweep import Composite
from .base import Kind, Layer, Parameter


class _Normalization(Kind):
    keys = ("eps", "scale", "shift", "activation", "negative_slope")
    activated = True
    over_batch = True

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        activation, slope = r.activation(table, prefix, last)
        eps = r.get(table, "eps", float, 1e-5, prefix)
        if eps <= 0:
            r.fail(prefix + "eps", f"must be a number > 0, not {eps}")
        below = widths[-1]
        if activation == "softmax" and below[-1] == 1:
            r.fail(prefix + "activation", "a softmax over one class is always 1: at least 2 units")
        if activation == "softmax" and len(below) == 3:
            r.fail(prefix + "activation", "softmax is over the features of a row, not an image")
        return Layer(kind=self.name, units=math.prod(below), inputs=math.prod(below), shape=below,
                     input_shape=below, activation=activation, negative_slope=slope, eps=eps,
                     scale=r.name(table, "scale", f"gamma{l}", prefix),
                     shift=r.name(table, "shift", f"beta{l}", prefix))

    def arrays(self, layer, layout):
        # one per feature, per channel of an image (batchnorm), or of the normalized shape (layernorm)
        normalized = layer.shape[:1] if self.over_batch else layer.shape
        return tuple(Parameter(name, normalized, role, role)
                     for name, role in ((layer.scale, "scale"), (layer.shift, "shift")) if name is not None)

    def forward(self, f, layer, l, a):
        over_batch = self.over_batch
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


class BatchNorm(_Normalization):
    name = "batchnorm"
    takes = "rows or images"
    doc = ("`eps` (1e-5), `scale` (`gamma<l>`), `shift` (`beta<l>`), `activation` (identity); `scale = false`, "
           "`shift = false` drop them",
           "per feature over the batch: `xhat = (a - mean) / sqrt(var + eps)` (the biased variance), "
           "`z = gamma xhat + beta`, `f(z)`; after a convolution per channel over the batch and the pixels; "
           "row layout only, at least 2 samples (over one, xhat is 0)",
           "`BatchNorm1d` in training mode (`BatchNorm2d` after `conv2d`)")

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        if r.layout == "column":
            r.fail(prefix + "kind", "batchnorm normalizes over the batch: it needs the row layout "
                   "(the column layout is one sample)")
        if r.batch == 1 and math.prod(widths[-1][1:]) == 1:  # an image's channels: over N x H x W values
            what = "each channel's only pixel" if len(widths[-1]) == 3 else "each feature's only value"
            r.fail(prefix + "kind", f"batchnorm over a batch of 1 gives 0 ({what} is its mean) "
                   "and no gradient before it: batch must be at least 2")
        return super().read(r, table, prefix, l, last, widths)

    def least_batch(self, layer):
        return 2 if math.prod(layer.shape[1:]) == 1 else 1  # an image's channel has H x W values per sample

    def torch(self, t, layer, a):  # training mode: the batch's mean and biased variance (per channel: BatchNorm2d)
        gamma, beta = t.optional(layer.scale), t.optional(layer.shift)
        if a.shape[0] > 1:
            z = t.F.batch_norm(a, None, None, weight=gamma, bias=beta, training=True, eps=layer.eps)
        else:  # F.batch_norm refuses one sample; its op gives xhat = 0 (a zero variance)
            z = t.torch.batch_norm(a, gamma, beta, None, None, True, 0.0, layer.eps, False)
        return t.activate(z, layer), z


class LayerNorm(_Normalization):
    name = "layernorm"
    over_batch = False
    takes = "rows or images"
    doc = ("the same keys",
           "the same per sample over its features (all of C, H, W after a convolution; `gamma`, `beta` of "
           "that shape); both layouts",
           "`LayerNorm`")

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        if math.prod(widths[-1]) == 1:
            r.fail(prefix + "kind", "layernorm over one feature always gives 0 (each sample's only "
                   "value is its mean): its input must be at least 2 wide")
        return super().read(r, table, prefix, l, last, widths)

    def torch(self, t, layer, a):
        z = t.F.layer_norm(a, tuple(a.shape[1:]) if t.row else (a.shape[-1],), t.optional(layer.scale),
                           t.optional(layer.shift), layer.eps)
        return t.activate(z, layer), z
