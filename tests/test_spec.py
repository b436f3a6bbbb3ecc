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


# ---------------------------------------------------------------------------------------------
# Layer kinds beyond dense, residuals, tied weights and multiclass_hinge (contract 1, 1a)


def spec(*layers, loss=None, inputs=3, top="", values=""):
    """The TOML text of a network "net" with `layers` (dicts of keys) and the `loss` table."""
    import json

    def table(header, keys):
        return [header] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]

    lines = ['name = "net"', f"inputs = {json.dumps(inputs)}"] + ([top] if top else [])
    for layer in layers:
        lines += table("[[layers]]", layer)
    lines += table("[loss]", loss or {"kind": "squared_error"})
    return "\n".join(lines) + "\n" + (f"[values]\n{values}\n" if values else "")


def dense(units, **keys):
    return {"units": units, **keys}


BN, LN = {"kind": "batchnorm"}, {"kind": "layernorm"}
DROP = {"kind": "dropout", "p": 0.5}
HINGE = {"kind": "multiclass_hinge"}

BAD_KINDS = [
    # (spec text, key named in the message, words of the rule)
    # kinds and their keys
    (spec(BN, top='layout = "column"'), "layers[1].kind", "batchnorm normalizes over the batch: it needs the row layout"),
    (spec({"kind": "batchnrom"}), "layers[1].kind",
     "must be one of dense, batchnorm, "), (spec({"kind": "batchnrom"}), "layers[1].kind", "not 'batchnrom'; did you mean 'batchnorm'?"),
    (spec({"kind": "layer_norm"}), "layers[1].kind", "did you mean 'layernorm'?"),
    (spec({"kind": 3}), "layers[1].kind", "must be a string, not an integer"),
    (spec({**BN, "units": 3}), "layers[1].units", "unknown key for a batchnorm layer (it applies to dense"),
    (spec(dense(3, p=0.5)), "layers[1].p", "unknown key for a dense layer (it applies to dropout)"),
    (spec({**DROP, "eps": 0.1}), "layers[1].eps", "unknown key for a dropout layer (it applies to batchnorm, layernorm)"),
    (spec({**DROP, "activation": "relu"}), "layers[1].activation",
     "unknown key for a dropout layer (it applies to dense, batchnorm, layernorm, conv2d"),
    (spec({**LN, "residual": True}), "layers[1].residual", "unknown key for a layernorm layer (it applies to dense)"),
    (spec({**LN, "mask": "m"}), "layers[1].mask", "unknown key for a layernorm layer (it applies to dropout)"),
    (spec(dense(3, scale="g")), "layers[1].scale", "unknown key for a dense layer (it applies to batchnorm, layernorm)"),
    (spec({**BN, "epsilon": 0.1}), "layers[1].epsilon", "unknown key; did you mean 'eps'?"),
    # dropout's p
    (spec({"kind": "dropout", "p": 1}), "layers[1].p", "must be at least 0 and less than 1 (the probability of dropping"),
    (spec({"kind": "dropout", "p": 1.0}), "layers[1].p", "less than 1 (the probability of dropping an entry), not 1"),
    (spec({"kind": "dropout", "p": -0.1}), "layers[1].p", "must be at least 0 and less than 1 (the probability of dropping an entry), not -0.1"),
    (spec({"kind": "dropout"}), "layers[1].p", "required key is missing"),
    (spec({"kind": "dropout", "p": "0.5"}), "layers[1].p", "must be a number, not a string"),
    (spec({"kind": "dropout", "p": True}), "layers[1].p", "must be a number, not a boolean"),
    # eps, scale, shift
    (spec({**LN, "eps": 0}), "layers[1].eps", "must be a number > 0, not 0"),
    (spec({**BN, "eps": -1e-5}), "layers[1].eps", "must be a number > 0, not -1e-05"),
    (spec({**BN, "eps": "small"}), "layers[1].eps", "must be a number, not a string"),
    (spec({**BN, "scale": True}), "layers[1].scale", "must be a name or false, not a boolean"),
    (spec({**LN, "shift": 0}), "layers[1].shift", "must be a name or false, not an integer"),
    (spec({**LN, "negative_slope": 0.1}), "layers[1].negative_slope", "applies to leaky_relu only"),
    (spec({**LN, "activation": "softmax"}, LN), "layers[1].activation", "softmax is allowed on the last layer only"),
    (spec(dense(1), {**BN, "activation": "softmax"}), "layers[2].activation", "a softmax over one class is always 1"),
    (spec(LN, inputs=1), "layers[1].kind", "layernorm over one feature always gives 0"),
    (spec(dense(1), LN), "layers[2].kind", "its input must be at least 2 wide"),
    # residual
    (spec(dense(4, residual=True)), "layers[1].residual",
     "adds the input (3 wide) to this layer's 4 units: the widths must match"),
    (spec(dense(4), dense(3, residual=1)), "layers[2].residual",
     "adds the output of layer 1 (4 wide) to this layer's 3 units: the widths must match"),
    (spec(dense(4), DROP, dense(4, residual=3)), "layers[3].residual", "adds the input (3 wide) to this layer's 4 units"),
    (spec(dense(3), dense(3, residual=3)), "layers[2].residual",
     "layer 2 has no layer 3 below it (k = 3 reaches past the input; at most 2)"),
    (spec(dense(3, residual=2)), "layers[1].residual", "k = 2 reaches past the input; at most 1"),
    (spec(dense(3, residual=0)), "layers[1].residual", "must be true, false or a whole number k >= 1, not 0"),
    (spec(dense(3, residual=-1)), "layers[1].residual", "must be true, false or a whole number k >= 1, not -1"),
    (spec(dense(3, residual="1")), "layers[1].residual", "must be true, false or a whole number k >= 1, not '1'"),
    (spec(dense(3, residual=1.0)), "layers[1].residual", "a whole number k >= 1, not 1.0"),
    (spec(dense(3, activation="softmax", residual=True), loss={"kind": "cross_entropy"}), "layers[1].residual",
     "cross_entropy takes the log of the last layer's softmax output; a residual added to it is no longer a probability"),
    (spec(dense(3, activation="sigmoid", residual=True), loss={"kind": "binary_cross_entropy"}), "layers[1].residual",
     "binary_cross_entropy takes the log of the last layer's sigmoid output"),
    # tied weights
    (spec(dense(4, weight="W"), dense(3, weight="W")), "layers[2].weight",
     "'W' is the weight of layers[1] with shape (3, 4); here it needs shape (4, 3); transpose_weight = true uses its transpose"),
    (spec(dense(4, weight="W"), dense(2, weight="W", transpose_weight=True)), "layers[2].weight",
     "'W' is the weight of layers[1] with shape (3, 4); here it needs shape (2, 4)"),
    (spec(dense(4, weight="W"), dense(4, weight="W")), "layers[2].weight",
     "'W' is the weight of layers[1] with shape (3, 4); here it needs shape (4, 4)"),
    (spec(dense(4, weight="W"), dense(3, weight="W"), top='layout = "column"'), "layers[2].weight",
     "'W' is the weight of layers[1] with shape (4, 3); here it needs shape (3, 4); transpose_weight = true"),
    (spec(dense(3), dense(3, weight="W1", transpose_weight="yes")), "layers[2].transpose_weight",
     "must be true or false, not a string"),
    (spec(dense(4), dense(3, bias="W1")), "layers[2].bias", "'W1' is already the name of layers[1].weight"),
    (spec(dense(4), {**DROP, "mask": "W1"}), "layers[2].mask", "'W1' is already the name of layers[1].weight"),
    (spec(dense(4), {**BN, "scale": "W1"}), "layers[2].scale", "'W1' is already the name of layers[1].weight"),
    (spec(dense(4), dense(3, weight="b1")), "layers[2].weight", "'b1' is already the name of layers[1].bias"),
    (spec(DROP, dense(3, weight="m1")), "layers[2].weight", "'m1' is already the name of layers[1].mask"),
    (spec({**DROP, "mask": "x"}), "layers[1].mask", "'x' is already the name of input"),
    (spec(BN, {**LN, "shift": "beta1"}), "layers[2].shift", "'beta1' is already the name of layers[1].shift"),
    # names the generated code takes for itself
    (spec({**DROP, "mask": "z1"}), "layers[1].mask", "'z1' is reserved for the generated code's intermediates"),
    (spec(dense(3, weight="mu1")), "layers[1].weight", "'mu1' is reserved"),
    (spec({**BN, "scale": "xhat2"}), "layers[1].scale", "'xhat2' is reserved"),
    (spec({**LN, "shift": "sigma1"}), "layers[1].shift", "'sigma1' is reserved"),
    (spec({**DROP, "mask": "var1"}), "layers[1].mask", "'var1' is reserved"),
    (spec(dense(3), top='target = "margins"'), "target", "'margins' is reserved"),
    (spec(dense(3, bias="margins")), "layers[1].bias", "'margins' is reserved"),
    # multiclass_hinge and its margin
    (spec(dense(3, activation="softmax"), loss=HINGE), "loss.kind",
     "multiclass_hinge scores the last layer's raw outputs: the last layer's activation must be identity, not softmax"),
    (spec(dense(3, activation="sigmoid"), loss=HINGE), "loss.kind", "activation must be identity, not sigmoid"),
    (spec(dense(3), {**BN, "activation": "relu"}, loss=HINGE), "loss.kind", "activation must be identity, not relu"),
    (spec(dense(1), loss=HINGE), "loss.kind", "multiclass_hinge needs at least 2 classes (the last layer has 1 unit)"),
    (spec(dense(1), loss={**HINGE, "labels": True}), "loss.kind", "at least 2 classes"),
    (spec(dense(3), DROP, loss=HINGE), "loss.kind",
     "multiclass_hinge scores the last layer's raw outputs: the last layer cannot be a dropout layer"),
    (spec(dense(3), DROP, loss={"kind": "cross_entropy"}), "loss.kind", "cross_entropy needs a softmax last layer, not a dropout layer"),
    (spec(dense(3), loss={"kind": "multiclass_hinj"}), "loss.kind", "did you mean 'multiclass_hinge'?"),
    (spec(dense(3), loss={"kind": "squared_error", "margin": 0.5}), "loss.margin", "applies to multiclass_hinge only"),
    (spec(dense(3, activation="softmax"), loss={"kind": "cross_entropy", "margin": 1.0}), "loss.margin",
     "applies to multiclass_hinge only"),
    (spec(dense(3), loss={**HINGE, "margin": "1"}), "loss.margin", "must be a number, not a string"),
    (spec(dense(3), loss={"kind": "squared_error", "labels": True}), "loss.labels",
     "integer labels apply to cross_entropy and multiclass_hinge only"),
    (spec(dense(3, activation="sigmoid"), loss={"kind": "binary_cross_entropy", "labels": True}), "loss.labels",
     "integer labels apply to cross_entropy and multiclass_hinge only"),
    # [values] of masks and hinge targets
    (spec(DROP, values="m1 = [[1.0, 0.5, 0.0]]"), "values.m1", "a dropout mask holds 0 (dropped) and 1 (kept) only"),
    (spec(DROP, values="m1 = [[1, 2, 0]]"), "values.m1", "0 (dropped) and 1 (kept) only"),
    (spec(DROP, top='layout = "column"', values="m1 = [1.0, -1.0, 0.0]"), "values.m1", "0 (dropped) and 1 (kept) only"),
    (spec(DROP, values="m1 = [1.0, 0.0, 1.0]"), "values.m1", "has shape (3,), expected (N, 3)"),
    (spec(dense(3), loss=HINGE, values="y = [[0.5, 0.5, 0.0]]"), "values.y",
     "multiclass_hinge targets are one-hot: a single 1 per sample, 0 elsewhere (or labels = true for integer labels)"),
    (spec(dense(3), loss=HINGE, values="y = [[1.0, 1.0, 0.0]]"), "values.y", "multiclass_hinge targets are one-hot"),
    (spec(dense(3), loss={**HINGE, "labels": True}, values="y = [0, 3]"), "values.y", "labels must be integers from 0 to 2"),
    (spec(dense(4, weight="W"), dense(3, weight="W", transpose_weight=True, bias=False), values="W = [[1.0, 2.0, 3.0]]"),
     "values.W", "has shape (1, 3), expected (3, 4)"),
]


