"""`symprop check`: finds the wrong array and entry, explains odd returns, float32, kinks, PyTorch."""

import numpy as np
import pytest
from conftest import ROOT, load_example
from handwritten import BACKWARD
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from networks import networks

from symprop import symbolic
from symprop.check import check, random_values
from symprop.codegen.files import compile_module

SEED001 = symbolic.load("relu_regression_3_4_3_1")
SEED002 = symbolic.load("relu_softmax_3_4_2")


seed001_backward = load_example("seed001").backward  # right, but for W1 (examples/seed001.py)
seed001_backward.__name__ = "seed001_backward"


def rows(report, title_start):
    title = next(t for t in report.sections if t.startswith(title_start))
    return {row.name: row for row in report.sections[title]}


def test_seed_001_bug_names_w1_and_what_it_should_be():
    report = check(SEED001, seed001_backward)
    theirs = rows(report, "seed001_backward")
    assert not report.ok
    assert theirs["W1"].verdict == "WRONG"
    assert [name for name, row in theirs.items() if not row.ok] == ["W1"]
    # the worst entry: W1[0, 2] = delta1[0] * X[2] = 0.0244614 * 3, the seed returned 0
    index, got, expected = theirs["W1"].worst[0]
    assert index == (0, 2) and got == 0 and expected == pytest.approx(0.07338406513, abs=1e-10)
    assert "W1[0, 2] should be delta1[0] * X[2] = 0.0244614 * 3 = 0.07338406513, not" in theirs["W1"].should_be
    text = report.format()
    assert "FAILED: 1 array(s) wrong: W1" in text


@pytest.mark.parametrize("name", symbolic.presets())
def test_correct_hand_written_backward_passes(name):
    report = check(symbolic.load(name), BACKWARD[name])
    assert report.ok, report.format()
    assert report.format().endswith("all gradients agree\n")


def test_the_odd_example_is_reported_in_words():
    theirs = rows(check(SEED001, load_example("odd001").backward), "backward")
    assert {name: row.verdict for name, row in theirs.items()} == {
        "W1": "transposed", "B1": "ok", "W2": "renamed", "B2": "ok", "W3": "ok", "B3": "missing"}


def test_missing_transposed_renamed_and_reshaped_arrays_are_reported_in_words():
    right = BACKWARD["relu_regression_3_4_3_1"]

    def odd(**arrays):
        g = right(**arrays)
        g["dW2"] = g.pop("W2")  # another name
        del g["B3"]  # forgotten
        g["W1"] = g["W1"].T  # transposed
        g["B1"] = g["B1"][:, None]  # right values, (4, 1) instead of (4,)
        return g

    report = check(SEED001, odd)
    theirs = rows(report, "odd")
    assert (theirs["W2"].verdict, theirs["W2"].note) == ("renamed", "returned as 'dW2' (its values are right): name it 'W2'")
    assert (theirs["B3"].verdict, theirs["B3"].note) == ("missing", "no gradient returned for this array")
    assert (theirs["W1"].verdict, theirs["W1"].note) == ("transposed", "returned transposed: shape (3, 4), expected (4, 3)")
    assert (theirs["B1"].verdict, theirs["B1"].note) == ("wrong shape", "right values in shape (4, 1), expected (4,)")
    assert theirs["W3"].ok and theirs["B2"].ok
    assert not report.ok


@pytest.mark.parametrize("returned, message", [
    (lambda **a: [1, 2], "odd returned list, expected a dict of gradients by name or a (loss, dict) pair"),
    (lambda **a: (1.0, 2.0), "odd returned tuple, expected a dict of gradients by name or a (loss, dict) pair"),
    (lambda **a: None, "odd returned None, expected a dict of gradients by name or a (loss, dict) pair"),
    (lambda **a: ({}, 1.0), "odd returned (dict, loss): expected a (loss, dict) pair, the loss first"),
])
def test_a_function_that_returns_no_gradients_gets_one_verdict(returned, message):
    returned.__name__ = "odd"
    report = check(SEED001, returned)
    assert report.failures == [message] and not report.ok
    assert report.format().splitlines()[-1] == "FAILED: " + message  # not "FAILED: 0 array(s) wrong"
    assert "0 array(s)" not in report.format()


