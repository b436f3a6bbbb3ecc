"""The generated gradient modules against hand-written backprop, central differences and the seeds.

Expected numbers come from three independent places: the hand-written backward passes in
tests/handwritten.py, central differences of the loss, and the figures the seed notebooks printed
(/work/shared/seeds/, copied below with the file they come from).
"""

import functools
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from symprop import numerical_gradients
from symprop import symbolic
from symprop.numerical import relative_errors

HERE = Path(__file__).parent
GENERATED = HERE.parent / "generated"
PRESETS = symbolic.presets()


def _load(path, module_name):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BACKWARD = _load(HERE / "handwritten.py", "_symprop_tests_handwritten").BACKWARD


@functools.cache
def generated(name):
    """generated/<name>.py, loaded by file path."""
    return _load(GENERATED / f"{name}.py", f"_symprop_generated_{name}")


# -------------------------------------------------------------------------------------------------
# Value sets: the spec's own [values], and seeded random arrays of the same shapes


def random_values(net, seed, batch=None):
    """Random arrays with the shapes of the spec's values (or with `batch` rows, row layout)."""
    assert not net.loss.labels, "the hand-written functions take one-hot / real targets"
    rng = np.random.default_rng(seed)
    values = {}
    for name, array in net.values.items():
        shape = array.shape
        if batch is not None and name in (net.input, net.target):
            shape = (batch,) + shape[1:]
        if name != net.target:
            values[name] = rng.standard_normal(shape)
        elif net.loss.kind == "cross_entropy":  # one-hot rows
            classes = rng.integers(shape[-1], size=shape[:-1])
            values[name] = np.eye(shape[-1])[classes]
        elif net.layers[-1].activation == "sigmoid":  # targets inside the sigmoid's range
            values[name] = rng.uniform(0.05, 0.95, shape)
        else:
            values[name] = rng.standard_normal(shape)
    return values


def value_sets():
    """(preset, value-set id) pairs: spec values, three random seeds, one other batch size."""
    cases = []
    for name in PRESETS:
        net = symbolic.load(name)
        cases.append(pytest.param(name, "spec", id=f"{name}-spec"))
        for seed in (0, 1, 2):
            cases.append(pytest.param(name, f"rng{seed}", id=f"{name}-rng{seed}"))
        if net.layout == "row" and net.batch is None:  # the batch size is a symbol N
            cases.append(pytest.param(name, "rng3-batch4", id=f"{name}-rng3-batch4"))
    return cases


def get_values(name, which):
    net = symbolic.load(name)
    if which == "spec":
        return net, {k: v.copy() for k, v in net.values.items()}
    if which == "rng3-batch4":
        return net, random_values(net, 3, batch=4)
    return net, random_values(net, int(which.removeprefix("rng")))


def max_abs(array):
    return float(np.max(np.abs(array), initial=0.0))


# -------------------------------------------------------------------------------------------------
# Generated == hand-written, to 1e-10 relative


def test_every_preset_has_a_handwritten_backward():
    assert sorted(BACKWARD) == sorted(PRESETS)


@pytest.mark.parametrize("name, which", value_sets())
def test_generated_gradients_equal_handwritten(name, which):
    net, values = get_values(name, which)
    expected = BACKWARD[name](**values)
    loss, actual = generated(name).loss_and_gradients(**values)

    assert sorted(actual) == sorted(net.differentiated)
    assert sorted(expected) == sorted(net.differentiated)
    for key in net.differentiated:
        a, e = np.asarray(actual[key]), np.asarray(expected[key])
        assert a.shape == values[key].shape, f"generated {key}: shape {a.shape}"
        assert e.shape == values[key].shape, f"hand-written {key}: shape {e.shape}"
        error = float(np.max(relative_errors(a, e, loss), initial=0.0))  # symprop check's definition
        assert error < 1e-10, f"{name}: {key}: normwise relative error {error:.2e}\n{a}\nvs\n{e}"
    # the comparison is not between two zero dicts
    assert max(max_abs(e) for e in expected.values()) > 1e-3


