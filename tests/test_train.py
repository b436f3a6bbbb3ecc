"""`symprop train` and `symprop.train.train`: gradient descent with the generated gradients.

The seeds' training runs (001: 10 epochs at lr 0.01; 003: 10,000 steps at lr 0.5 with the biases
held fixed), driven by the generated gradients, must equal the same loop driven by the
hand-written backward passes of tests/handwritten.py.
"""

import argparse
import io
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from handwritten import BACKWARD

from symprop import numerical_gradients
from symprop import symbolic
from symprop import train as training
from symprop.codegen.files import compile_module
from symprop.train import History, train

RTOL = 1e-10
# Rounding level of a squared-error loss L = 0.5 * sum(e**2), e = yhat - y, with outputs of order 1:
# two runs that round differently (another CPU, another BLAS) have outputs that differ by some ulps,
# say up to DELTA = 100 ulps, so their losses differ by up to sum(|e| DELTA) + DELTA**2
# <= 2 DELTA sqrt(L) + DELTA**2 (two outputs). Seed 003's converged loss is 6.205e-30 here and was
# 6.526e-30 on another CPU: equal only to that absolute level, not to a relative tolerance.
DELTA = 100 * np.finfo(np.float64).eps
ROUNDING_LOSS = DELTA**2  # 4.9e-28: the floor of a converged loss


def assert_losses_close(actual, desired):
    """Loss curves equal to RTOL, or to the rounding level of the loss (see DELTA)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    floor = 2 * DELTA * np.sqrt(desired) + DELTA**2
    bad = np.abs(actual - desired) > RTOL * np.abs(desired) + floor
    assert not bad.any(), f"losses differ at steps {np.flatnonzero(bad)[:5]}: {actual[bad][:3]} vs {desired[bad][:3]}"


def reference_loop(network, backward, loss, lr, steps, freeze=()):
    """Plain gradient descent written out: the loss before each update, then the final one."""
    arrays = {name: np.array(value, dtype=float) for name, value in network.values.items()}
    losses = []
    for _ in range(steps):
        losses.append(loss(**arrays))
        grads = backward(**arrays)
        for name in network.parameters:
            if name not in freeze:
                arrays[name] = arrays[name] - lr * grads[name]
    losses.append(loss(**arrays))
    return losses, arrays


def loss_001(*, X, y_true, W1, B1, W2, B2, W3, B3):
    """Seed 001's loss, 0.5 * sum((y_pred - y_true)**2), written out."""
    h1 = np.maximum(0.0, W1 @ X + B1)
    h2 = np.maximum(0.0, W2 @ h1 + B2)
    return float(0.5 * np.sum((W3 @ h2 + B3 - y_true) ** 2))


def loss_003(*, x, y, W1, b1, W2, b2):
    """Seed 003's loss, 0.5 * sum((out_o - target)**2), written out."""
    out_h = 1 / (1 + np.exp(-(x @ W1 + b1)))
    out_o = 1 / (1 + np.exp(-(out_h @ W2 + b2)))
    return float(0.5 * np.sum((out_o - y) ** 2))


def outputs_003(*, x, W1, b1, W2, b2, **_):
    out_h = 1 / (1 + np.exp(-(x @ W1 + b1)))
    return 1 / (1 + np.exp(-(out_h @ W2 + b2)))


# -------------------------------------------------------------------------------------------------
# Seed 001: relu_regression_3_4_3_1, 10 epochs at lr 0.01


@pytest.fixture(scope="module")
def net001():
    return symbolic.load("relu_regression_3_4_3_1")


