"""`check` explains a wrong backward (contract 5a): `first_wrong` in backward order and, per wrong
array, a `diagnosis` that the differences fit on every entry; none for a right backward, and
none that the numbers do not support."""

import json

import numpy as np
import pytest

import symprop
from symprop.diagnosis import diagnose

DENSE = """
name = "dense_l2"
inputs = 3
batch = 4
[[layers]]
units = 3
activation = "tanh"
[[layers]]
units = 2
activation = "softmax"
[loss]
kind = "cross_entropy"
labels = true
l2 = 0.01
"""


def _expected(seed=0, shape=(4, 3)):
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.25, 1.25, size=shape)


# ---------------------------------------------------------------------------------------------
# The fits, on arrays made by hand: got is built from expected by a known mistake


def _kinds(found):
    return [d["kind"] for d in found]


def test_each_mistake_is_fitted_with_its_figures():
    e = _expected()
    w = _expected(1)
    found = diagnose(4 * e, e, batch=4)
    assert _kinds(found) == ["scale"] and found[0]["factor"] == pytest.approx(4)
    assert "N = 4" in found[0]["text"] and "1/N" in found[0]["text"]
    found = diagnose(-e, e)
    assert _kinds(found) == ["scale"] and found[0]["factor"] == pytest.approx(-1) and "sign" in found[0]["text"]
    found = diagnose(e - 0.02 * w, e, weight=w, weight_name="W1", l2=0.01)
    assert _kinds(found) == ["regularization"] and found[0]["coefficient"] == pytest.approx(-0.02)
    assert found[0]["weight"] == "W1" and "missing" in found[0]["text"] and "- 0.02 * W1" in found[0]["text"]
    found = diagnose(e - 0.01 * w, e, weight=w, weight_name="W1", l2=0.01)
    assert "halved" in found[0]["text"]
    assert _kinds(diagnose(np.zeros_like(e), e)) == ["zero"]
    found = diagnose(e + 0.1, e)
    assert _kinds(found) == ["offset"] and found[0]["value"] == pytest.approx(0.1)
    square = _expected(shape=(3, 3))
    assert _kinds(diagnose(square.T, square)) == ["transposed"]
    rows = e.copy()
    rows[[0, 2]] *= 3
    found = diagnose(rows, e)
    assert _kinds(found) == ["rows"] and found[0]["indices"] == [0, 2]
    columns = e.copy()
    columns[:, 1] = 0
    found = diagnose(columns, e)
    assert _kinds(found) == ["columns"] and found[0]["indices"] == [1]


def test_no_diagnosis_the_numbers_do_not_support():
    e = _expected()
    assert diagnose(e, e) == []  # a right gradient
    assert diagnose(e + 1e-12, e) == []  # rounding is no offset
    assert diagnose(_expected(7), e) == []  # unrelated numbers: no fit holds on every entry
    half = e.copy()
    half.flat[::2] *= 4  # a factor on half the entries only: no scale, and every row is touched
    assert "scale" not in _kinds(diagnose(half, e)) and "rows" not in _kinds(diagnose(half, e))
    noisy = 4 * e
    noisy[0, 0] += 0.3  # a factor that fails on one entry is no factor
    assert "scale" not in _kinds(diagnose(noisy, e))
    w = _expected(1)
    assert diagnose(e - 0.02 * w + 0.05 * _expected(2), e, weight=w, weight_name="W") == []
    assert diagnose(np.zeros_like(e), np.zeros_like(e)) == []


# ---------------------------------------------------------------------------------------------
# Planted bugs in a backward, on a dense, a batchnorm and a conv spec


def _network(spec):
    return symprop.loads(DENSE) if spec == "dense" else symprop.load(f"examples/{spec}.toml")


def _scaled(name, factor):
    return lambda d, a: d.update({name: d[name] * factor})


def _no_penalty(name, l2):
    return lambda d, a: d.update({name: d[name] - 2 * l2 * a[name]})


def _row_zeroed(name, row):
    return lambda d, a: d[name].__setitem__(row, 0.0)


BUGS = [  # spec, bug, the planted mistake, first_wrong, {array: diagnosis kinds}
    ("dense", "right", None, None, {}),
    ("dense", "1/N forgotten", _scaled("W2", 4), "W2", {"W2": ["scale"]}),
    ("dense", "sign", _scaled("b2", -1), "b2", {"b2": ["scale"]}),
    ("dense", "penalty missing", _no_penalty("W1", 0.01), "W1", {"W1": ["regularization"]}),
    ("dense", "transposed", lambda d, a: d.update(W1=d["W1"].T.copy()), "W1", {"W1": ["transposed"]}),
    ("dense", "one row", _row_zeroed("W1", 1), "W1", {"W1": ["rows"]}),
    ("dense", "zero", _scaled("b1", 0), "b1", {"b1": ["zero"]}),
    ("dense", "offset", lambda d, a: d.update(b1=d["b1"] + 0.1), "b1", {"b1": ["offset"]}),
    ("dense", "two bugs", lambda d, a: d.update(W1=-d["W1"], b2=2 * d["b2"]), "b2",
     {"W1": ["scale"], "b2": ["scale"]}),
    ("batchnorm", "right", None, None, {}),
    ("batchnorm", "gamma doubled", _scaled("gamma2", 2), "gamma2", {"gamma2": ["scale"]}),
    ("batchnorm", "beta offset", lambda d, a: d.update(beta2=d["beta2"] + 0.5), "beta2", {"beta2": ["offset"]}),
    ("batchnorm", "W1 sign", _scaled("W1", -1), "W1", {"W1": ["scale"]}),
    ("cnn", "right", None, None, {}),
    ("cnn", "filter sign", _scaled("W1", -1), "W1", {"W1": ["scale"]}),
    ("cnn", "W4 columns", lambda d, a: d["W4"].__setitem__((slice(None), 2), 0.0), "W4", {"W4": ["columns"]}),
    ("cnn", "b4 zero", _scaled("b4", 0), "b4", {"b4": ["zero"]}),
]


