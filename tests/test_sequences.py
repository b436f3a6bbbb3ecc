"""Sequences: the rnn kind, a loop over time in the program (`symbolic.scan`).

For every spec of the table: the generated module equals PyTorch float64 (`nn.RNN`), the
matrix-level formulas (the reverse loop) equal the element-level oracle (the loop unrolled and
written out entry by entry), and the generated code is one forward and one reverse loop per
layer, the same length whatever the number of steps. cs231n's published `rnn_step_forward` value
is reproduced from a spec.
"""

import importlib.util
import shutil
import subprocess
import re

import numpy as np
import pytest
from exact import assert_oracle_agrees, assert_random_spec_equals_pytorch, normwise_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from networks import sequences

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


def lstm(units, **keys):
    return {"kind": "lstm", "units": units, **keys}


def embedding(vocab, units, **keys):
    return {"kind": "embedding", "vocab": vocab, "units": units, **keys}


def attention(**keys):
    return {"kind": "attention", **keys}


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
    "lstm_last_classifier": lambda: spec("l1", [4, 3], lstm(3, output="last"), dense(2, activation="softmax"),
                                         loss=CLASSIFY),
    "lstm_sequence_initial_input": lambda: spec("l2", [3, 2], lstm(2, initial="h0"), top="wrt_input = true"),
    "lstm_on_rnn_no_bias": lambda: spec("l3", [2, 3], rnn(4), lstm(2, bias=False, output="last"),
                                        dense(1, activation="sigmoid"), loss='kind = "binary_cross_entropy"'),
    "lstm_one_unit_one_step": lambda: spec("l4", [1, 1], lstm(1, initial="s")),
    "lstm_two_steps": lambda: spec("l5", [2, 1], lstm(1, initial="h0"), top="wrt_input = true"),
    # tokens, an embedding, a dense layer at every step, losses over the steps (cs231n's captioning)
    "rnn_language_model_masked": lambda: spec("m1", [5], embedding(7, 4), rnn(3, initial="h0"),
                                              dense(7, activation="softmax"), loss=CLASSIFY + '\nmask = "keep"'),
    "lstm_language_model_one_hot_sum": lambda: spec("m2", [4], embedding(5, 3, weight="E"), lstm(2),
                                                    dense(5, activation="softmax"),
                                                    loss='kind = "cross_entropy"\nreduction = "sum"'),
    "dense_at_every_step_squared_masked": lambda: spec("m3", [3, 2], dense(3, activation="relu"),
                                                       dense(3, residual=True), rnn(2), dense(2),
                                                       loss='kind = "squared_error"\nmask = "m"'),
    # found by a review: one array as both weights of a step (4x its gradient), a function's temporaries
    # reused inside a loop (t0 overwritten)
    "weight_is_recurrent": lambda: spec("w1", [3, 2], rnn(2, weight="W", recurrent="W")),
    "dropout_between_loops": lambda: spec("w2", [3, 2], rnn(3), {"kind": "dropout", "p": 0.3}, lstm(2, output="last"),
                                          top="wrt_input = true"),
    # attention: nn.MultiheadAttention, heads 1, 2, 4, causal or not, with and without biases
    "attention_one_head": lambda: spec("t1", [3, 4], attention(), dense(2), top="wrt_input = true"),
    "attention_two_heads_causal_classifier": lambda: spec("t2", [4, 4], attention(heads=2, causal=True),
                                                          dense(3, activation="softmax"), loss=CLASSIFY),
    "attention_four_heads_no_bias_causal": lambda: spec("t3", [3, 8], attention(heads=4, causal=True, bias=False),
                                                        top="wrt_input = true"),
    "attention_after_embedding_then_lstm": lambda: spec("t4", [5], embedding(6, 4), attention(heads=2, query="Q"),
                                                        lstm(3, output="last"), dense(2, activation="softmax"),
                                                        loss=CLASSIFY),
    "binary_cross_entropy_per_step": lambda: spec("m4", [3, 2], lstm(2), dense(1, activation="sigmoid"),
                                                  loss='kind = "binary_cross_entropy"\nl2 = 0.1'),
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


