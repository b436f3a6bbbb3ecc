"""The new layer kinds and loss (batchnorm, layernorm, dropout, residuals, tied transposed weights,
multiclass_hinge) through the rewritten derivation engine, from the spec to the generated module.

For every spec of the table:
  (a) the generated NumPy module equals PyTorch float64 autograd (`symprop.reference`);
  (b) the matrix-level formulas equal the element-level oracle (`sympy.diff` of the written-out loss);
  (c) with a normalization: the compact rule (`derive(net)`) equals the staged chain rule through
      the mean and the variance (`derive(net, compact=False)`), evaluated at the same point.
Then `symprop check` on the classic batchnorm bug, the derivation document of a batchnorm, random
specs of every kind against PyTorch, and the bugs found on the way.
"""

import importlib.util
import re
import shutil

import numpy as np
import pytest
from exact import (DIGITS, assert_oracle_agrees, assert_random_spec_equals_pytorch, equal, gradients_at,
                   normwise_error, random_arrays)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from networks import specs

import symprop
from symprop import symbolic
from symprop.check import random_values
from symprop.codegen import files
from symprop.codegen.files import compile_module
from symprop.symbolic.notation import latex_name

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="PyTorch is not installed: the reference needs it")
needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                    reason="pdflatex is not installed (apt-get install texlive-latex-base)")


def spec(name, body, layout="row", inputs=3, wrt_input=False, batch=None):
    head = (f'name = "{name}"\nlayout = "{layout}"\ninputs = {inputs}\n'
            f"wrt_input = {str(wrt_input).lower()}\n" + (f"batch = {batch}\n" if batch else ""))
    return head + body


SQUARED = '[loss]\nkind = "squared_error"\n'
HINGE = '[loss]\nkind = "multiclass_hinge"\n'

