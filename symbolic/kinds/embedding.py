"""`embedding`: out[n, t] = W[x[n, t]], the rows of a table W (vocab, units) picked by integer tokens."""

from __future__ import annotations

from ..ops import Lookup
from .base import Kind, Layer, Parameter


class Embedding(Kind):
    name = "embedding"
    keys = ("vocab", "units", "weight")
    takes = "tokens"
    doc = ("`vocab` (required), `units` (required), `weight` (`W<l>`)",
           "`out[n, t] = W[x[n, t]]`, `W` is (vocab, units); the first layer, its input integer tokens "
           "(`inputs = [T]`, x of shape (N, T)); its gradient adds each step's row into W's row of its token",
           "`F.embedding(x, W)`")

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        vocab = r.size(table, "vocab", prefix)
        units = r.size(table, "units", prefix)
        steps = widths[-1][0]
        return Layer(kind="embedding", units=units, inputs=vocab, input_shape=(steps,), shape=(steps, units),
                     vocab=vocab, weight=r.get(table, "weight", str, f"W{l}", prefix))

    def arrays(self, layer, layout):
        return (Parameter(layer.weight, (layer.vocab, layer.units), "weight", "weight"),)

    def forward(self, f, layer, l, a):
        return f.step(f"a{l}", Lookup(f.arrays[layer.weight], a),
                      f"embedding: the row of {layer.weight} of each token, at every step", l, "activation")

    def torch(self, t, layer, a):
        return t.F.embedding(a, t.tensors[layer.weight]), None

    def summary(self, layer):
        return f"embedding {layer.vocab}x{layer.units}"

    def fan_in(self, layer):
        return 1  # one row per token: entries of order one, as PyTorch's N(0, 1) initialisation
