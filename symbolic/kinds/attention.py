"""`attention`: multi-head self-attention over a sequence (N, T, D), PyTorch's MultiheadAttention.

Q = x Wq + bq, K = x Wk + bk, V = x Wv + bv, each (N, T, D), split into `heads` blocks of D/heads
columns; per head, P = softmax(Q_h K_h^T / sqrt(D/heads)) over the keys (a causal layer leaves
out the keys after each query's step), O_h = P V_h; the heads side by side, out = O Wo + bo.
"""

from __future__ import annotations

import sympy as sp

from ..arrays import BatchMatmul, CausalSoftmax, Columns, Matmul, Softmax, SwapLast
from ..ops import Concatenate
from .base import Kind, Layer, Parameter

ROLES = ("query", "key", "value", "out")


class Attention(Kind):
    name = "attention"
    keys = ("heads", "causal", "bias", *ROLES)
    takes = "sequences"
    doc = ("`heads` (1; D divisible by it), `causal` (false), the weights `query`, `key`, `value`, `out` "
           "(`Wq<l>`, `Wk<l>`, `Wv<l>`, `Wo<l>`, (D, D)), biases `bq<l>`, `bk<l>`, `bv<l>`, `bo<l>` (D,) "
           "(`bias = false`: none)",
           "self-attention: `Q = x Wq + bq` (K, V alike), split into heads of D/heads columns; per head "
           "`softmax(Q_h K_h^T / sqrt(D/heads)) V_h` (causal: each step attends to the steps up to it); the "
           "heads side by side, `out = O Wo + bo`",
           "`nn.MultiheadAttention(D, heads, batch_first=True)`, `in_proj_weight = cat(Wq, Wk, Wv).T`, "
           "`out_proj.weight = Wo.T`")

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        steps, features = widths[-1]
        heads = r.size(table, "heads", prefix, required=False, default=1)
        if features % heads:
            r.fail(prefix + "heads", f"the input's {features} features do not split into {heads} heads "
                   f"(D must be divisible by heads)")
        causal = r.get(table, "causal", bool, False, prefix)
        bias = table.get("bias", True)
        if bias is not True and bias is not False:
            r.fail(prefix + "bias", f"must be true or false (the biases are bq{l}, bk{l}, bv{l}, bo{l}), "
                   f"not {bias!r}")
        weights = tuple(r.get(table, role, str, f"W{role[0]}{l}", prefix) for role in ROLES)
        biases = tuple(f"b{role[0]}{l}" for role in ROLES) if bias else (None,) * 4
        return Layer(kind="attention", units=features, inputs=features, input_shape=(steps, features),
                     shape=(steps, features), heads=heads, causal=causal, names=weights + biases)

    def arrays(self, layer, layout):
        D = layer.units
        out = [Parameter(name, (D, D), "weight", role) for name, role in zip(layer.names[:4], ROLES)]
        out += [Parameter(name, (D,), "bias", "bias") for name in layer.names[4:] if name is not None]
        return tuple(out)

    def forward(self, f, layer, l, a):
        D, heads = layer.units, layer.heads
        d = D // heads
        weights, biases = layer.names[:4], layer.names[4:]
        projected = []
        for letter, W, b in zip("qkv", weights[:3], biases[:3]):
            z = Matmul(a, f.arrays[W]) + (f.arrays[b] if b is not None else 0)
            projected.append(f.step(f"{letter}{l}", z, f"the {dict(q='queries', k='keys', v='values')[letter]}: "
                                    f"x {W}" + (f" + {b}" if b else ""), l))
        q, k, v = projected
        outputs = []
        scale = 1 / sp.sqrt(d)
        softmax = CausalSoftmax if layer.causal else Softmax
        for h in range(heads):
            block = (lambda array: Columns(array, h * d, (h + 1) * d)) if heads > 1 else (lambda array: array)
            tag = f"_{h + 1}" if heads > 1 else ""
            which = f"head {h + 1}: " if heads > 1 else ""
            s = f.step(f"s{l}{tag}", BatchMatmul(block(q), SwapLast(block(k))) * scale,
                       f"{which}the scores Q K^T / sqrt({d})", l)
            p = f.step(f"p{l}{tag}", softmax(s), f"{which}the attention weights, a softmax over the keys"
                       + (" up to each step (causal)" if layer.causal else ""), l)
            outputs.append(f.step(f"o{l}{tag}", BatchMatmul(p, block(v)), f"{which}the weighted values", l))
        o = outputs[0] if heads == 1 else f.step(f"o{l}", Concatenate(*outputs, sp.Integer(2)),
                                                 "the heads side by side", l)
        out = Matmul(o, f.arrays[weights[3]]) + (f.arrays[biases[3]] if biases[3] is not None else 0)
        return f.step(f"a{l}", out, f"the output projection: O {weights[3]}" + (f" + {biases[3]}" if biases[3] else ""),
                      l, "activation", "identity")

    def torch(self, t, layer, a):
        torch = t.torch
        D, T = layer.units, layer.input_shape[0]
        bias = layer.names[4] is not None
        module = torch.nn.MultiheadAttention(D, layer.heads, batch_first=True, bias=bias, dtype=a.dtype)
        Wq, Wk, Wv, Wo = (t.tensors[name] for name in layer.names[:4])
        params = {"in_proj_weight": torch.cat([Wq, Wk, Wv], dim=1).T, "out_proj.weight": Wo.T}
        if bias:
            bq, bk, bv, bo = (t.tensors[name] for name in layer.names[4:])
            params.update({"in_proj_bias": torch.cat([bq, bk, bv]), "out_proj.bias": bo})
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if layer.causal else None
        out, _ = torch.func.functional_call(module, params, (a, a, a), {"attn_mask": mask, "need_weights": False})
        return out, None

    def summary(self, layer):
        return f"attention {layer.heads} head{'s' if layer.heads > 1 else ''}" + (" causal" if layer.causal else "")

    def locals(self, layer, l):
        heads = [f"_{h + 1}" for h in range(layer.heads)] if layer.heads > 1 else [""]
        return (f"q{l}", f"k{l}", f"v{l}", f"o{l}", *(f"{x}{l}{tag}" for x in "spo" for tag in heads))