# name -> (spec, oracle: (batch where the spec leaves it open, entries sampled per array or None: all))
CASES = {
    "bn_scale_shift_relu_batch3": (spec("bn_relu", """
[[layers]]\nunits = 3\nactivation = "tanh"
[[layers]]\nkind = "batchnorm"\nactivation = "relu"
[[layers]]\nunits = 2
""" + SQUARED, batch=3), (3, 4)),
    "bn_no_scale_no_shift_open_batch": (spec("bn_plain", """
[[layers]]\nunits = 3
[[layers]]\nkind = "batchnorm"\nscale = false\nshift = false
[[layers]]\nunits = 2
""" + SQUARED + 'reduction = "sum"\n'), (3, None)),
    "bn_scale_only_tanh_open_batch": (spec("bn_tanh", """
[[layers]]\nunits = 3
[[layers]]\nkind = "batchnorm"\nshift = false\nactivation = "tanh"\neps = 1e-3
[[layers]]\nunits = 2
""" + SQUARED, wrt_input=True), (2, None)),
    "bn_shift_only_sigmoid_on_the_input": (spec("bn_sig", """
[[layers]]\nkind = "batchnorm"\nscale = false\nactivation = "sigmoid"
[[layers]]\nunits = 2
""" + SQUARED, wrt_input=True, batch=3), (3, None)),
    "layernorm_row": (spec("ln_row", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nkind = "layernorm"\nactivation = "relu"
[[layers]]\nunits = 2
""" + SQUARED), (2, 3)),
    "layernorm_column": (spec("ln_col", """
[[layers]]\nunits = 3\nactivation = "sigmoid"
[[layers]]\nkind = "layernorm"\nshift = false\neps = 0.01
[[layers]]\nunits = 2
""" + SQUARED, layout="column", wrt_input=True), (1, None)),
    "dropout_row_p0": (spec("do_row0", """
[[layers]]\nunits = 3\nactivation = "tanh"
[[layers]]\nkind = "dropout"\np = 0.0
[[layers]]\nunits = 2
""" + SQUARED), (2, None)),
    "dropout_row_p05_twice": (spec("do_row5", """
[[layers]]\nkind = "dropout"\np = 0.5\nmask = "keep"
[[layers]]\nunits = 3\nactivation = "relu"
[[layers]]\nkind = "dropout"\np = 0.5
[[layers]]\nunits = 2
""" + SQUARED, wrt_input=True), (2, None)),
    "dropout_column_p0": (spec("do_col0", """
[[layers]]\nunits = 3\nactivation = "sigmoid"
[[layers]]\nkind = "dropout"\np = 0
[[layers]]\nunits = 2
""" + SQUARED, layout="column"), (1, None)),
    "dropout_column_p05": (spec("do_col5", """
[[layers]]\nunits = 3\nactivation = "tanh"
[[layers]]\nkind = "dropout"\np = 0.5
[[layers]]\nunits = 2
""" + SQUARED + 'reduction = "sum"\n', layout="column", wrt_input=True), (1, None)),
    "residual_true": (spec("res_true", """
[[layers]]\nunits = 3\nactivation = "tanh"
[[layers]]\nunits = 3\nactivation = "relu"\nresidual = true
[[layers]]\nunits = 2
""" + SQUARED), (2, None)),
    "residual_k2_column": (spec("res_k2", """
[[layers]]\nunits = 3\nactivation = "softplus"
[[layers]]\nunits = 2\nactivation = "sigmoid"
[[layers]]\nunits = 3\nactivation = "leaky_relu"\nnegative_slope = 0.2\nresidual = 2
[[layers]]\nunits = 1
""" + SQUARED, layout="column"), (1, None)),
    "residual_reaching_the_input": (spec("res_in", """
[[layers]]\nunits = 4\nactivation = "sigmoid"
[[layers]]\nunits = 3\nactivation = "leaky_relu"\nresidual = 2
[[layers]]\nunits = 2
""" + SQUARED, wrt_input=True), (2, 4)),
    "tied_autoencoder_4_3_4": (spec("tied", """
[[layers]]\nunits = 3\nactivation = "tanh"
[[layers]]\nunits = 4\nweight = "W1"\ntranspose_weight = true
""" + SQUARED + "scale = 0.5\nl2 = 0.1\n", inputs=4), (2, None)),
    "tied_autoencoder_column": (spec("tied_col", """
[[layers]]\nunits = 3\nactivation = "sigmoid"\nbias = false
[[layers]]\nunits = 4\nweight = "W1"\ntranspose_weight = true
""" + SQUARED + 'reduction = "sum"\nl2 = 0.25\n', layout="column", inputs=4, wrt_input=True), (1, None)),
    "hinge_labels_mean_margin1": (spec("h_lab", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nunits = 3
""" + HINGE + "labels = true\n"), (2, None)),
    "hinge_one_hot_sum_margin05": (spec("h_hot", """
[[layers]]\nunits = 4\nactivation = "relu"
[[layers]]\nunits = 3
""" + HINGE + 'reduction = "sum"\nmargin = 0.5\n'), (2, 4)),
    "hinge_labels_sum_margin05_l2": (spec("h_l2", """
[[layers]]\nunits = 3
""" + HINGE + 'labels = true\nreduction = "sum"\nmargin = 0.5\nl2 = 0.05\n', wrt_input=True), (2, None)),
    "hinge_one_hot_mean_margin1_l2": (spec("h_hot_l2", """
[[layers]]\nunits = 3\nactivation = "sigmoid"
[[layers]]\nunits = 3
""" + HINGE + "margin = 1.0\nl2 = 0.2\nscale = 2.0\n"), (2, 4)),
    "hinge_column_labels": (spec("h_col", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nunits = 3
""" + HINGE + "labels = true\nmargin = 0.5\n", layout="column", wrt_input=True), (1, None)),
    # every kind at once: a batchnorm, a dropout, a residual reaching back two layers (to the
    # batchnorm's output), a layernorm, a tied transposed weight with a residual, the hinge with l2
    "combined": (spec("combined", """
[[layers]]\nunits = 2
[[layers]]\nkind = "batchnorm"\nactivation = "relu"
[[layers]]\nkind = "dropout"\np = 0.5
[[layers]]\nunits = 2\nresidual = 2
[[layers]]\nkind = "layernorm"\nshift = false
[[layers]]\nunits = 2\nweight = "W1"\ntranspose_weight = true\nresidual = true
""" + HINGE + "labels = true\nl2 = 0.1\nmargin = 0.5\n", inputs=2, batch=2), (2, 2)),
}


def network(case):
    return symprop.loads(CASES[case][0], source=case)


def normalizes(net) -> bool:
    return any(layer.kind in ("batchnorm", "layernorm") for layer in net.layers)


def test_the_table_covers_every_new_kind_and_option():
    nets = {case: network(case) for case in CASES}
    layers = [(net, l, layer) for net in nets.values() for l, layer in enumerate(net.layers, 1)]
    assert {("batchnorm", "row"), ("layernorm", "row"), ("layernorm", "column"), ("dropout", "row"),
            ("dropout", "column")} <= {(layer.kind, net.layout) for net, _, layer in layers}
    batchnorms = [(net, layer) for net, _, layer in layers if layer.kind == "batchnorm"]
    assert {(layer.scale is None, layer.shift is None) for _, layer in batchnorms} == {
        (False, False), (True, True), (False, True), (True, False)}
    assert {"relu", "tanh", "sigmoid"} <= {layer.activation for _, layer in batchnorms}
    assert {net.batch is None for net, _ in batchnorms} == {True, False}  # fixed and open batch
    assert {layer.p for _, _, layer in layers if layer.kind == "dropout"} == {0.0, 0.5}
    residuals = {(layer.residual, l == layer.residual, net.layout) for net, l, layer in layers if layer.residual}
    assert {1, 2} <= {r for r, _, _ in residuals} and any(reaches for _, reaches, _ in residuals)
    assert {"row", "column"} == {layout for _, _, layout in residuals}
    tied = nets["tied_autoencoder_4_3_4"]
    assert tied.parameters == ("W1", "b1", "b2") and tied.shapes()["W1"] == (4, 3)
    assert tied.layers[1].transpose_weight and tied.using("W1") == (1, 2)
    hinges = [net.loss for net in nets.values() if net.loss.kind == "multiclass_hinge"]
    assert {h.labels for h in hinges} == {True, False} and {h.reduction for h in hinges} == {"mean", "sum"}
    assert {h.margin for h in hinges} == {1.0, 0.5} and any(h.l2 > 0 for h in hinges)
    combined = nets["combined"]
    assert {layer.kind for layer in combined.layers} == {"dense", "batchnorm", "dropout", "layernorm"}
    assert any(layer.residual for layer in combined.layers) and any(
        layer.transpose_weight for layer in combined.layers)
    assert combined.loss.kind == "multiclass_hinge" and combined.loss.l2 > 0


# ---------------------------------------------------------------------------------------------
# (a) the generated module against PyTorch


RTOL_TORCH = 1e-10
SEEDS = (0, 1, 2)


@needs_torch
@pytest.mark.parametrize("case", CASES)
def test_generated_module_equals_pytorch_autograd(case):
    from symprop.reference import torch_loss_and_gradients

    net = network(case)
    module = compile_module(net, symprop.generate(net))  # the module `symprop generate` writes
    active = 0  # seeds whose loss and gradients are not all zero (an inactive hinge is)
    for seed in SEEDS:
        values = random_values(net, seed, batch=3)
        loss, grads = module.loss_and_gradients(**values)
        expected_loss, expected = torch_loss_and_gradients(net, values)
        assert loss == pytest.approx(expected_loss, rel=RTOL_TORCH, abs=1e-300), (case, seed)
        assert sorted(grads) == sorted(net.differentiated)
        for name in net.differentiated:
            assert grads[name].shape == np.shape(values[name]), (case, name)
            error = normwise_error(grads[name], expected[name], expected_loss)
            assert error <= RTOL_TORCH, (case, seed, name, error, grads[name], expected[name])
        active += abs(loss) > 1e-3 and max(np.abs(g).max() for g in expected.values()) > 1e-3
    assert active >= 2, case  # no vacuous case


@pytest.mark.parametrize("case", CASES)
def test_float32_in_float32_out(case):
    # every kind and loss keeps float32 (the hinge's (margins > 0)/N, a boolean array divided,
    # was float64 and made every gradient float64), close to the float64 module
    net = network(case)
    module = compile_module(net)
    values = random_values(net, 0, batch=3)
    single = {k: v.astype(np.float32) if np.asarray(v).dtype.kind == "f" else v for k, v in values.items()}
    assert module.forward(**{k: single[k] for k in module.ARGUMENTS["forward"]}).dtype == np.float32
    loss, exact = module.loss_and_gradients(**values)
    for name, gradient in module.gradients(**single).items():
        assert gradient.dtype == np.float32, name
        # float32 rounding (6e-8 relative) through a few layers: 1e-4 of the loss's scale
        assert normwise_error(gradient, exact[name], loss) < 1e-4, (name, gradient, exact[name])


# ---------------------------------------------------------------------------------------------
# (b) the element-level oracle


@pytest.mark.parametrize("case", CASES)
def test_matrix_formulas_equal_the_element_level_oracle(case):
    net = network(case)
    batch, sample = CASES[case][1]
    checked = assert_oracle_agrees(net, batch=batch, seed=0, sample=sample)
    shapes = net.shapes(net.batch or batch)
    sizes = [int(np.prod(shapes[name])) for name in net.differentiated]
    assert checked == sum(size if sample is None else min(sample, size) for size in sizes)


# ---------------------------------------------------------------------------------------------
# (c) the compact normalization rule against the staged chain rule


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", [case for case in CASES if normalizes(network(case))])
def test_compact_normalization_rule_equals_the_staged_chain_rule(case, seed):
    net = network(case)
    compact, staged = symbolic.derive(net), symbolic.derive(net, compact=False)
    norms = [l for l, layer in enumerate(net.layers, 1) if layer.kind in ("batchnorm", "layernorm")]
    # two different formulas: the staged one goes through dL/dvar, the compact one does not
    assert {f"dL_dvar{l}" for l in norms} <= {s.name for s in staged.steps}
    assert not any(s.name.startswith("dL_dvar") for s in compact.steps)
    assert [c.output.name for c in compact.composites] == [f"xhat{l}" for l in norms]
    # the square root makes the values irrational: both at the same 60-digit point, 35 digits agree
    values = random_arrays(net, batch=3, seed=seed, digits=DIGITS)
    got, expected = gradients_at(compact, values), gradients_at(staged, values)
    for name in net.differentiated:
        assert got[name].shape == expected[name].shape == np.shape(values[name])
        for index in np.ndindex(got[name].shape):
            assert equal(got[name][index], expected[name][index]), (case, name, index)


# ---------------------------------------------------------------------------------------------
# `symprop check` on the classic batchnorm bug: the variance path left out of the backward pass


EPS = 1e-5


def batchnorm_net(first: str) -> symbolic.Network:
    return symprop.loads(f"""name = "bn_check"
inputs = 3
batch = 4
[[layers]]
units = 4
activation = "{first}"
[[layers]]
kind = "batchnorm"
activation = "relu"
[[layers]]
units = 2
[loss]
kind = "squared_error"
""")


def batchnorm_backward(first: str, variance_path: bool):
    """A hand-written backward of `batchnorm_net(first)`; without `variance_path`, the batchnorm's
    input gradient is g/sigma - mean(g)/sigma: the term xhat mean(g xhat)/sigma is missing."""
    def backward(x, y, W1, b1, gamma2, beta2, W3, b3):
        z1 = x @ W1 + b1
        a1 = np.tanh(z1) if first == "tanh" else z1
        mu = a1.mean(axis=0)
        sigma = np.sqrt(((a1 - mu) ** 2).mean(axis=0) + EPS)
        xhat = (a1 - mu) / sigma
        z2 = gamma2 * xhat + beta2
        a2 = np.maximum(z2, 0.0)
        z3 = a2 @ W3 + b3
        loss = ((z3 - y) ** 2).mean()
        delta3 = 2 * (z3 - y) / z3.size
        delta2 = (delta3 @ W3.T) * (z2 > 0)
        g = delta2 * gamma2  # dL/dxhat
        da1 = (g - g.mean(axis=0) - (xhat * (g * xhat).mean(axis=0) if variance_path else 0.0)) / sigma
        delta1 = da1 * (1 - a1**2) if first == "tanh" else da1
        return loss, {"W1": x.T @ delta1, "b1": delta1.sum(axis=0), "gamma2": (delta2 * xhat).sum(axis=0),
                      "beta2": delta2.sum(axis=0), "W3": a2.T @ delta3, "b3": delta3.sum(axis=0)}

    backward.__name__ = "bn_backward" if variance_path else "bn_backward_without_variance_path"
    return backward


@pytest.mark.parametrize("first, wrong", [
    # z1 goes straight into the batchnorm: b1's gradient is exactly zero, with or without the term
    # (the term's column sums vanish: sum_n xhat = 0), so only W1 can be wrong
    ("identity", ["W1"]),
    # through tanh first: b1's gradient is no longer zero, and the missing term spoils it too
    ("tanh", ["W1", "b1"]),
])
@pytest.mark.parametrize("seed", [0, 3])
def test_check_pinpoints_the_missing_variance_path(first, wrong, seed):
    net = batchnorm_net(first)
    report = symprop.check(net, against=batchnorm_backward(first, variance_path=False), seed=seed)
    assert not report.ok and report.wrong == wrong
    theirs = report.sections["bn_backward_without_variance_path vs generated"]
    assert {row.name: row.verdict for row in theirs} == {
        "loss": "ok", "W1": "WRONG", "b1": "WRONG" if "b1" in wrong else "ok",
        "gamma2": "ok", "beta2": "ok", "W3": "ok", "b3": "ok"}
    assert all(row.ok for row in report.sections["generated vs numerical"])  # symprop itself is right
    w1 = next(row for row in theirs if row.name == "W1")
    assert w1.note.endswith("of 12 entries wrong") and w1.max_rel > 0.1
    assert "W1" in w1.should_be and "delta1" in w1.should_be
    assert f"FAILED: {len(wrong)} array(s) wrong: {', '.join(wrong)}" in str(report)
    right = symprop.check(net, against=batchnorm_backward(first, variance_path=True), seed=seed)
    assert right.ok, str(right)
    assert [row.name for row in right.sections["bn_backward vs generated"]] == [
        "loss", "W1", "b1", "gamma2", "beta2", "W3", "b3"]


# ---------------------------------------------------------------------------------------------
# The derivation document: the staged rows and the compact one


@needs_pdflatex
def test_batchnorm_document_compiles_and_shows_the_staged_and_the_compact_rule(tmp_path):
    net = network("bn_scale_shift_relu_batch3")  # the batchnorm is layer 2, on tanh(z1)
    document = symbolic.derive(net).latex()
    pdf = tmp_path / "bn.pdf"
    files.write_pdf(document, pdf)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    for name in ("mu2", "var2", "sigma2", "xhat2"):  # the forward rows of the normalization
        assert "\n" + latex_name(name) + " &= " in document, name
    assert r"\sigma_{2} &= \sqrt{\mathrm{var}_{2} + 10^{-5}}" in document  # eps = 1e-5, as one writes it
    rows = [line for line in document.splitlines() if r"\tag*{" in line]
    staged = [line for line in rows if line.endswith(r"\tag*{staged}\\")]
    assert [line.split(" &= ")[0] for line in staged] == [latex_name("dL_dxhat2"), latex_name("dL_dvar2")]
    assert latex_name("sigma2") + "^{3}" in staged[1]  # dL/dvar = -1/2 sum(dL/dxhat (a - mu)) / sigma^3
    in_full = [line for line in rows if r"\tag*{staged, in full}" in line]
    assert [line.split(" &= ")[0] for line in in_full] == [latex_name("delta1")]
    assert latex_name("dL_dvar2") in in_full[0]  # the staged delta1 goes through the variance
    compact = [line for line in rows if r"\tag*{the normalization rule: the same, simplified}" in line]
    assert [line.split(" &= ")[0] for line in compact] == [latex_name("delta1")]
    assert latex_name("dL_dvar2") not in compact[0] and latex_name("xhat2") in compact[0]
    assert rows.index(in_full[0]) + 1 == rows.index(compact[0])  # the compact form right after


def defined_and_used(document: str) -> tuple[set, set]:
    """The gradient names (dL/d..., delta) the document defines (left of a row) and uses (right)."""
    pattern = re.compile(r"\\frac\{\\partial L\}\{\\partial [^{}]*(?:\{[^{}]*\}[^{}]*)*\}|\\delta_\{\d+\}")
    defined, used = set(), set()
    for line in document.splitlines():
        if " &= " in line:
            left, right = line.split(" &= ", 1)
            defined.update(pattern.findall(left))
            used.update(pattern.findall(right.split(r"\tag*")[0]))
    return defined, used


NORMALIZING = [case for case in CASES if normalizes(network(case))]


@pytest.mark.parametrize("case", NORMALIZING)
def test_every_gradient_the_backward_pass_uses_is_defined_in_it(case):
    # with a scale gamma the staged rows go through dL/dxhat, a step of the staged derivation only
    defined, used = defined_and_used(symbolic.derive(network(case)).latex())
    assert used - defined == set()


@pytest.mark.parametrize("case", NORMALIZING)
def test_each_compact_row_follows_its_staged_form_in_full(case):
    net = network(case)
    rows = [line for line in symbolic.derive(net).latex().splitlines() if r"\tag*{" in line]
    norms = [l for l, layer in enumerate(net.layers, 1) if layer.kind in ("batchnorm", "layernorm")]
    compact = [i for i, line in enumerate(rows) if r"\tag*{the normalization rule: the same, simplified}" in line]
    assert len(compact) == len(norms)
    for l, i in zip(reversed(norms), compact):  # the backward pass meets the last normalization first
        name = rows[i].split(" &= ")[0]
        assert rows[i - 1].startswith(name + " &= ") and r"\tag*{staged, in full}" in rows[i - 1], (case, l)
        assert latex_name(f"dL_dvar{l}") in rows[i - 1].split(" &= ")[1], (case, l)
        assert latex_name(f"dL_dvar{l}") not in rows[i] and latex_name(f"xhat{l}") in rows[i], (case, l)


# ---------------------------------------------------------------------------------------------
# Random specs of every kind


@needs_torch
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=specs(kinds=True), seed=st.integers(0, 2**16))
def test_random_specs_of_every_kind_equal_pytorch(text, seed):
    assert_random_spec_equals_pytorch(text, seed)


# ---------------------------------------------------------------------------------------------
# Bugs found while writing these tests (each test failed before its fix)


@needs_torch
@pytest.mark.parametrize("what, case, kwargs", [
    # dense 3 -> batchnorm -> dense 2: b1's gradient is exactly 0; generated and PyTorch both give
    # ~3e-15 of rounding, against a scale floored at 1e-6 max(1, |L|): a relative error of ~7e-10
    # > RTOL_TORCH = 1e-10, so `symprop check --torch` reports b1 WRONG on a right module
    ("torch", "bn_no_scale_no_shift_open_batch", {"torch": True, "numerical": False, "seed": 1}),
    # the finite differences of a constant: ~7e-10 of noise, 9e-5 of the floor > RTOL = 1e-6
    ("numerical", "bn_no_scale_no_shift_open_batch", {"seed": 1}),
])
def test_check_accepts_a_gradient_that_is_zero_up_to_rounding(what, case, kwargs):
    net = network(case)
    module = compile_module(net)
    values = random_values(net, kwargs["seed"], batch=3)
    assert np.abs(module.gradients(**values)["b1"]).max() < 1e-13  # zero, up to rounding
    report = symprop.check(net, **kwargs)
    assert report.ok, str(report)


@pytest.mark.parametrize("form", ["latex", "markdown"])
def test_a_tanh_residual_layer_has_a_document(form):
    net = symprop.loads('name = "r"\ninputs = 2\n[[layers]]\nunits = 2\nactivation = "tanh"\n'
                        'residual = true\n[loss]\nkind = "squared_error"\n')
    document = getattr(symbolic.derive(net), form)()
    assert latex_name("delta1") in document and r"\tanh" in document


# ---------------------------------------------------------------------------------------------
# Found by a review


BN_SPEC = ('name = "b"\ninputs = 2\n{batch}[[layers]]\nunits = 3\n[[layers]]\nkind = "batchnorm"\n'
           '[[layers]]\nunits = 1\n[loss]\nkind = "squared_error"\n')


def test_a_batchnorm_over_one_sample_is_refused():
    # its variance is 0: xhat is 0 and nothing before it gets a gradient (PyTorch refuses it too)
    with pytest.raises(symprop.SpecError, match=r"layers\[2\]\.kind: batchnorm over a batch of 1"):
        symprop.loads(BN_SPEC.format(batch="batch = 1\n"))
    with pytest.raises(ValueError, match="batch must be at least 2 for a batchnorm"):
        symprop.check(symprop.loads(BN_SPEC.format(batch="")), batch=1)


def test_training_records_the_loss_with_dropout_off():
    net = symprop.loads('name = "d"\ninputs = 2\nbatch = 4\n[[layers]]\nunits = 6\nactivation = "tanh"\n'
                        '[[layers]]\nkind = "dropout"\np = 0.5\n[[layers]]\nunits = 1\n[loss]\nkind = "squared_error"\n')
    from symprop.train import train
    history = train(net, lr=1e-12, steps=6)  # no learning: the recorded loss is the same
    assert np.ptp(history.losses) <= 1e-9 * abs(history.losses[0])
    masked = compile_module(net).loss(**random_values(net, 0))  # one mask: another loss
    assert abs(masked - history.losses[0]) > 1e-3 * abs(history.losses[0])


def test_every_entry_of_a_hinge_network_keeps_its_constants():
    # the label's own margin is the constant 1 in every sample: never written as a named entry
    net = network("hinge_labels_mean_margin1")
    document = symbolic.derive(net).markdown(elements=True)
    assert "margins_" not in document and "margins}_" not in document


def test_training_data_for_the_hinge_must_be_one_hot(tmp_path):
    from symprop.data import load_data
    from symprop.errors import UsageError

    net = symprop.loads('name = "h"\ninputs = 2\n[[layers]]\nunits = 3\n[loss]\nkind = "multiclass_hinge"\n')
    x = np.zeros((3, 2))
    np.savez(tmp_path / "good.npz", x=x, y=np.eye(3))
    np.savez(tmp_path / "bad.npz", x=x, y=np.array([[1.0, 0, 0], [1, 1, 0], [0, 0, 1]]))
    assert load_data(net, tmp_path / "good.npz")["y"].shape == (3, 3)
    with pytest.raises(UsageError, match="'y' row 1 is not one-hot"):
        load_data(net, tmp_path / "bad.npz")
