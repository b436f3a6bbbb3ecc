"""The spec loader: presets load with the seeds' values; every broken rule is one clear error."""

import re

import numpy as np
import pytest

from symprop import symbolic
from symprop.symbolic import SpecError
from symprop.symbolic.spec import PRESETS_DIR

GOOD = """
name = "net"
inputs = 3
[[layers]]
units = 4
activation = "relu"
[[layers]]
units = 2
activation = "softmax"
[loss]
kind = "cross_entropy"
"""


def test_defaults_of_a_minimal_spec():
    net = symbolic.loads(GOOD)
    assert (net.layout, net.input, net.target, net.batch, net.wrt_input) == ("row", "x", "y", None, False)
    assert net.parameters == ("W1", "b1", "W2", "b2")
    assert net.shapes() == {"x": ("N", 3), "y": ("N", 2), "W1": (3, 4), "b1": (4,), "W2": (4, 2), "b2": (2,)}
    assert (net.loss.reduction, net.loss.scale, net.loss.l2, net.loss.labels) == ("mean", 1.0, 0.0, False)


def test_column_layout_shapes_and_names_of_seed_002():
    net = symbolic.load("relu_softmax_3_4_2")
    assert net.shapes() == {"x": (3,), "y": (2,), "W": (4, 3), "b1": (4,), "U": (2, 4), "b2": (2,)}
    assert net.differentiated == ("W", "b1", "U", "b2", "x")


def test_random_presets_hold_numpy_legacy_seed_42_stream():
    net = symbolic.load("relu_regression_3_4_3_1")
    np.random.seed(42)
    for name, shape in [("W1", (4, 3)), ("B1", (4,)), ("W2", (3, 4)), ("B2", (3,)), ("W3", (1, 3)), ("B3", (1,))]:
        np.testing.assert_array_equal(net.values[name], np.random.randn(*shape))
    net = symbolic.load("relu_batch_10_20_1")
    np.random.seed(42)
    np.testing.assert_array_equal(net.values["W1"], np.random.randn(10, 20) * 0.01)
    np.testing.assert_array_equal(net.values["W2"], np.random.randn(20, 1) * 0.01)
    np.testing.assert_array_equal(net.values["x"], np.random.randn(5, 10))
    np.testing.assert_array_equal(net.values["y"], np.random.randn(5, 1))


def test_shared_bias_is_a_scalar():
    net = symbolic.load("sigmoid_shared_bias_2_2_2")
    assert net.shapes()["b1"] == () and net.values["b1"].shape == () and net.values["b2"] == 0.79


def edit(old, new, text=GOOD):
    assert old in text
    return text.replace(old, new, 1)


