"""The first hour: every hostile name, number, file and text a new user may give gets one line on
stderr and exit 2, or simply works (a module that imports, regenerates cleanly and whose
gradients equal finite differences); nothing is left behind."""

import dis
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symprop
from symprop.numerical import numerical_gradients
from symprop.symbolic.names import LOCALS, READ, module_name_problem, reserved

SPEC = """name = "{name}"
description = "{description}"
inputs = 2
input = "{input}"
target = "{target}"
{top}
[[layers]]
units = 3
activation = "{activation}"
weight = "{weight}"
bias = "{bias}"
{layer}
[[layers]]
units = 1
activation = "identity"
[loss]
kind = "squared_error"
{loss}
"""


def spec(**changes) -> str:
    fields = dict(name="net", description="", input="x", target="y", top="", activation="tanh", weight="W1",
                  bias="b1", layer="", loss="")
    fields.update(changes)
    return SPEC.format(**fields)


def run(tmp_path, *args, text=None):
    """symprop in-process: (exit status, stdout, stderr), with the spec `text` as tmp_path/net.toml."""
    if text is not None:
        (tmp_path / "net.toml").write_text(text, encoding="utf-8")
    return run_cli(tmp_path, *args)


def refused(tmp_path, *args, text=None) -> str:
    status, out, err = run(tmp_path, *args, text=text)
    assert status == 2, (out, err)
    assert err.startswith("symprop: ") and err.count("\n") == 1, err
    return err


def module_of(source: str) -> dict:
    namespace = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace


def assert_gradients_are_right(network):
    module = module_of(symprop.generate(network))
    values = _values(network)
    got = module["gradients"](**values)
    expected = numerical_gradients(module["loss"], values, list(network.differentiated))
    for name in network.differentiated:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-7, atol=1e-9)


def _values(network):
    from symprop.check import random_values
    return random_values(network, 0, 3)


# ---------------------------------------------------------------------------------------------
# Names: one rule, from what the generated code reads and defines


NAME_REFUSALS = [
    (dict(name="numpy"), "name: 'numpy' is the name of the module numpy"),
    (dict(name="json"), "name: 'json' is the name of the module json"),
    (dict(name="__init__"), "name: '__init__' is a special name"),
    (dict(name="n" * 245), "is longer than 100 characters (245)"),
    (dict(weight="float"), "layers[1].weight: 'float' is reserved: the generated code reads it"),
    (dict(bias="bool"), "layers[1].bias: 'bool' is reserved: the generated code reads it"),
    (dict(input="VALIDATE"), "input: 'VALIDATE' is reserved: the generated code reads it"),
    (dict(target="unknown"), "target: 'unknown' is reserved: the generated functions use it themselves"),
    (dict(weight="np"), "'np' is reserved"),
    (dict(weight="_softmax"), "'_softmax' is reserved for the generated code's own helpers"),
    (dict(weight="a1"), "'a1' is reserved for the generated code's intermediates"),
    (dict(weight="z2"), "'z2' is reserved"),
    (dict(bias="delta1"), "'delta1' is reserved"),
    (dict(bias="L"), "'L' is reserved"),
    (dict(bias="dL_dW1"), "'dL_dW1' is reserved"),
    (dict(bias="t0"), "'t0' is reserved"),
    (dict(weight="__init__"), "'__init__' is reserved"),
]


@pytest.mark.parametrize("changes, rule", NAME_REFUSALS, ids=[r for _, r in NAME_REFUSALS])
def test_a_name_the_module_needs_is_refused_in_one_line(tmp_path, changes, rule):
    err = refused(tmp_path, "generate", "net.toml", "--out", "gen", text=spec(**changes))
    assert rule in err
    assert not (tmp_path / "gen").exists()


WORKING_NAMES = ["loss", "gradients", "forward", "loss_and_gradients", "SHAPES", "PARAMETERS", "ARGUMENTS",
                 "CHECK_FINITE", "CLASSES", "INPUT", "TARGET", "DIFFERENTIATED", "dict", "print", "sum", "x0", "W" * 245]


@pytest.mark.parametrize("name", WORKING_NAMES, ids=lambda n: n[:20])
def test_any_other_name_works(name):
    # the module's API names only hide themselves inside a function that never reads them
    network = symprop.loads(spec(weight=name))
    assert_gradients_are_right(network)