@pytest.mark.parametrize("name", ["last_tanh_classifier", "lstm_two_steps", "lstm_one_unit_one_step",
                                  "dense_at_every_step_squared_masked"])
def test_sampled_entries_of_the_reverse_loop_equal_the_oracle(name):
    assert assert_oracle_agrees(SPECS[name](), batch=2, sample=5) > 0


@pytest.mark.parametrize("causal", [False, True])
def test_attention_equals_the_oracle(causal):
    net = spec("ta", [3, 2], attention(heads=2, causal=causal), top="wrt_input = true")
    assert assert_oracle_agrees(net, batch=1, sample=4) > 0




# cs231n's published outputs (assignment 3): rnn_forward and lstm_forward on its linspace inputs
RNN_FORWARD_H = np.asarray([
    [[-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
     [-0.39525808, -0.22554661, -0.0409454, 0.14649412, 0.32397316],
     [-0.42305111, -0.24223728, -0.04287027, 0.15997045, 0.35014525]],
    [[-0.55857474, -0.39065825, -0.19198182, 0.02378408, 0.23735671],
     [-0.27150199, -0.07088804, 0.13562939, 0.33099728, 0.50158768],
     [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043]]])
LSTM_FORWARD_H = np.asarray([
    [[0.01764008, 0.01823233, 0.01882671, 0.0194232],
     [0.11287491, 0.12146228, 0.13018446, 0.13902939],
     [0.31358768, 0.33338627, 0.35304453, 0.37250975]],
    [[0.45767879, 0.4761092, 0.4936887, 0.51041945],
     [0.6704845, 0.69350089, 0.71486014, 0.7346449],
     [0.81733511, 0.83677871, 0.85403753, 0.86935314]]])


def _cs231n(kind, T, D, H, **values):
    net = spec("cs", [T, D], {"kind": kind, "units": H, "initial": "h0"})
    return compile_module(net).forward(**values)


def test_cs231n_rnn_forward_published_value():
    N, T, D, H = 2, 3, 4, 5
    h = _cs231n("rnn", T, D, H, x=np.linspace(-0.1, 0.3, num=N * T * D).reshape(N, T, D),
                h0=np.linspace(-0.3, 0.1, num=N * H).reshape(N, H), Wx1=np.linspace(-0.2, 0.4, num=D * H).reshape(D, H),
                Wh1=np.linspace(-0.4, 0.1, num=H * H).reshape(H, H), b1=np.linspace(-0.7, 0.1, num=H))
    assert np.max(np.abs(h - RNN_FORWARD_H)) < 1e-8  # published to 8 decimals


def test_cs231n_lstm_forward_published_value():
    N, D, H, T = 2, 5, 4, 3
    h = _cs231n("lstm", T, D, H, x=np.linspace(-0.4, 0.6, num=N * T * D).reshape(N, T, D),
                h0=np.linspace(-0.4, 0.8, num=N * H).reshape(N, H),
                Wx1=np.linspace(-0.2, 0.9, num=4 * D * H).reshape(D, 4 * H),
                Wh1=np.linspace(-0.3, 0.6, num=4 * H * H).reshape(H, 4 * H), b1=np.linspace(0.2, 0.7, num=4 * H))
    assert np.max(np.abs(h - LSTM_FORWARD_H)) < 1e-8


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


def test_the_forward_loop_keeps_each_steps_array_in_a_list_not_a_copy():
    # as a hand-written BPTT keeps its cache: i1.append(i1_t), read back as i1[t] (contiguous),
    # where the values were copied into (N, T, H) arrays and read back as strided slices; the
    # scan's own value (every step of h, the layer's output) is still one (N, T, H) array
    source = symprop.generate(SPECS["lstm_last_classifier"]())
    gradients = source.split("def gradients(")[1].split("\ndef ")[0]
    for gate in ("i1", "f1", "o1", "g1", "c1"):
        assert f"    {gate} = []\n" in gradients and f"{gate}.append({gate}_t)" in gradients, gate
        assert f"{gate}_t = {gate}[t]\n" in gradients, gate
    assert "[:, t] =" not in gradients and "c1_prev = c1[t - 1] if t else" in gradients
    sequence = symprop.generate(spec("seq", [4, 3], rnn(3), dense(2)))
    assert "a1[:, t] = h1_t" in sequence and "h1_prev = a1[:, t - 1] if t" in sequence


def test_a_language_model_reverse_loop_equals_the_oracle():
    net = spec("tiny", [3], embedding(3, 2), rnn(2), dense(3, activation="softmax"), loss=CLASSIFY + '\nmask = "m"')
    assert assert_oracle_agrees(net, batch=2, sample=4) > 0


def test_a_token_seen_twice_gets_both_rows_of_gradient():
    # the embedding's gradient is a scatter-add (np.add.at), not a fancy-index assignment that keeps one
    net = spec("twice", [2], embedding(3, 2), dense(1))
    module = compile_module(net)
    W1, W2 = np.array([[0.5, -1.0], [2.0, 0.25], [1.0, 1.0]]), np.array([[1.0], [-2.0]])
    x, y = np.array([[1, 1]]), np.zeros((1, 2, 1))
    grads = module.gradients(x=x, y=y, W1=W1, W2=W2, b2=np.zeros(1))
    # L = mean over the 2 steps of (W1[1] @ W2)^2: dL/dW1[1] = 2 * 2 * (W1[1] @ W2) W2 / 2, both steps
    expected = 2 * (W1[1] @ W2) * W2[:, 0]
    assert np.allclose(grads["W1"][1], expected, rtol=1e-14, atol=0) and not grads["W1"][[0, 2]].any()


def test_train_minibatches_the_initial_state_and_the_mask_with_the_data(tmp_path):
    from symprop.train import train
    net = SPECS["rnn_language_model_masked"]()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 7, size=(20, 5))
    data = {"x": x, "y": np.roll(x, -1, axis=1), "h0": np.zeros((20, 3)), "keep": np.ones((20, 5))}
    history = train(net, data=data, lr=0.5, steps=30, batch_size=6)
    assert history.losses[-1] < 0.9 * history.losses[0]


