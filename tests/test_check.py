"""`symprop check`: finds the wrong array and entry, explains odd returns, float32, kinks, PyTorch."""

import numpy as np
import pytest
from handwritten import BACKWARD
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from networks import networks

import symbolic
from codegen.check import check, random_values
from codegen.files import compile_module

SEED001 = symbolic.load("relu_regression_3_4_3_1")
SEED002 = symbolic.load("relu_softmax_3_4_2")


def seed001_backward(X, y_true, W1, B1, W2, B2, W3, B3):
    """Seed 001's own backward pass: right but for W1_grad."""
    Z1 = W1 @ X + B1
    H1 = np.maximum(0, Z1)
    Z2 = W2 @ H1 + B2
    H2 = np.maximum(0, Z2)
    y_diff = W3 @ H2 + B3 - y_true
    B2_grad = (y_diff * W3 * (Z2 > 0)).flatten()
    B1_grad = (y_diff * ((W3 * (Z2 > 0)) @ W2) * (Z1 > 0)).flatten()
    W1_grad = y_diff * W3 * (Z2 > 0) * W2.T * (np.reshape(Z1, (4, 1)) > 0) * X
    return {"B3": y_diff, "W3": y_diff * H2[None, :], "B2": B2_grad, "W2": np.outer(B2_grad, H1),
            "B1": B1_grad, "W1": W1_grad}


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
    (lambda **a: [1, 2], "odd returned list, expected a dict of gradients by name"),
    (lambda **a: 1 / 0, "odd raised ZeroDivisionError: division by zero"),
])
def test_a_function_that_fails_is_reported_not_a_crash(returned, message):
    returned.__name__ = "odd"
    report = check(SEED001, returned)
    assert report.failures == [message] and not report.ok


def seed002_float32(x, y, W, b1, U, b2):
    """Seed 002's (correct) analytical gradients, computed in float32 as the seed does."""
    x, y, W, b1, U, b2 = (np.asarray(v, dtype=np.float32) for v in (x, y, W, b1, U, b2))
    z = W @ x + b1
    h = np.maximum(0, z)
    theta = U @ h + b2
    p = np.exp(theta - theta.max())
    p /= p.sum()
    d_theta = p - y
    d_z = (U.T @ d_theta) * (z > 0)
    return {"U": np.outer(d_theta, h), "b2": d_theta, "W": np.outer(d_z, x), "b1": d_z, "x": W.T @ d_z}


def test_float32_backward_of_seed_002_passes_with_a_note():
    report = check(SEED002, seed002_float32)
    assert report.ok, report.format()
    assert any("returned float32 arrays" in note and "float64" in note for note in report.notes)
    # the float32 gradients are float32-close, far from float64-close: the note is not decoration
    theirs = seed002_float32(**SEED002.values)
    exact = compile_module(SEED002).gradients(**SEED002.values)
    error = max(np.max(np.abs(theirs[k] - exact[k])) / np.max(np.abs(exact[k])) for k in exact)
    assert 1e-8 < error < 1e-5


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
    from codegen.module import generate, steps_source
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
    from codegen.reference import torch_loss_and_gradients
    values = random_values(network, seed)
    module = compile_module(network)
    loss, grads = module.loss_and_gradients(**values)
    torch_loss, torch_grads = torch_loss_and_gradients(network, values)
    assert loss == pytest.approx(torch_loss, rel=1e-10, abs=1e-12)
    for name in network.differentiated:
        # relative 1e-10 to the array's scale; rounding (1e-14 of the loss) where it is zero
        tolerance = 1e-10 * np.abs(torch_grads[name]).max(initial=0) + 1e-14 * max(1.0, abs(loss))
        assert np.abs(grads[name] - torch_grads[name]).max(initial=0) <= tolerance, name
