"""Workspaces and in-place arithmetic (`codegen.workspaces`): the large intermediates of a
generated function live in buffers kept between calls, and that changes no value. Over every
image case and the sequence cases whose lines have three axes: the module equals, bit for bit,
the one generated without buffers, for every function, across calls with different batch sizes
and dtypes (integer inputs, mixed float32 and float64), in threads at once; a result is never a buffer (a later call leaves it as it was);
the dense networks (the presets) have no buffers at all, and are computed in place (a matrix
product first, the bias, mask or derivative applied into it) with the same values, bit for bit,
over random networks of every activation, loss, layout and dense layer kind."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import networks
import symprop
import test_images
import test_sequences
from symprop.check import random_values
from symprop.codegen import workspaces
from symprop.codegen.files import compile_module

FUNCTIONS = ("forward", "loss", "gradients", "loss_and_gradients")
SEQUENCES = ("dense_at_every_step_squared_masked", "attention_one_head", "attention_two_heads_causal_classifier",
             "attention_four_heads_no_bias_causal")
# the output a view of a pooling (a reshape): the pooling must not be a buffer
FLATTENED_TEXT = ('name = "flat"\ninputs = [1, 4, 4]\n[[layers]]\nkind = "conv2d"\nfilters = 2\nkernel = 3\n'
                  'padding = 1\nactivation = "relu"\n[[layers]]\nkind = "maxpool2d"\nsize = 2\n[[layers]]\n'
                  'kind = "flatten"\n[loss]\nkind = "squared_error"\n')
FLATTENED = symprop.loads(FLATTENED_TEXT)
NETWORKS = {**{f"image {case}": lambda case=case: test_images.network(case) for case in test_images.CASES},
            "image flattened pooling as the output": lambda: FLATTENED,
            **{f"sequence {case}": test_sequences.SPECS[case] for case in SEQUENCES}}


def _pair(network, monkeypatch=None):
    """The module, and the same generated with no line placed in a buffer or computed in place."""
    placed = compile_module(network)
    with (monkeypatch or pytest.MonkeyPatch()).context() as patch:
        patch.setattr(workspaces, "SMALLEST_NDIM", 99)
        patch.setattr(workspaces, "SMALLEST_IN_PLACE_NDIM", 99)
        plain = compile_module(network)
    return placed, plain


def _values(network, seed, batch, dtype=np.float64):
    values = random_values(network, seed, batch=batch) if network.batch is None or batch == network.batch \
        else random_values(network, seed)
    return {k: v.astype(dtype) if np.asarray(v).dtype.kind == "f" else v for k, v in values.items()}


def _same(got, expected, what):
    if isinstance(expected, dict):
        assert got.keys() == expected.keys(), what
        for key in expected:
            _same(got[key], expected[key], f"{what}[{key}]")
    elif isinstance(expected, tuple):
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _same(g, e, f"{what}[{i}]")
    else:  # the same operations in the same order: the same bits
        assert np.asarray(got).dtype == np.asarray(expected).dtype, what
        np.testing.assert_array_equal(got, expected, err_msg=what)


def test_the_table_places_lines_in_buffers_and_the_presets_none():
    for name, make in NETWORKS.items():
        if name.startswith("image"):  # a sequence's: products and loops, in place at most
            assert "work.empty(" in symprop.generate(make()), name
    for preset in symprop.presets():
        assert "_Workspace" not in symprop.generate(preset), preset


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_buffers_change_no_value_across_batch_sizes_and_dtypes(name, monkeypatch):
    network = NETWORKS[name]()
    placed, plain = _pair(network, monkeypatch)
    kept = {}
    for seed, batch, dtype in [(0, 3, np.float64), (1, 3, np.float64), (2, 5, np.float64), (3, 3, np.float32),
                               (4, 3, np.float64)]:  # the same buffers again, then new ones, then again
        values = _values(network, seed, batch, dtype)
        for function in FUNCTIONS:
            got = getattr(placed, function)(**values)
            _same(got, getattr(plain, function)(**values), f"{name} {function} seed {seed}")
            kept[seed, function] = (got, getattr(plain, function)(**values))
    for (seed, function), (got, expected) in kept.items():  # a later call left every result as it was
        _same(got, expected, f"{name} {function} seed {seed}, after the later calls")


def test_calls_in_threads_at_once_get_their_own_buffers(monkeypatch):
    network = test_images.network("conv3_pad1_relu_maxpool2")
    placed, plain = _pair(network, monkeypatch)
    inputs = [_values(network, seed, 2 + seed % 3) for seed in range(8)]
    expected = [plain.loss_and_gradients(**values) for values in inputs]
    failures = []

    def work(offset):
        for round in range(25):
            k = (offset + round) % len(inputs)
            try:
                _same(placed.loss_and_gradients(**inputs[k]), expected[k], f"input {k}")
            except AssertionError as error:
                failures.append(error)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[0]


def test_buffers_are_kept_between_calls_unless_told_not_to(monkeypatch):
    network = test_images.network("conv3_pad1_relu_maxpool2")
    placed, plain = _pair(network, monkeypatch)
    values = _values(network, 0, 4)
    placed.gradients(**values)
    kept = dict(placed._SPARE["gradients"])
    assert {"t0", "z1", "a2", "delta1"} <= kept.keys()  # a1: the ReLU in z1's memory
    placed.gradients(**values)
    assert all(placed._SPARE["gradients"][name] is buffer for name, buffer in kept.items())  # the same memory
    results = placed.gradients(**values)
    assert not any(np.shares_memory(result, buffer) for result in results.values() for buffer in kept.values())
    placed.KEEP_WORKSPACES = False
    placed._SPARE.clear()
    _same(placed.gradients(**values), plain.gradients(**values), "without kept buffers")
    assert placed._SPARE == {}


@pytest.mark.parametrize("inputs, parameters", [(np.int64, np.float64), (np.uint8, np.float32), (np.float32, np.float64),
                                                (np.float64, np.float32)])
def test_integer_and_mixed_dtypes_give_what_they_give_without_buffers(inputs, parameters, monkeypatch):
    for case in ("conv3_pad1_relu_maxpool2", "pool_on_the_input_hinge_l2", "two_convs_avgpool_rect"):
        network = test_images.network(case)
        placed, plain = _pair(network, monkeypatch)
        placed.VALIDATE = plain.VALIDATE = False  # integers as they are: NumPy's own promotion
        values = random_values(network, 0, batch=3)
        for name in network.differentiated:
            values[name] = values[name].astype(parameters)
        x = values[network.input]
        values[network.input] = (np.abs(x) * 10).astype(inputs) if np.dtype(inputs).kind in "iu" else x.astype(inputs)
        for function in FUNCTIONS:
            _same(getattr(placed, function)(**values), getattr(plain, function)(**values), f"{case} {function}")


def test_the_buffers_name_is_reserved():
    with pytest.raises(symprop.SpecError, match="work"):
        symprop.loads(FLATTENED_TEXT.replace('filters = 2', 'filters = 2\nweight = "work"'))


TANH = networks.mlp(3, (4, "tanh"), (2, "tanh"), loss="squared_error")


def test_a_dense_layer_is_computed_as_one_writes_it_by_hand():
    code = symprop.generate(TANH)
    for lines in (["z1 = np.dot(x, W1)", "z1 += b1", "a1 = np.tanh(z1, out=z1)"],  # the forward: one array
                  ["delta1 = np.dot(delta2, W2.T)", "delta1 *= 1 - a1**2"]):  # the backward: two, not four
        assert "\n    ".join(lines) in code, lines
    assert "_Workspace" not in code  # in place, no buffer kept between calls


@settings(max_examples=150, deadline=None)
@given(text=networks.specs(kinds=True), seed=st.integers(0, 2**16), single=st.booleans())
def test_dense_networks_in_place_give_the_same_bits(text, seed, single):
    network = symprop.loads(text)
    placed, plain = _pair(network)
    values = _values(network, seed, network.batch or 3, np.float32 if single else np.float64)
    for function in FUNCTIONS:
        _same(getattr(placed, function)(**values), getattr(plain, function)(**values), f"{function}\n{text}")


TIED_L2 = """name = "tied"
inputs = 1
[[layers]]
units = 2
activation = "identity"
[[layers]]
units = 1
activation = "sigmoid"
weight = "W1"
transpose_weight = true
[loss]
kind = "binary_cross_entropy"
l2 = 0.1
"""


def test_a_sum_of_three_terms_is_accumulated_in_the_plain_lines_order():
    # dL_dW1 = W1's two weight gradients + 0.2*W1: the printer adds the products first, and so must
    # the accumulation (it once added 0.2*W1 second, and the last bit differed for half the seeds)
    network = symprop.loads(TIED_L2)
    assert "dL_dW1 += _weight_gradient(x, delta1)\n    dL_dW1 += 0.2*W1\n" in symprop.generate(network)
    placed, plain = _pair(network)
    for seed in range(20):
        values = random_values(network, seed, batch=3)
        _same(placed.gradients(**values), plain.gradients(**values), f"seed {seed}")


def test_mixed_float_dtypes_are_computed_in_the_widest():
    # in place keeps the dtype of the array computed in: the check makes the arrays share the widest
    module = compile_module(TANH)
    values = random_values(TANH, 0, batch=5)
    mixed = {name: value if name == "b1" else value.astype(np.float32) for name, value in values.items()}
    widest = {name: value.astype(np.float64) for name, value in mixed.items()}
    for function in FUNCTIONS:
        _same(getattr(module, function)(**mixed), getattr(module, function)(**widest), function)
    assert module.gradients(**mixed)["W1"].dtype == np.float64  # b1 is float64: so is everything