@pytest.mark.parametrize("text, key, rule", BAD_KINDS, ids=[f"{i}-{k}" for i, (_, k, _) in enumerate(BAD_KINDS)])
def test_bad_layer_kind_residual_tied_weight_or_hinge_is_one_line_naming_key_and_rule(text, key, rule):
    with pytest.raises(SpecError) as error:
        symbolic.loads(text, source="bad.toml")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"bad.toml: {key}: ")
    assert rule in message
    assert (error.value.source, error.value.key) == ("bad.toml", key)


def test_transpose_hint_only_when_the_transpose_would_fit():
    for text in (spec(dense(4, weight="W"), dense(2, weight="W", transpose_weight=True)),
                 spec(dense(4, weight="W"), dense(4, weight="W"))):
        with pytest.raises(SpecError) as error:
            symbolic.loads(text)
        assert "transpose_weight" not in str(error.value)


EVERY_KIND = spec(
    dense(4, activation="relu"),  # 1: W1 (3, 4), b1
    BN,  # 2: gamma2, beta2
    {"kind": "dropout", "p": 0.25},  # 3: mask m3 (N, 4)
    dense(4, activation="tanh", residual=True),  # 4: W4 (4, 4), b4; adds a3
    {**LN, "scale": False, "eps": 1e-3},  # 5: beta5 only
    dense(3, weight="W1", transpose_weight=True),  # 6: W1 again, transposed; b6
    dense(3, residual=1, bias=False, weight="V"),  # 7: V (3, 3), no bias; adds a6
    loss={**HINGE, "labels": True},
)


