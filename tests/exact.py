"""Exact comparison of the matrix-level formulas with the element-level oracle.

Both derivations are evaluated at the same random rational point: the element-level one by
`sympy.diff` of the written-out loss, the matrix-level one by running its equations on arrays of
SymPy numbers (`symbolic.arrays.evaluate`). For networks whose loss is rational in the entries
(identity, relu and leaky_relu layers with squared error) the values are exact rationals and must
be identical. Networks with exponentials (sigmoid, tanh, softplus, softmax, logarithms) are
evaluated at the same rational point in 60-digit arithmetic instead (exact symbolic values nest
exponentials so deeply that comparing them takes minutes) and must agree to 35 digits (the
oracle's unsimplified formulas lose some to cancellation): a wrong formula differs at the first.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from symprop import symbolic
from symprop.symbolic import elements
from symprop.symbolic.arrays import evaluate


def random_rational(rng) -> sp.Rational:
    """A nonzero rational of magnitude at most 2 with a small denominator."""
    numerator = int(rng.integers(1, 16)) * int(rng.choice([-1, 1]))
    return sp.Rational(numerator, int(rng.integers(7, 23)))


RATIONAL_ACTIVATIONS = {"identity", "relu", "leaky_relu"}
DIGITS = 60  # the oracle's own formulas cancel (1 - sigmoid(z) for large z): digits to spare
AGREE = 35  # digits that must agree


def is_rational(network) -> bool:
    """Whether the loss is a rational function (piecewise) of the entries. A normalization's
    square root is not: its exact values are radicals, which a ReLU after it cannot compare with 0
    (its Relu stays unevaluated), so such networks are evaluated in 60-digit arithmetic too."""
    return network.loss.kind == "squared_error" and all(
        layer.activation in RATIONAL_ACTIVATIONS and layer.kind not in ("batchnorm", "layernorm")
        for layer in network.layers)


def point_for(expanded: elements.Elements, rng) -> dict:
    """A value for every scalar symbol of the element-level loss (targets in [0, 1])."""
    net = expanded.network
    point = {}
    for name, entries in expanded.symbols.items():
        if entries.dtype != object:  # integer labels
            continue
        for symbol in entries.flat:
            if name == net.target and net.loss.kind != "squared_error":
                point[symbol] = sp.Rational(int(rng.integers(0, 11)), 10)
            else:
                point[symbol] = random_rational(rng)
    return point


def at_a_kink(network, expanded, point) -> bool:
    """Whether a relu or leaky_relu pre-activation, or a multiclass hinge's margin, is exactly zero
    at `point` (where sympy.diff's Heaviside(0) and the rule table's convention differ).

    Layer l's pre-activation is the step z<l>, found by name: a dropout layer has none, so the
    layers and `expanded.layers` do not pair up by position. An entry that is zero whatever the
    point (the label's own with margin = 0; a batchnorm over one sample without a shift) is no kink
    of the point's making: nothing moves it, so both derivations agree there; it is skipped."""
    for l, layer in enumerate(network.layers, 1):
        z = expanded.steps.get(f"z{l}")
        if "relu" in layer.activation and z is not None and any(
                entry != 0 and entry.xreplace(point) == 0 for entry in z.flat):
            return True
    margins = expanded.steps.get("margins") if network.loss.kind == "multiclass_hinge" else None
    if margins is not None:
        return any(entry != 0 and entry.xreplace(point) == 0 for entry in margins.flat)
    return False


def matrix_gradients(derivation, expanded: elements.Elements, point: dict) -> dict:
    """The matrix-level gradients, evaluated exactly at `point`."""
    env = {}
    for name, symbol in derivation.arrays.items():
        entries = expanded.symbols[name]
        if entries.dtype == object:
            values = np.empty(entries.shape, dtype=object)
            for index in np.ndindex(entries.shape):
                values[index] = point[entries[index]]
        else:
            values = entries
        env[symbol] = values if values.shape else values[()]
    if derivation.batch.is_Symbol:
        env[derivation.batch] = sp.Integer(expanded.batch)
    for step in derivation.steps:
        env[step.symbol] = evaluate(step.expr, env)
    return {name: np.asarray(env[symbol], dtype=object) for name, symbol in derivation.gradients.items()}


def random_arrays(network, batch: int, seed: int, digits: int | None = None) -> dict:
    """Random rational values (`digits`: as Floats of that many digits) for every array of
    `network`, as object arrays; integer labels where the target holds them."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in network.shapes(batch).items():
        if name == network.target and network.loss.labels:
            values[name] = rng.integers(0, network.outputs, size=shape)
            continue
        values[name] = np.empty(shape, dtype=object)
        for index in np.ndindex(shape):
            value = random_rational(rng)
            values[name][index] = value if digits is None else sp.Float(value, digits)
    return values


def gradients_at(derivation, values: dict) -> dict:
    """The derivation's gradients, its steps evaluated on `values` (name -> array of SymPy numbers)."""
    env = {derivation.arrays[name]: value if np.ndim(value) else np.asarray(value)[()]
           for name, value in values.items()}
    if derivation.batch.is_Symbol and derivation.network.layout == "row":
        env[derivation.batch] = sp.Integer(np.shape(values[derivation.network.input])[0])
    for step in derivation.steps:
        env[step.symbol] = evaluate(step.expr, env)
    return {name: np.asarray(env[symbol], dtype=object) for name, symbol in derivation.gradients.items()}


def equal(a, b) -> bool:
    """Identical if both are rational; else equal to AGREE digits."""
    a, b = sp.sympify(a), sp.sympify(b)
    if a.is_Rational and b.is_Rational:
        return a == b
    a, b = sp.N(a, DIGITS), sp.N(b, DIGITS)
    return abs(a - b) <= sp.Float(10, DIGITS) ** -AGREE * max(1, abs(a), abs(b))


def assert_oracle_agrees(network, batch: int = 2, seed: int = 0, sample: int | None = None):
    """Every (or `sample` random) gradient entries: oracle == matrix-level formula, exactly."""
    rng = np.random.default_rng(seed)
    labels = tokens = None
    n = network.batch or batch
    if network.loss.labels:
        labels = rng.integers(0, network.outputs, size=network.shapes(n)[network.target])
    if network.tokens:
        tokens = rng.integers(0, network.layers[0].vocab, size=network.shapes(n)[network.input])
    expanded = elements.expand(network, batch=batch, labels=labels, tokens=tokens)
    derivation = symbolic.derive(network)
    for _ in range(20):  # a point where no ReLU pre-activation is exactly at its kink
        point = point_for(expanded, rng)
        if not is_rational(network):
            point = {symbol: sp.Float(value, DIGITS) for symbol, value in point.items()}
        if not at_a_kink(network, expanded, point):
            break
    matrix = matrix_gradients(derivation, expanded, point)
    checked = 0
    for name in network.differentiated:
        shape = expanded.symbols[name].shape
        indices = list(np.ndindex(shape))
        if sample is not None:
            picks = rng.choice(len(indices), size=min(sample, len(indices)), replace=False)
            indices = [indices[i] for i in sorted(picks)]
        oracle = expanded.gradient(name, indices)
        for index in indices:
            value = oracle[index].xreplace(point)
            assert matrix[name].shape == shape, (name, matrix[name].shape, shape)
            assert equal(value, matrix[name][index]), (
                f"{network.name}: dL/d{name}{list(index)}: oracle {sp.N(value)} != matrix {sp.N(matrix[name][index])}")
            checked += 1
    return checked


FLOOR = 1e-4  # of max(1, |L|): the scale of a gradient that is zero up to rounding


def normwise_error(got, expected, loss) -> float:
    """max |got - expected| / max |expected|, the scale floored at FLOOR max(1, |L|).

    The floor is larger than `symprop check`'s (1e-6): the bias of a dense layer right before a
    batchnorm has a gradient of exactly zero (the batch mean takes away any constant per feature),
    which both computations give as rounding noise of ~1e-15: against a 1e-6 floor that noise is a
    relative error of ~1e-9 (see test_check_accepts_a_gradient_that_is_zero_up_to_rounding)."""
    scale = max(float(np.max(np.abs(expected), initial=0.0)), FLOOR * max(1.0, abs(loss)))
    return float(np.max(np.abs(np.asarray(got, dtype=float) - expected), initial=0.0)) / scale


def assert_random_spec_equals_pytorch(text: str, seed: int, rtol: float = 1e-8):
    """The generated module of a random spec (Hypothesis) equals PyTorch float64 autograd at
    seeded random values: the loss to `rtol`, every gradient's normwise error at most `rtol`."""
    import pytest

    import symprop
    from symprop.check import random_values
    from symprop.codegen.files import compile_module
    from symprop.reference import torch_loss_and_gradients

    net = symprop.loads(text, source="<hypothesis>")
    values = random_values(net, seed=seed, batch=3)
    loss, grads = compile_module(net).loss_and_gradients(**values)
    expected_loss, expected = torch_loss_and_gradients(net, values)
    # a loss at rounding level (a hinge that is 0 in every sample): the terms are of order one, so
    # each rounds by about 1e-16; 1e-14 absolute is that rounding, whatever the CPU
    assert loss == pytest.approx(expected_loss, rel=rtol, abs=1e-14)
    assert sorted(grads) == sorted(net.differentiated)
    for name in net.differentiated:
        assert grads[name].shape == np.shape(values[name]), name
        assert normwise_error(grads[name], expected[name], expected_loss) <= rtol, (name, grads[name], expected[name])
