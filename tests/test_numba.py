"""The compiled backend (`--backend numba`) against the NumPy one, on every preset and layer kind
it supports (with loops over time, convolution and pooling): the same four functions, the same values to rounding, the same checks; and a clear
refusal (exit 2) for what it does not support yet. Skipped without the numba extra."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

import symprop
import test_images
import test_kinds
import test_sequences
from conftest import ROOT
from symprop.check import random_values
from symprop.codegen.files import compile_module

numba = pytest.importorskip("numba")
pytest.importorskip("scipy")  # Numba's np.dot calls BLAS through SciPy

FUNCTIONS = ("forward", "loss", "gradients", "loss_and_gradients")
IMAGES = ("tiny_conv_pool_oracle", "kernel1_then_overlapping_maxpool", "pool_on_the_input_hinge_l2")
SEQUENCES = ("last_tanh_classifier", "lstm_two_steps", "rnn_language_model_masked", "binary_cross_entropy_per_step")
NETWORKS = {**{name: lambda name=name: symprop.load(name) for name in symprop.presets()},
            **{case: lambda case=case: test_kinds.network(case) for case in test_kinds.CASES},
            # loops over time (each LSTM module takes Numba 20-40 s to compile: four of them)
            **{case: test_sequences.SPECS[case] for case in SEQUENCES},
            # convolution and pooling (each module takes Numba 30-60 s to compile: three of them)
            **{case: lambda case=case: test_images.network(case) for case in IMAGES}}


def _pair(network):
    return compile_module(network), compile_module(network, symprop.generate(network, backend="numba"))


def _values(network, seed=0):
    return dict(network.values) if network.values else random_values(network, seed, batch=3)


def _assert_same(ours, theirs, name):
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys(), name
        for key in ours:
            _assert_same(ours[key], theirs[key], f"{name}[{key}]")
    elif isinstance(ours, tuple):
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _assert_same(a, b, f"{name}[{i}]")
    else:  # the same float64 operations, in another order inside BLAS and the reductions
        assert np.shape(ours) == np.shape(theirs), name
        np.testing.assert_allclose(theirs, ours, rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_compiled_module_equals_the_numpy_module(name):
    network = NETWORKS[name]()
    numpy_module, numba_module = _pair(network)
    assert numba_module.PARAMETERS == numpy_module.PARAMETERS and numba_module.CACHE is False  # in memory
    assert numba_module.ARGUMENTS == numpy_module.ARGUMENTS
    for seed in (0, 1):
        values = _values(network, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no NumbaPerformanceWarning, no floating-point warning
            for function in FUNCTIONS:
                args = {k: values[k] for k in numpy_module.ARGUMENTS[function]}
                _assert_same(getattr(numpy_module, function)(**args), getattr(numba_module, function)(**args),
                             f"{name}.{function}")


@pytest.fixture(scope="module")
def compiled():
    network = symprop.load("relu_softmax_3_4_2")
    return network, _pair(network)


def test_compiled_module_checks_its_arguments_as_the_numpy_module_does(compiled):
    network, (numpy_module, numba_module) = compiled
    values = dict(network.values)
    numba_module.gradients(**values)  # the fast path knows these shapes now
    bad = {**values, "W": np.array(values["W"], dtype=float)}
    bad["W"][1, 2] = np.nan
    for module in (numpy_module, numba_module):
        with pytest.raises(ValueError, match=r"array 'W' of shape \(4, 3\) holds nan at \[1, 2\]"):
            module.gradients(**bad)
        with pytest.raises(ValueError, match="missing array 'U'"):
            module.loss(**{k: v for k, v in values.items() if k != "U"})
        with pytest.raises(ValueError, match="unknown array 'w'; did you mean 'W'"):
            module.loss(**values, w=1.0)
    numba_module.CHECK_FINITE = False
    try:
        assert np.isnan(numba_module.loss(**bad))  # unchecked: NaN propagates into the loss
    finally:
        numba_module.CHECK_FINITE = True


def test_compiled_module_takes_float32_lists_and_integers_and_computes_in_float64(compiled):
    network, (numpy_module, numba_module) = compiled
    values = {k: np.asarray(v) for k, v in network.values.items()}
    single = {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in values.items()}
    listed = {k: v.tolist() for k, v in values.items()}
    expected = numpy_module.gradients(**{k: v.astype(np.float64) if v.dtype.kind == "f" else v
                                         for k, v in single.items()})
    for given in (single, listed):
        got = numba_module.gradients(**given)
        for key in expected:
            assert got[key].dtype == np.float64
    got = numba_module.gradients(**single)
    for key in expected:  # float32 values, converted exactly, then computed as float64
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-10, atol=1e-13)


def test_calls_with_new_batch_sizes_give_the_numpy_modules_results():
    network = symprop.load("sigmoid_mse_2_2_1")
    numpy_module, numba_module = _pair(network)
    rng = np.random.default_rng(3)
    for n in (5, 1, 7, 5):  # the kernels are compiled once, for any batch size
        values = {**dict(network.values), "x": rng.normal(size=(n, 2)), "y": rng.normal(size=(n, 1))}
        _assert_same(numpy_module.loss_and_gradients(**values), numba_module.loss_and_gradients(**values), str(n))
    assert len(numba_module._loss_and_gradients.signatures) == 1


@pytest.mark.parametrize("network, what", [
    (test_sequences.SPECS["attention_one_head"], "attention"),
])
def test_what_the_compiled_backend_does_not_support_is_refused_by_name(network, what):
    network = network()
    with pytest.raises(symprop.codegen.numba_backend.Unsupported,
                       match=rf"^{network.name}: --backend numba does not support {what}"):
        symprop.generate(network, backend="numba")


def test_command_line_backend(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "symprop", *args], capture_output=True, text=True, cwd=tmp_path)
    done = run("generate", "sigmoid_mse_2_2_1", "--backend", "numba", "--out", "out")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out" / "sigmoid_mse_2_2_1.py").read_text()
    assert "import numba\n" in text and "@numba.njit" in text
    assert "Regenerate with: symprop generate sigmoid_mse_2_2_1 --out out --backend numba" in text
    assert run("generate", "sigmoid_mse_2_2_1", "--backend", "numba", "--out", "out", "--check").returncode == 0
    # imported from its file, the module keeps what Numba compiled in __pycache__ for the next process
    call = ("import sys; sys.path.insert(0, 'out'); import sigmoid_mse_2_2_1 as m, symprop; "
            "print(m.CACHE, m.loss(**symprop.load('sigmoid_mse_2_2_1').values))")
    first = subprocess.run([sys.executable, "-c", call], capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0 and first.stdout.startswith("True "), first.stderr
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "out" / "__pycache__").glob("*.nbi")) == [
        "sigmoid_mse_2_2_1._loss", "sigmoid_mse_2_2_1._sigmoid", "sigmoid_mse_2_2_1._sum_squares"]
    stale = run("generate", "sigmoid_mse_2_2_1", "--out", "out", "--check")  # the NumPy module differs
    assert stale.returncode == 1 and stale.stdout.startswith("out/sigmoid_mse_2_2_1.py: ")
    refused = run("generate", str(ROOT / "examples" / "two_layer_net.py") + ":loss", "--values",
                  str(ROOT / "examples" / "two_layer_net.npz"), "--backend", "numba", "--out", "out2")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "does not support a traced function" in refused.stderr
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("n", [1, 3])
def test_a_weight_gradient_and_the_sum_of_its_squares_in_one_pass(n):
    """A row-layout weight gradient that is a result comes with the sum of its squares (the look
    for NaN and inf takes no second pass over it): the product of the NumPy module, the sum of
    its squares, and an inf or a NaN in an operand shows in the sum. Batch 1 is a loop of its own."""
    network = symprop.load("sigmoid_mse_2_2_1")
    source = symprop.generate(network, backend="numba")
    assert "dL_dW1, _squares_dL_dW1 = _weight_gradient_squares(x, delta1)" in source
    module = compile_module(network, source)
    rng = np.random.default_rng(n)
    a, delta = rng.normal(size=(n, 5)), rng.normal(size=(n, 4))
    out, total = module._weight_gradient_squares(a, delta)
    np.testing.assert_allclose(out, a.T @ delta, rtol=1e-14, atol=1e-15)
    assert total == pytest.approx(float(np.sum((a.T @ delta) ** 2)), rel=1e-13)
    for bad in (np.inf, np.nan):
        a[0, 2] = bad
        assert not np.isfinite(module._weight_gradient_squares(a, delta)[1])
    values = {**dict(network.values), "x": rng.normal(size=(n, 2)), "y": rng.normal(size=(n, 1))}
    values["x"][0, 1] = np.nan  # found in the results, then named by the slow path
    with pytest.raises(ValueError, match=r"array 'x' of shape \(\d, 2\) holds nan at \[0, 1\]"):
        module.gradients(**values)


def test_the_weight_gradient_helper_keeps_its_operands_dtype_at_every_batch():
    """Numba types both branches of `_weight_gradient_squares` whatever the batch: the batch-1 loop's
    result has its operands' dtype, as np.dot's has (a float64 loop result did not compile for float32)."""
    network = symprop.load("sigmoid_mse_2_2_1")
    module = compile_module(network, symprop.generate(network, backend="numba"))
    rng = np.random.default_rng(0)
    for n in (1, 4):
        a, delta = rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 2)).astype(np.float32)
        out, total = module._weight_gradient_squares(a, delta)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, a.T @ delta, rtol=1e-6, atol=1e-7)
        assert total == pytest.approx(float(np.sum((a.T @ delta).astype(np.float64) ** 2)), rel=1e-5)
