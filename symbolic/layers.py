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
        f.outputs.append(layer.definition.forward(f, layer, l, f.outputs[-1]))
    return f


class Body:
    """One time step of a loop being written (`symbolic.scan`): its arrays (a slice of each
    sequence, the carried states, the parameters) and its steps, named after the step t
    (`x_t`, `z1_t`, `h1_prev`). The names are taken in the outer forward pass as well: a loop's
    locals share the generated function's namespace."""

    def __init__(self, outer: Forward, name: str):
        self.outer, self.name, self.n = outer, name, outer.n
        self.row = True
        self.arrays = {}  # name -> symbol
        self.program_arrays = []  # program Arrays, in order
        self.shapes = {}
        self.steps = []
        self.composites = []
        self.sequences, self.carried, self.parameters = [], [], []

    def _take(self, name: str, shape: tuple, layer: int) -> sp.Symbol:
        symbol = sp.Symbol(name)
        if symbol in self.outer.shapes or symbol in self.shapes:
            raise ValueError(f"the forward pass writes {name} twice (layer {layer}): every step needs its own name")
        self.shapes[symbol] = tuple(sp.sympify(d) for d in shape)
        self.outer.shapes[symbol] = self.shapes[symbol]  # taken: no outer step may have the name
        return symbol

    def sequence(self, a: sp.Symbol, layer: int) -> sp.Symbol:
        """The slice a[:, t] of the outer sequence `a` (N, T, ...), named a_t."""
        from .program import Array
        shape = self.outer.shapes[a]
        name = f"{a.name}_t"
        symbol = self._take(name, (shape[0], *shape[2:]), layer)
        self.program_arrays.append(Array(name, self.shapes[symbol], "float64", "differentiated", "sequence"))
        self.sequences.append((name, a.name))
        return symbol

    def state(self, name: str, shape: tuple, layer: int, initial: str | None) -> sp.Symbol:
        """The state carried from the step before (`initial` at t = 0, an outer array; None: zeros)."""
        from .program import Array
        symbol = self._take(f"{name}_prev", shape, layer)
        self.program_arrays.append(Array(symbol.name, self.shapes[symbol], "float64", "differentiated", "state"))
        self.carried.append([symbol.name, None, initial])
        return symbol

    def parameter(self, name: str) -> sp.Symbol:
        from .program import Array
        symbol = sp.Symbol(name)
        if name in self.parameters:  # one array used twice in the step (weight = recurrent): one argument
            return symbol
        self.shapes[symbol] = self.outer.shapes[symbol]
        self.program_arrays.append(Array(name, self.shapes[symbol], "float64", "differentiated",
                                         self.outer.network.roles().get(name, "")))
        self.parameters.append(name)
        return symbol

    def step(self, name: str, expr: sp.Expr, rule: str, layer: int, role: str = "", activation=None) -> sp.Symbol:
        symbol = self._take(name, (), layer)
        self.shapes[symbol] = self.outer.shapes[symbol] = shape_of(expr, self.shapes)
        self.steps.append(Step(symbol, expr, self.shapes[symbol], rule=rule, layer=layer, role=role,
                               activation=activation))
        return symbol

    def carry(self, previous: sp.Symbol, new: sp.Symbol) -> None:
        """`new` is the state the next step takes as `previous`."""
        next(c for c in self.carried if c[0] == previous.name)[1] = new.name

    def loop(self, output: sp.Symbol, length: int, last: bool, words: str):
        """The `Loop` of this body, its value the `output` step over the steps (or the last one's)."""
        from .program import Program
        from .scan import Loop
        program = Program(name=self.name, arrays=tuple(self.program_arrays), steps=tuple(self.steps),
                          output=output, wrt=(), scalar=False, composites=tuple(self.composites))
        stored = {s.name: s.name.removesuffix("_t") for s in self.steps}
        if not last:
            stored[output.name] = self.name
        for step, name in stored.items():  # the values over all steps, (N, T, ...): taken too
            if name != self.name:
                shape = self.shapes[sp.Symbol(step)]
                self._take(name, (shape[0], length, *shape[1:]), self.steps[0].layer)
        return Loop(program, tuple(self.sequences), tuple(tuple(c) for c in self.carried), tuple(self.parameters),
                    output.name, length, self.name, stored, words, last)
