"""A learner's friction, removed: the backward's own names (`--names`, `names=`), a dropout spec's
masks kept in pytest, `keep` for dropout, and the derivation written as one writes it."""

import re

import numpy as np
import pytest
from conftest import run_cli

import symprop
from symprop.check import CheckError
from symprop.testing import assert_gradients_match

BATCHNORM = "examples/batchnorm.toml"  # W1, gamma2, beta2, W3, b3: cs231n says W1, gamma1, beta1, W2, b2
CS231N = {"gamma2": "gamma1", "beta2": "beta1", "W3": "W2", "b3": "b2"}


@pytest.fixture(scope="module")
def generated():
    namespace = {}
    exec(compile(symprop.generate(symprop.load(BATCHNORM)), "<generated>", "exec"), namespace)
    return namespace["gradients"]


def cs231n_backward(generated, slip=False):
    """A backward written with cs231n's numbering, taking `**params` as cs231n's `loss` does."""
    def backward(x, y, **params):
        ours = {"W1": params["W1"], **{spec: params[mine] for spec, mine in CS231N.items()}}
        grads = generated(x=x, y=y, **ours)
        mine = {CS231N.get(name, name): value for name, value in grads.items()}
        if slip:
            mine["gamma1"] = 2 * mine["gamma1"]
        return mine
    return backward


def test_a_backward_with_its_own_names_is_checked_with_a_name_map(generated, root):
    network = symprop.load(root / BATCHNORM)
    report = symprop.check(network, cs231n_backward(generated), names=CS231N)
    assert report.ok, str(report)
    without = symprop.check(network, cs231n_backward(generated))
    assert not without.ok and "KeyError: 'gamma1'" in without.verdict
    slipped = symprop.check(network, cs231n_backward(generated, slip=True), names=CS231N)
    assert slipped.first_wrong == "gamma2"  # reported under the spec's name
    rows = {row.name: row for row in slipped.sections["backward vs generated"]}
    assert [d["kind"] for d in rows["gamma2"].diagnosis] == ["scale"] and rows["gamma2"].diagnosis[0]["factor"] == 2
    assert_gradients_match(network, cs231n_backward(generated), names=CS231N)
    with pytest.raises(AssertionError, match="first wrong: gamma2"):
        assert_gradients_match(network, cs231n_backward(generated, slip=True), names=CS231N)


@pytest.mark.parametrize("names, rule", [
    ({"gamma9": "g"}, "--names: 'gamma9' is not an array of batchnorm_3_4_2 (its arrays are x, y, W1, gamma2"),
    ({"gamma2": "W1"}, "--names: two arrays of batchnorm_3_4_2 would both be called 'W1'"),
    ({"gamma2": "not a name"}, "'not a name' is not a Python identifier"),
])
def test_a_bad_name_map_is_refused(root, names, rule):
    with pytest.raises(CheckError, match=re.escape(rule)):
        symprop.check(symprop.load(root / BATCHNORM), lambda **a: {}, names=names)


def test_the_name_map_on_the_command_line(tmp_path, root):
    (tmp_path / "mine.py").write_text(
        "import symprop\n"
        f"_module = {{}}\nexec(symprop.generate(symprop.load({str(root / BATCHNORM)!r})), _module)\n"
        "def backward(x, y, W1, gamma1, beta1, W2, b2):\n"
        "    g = _module['gradients'](x=x, y=y, W1=W1, gamma2=gamma1, beta2=beta1, W3=W2, b3=b2)\n"
        "    return {'W1': g['W1'], 'gamma1': g['gamma2'], 'beta1': g['beta2'], 'W2': g['W3'], 'b2': g['b3']}\n")
    spec = str(root / BATCHNORM)
    assert _run(tmp_path, "check", spec, "--against", "mine.py:backward",
                "--names", "gamma2=gamma1,beta2=beta1,W3=W2,b3=b2")[0] == 0
    status, out, _ = _run(tmp_path, "check", spec, "--against", "mine.py:backward")
    assert status == 1 and "FAILED: backward raised TypeError" in out  # without the map: the spec's names
    status, _, err = _run(tmp_path, "check", spec, "--names", "gamma2")
    assert status == 2 and "--names: expected OURS=YOURS pairs separated by commas, not 'gamma2'" in err


def _run(folder, *args):
    return run_cli(folder, *args)


DROPOUT = """
name = "dropped"
inputs = 3
[[layers]]
units = 4
activation = "tanh"
[[layers]]
kind = "dropout"
{rate}
[[layers]]
units = 2
[loss]
kind = "squared_error"
[values]
m2 = [[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]]
"""
MASK = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]])


def test_assert_gradients_match_keeps_the_spec_s_masks_at_every_seed():
    network = symprop.loads(DROPOUT.format(rate="p = 0.25"))
    namespace = {}
    exec(compile(symprop.generate(network), "<generated>", "exec"), namespace)

    def backward(x, y, W1, b1, W3, b3, m2):  # the learner's dropout with their own, fixed mask
        return namespace["gradients"](x=x, y=y, W1=W1, b1=b1, W3=W3, b3=b3, m2=MASK)
    assert_gradients_match(network, backward, seeds=(0, 1, 2, 3))  # 3 samples: the mask's batch