@pytest.mark.parametrize("spec, bug, plant, first_wrong, kinds", BUGS, ids=[f"{b[0]}-{b[1]}" for b in BUGS])
def test_planted_bugs_are_found_and_explained(spec, bug, plant, first_wrong, kinds):
    network = _network(spec)
    namespace = {}
    exec(compile(symprop.generate(network), "<generated>", "exec"), namespace)

    def backward(**arrays):
        grads = {name: np.array(value) for name, value in namespace["gradients"](**arrays).items()}
        if plant is not None:
            plant(grads, arrays)
        return grads

    report = symprop.check(network, against=backward, batch=4)
    assert report.first_wrong == first_wrong, str(report)
    rows = report.sections["backward vs generated"]
    assert {r.name: [d["kind"] for d in r.diagnosis] for r in rows if r.diagnosis} == kinds, str(report)
    assert all(not r.diagnosis for r in rows if r.ok)
    text = str(report)
    for row in rows:
        for found in row.diagnosis:
            assert f"      diagnosis: {found['text']}" in text
    document = json.loads(report.to_json())
    assert document["first_wrong"] == first_wrong
    listed = {a["name"]: [d["kind"] for d in a["diagnosis"]] for section in document["sections"]
              for a in section["arrays"] if a["diagnosis"]}
    assert listed == kinds


def test_the_cli_prints_the_diagnosis(tmp_path, monkeypatch, capsys):
    from symprop.cli import main
    (tmp_path / "dense.toml").write_text(DENSE)
    (tmp_path / "mine.py").write_text(
        "import numpy as np\n"
        "def backward(x, y, W1, b1, W2, b2):\n"
        "    N = x.shape[0]\n"
        "    a1 = np.tanh(x @ W1 + b1)\n"
        "    z2 = a1 @ W2 + b2\n"
        "    p = np.exp(z2 - z2.max(axis=1, keepdims=True))\n"
        "    p /= p.sum(axis=1, keepdims=True)\n"
        "    p[np.arange(N), y] -= 1\n"
        "    dz2 = p / N\n"
        "    dW2 = a1.T @ dz2\n"  # the penalty's gradient 2 * l2 * W2 forgotten
        "    da1 = dz2 @ W2.T * (1 - a1 ** 2)\n"
        "    return {'W1': x.T @ da1 + 0.02 * W1, 'b1': da1.sum(axis=0), 'W2': dW2, 'b2': dz2.sum(axis=0)}\n")
    monkeypatch.chdir(tmp_path)
    status = main(["check", "dense.toml", "--against", "mine.py:backward"])
    out = capsys.readouterr().out
    assert status == 1
    assert "first wrong: W2 (the first array found wrong in backward order)" in out
    assert ("diagnosis: got = expected - 0.02 * W2: the regularization term's gradient 2 * l2 * W "
            "(l2 = 0.01) is missing") in out


def test_the_json_report_is_strict_when_a_backward_returns_inf_and_nan():
    network = symprop.load("sigmoid_mse_2_2_1")
    namespace = {}
    exec(compile(symprop.generate(network), "<generated>", "exec"), namespace)

    def backward(**arrays):
        grads = dict(namespace["gradients"](**arrays))
        grads["W1"] = np.full_like(grads["W1"], np.inf)
        grads["b1"] = np.full_like(grads["b1"], np.nan)
        return grads

    report = symprop.check(network, against=backward)

    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON")
    document = json.loads(report.to_json(), parse_constant=refuse)  # RFC 8259: no NaN, no Infinity
    rows = {a["name"]: a for s in document["sections"] for a in s["arrays"]}
    assert rows["W1"]["worst"][0]["got"] is None and rows["W1"]["max_abs_error"] is None
    assert rows["b1"]["worst"][0]["got"] is None
    assert "null in the JSON: a NaN or infinite value (W1, b1)" in document["notes"]
    assert document["first_wrong"] == "W1"


def test_no_diagnosis_from_a_nan_a_single_entry_or_a_bias_counted_as_a_weight():
    e = _expected()
    got = 3 * e
    got[1, 1] = np.nan  # the table shows the NaN; no factor explains it
    assert diagnose(got, e, batch=3) == []
    zeros = np.zeros_like(e)
    zeros[0, 0] = np.inf
    assert diagnose(zeros, e) == []
    one = np.array([0.7])
    assert diagnose(one + 0.1, one, weight=np.array([0.4]), weight_name="b") == []  # one entry fits anything
    # a bias regularized by mistake: l2 covers the weights only, so no "counted twice" for b1
    network = symprop.loads(DENSE)
    namespace = {}
    exec(compile(symprop.generate(network), "<generated>", "exec"), namespace)

    def backward(**arrays):
        grads = dict(namespace["gradients"](**arrays))
        grads["b1"] = grads["b1"] + 2 * 0.01 * arrays["b1"]
        return grads
    rows = {r.name: r for r in symprop.check(network, backward).sections["backward vs generated"]}
    assert rows["b1"].verdict == "WRONG" and not any(d["kind"] == "regularization" for d in rows["b1"].diagnosis)
