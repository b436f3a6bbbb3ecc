"""Linear in depth: SymPy's work on one layer's form (a derivative, a simplification) is done once
however many layers repeat it (`symbolic.renamed`), and doing it once changes nothing: every
preset, layer kind, image and sequence case and traced function generates the same module and
the same derivation with the shared work as without it."""

import numpy as np
import pytest

import learner
import symprop
import test_images
import test_kinds
import test_rolled_loops
import test_sequences
from symprop.symbolic import backward, renamed, sweep

NETWORKS = {**{name: lambda name=name: symprop.load(name) for name in symprop.presets()},
            **{f"kind {case}": lambda case=case: test_kinds.network(case) for case in test_kinds.CASES},
            **{f"image {case}": lambda case=case: test_images.network(case) for case in test_images.CASES},
            **{f"sequence {case}": test_sequences.SPECS[case] for case in test_sequences.SPECS}}


def _traced(case):
    fn, make = learner.CASES[case]
    return symprop.trace(fn, **make(np.random.default_rng(0)))


def _looped(case):
    return test_rolled_loops._trace(case)[2]


PROGRAMS = {**{f"traced {case}": lambda case=case: _traced(case) for case in learner.CASES},
            **{f"loop {case}": lambda case=case: _looped(case) for case in test_rolled_loops.CASES}}


def _outputs(network):
    derivation = symprop.derive(network)
    return symprop.generate(network), derivation.latex(), [str(step.expr) for step in derivation.steps]


@pytest.mark.parametrize("name", sorted(NETWORKS) + sorted(PROGRAMS))
def test_shared_work_changes_no_module_and_no_derivation(name, monkeypatch):
    make = NETWORKS.get(name) or PROGRAMS[name]
    symprop.derive(TANH(3))  # the caches hold other forms already, as in a session
    shared = _outputs(make())
    monkeypatch.setattr(renamed, "ENABLED", False)
    assert _outputs(make()) == shared


def TANH(layers: int, width: int = 4):
    dense = f'[[layers]]\nunits = {width}\nactivation = "tanh"\n' * layers
    return symprop.loads(f'name = "deep{layers}"\ninputs = 3\n{dense}[[layers]]\nunits = 2\n'
                         'activation = "softmax"\n[loss]\nkind = "cross_entropy"\n', source="<deep>")


def test_a_deeper_network_of_the_same_layers_differentiates_and_simplifies_nothing_new():
    symprop.generate(TANH(4))
    sizes = len(sweep._derivative.cache), len(backward._simplify.cache)
    network = TANH(40)
    symprop.generate(network)
    assert (len(sweep._derivative.cache), len(backward._simplify.cache)) == sizes
    # and the 40 layers are there, each with its own names
    steps = {str(step.symbol) for step in symprop.derive(network).steps}
    assert {"dL_dW1", "dL_dW40", "dL_dW41", "delta1", "delta40"} <= steps


def test_a_renamed_form_keeps_the_assumptions_of_its_symbols():
    import sympy as sp
    x, y = sp.Symbol("x", real=True), sp.Symbol("y")
    derivative = sweep._derivative
    assert derivative(sp.Abs(x) * y, y) == sp.Abs(x)
    assert derivative(sp.Abs(y) * x, x) == sp.Abs(y)
    assert derivative(sp.Abs(x), x) == sp.sign(x)  # x real: d|x|/dx is sign(x)
    general = derivative(sp.Abs(y), y)  # y complex: SymPy's general form, not sign(y)
    assert general != sp.sign(y) and general == sp.diff(sp.Abs(y), y)


@pytest.mark.parametrize("given, expected", [(None, 10000), ("500", 500)])
def test_symprop_sets_sympys_cache_size_unless_you_did(given, expected):
    """A deep network's derivation outgrows SymPy's default cache of 1000 entries (generate of 200
    layers took 1.4x as long): importing symprop first sets 10000, unless SYMPY_CACHE_SIZE is set."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "SYMPY_CACHE_SIZE"} | ({"SYMPY_CACHE_SIZE": given} if given else {})
    code = "import symprop, sympy.core.cache as cache; print(cache.SYMPY_CACHE_SIZE)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == expected
