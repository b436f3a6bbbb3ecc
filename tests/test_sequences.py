"""Sequences: the rnn kind, a loop over time in the program (`symbolic.scan`).

For every spec of the table: the generated module equals PyTorch float64 (`nn.RNN`), the
matrix-level formulas (the reverse loop) equal the element-level oracle (the loop unrolled and
written out entry by entry), and the generated code is one forward and one reverse loop per
layer, the same length whatever the number of steps. cs231n's published `rnn_step_forward` value
is reproduced from a spec.
"""

import importlib.util
import re

import numpy as np
import pytest
from exact import assert_oracle_agrees, normwise_error

import symprop
from symprop.check import random_values
from symprop.codegen.files import compile_module

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="PyTorch is not installed: the reference needs it")


def spec(name, inputs, *layers, loss='kind = "squared_error"', top=""):
    text = f'name = "{name}"\ninputs = {inputs}\n{top}\n'
    for layer in layers:
        text += "[[layers]]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"').replace("True", "true")
                                         .replace("False", "false") for k, v in layer.items())
    return symprop.loads(text + "[loss]\n" + loss + "\n", source=f"{name}.toml")


def rnn(units, **keys):
    return {"kind": "rnn", "units": units, **keys}


def dense(units, **keys):
    return {"units": units, **keys}


CLASSIFY = 'kind = "cross_entropy"\nlabels = true'
SPECS = {
    "last_tanh_classifier": lambda: spec("r1", [3, 2], rnn(4, output="last"), dense(3, activation="softmax"),
                                          loss=CLASSIFY),
    "sequence_squared_error": lambda: spec("r2", [4, 3], rnn(2)),
    "initial_state_and_input": lambda: spec("r3", [3, 2], rnn(3, initial="h0"), top="wrt_input = true"),
    "relu_no_bias_sum": lambda: spec("r4", [2, 3], rnn(3, activation="relu", bias=False),
                                     loss='kind = "squared_error"\nreduction = "sum"'),
    "two_layers_last": lambda: spec("r5", [3, 2], rnn(3, initial="h0"), rnn(2, output="last", weight="U"),
                                    dense(2, activation="sigmoid"), loss='kind = "binary_cross_entropy"',
                                    top="wrt_input = true"),
    "one_step": lambda: spec("r6", [1, 2], rnn(2, output="last", initial="s")),
    "names_l2": lambda: spec("r7", [3, 2], rnn(3, weight="Wxh", recurrent="Whh", bias="bh", output="last"),
                             dense(2), loss='kind = "squared_error"\nl2 = 0.01'),
}


@needs_torch
@pytest.mark.parametrize("make", SPECS.values(), ids=SPECS)
@pytest.mark.parametrize("seed", [0, 1])
def test_generated_rnn_equals_pytorch(make, seed):
    from symprop.reference import torch_loss_and_gradients
    net = make()
    values = random_values(net, seed=seed, batch=3)
    loss, grads = compile_module(net).loss_and_gradients(**values)
    expected_loss, expected = torch_loss_and_gradients(net, values)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert sorted(grads) == sorted(net.differentiated)
    for name in net.differentiated:
        assert grads[name].shape == np.shape(values[name])
        assert normwise_error(grads[name], expected[name], expected_loss) <= 1e-10, name


@pytest.mark.parametrize("make", [SPECS[k] for k in ("sequence_squared_error", "initial_state_and_input",
                                                     "relu_no_bias_sum", "one_step")],
                         ids=["sequence_squared_error", "initial_state_and_input", "relu_no_bias_sum", "one_step"])
def test_reverse_loop_equals_the_element_level_oracle(make):
    # the oracle unrolls the loop and differentiates the written-out loss: nothing shared with the
    # derived reverse loop but the step's forward operations
    assert assert_oracle_agrees(make(), batch=2) > 0


