"""The matrix-level formulas (what is generated) equal the element-level oracle, exactly."""

import numpy as np
import pytest
import sympy as sp
from exact import assert_oracle_agrees, equal

from symprop import symbolic
from symprop.symbolic import rules


@pytest.mark.parametrize("name", [n for n in symbolic.presets() if n != "relu_batch_10_20_1"])
def test_presets_agree_with_the_oracle_in_every_entry(name):
    network = symbolic.load(name)
    checked = assert_oracle_agrees(network, batch=2)
    shapes = network.shapes(network.batch or 2)
    assert checked == sum(int(np.prod(shapes[name])) for name in network.differentiated)


def test_large_preset_agrees_with_the_oracle_on_sampled_entries():
    # 241 entries at batch 5 take ~25 s of sympy.diff; 8 random entries per array are checked.
    network = symbolic.load("relu_batch_10_20_1")
    assert assert_oracle_agrees(network, sample=8, seed=1) == 8 + 8 + 8 + 1


@pytest.mark.parametrize("name", [n for n in rules.ACTIVATIONS if n != "softmax"])
def test_activation_derivative_in_the_table_is_sympys(name):
    rule = rules.ACTIVATIONS[name]
    sympy_derivative = rule.derivative  # diff(f, z), as SymPy computes it
    table = rule.df.subs(rules.a, rule.f)
    for z in [sp.Rational(-7, 3), sp.Rational(-1, 5), sp.Rational(2, 9), sp.Rational(5, 2)]:
        point = {rules.z: z, rules.slope: sp.Rational(1, 50)}
        assert equal(sympy_derivative.subs(point), table.subs(point)), (name, z)


@pytest.mark.parametrize("name, expected", [("relu", 0), ("leaky_relu", sp.Rational(1, 50))])
def test_kink_convention_matches_pytorch(name, expected):
    rule = rules.ACTIVATIONS[name]
    assert rule.df.subs({rules.z: 0, rules.a: 0, rules.slope: sp.Rational(1, 50)}) == expected
