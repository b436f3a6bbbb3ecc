"""The package: `import symprop` from anywhere, nothing under the top-level names `symbolic` and
`codegen`, `python -m symprop`, the public API, and `symprop.testing` used from pytest."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT

import symprop
from symprop.testing import assert_gradients_match

SEED001 = "relu_regression_3_4_3_1"


def python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)


def test_symprop_imports_from_any_folder_and_the_subpackage_names_do_not(tmp_path):
    result = python("import symprop, importlib.util as u; print(symprop.load('sigmoid_mse_2_2_1').name, "
                    "u.find_spec('symbolic'), u.find_spec('codegen'))", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sigmoid_mse_2_2_1", "None", "None"]


def test_python_m_symprop_is_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "symprop", "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("symprop ")
    result = subprocess.run([sys.executable, "-m", "symprop", "list"], cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.split("\n")[0].split()[0] == "relu_batch_10_20_1"


def test_the_public_api_is_a_handful_of_names():
    assert set(symprop.__all__) == {"Derivation", "Network", "Program", "Report", "SpecError", "TraceError", "check",
                                    "derive", "generate", "load", "loads", "numerical_gradients", "presets", "trace"}
    assert issubclass(symprop.SpecError, ValueError) and issubclass(symprop.TraceError, ValueError)
    net = symprop.load("sigmoid_mse_2_2_1")
    assert symprop.generate(net) == (ROOT / "generated" / "sigmoid_mse_2_2_1.py").read_text()
    assert symprop.derive(net).step("delta2") is not None
    report = symprop.check(net)
    assert isinstance(report, symprop.Report) and report.ok and str(report).endswith("all gradients agree\n")
    assert symprop.testing.assert_gradients_match is assert_gradients_match


def test_presets_are_package_resources():
    from importlib.resources import files
    names = sorted(p.name[:-5] for p in (files("symprop.symbolic") / "networks").iterdir() if p.name.endswith(".toml"))
    assert names == symprop.presets() and len(names) == 5


# -------------------------------------------------------------------------------------------------
# symprop.testing.assert_gradients_match


def right_001(X, y_true, W1, B1, W2, B2, W3, B3):
    Z1 = W1 @ X + B1
    Z2 = W2 @ np.maximum(Z1, 0) + B2
    delta3 = W3 @ np.maximum(Z2, 0) + B3 - y_true
    delta2 = (W3.T @ delta3) * (Z2 > 0)
    delta1 = (W2.T @ delta2) * (Z1 > 0)
    return {"W3": np.outer(delta3, np.maximum(Z2, 0)), "B3": delta3, "W2": np.outer(delta2, np.maximum(Z1, 0)),
            "B2": delta2, "W1": np.outer(delta1, X), "B1": delta1}


def test_a_right_backward_passes_at_the_spec_values_and_random_ones():
    calls = []

    def counted(**arrays):
        calls.append(arrays["X"].copy())
        return right_001(**arrays)

    assert_gradients_match(SEED001, counted)
    assert len(calls) == 4  # the spec's values, then seeds 0, 1, 2
    np.testing.assert_array_equal(calls[0], symprop.load(SEED001).values["X"])
    assert not any(np.array_equal(calls[0], c) for c in calls[1:])


def test_a_wrong_backward_fails_with_the_report():
    def wrong(**arrays):
        grads = right_001(**arrays)
        grads["W1"] = grads["W1"] * (grads["W1"] > 0)  # loses the negative entries
        return grads

    with pytest.raises(AssertionError) as failure:
        assert_gradients_match(SEED001, wrong)
    message = str(failure.value)
    assert message.startswith("wrong disagrees with the generated gradients of relu_regression_3_4_3_1 "
                              "at the spec's [values]:\n")
    assert "W1[" in message and "should be delta1[" in message and "FAILED: 1 array(s) wrong: W1" in message
    assert "generated vs numerical" not in message  # the generated gradients are the reference


def test_values_seeds_batch_and_rtol():
    net = symprop.loads('name = "n"\ninputs = 3\n[[layers]]\nunits = 2\nactivation = "tanh"\n'
                        '[loss]\nkind = "squared_error"\n')
    module = symprop.codegen.files.compile_module(net)
    seen = []

    def slightly_off(**arrays):
        seen.append(arrays["x"].shape)
        return {k: v * (1 + 1e-6) for k, v in module.gradients(**arrays).items()}

    assert_gradients_match(net, slightly_off, seeds=(5, 6), batch=7, rtol=1e-5)
    assert seen == [(7, 3), (7, 3)]  # no spec values: the seeds only
    with pytest.raises(AssertionError, match="at random values \\(seed 5\\)"):
        assert_gradients_match(net, slightly_off, seeds=(5,))  # the default rtol, 1e-7
    values = {"x": np.ones((2, 3)), "y": np.zeros((2, 2)), "W1": np.eye(3, 2), "b1": np.zeros(2)}
    with pytest.raises(AssertionError, match="at the values given"):
        assert_gradients_match(net, lambda **a: {k: 2 * v for k, v in module.gradients(**a).items()},
                               values=values, seeds=())


def test_the_readme_pytest_example_passes_and_fails_as_it_says(tmp_path):
    """The README's pytest example, written to a file and run by pytest as a user would."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\n# test_my_backprop.py")
    example = readme[start + len("```python\n"):readme.index("```", start + 10)]
    (tmp_path / "test_my_backprop.py").write_text(example)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_backprop.py"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed" in result.stdout
    assert "FAILED test_my_backprop.py::test_buggy_backward" in result.stdout
    assert "AssertionError: buggy_backward disagrees with the generated gradients of relu_regression_3_4_3_1" \
        in result.stdout
    assert "W1[0, 1] should be delta1[0] * X[1] = 0.0244614 * -2 = -0.04892271009, not -0" in result.stdout
    assert "site-packages" not in result.stdout and "def assert_gradients_match" not in result.stdout


def test_numerical_gradients_take_a_name_or_a_list_of_names():
    net = symprop.load("sigmoid_mse_2_2_1")
    loss = symprop.codegen.files.compile_module(net).loss
    one = symprop.numerical_gradients(loss, net.values, "W1")
    both = symprop.numerical_gradients(loss, net.values, ["W1", "b2"])
    assert list(one) == ["W1"] and list(both) == ["W1", "b2"]
    np.testing.assert_array_equal(one["W1"], both["W1"])
    exact = symprop.codegen.files.compile_module(net).gradients(**net.values)["W1"]
    np.testing.assert_allclose(one["W1"], exact, rtol=1e-8)
    with pytest.raises(KeyError, match="no array named 'W' among 'x', 'y', 'W1'"):
        symprop.numerical_gradients(loss, net.values, "W")


def test_numerical_gradients_of_integer_arrays_are_float64():
    got = symprop.numerical_gradients(lambda W: float((W**2).sum()), {"W": np.array([1, 2])}, "W")["W"]
    np.testing.assert_allclose(got, [2.0, 4.0], rtol=1e-9)


def test_check_takes_its_arguments_in_the_contracts_order():
    net = symprop.load(SEED001)
    values = {k: 2 * v for k, v in net.values.items()}
    report = symprop.check(net, right_001, values, 5)  # network, against, values, seed
    assert report.ok and not any("random values" in note for note in report.notes)
    with pytest.raises(TypeError):
        symprop.check(net, right_001, values, 5, False)  # the rest by keyword only


def test_symprop_testing_is_reached_as_an_attribute_in_a_fresh_interpreter():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-c", "import symprop; print(symprop.testing.__name__)"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout == "symprop.testing\n"
