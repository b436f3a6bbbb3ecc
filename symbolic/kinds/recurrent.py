"""`rnn` and `lstm`: a loop over the time steps of a sequence (N, T, D) with a carried state.

Each writes one time step as a program (`symbolic.layers.Body`) and the layer's output as the
scan of it (`symbolic.scan`): the derivation differentiates the step once, and the generated
code runs it in one loop forward and one loop backward (through time).
"""

from __future__ import annotations

import sympy as sp

from .. import rules
from ..arrays import Columns, Matmul
from ..layers import Body
from ..scan import scan
from .base import Kind, Layer, Parameter

OUTPUTS = ("sequence", "last")


class _Recurrent(Kind):
    keys = ("units", "activation", "weight", "recurrent", "bias", "initial", "output")
    takes = "sequences"
    activated = True
    gates = 1  # the columns of Wx and Wh per unit

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        units = r.size(table, "units", prefix)
        activation, slope = "tanh", 0.01
        if "activation" in self.keys:
            activation = r.choice(table, "activation", ("tanh", "relu"), "tanh", prefix)
        output = r.choice(table, "output", OUTPUTS, "sequence", prefix)
        steps, features = widths[-1]
        initial = r.name(table, "initial", False, prefix)
        return Layer(kind=self.name, units=units, activation=activation, negative_slope=slope, inputs=features,
                     input_shape=(steps, features), shape=(steps, units) if output == "sequence" else (units,),
                     weight=r.get(table, "weight", str, f"Wx{l}", prefix),
                     recurrent=r.get(table, "recurrent", str, f"Wh{l}", prefix),
                     bias=r.name(table, "bias", f"b{l}", prefix), initial=initial, output=output)

    def arrays(self, layer, layout):
        width = self.gates * layer.units
        out = [Parameter(layer.weight, (layer.inputs, width), "weight", "weight"),
               Parameter(layer.recurrent, (layer.units, width), "weight", "recurrent")]
        if layer.bias is not None:
            out.append(Parameter(layer.bias, (width,), "bias", "bias"))
        if layer.initial is not None:
            out.append(Parameter(layer.initial, (layer.units,), "initial state", "initial", per_sample=True,
                                 input=True))
        return tuple(out)

    def forward(self, f, layer, l, a):
        body = Body(f, f"a{l}")
        x_t = body.sequence(a, l)
        Wx, Wh = body.parameter(layer.weight), body.parameter(layer.recurrent)
        b = body.parameter(layer.bias) if layer.bias is not None else None
        output, words = self.step(body, layer, l, x_t, Wx, Wh, b)
        steps = layer.input_shape[0]
        start = f"{layer.initial}" if layer.initial else "0"
        loop = body.loop(output, steps, layer.output == "last", f"{self.name} over t = 1, ..., {steps}, from "
                         f"{output.name.removesuffix('_t')}_0 = {start}" + words)
        value = scan(loop)(*(sp.Symbol(name) for name in loop.arguments))
        which = "every step's" if layer.output == "sequence" else "the last step's"
        return f.step(f"a{l}", value, f"{loop.words}; the output is {which} {output.name}", l, "activation",
                      notes={"loop": loop})

    def step(self, body, layer, l, x_t, Wx, Wh, b):
        raise NotImplementedError

    def locals(self, layer, l):
        return tuple(f"{letter}{l}" for letter in self.stored)

    def scratch(self, layer):  # the values kept over the steps for the reverse loop: z (gates H each), the rest H
        steps, width = layer.input_shape[0], layer.units
        return steps * width * (self.gates + len(self.stored) - 1)


class RNN(_Recurrent):
    name = "rnn"
    stored = "zh"  # the values kept over the steps: z1, h1
    doc = ("`units` (H), `activation` (tanh), `weight` (`Wx<l>`, (D, H)), `recurrent` (`Wh<l>`, (H, H)), `bias` "
           "(`b<l>`, (H,); false: none), `initial` (false: h0 = 0; a name: an (N, H) array, differentiated "
           "like the input), `output` (`\"sequence\"`: (N, T, H) \\| `\"last\"`: (N, H))",
           "`h_t = f(x_t Wx + h_(t-1) Wh + b)` over t = 1, ..., T, f tanh or relu",
           "`nn.RNN(batch_first=True)`, `weight_ih = Wx.T`, `weight_hh = Wh.T`, `bias_ih = b`, `bias_hh = 0`")

    def step(self, body, layer, l, x_t, Wx, Wh, b):
        h_prev = body.state(f"h{l}", (body.n, layer.units), l, layer.initial)
        z = Matmul(x_t, Wx) + Matmul(h_prev, Wh)
        if b is not None:
            z = z + b
        z = body.step(f"z{l}_t", z, "the step's pre-activation: x_t Wx + h_(t-1) Wh + b", l, "pre-activation")
        h = body.step(f"h{l}_t", rules.ACTIVATIONS[layer.activation].apply(z, layer.negative_slope),
                      f"the new state: {layer.activation}", l, "activation", layer.activation)
        body.carry(h_prev, h)
        return h, ""

    def torch(self, t, layer, a):
        torch = t.torch
        H = layer.units
        cell = torch.nn.RNN(layer.inputs, H, batch_first=True, bias=True, nonlinearity=layer.activation,
                            dtype=a.dtype)
        return _run(t, layer, a, cell, gates=(0,)), None

    def summary(self, layer):
        return f"rnn {layer.units} {layer.activation}" + (" (last)" if layer.output == "last" else "")


