"""Exact rewrites of the generated lines (`codegen.fused`): an activation's derivative after a
max pooling's gradient is taken on the pooled gradient instead. The module equals, bit for bit,
the one generated without the rewrite, for every activation, over non-overlapping and overlapping
windows (where it is left alone), float32 and float64, with ties in the windows (a ReLU's zeros,
whole-number inputs), and over random image networks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import networks
import symprop
import test_pooled
import sympy as sp
from symprop.check import random_values
from symprop.codegen import module
from symprop.codegen.files import compile_module
from symprop.codegen.fused import fused
from symprop.symbolic.arrays import MaxPool2d, MaxPool2dGrad, Total
from symprop.symbolic.rules import Relu

FUNCTIONS = ("gradients", "loss_and_gradients")


@pytest.fixture(autouse=True)
def _image_layout(monkeypatch):
    """The rule on its own: no convolution computed in pooling order (`codegen.pooled`, whose
    values differ from the image layout's by rounding; tests/test_pooled.py)."""
    monkeypatch.setattr(module, "pooled", lambda lines, results, shapes: lines)


def _text(activation, pool, *, bias=True, then="softmax"):
    return (f'name = "pooled"\ninputs = [2, 6, 6]\n[[layers]]\nkind = "conv2d"\nfilters = 3\nkernel = 3\n'
            f'padding = 1\nactivation = "{activation}"\n{"" if bias else "bias = false"}\n[[layers]]\n'
            f'kind = "maxpool2d"\n{pool}\n[[layers]]\nkind = "flatten"\n[[layers]]\nunits = 3\n'
            f'activation = "{then}"\n[loss]\nkind = "cross_entropy"\n')


# (activation, pooling, the pooled gradient's factor in the fused line, or None: left alone)
CASES = [
    ("relu", "size = 2", "dL_da2*(a2 > 0)"),
    ("relu", "size = [2, 3]\nstride = [3, 3]", "dL_da2*(a2 > 0)"),  # gaps between the windows
    ("tanh", "size = 2", "dL_da2*(1 - a2**2)"),
    ("sigmoid", "size = 3", "a2*dL_da2*(1 - a2)"),
    ("relu", "size = 3\nstride = 1", None),  # overlapping windows: (g1 + g2) h is not g1 h + g2 h
    ("leaky_relu", "size = 2", None),  # its slope is not a function of a1 alone
    ("softplus", "size = 2", None),  # sigmoid(z1): of z1
    ("identity", "size = 2", None),
]


def _pair(network, monkeypatch):
    fused = compile_module(network)
    with monkeypatch.context() as patch:
        patch.setattr(module, "fused", lambda lines, results: lines)
        plain = compile_module(network)
    return fused, plain


def _same(network, fused, plain, values):
    for function in FUNCTIONS:
        got, expected = getattr(fused, function)(**values), getattr(plain, function)(**values)
        if function == "loss_and_gradients":
            assert got[0] == expected[0]
            got, expected = got[1], expected[1]
        assert got.keys() == expected.keys()
        for key in expected:  # the same operations on the same values: the same bits
            assert got[key].dtype == expected[key].dtype, key
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{function} {key}")
            assert got[key].tobytes() == expected[key].tobytes(), f"{function} {key}: -0.0 against 0.0"


def _values(network, seed, dtype, whole):
    values = random_values(network, seed, batch=3)
    if whole:  # whole numbers: equal entries in a window, the first of them takes the gradient
        values = {k: np.round(2 * v) if np.asarray(v).dtype.kind == "f" else v for k, v in values.items()}
    return {k: v.astype(dtype) if np.asarray(v).dtype.kind == "f" else v for k, v in values.items()}


@pytest.mark.parametrize("activation, pool, factor", CASES)
def test_the_derivative_is_taken_on_the_pooled_gradient_with_the_same_bits(activation, pool, factor, monkeypatch):
    network = symprop.loads(_text(activation, pool))
    source = symprop.generate(network)
    gradients = source.split("def gradients(")[1].split("\ndef ")[0]
    if factor is None:
        assert "dL_da1 = _max_pool2d_gradient(a1, a2, dL_da2," in gradients
    else:
        assert f"delta1 = _max_pool2d_gradient(a1, a2, {factor}, " in gradients
        assert "dL_da1" not in gradients
    fused, plain = _pair(network, monkeypatch)
    for seed, dtype, whole in [(0, np.float64, False), (1, np.float32, False), (2, np.float64, True),
                               (3, np.float32, True)]:
        _same(network, fused, plain, _values(network, seed, dtype, whole))


def test_the_relu_is_then_computed_in_the_convolutions_memory():
    # z1 is read by nothing but the ReLU once the mask is [a2 > 0]: as the forward pass, in place
    source = symprop.generate(symprop.loads(_text("relu", "size = 2")))
    gradients = source.split("def gradients(")[1].split("\ndef ")[0]
    assert "a1 = np.maximum(z1, 0.0, out=z1)" in gradients and "(z1 > 0)" not in gradients


def test_a_pooling_gradient_read_elsewhere_or_returned_is_left_alone():
    z1, a1, a2, g, d, delta1, other = sp.symbols("z1 a1 a2 dL_da2 dL_da1 delta1 other")
    size = sp.Tuple(2, 2)
    step = sp.Piecewise((1, z1 > 0), (0, True))
    lines = [(a1, Relu(z1)), (a2, MaxPool2d(a1, size, size)), (d, MaxPool2dGrad(a1, a2, g, size, size)),
             (delta1, d * step)]
    assert fused(lines, [delta1])[-1] == (delta1, MaxPool2dGrad(a1, a2, g * sp.Piecewise((1, a2 > 0), (0, True)),
                                                                size, size))
    assert len(fused(lines, [delta1])) == 3
    assert fused(lines, [delta1, d]) == lines  # the pooling's gradient is a result
    assert fused(lines + [(other, 2 * d)], [delta1, other]) == lines + [(other, 2 * d)]  # read twice
    assert fused(lines[:3] + [(delta1, d * sp.Piecewise((1, z1 > 1), (0, True)))], [delta1])[-1][0] == delta1
    assert len(fused(lines[:3] + [(delta1, d * sp.Piecewise((1, z1 > 1), (0, True)))], [delta1])) == 4  # [z1 > 1]
    assert len(fused(lines[:3] + [(delta1, d * sp.Piecewise((1, a1 > 0), (0, True)))], [delta1])) == 4  # a step of a1
    assert len(fused(lines[:3] + [(delta1, d * Total(a1))], [delta1])) == 4  # not elementwise


@settings(max_examples=40, deadline=None)
@given(text=st.one_of(networks.images(), test_pooled.pooled_images()), seed=st.integers(0, 2**16),
       single=st.booleans())
def test_random_image_networks_give_the_same_bits(text, seed, single):
    network = symprop.loads(text)
    with pytest.MonkeyPatch().context() as patch:
        patch.setattr(module, "pooled", lambda lines, results, shapes: lines)
        fused = compile_module(network)
        patch.setattr(module, "fused", lambda lines, results: lines)
        plain = compile_module(network)
    values = random_values(network, seed, batch=2) if network.batch is None else random_values(network, seed)
    dtype = np.float32 if single else np.float64
    values = {k: v.astype(dtype) if np.asarray(v).dtype.kind == "f" else v for k, v in values.items()}
    _same(network, fused, plain, values)
