"""The matrix-level derivation: forward pass, loss and backward pass as ordered, named equations.

How it works
------------
Every array of the network is a SymPy `Symbol` (`x`, `W1`, `z1`, `delta2`, ...), and every step
is an equation `symbol = expression` over those arrays. Elementwise operations are ordinary SymPy
algebra (NumPy broadcasting semantics); the operations that are not elementwise (`Matmul`,
`Transposed`, `SumRows`, `Total`, `RowSum`, `Softmax`, `OneHot`, ...) are the functions of
`symbolic.arrays`, each with its shape and gradient rule. Nothing here depends on the layer
widths: the batch size stays the symbol `N` unless the spec fixes it.

    forward      each layer's own equations (`symbolic.layers`): z_l, a_l, and for a
                 normalization mu_l, var_l, sigma_l, xhat_l; a_0 is the input
    loss         L = c * Total(data(a_L, z_L, y)) + l2 * sum over the weights of Total(W**2)
                 (`symbolic.rules.LOSSES`; c is the scale divided by what "mean" averages over)
    backward     the reverse sweep (`symbolic.sweep`): every gradient is the sum of the pulls of
                 every use of its array, each operation pulling by its own rule

Then three policies turn the sweep's output into the steps one writes by hand:
    naming       delta_l = dL/dz_l for a pre-activation, dL_d<name> for anything else
    output terms every forward expression in a gradient written as its name (sigma(z1) as a1)
    inlining     a gradient used by one other only, and neither a delta nor asked for, is
                 written into that one (dL/da1 appears inside delta1)
and the shorter of each gradient and its cancelled form is kept (`_simplify`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from . import layers, rules
from .arrays import BATCH, ArrayFunction, OneHot, PerChannel, SumAxes, SumRows, Total, shape_of
from .spec import Network, as_network
from .sweep import Composite, sweep


@dataclass(frozen=True)
class Step:
    """One named equation: `symbol = expr`."""

    symbol: sp.Symbol
    expr: sp.Expr
    stage: str  # "forward", "loss", "backward" (deltas) or "gradient"
    rule: str  # the rule applied, in words
    shape: tuple
    notes: dict = field(default_factory=dict, compare=False)  # extra SymPy objects for display
    layer: int = 0  # the 1-based layer that computes it (0: none)
    role: str = ""  # forward: "pre-activation", "activation" or ""; gradients: the array's role
    activation: str | None = None  # the activation a forward step applies
    of: sp.Symbol | None = None  # a gradient step: the array it is the gradient of
    unsimplified: sp.Expr | None = field(default=None, compare=False)  # the sum of the pulls, as the sweep gave it
    sources: tuple = field(default=(), compare=False)  # per pull: the step or composite rule it came through
    composites: tuple = field(default=(), compare=False)  # the composite rules applied in it

    @property
    def name(self) -> str:
        return self.symbol.name


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

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

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


def grad_name(name: str) -> str:
    return f"dL_d{name}"


def derive(network: Network, compact: bool = True) -> Derivation:
    """The ordered, named steps of the forward and backward pass of `network` (or the preset or
    spec it names). `compact=False` leaves out the composite rules: the gradients through a
    normalization then take the staged chain rule, through its mean and variance. A traced
    `Program` gives its `ProgramDerivation`."""
    from .program import Program, derive_program
    if isinstance(network, Program):
        return derive_program(network)
    network = as_network(network)
    n = BATCH if network.batch is None else sp.Integer(network.batch)
    f, forward = forward_pass(network, n)
    backward = _backward(network, f, forward, f.composites if compact else ())
    gradients = {s.of.name: s.symbol for s in backward if s.stage == "gradient"}
    gradients = {name: gradients[name] for name in network.differentiated}
    return Derivation(network, tuple(forward + backward), f.arrays, n, f.outputs[-1], forward[-1].symbol,
                      gradients, tuple(f.composites))


def forward_pass(network: Network, n) -> tuple[layers.Forward, list[Step]]:
    """The forward steps of `network` and its loss (the last step), the batch size `n`."""
    f = layers.forward(network, n)
    _loss(network, f)
    return f, [Step(symbol, expr, "loss" if role == "loss" else "forward", rule, f.shapes[symbol],
                    {"scale": f.loss_scale} if role == "loss" else {}, layer=layer, role=role, activation=activation)
               for symbol, expr, rule, layer, role, activation in f.steps]


def _loss(network: Network, f: layers.Forward) -> None:
    spec = network.loss
    rule = rules.LOSSES[spec.kind]
    target = f.arrays[network.target]
    if spec.labels:
        target = OneHot(target, network.outputs)
    count = sp.S.One
    if spec.reduction == "mean":
        per_sample = network.outputs if rule.per == "element" else 1
        count = (f.n if f.row else 1) * per_sample
    c = sp.Rational(repr(spec.scale)) / count
    data = rule.data(f, f.outputs[-1], f.pre, target, spec)
    l2 = sp.Rational(repr(spec.l2))
    penalty = sum((Total(f.arrays[name] ** 2) for name in network.weights), sp.S.Zero)
    words = (f"{rule.name}, {spec.reduction}" + (f", scale {spec.scale:g}" if spec.scale != 1 else "")
             + (f", margin {spec.margin:g}" if spec.kind == "multiclass_hinge" else "")
             + (f", l2 {spec.l2:g}" if l2 else ""))
    samples = f.n if f.row else sp.S.One
    f.step("L", c * (Total(data) - rule.per_sample(spec) * samples) + l2 * penalty, words, 0, "loss")
    f.loss_scale = c  # the factor of the data term, for display


def _backward(network: Network, f: layers.Forward, forward: list, composites) -> list[Step]:
    """The sweep's gradients as steps: named, in the output's terms, inlined, simplified."""
    deltas = {s.symbol: s.layer for s in forward if s.role == "pre-activation"}
    roles = network.roles()
    delta_names = {}  # unique by construction: a layer's second pre-activation is delta<l>_2, never merged
    for symbol, layer in deltas.items():
        base = f"delta{layer}"
        count = sum(1 for taken in delta_names.values() if taken == base or taken.startswith(base + "_"))
        delta_names[symbol] = base if not count else f"{base}_{count + 1}"

    def name(symbol):
        return sp.Symbol(delta_names[symbol]) if symbol in deltas else sp.Symbol(grad_name(symbol.name))

    wanted = tuple(f.arrays[name] for name in network.differentiated)
    grads = sweep([(s.symbol, s.expr) for s in forward], forward[-1].symbol, wanted, f.shapes, name, composites)
    outputs = {s.expr: s.symbol for s in forward if not s.expr.is_Atom}  # sigma(z1) -> a1
    roots = {s.expr: s.symbol for s in forward if s.expr.is_Pow and not s.expr.exp.is_Integer}
    for grad in grads:
        grad.terms = [_in_output_terms(term, outputs, roots) for term in grad.terms]
    grads = _inline(grads, keep={name(s) for s in deltas} | {name(s) for s in wanted})

    steps, named = [], {}
    shapes = f.shapes | {grad.symbol: f.shapes[grad.of] for grad in grads}
    for grad in grads:
        expr = _sums_factored(grad.expr, shapes)
        expr = _simplify(expr) if len(grad.terms) == 1 else expr
        expr = expr.xreplace(named)  # a sum computed already, by its name: sum_rows(delta2) = dL_dbeta2
        if grad.of in wanted and isinstance(expr, SumRows):
            named[expr] = grad.symbol
        if grad.of in wanted and isinstance(expr, SumAxes) and not expr.args[2] and expr.args[1] == _CHANNEL_SUM:
            named[SumAxes(expr.args[0], _CHANNEL_SUM, sp.S.One)] = PerChannel(grad.symbol)  # kept axes: broadcasts
        words = _through(grad, {s.symbol: s for s in forward})
        if grad.of in wanted:
            stage, role = "gradient", roles[grad.of.name]
            words = f"{role} gradient: " + words
        else:
            stage, role = "backward", "delta" if grad.of in deltas else ""
            words = "chain rule: " + words
        steps.append(Step(grad.symbol, expr, stage, words, f.shapes[grad.of], layer=deltas.get(grad.of, 0),
                          role=role, of=grad.of, unsimplified=grad.expr, sources=tuple(grad.sources),
                          composites=tuple(grad.composites)))
    return steps


def _in_output_terms(expr, outputs: dict, roots: dict):
    """`expr` with every forward expression written by its name; a power of a root too:
    (var + eps)**(-3/2) is sigma**(-3) where sigma = sqrt(var + eps)."""
    expr = expr.xreplace(outputs)
    for root, symbol in roots.items():
        expr = expr.replace(lambda e: e.is_Pow and e.base == root.base and (e.exp / root.exp).is_Integer,
                            lambda e: symbol ** (e.exp / root.exp))
    return expr


def _through(grad, forward: dict) -> str:
    """Where a gradient's pulls came from, in words."""
    from .notation import TextPrinter

    def one(source):
        if isinstance(source, Composite):
            return f"the {source.name} rule through {source.output} (the sums of a - mean vanish)"
        if isinstance(source, tuple):
            return " and ".join(one(s) for s in source) + ", broadcast"
        step = forward[source]
        if step.role == "loss":
            return "the loss L"
        if step.activation and step.activation not in ("identity", "softmax") and step.expr.has(grad.of):
            return f"dL/d{source} * {step.activation}'({grad.of})"
        if step.activation == "identity" and step.expr == grad.of:
            return f"dL/d{source} (identity)"
        return f"{source} = {TextPrinter().doprint(step.expr)}"

    names = [one(source) for source in grad.sources]
    if len(names) > 1:
        words = "the sum over its uses: " + ", ".join(names)
    else:
        words = names[0] if names[0].startswith("dL/d") else "through " + names[0]
    inlined = [c for c in grad.composites if c not in grad.sources]
    return words + "".join(f", with the {c.name} rule through {c.output}" for c in inlined)