def _run(t, layer, a, cell, gates):
    """Run PyTorch's module `cell` with the layer's parameters (its weights the transposes of ours,
    their row blocks in PyTorch's gate order `gates`); the output sequence, or the last state."""
    torch = t.torch
    H = layer.units

    def rows(W):  # ours is (in, k H) in our gate order; PyTorch's (k H, in) in its order
        return torch.cat([W[:, g * H:(g + 1) * H] for g in gates], dim=1).T
    weights = {"weight_ih_l0": rows(t.tensors[layer.weight]), "weight_hh_l0": rows(t.tensors[layer.recurrent])}
    bias = t.tensors[layer.bias] if layer.bias is not None else torch.zeros(len(gates) * H, dtype=a.dtype)
    weights["bias_ih_l0"] = torch.cat([bias[g * H:(g + 1) * H] for g in gates])
    weights["bias_hh_l0"] = torch.zeros(len(gates) * H, dtype=a.dtype)
    state = () if layer.initial is None else (t.tensors[layer.initial].unsqueeze(0),)
    if len(gates) == 4 and state:
        state = ((state[0], torch.zeros_like(state[0])),)
    out, _ = torch.func.functional_call(cell, weights, (a, *state))
    return out if layer.output == "sequence" else out[:, -1]


class LSTM(_Recurrent):
    name = "lstm"
    stored = "zifogch"
    keys = ("units", "weight", "recurrent", "bias", "initial", "output")
    gates = 4
    doc = ("the same keys but `activation`; Wx (D, 4H), Wh (H, 4H), b (4H,); c0 = 0",
           "`a = x_t Wx + h_(t-1) Wh + b`; `i, f, o` the sigmoids of its 1st, 2nd, 3rd H columns, `g` the tanh "
           "of the 4th (cs231n's order i, f, o, g); `c_t = f c_(t-1) + i g`, `h_t = o tanh(c_t)`",
           "`nn.LSTM(batch_first=True)`, its gate rows in the order i, f, g, o")

    def step(self, body, layer, l, x_t, Wx, Wh, b):
        H = layer.units
        h_prev = body.state(f"h{l}", (body.n, H), l, layer.initial)
        c_prev = body.state(f"c{l}", (body.n, H), l, None)
        z = Matmul(x_t, Wx) + Matmul(h_prev, Wh)
        if b is not None:
            z = z + b
        z = body.step(f"z{l}_t", z, "the gates' pre-activations: x_t Wx + h_(t-1) Wh + b, 4H columns", l,
                      "pre-activation")
        sigmoid, tanh = rules.ACTIVATIONS["sigmoid"].apply, rules.ACTIVATIONS["tanh"].apply
        gates = {}
        for k, (letter, words) in enumerate((("i", "input gate"), ("f", "forget gate"), ("o", "output gate"),
                                             ("g", "candidate cell"))):
            squash, said = (tanh, "tanh") if letter == "g" else (sigmoid, "sigmoid")
            gates[letter] = body.step(f"{letter}{l}_t", squash(Columns(z, k * H, (k + 1) * H), 0.01),
                                      f"{words}: {said} of columns {k * H + 1} to {(k + 1) * H}", l)
        c = body.step(f"c{l}_t", gates["f"] * c_prev + gates["i"] * gates["g"], "the new cell: f c_(t-1) + i g", l)
        h = body.step(f"h{l}_t", gates["o"] * sp.tanh(c), "the new state: o tanh(c_t)", l, "activation")
        body.carry(h_prev, h)
        body.carry(c_prev, c)
        return h, ""

    def torch(self, t, layer, a):
        cell = t.torch.nn.LSTM(layer.inputs, layer.units, batch_first=True, dtype=a.dtype)
        return _run(t, layer, a, cell, gates=(0, 1, 3, 2)), None

    def summary(self, layer):
        return f"lstm {layer.units}" + (" (last)" if layer.output == "last" else "")