def test_every_new_kind_parses_into_the_right_arrays():
    net = symbolic.loads(EVERY_KIND)
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["dense", "batchnorm", "dropout", "dense", "layernorm", "dense", "dense"]
    assert [layer.units for layer in net.layers] == [4, 4, 4, 4, 4, 3, 3]
    assert [layer.inputs for layer in net.layers] == [3, 4, 4, 4, 4, 4, 3]
    assert net.parameters == ("W1", "b1", "gamma2", "beta2", "W4", "b4", "beta5", "b6", "V")
    assert net.masks == ("m3",)
    assert net.weights == ("W1", "W4", "V")  # W1 once, though two layers use it
    assert net.differentiated == net.parameters  # masks are inputs, never differentiated
    assert net.shapes() == {
        "x": ("N", 3), "y": ("N",), "m3": ("N", 4),
        "W1": (3, 4), "b1": (4,), "gamma2": (4,), "beta2": (4,), "W4": (4, 4), "b4": (4,),
        "beta5": (4,), "b6": (3,), "V": (3, 3),
    }
    assert net.shapes(n=7)["m3"] == (7, 4)
    assert [layer.residual for layer in net.layers] == [0, 0, 0, 1, 0, 0, 1]
    assert [layer.transpose_weight for layer in net.layers] == [False] * 5 + [True, False]
    bn, drop, ln = net.layers[1], net.layers[2], net.layers[4]
    assert (bn.eps, bn.scale, bn.shift, bn.activation, bn.parameters) == (1e-5, "gamma2", "beta2", "identity",
                                                                           ("gamma2", "beta2"))
    assert (drop.p, drop.mask, drop.parameters) == (0.25, "m3", ())
    assert (ln.eps, ln.scale, ln.shift, ln.parameters) == (1e-3, None, "beta5", ("beta5",))
    assert (net.loss.kind, net.loss.margin, net.loss.labels, net.outputs) == ("multiclass_hinge", 1.0, True, 3)


def test_new_kinds_in_the_column_layout_and_with_a_fixed_batch():
    net = symbolic.loads(spec(LN, {**DROP, "mask": "keep"}, dense(3, residual=2), top='layout = "column"',
                              loss={**HINGE, "margin": 0.5}))
    assert net.shapes() == {"x": (3,), "y": (3,), "keep": (3,), "gamma1": (3,), "beta1": (3,), "W3": (3, 3),
                            "b3": (3,)}
    assert (net.layers[2].residual, net.masks, net.loss.margin) == (2, ("keep",), 0.5)
    assert net.parameters == ("gamma1", "beta1", "W3", "b3")
    net = symbolic.loads(spec(dense(2), DROP, BN, top="batch = 5", loss={**HINGE, "labels": True}))
    assert net.shapes() == {"x": (5, 3), "y": (5,), "m2": (5, 2), "W1": (3, 2), "b1": (2,), "gamma3": (2,),
                            "beta3": (2,)}


