"""The spec front end of the program (`symbolic.spec_program.program_of`): every preset, every
layer-kind case and every convolutional case, as a Program, generates a module whose loss and
gradients equal the spec's own generated module (the same forward steps; the program takes the
staged chain rule through a normalization, the spec its compact rule)."""

import numpy as np
import pytest
import test_images
import test_kinds

import symprop
from symprop.check import random_values
from symprop.symbolic.spec_program import program_of

NETWORKS = ([pytest.param(lambda name=name: symprop.load(name), id=name) for name in symprop.presets()]
            + [pytest.param(lambda case=case: test_kinds.network(case), id=f"kinds-{case}") for case in test_kinds.CASES]
            + [pytest.param(lambda case=case: test_images.network(case), id=f"images-{case}")
               for case in test_images.CASES])


def _module(source: str) -> dict:
    namespace = {}
    exec(compile(source, "<module>", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("make", NETWORKS)
@pytest.mark.parametrize("seed", [0, 1])
def test_the_program_of_a_spec_generates_the_specs_gradients(make, seed):
    network = make()
    program = program_of(network, batch=3)
    assert program.wrt == network.differentiated
    spec_steps = [s for s in symprop.derive(network).steps if s.stage in ("forward", "loss")]
    assert [s.name for s in program.steps] == [s.name for s in spec_steps]
    values = random_values(network, seed, 3)
    values = {a.name: np.asarray(values[a.name]) for a in program.arrays}
    loss, expected = _module(symprop.generate(network))["loss_and_gradients"](**values)
    got_loss, got = _module(symprop.generate(program))["loss_and_gradients"](**values)
    assert got_loss == pytest.approx(loss, rel=1e-12, abs=1e-300)
    overall = max(np.max(np.abs(g)) for g in expected.values())
    for name, value in expected.items():
        assert got[name].shape == value.shape
        # float64 rounding: 1e-10 of the array's largest entry, floored at 1e-12 of the largest of
        # all (a bias before a batchnorm has a gradient that is zero up to rounding)
        assert np.max(np.abs(got[name] - value)) <= 1e-10 * max(np.max(np.abs(value)), 1e-2 * overall), name


def test_spec_steps_are_unique_by_construction(monkeypatch):
    # a layer kind that writes two pre-activations gets two deltas, never one merged symbol
    from symprop.symbolic.arrays import Matmul
    from symprop.symbolic.derive import derive
    from symprop.symbolic.kinds import KINDS
    from symprop.symbolic.kinds.dense import Dense
    network = symprop.load("sigmoid_mse_2_2_1")

    class Doubled(Dense):  # z = x W1 + b1 twice over, as two pre-activations of one layer
        def forward(self, f, layer, l, a):
            W, b = f.arrays[layer.weight], f.arrays[layer.bias]
            z = f.step(f"z{l}", Matmul(a, W) + b, "first", l, "pre-activation")
            u = f.step(f"u{l}", 2 * z, "second", l, "pre-activation")
            return f.activate(layer, l, u)
    monkeypatch.setitem(KINDS, "dense", Doubled())
    names = [s.name for s in derive(network).steps if s.stage == "backward"]
    assert len(names) == len(set(names)) and {"delta1", "delta1_2"} <= set(names)

    class Clash(Dense):
        def forward(self, f, layer, l, a):
            f.step(f"z{l}", a, "first", l)
            return f.step(f"z{l}", a, "again", l)
    monkeypatch.setitem(KINDS, "dense", Clash())
    with pytest.raises(ValueError, match="writes z1 twice"):
        derive(network)


@pytest.mark.parametrize("make", NETWORKS)
def test_a_spec_is_derived_through_its_program(make):
    # the spec's derivation is its program's: the same forward steps, and the one backward sweep
    # a traced program gets gives the spec's backward steps (names, equations, rules) exactly
    from symprop.symbolic.derive import derive
    from symprop.symbolic.program import derive_program
    network = make()
    derivation = derive(network)
    program = derivation.program
    assert program.steps == tuple(s for s in derivation.steps if s.stage in ("forward", "loss"))
    assert program.output == derivation.loss and program.prediction == derivation.output
    traced_way = derive_program(program)
    assert [(s.name, s.expr, s.rule) for s in traced_way.steps] == [(s.name, s.expr, s.rule) for s in derivation.steps]
    assert traced_way.gradients == derivation.gradients
