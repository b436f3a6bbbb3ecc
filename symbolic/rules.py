"""The rule table: every activation and every loss, one entry each.

Notation (used everywhere: derivations, generated code, reports):
    z   a layer's pre-activation,          a = f(z)  its output (the activation);
    y   the target,                        yhat = a of the last layer;
    ell the per-element loss, ell(yhat, y), summed (and scaled) into the loss L.

An activation gives `f(z)` as a SymPy expression in the scalar `z`, and `df`: its derivative in
the cheapest closed form, in terms of the output `a` where that is natural (sigma' = a (1 - a)).
SymPy computes the derivative itself (`Activation.derivative`); the tests prove `df` equal to it.
At a kink `df` follows PyTorch: relu'(0) = 0, leaky_relu'(0) = negative_slope.

In the derivation an activation is applied as a SymPy function (`Activation.function`, a
subclass of `ElementwiseBase`) whose derivative is `df` with `a` the function itself: the sweep then
writes it in the layer's output (a1 (1 - a1)). Softmax acts on a whole row: it is the array
operation `symbolic.arrays.Softmax`, with its own rule there.

A loss gives `data(forward, yhat, z, y, loss)`: the array whose entries, summed, make the data
term (before the scale and the mean), from the last layer's output yhat and, where that is
stable, its pre-activation z (log-softmax and softplus never take the log of an underflowed 0);
it may name intermediate steps of its own on `forward` (the hinge's margins).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .arrays import LogSoftmax, RowSum

z, a, y = sp.symbols("z a y", real=True)
slope = sp.Symbol("s", positive=True)  # leaky_relu's negative slope


class ElementwiseBase(sp.Function):
    """An activation applied entry by entry: f of the table, with derivative df of the table."""

    rule: Activation  # set on each subclass

    @classmethod
    def eval(cls, *args):
        if all(arg.is_Number for arg in args):  # a number: f's value (the oracle's arithmetic)
            return cls.rule.f.xreplace({z: args[0], slope: args[-1]})
        return None

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return self.rule.df.xreplace(self._point(a=self))

    def explicit(self) -> sp.Expr:
        """f(z) written out (`1/(1 + exp(-z))`): what SymPy differentiates on its own."""
        return self.rule.f.xreplace(self._point())

    def _point(self, **extra):
        point = {z: self.args[0], **{globals()[k]: v for k, v in extra.items()}}
        if len(self.args) > 1:
            point[slope] = self.args[1]
        return point


class Sigmoid(ElementwiseBase):
    """The logistic function (its rule is the table's "sigmoid" entry)."""

    @classmethod
    def eval(cls, u):
        if u.could_extract_minus_sign():  # sigma(-u) = 1 - sigma(u): one function, not two
            return 1 - cls(-u)
        return super().eval(u)


@dataclass(frozen=True)
class Activation:
    name: str
    latex: str  # the function's name in LaTeX, applied as latex(z)
    f: sp.Expr | None  # f(z); None for softmax
    df: sp.Expr | None  # f'(z) in terms of z and a = f(z)

    @property
    def derivative(self) -> sp.Expr:
        """f'(z) as SymPy computes it."""
        return sp.diff(self.f, z)

    @property
    def function(self) -> type | None:
        """The SymPy function that applies this activation (None for identity and softmax)."""
        return _FUNCTIONS.get(self.name)

    def apply(self, pre: sp.Expr, negative_slope=0.01) -> sp.Expr:
        """f(pre) as the derivation writes it: the function applied (pre itself for identity)."""
        if self.name == "identity":
            return pre
        if self.name == "leaky_relu":
            return self.function(pre, sp.Rational(repr(float(negative_slope))))
        return self.function(pre)


def _relu(z):
    return sp.Max(z, 0)


def _leaky_relu(z):
    return sp.Max(z, 0) + slope * sp.Min(z, 0)  # any slope, not only 0 < s < 1


ACTIVATIONS = {
    "identity": Activation("identity", r"\operatorname{id}", z, sp.S.One),
    "sigmoid": Activation("sigmoid", r"\sigma", 1 / (1 + sp.exp(-z)), a * (1 - a)),
    "tanh": Activation("tanh", r"\tanh", sp.tanh(z), 1 - a**2),
    "relu": Activation("relu", r"\operatorname{relu}", _relu(z), sp.Piecewise((1, z > 0), (0, True))),
    "leaky_relu": Activation("leaky_relu", r"\operatorname{lrelu}", _leaky_relu(z),
                             sp.Piecewise((1, z > 0), (slope, True))),
    "softplus": Activation("softplus", r"\operatorname{softplus}", sp.log(1 + sp.exp(z)), Sigmoid(z)),
    "softmax": Activation("softmax", r"\operatorname{softmax}", None, None),
}

Sigmoid.rule = ACTIVATIONS["sigmoid"]
_FUNCTIONS = {"sigmoid": Sigmoid} | {  # Tanh, Relu, LeakyRelu(z, slope), Softplus
    rule.name: type("".join(part.capitalize() for part in rule.name.split("_")), (ElementwiseBase,),
                    {"rule": rule, "nargs": 2 if rule.name == "leaky_relu" else 1})
    for rule in ACTIVATIONS.values() if rule.name not in ("identity", "softmax", "sigmoid")
}
Relu, Softplus = _FUNCTIONS["relu"], _FUNCTIONS["softplus"]


def explicit(expr: sp.Expr) -> sp.Expr:
    """`expr` with every activation function written out: plain SymPy, differentiated by SymPy."""
    return expr.replace(lambda e: isinstance(e, ElementwiseBase), lambda e: e.explicit())


def _squared_error(f, yhat, pre, target, loss):
    return (yhat - target) ** 2


def _cross_entropy(f, yhat, pre, target, loss):
    return -target * LogSoftmax(pre)  # -y log softmax(z)


def _binary_cross_entropy(f, yhat, pre, target, loss):
    # log sigma(z) = -softplus(-z), log(1 - sigma(z)) = -softplus(z): no log of 0
    return target * Softplus(-pre) + (1 - target) * Softplus(pre)


def _multiclass_hinge(f, yhat, pre, target, loss):
    # every class j, the label's own too: max(0, s_j - s_label + margin) (taken away in L)
    margin = sp.Rational(repr(loss.margin))
    margins = f.step("margins", yhat - RowSum(yhat * target) + margin,
                     f"margins: s_j - s_label {'-' if loss.margin < 0 else '+'} {abs(loss.margin):g}, for every class j", 0)
    return Relu(margins)


def _hinge_label_term(loss):
    # the label's own term, max(0, margin) in every sample (s_label - s_label is 0 exactly)
    return sp.Max(sp.Rational(repr(loss.margin)), 0)


@dataclass(frozen=True)
class LossRule:
    name: str
    latex: str  # the loss's name in LaTeX
    ell: sp.Expr | None  # per-element loss in terms of yhat (written a) and y; None: per sample only
    per: str  # what `reduction = "mean"` averages over: "element" or "sample"
    data: callable = field(repr=False)  # (forward, yhat, z, y, loss spec) -> the array summed into L
    ell_latex: str = ""  # the per-sample loss in LaTeX, where `ell` is None
    per_sample: callable = field(default=lambda loss: sp.S.Zero, repr=False)  # subtracted from each sample's sum


LOSSES = {
    "squared_error": LossRule("squared_error", r"\text{squared error}", (a - y) ** 2, "element",
                              _squared_error),
    "cross_entropy": LossRule("cross_entropy", r"\text{cross-entropy}", -y * sp.log(a), "sample",
                              _cross_entropy),
    "binary_cross_entropy": LossRule("binary_cross_entropy", r"\text{binary cross-entropy}",
                                     -(y * sp.log(a) + (1 - y) * sp.log(1 - a)), "element",
                                     _binary_cross_entropy),
    "multiclass_hinge": LossRule("multiclass_hinge", r"\text{multiclass hinge}", None, "sample",
                                 _multiclass_hinge,
                                 r"\sum_{j \neq c} \max\left(0, \hat y_j - \hat y_c + \Delta\right)",
                                 _hinge_label_term),
}


# ---------------------------------------------------------------------------------------------
# Composite rules: compact pulls through a group of steps, where SymPy lacks the knowledge to
# find them (the tests prove each equal to the staged chain rule through the group).


def standardize_vjp(xhat, sigma, total, count):
    """The pull through xhat = (x - mean(x)) / sigma, sigma = sqrt(var(x) + eps), the mean and the
    (biased) variance taken by `total` over `count` entries (batch or layer normalization):

        dL/dx = (count g - total(g) - xhat total(g xhat)) / (count sigma),   g = dL/dxhat.

    The staged chain rule through the mean and the variance has one more term, which is zero
    because total(x - mean(x)) = 0: SymPy cannot know that of an opaque sum.
    """
    def vjp(g):
        return (count * g - total(g) - xhat * total(g * xhat)) / (count * sigma)
    return vjp