def test_scale_and_shift_false_remove_them_and_names_can_be_set():
    net = symbolic.loads(spec({**BN, "scale": False, "shift": False}, {**LN, "scale": "g", "shift": False},
                              {**LN, "scale": False, "shift": "b"}))
    assert [layer.parameters for layer in net.layers] == [(), ("g",), ("b",)]
    assert net.parameters == ("g", "b") and net.weights == ()
    assert net.shapes() == {"x": ("N", 3), "y": ("N", 3), "g": (3,), "b": (3,)}


def test_residual_true_is_one_and_false_is_none():
    net = symbolic.loads(spec(dense(3, residual=True), dense(3, residual=False), dense(3, residual=2),
                              dense(3, residual=4)))
    assert [layer.residual for layer in net.layers] == [1, 0, 2, 4]  # k = 4 on layer 4: the input


def test_tied_weights_are_one_array():
    net = symbolic.loads(spec(dense(3, weight="W"), dense(3, weight="W"), loss={"kind": "squared_error", "l2": 0.1}))
    assert (net.parameters, net.weights) == (("W", "b1", "b2"), ("W",))
    assert net.shapes()["W"] == (3, 3)
    net = symbolic.loads(spec(dense(5, weight="E"), dense(3, weight="E", transpose_weight=True), top='layout = "column"'))
    assert (net.parameters, net.shapes()["E"]) == (("E", "b1", "b2"), (5, 3))


def test_a_lone_transposed_weight_has_the_transposed_shape():
    net = symbolic.loads(spec(dense(4, transpose_weight=True)))
    assert net.shapes()["W1"] == (4, 3)


def test_values_of_masks_and_hinge_targets():
    net = symbolic.loads(spec(dense(3), DROP, dense(3), loss=HINGE,
                              values="m2 = [[1, 0, 1], [0, 0, 1]]\ny = [[0, 0, 1], [1, 0, 0]]"))
    np.testing.assert_array_equal(net.values["m2"], [[1, 0, 1], [0, 0, 1]])
    net = symbolic.loads(spec(dense(3), loss={**HINGE, "labels": True, "margin": 2}, values="y = [2, 0]"))
    assert net.values["y"].dtype == np.int64 and net.loss.margin == 2.0


# ---------------------------------------------------------------------------------------------
# Images: inputs = [C, H, W], conv2d, the pools, flatten, and the normalizations after a conv (1a)


def conv(filters=2, kernel=3, **keys):
    return {"kind": "conv2d", "filters": filters, "kernel": kernel, **keys}


def maxpool(size=2, **keys):
    return {"kind": "maxpool2d", "size": size, **keys}


def avgpool(size=2, **keys):
    return {"kind": "avgpool2d", "size": size, **keys}


FLAT = {"kind": "flatten"}
IMAGE = [1, 4, 4]  # one channel, 4 x 4
SIX = [1, 6, 6]


def image(*layers, inputs=IMAGE, **keys):
    """A spec on images; `layers` end with a flatten and a dense layer of 2 units unless given."""
    return spec(*layers, inputs=inputs, **keys)