BAD = [
    # (spec text, key named in the message, words of the rule)
    ("name = [", "", "invalid TOML"),
    (edit('[[layers]]', '[[layers]'), "", "(at line 4, column 9)"),
    (edit('units = 4', 'units = '), "", "invalid TOML: Invalid value (at line 5, column 9)"),
    (edit('inputs = 3', 'inputs = 3\nbatchsize = 2'), "batchsize", "did you mean 'batch'"),
    (edit('activation = "relu"', 'activation = "relu6"'), "layers[1].activation", "must be one of"),
    (edit('activation = "relu"', 'activation = "softmax"'), "layers[1].activation", "last layer only"),
    (edit('activation = "softmax"', 'activation = "sigmoid"'), "loss.kind", "cross_entropy needs a softmax"),
    (edit('kind = "cross_entropy"', 'kind = "binary_cross_entropy"'), "loss.kind", "needs a sigmoid"),
    (edit('inputs = 3', 'inputs = 0'), "inputs", "at least 1"),
    (edit('units = 4', 'units = -1'), "layers[1].units", "at least 1"),
    (edit('units = 4', 'units = 4.5'), "layers[1].units", "must be an integer"),
    (edit('units = 4', 'units = true'), "layers[1].units", "must be an integer"),
    (edit('name = "net"', 'name = "my-net"'), "name", "not a Python identifier"),
    (edit('name = "net"', 'name = "class"'), "name", "Python keyword"),
    (edit('name = "net"\n', ''), "name", "required key is missing"),
    (edit('inputs = 3\n', ''), "inputs", "required key is missing"),
    (edit('inputs = 3', 'inputs = 3\ninput = "W1"'), "layers[1].weight", "already the name of input"),
    (edit('inputs = 3', 'inputs = 3\ntarget = "x"'), "target", "already the name of input"),
    (edit('units = 4', 'units = 4\nweight = "2W"'), "layers[1].weight", "not a Python identifier"),
    (edit('units = 4', 'units = 4\nbias = "z1"'), "layers[1].bias", "reserved"),
    (edit('units = 4', 'units = 4\nbias = 3'), "layers[1].bias", "a name or false"),
    (edit('inputs = 3', 'inputs = 3\nlayout = "diagonal"'), "layout", "must be one of row, column"),
    (edit('inputs = 3', 'inputs = 3\nlayout = "column"\nbatch = 2'), "batch", "only the row layout"),
    (edit('kind = "cross_entropy"', 'kind = "cross_entropy"\nreduction = "max"'), "loss.reduction", "must be one of"),
    (edit('kind = "cross_entropy"', 'kind = "cross_entropy"\nl2 = -1.0'), "loss.l2", "at least 0"),
    (edit('kind = "cross_entropy"', 'kind = "cross_entropy"\nscale = "big"'), "loss.scale", "must be a number"),
    (edit('kind = "cross_entropy"\n', ''), "loss.kind", "required key is missing"),
    (edit('activation = "relu"', 'activation = "relu"\nnegative_slope = 0.1'), "layers[1].negative_slope", "leaky_relu only"),
    (edit('activation = "relu"', 'activation = "relu"\nbias = false\nshared_bias = true'), "layers[1].shared_bias", "without a bias"),
    (edit('units = 2', 'units = 1'), "layers[2].units", "a softmax over one class is always 1"),
    (edit('kind = "cross_entropy"', 'kind = "cross_entropy"\nlabels = true', edit('units = 2', 'units = 1')),
     "layers[2].units", "its cross-entropy always 0"),
    (edit('kind = "cross_entropy"', 'kind = "squared_error"', edit('units = 2', 'units = 1')),
     "layers[2].units", "at least 2 units; for one class use sigmoid with binary_cross_entropy"),
    (GOOD + '\n[values]\nx = [[1.0, 2.0]]\n', "values.x", "has shape (1, 2), expected (N, 3)"),
    (GOOD + '\n[values]\nx = [1.0, 2.0, 3.0]\n', "values.x", "has shape (3,), expected (N, 3)"),
    (GOOD + '\n[values]\nx = [[1.0, 2.0, 3.0]]\ny = [[0.0, 1.0], [1.0, 0.0]]\n', "values.y",
     "has shape (2, 2), expected (1, 2) (N = 1, the samples in values.x)"),
    (GOOD + '\n[values]\ny = [[0.0, 1.0], [1.0, 0.0]]\nx = [1.0, 2.0, 3.0]\n', "values.x",
     "has shape (3,), expected (2, 3) (N = 2, the samples in values.y)"),
    (edit('inputs = 3', 'inputs = 3\nbatch = 2') + '\n[values]\nx = [[1.0, 2.0, 3.0]]\n', "values.x",
     "has shape (1, 3), expected (2, 3)"),
    (GOOD + '\n[values]\nW9 = [1.0]\n', "values.W9", "unknown key"),
    (GOOD + '\n[values]\nb1 = ["a", "b", "c", "d"]\n', "values.b1", "numbers"),
    ('name = "net"\ninputs = 3\nlayers = []\n[loss]\nkind = "squared_error"\n', "layers", "at least one layer"),
]


@pytest.mark.parametrize("text, key, rule", BAD, ids=[f"{i}-{k or 'toml'}" for i, (_, k, _) in enumerate(BAD)])
def test_bad_spec_is_one_line_naming_file_key_and_rule(text, key, rule):
    with pytest.raises(SpecError) as error:
        symbolic.loads(text, source="bad.toml")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"bad.toml: {key}: " if key else "bad.toml: ")
    assert rule in message