# -------------------------------------------------------------------------------------------------
# Hand-written == central differences of the loss


@pytest.mark.parametrize("name, which", value_sets())
def test_handwritten_gradients_match_central_differences(name, which):
    net, values = get_values(name, which)
    expected = numerical_gradients(generated(name).loss, values, net.differentiated)
    actual = BACKWARD[name](**values)
    loss = generated(name).loss(**values)

    for key in net.differentiated:
        a, b = np.asarray(actual[key]), np.asarray(expected[key])
        assert a.shape == b.shape == values[key].shape
        error = float(np.max(relative_errors(a, b, loss), initial=0.0))  # symprop check's definition
        assert error < 1e-6, f"{name}: {key}: normwise relative error {error:.2e}\n{a}\nvs\n{b}"
    assert max(max_abs(g) for g in expected.values()) > 1e-3


# -------------------------------------------------------------------------------------------------
# Seed 001 (001_13b613ccf6844929.txt): the first epoch's printed figures, 8 decimals

SEED_001 = {  # as printed by the seed in epoch 1 (its B3/W3/B2/W2 formulas are correct)
    "y_pred": [0.76346582],
    "loss": 0.76450839,
    "B3": [-1.23653418],
    "W3": [-0.0, -5.41246917, -0.0],
    "B2": [-0.0, 0.01668978, 0.0],
    "W2_rows_0_1": [[-0.0, -0.0, -0.0, -0.0], [0.05351791, 0.00228918, 0.0, 0.0]],  # row 2 is cut off
}
PRINTED_8 = 5e-9 + 1e-15  # half a unit in the 8th decimal


@pytest.mark.parametrize("implementation", ["generated", "handwritten"])
def test_seed_001_first_step_figures(implementation):
    name = "relu_regression_3_4_3_1"
    values = symbolic.load(name).values
    module = generated(name)
    grads = module.gradients(**values) if implementation == "generated" else BACKWARD[name](**values)

    np.testing.assert_allclose(module.forward(**{k: v for k, v in values.items() if k != "y_true"}),
                               SEED_001["y_pred"], rtol=0, atol=PRINTED_8)
    assert abs(module.loss(**values) - SEED_001["loss"]) < PRINTED_8
    np.testing.assert_allclose(grads["B3"], SEED_001["B3"], rtol=0, atol=PRINTED_8)
    assert grads["W3"].shape == (1, 3)
    np.testing.assert_allclose(grads["W3"][0], SEED_001["W3"], rtol=0, atol=PRINTED_8)
    np.testing.assert_allclose(grads["B2"], SEED_001["B2"], rtol=0, atol=PRINTED_8)
    np.testing.assert_allclose(grads["W2"][:2], SEED_001["W2_rows_0_1"], rtol=0, atol=PRINTED_8)


def seed_001_backward(y_pred, y_true, W1, W2, W3, Z1, Z2, H2, X):
    """Seed 001's backward pass, as the seed wrote it (its W1_grad is wrong)."""
    y_diff = y_pred - y_true
    B3_grad = y_diff
    W3_grad = y_diff * H2
    B2_grad = (y_diff * W3 * (Z2 > 0)).flatten()
    B1_grad = (y_diff * np.dot((W3 * (Z2 > 0)), W2) * (Z1 > 0)).flatten()
    W1_grad = y_diff * W3 * (Z2 > 0) * W2.T * (np.reshape(Z1, (4, 1)) > 0) * X
    return {"B3": B3_grad, "W3": W3_grad, "B2": B2_grad, "B1": B1_grad, "W1": W1_grad}


