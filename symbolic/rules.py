"""The rule table: every activation and every loss, one entry each.

Notation (used everywhere: derivations, generated code, reports):
    z   a layer's pre-activation,          a = f(z)  its output (the activation);
    y   the target,                        yhat = a of the last layer;
    ell the per-element loss, ell(yhat, y), summed (and scaled) into the loss L.

An activation gives `f(z)` as a SymPy expression in the scalar `z`, and `df`: its derivative in
the cheapest closed form, in terms of the output `a` where that is natural (sigma' = a (1 - a)).
SymPy computes the derivative itself (`Activation.derivative`); the tests prove `df` equal to it.
At a kink `df` follows PyTorch: relu'(0) = 0, leaky_relu'(0) = negative_slope.
Softmax acts on a whole row, so it has no scalar `f`; its rule is the vector-Jacobian product in
`symbolic.derive`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .arrays import LogSoftmax

z, a, y = sp.symbols("z a y", real=True)
slope = sp.Symbol("s", positive=True)  # leaky_relu's negative slope


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

    def at(self, pre: sp.Expr, post: sp.Expr, negative_slope=0.01):
        """(f(pre), f'(pre)) with the output written as `post`, the slope substituted."""
        s = sp.Rational(repr(float(negative_slope)))
        return (self.f.subs({z: pre, slope: s}),
                self.df.subs({z: pre, a: post, slope: s}))


def _relu(z):
    return sp.Max(z, 0)


def _leaky_relu(z):
    return sp.Max(z, 0) + slope * sp.Min(z, 0)  # any slope, not only 0 < s < 1


ACTIVATIONS = {
    "identity": Activation("identity", r"\operatorname{id}", z, sp.S.One),
    "sigmoid": Activation("sigmoid", r"\sigma", 1 / (1 + sp.exp(-z)), a * (1 - a)),
    "tanh": Activation("tanh", r"\tanh", sp.tanh(z), 1 - a**2),
    "relu": Activation("relu", r"\operatorname{relu}", _relu(z),
                       sp.Piecewise((1, z > 0), (0, True))),
    "leaky_relu": Activation("leaky_relu", r"\operatorname{lrelu}", _leaky_relu(z),
                             sp.Piecewise((1, z > 0), (slope, True))),
    "softplus": Activation("softplus", r"\operatorname{softplus}", sp.log(1 + sp.exp(z)),
                           1 / (1 + sp.exp(-z))),
    "softmax": Activation("softmax", r"\operatorname{softmax}", None, None),
}


@dataclass(frozen=True)
class LossRule:
    name: str
    latex: str  # the loss's name in LaTeX
    ell: sp.Expr  # per-element loss in terms of yhat (written a) and y
    per: str  # what `reduction = "mean"` averages over: "element" or "sample"
    logits: sp.Expr | None = None  # the same loss from the last pre-activation z, computed stably


LOSSES = {
    "squared_error": LossRule("squared_error", r"\text{squared error}", (a - y) ** 2, "element"),
    # -y log softmax(z): log-softmax never takes the log of an underflowed 0
    "cross_entropy": LossRule("cross_entropy", r"\text{cross-entropy}", -y * sp.log(a), "sample",
                              logits=-y * LogSoftmax(z)),
    # log sigma(z) = -log(1 + e^{-z}), log(1 - sigma(z)) = -log(1 + e^{z}): no log of 0 either
    "binary_cross_entropy": LossRule("binary_cross_entropy", r"\text{binary cross-entropy}",
                                     -(y * sp.log(a) + (1 - y) * sp.log(1 - a)), "element",
                                     logits=y * sp.log(1 + sp.exp(-z)) + (1 - y) * sp.log(1 + sp.exp(z))),
}