def test_the_memory_estimate_counts_what_a_loop_keeps_for_every_step():
    from symprop.limits import memory_needed
    short, long = (memory_needed(spec("m", [steps, 1], lstm(100, output="last")), 3) for steps in (10, 1000))
    # the reverse loop reads z (4H) and six H-wide values at every step: about 100 x more at 100 x T
    assert long > 50 * short


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
    (lambda: spec("b", [3, 2], lstm(2, activation="relu")), "layers[1].activation", "unknown key for an lstm layer"),
    (lambda: spec("b", [3, 2], lstm(2, initial="c1")), "layers[1].initial",
     "'c1' is the name layer 1 (lstm) gives its values over the time steps"),
    (lambda: spec("b", [3, 2], rnn(2), lstm(2, weight="Wx1")), "layers[2].weight",
     "'Wx1' is the weight of layers[1] with shape (2, 2); here it needs shape (2, 8)"),
    (lambda: spec("b", [4], rnn(2)), "layers[1].kind", "but the input is a sequence of 4 integer tokens: the first "
     "layer of a token input is an embedding"),
    (lambda: spec("b", [4, 2], embedding(3, 2)), "layers[1].kind", "embedding takes integer tokens (N, T), but the "
     "input is a sequence of 4 steps of 2 features"),
    (lambda: spec("b", [4], embedding(3, 2), embedding(3, 2)), "layers[2].kind", "embedding takes integer tokens"),
    (lambda: spec("b", [4], {"kind": "embedding", "units": 2}), "layers[1].vocab", "required key is missing"),
    (lambda: spec("b", [4], embedding(3, 2), top="wrt_input = true"), "wrt_input", "the input is integer tokens"),
    (lambda: spec("b", 3, dense(2), loss='kind = "squared_error"\nmask = "m"'), "loss.mask",
     "masks the steps of a sequence, but the network's output is rows (2,) per sample"),
    (lambda: spec("b", [3, 2], rnn(2), dense(2), loss='kind = "multiclass_hinge"'), "loss.kind",
     "multiclass_hinge scores rows"),
    (lambda: spec("b", [3, 2], rnn(2), loss='kind = "squared_error"\nmask = "Wx1"'), "loss.mask",
     "'Wx1' is already the name of"),
    (lambda: spec("b", [2], embedding(3, 1), top="[values]\nx = [[0, 3]]"), "values.x",
     "tokens must be integers from 0 to 2"),
    (lambda: spec("b", [3, 6], attention(heads=4)), "layers[1].heads",
     "the input's 6 features do not split into 4 heads"),
    (lambda: spec("b", 3, attention()), "layers[1].kind", "attention takes sequences (N, T, D), but the input is rows"),
    (lambda: spec("b", [3, 2], attention(bias="yes")), "layers[1].bias", "must be true or false"),
    (lambda: spec("b", [3, 2], attention(value="bq1")), "layers[1].bias", "'bq1' is already the name of layers[1].value"),
    (lambda: spec("b", [3, 2], attention(query="q1")), "layers[1].query", "'q1' is the name layer 1 (attention)"),
    (lambda: spec("b", [2, 2], rnn(2), loss='kind = "squared_error"\nmask = "m"', top="[values]\nm = [[0, 0.5]]"),
     "values.m", "the loss's mask holds 0 (dropped) and 1 (kept) only"),
]


