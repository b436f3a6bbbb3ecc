"""The spec front end of the program: a `Network` as the `Program` its layers write.

The layers' forward equations (`symbolic.layers`) and the loss (`symbolic.rules.LOSSES`) become
the program's steps, under the spec's names (`z1`, `a1`, `mu2`, `L`), each with what the spec
knows of it (its layer, whether it is a pre-activation, the activation it applies, the rule in
words); the input, the target, the masks and the parameters are its arrays, with their roles;
the differentiated arrays its `wrt`; a normalization's compact rule one of its `composites`.
The derivation, the documents and the generated module read this program.

The batch is open (the symbol N) when `batch` is a SymPy symbol, as the derivation has it; a
whole number fixes it (the spec's own batch, or its [values]', comes first).
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from . import layers, rules
from .arrays import OneHot, Total
from .ops import KeepDims
from .program import Array, Program
from .spec import Network, as_network


def program_of(network, batch=3) -> Program:
    """The program of `network` (a Network, or the preset or spec file it names)."""
    network = as_network(network)
    if isinstance(batch, sp.Basic):
        n = sp.Integer(network.batch) if network.batch is not None else batch
    else:
        n = network.batch or batch
        if network.batch is None and network.layout == "row" and network.input in network.values:
            n = len(network.values[network.input])  # the batch of the spec's [values]
        n = sp.Integer(n) if network.layout == "row" else sp.S.One
    f = layers.forward(network, n)
    _loss(network, f)
    shapes = {name: tuple(sp.sympify(d) for d in shape) for name, shape in network.shapes(n).items()}
    floats = {*network.states, *network.parameters} | ({network.target} if not network.loss.labels else set())
    if not network.tokens:  # integer tokens: data, like class labels
        floats.add(network.input)
    parts, masks, differentiated = network.roles(), set(network.masks), set(network.differentiated)
    arrays = tuple(Array(name, shapes[name], "float64" if name in floats or name in masks else "int64",
                         "differentiated" if name in differentiated else "data", parts.get(name, ""))
                   for name in (network.input, network.target, *network.given, *network.parameters))
    steps = tuple(f.steps)
    values = {name: np.asarray(value) for name, value in network.values.items()}
    return Program(name=network.name, arrays=arrays, steps=steps, output=steps[-1].symbol,
                   wrt=tuple(network.differentiated), scalar=True, source=network.source, values=values,
                   composites=tuple(f.composites), prediction=f.outputs[-1])


def _loss(network: Network, f: layers.Forward) -> None:
    """The loss step: L = c * Total(data term) + l2 * the sum of the squared weights."""
    spec = network.loss
    rule = rules.LOSSES[spec.kind]
    target = f.arrays[network.target]
    if spec.labels:
        target = OneHot(target, network.outputs)
    count = sp.S.One
    if spec.reduction == "mean":
        per_sample = math.prod(network.layers[-1].shape) if rule.per == "element" else 1
        count = (f.n if f.row else 1) * per_sample
    c = sp.Rational(repr(spec.scale)) / count
    data = rule.data(f, f.outputs[-1], f.pre, target, spec)
    if spec.mask:  # a masked step of the sequence counts 0
        data = KeepDims(f.arrays[spec.mask], 2) * data
    l2 = sp.Rational(repr(spec.l2))
    penalty = sp.Add(*(Total(f.arrays[name] ** 2) for name in network.weights))  # one Add: linear in depth
    words = (f"{rule.name}, {spec.reduction}" + (f", scale {spec.scale:g}" if spec.scale != 1 else "")
             + (f", margin {spec.margin:g}" if spec.kind == "multiclass_hinge" else "")
             + (f", l2 {spec.l2:g}" if l2 else ""))
    samples = f.n if f.row else sp.S.One
    f.step("L", c * (Total(data) - rule.per_sample(spec) * samples) + l2 * penalty, words, 0, "loss",
           notes={"scale": c})  # the factor of the data term, for display