def _read_names(function) -> tuple[set, set]:
    """The globals and builtins a function reads, and its own local names besides its parameters."""
    code = function.__code__
    read = {i.argval for i in dis.get_instructions(function) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    own = set(code.co_varnames) - set(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    return read, own


def _every_module():
    import learner
    import test_images
    import test_kinds
    for name in symprop.presets():
        network = symprop.load(name)
        yield name, symprop.generate(network), set(network.shapes()), {s.name for s in symprop.derive(network).steps}
    for case in test_kinds.CASES:
        network = test_kinds.network(case)
        yield case, symprop.generate(network), set(network.shapes()), {s.name for s in symprop.derive(network).steps}
    for case in test_images.CASES:
        network = test_images.network(case)
        yield case, symprop.generate(network), set(network.shapes()), {s.name for s in symprop.derive(network).steps}
    for case, (function, make) in learner.CASES.items():
        program = symprop.trace(function, **make(np.random.default_rng(0)))
        loops = set().union(*(s.expr.loop.locals for s in program.steps if hasattr(s.expr, "loop")))
        yield case, symprop.generate(program), set(program.inputs), {s.name for s in symprop.derive(program).steps} | loops


def test_every_name_a_generated_function_reads_or_defines_is_reserved():
    # the reserved rule is complete: in every module of every preset, layer kind, image case and
    # traced learner's function, what a function reads by name and what it names for itself is
    # reserved, or is one of the network's own arrays or steps
    count = 0
    for label, source, arrays, steps in _every_module():
        module = module_of(source)
        for function in ("forward", "loss", "gradients", "loss_and_gradients"):
            if function not in module:
                continue
            read, own = _read_names(module[function])
            for name in read:
                assert name in READ or name.startswith("_"), (label, function, name)
            for name in own - arrays - steps:
                assert reserved(name, steps=True) or name in LOCALS, (label, function, name)
            count += 1
    assert count > 100


# ---------------------------------------------------------------------------------------------
# Numbers: refused before anything is allocated


NUMBER_REFUSALS = [
    (dict(activation="leaky_relu", layer="negative_slope = 18446744073709551617"),
     "layers[1].negative_slope: must be at most 1e+12 in magnitude, not 1.84e+19"),
    (dict(activation="leaky_relu", layer="negative_slope = 9223372036854775808"), "not 9.22e+18"),
    (dict(activation="leaky_relu", layer="negative_slope = 1e308"), "not 1e+308"),
    (dict(activation="leaky_relu", layer="negative_slope = nan"), "must be a finite number"),
    (dict(loss="scale = 1e308"), "loss.scale: must be at most 1e+12 in magnitude"),
    (dict(loss="scale = 18446744073709551617"), "loss.scale: must be at most 1e+12"),
    (dict(loss="l2 = 1e300"), "loss.l2: must be at most 1e+12"),
    (dict(top="batch = 9223372036854775808"), "batch: must be at most 2,147,483,647 (2**31 - 1)"),
]


@pytest.mark.parametrize("changes, rule", NUMBER_REFUSALS, ids=[r for _, r in NUMBER_REFUSALS])
@pytest.mark.parametrize("command", ["derive", "generate", "check"])
def test_a_number_out_of_range_is_refused(tmp_path, changes, rule, command):
    err = refused(tmp_path, command, "net.toml", text=spec(**changes))
    assert rule in err


@pytest.mark.parametrize("text, rule", [
    (spec().replace("units = 3", "units = 9223372036854775808"), "layers[1].units: must be at most 2,147,483,647"),
    (spec().replace("inputs = 2", "inputs = 1000000000000000000000000000000"), "inputs: must be at most"),
    (spec().replace("inputs = 2", "inputs = 100000").replace("units = 3", "units = 100000"),
     "the array W1 would have 1e+10 entries (100000 x 100000), more than 2**31"),
    (spec(top="batch = 100000").replace("units = 3", "units = 100000"),
     "layer 1's output would have 1e+10 entries (100000 x 100000), more than 2**31"),
])
def test_a_shape_beyond_2_31_entries_is_refused(tmp_path, text, rule):
    assert rule in refused(tmp_path, "derive", "net.toml", text=text)


def test_a_check_that_would_not_fit_in_memory_is_refused_before_allocating(tmp_path):
    text = spec().replace("units = 3", "units = 1000000000")  # W1 of 2e9 entries: 16 GB, a few times over
    for command in (["check", "net.toml"], ["train", "net.toml", "--steps", "1"]):
        err = refused(tmp_path, *command, text=text)
        assert "would need about" in err and "GiB of memory available" in err


@pytest.mark.parametrize("changes", [{}, {"top": "wrt_input = true"}, {"top": "batch = 4\nwrt_input = true"},
                                     {"layer": "shared_bias = true"}, {"top": 'layout = "column"\nwrt_input = true'}])
def test_scale_zero_simply_works(changes, tmp_path):
    # with wrt_input, dL/dx is zeros of the input's shape, N included (once a TypeError); a shared
    # bias that nothing reaches is explained as zero (once an IndexError in the derivation's words)
    text = spec(loss="scale = 0", **changes)
    network = symprop.loads(text)
    module = module_of(symprop.generate(network))
    values = _values(network)
    assert module["loss"](**values) == 0.0
    gradients = module["gradients"](**values)
    assert gradients.keys() == set(network.differentiated)
    for name, gradient in gradients.items():
        assert np.shape(gradient) == np.shape(values[name]) and not np.any(gradient), name
    assert "does not depend on it" in symprop.derive(network).text() or "shared_bias" not in text
    assert "through ," not in symprop.derive(network).text()
    assert run(tmp_path, "check", "net.toml", text=text)[0] == 0


def test_a_spec_saved_with_a_byte_order_mark_loads(tmp_path):
    # Windows editors save UTF-8 with a BOM: "invalid TOML: Invalid statement (at line 1, column 1)" before
    (tmp_path / "net.toml").write_bytes(b"\xef\xbb\xbf" + spec().encode())
    network = symprop.load(tmp_path / "net.toml")
    assert network.name == "net" and network.shapes() == symprop.loads(spec()).shapes()


@pytest.mark.parametrize("changes", [{}, {"top": "wrt_input = true"}, {"layer": "shared_bias = true"},
                                     {"top": 'layout = "column"'}])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_zero_gradients_keep_the_arrays_dtype(changes, dtype):
    # the data term gone, a bias's gradient is a number (0) made an array: once float64 zeros
    # beside float32 weight gradients (np.broadcast_to(0.0, shape) + 0.0); the L2 term stays 2 l2 W
    network = symprop.loads(spec(loss="scale = 0\nl2 = 0.25", **changes))
    module = module_of(symprop.generate(network))
    values = {k: v.astype(dtype) for k, v in _values(network).items()}
    loss, gradients = module["loss_and_gradients"](**values)
    for gradients in (gradients, module["gradients"](**values)):
        for name, gradient in gradients.items():
            assert np.asarray(gradient).dtype == dtype, (name, np.asarray(gradient).dtype)
            expected = 0.5 * values[name] if name.startswith("W") else np.zeros(np.shape(values[name]))
            np.testing.assert_array_equal(gradient, expected.astype(dtype), err_msg=name)


# ---------------------------------------------------------------------------------------------
# Files: regular files of at most 16 MiB


def test_a_fifo_a_device_a_folder_nesting_and_size_are_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo.toml")
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "nested.toml").write_text("a = " + "[" * 10000 + "]" * 10000 + "\n")
    with open(tmp_path / "big.toml", "wb") as handle:
        handle.truncate(16 * 2**20 + 1)
    (tmp_path / "ok.toml").write_text(spec())
    cases = [("fifo.toml", "is not a regular file"), ("/dev/zero", "is not a regular file"),
             ("folder.toml", "is a directory"), ("nested.toml", "nested too deeply"),
             ("big.toml", "is larger than 16 MiB (16,777,217 bytes)")]
    for path, rule in cases:
        for command in (["derive", path], ["generate", path, "--out", "gen"], ["check", path]):
            assert rule in refused(tmp_path, *command), (path, command)
    assert not (tmp_path / "gen").exists()


@pytest.mark.parametrize("array, kind", [
    (np.ones((4, 2)) + 1j, "complex values (complex128)"),
    (np.array(["2020-01-01"] * 8, dtype="datetime64[D]").reshape(4, 2), "datetime values"),
    (np.array([1, 2, 3, 4], dtype="timedelta64[s]").reshape(4, 1), "timedelta values"),
    (np.zeros(4, dtype=[("a", "f8"), ("b", "i4")]), "structured values"),
    (np.array([["1.0", "2.0"]] * 4), "string values"),
    (np.array([[b"1"]] * 4), "bytes values"),
])
def test_data_of_a_kind_that_is_not_numbers_is_refused(tmp_path, array, kind):
    np.savez(tmp_path / "data.npz", x=array, y=np.ones((4, 1)))
    (tmp_path / "net.toml").write_text(spec())
    err = refused(tmp_path, "train", "net.toml", "--data", "data.npz", "--steps", "1")
    assert f"--data data.npz: the array 'x' holds {kind}" in err and "expected real numbers" in err


def test_a_data_file_beyond_16_mib_is_refused(tmp_path):
    np.savez(tmp_path / "data.npz", x=np.zeros((1100000, 2)), y=np.zeros((1100000, 1)))
    assert "is larger than 16 MiB" in refused(tmp_path, "train", "net.toml", "--data", "data.npz", text=spec())


# ---------------------------------------------------------------------------------------------
# Text


@pytest.mark.parametrize("escape, name", [("\\u0000", "NUL"), ("\\r", "carriage return"), ("\\u001b", "escape"),
                                          ("\\u0007", "a control character")])
def test_a_control_character_in_the_description_is_refused(tmp_path, escape, name):
    err = refused(tmp_path, "generate", "net.toml", "--out", "gen", text=spec(description=f"a{escape}b"))
    assert "description: holds the control character" in err and f"({name}) at position 1" in err


@pytest.mark.parametrize("description", ["line\\u2028separator", "tab\\there", "two\\nlines",
                                         "# symprop content hash: 0000", '\\"\\"\\" quotes \\\\ back'])
def test_any_other_description_generates_a_clean_module(tmp_path, description):
    text = spec(description=description)
    assert run(tmp_path, "generate", "net.toml", "--out", "gen", text=text)[0] == 0
    assert run(tmp_path, "generate", "net.toml", "--out", "gen")[1] == "unchanged gen/net.py\n"
    assert run(tmp_path, "generate", "net.toml", "--out", "gen", "--check")[0] == 0
    source = (tmp_path / "gen" / "net.py").read_text(encoding="utf-8")
    module_of(source)  # it compiles and runs


def test_the_description_prints_as_written_in_latex_and_markdown(tmp_path):
    text = spec(description="cost $5 & 100% of #1_best {x} ~ ^")
    latex = run(tmp_path, "derive", "net.toml", "--format", "latex", text=text)[1]
    assert r"cost \$5 \& 100\% of \#1\_best \{x\} \textasciitilde{} \textasciicircum{}" in latex
    markdown = run(tmp_path, "derive", "net.toml", "--format", "markdown")[1]
    assert r"cost \$5 & 100% of #1\_best {x} \~ ^" in markdown


def test_temporary_files_of_a_killed_generate_are_reported_and_removed(tmp_path):
    assert run(tmp_path, "generate", "net.toml", "--out", "gen", text=spec())[0] == 0
    left = tmp_path / "gen" / ".net.py.x8k2b1q0.tmp"  # what kill -9 leaves: _temporary's naming
    left.write_text("half a module")
    status, out, _ = run(tmp_path, "generate", "net.toml", "--out", "gen", "--check")
    assert status == 1
    assert out == "gen/net.py: .net.py.x8k2b1q0.tmp is left from an interrupted run; run: symprop generate net.toml " \
                  "--out gen\n"
    assert run(tmp_path, "generate", "net.toml", "--out", "gen")[0] == 0
    assert not left.exists()
    assert run(tmp_path, "generate", "net.toml", "--out", "gen", "--check")[0] == 0


# ---------------------------------------------------------------------------------------------
# Ctrl-C


@pytest.mark.parametrize("delay", [0.0, 0.3, 1.0, 2.5])
def test_ctrl_c_exits_130_in_one_line_and_leaves_nothing(tmp_path, delay):
    # a deep spec, so that generate is still deriving when the interrupt comes (or has finished)
    layers = "".join('[[layers]]\nunits = 4\nactivation = "sigmoid"\n' for _ in range(40))
    (tmp_path / "deep.toml").write_text(f'name = "deep"\ninputs = 4\n{layers}[loss]\nkind = "squared_error"\n')
    process = subprocess.Popen([sys.executable, "-m", "symprop", "generate", "deep.toml", "--out", "gen"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    # from when symprop's own imports run (NumPy's library is mapped): before that, the interpreter
    # itself is starting, and a Ctrl-C there is Python's to report, not symprop's
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        with open(f"/proc/{process.pid}/maps") as maps:
            if "_multiarray_umath" in maps.read():
                break
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    if process.returncode == 0:  # it had finished: the module is whole
        assert (tmp_path / "gen" / "deep.py").exists()
    else:
        assert process.returncode == 130, err
        assert err == "symprop: interrupted\n"
    assert not list(tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------
# Random names from the reserved list and random descriptions


_RESERVED_POOL = sorted(READ | LOCALS) + ["a1", "z2", "delta1", "L", "dL_dW1", "t0", "_x", "numpy", "json",
                                          "__init__", "loss", "SHAPES", "W", "float32", "gamma"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(weight=st.sampled_from(_RESERVED_POOL), name=st.sampled_from(_RESERVED_POOL + ["net"]),
       description=st.text(max_size=30))
def test_random_names_and_descriptions_are_refused_in_one_line_or_generate_clean_modules(
        tmp_path_factory, weight, name, description):
    folder = tmp_path_factory.mktemp("random")
    escaped = description.replace("\\", "\\\\").replace('"', '\\"')  # a TOML basic string
    escaped = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}"
                      for ch in escaped)
    text = spec(name=name, weight=weight, description=escaped)
    status, out, err = run(folder, "generate", "net.toml", "--out", "gen", text=text)
    if status == 2:
        assert err.startswith("symprop: ") and err.count("\n") == 1
        assert not (folder / "gen").exists()
        assert (module_name_problem(name) or reserved(weight) or "control character" in err), err
        return
    assert status == 0, err
    assert module_name_problem(name) is None and reserved(weight) is None
    path = folder / "gen" / f"{name}.py"
    module_of(path.read_text(encoding="utf-8"))
    assert run(folder, "generate", "net.toml", "--out", "gen", "--check")[0] == 0
    assert run(folder, "generate", "net.toml", "--out", "gen")[1] == f"unchanged gen/{name}.py\n"


def test_a_convolution_whose_columns_would_not_fit_in_memory_is_refused(tmp_path):
    text = ('name = "bigconv"\ninputs = [64, 256, 256]\n[[layers]]\nkind = "conv2d"\nfilters = 4\nkernel = 31\n'
            'padding = 15\n[[layers]]\nkind = "avgpool2d"\nsize = 256\n[[layers]]\nkind = "flatten"\n[[layers]]\n'
            'units = 2\nactivation = "softmax"\n[loss]\nkind = "cross_entropy"\nlabels = true\n')
    assert "would need about" in refused(tmp_path, "check", "net.toml", text=text)


def test_a_name_outside_ascii_is_refused_as_such(tmp_path):
    err = refused(tmp_path, "derive", "net.toml", text=spec(name="réseau"))
    assert "name: 'réseau' is not ASCII: names are ASCII identifiers" in err


def test_a_traced_key_python_would_fold_into_another_is_refused():
    def loss(X, params):
        return np.sum(X @ params["ﬁ"])
    with pytest.raises(symprop.TraceError, match="the array name 'ﬁ' is 'fi' to Python"):
        symprop.trace(loss, X=np.ones((2, 3)), params={"ﬁ": np.ones((3, 1))})


# ---------------------------------------------------------------------------------------------
# The Python API: a clear error naming the argument, never a verdict that means nothing


def _right_backward(**arrays):
    return compile_module_of("sigmoid_mse_2_2_1").gradients(**arrays)


def compile_module_of(name):
    from symprop.codegen.files import compile_module
    return compile_module(symprop.load(name))


@pytest.mark.parametrize("call, error, message", [
    (lambda: symprop.testing.assert_gradients_match("sigmoid_mse_2_2_1", None), TypeError,
     "backward must be a function"),  # it passed, comparing nothing
    (lambda: symprop.check("sigmoid_mse_2_2_1", lambda **a: {}, rtol=float("nan")), ValueError,
     "rtol must be a finite number > 0, not nan"),  # every backward agreed
    (lambda: symprop.check("sigmoid_mse_2_2_1", _right_backward, rtol=-1), ValueError, "rtol must be"),
    (lambda: symprop.check("sigmoid_mse_2_2_1", "backward"), ValueError, "against must be a function"),
    (lambda: symprop.check("relu_batch_10_20_1", values={"x": "ab"}), ValueError,
     "values['x'] is not an array of numbers (str)"),  # an IndexError
    (lambda: symprop.check("relu_batch_10_20_1", batch=None), ValueError, "batch must be a whole number >= 1"),
    (lambda: symprop.check("sigmoid_mse_2_2_1", entries=-5), ValueError, "entries must be a whole number >= 1"),
    (lambda: symprop.check("sigmoid_mse_2_2_1", _right_backward, names="W1=w1"), ValueError,
     "names must be a dict"),
    (lambda: symprop.derive("sigmoid_mse_2_2_1").step("dW1"), KeyError, "no step named 'dW1'; the steps are z1"),
    (lambda: symprop.numerical_gradients(lambda W: np.sum(W ** 2), {"W": np.ones(2)}, "W", eps=0), ValueError,
     "eps must be a finite number > 0"),
    (lambda: symprop.loads(None), TypeError, "loads takes the spec's text (a str), not NoneType"),
    (lambda: symprop.loads(b"name = 'x'"), TypeError, "decode bytes first"),
    (lambda: symprop.load(None), TypeError, "load takes a preset name or a spec path, not NoneType"),
    (lambda: __import__("symprop.train").train.train(None), TypeError, "train takes a Network"),
    (lambda: __import__("symprop.train").train.train("relu_batch_10_20_1", data={"x": np.ones((4, 10))}),
     ValueError, "data has no 'y'"),  # it trained on random targets
    (lambda: __import__("symprop.train").train.train("sigmoid_mse_2_2_1", seed=-1), ValueError,
     "seed must be a whole number >= 0"),
])
def test_a_bad_argument_to_the_python_api_is_named(call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value)


def test_numerical_gradients_pass_what_they_do_not_vary_as_it_is():
    # a boolean mask arrived as float64 (W[mask] failed) and None as array(None, dtype=object)
    W, mask = np.array([1.0, -2.0, 3.0]), np.array([True, False, True])
    np.testing.assert_allclose(symprop.numerical_gradients(lambda W, mask: np.sum(W[mask] ** 2),
                                                           {"W": W, "mask": mask}, "W")["W"], [2, 0, 6], atol=1e-9)
    got = symprop.numerical_gradients(lambda W, reg: np.sum(W ** 2) * (1.0 if reg is None else reg),
                                      {"W": W, "reg": None}, "W")["W"]
    np.testing.assert_allclose(got, 2 * W, atol=1e-9)


def test_a_backward_that_overflowed_is_reported_wrong_not_a_crash():
    # the diagnosis took a factor of inf and raised OverflowError
    def overflowed(**arrays):
        gradients = _right_backward(**arrays)
        gradients["W1"] = np.full_like(gradients["W1"], np.inf)
        return gradients
    report = symprop.check("sigmoid_mse_2_2_1", overflowed)
    assert not report.ok and report.first_wrong == "W1"


def test_the_entries_of_a_loop_over_time_are_not_written_out():
    # the element-level formulas grow with every step: three steps of two units ran for minutes
    network = symprop.loads('name = "a"\ninputs = [3, 2]\n[[layers]]\nkind = "lstm"\nunits = 2\noutput = "last"\n'
                            '[[layers]]\nunits = 2\nactivation = "softmax"\n[loss]\nkind = "cross_entropy"\n'
                            'labels = true\n')
    with pytest.raises(ValueError, match="has a loop over time"):
        symprop.derive(network).latex(elements=True)
