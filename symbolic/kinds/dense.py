"""`dense`: z = a @ W + b (row layout) or W @ a + b (column layout), then the activation."""

from __future__ import annotations

from ..arrays import Matmul, Transposed
from .base import Kind, Layer, Parameter


class Dense(Kind):
    name = "dense"
    keys = ("units", "activation", "weight", "bias", "shared_bias", "negative_slope", "residual", "transpose_weight")
    takes = "rows or sequences"
    activated = True
    doc = ("`units`, `activation` (identity), `weight` (`W<l>`), `bias` (`b<l>`; false: none), `shared_bias` "
           "(false), `residual` (false; true or k), `transpose_weight` (false)",
           "`z = a @ W + b`, `a = f(z)` (column layout: `W @ a + b`); on a sequence (N, T, D), at every step; "
           "`residual = k` adds the output of the layer k below",
           "`F.linear(a, W.T, b)`")

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        activation, slope = r.activation(table, prefix, last)
        units = r.size(table, "units", prefix)
        if activation == "softmax" and units == 1:
            r.fail(prefix + "units", "a softmax over one class is always 1 (its cross-entropy always 0): "
                   "at least 2 units; for one class use sigmoid with binary_cross_entropy")
        bias = r.name(table, "bias", f"b{l}", prefix)
        shared = r.get(table, "shared_bias", bool, False, prefix)
        if shared and bias is None:
            r.fail(prefix + "shared_bias", "a layer without a bias cannot share it")
        residual = _residual(r, table, prefix, l, units, widths)
        return Layer(units=units, activation=activation, negative_slope=slope,
                     weight=r.get(table, "weight", str, f"W{l}", prefix), bias=bias, shared_bias=shared,
                     residual=residual, transpose_weight=r.get(table, "transpose_weight", bool, False, prefix),
                     inputs=widths[-1][-1], input_shape=widths[-1], shape=(*widths[-1][:-1], units))

    def arrays(self, layer, layout):
        shape = (layer.inputs, layer.units) if layout == "row" else (layer.units, layer.inputs)
        out = [Parameter(layer.weight, shape[::-1] if layer.transpose_weight else shape, "weight", "weight")]
        if layer.bias is not None:
            out.append(Parameter(layer.bias, () if layer.shared_bias else (layer.units,),
                                 "shared bias" if layer.shared_bias else "bias", "bias"))
        return tuple(out)

    def forward(self, f, layer, l, a):
        W = f.arrays[layer.weight]
        if layer.transpose_weight:
            W = Transposed(W)
        z = Matmul(a, W) if f.row else Matmul(W, a)
        if layer.bias is not None:
            z = z + f.arrays[layer.bias]
        words = "Z = A @ W + b, one row per sample" if f.row else "z = W @ a + b, one sample"
        if layer.sequence:
            words = "Z = A @ W + b at every step of each sequence"
        if layer.transpose_weight:
            words += f", W the transpose of {layer.weight}"
        z = f.step(f"z{l}", z, "affine map: " + words, l, "pre-activation")
        return f.activate(layer, l, z)

    def torch(self, t, layer, a):
        W = t.tensors[layer.weight]
        if layer.transpose_weight:
            W = W.T
        z = a @ W if t.row else W @ a
        if layer.bias is not None:
            z = z + t.tensors[layer.bias]
        return t.activate(z, layer), z

    def plain(self, layer):
        return not layer.residual and not layer.transpose_weight

    def summary(self, layer):
        words = f"dense {layer.units}"
        if layer.activation != "identity":
            words += f" {layer.activation}"
        if layer.transpose_weight:
            words += f" ({layer.weight}.T)"
        if layer.residual:
            words += f" (residual, k = {layer.residual})"
        return words


    def formula(self, network, layer, l, name, index, steps, values):
        if layer.transpose_weight or name not in (layer.weight, layer.bias):
            return ""
        row = network.layout == "row"
        previous = network.input if l == 1 else f"a{l - 1}"
        A = values[network.input] if l == 1 else steps[previous]
        delta = steps[f"delta{l}"]
        penalty = " + 2 l2 W" if network.loss.l2 else ""
        if name == layer.weight:
            r, c = index
            if row:
                return f"sum_n {previous}[n, {r}] * delta{l}[n, {c}]" + penalty
            return f"delta{l}[{r}] * {previous}[{c}] = {delta[r]:.6g} * {A[c]:.6g}" + penalty
        if layer.shared_bias:
            return f"sum of delta{l}"
        return f"sum_n delta{l}[n, {index[0]}]" if row else f"delta{l}[{index[0]}]"


def _residual(r, table, prefix, l, units, widths) -> int:
    """`residual`: true (k = 1), false (0) or k >= 1, adding a_(l-k) of the same width."""
    residual = table.get("residual", False)
    if residual is True:
        return _residual_fits(r, prefix, l, 1, units, widths)
    if residual is False:
        return 0
    if isinstance(residual, bool) or not isinstance(residual, int) or residual < 1:
        r.fail(prefix + "residual", f"must be true, false or a whole number k >= 1, not {residual!r}")
    return _residual_fits(r, prefix, l, residual, units, widths)


def _residual_fits(r, prefix, l, residual, units, widths) -> int:
    if residual > l:
        r.fail(prefix + "residual", f"layer {l} has no layer {residual} below it "
               f"(k = {residual} reaches past the input; at most {l})")
    below = widths[l - residual]
    source = "the input" if l == residual else f"the output of layer {l - residual}"
    here = (*widths[-1][:-1], units)
    if len(below) == 3:
        r.fail(prefix + "residual", f"adds {source}, an image {r.words(below)} per sample, to this "
               "layer's rows: a residual connection adds rows of the same width")
    if len(below) != len(here):
        r.fail(prefix + "residual", f"adds {source} {r.words(below)} per sample to this layer's output "
               f"{r.words(here)}: the shapes must match")
    if below[-1] != units:
        r.fail(prefix + "residual", f"adds {source} ({below[-1]} wide) to this layer's "
               f"{units} units: the widths must match")
    return residual
