"""Random architectures: generated gradients agree with central differences and the oracle."""

import numpy as np
from exact import assert_oracle_agrees
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from networks import networks

from symprop import numerical_gradients
from symprop import symbolic
from symprop.numerical import relative_errors
from symprop.check import random_values
from symprop.codegen.files import compile_module


def relative_error(got, expected, loss) -> float:
    """The normwise relative error of `symprop check`: max |got - expected| / max |expected|, the
    scale floored at 1e-6 max(1, |L|) for arrays whose gradient is zero or nearly (see
    symprop.numerical: one definition for the product and the tests)."""
    return float(np.max(relative_errors(got, expected, loss), initial=0.0))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(), seed=st.integers(0, 2**16))
def test_generated_gradients_match_central_differences(network, seed):
    module = compile_module(network)
    values = random_values(network, seed=seed, batch=3)
    loss, grads = module.loss_and_gradients(**values)
    assert np.isclose(loss, module.loss(**values), rtol=1e-14)
    assert sorted(grads) == sorted(network.differentiated)
    numerical = numerical_gradients(module.loss, values, network.differentiated)
    for name in network.differentiated:
        assert type(grads[name]) is np.ndarray and grads[name].shape == np.shape(values[name]), name
        assert relative_error(grads[name], numerical[name], loss) < 1e-6, name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(max_depth=4, max_width=4), seed=st.integers(0, 2**16))
def test_matrix_formulas_equal_the_element_level_oracle(network, seed):
    assert assert_oracle_agrees(network, batch=2, seed=seed, sample=3) > 0
