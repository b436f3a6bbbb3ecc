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