def test_seed_001_first_update_is_lr_times_the_checked_gradient(net001):
    lr = 0.01
    module = compile_module(net001)
    start = {name: np.array(value) for name, value in net001.values.items()}
    gradient = module.gradients(**start)
    # "checked": the generated gradient agrees with finite differences and the hand-written one
    numerical = numerical_gradients(module.loss, start, net001.parameters)
    hand = BACKWARD[net001.name](**start)
    for name in net001.parameters:
        np.testing.assert_allclose(gradient[name], numerical[name], rtol=1e-6, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(gradient[name], hand[name], rtol=RTOL, atol=1e-15, err_msg=name)

    history = train(net001, lr=lr, steps=1)
    for name in net001.parameters:
        np.testing.assert_array_equal(history.arrays[name], start[name] - lr * gradient[name], err_msg=name)
        np.testing.assert_allclose(start[name] - history.arrays[name], lr * gradient[name],
                                   rtol=1e-9, atol=1e-15, err_msg=name)
    assert history.steps == [0, 1]
    # the seed printed loss:[0.76450839] before its first update
    assert history.losses[0] == pytest.approx(0.76450839, abs=1e-8)
    assert history.losses[1] < history.losses[0]


def test_seed_001_ten_epochs_equal_the_hand_written_loop(net001):
    lr, steps = 0.01, 10
    losses, arrays = reference_loop(net001, BACKWARD[net001.name], loss_001, lr, steps)
    history = train(net001, lr=lr, steps=steps)
    assert history.steps == list(range(steps + 1))
    np.testing.assert_allclose(history.losses, losses, rtol=RTOL)
    np.testing.assert_allclose(history.loss, losses[-1], rtol=RTOL)
    for name in net001.parameters:
        np.testing.assert_allclose(history.arrays[name], arrays[name], rtol=RTOL, atol=1e-15, err_msg=name)
    # the same loop through train's own backward= hook
    plugged = train(net001, lr=lr, steps=steps, backward=BACKWARD[net001.name])
    np.testing.assert_allclose(plugged.losses, losses, rtol=RTOL)
    assert history.losses[-1] < history.losses[0]


# -------------------------------------------------------------------------------------------------
# Seed 003: sigmoid_shared_bias_2_2_2, 10,000 steps at lr 0.5, biases held fixed


@pytest.fixture(scope="module")
def net003():
    return symbolic.load("sigmoid_shared_bias_2_2_2")


@pytest.fixture(scope="module")
def run003(net003):
    return train(net003, lr=0.5, steps=10_000, freeze=("b1", "b2"))


def test_seed_003_equals_the_hand_written_loop(net003, run003):
    losses, arrays = reference_loop(net003, BACKWARD[net003.name], loss_003, 0.5, 10_000, freeze=("b1", "b2"))
    assert len(run003.losses) == len(losses) == 10_001
    assert losses[-1] < 1e-25  # converged: the comparisons below are at rounding level
    assert_losses_close(run003.losses[-1], losses[-1])
    np.testing.assert_allclose(run003.outputs, outputs_003(**arrays), rtol=RTOL)
    # the whole curve: once the loss is tiny it is the square of a difference of nearly equal
    # numbers, equal only up to the rounding level
    assert_losses_close(run003.losses, losses)
    for name in net003.parameters:
        np.testing.assert_allclose(run003.arrays[name], arrays[name], rtol=RTOL, err_msg=name)


def test_seed_003_biases_stay_fixed_and_the_loss_decreases(net003, run003):
    for name in ("b1", "b2"):
        assert run003.arrays[name] == net003.values[name]
        assert run003.arrays[name].shape == ()
    assert run003.frozen == ("b1", "b2") and run003.trained == ("W1", "W2")
    losses = np.array(run003.losses)
    assert np.all(np.diff(losses) <= ROUNDING_LOSS), "the loss went up"
    above_rounding = losses > 1e-25
    assert np.all(np.diff(losses[above_rounding]) < 0), "the loss stalled before reaching rounding level"
    assert losses[0] == pytest.approx(loss_003(**net003.values), rel=1e-14)
    np.testing.assert_allclose(run003.outputs, net003.values["y"], atol=1e-12)
    assert run003.outputs.shape == (1, 2)


# -------------------------------------------------------------------------------------------------
# The Python API


def test_the_callers_arrays_are_not_modified(net003):
    values = {name: np.array(value) for name, value in net003.values.items()}
    before = {name: value.copy() for name, value in values.items()}
    history = train(net003, lr=0.5, steps=5, values=values)
    for name, value in values.items():
        np.testing.assert_array_equal(value, before[name])
        assert history.arrays[name] is not value
    assert net003.values["W1"].tolist() == [[0.35, 0.55], [0.90, 0.36]]


def test_values_override_and_seeded_random_values(net003):
    values = {"W1": np.eye(2)}
    history = train(net003, lr=0.1, steps=0, values=values)
    np.testing.assert_array_equal(history.arrays["W1"], np.eye(2))
    assert history.steps == [0] and len(history.losses) == 1
    # a spec without [values]: seeded random arrays, reproducible
    bare = symbolic.loads(
        'name = "bare"\ninputs = 2\n[[layers]]\nunits = 1\nactivation = "sigmoid"\n'
        '[loss]\nkind = "squared_error"\n')
    a, b, c = (train(bare, lr=0.1, steps=3, seed=s) for s in (1, 1, 2))
    assert a.losses == b.losses and a.losses != c.losses


def test_every_and_callback(net003):
    seen = []
    history = train(net003, lr=0.5, steps=10, every=4, callback=lambda step, loss, arrays: seen.append((step, loss)))
    assert history.steps == [0, 4, 8, 10]
    assert seen == list(zip(history.steps, history.losses))
    full = train(net003, lr=0.5, steps=10)
    assert [full.losses[s] for s in history.steps] == history.losses


def test_gradients_hook_takes_loss_and_gradients(net003):
    module = compile_module(net003)
    calls = []

    def counted(**arrays):
        calls.append(1)
        return module.loss_and_gradients(**arrays)

    history = train(net003, lr=0.5, steps=3, gradients=counted)
    assert len(calls) == 4  # three updates and the final loss
    assert history.losses == train(net003, lr=0.5, steps=3).losses
    with pytest.raises(ValueError, match="backward="):
        train(net003, lr=0.5, steps=1, gradients=BACKWARD[net003.name])


@pytest.mark.parametrize("kwargs, message", [
    ({"freeze": ("b1", "bias", "W9")}, r"bias, W9.*W1, b1, W2, b2"),
    ({"freeze": "b1,nope"}, "nope"),
    ({"lr": 0}, "lr"),
    ({"lr": -0.1}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"steps": -1}, "steps"),
    ({"every": 0}, "every"),
    ({"values": {"w": np.eye(2)}}, "unknown array"),
])
def test_bad_arguments(net003, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(net003, **{"lr": 0.5, "steps": 2, **kwargs})


def test_a_gradient_of_the_wrong_shape_is_named(net003):
    def backward(**arrays):
        grads = BACKWARD[net003.name](**arrays)
        grads["W2"] = grads["W2"].T.ravel()
        return grads

    with pytest.raises(ValueError, match=r"'W2'.*\(4,\).*\(2, 2\)"):
        train(net003, lr=0.5, steps=1, backward=backward)


# -------------------------------------------------------------------------------------------------
# The command, through symprop.train.register on a parser of our own


def symprop_train(argv):
    """Parse and run like symprop.cli.main does: (exit status, message of a usage error)."""
    from symprop.cli import UsageError

    parser = argparse.ArgumentParser(prog="symprop")
    training.register(parser.add_subparsers(required=True))
    args = parser.parse_args(["train", *argv])
    try:
        return args.run(args), ""
    except UsageError as error:
        return 2, str(error)


def test_command_prints_about_ten_lines_final_loss_and_outputs(capsys, run003):
    status, _ = symprop_train(["sigmoid_shared_bias_2_2_2", "--lr", "0.5", "--steps", "10000", "--freeze", "b1,b2"])
    assert status == 0
    out = capsys.readouterr().out
    steps = [int(line.split()[0]) for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert steps == list(range(0, 10_001, 1000))
    assert f"final loss: {run003.loss:.10g}" in out
    assert "[[0.100000 0.890000]]" in out and training.format_outputs(run003.outputs) in out


def test_command_every(capsys):
    status, _ = symprop_train(["relu_regression_3_4_3_1", "--steps", "10", "--every", "3"])
    assert status == 0
    out = capsys.readouterr().out
    steps = [int(line.split()[0]) for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert steps == [0, 3, 6, 9, 10]


def test_command_default_every_prints_about_ten_lines(capsys):
    assert symprop_train(["relu_regression_3_4_3_1", "--steps", "15"])[0] == 0
    out = capsys.readouterr().out
    steps = [int(line.split()[0]) for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert steps == [0, 2, 4, 6, 8, 10, 12, 14, 15]


def test_command_fails_when_the_run_diverges(capsys):
    assert symprop_train(["relu_regression_3_4_3_1", "--lr", "1e5", "--steps", "40"])[0] == 1
    captured = capsys.readouterr()
    final = captured.out.split("final loss: ")[1].split()[0]
    assert final in ("inf", "nan")
    assert captured.err == f"symprop: the run diverged: the final loss is {final}; try a smaller --lr\n"


def test_save_round_trips(tmp_path, capsys, net003):
    path = tmp_path / "out" / "trained.npz"
    status, _ = symprop_train(["sigmoid_shared_bias_2_2_2", "--lr", "0.5", "--steps", "50",
                               "--freeze", "b1,b2", "--save", str(path)])
    assert status == 0 and f"wrote {path}" in capsys.readouterr().out
    history = train(net003, lr=0.5, steps=50, freeze="b1,b2")
    with np.load(path) as saved:
        assert sorted(saved.files) == sorted(history.arrays)
        for name, array in history.arrays.items():
            assert saved[name].dtype == array.dtype and saved[name].shape == array.shape
            np.testing.assert_array_equal(saved[name], array)
    assert [p.name for p in path.parent.iterdir()] == ["trained.npz"]  # no temporary file left


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the loss plot needs matplotlib")
    path = tmp_path / "loss.png"
    status, _ = symprop_train(["sigmoid_shared_bias_2_2_2", "--lr", "0.5", "--steps", "200",
                               "--freeze", "b1,b2", "--plot", str(path)])
    assert status == 0 and f"wrote {path}" in capsys.readouterr().out
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 300 and height >= 200


def test_plot_without_matplotlib_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    path = tmp_path / "loss.png"
    status, message = symprop_train(["sigmoid_shared_bias_2_2_2", "--steps", "5", "--plot", str(path)])
    assert status == 2
    assert message == "--plot needs matplotlib: pip install matplotlib"
    assert not path.exists()
    assert capsys.readouterr().out == ""  # refused before training


@pytest.mark.parametrize("argv, message", [
    (["--freeze", "b1,b3"], "b3"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--steps", "-3"], "--steps"),
    (["--every", "0"], "--every"),
    (["--plot", "loss.txt"], "--plot"),
])
def test_command_usage_errors(argv, message, capsys, tmp_path):
    argv = [a.replace("loss.txt", str(tmp_path / "loss.txt")) for a in argv]
    status, text = symprop_train(["sigmoid_shared_bias_2_2_2", *argv])
    assert status == 2 and message in text and "\n" not in text
    assert capsys.readouterr().out == ""


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert symprop_train(["sigmoid_shared_bias_2_2_2", "--lr", "0.5", "--steps", "1000"])[0] == 0
    captured = capsys.readouterr()
    assert "\r[" in captured.err and "1000/1000" in captured.err
    assert "\r" not in captured.out
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert symprop_train(["sigmoid_shared_bias_2_2_2", "--lr", "0.5", "--steps", "1000"])[0] == 0
    assert capsys.readouterr().err == ""


def test_progress_bar_clears_itself():
    stream = io.StringIO()
    bar = training._ProgressBar(1000, stream)
    for step in range(1001):
        bar.update(step)
    bar.clear()
    text = stream.getvalue()
    assert text.count("\r[") == 101 and text.endswith("\r") and "[" + "#" * 30 + "]" in text


def test_history_plot_for_notebooks(run003):
    pytest.importorskip("matplotlib", reason="the loss plot needs matplotlib")
    figure = run003.plot()
    ax = figure.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "step"
    assert isinstance(run003, History)


# -------------------------------------------------------------------------------------------------
# Through the real `symprop` command


def test_symprop_train_command_line(tmp_path):
    path = tmp_path / "trained.npz"
    result = subprocess.run([sys.executable, "-m", "symprop", "train", "relu_regression_3_4_3_1",
                             "--lr", "0.01", "--steps", "10", "--save", str(path)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "final loss:" in result.stdout and path.exists()
    bad = subprocess.run([sys.executable, "-m", "symprop", "train", "relu_regression_3_4_3_1",
                          "--freeze", "B9"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "B9" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.stderr


def test_command_reports_a_run_whose_parameters_overflow_as_diverged(capsys):
    # lr 1e200: the first update sends the weights to inf and the next forward pass to NaN
    assert symprop_train(["relu_regression_3_4_3_1", "--lr", "1e200", "--steps", "20"])[0] == 1
    captured = capsys.readouterr()
    assert "final loss: nan" in captured.out
    assert captured.err == "symprop: the run diverged: the final loss is nan; try a smaller --lr\n"


def test_starting_values_must_be_finite():
    network = symbolic.load("sigmoid_mse_2_2_1")
    W1 = np.array(network.values["W1"], dtype=float)
    W1[1, 0] = np.inf
    with pytest.raises(ValueError, match="array 'W1' holds NaN or inf: the starting values must be finite"):
        train(network, lr=0.1, steps=1, values={"W1": W1})


# -------------------------------------------------------------------------------------------------
# Output files and numbers checked before the first step; a diverged run exits 1


def symprop(capsys, *args):
    """The real `symprop` (symprop.cli.main): (exit status, stdout, stderr)."""
    from symprop.cli import main

    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def tree(folder):
    """Every file and folder under `folder` (relative path -> bytes, or None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("option, name, reason", [
    ("--save", "afile/trained.npz", "{tmp}/afile is not a folder"),
    ("--save", "afile/sub/trained.npz", "cannot create the folder {tmp}/afile/sub: {tmp}/afile is not a folder"),
    ("--save", "folder", "is a folder, not a file"),
    ("--plot", "afile/sub/loss.png", "cannot create the folder {tmp}/afile/sub: {tmp}/afile is not a folder"),
    ("--plot", "folder", "is a folder, not a file"),
    ("--plot", "afile.txt", None),
])
def test_outputs_that_cannot_be_written_are_refused_before_training(tmp_path, capsys, option, name, reason):
    if option == "--plot":
        pytest.importorskip("matplotlib", reason="the loss plot needs matplotlib")
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "folder").mkdir()
    before = tree(tmp_path)
    path = tmp_path / name
    status, out, err = symprop(capsys, "train", "sigmoid_shared_bias_2_2_2", "--lr", "0.5", "--steps", "10000",
                               option, str(path))
    assert status == 2 and out == ""  # not one step was run
    if reason is None:  # not an image
        assert err == f"symprop: --plot {path}: expected a .png file (or pdf, svg, jpg, jpeg)\n"
    else:
        assert err == f"symprop: {option} {path}: {reason.format(tmp=tmp_path)}\n"
    assert tree(tmp_path) == before


def test_an_output_that_cannot_be_written_through_the_command_line(tmp_path):
    (tmp_path / "afile").write_text("mine")
    path = tmp_path / "afile" / "sub" / "trained.npz"
    result = subprocess.run([sys.executable, "-m", "symprop", "train", "relu_regression_3_4_3_1",
                             "--save", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"symprop: --save {path}: cannot create the folder {path.parent}: "
                             f"{tmp_path / 'afile'} is not a folder\n")


@pytest.mark.parametrize("option", ["--save", "--plot"])
def test_a_full_disk_while_saving_exits_2_naming_the_file(tmp_path, option):
    if option == "--plot":
        pytest.importorskip("matplotlib", reason="the loss plot needs matplotlib")
    import resource

    path = tmp_path / "out" / {"--save": "trained.npz", "--plot": "loss.png"}[option]
    result = subprocess.run([sys.executable, "-m", "symprop", "train", "sigmoid_shared_bias_2_2_2",
                             "--steps", "5", option, str(path)], capture_output=True, text=True, cwd=ROOT,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200)))
    assert result.returncode == 2
    assert "final loss:" in result.stdout  # it trained, then could not write
    assert result.stderr == f"symprop: {path}: File too large\n"
    assert tree(tmp_path) == {}  # no temporary file, and the folder it made is gone


@pytest.mark.parametrize("argv, message", [
    (["--lr", "inf"], "--lr inf: the learning rate must be a finite number > 0"),
    (["--lr", "1e400"], "--lr inf: the learning rate must be a finite number > 0"),
    (["--lr", "nan"], "--lr nan: the learning rate must be a finite number > 0"),
    (["--lr=-inf"], "--lr -inf: the learning rate must be a finite number > 0"),
    (["--lr", "0"], "--lr 0: the learning rate must be a finite number > 0"),
    (["--seed", "-1"], "--seed -1: must be >= 0"),
    (["--steps", "-1"], "--steps -1: must be >= 0"),
])
def test_numbers_out_of_range_are_refused_before_training(capsys, argv, message):
    status, out, err = symprop(capsys, "train", "sigmoid_mse_2_2_1", *argv)
    assert (status, out, err) == (2, "", f"symprop: {message}\n")


def test_a_diverged_run_writes_nothing(tmp_path, capsys):
    path = tmp_path / "trained.npz"
    path.write_bytes(b"an earlier, good run")
    status, out, err = symprop(capsys, "train", "relu_regression_3_4_3_1", "--lr", "1e200", "--steps", "3",
                               "--save", str(path))
    assert status == 1 and "final loss: nan" in out and "wrote" not in out
    assert err == "symprop: the run diverged: the final loss is nan; nothing written; try a smaller --lr\n"
    assert tree(tmp_path) == {"trained.npz": b"an earlier, good run"}


OVERFLOW = """\
name = "overflow"
inputs = 1
[[layers]]
units = 1
activation = "relu"
[[layers]]
units = 1
activation = "identity"
bias = false
[loss]
kind = "squared_error"
[values]
x = [[1.0]]
y = [[-10.0]]
W1 = [[0.001]]
b1 = [0.0]
W2 = [[100.0]]
"""


def test_a_run_whose_parameters_overflow_while_the_loss_stays_finite_diverged(tmp_path, capsys):
    # the first update (gradient 2020 for W1 and b1, at lr 1e306) sends W1 and b1 to -inf: the
    # relu unit is dead from then on and the loss stays at (0 - y)^2 = 100
    spec = tmp_path / "overflow.toml"
    spec.write_text(OVERFLOW)
    status, out, err = symprop(capsys, "train", str(spec), "--lr", "1e306", "--steps", "3")
    assert status == 1 and "final loss: 100\n" in out
    assert err == "symprop: the run diverged: W1, b1 overflowed to inf or NaN; try a smaller --lr\n"
    with np.errstate(over="ignore"):
        history = train(symbolic.load(spec), lr=1e306, steps=3)
    assert history.arrays["W1"] == -np.inf and history.arrays["b1"] == -np.inf
    assert training.divergence(history) == "W1, b1 overflowed to inf or NaN"
    assert training.divergence(train(symbolic.load(spec), lr=1e-3, steps=3)) is None


# -------------------------------------------------------------------------------------------------
# Training on data: minibatches from a seeded shuffle, the loss and accuracy per epoch

CLASSIFIER = ('name = "clf_2_16_3"\ninputs = 2\n[[layers]]\nunits = 16\nactivation = "tanh"\n'
              '[[layers]]\nunits = 3\nactivation = "softmax"\n[loss]\nkind = "cross_entropy"\nlabels = true\n')


def three_sectors(n=120, seed=0):
    """Points of the plane labelled by the third of the circle they lie in: separable, not linearly."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (np.floor((np.arctan2(x[:, 1], x[:, 0]) + np.pi) / (2 * np.pi / 3)).astype(int)) % 3
    return x, y


def test_minibatch_training_equals_the_loop_written_out():
    net = symbolic.loads(CLASSIFIER)
    x, y = three_sectors()
    lr, batch, epochs, shuffle = 0.3, 16, 3, 5
    history = train(net, lr=lr, data={"x": x, "y": y}, batch_size=batch, epochs=epochs, shuffle_seed=shuffle)
    module = compile_module(net)
    arrays = training.initial_values(net, {"x": x, "y": y}, seed=0)
    rng = np.random.default_rng(shuffle)
    losses = [module.loss(**arrays)]
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):  # 8 minibatches, the last of 8 samples
            rows = order[start:start + batch]
            grads = module.gradients(**{**arrays, "x": x[rows], "y": y[rows]})
            arrays = {**arrays, **{p: arrays[p] - lr * grads[p] for p in net.parameters}}
        losses.append(module.loss(**arrays))
    assert history.steps == [0, 8, 16, 24] and history.epochs == [0, 1, 2, 3]
    np.testing.assert_allclose(history.losses, losses, rtol=1e-12)
    for name in net.parameters:
        np.testing.assert_allclose(history.arrays[name], arrays[name], rtol=1e-12, atol=1e-15, err_msg=name)
    outputs = module.forward(x=x, **{p: arrays[p] for p in net.parameters})
    assert history.accuracies[-1] == np.mean(outputs.argmax(axis=1) == y)


def test_a_classifier_learns_from_data_and_steps_may_end_within_an_epoch():
    net = symbolic.loads(CLASSIFIER)
    x, y = three_sectors()
    history = train(net, lr=0.5, data={"x": x, "y": y}, batch_size=16, epochs=20)
    assert history.accuracies[0] < 0.5 and history.accuracies[-1] >= 0.95
    assert history.losses[-1] < 0.2 * history.losses[0]
    partial = train(net, lr=0.5, data={"x": x, "y": y}, batch_size=16, steps=10)
    assert partial.steps == [0, 8, 10] and partial.epochs == [0, 1.0, 10 / 8]


def test_symprop_train_on_an_npz_file(tmp_path):
    spec = tmp_path / "clf.toml"
    spec.write_text(CLASSIFIER)
    x, y = three_sectors()
    np.savez(tmp_path / "data.npz", x=x, y=y)
    result = subprocess.run([sys.executable, "-m", "symprop", "train", "clf.toml", "--data", "data.npz",
                             "--batch-size", "16", "--epochs", "20", "--lr", "0.5", "--save", "trained.npz"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("training clf_2_16_3 on data.npz: 120 samples, minibatches of 16 (shuffle seed 0), "
                               "160 step(s), lr 0.5")
    assert lines[1].split() == ["epoch", "step", "loss", "accuracy"]
    table = [line.split() for line in lines[2:23]]
    assert [row[:2] for row in table] == [[str(e), str(8 * e)] for e in range(21)]
    accuracies = [float(row[3]) for row in table]
    assert accuracies[0] < 0.5 and accuracies[-1] >= 0.95
    assert lines[23] == f"final loss: {table[-1][2]}, accuracy {table[-1][3]}"
    trained = np.load(tmp_path / "trained.npz")
    np.testing.assert_array_equal(trained["x"], x)


@pytest.mark.parametrize("arrays, argv, message", [
    ({"x": np.ones((4, 2))}, [], "--data data.npz: it has no 'y' (the arrays of clf_2_16_3 are x, y, W1, b1, W2, b2; "
                                  "the file needs 'x' and 'y', one sample per row)"),
    ({"x": np.ones((4, 2)), "y": np.zeros(4, int), "z": np.ones(3)}, [], "'z' is not an array of clf_2_16_3"),
    ({"x": np.ones((4, 2)), "y": np.zeros(5, int)}, [], "'x' has shape (4, 2) and 'y' (5,): expected one sample per row"),
    ({"x": np.ones((4, 3)), "y": np.zeros(4, int)}, [], "--data data.npz: array 'x' has shape (4, 3), expected (N, 2)"),
    ({"x": np.ones((4, 2)), "y": np.full(4, 3)}, [], "--data data.npz: array 'y' holds class labels from 3 to 3"),
    ({"x": np.ones((4, 2)), "y": np.zeros(4, int)}, ["--batch-size", "0"], "--batch-size 0: must be >= 1"),
    ({"x": np.ones((4, 2)), "y": np.zeros(4, int)}, ["--steps", "3", "--epochs", "2"], "give --steps or --epochs"),
    (None, ["--batch-size", "3"], "--batch-size needs --data FILE.npz"),
])
def test_bad_data_is_one_line_and_exit_2(tmp_path, capsys, arrays, argv, message):
    from symprop.cli import main
    spec = tmp_path / "clf.toml"
    spec.write_text(CLASSIFIER)
    data = []
    if arrays is not None:
        np.savez(tmp_path / "data.npz", **arrays)
        data = ["--data", str(tmp_path / "data.npz")]
    assert main(["train", str(spec), *data, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err.replace(str(tmp_path) + "/", ""), err


def test_data_needs_an_open_batch_size_in_the_row_layout(capsys, tmp_path):
    from symprop.cli import main
    np.savez(tmp_path / "data.npz", x=np.ones((5, 10)), y=np.ones((5, 1)))
    assert main(["train", "relu_batch_10_20_1", "--data", str(tmp_path / "data.npz")]) == 2
    assert "needs a row-layout network whose batch size is open (relu_batch_10_20_1 has batch = 5)" in \
        capsys.readouterr().err
    np.savez(tmp_path / "not.npz", x=np.ones(3))
    (tmp_path / "text.npz").write_text("not a zip")
    spec = tmp_path / "clf.toml"
    spec.write_text(CLASSIFIER)
    assert main(["train", str(spec), "--data", str(tmp_path / "text.npz")]) == 2
    assert "not an .npz archive of arrays (written by numpy.savez)" in capsys.readouterr().err
    np.save(tmp_path / "array.npy", np.ones(3))
    (tmp_path / "empty.npz").write_bytes(b"")
    for path in (tmp_path / "array.npy", tmp_path / "empty.npz"):  # not archives: one line, no traceback
        assert main(["train", str(spec), "--data", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not an .npz archive of arrays" in err


def test_random_starting_values_say_what_was_drawn(capsys, tmp_path):
    from symprop.cli import main
    spec = tmp_path / "clf.toml"
    spec.write_text(CLASSIFIER)
    assert main(["train", str(spec), "--steps", "2", "--seed", "4"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("starting from random values (seed 4) for x (3, 2), y (3,), W1 (2, 16), b1 (16,), "
                          "W2 (16, 3), b2 (3,) (3 random samples, nothing to learn from: give --data FILE.npz)")


def test_data_errors_come_before_any_output(tmp_path, capsys):
    from symprop.cli import main
    spec = tmp_path / "clf.toml"
    spec.write_text(CLASSIFIER)
    np.savez(tmp_path / "fractional.npz", x=np.ones((4, 2)), y=np.array([0.5, 1.5, 0.0, 2.0]))
    np.savez(tmp_path / "nan.npz", x=np.array([[1.0, np.nan]] * 4), y=np.zeros(4, int))
    for name, message in (("fractional", "array 'y' holds class labels that are not whole numbers"),
                          ("nan", "array 'x' holds NaN or inf")):
        assert main(["train", str(spec), "--data", str(tmp_path / f"{name}.npz")]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and message in captured.err and captured.err.count("\n") == 1
    np.savez(tmp_path / "good.npz", x=np.ones((4, 2)), y=np.zeros(4, int))
    assert main(["train", str(spec), "--data", str(tmp_path / "good.npz"), "--shuffle-seed", "-1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--shuffle-seed -1: must be >= 0" in captured.err


def test_a_regression_network_on_data_has_no_accuracy(tmp_path, capsys):
    from symprop.cli import main
    spec = tmp_path / "reg.toml"
    spec.write_text('name = "reg"\ninputs = 2\n[[layers]]\nunits = 1\nactivation = "identity"\n'
                    '[loss]\nkind = "squared_error"\n')
    x = np.random.default_rng(0).normal(size=(20, 2))
    np.savez(tmp_path / "d.npz", x=x, y=x @ np.array([[2.0], [-1.0]]) + 0.5)
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--epochs", "200", "--lr", "0.3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["epoch", "step", "loss"] and all(line == line.rstrip() for line in lines)
    assert float(lines[-1].split(": ")[1]) < 1e-6  # a linear model learns an exact linear map


def test_every_thins_the_epochs_lines_and_epochs_print_whole(tmp_path):
    # --every was ignored with --data (a line per epoch: 100,001 lines), and epoch 100000 printed
    # as 1e+05, the same as 100001
    spec = tmp_path / "clf.toml"
    spec.write_text(CLASSIFIER)
    x, y = three_sectors()
    np.savez(tmp_path / "data.npz", x=x, y=y)
    result = subprocess.run([sys.executable, "-m", "symprop", "train", "clf.toml", "--data", "data.npz",
                             "--steps", "2001", "--every", "500", "--lr", "0.1"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = [line.split()[:2] for line in result.stdout.splitlines()[2:-1]]
    assert table == [["0", "0"], ["500", "500"], ["1000", "1000"], ["1500", "1500"], ["2000", "2000"],
                     ["2001", "2001"]]
    result = subprocess.run([sys.executable, "-m", "symprop", "train", "clf.toml", "--data", "data.npz",
                             "--batch-size", "50", "--steps", "7", "--every", "4", "--lr", "0.1"],
                            cwd=tmp_path, capture_output=True, text=True)
    table = [line.split()[:2] for line in result.stdout.splitlines()[2:-1]]
    # 120 samples: 3 minibatches an epoch (50, 50, 20), epochs ending at steps 3 and 6 (past 4), then step 7
    assert table == [["0", "0"], ["2", "6"], ["2.3333", "7"]]
