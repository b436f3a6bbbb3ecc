"""`dropout`: out = mask * a / (1 - p), the mask an input array of 0/1 entries, never differentiated."""

from __future__ import annotations

import math

import sympy as sp

from .base import Kind, Layer, Parameter


class Dropout(Kind):
    name = "dropout"
    keys = ("p", "keep", "mask")
    doc = ("`p` (0 <= p < 1; or `keep` = 1 - p, 0 < keep <= 1: one of the two), `mask` (`m<l>`)",
           "`mask * a / (1 - p)`; the mask (0/1 entries, the shape of `a`) is an input array like `x`, "
           "passed by keyword and never differentiated",
           "`a * mask / (1 - p)`")

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        if "p" not in table and "keep" not in table:
            r.fail(prefix + "p", "required key is missing (p, the probability of dropping an entry; or keep, "
                                 "of keeping it: 1 - p)")
        if "p" in table and "keep" in table:
            r.fail(prefix + "keep", "give one of p (the probability of dropping an entry) and keep (1 - p), "
                                    "not both")
        if "keep" in table:
            keep = r.get(table, "keep", float, prefix=prefix)
            if not 0 < keep <= 1:
                r.fail(prefix + "keep", f"must be more than 0 and at most 1 (the probability of keeping an "
                       f"entry), not {keep:g}")
            p = 1.0 - keep
        else:
            p = r.get(table, "p", float, prefix=prefix)
            if not 0 <= p < 1:
                r.fail(prefix + "p", f"must be at least 0 and less than 1 (the probability of dropping "
                       f"an entry), not {p:g}")
        below = widths[-1]
        return Layer(kind="dropout", units=math.prod(below), inputs=math.prod(below), shape=below,
                     input_shape=below, p=p, mask=r.get(table, "mask", str, f"m{l}", prefix))

    def arrays(self, layer, layout):
        return (Parameter(layer.mask, layer.shape, "dropout mask", "mask", per_sample=True, differentiated=False),)

    def forward(self, f, layer, l, a):
        keep = 1 - sp.Rational(repr(layer.p))
        return f.step(f"a{l}", f.arrays[layer.mask] * a / keep,
                      f"dropout: the mask keeps each entry with probability {float(keep):g}, "
                      f"scaled by 1/{float(keep):g}", l, "activation")

    def torch(self, t, layer, a):
        return a * t.tensors[layer.mask] / (1 - layer.p), None

    def summary(self, layer):
        return f"dropout {layer.p:g}"