def _inline(grads: list, keep: set) -> list:
    """Each gradient not in `keep` that is used once, or used by one other only and is a mere
    product of arrays (gamma2*delta2), written into that one."""
    def uses(symbol):
        return sum(term.count(symbol) for g in grads for term in g.terms)

    def users(symbol):
        return sum(any(term.has(symbol) for term in g.terms) for g in grads)

    def inlined(grad) -> bool:
        if grad.symbol in keep or _named(grad.expr):
            return False
        if (grad.composites or len(grad.terms) > 1) and any(_named(other.expr) and other.expr.has(grad.symbol)
                                                            for other in grads):
            return False  # a normalization's rule (or its staged sum) stays a step, not an image operation's argument
        return uses(grad.symbol) == 1 or users(grad.symbol) == 1 and len(grad.terms) == 1 and _array_product(grad.expr)

    changed = True
    while changed:
        changed = False
        for grad in grads:
            if not inlined(grad):
                continue
            for other in grads:
                if any(term.has(grad.symbol) for term in other.terms):
                    other.terms = [term.xreplace({grad.symbol: grad.expr}) for term in other.terms]
                    other.composites = other.composites + grad.composites
            grads = [g for g in grads if g is not grad]
            changed = True
            break
    return grads


def _named(expr) -> bool:
    """Whether `expr` applies an operation whose result keeps its name (an image's gradient)."""
    return any(op.named for op in expr.atoms(ArrayFunction))


