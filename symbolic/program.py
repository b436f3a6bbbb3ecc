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

from .arrays import Total, shape_of
from .sweep import sweep

ROLES = ("differentiated", "data", "upstream")


@dataclass(frozen=True)
class Array:
    """An argument of the program: its name, shape, NumPy dtype name and role (`ROLES`)."""

    name: str
    shape: tuple
    dtype: str
    role: str

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name)


@dataclass(frozen=True)
class Step:
    """One equation of the program: `symbol = expr`, of `shape` and `dtype`; `data`: not
    differentiated (a comparison, an index); `where`: the user's file and line."""

    symbol: sp.Symbol
    expr: sp.Expr
    shape: tuple
    dtype: str
    data: bool = False
    where: tuple = ("", 0)
    stage: str = "forward"  # "forward" or "loss"

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
        out = {a.symbol: tuple(sp.Integer(d) for d in a.shape) for a in self.arrays}
        out.update({s.symbol: tuple(sp.Integer(d) for d in s.shape) for s in self.steps})
        return out

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


@dataclass(frozen=True)
class GradientStep:
    """dL/d(`of`) = expr, named `symbol`."""

    symbol: sp.Symbol
    expr: sp.Expr
    of: sp.Symbol
    shape: tuple
    stage: str  # "backward" (an intermediate) or "gradient" (a wanted array)
    rule: str = ""

    @property
    def name(self) -> str:
        return self.symbol.name


@dataclass(frozen=True)
class ProgramDerivation:
    """The forward steps, the loss and the backward steps of a program, in order."""

    program: Program
    steps: tuple  # Step (forward, loss) then GradientStep
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


def grad_name(name: str) -> str:
    return f"dL_d{name}"


def derive_program(program: Program) -> ProgramDerivation:
    """The gradient steps of `program`: the reverse sweep over its steps, every gradient named
    dL_d<name>, each written in terms of the forward results by name."""
    from .derive import _in_output_terms, _inline, _simplify, _sums_factored

    steps = list(program.steps)
    shapes = program.shapes()
    if program.scalar:
        loss = program.output
    else:  # L = sum(out * dout): the gradients are vector-Jacobian products with dout
        dout = sp.Symbol("dout")
        taken = {s.name for s in steps} | set(program.inputs)
        loss = next(sp.Symbol(name) for name in ("L", "L_dout", "L_dout_sum") if name not in taken)
        steps.append(Step(loss, Total(program.output * dout), (), "float64", stage="loss"))
        shapes[loss] = ()
    data = frozenset(s.symbol for s in steps if s.data)
    wanted = tuple(sp.Symbol(name) for name in program.wrt)

    def name(symbol):
        return sp.Symbol(grad_name(symbol.name))

    grads = sweep([(s.symbol, s.expr) for s in steps], loss, wanted, shapes, name, data=data)
    outputs = {s.expr: s.symbol for s in steps if not s.expr.is_Atom and not s.data}
    roots = {s.expr: s.symbol for s in steps if s.expr.is_Pow and not s.expr.exp.is_Integer}
    for grad in grads:
        grad.terms = [_in_output_terms(term, outputs, roots) for term in grad.terms]
    grads = _inline(grads, keep={name(s) for s in wanted})
    grads = _inline_constants(grads, {name(s) for s in wanted},
                              data | {a.symbol for a in program.arrays if a.role == "data"})
    shapes.update({grad.symbol: shapes[grad.of] for grad in grads})
    backward = []
    for grad in grads:
        expr = _sums_factored(grad.expr, shapes)
        expr = _simplify(expr) if len(grad.terms) == 1 else expr
        stage = "gradient" if grad.of in wanted else "backward"
        backward.append(GradientStep(grad.symbol, expr, grad.of, shape_of(grad.of, shapes), stage))
    found = {g.of.name: g.symbol for g in backward if g.stage == "gradient"}
    gradients = {w: found.get(w) for w in program.wrt}
    forward = [s if s.symbol != loss else Step(s.symbol, s.expr, s.shape, s.dtype, s.data, s.where, "loss")
               for s in steps]
    return ProgramDerivation(program, tuple(forward + backward), loss, gradients)


def _inline_constants(grads: list, keep: set, data: set) -> list:
    """A gradient made of data and numbers only (-onehot(y, K)/N), used by one other gradient,
    written into it: softmax's rule then meets the one-hot rows and gives (softmax - onehot)/N."""
    for grad in list(grads):
        if grad.symbol in keep or not grad.expr.free_symbols <= data:
            continue
        users = [other for other in grads if any(term.has(grad.symbol) for term in other.terms)]
        if len(users) == 1:
            users[0].terms = [term.xreplace({grad.symbol: grad.expr}) for term in users[0].terms]
            grads = [g for g in grads if g is not grad]
    return grads


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