def test_a_function_that_raises_is_shown_with_its_file_and_line(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text("import numpy as np\n\n\ndef backward(**arrays):\n"
                      "    g = {k: np.zeros_like(v) for k, v in arrays.items()}\n"
                      "    return g['W1'] @ g['W2']  # shapes (4, 3) @ (3, 4) fine; then:\n"
                      "\n\ndef broken(**arrays):\n    return np.ones(3) @ np.ones(4)\n")
    import importlib.util
    spec = importlib.util.spec_from_file_location("mine", source)
    mine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mine)
    report = check(SEED001, mine.broken)
    (failure,) = report.failures
    assert failure.startswith("broken raised ValueError: matmul: Input operand 1 has a mismatch")
    assert failure.endswith(f"(at {source}, line 10: return np.ones(3) @ np.ones(4))")
    assert report.verdict == "FAILED: " + failure


def test_a_loss_and_gradients_pair_is_accepted_and_its_loss_compared():
    right = BACKWARD["relu_regression_3_4_3_1"]
    exact = compile_module(SEED001).loss(**SEED001.values)
    report = check(SEED001, lambda **a: (exact, right(**a)))
    assert report.ok, report.format()
    assert rows(report, "<lambda>")["loss"].ok
    report = check(SEED001, lambda **a: (exact * 1.01, right(**a)))
    assert not report.ok and report.wrong == ["loss"]


def test_names_that_differ_only_in_case_are_matched():
    right = BACKWARD["relu_regression_3_4_3_1"]

    def lower(x, y_true, w1, b1, w2, b2, w3, b3):  # the spec says X, W1, B1, ...
        grads = right(X=x, y_true=y_true, W1=w1, B1=b1, W2=w2, B2=b2, W3=w3, B3=b3)
        return {k.lower(): v for k, v in grads.items()}

    report = check(SEED001, lower)
    assert report.ok, report.format()


def test_a_keepdims_bias_under_another_name_is_renamed_and_reshaped():
    # seed 000's own backward returns db1 of shape (1, 2): right values, another name and shape
    net = symbolic.load("sigmoid_mse_2_2_1")
    right = BACKWARD[net.name]

    def keepdims(**arrays):
        grads = right(**arrays)
        return {"dW1": grads["W1"], "db1": grads["b1"][None, :], "W2": grads["W2"], "b2": grads["b2"]}

    theirs = rows(check(net, keepdims), "keepdims")
    assert theirs["b1"].verdict == "renamed"
    assert theirs["b1"].note == "returned as 'db1' in shape (1, 2) (its values are right): name it 'b1', shape (2,)"
    assert theirs["W1"].note == "returned as 'dW1' (its values are right): name it 'W1'"
    assert theirs["W2"].ok and theirs["b2"].ok


