"""The matrix-level derivation of a spec: forward pass, loss and backward pass as ordered, named equations.

How it works
------------
The spec front end (`symbolic.spec_program`) writes the network as a `Program`: every array a
SymPy `Symbol` (`x`, `W1`, `z1`, ...), every step an equation `symbol = expression` over those
arrays. Elementwise operations are ordinary SymPy algebra (NumPy broadcasting semantics); the
operations that are not elementwise (`Matmul`, `Transposed`, `SumRows`, `Total`, `Softmax`,
`OneHot`, ...) are the functions of `symbolic.arrays`, each with its shape and gradient rule.
Nothing here depends on the layer widths: the batch size stays the symbol `N` unless the spec
fixes it.

    forward      each layer's own equations (`symbolic.layers`): z_l, a_l, and for a
                 normalization mu_l, var_l, sigma_l, xhat_l; a_0 is the input
    loss         L = c * Total(data(a_L, z_L, y)) + l2 * sum over the weights of Total(W**2)
                 (`symbolic.rules.LOSSES`; c is the scale divided by what "mean" averages over)
    backward     the reverse sweep and its naming, inlining and simplifying policies
                 (`symbolic.backward`), the same for a traced program
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .arrays import BATCH
from .backward import grad_name, gradient_steps
from .program import Program, Step, derive_program
from .spec import Network, as_network
from .spec_program import program_of


@dataclass(frozen=True)
class Derivation:
    network: Network
    steps: tuple[Step, ...]
    arrays: dict  # input, target and parameter names -> Symbol
    batch: sp.Expr  # the symbol N, or the spec's batch size
    output: sp.Symbol  # yhat, the last activation
    loss: sp.Symbol  # L
    gradients: dict  # differentiated array name -> Symbol of its gradient
    composites: tuple = ()  # the compact rules applied (normalizations)
    program: object = None  # the spec's program, which the steps were derived from

    def step(self, name: str) -> Step:
        found = next((s for s in self.steps if s.name == name), None)
        if found is None:
            raise KeyError(f"no step named {name!r}; the steps are {', '.join(s.name for s in self.steps)}")
        return found

    def closed_form(self, name: str) -> sp.Expr:
        """dL/d(name) in terms of the forward pass: every delta substituted by its definition."""
        deltas = {s.symbol: s.expr for s in self.steps if s.stage == "backward"}
        expr = self.step(grad_name(name)).expr
        while expr.free_symbols & deltas.keys():
            expr = expr.xreplace(deltas)
        return expr

    def text(self) -> str:
        from .notation import text
        return text(self)

    def latex(self, elements: bool = False) -> str:
        """A complete LaTeX document (amsmath, amssymb); `elements`: every entry's closed form."""
        from .document import element_section, latex_document
        return latex_document(self, element_section(self) if elements else None)

    def markdown(self, elements: bool = False) -> str:
        """Markdown with `$$...$$` blocks, for GitHub and Jupyter."""
        from .document import element_section, markdown
        return markdown(self, element_section(self) if elements else None)

    def _repr_latex_(self) -> str:
        from .document import repr_latex
        return repr_latex(self)

    def _repr_markdown_(self) -> str:
        return self.markdown()


def derive(network: Network, compact: bool = True) -> Derivation:
    """The ordered, named steps of the forward and backward pass of `network` (or the preset or
    spec it names). `compact=False` leaves out the composite rules: the gradients through a
    normalization then take the staged chain rule, through its mean and variance. A traced
    `Program` gives its `ProgramDerivation`."""
    if isinstance(network, Program):
        return derive_program(network)
    network = as_network(network)
    n = BATCH if network.batch is None else sp.Integer(network.batch)
    program = program_of(network, n)
    steps, loss = gradient_steps(program, program.composites if compact else ())
    gradients = {s.of.name: s.symbol for s in steps if s.stage == "gradient"}
    gradients = {name: gradients[name] for name in network.differentiated}
    return Derivation(network, tuple(steps), {a.name: a.symbol for a in program.arrays}, n, program.prediction,
                      loss, gradients, program.composites, program)


__all__ = ["Derivation", "Step", "derive", "grad_name"]
