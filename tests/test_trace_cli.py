"""`symprop derive|generate|check FILE.py:FUNCTION --values FILE.npz`: a learner's own NumPy code
on the command line (examples/two_layer_net.py, as the README shows it)."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

EXAMPLE = ["examples/two_layer_net.py:loss", "--values", "examples/two_layer_net.npz"]


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "symprop", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_derive_a_learners_function_with_its_own_names():
    result = run("derive", *EXAMPLE)
    assert result.returncode == 0, result.stderr
    for line in ("  hidden = relu(X @ W1 + b1)", "  log_probs = log_softmax(scores)",
                 "  dL_dW2 = hidden.T @ dL_dscores + W2/10", "  dL_db2 = sum_rows(dL_dscores)",
                 "  dL_dW1 = X.T @ (dL_dhidden*(X @ W1 + b1 > 0)) + W1/10"):
        assert line + "\n" in result.stdout, line


def test_generate_writes_a_module_equal_to_the_learners_backward(tmp_path):
    result = run("generate", *EXAMPLE, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {tmp_path / 'loss.py'}\n"
    source = (tmp_path / "loss.py").read_text()
    assert ("Regenerate with: symprop generate examples/two_layer_net.py:loss --values examples/two_layer_net.npz"
            in source)
    spec = importlib.util.spec_from_file_location("traced_loss", tmp_path / "loss.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import two_layer_net
    finally:
        sys.path.remove(str(ROOT / "examples"))
    with np.load(ROOT / "examples" / "two_layer_net.npz") as archive:
        arrays = dict(archive)
    assert module.loss(**arrays) == pytest.approx(two_layer_net.loss(**arrays), rel=1e-14)
    theirs = two_layer_net.backward(**arrays)
    ours = module.gradients(**arrays)
    assert module.PARAMETERS == ("X", "W1", "b1", "W2", "b2")
    for name in module.PARAMETERS:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-12, atol=1e-15)
    again = run("generate", *EXAMPLE, "--out", str(tmp_path), "--check")
    assert again.returncode == 0 and "up to date" in again.stdout


def test_check_passes_a_right_backward_and_pinpoints_the_slip():
    right = run("check", *EXAMPLE, "--against", "examples/two_layer_net.py:backward")
    assert right.returncode == 0, right.stdout + right.stderr
    assert right.stdout.endswith("all gradients agree\n")
    slip = run("check", *EXAMPLE, "--against", "examples/two_layer_net.py:backward_slip", "--json")
    assert slip.returncode == 1
    report = json.loads(slip.stdout)
    assert report["first_wrong"] == "W1" and not report["ok"]
    rows = {row["name"]: row["verdict"] for section in report["sections"] for row in section["arrays"]}
    assert rows == {"X": "ok", "W1": "WRONG", "b1": "ok", "W2": "ok", "b2": "ok"}


@pytest.mark.parametrize("args, message", [
    (["examples/two_layer_net.py:loss"], "a traced function needs its example arrays: --values FILE.npz"),
    (["examples/two_layer_net.py:nothing", "--values", "examples/two_layer_net.npz"], "has no function nothing"),
    (["examples/two_layer_net.py:loss", "--values", "examples/missing.npz"], "--values examples/missing.npz: no such file"),
    (["examples/two_layer_net.py:loss", "--values", "examples/two_layer_net.py"], "not an .npz archive"),
    (["examples/two_layer_net.py:loss", "--values", "examples/two_layer_net.npz", "--wrt", "W9"], "wrt names 'W9'"),
    (["sigmoid_mse_2_2_1", "--values", "examples/two_layer_net.npz"], "--values and --wrt go with FILE.py:FUNCTION"),
    (["examples/two_layer_net.py:Model.loss", "--values", "examples/two_layer_net.npz"],
     "names a function of the file, not a method (Model.loss); trace a model's method from Python"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run("derive", *args)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""


def test_an_error_in_the_users_code_names_their_file_and_line(tmp_path):
    (tmp_path / "model.py").write_text("import numpy as np\n\n\ndef loss(x):\n    return np.sum(x ** 2) + "
                                       "{}['missing']\n")
    np.savez(tmp_path / "v.npz", x=np.ones(3))
    result = run("derive", "model.py:loss", "--values", "v.npz", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("symprop: model.py:loss: loss raised KeyError: 'missing' (at ")
    assert "model.py, line 5" in result.stderr and result.stderr.count("\n") == 1
    (tmp_path / "flow.py").write_text("import numpy as np\n\n\ndef loss(x):\n    if x.sum() > 0:\n"
                                      "        return x.sum()\n    return -x.sum()\n")
    result = run("check", "flow.py:loss", "--values", "v.npz", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"symprop: {tmp_path / 'flow.py'}:5: control flow on a traced array")
    assert result.stderr.endswith(" (in: if x.sum() > 0:)\n")


USER_CODE = '''import numpy as np

print("imported")  # goes to standard error, never into the output


def softmax_loss(x, y):
    print("tracing", x.shape)
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.sum(log_probs[np.arange(x.shape[0]), y]) / x.shape[0]


def log_of(x, y):
    return np.sum(np.log(x))


def divided_by_zero(x, y):
    return np.sum(x / 0.0)


def torch_habit(x, y):
    return np.sum(x, axis=0, keepdim=True).sum()


def flattened_in_fortran_order(x, y):
    return np.sum(x.flatten("F") * np.arange(x.size))


def exits(x, y):
    import os
    os._exit(0)
'''


def _user_files(tmp_path, **changes):
    (tmp_path / "model.py").write_text(USER_CODE)
    rng = np.random.default_rng(0)
    arrays = dict(x=rng.normal(size=(4, 3)), y=np.array([0, 2, 1, 2])) | changes
    np.savez(tmp_path / "v.npz", **arrays)


@pytest.mark.parametrize("function, changes, message", [
    ("softmax_loss", dict(y=np.array([0, 5, 1, 2])), "--values v.npz: the array 'y' holds 0 to 5: it indexes an "
     "axis of 3 entries (from 0 to 2, or -3 to -1 from the end)"),
    ("softmax_loss", dict(x=np.array([[0.0, np.nan, 1.0]] * 4)), "the array 'x' holds nan at (0, 1)"),
    ("softmax_loss", dict(x=np.full((4, 3), np.inf)), "the array 'x' holds inf at (0, 0)"),
    ("log_of", {}, "the loss is nan at these values: no gradient can be checked there"),
    ("divided_by_zero", {}, "a division by zero (or the log of 0)"),
    ("softmax_loss", dict(x=np.zeros((0, 3)), y=np.zeros(0, int)), "a division by zero"),
    ("torch_habit", {}, "torch_habit raised TypeError: sum() got an unexpected keyword argument 'keepdim' (at "),
    ("softmax_loss", dict(z=np.ones(3)), "got an unexpected keyword argument 'z' (the .npz names the arrays"),
    ("flattened_in_fortran_order", {}, "reshape with order='F': only C order is traced"),
    ("exits", {}, "exits raised OsExit: os._exit(0) (at "),  # exit status 0 and no word before
])
def test_a_learners_mistake_is_one_line_and_exit_2(tmp_path, function, changes, message):
    # each was a traceback, a silent "all gradients agree" or a wrong program before
    _user_files(tmp_path, **changes)
    result = run("check", f"model.py:{function}", "--values", "v.npz", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    last = result.stderr.splitlines()[-1]
    assert message in last and last.startswith("symprop: "), result.stderr
    assert result.stdout == ""


def test_what_the_users_code_prints_stays_out_of_the_json(tmp_path):
    _user_files(tmp_path)
    result = run("check", "model.py:softmax_loss", "--values", "v.npz", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"]
    assert "imported" in result.stderr and "tracing (4, 3)" in result.stderr


def test_a_corrupt_member_of_an_npz_is_one_line(tmp_path):
    import zipfile
    _user_files(tmp_path)
    with zipfile.ZipFile(tmp_path / "v.npz", "w") as archive:
        archive.writestr("x.npy", b"not an npy")
    result = run("derive", "model.py:softmax_loss", "--values", "v.npz", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "not an .npz archive of arrays (written by numpy.savez): its member 'x' is not a .npy array" in result.stderr


def test_a_timeout_of_microseconds_is_one_line(tmp_path):
    _user_files(tmp_path)
    result = run("derive", "model.py:softmax_loss", "--values", "v.npz", "--timeout", "1e-6", cwd=tmp_path)
    assert result.returncode == 2 and "took longer than 1e-06 s (--timeout)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_text_file_as_values_is_not_said_to_hold_pickled_data(tmp_path):
    _user_files(tmp_path)
    result = run("derive", "model.py:softmax_loss", "--values", "model.py", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "symprop: --values model.py: not an .npz archive of arrays (written by numpy.savez)\n"


@pytest.mark.parametrize("wrt, message", [([], "wrt is empty"), (["x", "x"], "wrt names 'x' twice")])
def test_an_empty_or_repeated_wrt_is_refused(wrt, message):
    import symprop
    with pytest.raises(symprop.TraceError, match=message):
        symprop.trace(lambda x: np.sum(x ** 2), wrt=wrt, x=np.ones(3))


def test_an_npz_without_arrays_is_an_archive(tmp_path):
    # numpy.savez with no arrays writes a valid (empty) zip: not "not an .npz archive"
    _user_files(tmp_path)
    np.savez(tmp_path / "v.npz")
    result = run("derive", "model.py:softmax_loss", "--values", "v.npz", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == ("symprop: model.py:softmax_loss: missing a required argument: 'x' "
                                              "(the .npz names the arrays by the function's parameters)")