def test_a_classifier_reverse_loop_equals_the_oracle_sampled():
    assert assert_oracle_agrees(SPECS["last_tanh_classifier"](), batch=2, sample=6) > 0


def test_cs231n_rnn_step_forward_published_value():
    # cs231n assignment 3, RNN_Captioning: rnn_step_forward on these linspaces gives next_h
    net = spec("step", [1, 10], rnn(4, initial="prev_h", output="last"))
    x = np.linspace(-0.4, 0.7, num=30).reshape(3, 1, 10)
    values = {"x": x, "prev_h": np.linspace(-0.2, 0.5, num=12).reshape(3, 4),
              "Wx1": np.linspace(-0.1, 0.9, num=40).reshape(10, 4), "Wh1": np.linspace(-0.3, 0.7, num=16).reshape(4, 4),
              "b1": np.linspace(-0.2, 0.4, num=4)}
    next_h = compile_module(net).forward(**values)
    expected = np.asarray([[-0.58172089, -0.50182032, -0.41232771, -0.31410098],
                           [0.66854692, 0.79562378, 0.87755553, 0.92795967],
                           [0.97934501, 0.99144213, 0.99646691, 0.99854353]])
    assert np.max(np.abs(next_h - expected)) < 1e-8  # published to 8 decimals


def test_the_generated_code_is_one_loop_each_way_whatever_the_length():
    sources, derivations = {}, {}
    for steps in (3, 40):
        net = spec("loop", [steps, 2], rnn(3, initial="h0"), rnn(2, output="last"), dense(2))
        sources[steps] = symprop.generate(net)
        derivations[steps] = symprop.derive(net).text()
    gradients = sources[3].split("def gradients(")[1].split("\ndef ")[0]
    assert len(re.findall(r"for t in reversed\(range\(3\)\):", gradients)) == 2  # one per layer
    assert len(re.findall(r"for t in range\(3\):", gradients)) == 2
    assert len(re.findall(r"^ *for ", gradients, flags=re.M)) == 4  # no other loop
    assert len(sources[3].splitlines()) == len(sources[40].splitlines())
    assert len(derivations[3].splitlines()) == len(derivations[40].splitlines())


BAD = [
    (lambda: spec("b", 3, dense(2), rnn(2)), "layers[2].kind", "rnn takes sequences (N, T, D), but layer 1's "
     "output is rows of 2 features"),
    (lambda: spec("b", [2, 4, 4], rnn(2)), "layers[1].kind", "rnn takes sequences (N, T, D), but the input is an "
     "image (2, 4, 4) per sample"),
    (lambda: spec("b", [3, 2], rnn(0)), "layers[1].units", "must be at least 1, not 0"),
    (lambda: spec("b", [3, 2], rnn(2, output="all")), "layers[1].output", "must be one of sequence, last, not 'all'"),
    (lambda: spec("b", [3, 2], rnn(2, activation="sigmoid")), "layers[1].activation",
     "must be one of tanh, relu, not 'sigmoid'"),
    (lambda: spec("b", [3, 2], rnn(2, initial=3)), "layers[1].initial", "must be a name or false"),
    (lambda: spec("b", [3, 2], rnn(2, initial="Wx1")), "layers[1].initial", "'Wx1' is already the name of"),
    (lambda: spec("b", [3, 2], rnn(2, kernel=3)), "layers[1].kernel", "unknown key for an rnn layer"),
    (lambda: spec("b", [3, 2], rnn(2), top='layout = "column"'), "inputs", "sequences need the row layout"),
]


@pytest.mark.parametrize("make, key, rule", BAD, ids=[f"{i}-{k}" for i, (_, k, _) in enumerate(BAD)])
def test_a_bad_sequence_spec_is_one_line_naming_key_and_rule(make, key, rule):
    with pytest.raises(symprop.SpecError) as error:
        make()
    message = str(error.value)
    assert "\n" not in message and f": {key}: " in message and rule in message, message