def test_seed_001_W1_formula_is_wrong_and_the_rest_agrees():
    name = "relu_regression_3_4_3_1"
    v = symbolic.load(name).values
    Z1 = v["W1"] @ v["X"] + v["B1"]
    H1 = np.maximum(0, Z1)
    Z2 = v["W2"] @ H1 + v["B2"]
    H2 = np.maximum(0, Z2)
    y_pred = v["W3"] @ H2 + v["B3"]
    seed = seed_001_backward(y_pred, v["y_true"], v["W1"], v["W2"], v["W3"], Z1, Z2, H2, v["X"])

    for grads in (generated(name).gradients(**v), BACKWARD[name](**v)):
        for key in ("B3", "W3", "B2", "B1"):
            np.testing.assert_allclose(grads[key].ravel(), seed[key].ravel(), rtol=1e-12, atol=1e-15)
        assert grads["W1"].shape == seed["W1"].shape == (4, 3)
        # the seed's elementwise product pairs X[k] with the second layer's unit k: wrong entries
        assert max_abs(grads["W1"] - seed["W1"]) > 1e-3
        # the true dL/dW1[i, k] = dL/dZ1[i] * X[k]: e.g. entry (0, 0) is nonzero, the seed's is 0
        assert seed["W1"][0, 0] == 0 and abs(grads["W1"][0, 0]) > 1e-2


# -------------------------------------------------------------------------------------------------
# Seed 002 (002_c5a88d9c918753b3.txt): PyTorch's gradients (4 decimals) and the seed's float32
# "Analytical" gradients (8 digits; those formulas are right, its float32 numerical check is not)

SEED_002_TORCH = {
    "U": [[0.0000, 0.3887, 0.0000, 0.0000], [-0.0000, -0.3887, -0.0000, -0.0000]],
    "b2": [0.2524, -0.2524],
    "W": [[0.0000, -0.0000, 0.0000], [-0.1136, 0.2271, -0.1817],
          [0.0000, -0.0000, 0.0000], [0.0000, -0.0000, 0.0000]],
    "b1": [0.0000, -0.2271, 0.0000, 0.0000],
    "x": [-0.0454, 0.2271, -0.1817],
}
SEED_002_ANALYTICAL = {
    "U": [[0.0, 0.38865328, 0.0, 0.0], [-0.0, -0.3886532, -0.0, -0.0]],
    "b2": [0.25237226, -0.2523722],
    "W": [[0.0, -0.0, 0.0], [-0.11356751, 0.22713502, -0.18170802], [-0.0, 0.0, -0.0], [0.0, -0.0, 0.0]],
    "b1": [0.0, -0.22713502, -0.0, 0.0],
    "x": [-0.04542701, 0.22713502, -0.18170802],
}
SEED_002_NUMERICAL_X = [-0.04917383, 0.22798777, -0.18328428]  # the seed's wrong float32 check


@pytest.mark.parametrize("implementation", ["generated", "handwritten"])
@pytest.mark.parametrize("key", ["U", "b2", "W", "b1", "x"])
def test_seed_002_pytorch_and_analytical_gradients(implementation, key):
    name = "relu_softmax_3_4_2"
    values = symbolic.load(name).values
    grads = generated(name).gradients(**values) if implementation == "generated" else BACKWARD[name](**values)
    assert grads[key].shape == values[key].shape
    np.testing.assert_allclose(grads[key], SEED_002_TORCH[key], rtol=0, atol=5e-5)
    np.testing.assert_allclose(grads[key], SEED_002_ANALYTICAL[key], rtol=1e-6, atol=0)


def test_seed_002_float64_central_differences_fix_the_seeds_numerical_check():
    name = "relu_softmax_3_4_2"
    float32 = {k: v.astype(np.float32) for k, v in symbolic.load(name).values.items()}
    numerical = numerical_gradients(generated(name).loss, float32, ["x"])["x"]
    assert numerical.dtype == np.float64
    np.testing.assert_allclose(numerical, SEED_002_ANALYTICAL["x"], rtol=1e-6)
    assert abs(numerical[0] - SEED_002_NUMERICAL_X[0]) > 1e-3