@pytest.mark.parametrize("make, key, rule", BAD, ids=[f"{i}-{k}" for i, (_, k, _) in enumerate(BAD)])
def test_a_bad_sequence_spec_is_one_line_naming_key_and_rule(make, key, rule):
    with pytest.raises(symprop.SpecError) as error:
        make()
    message = str(error.value)
    assert "\n" not in message and f": {key}: " in message and rule in message, message


def test_the_derivation_writes_one_step_and_the_reverse_loop():
    net = spec("doc", [3, 2], rnn(4, initial="h0"), rnn(2, output="last"), dense(2), top="wrt_input = true")
    text = symprop.derive(net).text()
    assert text.count("for t = 1, ..., 3:") == 2 and text.count("for t = 3, ..., 1:") == 2
    # the state's gradient carried from step t + 1 into step t, and handed on to step t - 1
    assert "delta2 = dL_dh2_next*(1 - h2_t**2)" in text  # the last step's output: its gradient starts the carry
    assert "delta1 = (1 - h1_t**2)*(dL_da1_t + dL_dh1_next)" in text
    assert "dL_dWh1 += h1_prev.T @ delta1" in text and "dL_dh1_next = dL_dh1_prev   [carried to step t - 1]" in text
    assert "dL_dx[:, t] = dL_dx_t, for every t" in text and "dL_dh0 = dL_dh1_next after t = 1" in text
    latex = symprop.derive(net).latex()
    assert r"t &= 3, \dots, 1" in latex and r"\frac{\partial L_{>t}}{\partial h_{1,t}}" in latex
    assert r"\boxed{\frac{\partial L}{\partial \mathrm{Wx}_{1}} = \sum_{t=1}^{3} x_{t}^{\top} \delta_{1}}" in latex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
@pytest.mark.parametrize("make", [SPECS["lstm_last_classifier"], SPECS["two_layers_last"]],
                         ids=["lstm_last_classifier", "two_layers_last"])
def test_the_derivation_of_a_loop_typesets(make, tmp_path):
    (tmp_path / "d.tex").write_text(symprop.derive(make()).latex())
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "Overfull" not in (tmp_path / "d.log").read_text(errors="replace")


def _rnn_backward(x, y, Wx1, Wh1, b1, forget=False, **_):
    """A hand-written RNN backward (cs231n's rnn_backward, then the squared error), which forgets
    to carry dh from step t + 1 when `forget`."""
    N, T, D = x.shape
    h = np.zeros((N, T + 1, Wh1.shape[0]))
    for t in range(T):
        h[:, t + 1] = np.tanh(x[:, t] @ Wx1 + h[:, t] @ Wh1 + b1)
    dout = 2 * (h[:, 1:] - y) / y.size
    dWx, dWh, db, dx, dnext = np.zeros_like(Wx1), np.zeros_like(Wh1), np.zeros_like(b1), np.zeros_like(x), 0
    for t in reversed(range(T)):
        dz = (dout[:, t] + (0 if forget else dnext)) * (1 - h[:, t + 1] ** 2)
        dx[:, t], dnext = dz @ Wx1.T, dz @ Wh1.T
        dWx, dWh, db = dWx + x[:, t].T @ dz, dWh + h[:, t].T @ dz, db + dz.sum(axis=0)
    return {"Wx1": dWx, "Wh1": dWh, "b1": db, "x": dx}


