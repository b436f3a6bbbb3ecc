"""Extreme values: losses from the logits, finite where the probabilities round to 0 or 1.

The extreme-value table runs the generated code under `np.errstate(over=, divide=, invalid=
"raise")`: no overflow, no division by zero, no NaN. Underflow is left at NumPy's default
(ignored): exp(-1000) rounding to 0 is the correctly rounded result, and no exp-based formula
avoids it (even `np.logaddexp(0, -1000)` raises under `all="raise"`); PyTorch ignores it too.
"""

import functools
import warnings

import numpy as np
import pytest

from networks import mlp

from symprop.codegen.files import compile_module

X = np.array([[1.0, -1.0], [0.5, 0.25]])
W = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])  # logits of +-2000 and +-375


def network(kind, activation):
    return mlp(2, (3, activation), loss=kind)


def test_cross_entropy_with_logits_of_thousands_is_finite_and_exact():
    module = compile_module(network("cross_entropy", "softmax"))
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no log of zero
        loss = module.loss(x=X, y=y, W1=W, b1=np.zeros(3))
    # by hand: sample 1 has logits (2000, -2000, 0), target class 1: -log softmax = 4000;
    # sample 2 has logits (250, -250, 0), target class 0: log(1 + e^-500 + e^-250) = 0 to rounding
    assert loss == pytest.approx((4000.0 + 0.0) / 2, rel=1e-15)


def test_binary_cross_entropy_from_the_logits_is_finite():
    module = compile_module(network("binary_cross_entropy", "sigmoid"))
    y = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5]])
    loss = module.loss(x=X, y=y, W1=W, b1=np.zeros(3))
    # z = (2000, -2000, 0) and (250, -250, 0): -[y log s(z) + (1 - y) log(1 - s(z))] per entry
    expected = (2000 + 2000 + np.log(2) + 0 + 0 + np.log(2)) / 6
    assert loss == pytest.approx(expected, rel=1e-14)


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: the cross-checks need it")


@pytest.mark.parametrize("kind, activation, scale", [("cross_entropy", "softmax", 10),
                                                     ("binary_cross_entropy", "sigmoid", 20)])
def test_large_logits_agree_with_pytorch(kind, activation, scale, torch):
    # logits up to 200 (cross-entropy) and 20 (binary cross-entropy)
    from symprop.reference import torch_loss_and_gradients
    net = network(kind, activation)
    values = {"x": X, "W1": W / scale, "b1": np.zeros(3), "y": np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])}
    loss, grads = compile_module(net).loss_and_gradients(**values)
    torch_loss, torch_grads = torch_loss_and_gradients(net, values)
    assert loss == pytest.approx(torch_loss, rel=1e-12)
    np.testing.assert_allclose(grads["W1"], torch_grads["W1"], rtol=1e-10, atol=1e-14)


# Logits of +-1000 in float64 and +-100 in float32: exp overflows at 709.8 and 88.7.
LIMITS = {"float64": 1000.0, "float32": 100.0}
HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus"]
OUTPUTS = [  # (output activation, loss kind, labels)
    ("identity", "squared_error", False), ("sigmoid", "squared_error", False),
    ("tanh", "squared_error", False), ("softplus", "squared_error", False),
    ("sigmoid", "binary_cross_entropy", False), ("softmax", "cross_entropy", False),
    ("softmax", "cross_entropy", True),
]
XE = np.array([[1.0, -1.0], [0.5, 0.25]])
P1 = np.array([[0.5, -0.5, 0.25], [-0.5, 0.5, 1.0]])  # z1 = limit * [[1, -1, -0.75], [0.125, -0.125, 0.375]]
P2 = np.array([[1.0, -1.0, 0.5], [-0.5, 1.0, -1.0], [0.25, 0.5, 1.0]])
TARGETS = {
    "squared_error": np.array([[0.5, -2.0, 1.0], [0.0, 3.0, -1.0]]),
    "binary_cross_entropy": np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1.0]]),
    "cross_entropy": np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
}


@functools.lru_cache(maxsize=None)
def extreme_module(hidden, output, kind, labels):
    net = mlp(2, (3, hidden), (3, output), loss=kind, labels=labels)
    return net, compile_module(net)


def extreme_values(hidden, kind, labels, dtype):
    """Hidden pre-activations of +-limit; output logits of +-limit (bounded hidden outputs scaled up)."""
    limit = LIMITS[dtype]
    scale = limit if hidden in ("sigmoid", "tanh") else 1.0
    y = np.array([1, 2]) if labels else TARGETS[kind].astype(dtype)
    return {"x": XE.astype(dtype), "y": y, "W1": (limit * P1).astype(dtype), "b1": np.array([0.5, 0.0, -0.5], dtype),
            "W2": (scale * P2).astype(dtype), "b2": np.array([0.25, -0.25, 0.0], dtype)}


EXTREME = pytest.mark.parametrize("hidden, output, kind, labels, dtype", [
    pytest.param(h, o, k, l, d, id=f"{h}-{o}-{k}{'-labels' * l}-{d}")
    for h in HIDDEN for o, k, l in OUTPUTS for d in ("float64", "float32")])


@EXTREME
def test_extreme_logits_give_finite_results_without_warnings(hidden, output, kind, labels, dtype):
    net, module = extreme_module(hidden, output, kind, labels)
    values = extreme_values(hidden, kind, labels, dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss, grads = module.loss_and_gradients(**values)
        assert module.loss(**values) == loss
        yhat = module.forward(**{k: v for k, v in values.items() if k != "y"})
    assert np.isfinite(loss) and np.all(np.isfinite(yhat)) and yhat.dtype == np.dtype(dtype)
    for name, gradient in grads.items():
        assert gradient.dtype == np.dtype(dtype) and np.all(np.isfinite(gradient)), name


@EXTREME
def test_extreme_logits_agree_with_pytorch(hidden, output, kind, labels, dtype, torch):
    from symprop.reference import torch_loss_and_gradients
    net, module = extreme_module(hidden, output, kind, labels)
    values = extreme_values(hidden, kind, labels, dtype)
    loss, grads = module.loss_and_gradients(**values)
    torch_loss, torch_grads = torch_loss_and_gradients(net, values, dtype=dtype)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    assert loss == pytest.approx(torch_loss, rel=rtol, abs=rtol)
    for name, expected in torch_grads.items():
        # entrywise, with an absolute floor relative to the largest entry of the array (float32
        # and float64 round the saturated entries differently near 0)
        np.testing.assert_allclose(grads[name], expected, rtol=100 * rtol,
                                   atol=100 * rtol * max(1.0, np.abs(expected).max()), err_msg=name)