BAD_IMAGES = [
    # (spec text, key named in the message, words of the rule)
    # windows larger than their (padded) input
    (image(conv(kernel=5), FLAT, dense(2)), "layers[1].kernel",
     "the kernel 5x5 is larger than its input 4x4 (H x W 4x4 with padding 0, 0)"),
    (image(conv(kernel=[2, 7], padding=[0, 1]), FLAT, dense(2)), "layers[1].kernel",
     "the kernel 2x7 is larger than its input 4x6 (H x W 4x4 with padding 0, 1)"),
    (image(conv(kernel=[6, 1], padding=[0, 3]), FLAT, dense(2)), "layers[1].kernel", "the kernel 6x1 is larger"),
    (image(maxpool(size=5), FLAT, dense(2)), "layers[1].size", "the window 5x5 is larger than its input 4x4"),
    (image(maxpool(size=[1, 5], stride=1), FLAT, dense(2)), "layers[1].size", "the window 1x5 is larger than its input 4x4"),
    (image(conv(), avgpool(size=3), FLAT, dense(2)), "layers[2].size", "the window 3x3 is larger than its input 2x2"),
    # inputs = [C, H, W]
    (image(conv(), FLAT, dense(2), top='layout = "column"'), "inputs",
     "images need the row layout (x of shape (N, C, H, W)); the column layout is one flat sample"),
    (image(FLAT, dense(2), top='layout = "column"'), "inputs", "images need the row layout"),
    (spec(dense(2), inputs=[3, 4, 5, 6, 7]), "inputs",
     "must be a width, tokens' [steps], a sequence's [steps, features] or an image's [channels, height, width] "
     "(one, two or three whole numbers >= 1), not [3, 4, 5, 6, 7]"),
    (spec(dense(2), inputs=[1, 3, 4, 4]), "inputs", "three whole numbers >= 1), not [1, 3, 4, 4]"),
    (spec(dense(2), inputs=[]), "inputs", "three whole numbers >= 1), not []"),
    (image(FLAT, dense(2), inputs=[1, 4.0, 4]), "inputs", "three whole numbers >= 1), not [1, 4.0, 4]"),
    (image(FLAT, dense(2), inputs=[1, "4", 4]), "inputs", "three whole numbers >= 1), not [1, '4', 4]"),
    (image(FLAT, dense(2), inputs=[1, True, 4]), "inputs", "three whole numbers >= 1), not [1, True, 4]"),
    (image(FLAT, dense(2), inputs=[0, 4, 4]), "inputs", "three whole numbers >= 1), not [0, 4, 4]"),
    (image(FLAT, dense(2), inputs=[1, 4, -4]), "inputs", "three whole numbers >= 1), not [1, 4, -4]"),
    # rows where images are needed, images where rows are
    (image(dense(2)), "layers[1].kind",
     "a dense layer takes rows, but the input is an image (1, 4, 4) per sample: put a flatten layer before it"),
    (image(conv(), dense(2)), "layers[2].kind",
     "a dense layer takes rows, but layer 1's output is an image (2, 2, 2) per sample: put a flatten layer"),
    (image(conv(), maxpool(), BN, dense(2)), "layers[4].kind", "layer 3's output is an image (2, 1, 1) per sample"),
    (spec(conv(), dense(2)), "layers[1].kind",
     "conv2d takes images (N, C, H, W), but the input is rows of 3 features; images need inputs = [C, H, W]"),
    (spec(maxpool(), dense(2)), "layers[1].kind", "maxpool2d takes images (N, C, H, W), but the input is rows of 3"),
    (spec(avgpool(), dense(2)), "layers[1].kind", "avgpool2d takes images (N, C, H, W)"),
    (spec(FLAT, dense(2)), "layers[1].kind", "flatten takes images (N, C, H, W), but the input is rows of 3 features"),
    (spec(dense(4), maxpool(), dense(2)), "layers[2].kind",
     "maxpool2d takes images (N, C, H, W), but layer 1's output is rows of 4 features"),
    (image(FLAT, FLAT, dense(2)), "layers[2].kind", "flatten takes images (N, C, H, W), but layer 1's output is rows of 16"),
    (image(FLAT, conv(), dense(2)), "layers[2].kind", "conv2d takes images"),
    # the last layer's output is an image
    (image(conv()), "layers[1].kind",
     "the network's output is an image (2, 2, 2) per sample; the loss takes rows: end with a flatten layer"),
    (image(conv(), maxpool()), "layers[2].kind", "the network's output is an image (2, 1, 1) per sample"),
    (image(conv(), BN), "layers[2].kind", "the network's output is an image (2, 2, 2) per sample"),
    (image(conv(), DROP), "layers[2].kind", "the network's output is an image"),
    (image(maxpool(size=1)), "layers[1].kind", "the network's output is an image (1, 4, 4) per sample"),
    # [values] of the wrong shape
    (image(conv(), FLAT, dense(2), values="W3 = [[1.0, 2.0]]"), "values.W3", "has shape (1, 2), expected (8, 2)"),
    (image(conv(), maxpool(), FLAT, dense(3), values="W4 = [[1.0, 2.0, 3.0]]"), "values.W4",
     "has shape (1, 3), expected (2, 3)"),
    (image(conv(), FLAT, dense(2), values="W3 = [[[1.0, 2.0]]]"), "values.W3", "has shape (1, 1, 2), expected (8, 2)"),
    (image(conv(), FLAT, dense(2), values="W1 = [[1.0]]"), "values.W1", "has shape (1, 1), expected (2, 1, 3, 3)"),
    (image(conv(), FLAT, dense(2), values="b1 = [1.0, 2.0, 3.0]"), "values.b1", "has shape (3,), expected (2,)"),
    (image(conv(), FLAT, dense(2), values="x = [[1.0]]"), "values.x", "has shape (1, 1), expected (N, 1, 4, 4)"),
    (image(conv(), BN, FLAT, dense(2), values="gamma2 = [1.0, 2.0, 3.0]"), "values.gamma2",
     "has shape (3,), expected (2,)"),
    (image(conv(), LN, FLAT, dense(2), values="beta2 = [1.0, 2.0]"), "values.beta2", "has shape (2,), expected (2, 2, 2)"),
    (image(conv(), DROP, FLAT, dense(2), values="m2 = [[1.0, 0.0]]"), "values.m2", "has shape (1, 2), expected (N, 2, 2, 2)"),
    # filters, kernel, stride, padding and size values
    (image(conv(filters=0), FLAT, dense(2)), "layers[1].filters", "must be at least 1, not 0"),
    (image(conv(filters=-2), FLAT, dense(2)), "layers[1].filters", "must be at least 1, not -2"),
    (image(conv(filters=True), FLAT, dense(2)), "layers[1].filters", "must be an integer, not a boolean"),
    (image(conv(filters=2.0), FLAT, dense(2)), "layers[1].filters", "must be an integer, not a number"),
    (image(conv(filters=[1, 2, 3]), FLAT, dense(2)), "layers[1].filters", "must be an integer, not an array"),
    (image(conv(filters="2"), FLAT, dense(2)), "layers[1].filters", "must be an integer, not a string"),
    (image({"kind": "conv2d", "kernel": 3}, FLAT, dense(2)), "layers[1].filters", "required key is missing"),
    (image({"kind": "conv2d", "filters": 2}, FLAT, dense(2)), "layers[1].kernel", "required key is missing"),
    (image(conv(kernel=0), FLAT, dense(2)), "layers[1].kernel", "must be at least 1, not 0"),
    (image(conv(kernel=-1), FLAT, dense(2)), "layers[1].kernel", "must be at least 1, not -1"),
    (image(conv(kernel=[2, 0]), FLAT, dense(2)), "layers[1].kernel", "must be at least 1, not [2, 0]"),
    (image(conv(kernel=True), FLAT, dense(2)), "layers[1].kernel", "must be a whole number or a pair [height, width], not True"),
    (image(conv(kernel=1.5), FLAT, dense(2)), "layers[1].kernel", "must be a whole number or a pair [height, width], not 1.5"),
    (image(conv(kernel=[1, 2, 3]), FLAT, dense(2)), "layers[1].kernel", "a pair [height, width], not [1, 2, 3]"),
    (image(conv(kernel=[2]), FLAT, dense(2)), "layers[1].kernel", "a pair [height, width], not [2]"),
    (image(conv(kernel=[2, 1.0]), FLAT, dense(2)), "layers[1].kernel", "a pair [height, width], not [2, 1.0]"),
    (image(conv(kernel=[2, True]), FLAT, dense(2)), "layers[1].kernel", "a pair [height, width], not [2, True]"),
    (image(conv(kernel="3"), FLAT, dense(2)), "layers[1].kernel", "a pair [height, width], not '3'"),
    (image(conv(stride=0), FLAT, dense(2)), "layers[1].stride", "must be at least 1, not 0"),
    (image(conv(stride=-2), FLAT, dense(2)), "layers[1].stride", "must be at least 1, not -2"),
    (image(conv(stride=[1, 0]), FLAT, dense(2)), "layers[1].stride", "must be at least 1, not [1, 0]"),
    (image(conv(stride=False), FLAT, dense(2)), "layers[1].stride", "a pair [height, width], not False"),
    (image(conv(stride=2.0), FLAT, dense(2)), "layers[1].stride", "a pair [height, width], not 2.0"),
    (image(conv(stride=[1, 1, 1]), FLAT, dense(2)), "layers[1].stride", "a pair [height, width], not [1, 1, 1]"),
    (image(conv(padding=-1), FLAT, dense(2)), "layers[1].padding", "must be at least 0, not -1"),
    (image(conv(padding=[1, -1]), FLAT, dense(2)), "layers[1].padding", "must be at least 0, not [1, -1]"),
    (image(conv(padding=True), FLAT, dense(2)), "layers[1].padding", "a pair [height, width], not True"),
    (image(conv(padding=0.5), FLAT, dense(2)), "layers[1].padding", "a pair [height, width], not 0.5"),
    (image(conv(padding=[0, 0, 0]), FLAT, dense(2)), "layers[1].padding", "a pair [height, width], not [0, 0, 0]"),
    (image(conv(padding="same"), FLAT, dense(2)), "layers[1].padding", "a pair [height, width], not 'same'"),
    (image({"kind": "maxpool2d"}, FLAT, dense(2)), "layers[1].size", "required key is missing"),
    (image(maxpool(size=0), FLAT, dense(2)), "layers[1].size", "must be at least 1, not 0"),
    (image(avgpool(size=-2), FLAT, dense(2)), "layers[1].size", "must be at least 1, not -2"),
    (image(maxpool(size=True), FLAT, dense(2)), "layers[1].size", "a pair [height, width], not True"),
    (image(avgpool(size=2.0), FLAT, dense(2)), "layers[1].size", "a pair [height, width], not 2.0"),
    (image(maxpool(size=[2, 2, 2]), FLAT, dense(2)), "layers[1].size", "a pair [height, width], not [2, 2, 2]"),
    (image(maxpool(stride=0), FLAT, dense(2)), "layers[1].stride", "must be at least 1, not 0"),
    (image(avgpool(stride=-1), FLAT, dense(2)), "layers[1].stride", "must be at least 1, not -1"),
    (image(maxpool(stride=True), FLAT, dense(2)), "layers[1].stride", "a pair [height, width], not True"),
    (image(maxpool(stride=[1, 2, 1]), FLAT, dense(2)), "layers[1].stride", "a pair [height, width], not [1, 2, 1]"),
    # keys of the other kinds
    (image(conv(units=3), FLAT, dense(2)), "layers[1].units", "unknown key for a conv2d layer (it applies to dense"),
    (image(conv(size=3), FLAT, dense(2)), "layers[1].size",
     "unknown key for a conv2d layer (it applies to maxpool2d, avgpool2d)"),
    (image(maxpool(kernel=2), FLAT, dense(2)), "layers[1].kernel", "unknown key for a maxpool2d layer (it applies to conv2d)"),
    (image(maxpool(padding=1), FLAT, dense(2)), "layers[1].padding", "unknown key for a maxpool2d layer (it applies to conv2d)"),
    (image(avgpool(filters=1), FLAT, dense(2)), "layers[1].filters", "avgpool2d layer (it applies to conv2d)"),
    (image(maxpool(activation="relu"), FLAT, dense(2)), "layers[1].activation",
     "unknown key for a maxpool2d layer (it applies to dense, batchnorm, layernorm, conv2d"),
    (image({"kind": "flatten", "units": 16}, dense(2)), "layers[1].units", "unknown key for a flatten layer (it applies to dense"),
    (image({"kind": "flatten", "activation": "relu"}, dense(2)), "layers[1].activation", "unknown key for a flatten layer"),
    (image(conv(residual=True), FLAT, dense(2)), "layers[1].residual", "unknown key for a conv2d layer (it applies to dense"),
    (image(conv(shared_bias=True), FLAT, dense(2)), "layers[1].shared_bias", "unknown key for a conv2d layer"),
    (image(conv(transpose_weight=True), FLAT, dense(2)), "layers[1].transpose_weight", "unknown key for a conv2d layer"),
    (image(conv(p=0.5), FLAT, dense(2)), "layers[1].p", "unknown key for a conv2d layer (it applies to dropout)"),
    (image({"kind": "conv2d", "filters": 2, "kernal": 3}, FLAT, dense(2)), "layers[1].kernal",
     "unknown key; did you mean 'kernel'?"),
    (image(dense(2, kernel=3)), "layers[1].kernel", "unknown key for a dense layer (it applies to conv2d)"),
    (image({"kind": "conv", "filters": 2}, FLAT, dense(2)), "layers[1].kind", "did you mean 'conv2d'?"),
    (image({"kind": "maxpool", "size": 2}, FLAT, dense(2)), "layers[1].kind", "did you mean 'maxpool2d'?"),
    # activations
    (image(conv(activation="softmax"), FLAT, dense(2)), "layers[1].activation", "softmax is allowed on the last layer only"),
    (image(conv(activation="softmax")), "layers[1].activation", "softmax is over the features of a row, not an image"),
    (image(conv(), {**BN, "activation": "softmax"}), "layers[2].activation",
     "softmax is over the features of a row, not an image"),
    (image(conv(activation="relu", negative_slope=0.1), FLAT, dense(2)), "layers[1].negative_slope",
     "applies to leaky_relu only"),
    (image(conv(activation="gelu"), FLAT, dense(2)), "layers[1].activation", "must be one of identity, sigmoid"),
    # tied and clashing names
    (image(conv(weight="K", padding=1), conv(filters=3, weight="K", padding=1), FLAT, dense(2)), "layers[2].weight",
     "'K' is the weight of layers[1] with shape (2, 1, 3, 3); here it needs shape (3, 2, 3, 3)"),
    (image(conv(weight="K", padding=1), conv(kernel=2, weight="K"), FLAT, dense(2), inputs=[2, 4, 4]),
     "layers[2].weight", "'K' is the weight of layers[1] with shape (2, 2, 3, 3); here it needs shape (2, 2, 2, 2)"),
    (image(conv(weight="K"), FLAT, dense(2, weight="K")), "layers[3].weight",
     "'K' is the weight of layers[1] with shape (2, 1, 3, 3); here it needs shape (8, 2)"),
    (image(conv(bias="W1"), FLAT, dense(2)), "layers[1].bias", "'W1' is already the name of layers[1].weight"),
    (image(conv(weight="x"), FLAT, dense(2)), "layers[1].weight", "'x' is already the name of input"),
    (image(conv(weight="z1"), FLAT, dense(2)), "layers[1].weight", "'z1' is reserved"),
    (image(conv(bias=0), FLAT, dense(2)), "layers[1].bias", "must be a name or false, not an integer"),
    # normalizations after a convolution
    # (a channel of one pixel: BatchNorm2d over a batch of 1 sees one value per channel; over larger
    # images a batch of 1 still has H * W values per channel, which PyTorch accepts)
    (image(conv(kernel=4), BN, FLAT, dense(2), top="batch = 1"), "layers[2].kind",
     "batchnorm over a batch of 1 gives 0 (each channel's only pixel is its mean) and no gradient before it: "
     "batch must be at least 2"),
    (image(conv(filters=1, kernel=4), LN, FLAT, dense(2)), "layers[2].kind", "layernorm over one feature always gives 0"),
    (image(conv(), {**BN, "eps": 0}, FLAT, dense(2)), "layers[2].eps", "must be a number > 0, not 0"),
    (image(conv(), {"kind": "dropout", "p": 1.0}, FLAT, dense(2)), "layers[2].p", "must be at least 0 and less than 1"),
    (image(conv(), DROP, FLAT, dense(2), values="m2 = [[[[1, 0], [2, 1]], [[1, 1], [1, 1]]]]"), "values.m2",
     "a dropout mask holds 0 (dropped) and 1 (kept) only"),
    # losses on a network of images
    (image(conv(), FLAT, dense(2, activation="sigmoid"), loss={"kind": "cross_entropy"}), "loss.kind",
     "cross_entropy needs a softmax last layer, not sigmoid"),
    (image(conv(), FLAT, dense(1, activation="softmax"), loss={"kind": "cross_entropy"}), "layers[3].units",
     "a softmax over one class is always 1"),
    (image(conv(), FLAT, dense(3), loss={"kind": "cross_entropy", "labels": True}, values="y = [0, 3]"),
     "loss.kind", "cross_entropy needs a softmax last layer"),
    (image(conv(), FLAT, dense(3, activation="softmax"), loss={"kind": "cross_entropy", "labels": True},
           values="y = [0, 3]"), "values.y", "labels must be integers from 0 to 2"),
]