@pytest.mark.parametrize("name", symbolic.presets())
def test_preset_descriptions_say_in_words_what_each_network_is(name):
    net = symbolic.load(name)
    words = net.description
    assert "\n" not in words and not words.startswith("Seed") and not re.search(r"\b\d{3}\b", words)
    sizes = "-".join(str(n) for n in (net.inputs, *(layer.units for layer in net.layers)))
    assert words.startswith(f"A {sizes} ")
    assert f"{net.layout} sample" in words
    if net.loss.kind == "squared_error":
        scale = "" if net.loss.scale == 1 else f"{net.loss.scale} * "
        assert f"loss {scale}{net.loss.reduction}((yhat - {net.target})^2)" in words
    else:
        assert f"loss -{net.loss.reduction}({net.target} * log(yhat)) (cross-entropy)" in words


def test_network_records_its_spec_file(tmp_path, monkeypatch):
    (tmp_path / "net.toml").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    net = symbolic.load("net.toml")
    assert (net.source, net.path, net.preset) == ("net.toml", tmp_path.resolve() / "net.toml", False)
    preset = symbolic.load("sigmoid_mse_2_2_1")
    assert preset.preset and preset.path == PRESETS_DIR.resolve() / "sigmoid_mse_2_2_1.toml"
    text = symbolic.loads(GOOD, source="mine.toml")
    assert (text.source, text.path, text.preset) == ("mine.toml", None, False)


UNREADABLE = [
    # (what the path is, the reason the message gives)
    ("directory.toml", "is a directory, not a spec file"),
    ("directory", "is a directory, not a spec file"),
    ("missing.toml", "no such file"),
    ("latin1.toml", "not UTF-8 text (byte 0xe9 at offset 9)"),  # name = "r\xe9seau"
    ("nul\0.toml", "not a usable file path (embedded null byte)"),
]


@pytest.mark.parametrize("name, reason", UNREADABLE, ids=["dir.toml", "dir", "missing", "latin-1", "nul"])
def test_unreadable_spec_file_is_one_line_naming_the_file(tmp_path, name, reason):
    (tmp_path / "directory.toml").mkdir()
    (tmp_path / "directory").mkdir()
    (tmp_path / "latin1.toml").write_bytes('name = "r\u00e9seau"\n'.encode("latin-1"))
    path = str(tmp_path / name)
    with pytest.raises(SpecError) as error:
        symbolic.load(path)
    assert str(error.value) == f"{path}: {reason}"


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(SpecError, match="no such preset or spec file.*relu_batch_10_20_1"):
        symbolic.load("no_such_net")


PAYLOAD = '"""\nimport builtins; builtins.SYMPROP_INJECTED = True\n"""'
STRING_KEYS = ["name", "description", "layout", "input", "target", "layers[1].activation",
               "layers[1].weight", "layers[1].bias", "loss.kind", "loss.reduction"]


@pytest.mark.parametrize("key", STRING_KEYS)
def test_no_code_runs_from_any_string_key(key):
    import builtins

    from symprop import codegen
    from symprop.codegen.files import compile_module

    table, _, field = key.rpartition(".")
    doc = {"name": "net", "inputs": 3, "layers": [{"units": 2, "activation": "sigmoid"}],
           "loss": {"kind": "squared_error"}}
    target = doc if not table else doc["loss"] if table == "loss" else doc["layers"][0]
    target[field] = PAYLOAD
    text = _toml(doc)
    try:
        network = symbolic.loads(text, source="evil.toml")
    except SpecError as error:
        assert str(error).startswith(f"evil.toml: {key}: ")
        return
    assert key == "description"  # the only free-text key
    module = compile_module(network, codegen.generate(network))
    assert not hasattr(builtins, "SYMPROP_INJECTED")
    assert "builtins.SYMPROP_INJECTED = True" in module.__doc__  # kept as text, inert


def _toml(doc):
    import json

    def value(v):
        return json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)

    lines = [f"{k} = {value(v)}" for k, v in doc.items() if not isinstance(v, (dict, list))]
    for layer in doc["layers"]:
        lines += ["[[layers]]"] + [f"{k} = {value(v)}" for k, v in layer.items()]
    lines += ["[loss]"] + [f"{k} = {value(v)}" for k, v in doc["loss"].items()]
    return "\n".join(lines) + "\n"
