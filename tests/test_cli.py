"""The `symprop` command line: output, exit codes, one-line errors."""

import subprocess
import sys

import pytest
from conftest import ROOT

import symbolic
from codegen.cli import main


def run(*args, cwd=ROOT):
    """symprop in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "codegen.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_list_names_every_preset_with_its_description(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == symbolic.presets()
    assert all(len(line.split()) > 2 for line in lines)


def test_derive_prints_forward_loss_and_backward_steps(capsys):
    assert main(["derive", "relu_softmax_3_4_2"]) == 0
    out = capsys.readouterr().out
    for line in ["z1 = W @ x + b1", "a2 = softmax(z2)", "L = -sum(y*log_softmax(z2))", "delta2 = a2*rowsum(y) - y",
                 "dL_dU = outer(delta2, a1)", "delta1 = (z1 > 0)*(U.T @ delta2)", "a1 = max(z1, 0)", "dL_dx = W.T @ delta1"]:
        assert line in out, line


@pytest.mark.parametrize("fmt, marker", [("latex", r"\begin{align*}"), ("markdown", r"\begin{aligned}")])
def test_derive_formats(capsys, fmt, marker):
    assert main(["derive", "sigmoid_mse_2_2_1", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert marker in out and r"\delta_{2}" in out


def test_generate_into_a_directory_then_check(tmp_path, capsys):
    assert main(["generate", "sigmoid_mse_2_2_1", "--out", str(tmp_path)]) == 0
    written = tmp_path / "sigmoid_mse_2_2_1.py"
    assert written.read_text() == (ROOT / "generated" / "sigmoid_mse_2_2_1.py").read_text()
    assert main(["generate", "sigmoid_mse_2_2_1", "--out", str(tmp_path), "--check"]) == 0
    written.write_text(written.read_text() + "# edited\n")
    capsys.readouterr()
    assert main(["generate", "sigmoid_mse_2_2_1", "relu_softmax_3_4_2", "--out", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "sigmoid_mse_2_2_1.py: differs" in out and "relu_softmax_3_4_2.py: missing" in out
    assert not (tmp_path / "relu_softmax_3_4_2.py").exists()  # --check writes nothing


def test_check_passes_on_every_preset():
    for name in symbolic.presets():
        result = run("check", name)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all gradients agree" in result.stdout


def buggy_module_source() -> str:
    """Seed 001's backward pass (with its W1 bug) as a module file, from tests/test_check.py."""
    import inspect

    from test_check import seed001_backward
    return "import numpy as np\n\n\n" + inspect.getsource(seed001_backward).replace("seed001_backward", "backward")


def test_check_against_a_buggy_backward_names_the_wrong_array(tmp_path):
    (tmp_path / "seed001.py").write_text(buggy_module_source())
    result = run("check", "relu_regression_3_4_3_1", "--against", "seed001:backward", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    table = result.stdout.split("backward vs generated")[1]
    rows = {line.split()[0]: line for line in table.splitlines() if line.startswith("  ") and not line.startswith("   ")}
    assert "WRONG" in rows["W1"]
    assert all(rows[name].rstrip().endswith("ok") for name in ["B3", "W3", "B2", "W2", "B1"])


@pytest.mark.parametrize("args, message", [
    (["derive", "no_such_net"], "no such preset or spec file"),
    (["check", "relu_softmax_3_4_2", "--against", "nothing_here:f"], "cannot import nothing_here"),
    (["check", "relu_softmax_3_4_2", "--against", "no_colon"], "expected MODULE:FUNCTION"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_spec_file_exits_2_naming_file_and_key(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "bad"\ninputs = 2\n[[layers]]\nunits = 1\nactivation = "sigmoid"\n'
                    '[loss]\nkind = "cross_entropy"\n')
    for command in (["derive"], ["generate", "--out", str(tmp_path / "out")], ["check"]):
        result = run(*command, str(spec))
        assert result.returncode == 2
        assert result.stderr == f"symprop: {spec}: loss.kind: cross_entropy needs a softmax last layer, not sigmoid\n"
    assert not (tmp_path / "out").exists()
