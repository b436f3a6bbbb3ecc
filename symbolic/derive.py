"""The matrix-level derivation: forward pass, loss and backward pass as ordered, named equations.

How it works
------------
Every array of the network is a SymPy `Symbol` (`x`, `W1`, `z1`, `delta2`, ...), and every step
is an equation `symbol = expression` over those arrays. Elementwise operations are ordinary SymPy
algebra (NumPy broadcasting semantics); the operations that are not elementwise (`Matmul`,
`Transposed`, `Outer`, `SumRows`, `Total`, `RowSum`, `Softmax`, `OneHot`) are the opaque
functions of `symbolic.arrays`. Nothing here depends on the layer widths: the cost of a
derivation grows with the depth only, and the batch size stays the symbol `N` unless the spec
fixes it.

The chain rule is applied here, one rule per layer kind, while SymPy does the scalar calculus:

    forward      z_l = affine(a_{l-1}, W_l, b_l)          a_l = f_l(z_l)           (a_0 = input)
    loss         L = c * Total(ell(a_L, y)) + l2 * sum_l Total(W_l**2)
    output       delta_L = dL/dz_L = c * (dell/da)(a_L) * f_L'(z_L)     (SymPy: diff, cancel)
                 softmax: delta_L = c * a_L * (g - RowSum(a_L * g)),  g = dell/da
    hidden       delta_{l-1} = back(delta_l, W_l) * f_{l-1}'(z_{l-1})
    gradients    dL/dW_l = weight_grad(a_{l-1}, delta_l) + 2 l2 W_l
                 dL/db_l = bias_grad(delta_l)    (Total(delta_l) for a shared bias)
                 dL/dx   = back(delta_1, W_1)

`affine`, `weight_grad`, `bias_grad` and `back` are the layout's rules (`LAYOUT_RULES`); `c` is
the loss's scale divided by the count that `reduction = "mean"` averages over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from . import rules
from .arrays import Matmul, OneHot, Outer, RowSum, Softmax, SumRows, Total, Transposed
from .spec import Network, as_network


@dataclass(frozen=True)
class LayoutRules:
    affine: callable  # (previous activation, W, b or None) -> z
    weight_grad: callable  # (previous activation, delta) -> dL/dW
    bias_grad: callable  # delta -> dL/db
    back: callable  # (delta, W) -> dL/d(previous activation)
    affine_text: str
    weight_text: str


def _plus(expr, bias):
    return expr if bias is None else expr + bias


LAYOUT_RULES = {
    "row": LayoutRules(
        affine=lambda prev, W, b: _plus(Matmul(prev, W), b),
        weight_grad=lambda prev, delta: Matmul(Transposed(prev), delta),
        bias_grad=SumRows,
        back=lambda delta, W: Matmul(delta, Transposed(W)),
        affine_text="Z = A @ W + b, one row per sample",
        weight_text="dL/dW = A^T @ delta, summed over the batch",
    ),
    "column": LayoutRules(
        affine=lambda prev, W, b: _plus(Matmul(W, prev), b),
        weight_grad=lambda prev, delta: Outer(delta, prev),
        bias_grad=lambda delta: delta,
        back=lambda delta, W: Matmul(Transposed(W), delta),
        affine_text="z = W @ a + b, one sample",
        weight_text="dL/dW = delta a^T (outer product)",
    ),
}


@dataclass(frozen=True)
class Step:
    """One named equation: `symbol = expr`."""

    symbol: sp.Symbol
    expr: sp.Expr
    stage: str  # "forward", "loss", "backward" (deltas) or "gradient"
    rule: str  # the rule applied, in words
    shape: tuple
    notes: dict = field(default_factory=dict, compare=False)  # extra SymPy objects for display

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


def derive(network: Network) -> Derivation:
    """The ordered, named steps of the forward and backward pass of `network` (or the preset or
    spec it names)."""
    network = as_network(network)
    layout = LAYOUT_RULES[network.layout]
    shapes = network.shapes()
    arrays = {name: sp.Symbol(name) for name in shapes}
    n = sp.Symbol("N", integer=True, positive=True) if network.batch is None else sp.Integer(network.batch)
    rows = network.layout == "row"
    steps: list[Step] = []

    def add(name, expr, stage, rule, shape, **notes):
        symbol = sp.Symbol(name)
        steps.append(Step(symbol, expr, stage, rule, shape, notes))
        return symbol

    def shape_of(units):
        return (n, units) if rows else (units,)

    # Forward pass.
    previous, pre, post = arrays[network.input], [], []
    for i, layer in enumerate(network.layers, 1):
        bias = arrays[layer.bias] if layer.bias is not None else None
        z_i = add(f"z{i}", layout.affine(previous, arrays[layer.weight], bias), "forward",
                  "affine map: " + layout.affine_text, shape_of(layer.units))
        rule = rules.ACTIVATIONS[layer.activation]
        if rule.f is None:
            expr = Softmax(z_i)
        else:
            expr, _ = rule.at(z_i, z_i, layer.negative_slope)
        a_i = add(f"a{i}", expr, "forward", f"activation: {layer.activation}", shape_of(layer.units))
        pre.append(z_i)
        post.append(a_i)
        previous = a_i

    # Loss.
    loss_rule = rules.LOSSES[network.loss.kind]
    target = arrays[network.target]
    if network.loss.labels:
        target = OneHot(target, network.outputs)
    count = sp.S.One
    if network.loss.reduction == "mean":
        per_sample = network.outputs if loss_rule.per == "element" else 1
        count = (n if rows else 1) * per_sample
    c = sp.Rational(repr(network.loss.scale)) / count
    yhat = post[-1]
    if loss_rule.logits is not None:  # from the logits: finite where yhat rounds to 0 or 1
        ell = loss_rule.logits.subs({rules.z: pre[-1], rules.y: target})
    else:
        ell = loss_rule.ell.subs({rules.a: yhat, rules.y: target})
    l2 = sp.Rational(repr(network.loss.l2))
    penalty = sum((Total(arrays[layer.weight] ** 2) for layer in network.layers), sp.S.Zero)
    loss = add("L", c * Total(ell) + l2 * penalty, "loss",
               f"{loss_rule.name}, {network.loss.reduction}"
               + (f", scale {network.loss.scale:g}" if network.loss.scale != 1 else "")
               + (f", l2 {network.loss.l2:g}" if l2 else ""), ())

    # Output error.
    last = network.layers[-1]
    g = sp.diff(loss_rule.ell, rules.a).subs({rules.a: yhat, rules.y: target})
    if last.activation == "softmax":
        raw = yhat * (g - RowSum(yhat * g))
        expr = sp.factor_terms(c * min((raw, sp.expand(raw)), key=sp.count_ops))
        rule = "chain rule through softmax: delta = yhat * (g - RowSum(yhat * g)), g = d ell/d yhat"
        notes = {"activation": "softmax", "scale": c, "dell": g, "unsimplified": c * raw}
    else:
        _, df = rules.ACTIVATIONS[last.activation].at(pre[-1], yhat, last.negative_slope)
        expr = _simplify(c * g * df)
        rule = f"chain rule: delta = d ell/d yhat * {last.activation}'(z)"
        notes = {"activation": last.activation, "scale": c, "dell": g, "df": df,
                 "unsimplified": sp.Mul(c, g, df, evaluate=False)}
    delta = add(f"delta{len(network.layers)}", expr, "backward", rule, shape_of(last.units), **notes)

    # Backward pass, last layer first.
    gradients = {}
    for i in range(len(network.layers), 0, -1):
        layer = network.layers[i - 1]
        previous = post[i - 2] if i > 1 else arrays[network.input]
        W = arrays[layer.weight]
        expr, rule = layout.weight_grad(previous, delta), "weight gradient: " + layout.weight_text
        if l2:
            expr, rule = expr + 2 * l2 * W, rule + " + 2 l2 W"
        gradients[layer.weight] = add(grad_name(layer.weight), expr, "gradient", rule, shapes[layer.weight])
        if layer.bias is not None:
            if layer.shared_bias:
                expr, rule = Total(delta), "shared bias gradient: sum of every delta"
            else:
                expr, rule = layout.bias_grad(delta), "bias gradient: delta" + (" summed over the batch" if rows else "")
            gradients[layer.bias] = add(grad_name(layer.bias), expr, "gradient", rule, shapes[layer.bias])
        if i > 1:
            below = network.layers[i - 2]
            _, df = rules.ACTIVATIONS[below.activation].at(pre[i - 2], post[i - 2], below.negative_slope)
            delta = add(f"delta{i - 1}", layout.back(delta, W) * df, "backward",
                        f"chain rule: delta = (back-propagated error) * {below.activation}'(z)",
                        shape_of(below.units), activation=below.activation, df=df)
        elif network.wrt_input:
            gradients[network.input] = add(grad_name(network.input), layout.back(delta, W), "gradient",
                                           "input gradient: the error propagated through W", shapes[network.input])

    gradients = {name: gradients[name] for name in network.differentiated}
    return Derivation(network, tuple(steps), arrays, n, yhat, loss, gradients)


def _simplify(expr: sp.Expr) -> sp.Expr:
    """The shorter of `expr` and its cancelled form, common numeric factors pulled out."""
    candidates = [sp.factor_terms(expr)]
    if not expr.has(sp.Piecewise):
        candidates.append(sp.factor_terms(sp.cancel(expr)))
    return min(candidates, key=sp.count_ops)  # the first on a tie
