"""Losses computed from the logits: finite where the probabilities round to 0 or 1."""

import warnings

import numpy as np
import pytest

import symbolic
from codegen.files import compile_module

X = np.array([[1.0, -1.0], [0.5, 0.25]])
W = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])  # logits of +-2000 and +-375


def network(kind, activation):
    return symbolic.loads(f'name = "s"\ninputs = 2\n[[layers]]\nunits = 3\nactivation = "{activation}"\n'
                          f'[loss]\nkind = "{kind}"\n')


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


torch = pytest.importorskip("torch", reason="PyTorch is not installed: the cross-checks need it")


@pytest.mark.parametrize("kind, activation, scale", [("cross_entropy", "softmax", 10),
                                                     ("binary_cross_entropy", "sigmoid", 20)])
def test_large_logits_agree_with_pytorch(kind, activation, scale):
    # logits up to 200 (cross-entropy) and 20 (binary cross-entropy)
    from codegen.reference import torch_loss_and_gradients
    net = network(kind, activation)
    values = {"x": X, "W1": W / scale, "b1": np.zeros(3), "y": np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])}
    loss, grads = compile_module(net).loss_and_gradients(**values)
    torch_loss, torch_grads = torch_loss_and_gradients(net, values)
    assert loss == pytest.approx(torch_loss, rel=1e-12)
    np.testing.assert_allclose(grads["W1"], torch_grads["W1"], rtol=1e-10, atol=1e-14)