@pytest.mark.parametrize("text, key, rule", BAD_IMAGES, ids=[f"{i}-{k}" for i, (_, k, _) in enumerate(BAD_IMAGES)])
def test_bad_image_spec_is_one_line_naming_key_and_rule(text, key, rule):
    test_bad_layer_kind_residual_tied_weight_or_hinge_is_one_line_naming_key_and_rule(text, key, rule)


def out(size, kernel, stride=1, padding=0):
    """PyTorch's output size of a convolution or pooling window: floor((H + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


CNN = spec(
    conv(4, [3, 2], stride=[2, 1], padding=[1, 2], activation="relu"),  # 1: W1 (4, 3, 3, 2), b1 (4,)
    maxpool(3, stride=[2, 1]),  # 2: overlapping windows (stride < size)
    {**BN, "activation": "leaky_relu", "negative_slope": 0.2},  # 3: gamma3, beta3 per channel (4,)
    {**LN, "eps": 1e-3},  # 4: gamma4, beta4 over (C, H, W)
    {"kind": "dropout", "p": 0.25},  # 5: mask m5 (N, C, H, W)
    FLAT,  # 6
    dense(5, activation="softmax"),  # 7: W7 (C*H*W, 5), b7
    inputs=[3, 11, 9], loss={"kind": "cross_entropy", "labels": True})


def test_cnn_shapes_follow_the_pytorch_output_size_formula():
    net = symbolic.loads(CNN)
    c, h, w = 3, 11, 9
    h1, w1 = out(h, 3, 2, 1), out(w, 2, 1, 2)  # the convolution
    h2, w2 = out(h1, 3, 2), out(w1, 3, 1)  # the max-pool
    assert (h1, w1, h2, w2) == (6, 12, 2, 10)
    features = 4 * h2 * w2
    assert net.shapes() == {
        "x": ("N", c, h, w), "y": ("N",), "m5": ("N", 4, h2, w2),
        "W1": (4, c, 3, 2), "b1": (4,),
        "gamma3": (4,), "beta3": (4,),  # batchnorm: one per channel
        "gamma4": (4, h2, w2), "beta4": (4, h2, w2),  # layernorm: the normalized shape (C, H, W)
        "W7": (features, 5), "b7": (5,),
    }
    assert net.shapes(n=7)["x"] == (7, c, h, w) and net.shapes(n=7)["m5"] == (7, 4, h2, w2)
    assert [layer.shape for layer in net.layers] == [(4, h1, w1), (4, h2, w2), (4, h2, w2), (4, h2, w2),
                                                     (4, h2, w2), (features,), (5,)]
    assert [layer.input_shape for layer in net.layers] == [(c, h, w), (4, h1, w1), (4, h2, w2), (4, h2, w2),
                                                           (4, h2, w2), (4, h2, w2), (features,)]
    assert [layer.units for layer in net.layers] == [4 * h1 * w1] + [features] * 5 + [5]
    assert [layer.image for layer in net.layers] == [True] * 5 + [False] * 2
    conv1, pool = net.layers[0], net.layers[1]
    assert (conv1.filters, conv1.kernel, conv1.stride, conv1.padding) == (4, (3, 2), (2, 1), (1, 2))
    assert (conv1.fan_in, conv1.weight_shape("row")) == (c * 3 * 2, (4, c, 3, 2))
    assert (pool.kernel, pool.stride, pool.parameters) == ((3, 3), (2, 1), ())
    assert (net.input_shape, net.outputs) == ((c, h, w), 5)


def test_cnn_parameters_and_roles():
    net = symbolic.loads(CNN)
    assert [layer.kind for layer in net.layers] == ["conv2d", "maxpool2d", "batchnorm", "layernorm", "dropout",
                                                    "flatten", "dense"]
    assert net.parameters == ("W1", "b1", "gamma3", "beta3", "gamma4", "beta4", "W7", "b7")
    assert net.weights == ("W1", "W7")
    assert net.masks == ("m5",)
    assert net.differentiated == net.parameters
    assert net.roles() == {"x": "input", "y": "target", "W1": "weight", "b1": "bias", "gamma3": "scale",
                           "beta3": "shift", "gamma4": "scale", "beta4": "shift", "m5": "dropout mask",
                           "W7": "weight", "b7": "bias"}
    assert net.using("W1") == (1,) and net.using("m5") == (5,) and net.using("gamma4") == (4,)
    assert (net.layers[2].activation, net.layers[2].negative_slope, net.layers[3].eps) == ("leaky_relu", 0.2, 1e-3)


def test_cnn_defaults_and_a_fixed_batch():
    net = symbolic.loads(image(conv(3, 2), avgpool(2), FLAT, dense(2), inputs=[2, 5, 5], top="batch = 4"))
    conv1, pool = net.layers[0], net.layers[1]
    assert (conv1.stride, conv1.padding, conv1.activation, conv1.weight, conv1.bias) == ((1, 1), (0, 0), "identity",
                                                                                          "W1", "b1")
    assert (pool.kernel, pool.stride) == ((2, 2), (2, 2))  # the stride defaults to the size
    assert pool.shape == (3, out(out(5, 2), 2, 2), out(out(5, 2), 2, 2)) == (3, 2, 2)
    assert net.shapes() == {"x": (4, 2, 5, 5), "y": (4, 2), "W1": (3, 2, 2, 2), "b1": (3,), "W4": (12, 2), "b4": (2,)}


def test_windows_exactly_as_large_as_their_input_and_named_or_absent_conv_parameters():
    net = symbolic.loads(image(conv(2, 6, padding=1, weight="K", bias=False), maxpool([1, 1]),
                               conv(3, [1, 1], weight="K2", bias="c"), FLAT, dense(2)))
    assert [layer.shape for layer in net.layers[:3]] == [(2, 1, 1), (2, 1, 1), (3, 1, 1)]
    assert net.parameters == ("K", "K2", "c", "W5", "b5")
    assert net.shapes()["K"] == (2, 1, 6, 6) and net.shapes()["c"] == (3,)
    net = symbolic.loads(image(maxpool(4), FLAT, dense(2)))  # the whole image in one window
    assert net.layers[0].shape == (1, 1, 1) and net.shapes()["W3"] == (1, 2)


def test_a_conv_weight_tied_across_layers_of_the_same_shape_is_one_array():
    net = symbolic.loads(image(conv(2, 3, weight="K", padding=1), conv(2, 3, weight="K", padding=1), FLAT, dense(2),
                               inputs=[2, 4, 4], loss={"kind": "squared_error", "l2": 0.1}))
    assert net.parameters == ("K", "b1", "b2", "W4", "b4") and net.weights == ("K", "W4")
    assert net.shapes()["K"] == (2, 2, 3, 3) and net.using("K") == (1, 2)


def test_image_values_load_with_their_shapes():
    x = [[[[float(4 * i + j) for j in range(4)] for i in range(4)]]]
    net = symbolic.loads(image(conv(), DROP, FLAT, dense(2),
                               values=f"x = {x}\nm2 = [[[[1, 0], [0, 1]], [[1, 1], [0, 0]]]]\nb1 = [0.5, -0.5]"))
    assert net.values["x"].shape == (1, 1, 4, 4) and net.values["m2"].shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(net.values["b1"], [0.5, -0.5])