def test_the_relative_error_is_the_array_normwise_one():
    # a factor-3 bug: got 3x where x is expected, a relative error of 2 (not 0.5)
    right = BACKWARD["relu_regression_3_4_3_1"]
    report = check(SEED001, lambda **a: {**right(**a), "W3": 3 * right(**a)["W3"]})
    w3 = rows(report, "<lambda>")["W3"]
    expected = compile_module(SEED001).gradients(**SEED001.values)["W3"]
    assert w3.verdict == "WRONG"
    assert w3.max_rel == pytest.approx(2.0, rel=1e-12)
    assert w3.max_abs == pytest.approx(2 * np.abs(expected).max(), rel=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_a_gradient_that_is_exactly_zero_is_not_reported_wrong(seed):
    # a shared bias before a softmax: dL/db2 = sum(a2 - y) = 0 exactly; both sides give rounding
    net = symbolic.loads('name = "shared"\ninputs = 3\n[[layers]]\nunits = 4\nactivation = "tanh"\n'
                         '[[layers]]\nunits = 3\nactivation = "softmax"\nshared_bias = true\n'
                         '[loss]\nkind = "cross_entropy"\n')
    report = check(net, seed=seed)
    assert report.ok, report.format()
    b2 = rows(report, "generated vs numerical")["b2"]
    assert b2.max_abs < 1e-12  # the zero gradient, to rounding: a floor of 1e-12 max(1, |L|)


def test_large_arrays_are_sampled_and_the_report_says_how_many():
    net = symbolic.loads('name = "wide"\ninputs = 40\n[[layers]]\nunits = 30\nactivation = "tanh"\n'
                         '[[layers]]\nunits = 2\nactivation = "identity"\n[loss]\nkind = "squared_error"\n')
    report = check(net)
    table = rows(report, "generated vs numerical")
    assert (table["W1"].compared, table["W1"].size) == (100, 1200)
    assert all(table[n].compared == table[n].size for n in ("b1", "W2", "b2"))
    assert "numerical gradients on a seeded sample of entries: W1 100 of 1200 (--entries to change)" in report.notes
    assert report.ok, report.format()
    everything = rows(check(net, entries=None), "generated vs numerical")
    assert everything["W1"].compared == 1200
    few = rows(check(net, entries=7), "generated vs numerical")
    assert [few[n].compared for n in ("W1", "b1", "W2", "b2")] == [7, 7, 7, 2]


def test_a_bug_outside_the_sample_is_still_found_against_a_hand_written_backward():
    net = symbolic.loads('name = "wide"\ninputs = 40\n[[layers]]\nunits = 30\nactivation = "tanh"\n'
                         '[[layers]]\nunits = 2\nactivation = "identity"\n[loss]\nkind = "squared_error"\n')
    module = compile_module(net)

    def one_entry_off(**arrays):
        grads = module.gradients(**arrays)
        grads["W1"][39, 29] += 1.0
        return grads

    report = check(net, one_entry_off, entries=1)
    table = rows(report, "one_entry_off")
    assert table["W1"].verdict == "WRONG" and table["W1"].note == "1 of 1200 entries wrong"
    assert table["W1"].worst[0][0] == (39, 29)


def test_the_report_as_json():
    import json
    report = check(SEED001, seed001_backward)
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["verdict"] == "FAILED: 1 array(s) wrong: W1"
    (numerical, theirs) = data["sections"]
    assert theirs["title"] == "seed001_backward vs generated"
    w1 = next(a for a in theirs["arrays"] if a["name"] == "W1")
    assert w1["verdict"] == "WRONG" and w1["worst"][0]["index"] == [0, 2]
    assert w1["worst"][0]["expected"] == pytest.approx(0.07338406513, abs=1e-10)
    assert (w1["compared"], w1["size"]) == (12, 12)


seed002_float32 = load_example("seed002").backward  # right, in float32 (examples/seed002.py)


def test_float32_backward_of_seed_002_passes_with_a_note():
    report = check(SEED002, seed002_float32)
    assert report.ok, report.format()
    assert any("returned float32 arrays" in note and "float64" in note for note in report.notes)
    # the float32 gradients are float32-close, far from float64-close: the note is not decoration
    theirs = seed002_float32(**SEED002.values)
    exact = compile_module(SEED002).gradients(**SEED002.values)
    error = max(np.max(np.abs(theirs[k] - exact[k])) / np.max(np.abs(exact[k])) for k in exact)
    assert 1e-8 < error < 1e-5


def test_a_float16_backward_is_compared_at_float16_precision():
    # a right float16 backward (about 3 digits) was compared at float32's 1e-5 and called WRONG;
    # a float16 gradient that is off by 5% is still WRONG
    def half(**arrays):
        return {k: v.astype(np.float16) for k, v in seed002_float32(**arrays).items()}

    def half_off(**arrays):
        out = half(**arrays)
        out["W"] = (out["W"].astype(np.float64) * 1.05).astype(np.float16)
        return out
    report = check(SEED002, half)
    assert report.ok, report.format()
    assert any("returned float16 arrays" in note and "rtol 0.01" in note for note in report.notes)
    wrong = check(SEED002, half_off)
    assert not wrong.ok and wrong.first_wrong == "W"


def test_float32_inputs_get_a_note_and_float64_differences():
    values = {k: v.astype(np.float32) for k, v in SEED002.values.items()}
    report = check(SEED002, values=values)
    assert report.ok
    assert any("are float32: the numerical gradients are computed in float64" in n for n in report.notes)


def test_entries_at_a_kink_are_warned_about_not_failed():
    values = dict(SEED001.values)
    values["B1"] = values["B1"].copy()
    values["B1"][1] = -(values["W1"][1] @ values["X"])  # z1[1] = 0 exactly: the kink of unit 1
    report = check(SEED001, values=values)
    assert any(note.startswith("warning: ") and "kink" in note for note in report.notes)
    assert report.ok, report.format()


def test_random_values_are_seeded_and_away_from_kinks():
    net = symbolic.loads("""name = "deep"\ninputs = 4\n[[layers]]\nunits = 6\nactivation = "relu"
[[layers]]\nunits = 5\nactivation = "leaky_relu"\n[[layers]]\nunits = 1\nactivation = "identity"
[loss]\nkind = "squared_error"\n""")
    first, second, other = check(net, seed=7), check(net, seed=7), check(net, seed=8)
    assert first.notes == second.notes and first.notes != other.notes
    assert first.notes[0].startswith("random values (seed ")
    module = compile_module(net, codegen_steps(net))
    used = int(first.notes[0].split("seed ")[1].split(")")[0])
    values = random_values(net, used)
    steps = module.steps(**values)
    assert min(np.abs(steps["z1"]).min(), np.abs(steps["z2"]).min()) >= 1e-3


def codegen_steps(net):
    from symprop.codegen.module import generate, steps_source
    return generate(net) + "\n\n" + steps_source(net)


torch = pytest.importorskip("torch", reason="PyTorch is not installed: the cross-checks need it")


@pytest.mark.parametrize("name", symbolic.presets())
def test_presets_agree_with_pytorch_autograd(name):
    report = check(symbolic.load(name), torch=True)
    table = rows(report, "generated vs PyTorch")
    assert set(table) == {"loss", *symbolic.load(name).differentiated}
    assert all(row.ok for row in table.values()), report.format()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(), seed=st.integers(0, 2**16))
