"""The program: one representation of a differentiable computation, between front ends and back ends.

A `Program` is what `symprop.trace` records from a user's NumPy function: its arrays (with
shapes, dtypes and what each is), its steps in order (each a named equation `symbol = expr` over
whole arrays, with the file and line that computed it), its output, and the names to
differentiate. `derive_program` turns it into the same named, ordered gradient steps the spec's
derivations have, by the one reverse sweep (`symbolic.sweep`).

Notation: the steps keep the learner's own names (the local variables that held them); the
gradient of the scalar L with respect to an array `a` is `dL_da`. For a function that returns an
array `out`, L = sum(out * dout), `dout` the upstream gradient given by the caller (cs231n's
`backward(dout, cache)`): its gradients are vector-Jacobian products.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from .backward import gradient_steps

ROLES = ("differentiated", "data", "upstream")


@dataclass(frozen=True)
class Array:
    """An argument of the program: its name, shape, NumPy dtype name and role (`ROLES`)."""

    name: str
    shape: tuple
    dtype: str
    role: str
    part: str = ""  # what it is to its front end, in words: "weight", "bias", "input", ...

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name)


@dataclass(frozen=True)
class Step:
    """One equation `symbol = expr`, of `shape` and `dtype`: a step of the forward pass (`stage`
    "forward" or "loss") or of the backward pass ("backward": an intermediate's gradient;
    "gradient": a wanted one, `of` the array it is the gradient of). `data`: not differentiated
    (a comparison, an index); `where`: the user's file and line. What the front end knows of it:
    `rule` (in words), `layer` (1-based, 0: none), `role` (forward: "pre-activation",
    "activation"; backward: "delta"), the `activation` it applies, `notes` for display."""

    symbol: sp.Symbol
    expr: sp.Expr
    shape: tuple
    dtype: str = "float64"
    data: bool = False
    where: tuple = ("", 0)
    stage: str = "forward"
    rule: str = ""
    layer: int = 0
    role: str = ""
    activation: str | None = None
    of: sp.Symbol | None = None
    notes: dict = field(default_factory=dict, compare=False)
    unsimplified: sp.Expr | None = field(default=None, compare=False)  # the sum of the pulls, as the sweep gave it
    sources: tuple = field(default=(), compare=False)  # per pull: the step or composite rule it came through
    composites: tuple = field(default=(), compare=False)  # the composite rules applied in it

    @property
    def name(self) -> str:
        return self.symbol.name


@dataclass(frozen=True)
class Program:
    """A traced computation: `arrays` (its arguments, in the function's order), `steps`, the
    `output` symbol (a scalar loss, or an array with its upstream gradient `dout`), the names to
    differentiate (`wrt`, arguments or intermediates) and where it came from."""

    name: str
    arrays: tuple[Array, ...]
    steps: tuple[Step, ...]
    output: sp.Symbol
    wrt: tuple[str, ...]
    scalar: bool = True  # the output is a scalar loss; else an array, with `dout`
    source: str = ""  # file:function
    constants: dict = field(default_factory=dict, compare=False)  # Python-number arguments, by name
    values: dict = field(default_factory=dict, compare=False)  # the example arrays traced with, by name
    function: object = field(default=None, compare=False, repr=False)  # the function traced
    origin: str = field(default="", compare=False)  # the command-line arguments that trace it again
    groups: dict = field(default_factory=dict, compare=False)  # a dict argument's name -> its keys (params)
    composites: tuple = field(default=(), compare=False)  # compact rules the sweep may apply (a normalization's)
    prediction: sp.Symbol | None = None  # the model's output before the loss (a spec's last activation)
    narrowed: bool = field(default=False, compare=False)  # it makes a float64 value float32 (.astype)
    bounds: dict = field(default_factory=dict, compare=False)  # a data array that indexes -> the axis's length

    @property
    def parameters(self) -> tuple[str, ...]:
        return self.wrt

    @property
    def differentiated(self) -> tuple[str, ...]:
        return self.wrt

    @property
    def inputs(self) -> tuple[str, ...]:
        """The argument names the generated functions take, in order (dout last)."""
        return tuple(a.name for a in self.arrays)

    def array(self, name: str) -> Array:
        return next(a for a in self.arrays if a.name == name)

    def shapes(self) -> dict:
        """The shape of every argument and step, by symbol (SymPy integers)."""
        out = {a.symbol: tuple(sp.sympify(d) for d in a.shape) for a in self.arrays}
        out.update({s.symbol: tuple(sp.sympify(d) for d in s.shape) for s in self.steps})
        return out

    def step(self, name: str) -> Step:
        found = next((s for s in self.steps if s.name == name), None)
        if found is None:
            raise KeyError(f"no step named {name!r}; the steps are {', '.join(s.name for s in self.steps)}")
        return found


@dataclass(frozen=True)
class ProgramDerivation:
    """The forward steps, the loss and the backward steps of a program, in order."""

    program: Program
    steps: tuple  # forward and loss steps, then backward and gradient steps
    loss: sp.Symbol
    gradients: dict  # wrt name -> symbol of its gradient (None: the loss does not depend on it)

    def text(self) -> str:
        from .notation import program_text
        return program_text(self)

    def latex(self, elements: bool = False) -> str:
        from .notation import program_latex
        return program_latex(self)

    def markdown(self, elements: bool = False) -> str:
        from .notation import program_markdown
        return program_markdown(self)

    def _repr_markdown_(self) -> str:
        return self.markdown()


def derive_program(program: Program) -> ProgramDerivation:
    """The gradient steps of `program`: the reverse sweep over its steps, every gradient named
    dL_d<name>, each written in terms of the forward results by name."""
    steps, loss = gradient_steps(program, program.composites)
    found = {s.of.name: s.symbol for s in steps if s.stage == "gradient"}
    return ProgramDerivation(program, tuple(steps), loss, {w: found.get(w) for w in program.wrt})


def needed_steps(steps, wanted) -> list:
    """The steps that the symbols `wanted` depend on, in order."""
    needed, kept = set(wanted), []
    for step in reversed(steps):
        if step.symbol in needed:
            kept.append(step)
            needed |= step.expr.free_symbols
    return kept[::-1]


def evaluate_steps(program: Program, values: dict) -> dict:
    """Every step's value, `values` giving the arguments' (NumPy arrays of floats, or object arrays
    of SymPy numbers or symbols: then the values are exact expressions)."""
    from .arrays import evaluate
    env = {sp.Symbol(name): value for name, value in values.items()}
    for step in program.steps:
        env[step.symbol] = evaluate(step.expr, env)
    return env


def element_gradients(program: Program, values: dict) -> dict:
    """The exact gradients of a scalar program at `values` (floats, taken as the rationals they
    are), entry by entry: the loss written out over symbols for every entry of every
    differentiated argument, differentiated by SymPy, evaluated exactly. The element-level
    oracle: it shares nothing with the matrix-level derivation but the forward operations'
    values. For small programs only; `wrt` names arguments only."""
    if not program.scalar:
        raise ValueError("the element-level oracle takes a scalar program")
    entries, point, symbolic = {}, {}, {}
    for array in program.arrays:
        value = np.asarray(values[array.name])
        if array.name in program.wrt:
            cells = np.empty(value.shape, dtype=object)
            for index in np.ndindex(value.shape):
                name = f"{array.name}_{'_'.join(map(str, index))}" if index else array.name
                cells[index] = sp.Symbol(name, real=True)
                point[cells[index]] = sp.Rational(float(value[index]))
            entries[array.name] = cells
            symbolic[array.name] = cells
        else:
            symbolic[array.name] = value
    from .rules import explicit
    loss = evaluate_steps(program, symbolic)[program.output]
    loss = loss.item() if isinstance(loss, np.ndarray) else loss
    out = {}
    for name, cells in entries.items():
        grad = np.empty(cells.shape, dtype=object)
        for index in np.ndindex(cells.shape):
            grad[index] = explicit(sp.diff(loss, cells[index]).xreplace(point))  # sigmoid(1/3) written out
        out[name] = grad
    return out