def _array_product(expr) -> bool:
    """A product of named arrays and numbers: gamma2*delta2 (gamma2 per channel of an image too)."""
    return expr.is_Mul and all(factor.is_Symbol or factor.is_Number or isinstance(factor, PerChannel)
                               and factor.args[0].is_Symbol for factor in expr.args)


_CHANNEL_SUM = sp.Tuple(0, 2, 3)  # the axes of a per-channel sum over an image batch


def _sums_factored(expr, shapes: dict):
    """Every sum over the batch (or over axes of an image batch) with the factors that do not
    vary along it taken out: sum_rows(gamma2*delta2) = gamma2*sum_rows(delta2) (gamma2 is the
    same in every row)."""
    def factored(op):
        arg = op.args[0]
        if not arg.is_Mul:
            return op
        rows = len(shape_of(arg, shapes))
        axes = (0,) if isinstance(op, SumRows) else tuple(int(k) for k in op.args[1])

        def constant(f):  # of length one (or absent) along every summed axis
            shape = shape_of(f, shapes)
            return all(k < rows - len(shape) or shape[k - rows + len(shape)] == 1 for k in axes)
        outside = [f for f in arg.args if constant(f)]
        if not outside or rows < 2 or len(outside) == len(arg.args):
            return op
        return sp.Mul(*outside) * op.func(sp.Mul(*(f for f in arg.args if f not in outside)), *op.args[1:])
    return expr.replace(lambda e: isinstance(e, (SumRows, SumAxes)), factored)


def _simplify(expr: sp.Expr) -> sp.Expr:
    """The shorter of `expr` and its cancelled form, common numeric factors pulled out."""
    candidates = [sp.factor_terms(expr)]
    if not expr.has(sp.Piecewise):
        candidates.append(sp.factor_terms(sp.cancel(expr)))
    return min(candidates, key=sp.count_ops)  # the first on a tie