def test_random_networks_agree_with_pytorch_to_1e_10(network, seed):
    from symprop.reference import torch_loss_and_gradients
    values = random_values(network, seed)
    module = compile_module(network)
    loss, grads = module.loss_and_gradients(**values)
    torch_loss, torch_grads = torch_loss_and_gradients(network, values)
    assert loss == pytest.approx(torch_loss, rel=1e-10, abs=1e-12)
    for name in network.differentiated:
        # relative 1e-10 to the array's scale; rounding (1e-14 of the loss) where it is zero
        tolerance = 1e-10 * np.abs(torch_grads[name]).max(initial=0) + 1e-14 * max(1.0, abs(loss))
        assert np.abs(grads[name] - torch_grads[name]).max(initial=0) <= tolerance, name


def test_cli_json_entries_and_batch(capsys, tmp_path):
    import json

    from symprop.cli import main
    spec = tmp_path / "wide.toml"
    spec.write_text('name = "wide"\ninputs = 40\n[[layers]]\nunits = 30\nactivation = "tanh"\n'
                    '[[layers]]\nunits = 2\nactivation = "identity"\n[loss]\nkind = "squared_error"\n')
    assert main(["check", str(spec), "--json", "--entries", "5", "--batch", "2", "--seed", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["verdict"] == "all gradients agree"
    arrays = {a["name"]: a for a in data["sections"][0]["arrays"]}
    assert [(arrays[n]["compared"], arrays[n]["size"]) for n in ("W1", "b1", "W2", "b2")] == [
        (5, 1200), (5, 30), (5, 60), (2, 2)]
    assert data["notes"][0] == "random values (seed 3) for x, y, W1, b1, W2, b2"
    assert main(["check", str(spec), "--entries", "all"]) == 0
    assert "seeded sample" not in capsys.readouterr().out
    for bad in ("0", "-3", "some"):
        assert main(["check", str(spec), "--entries", bad]) == 2
        assert "expected a number >= 1 or 'all'" in capsys.readouterr().err


def test_random_weights_of_wide_layers_keep_pre_activations_of_order_one():
    net = symbolic.loads('name = "wide"\ninputs = 784\n[[layers]]\nunits = 64\nactivation = "relu"\n'
                         '[[layers]]\nunits = 3\nactivation = "softmax"\n[loss]\nkind = "cross_entropy"\n')
    values = random_values(net, 0, batch=50)
    z1 = values["x"] @ values["W1"]
    # magnitudes 0.25..1.25 (mean square 0.52) times sqrt(16 / 784): std of z1 about sqrt(16 * 0.52^2)
    assert 1.0 < z1.std() < 4.0
    assert np.abs(values["W2"]).max() <= 1.25 * np.sqrt(16 / 64) + 1e-12
    assert np.abs(values["x"]).min() >= 0.25  # inputs and biases are not scaled


def test_progress_is_shown_on_a_terminal_and_cleared(capsys, monkeypatch):
    from symprop.cli import main
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert main(["check", "relu_regression_3_4_3_1"]) == 0
    captured = capsys.readouterr()
    total = 12 + 4 + 12 + 3 + 3 + 1  # every entry of W1, B1, W2, B2, W3, B3
    assert f"\rnumerical gradients: {total} of {total} entries" in captured.err
    assert captured.err.endswith("\r\033[K")  # the line is cleared before the report
    assert captured.out.endswith("all gradients agree\n")


@pytest.mark.parametrize("spoil", [
    lambda g: {**g, "W1": np.full_like(g["W1"], np.nan)},  # every entry NaN
    lambda g: {**g, "W2": np.where(np.arange(g["W2"].size).reshape(g["W2"].shape) == 1, np.nan, g["W2"])},
])
def test_nan_gradients_are_wrong(spoil):
    right = BACKWARD["relu_regression_3_4_3_1"]
    report = check(SEED001, lambda **a: spoil(right(**a)))
    assert not report.ok and not report and report.verdict.startswith("FAILED: 1 array(s) wrong")


def test_a_nan_loss_is_wrong():
    right = BACKWARD["relu_regression_3_4_3_1"]
    report = check(SEED001, lambda **a: (float("nan"), right(**a)))
    assert report.wrong == ["loss"]


def test_a_report_is_false_when_a_check_fails():
    assert check(SEED001)
    assert not check(SEED001, seed001_backward)


def test_an_exact_name_wins_over_one_that_differs_in_case():
    right = BACKWARD["relu_regression_3_4_3_1"]
    report = check(SEED001, lambda **a: {**right(**a), "w1": np.zeros((4, 3))})
    assert rows(report, "<lambda>")["W1"].ok
    assert any("returned 'w1', which names no array" in note for note in report.notes)


def test_system_exit_in_the_backward_is_reported():
    def leaves(**arrays):
        raise SystemExit(3)

    report = check(SEED001, leaves)
    assert report.failures[0].startswith("leaves raised SystemExit: 3")


def test_the_api_takes_a_preset_name_and_refuses_a_negative_seed():
    assert check("relu_regression_3_4_3_1").ok
    with pytest.raises(ValueError, match="seed must be a whole number >= 0, not -1"):
        check(SEED001, seed=-1)


def test_a_module_file_can_import_its_neighbours(tmp_path):
    from symprop.cli import main
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "core.py").write_text((ROOT / "examples" / "seed001.py").read_text())
    (tmp_path / "helpers" / "mine.py").write_text("from core import backward\n")
    assert main(["check", "relu_regression_3_4_3_1", "--against", str(tmp_path / "helpers" / "mine.py") + ":backward"]) == 1
    assert main(["check", "relu_regression_3_4_3_1", "--seed", "-1"]) == 2


def test_values_not_given_are_drawn_and_said():
    values = {k: v for k, v in SEED001.values.items() if k != "y_true"}
    report = check(SEED001, values=values, seed=4)
    assert report.ok and report.notes[0] == "random values (seed 4) for y_true; the rest as given"


def test_a_wrong_entry_at_a_kink_says_which_convention_symprop_uses():
    values = dict(SEED001.values)
    values["B1"] = values["B1"].copy()
    values["B1"][1] = -(values["W1"][1] @ values["X"])  # z1[1] = 0 exactly

    def ge(X, y_true, W1, B1, W2, B2, W3, B3):  # relu'(0) = 1: (z >= 0)
        Z1 = W1 @ X + B1
        Z2 = W2 @ np.maximum(Z1, 0) + B2
        delta3 = W3 @ np.maximum(Z2, 0) + B3 - y_true
        delta2 = (W3.T @ delta3) * (Z2 >= 0)
        delta1 = (W2.T @ delta2) * (Z1 >= 0)
        return {"W3": np.outer(delta3, np.maximum(Z2, 0)), "B3": delta3, "W2": np.outer(delta2, np.maximum(Z1, 0)),
                "B2": delta2, "W1": np.outer(delta1, X), "B1": delta1}

    report = check(SEED001, ge, values=values)
    assert set(report.wrong) == {"W1", "B1"}
    assert ("note: z1 has entries exactly at 0, where symprop (as PyTorch) takes relu'(0) = 0; "
            "a backward using (z1 >= 0) differs there") in report.notes
    assert not any("z2 has entries" in note for note in report.notes)
    assert not any("exactly at 0" in note for note in check(SEED001, values=values).notes)  # no backward


def test_an_entry_that_agrees_at_once_takes_four_evaluations_and_a_wrong_one_every_step():
    from symprop.numerical import finite_differences
    calls = []

    def f(x):
        calls.append(1)
        return float(np.sum(np.sin(x) * x))

    x = np.array([0.3, -1.2, 2.0, 0.0])
    right = np.sin(x) + x * np.cos(x)
    plain, _ = finite_differences(f, {"x": x}, "x")
    every_step = len(calls)
    assert every_step >= 1 + 8 * x.size  # two steps at least: each entry's estimates must agree
    calls.clear()
    agreed, kinks = finite_differences(f, {"x": x}, "x", expected={"x": (right, 1e-6)})
    assert len(calls) == 1 + 4 * x.size and kinks == {"x": []}
    np.testing.assert_allclose(agreed["x"], right, rtol=0, atol=1e-9)
    wrong = right.copy()
    wrong[1] += 1e-5  # ten times the tolerance: refined as without `expected`, and still found wrong
    calls.clear()
    refined, _ = finite_differences(f, {"x": x}, "x", expected={"x": (wrong, 1e-6)})
    assert len(calls) > 1 + 4 * x.size and refined["x"][1] == plain["x"][1]
    assert abs(refined["x"][1] - wrong[1]) > 9e-6