def test_dropout_takes_keep_or_p():
    with_keep = symprop.loads(DROPOUT.format(rate="keep = 0.75"))
    with_p = symprop.loads(DROPOUT.format(rate="p = 0.25"))
    assert with_keep.layers[1].p == with_p.layers[1].p == 0.25
    assert symprop.generate(with_keep) == symprop.generate(with_p)
    for rate, rule in [("p = 0.25\nkeep = 0.75", "layers[2].keep: give one of p"),
                       ("", "layers[2].p: required key is missing (p, the probability of dropping an entry; or keep"),
                       ("keep = 0.0", "layers[2].keep: must be more than 0 and at most 1"),
                       ("keep = 1.5", "layers[2].keep: must be more than 0 and at most 1")]:
        with pytest.raises(symprop.SpecError, match=re.escape(rule)):
            symprop.loads(DROPOUT.format(rate=rate))


IDENTITY = """
name = "linear"
inputs = 2
[[layers]]
units = 2
activation = "identity"
[[layers]]
units = 1
activation = "identity"
[loss]
kind = "squared_error"
"""


def test_the_document_writes_the_identity_and_eps_as_one_writes_them(root):
    latex = symprop.derive(symprop.loads(IDENTITY)).latex()
    assert "a_{1} &= z_{1}" in latex and r"\operatorname{id}" not in latex
    batchnorm = symprop.derive(symprop.load(root / BATCHNORM))
    assert r"\sqrt{\mathrm{var}_{2} + 10^{-5}}" in batchnorm.latex() and "sqrt(var2 + 1e-5)" in batchnorm.text()


def test_train_says_where_the_parameters_come_from(tmp_path):
    (tmp_path / "net.toml").write_text(IDENTITY.replace('kind = "squared_error"', 'kind = "squared_error"\n[values]\n'
                                                         'W1 = [[0.1, 0.2], [0.3, 0.4]]\nb1 = [0.0, 0.0]\n'
                                                         'W2 = [[0.5], [0.6]]\nb2 = [0.0]'))
    np.savez(tmp_path / "xy.npz", x=np.ones((4, 2)), y=np.ones((4, 1)))
    np.savez(tmp_path / "xyw.npz", x=np.ones((4, 2)), y=np.ones((4, 1)), W1=np.zeros((2, 2)))
    for data, words in [("xy.npz", "parameters from the spec's [values]\n"),
                        ("xyw.npz", "parameters from the spec's [values] and the data file\n")]:
        status, out, _ = _run(tmp_path, "train", "net.toml", "--data", data, "--epochs", "1")
        assert status == 0 and out.splitlines(keepends=True)[0].endswith(words), out


BIAS_BEFORE = """
name = "bias_before"
inputs = {inputs}
{layers}
[[layers]]
kind = "{norm}"
activation = "relu"
{tail}
[loss]
kind = "cross_entropy"
labels = true
"""
DENSE_FIRST = '[[layers]]\nunits = 4\nactivation = "identity"'
CONV_FIRST = '[[layers]]\nkind = "conv2d"\nfilters = 2\nkernel = 3\npadding = 1\nactivation = "identity"'
DENSE_TAIL = '[[layers]]\nunits = 3\nactivation = "softmax"'
IMAGE_TAIL = '[[layers]]\nkind = "flatten"\n' + DENSE_TAIL


@pytest.mark.parametrize("inputs, first, norm, tail, zero", [
    ("3", DENSE_FIRST, "batchnorm", DENSE_TAIL, True),
    ("[1, 4, 4]", CONV_FIRST, "batchnorm", IMAGE_TAIL, True),
    ("3", DENSE_FIRST, "layernorm", DENSE_TAIL, False),  # a per-sample normalization: the bias matters
    ("[1, 4, 4]", CONV_FIRST, "layernorm", IMAGE_TAIL, False),
])
def test_the_bias_before_a_batch_normalization_has_the_gradient_0(inputs, first, norm, tail, zero):
    network = symprop.loads(BIAS_BEFORE.format(inputs=inputs, layers=first, norm=norm, tail=tail))
    derivation = symprop.derive(network)
    assert (derivation.step("dL_db1").expr.__class__.__name__ == "ZerosLike") == zero
    assert ("  dL_db1 = 0\n" in derivation.text()) == zero
    assert (r"\frac{\partial L}{\partial b_{1}} &= 0" in derivation.latex()) == zero
    namespace = {}
    exec(compile(symprop.generate(network), "<generated>", "exec"), namespace)
    from symprop.check import random_values
    values = random_values(network, 0, 4)
    for dtype in (np.float64, np.float32):
        arrays = {k: v.astype(dtype) if np.asarray(v).dtype.kind == "f" else v for k, v in values.items()}
        b1 = namespace["gradients"](**arrays)["b1"]
        assert b1.shape == np.shape(values["b1"]) and b1.dtype == dtype
        assert (not b1.any()) == zero  # exactly 0 where proved; a layer norm's bias gradient is not 0
    report = symprop.check(network, batch=4)  # the finite differences agree (to their rounding)
    assert report.ok, str(report)


def test_the_d_prefix_of_a_learners_gradients_follows_the_name_map(root, tmp_path):
    # two_layer_net's backward in a learner's names, returning dWa for the gradient of Wa (= W1)
    (tmp_path / "mine.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(root / 'examples')!r})\n"
        "from two_layer_net import backward\n\n\n"
        "def renamed(inp, y, Wa, ba, W2, b2, reg=0.05):\n"
        "    g = backward(inp, y, Wa, ba, W2, b2, reg)\n"
        "    return {'dinp': g['X'], 'dWa': g['W1'], 'dba': g['b1'], 'dW2': g['W2'], 'db2': g['b2']}\n")
    status, out, _ = _run(tmp_path, "check", f"{root}/examples/two_layer_net.py:loss", "--values",
                          f"{root}/examples/two_layer_net.npz", "--against", "mine.py:renamed",
                          "--names", "X=inp,W1=Wa,b1=ba")
    assert status == 0, out