def test_check_says_a_backward_forgot_to_carry_the_state_gradient():
    net = spec("carry", [5, 3], rnn(4), top="wrt_input = true")
    assert symprop.check(net, against=_rnn_backward).ok
    def forgets(**arrays):
        return _rnn_backward(**arrays, forget=True)
    report = symprop.check(net, against=forgets)
    assert not report.ok
    rows = report.sections["forgets vs generated"]
    assert {row.name for row in rows if row.verdict == "WRONG"} == {"Wx1", "Wh1", "b1", "x"}
    (diagnosis,) = next(row for row in rows if row.name == "x").diagnosis
    # the last step receives nothing from after it: right there, wrong at every step before
    assert diagnosis["kind"] == "steps" and diagnosis["right_from"] == 4
    assert "right at step 4 (the last), wrong before" in str(report)


def test_cs231n_captioning_rnn_published_loss():
    # cs231n's CaptioningRNN loss check: every parameter linspace(-1.4, 1.3), captions arange % V,
    # expected loss 9.83235591003. The image features' projection to h0 is an affine map outside the
    # spec, computed here; the rest (embedding, rnn, affine at every step, masked temporal softmax
    # loss) is the spec's
    N, D, W, H, V, T = 10, 20, 30, 40, 3, 13
    net = spec("captioning", [T - 1], embedding(V, W), rnn(H, initial="h0"), dense(V, activation="softmax"),
               loss=CLASSIFY + '\nmask = "mask"')

    def ls(*shape):
        return np.linspace(-1.4, 1.3, num=int(np.prod(shape))).reshape(*shape)
    features = np.linspace(-1.5, 0.3, num=N * D).reshape(N, D)
    captions = (np.arange(N * T) % V).reshape(N, T)
    loss = compile_module(net).loss(
        x=captions[:, :-1], y=captions[:, 1:], mask=(captions[:, 1:] != 0).astype(float),
        h0=features @ ls(D, H) + ls(H), W1=ls(V, W), Wx2=ls(W, H), Wh2=ls(H, H), b2=ls(H), W3=ls(H, V), b3=ls(V))
    assert abs(loss - 9.83235591003) < 1e-10  # published to 11 digits


@needs_torch
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=sequences(), seed=st.integers(0, 2**16))
def test_random_sequence_specs_equal_pytorch(text, seed):
    assert_random_spec_equals_pytorch(text, seed)


@pytest.mark.parametrize("name", ["initial_state_and_input", "lstm_last_classifier", "rnn_language_model_masked",
                                  "attention_two_heads_causal_classifier", "attention_four_heads_no_bias_causal",
                                  "attention_after_embedding_then_lstm"])
def test_float32_arrays_stay_float32_through_a_loop(name):
    # as through a dense layer: the loop's values over the steps and its zero states take the
    # arrays' dtype (they were float64 buffers: float32 in, float64 out); attention's 1/sqrt(d) is
    # a Python float (np.sqrt(2), a NumPy float64 scalar, made everything float64)
    net = SPECS[name]()
    module = compile_module(net)
    values = random_values(net, seed=0, batch=3)
    expected = module.gradients(**values)
    single = {k: (v.astype(np.float32) if np.asarray(v).dtype.kind == "f" else v) for k, v in values.items()}
    assert module.forward(**{k: single[k] for k in module.ARGUMENTS["forward"]}).dtype == np.float32
    for key, grad in module.gradients(**single).items():
        assert grad.dtype == np.float32, key
        # float32 rounding (2**-24 relative) through a few steps: 1e-5 of the largest entry, plus a floor
        assert np.max(np.abs(grad - expected[key])) <= 1e-5 * np.max(np.abs(expected[key])) + 1e-6, key
