"""Convolutional networks: conv2d, max and average pooling, flatten, and batchnorm, layernorm and
dropout on images, from the spec to the generated module.

For every spec of the table:
  (a) the generated NumPy module equals PyTorch float64 autograd (`F.conv2d`, `F.max_pool2d`,
      `F.avg_pool2d`, `F.batch_norm` per channel, `F.layer_norm` over C, H, W) to 1e-10;
  (b) the matrix-level formulas equal the element-level oracle, for the tiny ones;
then cs231n's published convolution values, `symprop check` on the classic max-pooling and
convolution bugs, the document in index notation, and training a small CNN.
"""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from exact import (DIGITS, assert_oracle_agrees, assert_random_spec_equals_pytorch, equal, gradients_at,
                   normwise_error, random_arrays)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from networks import images

import symprop
from symprop import symbolic
from symprop.check import random_values
from symprop.codegen import files
from symprop.codegen.files import compile_module

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="PyTorch is not installed: the reference needs it")
needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                    reason="pdflatex is not installed (apt-get install texlive-latex-base)")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def spec(name, inputs, layers, loss='kind = "squared_error"', batch=None):
    head = f'name = "{name}"\ninputs = {inputs}\n' + (f"batch = {batch}\n" if batch else "")
    tables = "".join("[[layers]]\n" + layer.strip() + "\n" for layer in layers)
    return head + tables + "[loss]\n" + loss + "\n"


CE = 'kind = "cross_entropy"'
DENSE2 = "units = 2"
SOFTMAX3 = 'units = 3\nactivation = "softmax"'

# name -> (spec, oracle: None, or (batch, entries sampled per array or None: all))
CASES = {
    "conv3_pad1_relu_maxpool2": (spec("c1", [2, 6, 6], [
        'kind = "conv2d"\nfilters = 3\nkernel = 3\npadding = 1\nactivation = "relu"',
        'kind = "maxpool2d"\nsize = 2', 'kind = "flatten"', SOFTMAX3], CE), None),
    "rect_kernel_rect_stride_rect_padding_odd_image": (spec("c2", [3, 7, 5], [
        'kind = "conv2d"\nfilters = 4\nkernel = [2, 3]\nstride = [2, 1]\npadding = [1, 0]\nactivation = "tanh"',
        'kind = "flatten"', DENSE2]), None),
    "stride2_rows_left_over_no_bias": (spec("c3", [1, 6, 7], [
        'kind = "conv2d"\nfilters = 2\nkernel = 2\nstride = 3\nbias = false\nactivation = "leaky_relu"\n'
        "negative_slope = 0.2", 'kind = "flatten"', DENSE2]), None),
    "kernel1_then_overlapping_maxpool": (spec("c4", [3, 5, 5], [
        'kind = "conv2d"\nfilters = 2\nkernel = 1', 'kind = "maxpool2d"\nsize = 3\nstride = 1',
        'kind = "flatten"', SOFTMAX3], CE + "\nlabels = true"), None),
    "two_convs_avgpool_rect": (spec("c5", [1, 8, 6], [
        'kind = "conv2d"\nfilters = 2\nkernel = 3\npadding = 2\nactivation = "sigmoid"',
        'kind = "avgpool2d"\nsize = [2, 3]\nstride = [2, 1]',
        'kind = "conv2d"\nfilters = 3\nkernel = [3, 1]\nstride = [1, 2]\nactivation = "softplus"',
        'kind = "flatten"', DENSE2]), None),
    "conv_batchnorm_per_channel_relu": (spec("c6", [2, 5, 4], [
        'kind = "conv2d"\nfilters = 3\nkernel = 2\nbias = false', 'kind = "batchnorm"\nactivation = "relu"',
        'kind = "maxpool2d"\nsize = 2', 'kind = "flatten"', DENSE2]), None),
    "conv_layernorm_dropout": (spec("c7", [2, 4, 4], [
        'kind = "conv2d"\nfilters = 2\nkernel = 3\npadding = 1', 'kind = "layernorm"\nactivation = "tanh"',
        'kind = "dropout"\np = 0.5', 'kind = "avgpool2d"\nsize = 2', 'kind = "flatten"', SOFTMAX3], CE),
        None),
    "pool_on_the_input_hinge_l2": (spec("c8", [1, 4, 6], [
        'kind = "maxpool2d"\nsize = [2, 3]', 'kind = "flatten"', "units = 3"],
        'kind = "multiclass_hinge"\nlabels = true\nl2 = 0.1'), None),
    "tiny_conv_pool_oracle": (spec("t1", [1, 4, 3], [
        'kind = "conv2d"\nfilters = 2\nkernel = 2\npadding = [1, 0]\nstride = [2, 1]\nactivation = "relu"',
        'kind = "maxpool2d"\nsize = [1, 2]', 'kind = "flatten"', DENSE2]), (2, None)),
    "tiny_avgpool_softmax_oracle": (spec("t2", [2, 3, 3], [
        'kind = "conv2d"\nfilters = 1\nkernel = 2\nactivation = "tanh"', 'kind = "avgpool2d"\nsize = 2\nstride = 1',
        'kind = "flatten"', 'units = 2\nactivation = "softmax"'], CE + "\nlabels = true"), (2, None)),
    "tiny_batchnorm_oracle": (spec("t3", [1, 3, 3], [
        'kind = "conv2d"\nfilters = 2\nkernel = 2', 'kind = "batchnorm"', 'kind = "flatten"', "units = 1"]),
        (2, 6)),
}


def network(case):
    return symprop.loads(CASES[case][0], source=case)


def test_the_table_covers_every_image_kind_and_option():
    layers = [layer for case in CASES for layer in network(case).layers]
    kinds = {layer.kind for layer in layers}
    assert {"conv2d", "maxpool2d", "avgpool2d", "flatten", "batchnorm", "layernorm", "dropout"} <= kinds
    convs = [layer for layer in layers if layer.kind == "conv2d"]
    assert {layer.kernel for layer in convs} >= {(1, 1), (2, 2), (3, 3), (2, 3), (3, 1)}
    assert {layer.stride for layer in convs} >= {(1, 1), (2, 1), (3, 3), (1, 2)}
    assert {layer.padding for layer in convs} >= {(0, 0), (1, 1), (1, 0), (2, 2)}
    assert {layer.bias is None for layer in convs} == {True, False}
    assert {layer.input_shape[0] for layer in convs} >= {1, 2, 3}  # channels in
    pools = [layer for layer in layers if "pool" in layer.kind]
    assert any(layer.stride < layer.kernel for layer in pools)  # overlapping windows
    assert any(layer.kernel[0] != layer.kernel[1] for layer in pools)
    # rows left over by the stride: (H + 2p - k) % s != 0
    assert any((layer.input_shape[1] + 2 * layer.padding[0] - layer.kernel[0]) % layer.stride[0] for layer in convs)


# ---------------------------------------------------------------------------------------------
# (a) the generated module against PyTorch

RTOL_TORCH = 1e-10


@needs_torch
@pytest.mark.parametrize("case", CASES)
def test_generated_module_equals_pytorch_autograd(case):
    from symprop.reference import torch_loss_and_gradients

    net = network(case)
    module = compile_module(net, symprop.generate(net))
    for seed in (0, 1, 2):
        values = random_values(net, seed, batch=3)
        loss, grads = module.loss_and_gradients(**values)
        expected_loss, expected = torch_loss_and_gradients(net, values)
        assert loss == pytest.approx(expected_loss, rel=RTOL_TORCH), (case, seed)
        assert abs(loss) > 1e-3, case  # no vacuous case
        for name in net.differentiated:
            assert grads[name].shape == np.shape(values[name]), (case, name)
            assert np.abs(expected[name]).max() > 0 or name.startswith("b"), (case, name)
            error = normwise_error(grads[name], expected[name], expected_loss)
            assert error <= RTOL_TORCH, (case, seed, name, error)
        assert module.forward(**{k: v for k, v in values.items() if k != net.target}).shape == (3, net.outputs)


@needs_torch
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=images(), seed=st.integers(0, 2**16))
def test_random_convolutional_networks_equal_pytorch(text, seed):
    assert_random_spec_equals_pytorch(text, seed)


@needs_torch
def test_float32_images_stay_float32_and_close_to_float64():
    net = network("conv_batchnorm_per_channel_relu")
    module = compile_module(net)
    values = random_values(net, 0, batch=4)
    _, exact = module.loss_and_gradients(**values)
    _, single = module.loss_and_gradients(**{k: np.asarray(v, dtype=np.float32) for k, v in values.items()})
    for name in net.differentiated:
        assert single[name].dtype == np.float32, name
        assert normwise_error(single[name], exact[name], 1.0) < 1e-4, name


# ---------------------------------------------------------------------------------------------
# (b) the element-level oracle, exactly

ORACLE = [case for case, (_, oracle) in CASES.items() if oracle is not None]


@pytest.mark.parametrize("case", ORACLE)
def test_matrix_formulas_equal_the_element_level_oracle(case):
    net = network(case)
    batch, sample = CASES[case][1]
    checked = assert_oracle_agrees(net, batch=batch, seed=1, sample=sample)
    shapes = net.shapes(batch)
    assert checked == sum(min(sample or np.inf, int(np.prod(shapes[name]))) for name in net.differentiated)


def test_compact_per_channel_rule_equals_the_staged_chain_rule():
    net = network("conv_batchnorm_per_channel_relu")
    compact, staged = symbolic.derive(net), symbolic.derive(net, compact=False)
    assert "dL_dvar2" in {s.name for s in staged.steps} and "dL_dvar2" not in {s.name for s in compact.steps}
    values = random_arrays(net, batch=2, seed=0, digits=DIGITS)
    got, expected = gradients_at(compact, values), gradients_at(staged, values)
    for name in net.differentiated:
        for index in np.ndindex(got[name].shape):
            assert equal(got[name][index], expected[name][index]), (name, index)


def test_the_per_channel_batchnorm_reads_as_the_textbook_rule():
    text = symbolic.derive(network("conv_batchnorm_per_channel_relu")).text()
    # a1 is (N, 3, 4, 3): each channel's mean is over N samples of 4 x 3 pixels
    assert "  mu2 = sum_nij(a1)/(12*N)\n" in text
    assert "  dL_dgamma2 = sum_nij(delta2*xhat2)\n" in text and "  dL_dbeta2 = sum_nij(delta2)\n" in text
    # (n g - sum g - xhat sum(g xhat)) / (n sigma), n = 12 N, the sums by their names
    assert "  delta1 = (12*N*delta2 - xhat2*dL_dgamma2[c] - dL_dbeta2[c])*gamma2[c]/(12*N*sigma2)\n" in text


# ---------------------------------------------------------------------------------------------
# cs231n's published forward values


CS231N = """name = "cs231n_conv"
inputs = [3, 4, 4]
[[layers]]
kind = "conv2d"
filters = 3
kernel = 4
stride = 2
padding = 1
[[layers]]
kind = "flatten"
[loss]
kind = "squared_error"
"""


def test_cs231n_convolution_forward_values():
    x = np.linspace(-0.1, 0.5, num=2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    w = np.linspace(-0.2, 0.3, num=3 * 3 * 4 * 4).reshape(3, 3, 4, 4)
    b = np.linspace(-0.1, 0.2, num=3)
    module = compile_module(symprop.loads(CS231N))
    out = module.forward(x=x, W1=w, b1=b).reshape(2, 3, 2, 2)
    correct = np.array([[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]])  # out[0, 0], published
    assert np.abs(out[0, 0] - correct).max() < 1e-8  # cs231n prints 8 digits


# ---------------------------------------------------------------------------------------------
# `symprop check` on the bugs people write


SMALL = spec("small_cnn", [2, 4, 4], [
    'kind = "conv2d"\nfilters = 2\nkernel = 3\npadding = 1\nactivation = "relu"',
    'kind = "maxpool2d"\nsize = 2', 'kind = "flatten"', 'units = 3\nactivation = "softmax"'], CE, batch=3)


def small_backward(bug: str):
    """A hand-written (loop-free) backward of SMALL; `bug` plants one of the classic mistakes:
    "all_maxima" routes a pooled gradient to every maximum of its window (and to ties), "no_flip"
    computes dL/dW1 with the input and delta swapped in the correlation (a convolution)."""
    def backward(x, y, W1, b1, W4, b4):
        n = len(x)
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        windows = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # (n, 2, 4, 4, 3, 3)
        z1 = np.einsum("ncijpq,fcpq->nfij", windows, W1) + b1[:, None, None]
        a1 = np.maximum(z1, 0)
        blocks = a1.reshape(n, 2, 2, 2, 2, 2)  # (n, c, i, p, j, q): 2x2 windows, stride 2
        a2 = blocks.max(axis=(3, 5))
        z4 = a2.reshape(n, -1) @ W4 + b4
        e = np.exp(z4 - z4.max(axis=1, keepdims=True))
        a4 = e / e.sum(axis=1, keepdims=True)
        loss = -np.sum(y * np.log(a4)) / n
        delta4 = (a4 - y) / n
        da2 = (delta4 @ W4.T).reshape(n, 2, 2, 2)
        if bug == "all_maxima":
            mask = blocks == a2[:, :, :, None, :, None]
        else:  # the first maximum of each window, row-major
            flat = blocks.transpose(0, 1, 2, 4, 3, 5).reshape(n, 2, 2, 2, 4)
            first = np.eye(4, dtype=bool)[flat.argmax(axis=-1)].reshape(n, 2, 2, 2, 2, 2)
            mask = first.transpose(0, 1, 2, 4, 3, 5)
        da1 = (mask * da2[:, :, :, None, :, None]).reshape(n, 2, 4, 4)
        delta1 = da1 * (z1 > 0)
        if bug == "no_flip":
            dW1 = np.einsum("ncijpq,nfij->fcpq", windows, delta1)[:, :, ::-1, ::-1]
        else:
            dW1 = np.einsum("ncijpq,nfij->fcpq", windows, delta1)
        return loss, {"W1": dW1, "b1": delta1.sum(axis=(0, 2, 3)), "W4": a2.reshape(n, -1).T @ delta4,
                      "b4": delta4.sum(axis=0)}
    backward.__name__ = f"backward_{bug}"
    return backward


def tied_values(seed):
    """Values where two entries of a pooling window tie for the maximum (integers): where sending
    the gradient to every maximum is wrong."""
    rng = np.random.default_rng(seed)
    values = random_values(symprop.loads(SMALL), seed)
    values["x"] = rng.integers(-2, 3, size=(3, 2, 4, 4)).astype(float)
    values["W1"] = rng.integers(-1, 2, size=(2, 2, 3, 3)).astype(float)
    values["b1"] = np.array([0.5, 1.0])
    return values


def test_check_accepts_a_right_backward_and_pinpoints_the_classic_bugs():
    net = symprop.loads(SMALL)
    for seed in (0, 1):
        assert symprop.check(net, against=small_backward("none"), seed=seed).ok
        flipped = symprop.check(net, against=small_backward("no_flip"), seed=seed)
        assert not flipped.ok and flipped.wrong == ["W1"]
    values = tied_values(0)
    assert symprop.check(net, against=small_backward("none"), values=values).ok
    ties = symprop.check(net, against=small_backward("all_maxima"), values=values)
    assert not ties.ok and "W1" in ties.wrong and "W4" not in ties.wrong and "b4" not in ties.wrong
    row = next(r for r in ties.sections["backward_all_maxima vs generated"] if r.name == "W1")
    assert row.verdict == "WRONG" and "delta1" in row.should_be


# ---------------------------------------------------------------------------------------------
# The document, generated code and training


@needs_pdflatex
def test_cnn_document_compiles_with_index_notation(tmp_path):
    net = network("conv_batchnorm_per_channel_relu")
    document = symbolic.derive(net).latex()
    files.write_pdf(document, tmp_path / "cnn.pdf")
    assert (tmp_path / "cnn.pdf").read_bytes()[:5] == b"%PDF-"
    rows = [line for line in document.splitlines() if r"\tag*{in index notation}" in line]
    assert len(rows) == 4  # the convolution, the max-pooling, its gradient and dL/dW1
    conv = next(line for line in rows if line.startswith(r"\left(z_{1}\right)_{nfij} &= "))  # z1 = conv(x, W1)
    assert r"\sum_{c,p,q} \left(W_{1}\right)_{fcpq}\, x_{n,c,i+p,j+q}" in conv
    document = symbolic.derive(network("conv3_pad1_relu_maxpool2")).latex()
    weight = next(line for line in document.splitlines() if line.startswith(r"\left(\frac{\partial L}{\partial W_{1}}"))
    assert r"\sum_{n,i,j} \left(\delta_{1}\right)_{nfij}\, x_{n,c,i+p-1,j+q-1}" in weight  # a correlation with delta
    rows = [line for line in document.splitlines() if r"\operatorname{argmax}_{p,q}" in line]
    assert len(rows) == 1 and r"(h, w) = (2i, 2j)" in rows[0]  # the max-pool routing mask


def test_generated_cnn_code_names_each_gradient_and_loops_over_no_pixel():
    source = symprop.generate(network("conv3_pad1_relu_maxpool2"))
    body = source[source.index("def loss_and_gradients"):source.index("def _arrays")]
    # the large intermediates in buffers kept between calls (codegen.workspaces), bias and ReLU in
    # place, the ReLU's mask on the pooled gradient (codegen.fused), the convolution in the order of
    # the pooling that tiles it (codegen.pooled): (N, F, 2*2, 3*3)
    for line in ("t0 = _im2col(x, kernel=(3, 3), stride=(1, 1), padding=(1, 1), pooled=(2, 2), "  # once, for both
                 "out=work.empty('t0', (N, 2, 3, 3, 4, 9), x.dtype))",
                 "z1 = _conv2d(t0, W1, out=work.empty('z1', (N, 3, 4, 9), np.result_type(W1, b1, t0)))",
                 "z1 += b1[:, None, None]",
                 "a1 = np.maximum(z1, 0.0, out=z1)",
                 "a2 = _max_pool2d_pooled(a1, shape=(3, 3), out=work.empty('a2', (N, 3, 3, 3), a1.dtype))",
                 "delta1 = _max_pool2d_pooled_gradient(a1, a2, dL_da2*(a2 > 0), "
                 "out=work.empty('delta1', (N, 3, 4, 9), np.result_type(a1, a2, dL_da2)))",
                 "dL_dW1 = _conv2d_weight_gradient(t0, delta1)",
                 "dL_db1 = delta1.sum(axis=(0, 2, 3))"):
        assert "    " + line + "\n" in body, line
    assert "for " not in body
    assert "import" not in source.replace("import numpy as np", "")


def test_the_example_cnn_trains(tmp_path):
    from symprop.train import train

    net = symprop.load(EXAMPLES / "cnn.toml")
    result = train(net, steps=30, lr=0.5, seed=0)
    assert result.losses[-1] < 0.5 * result.losses[0]


# ---------------------------------------------------------------------------------------------
# Found by a review


@needs_torch
def test_a_batchnorm_after_a_convolution_takes_a_batch_of_one():
    # each channel has N x H x W values: one sample of 2 x 2 pixels is a batch PyTorch accepts
    from symprop.reference import torch_loss_and_gradients

    text = spec("bn1", [1, 3, 3], ['kind = "conv2d"\nfilters = 2\nkernel = 2', 'kind = "batchnorm"',
                                   'kind = "flatten"', "units = 1"], batch=1)
    net = symprop.loads(text)
    values = random_values(net, 0)
    loss, grads = compile_module(net).loss_and_gradients(**values)
    expected_loss, expected = torch_loss_and_gradients(net, values)
    assert loss == pytest.approx(expected_loss, rel=1e-10)
    assert np.abs(grads["W1"]).max() > 1e-3
    for name in net.differentiated:
        assert normwise_error(grads[name], expected[name], expected_loss) <= RTOL_TORCH, name
    assert symprop.check(symprop.loads(text.replace("batch = 1\n", "")), batch=1).ok


def test_a_residual_from_an_image_to_rows_is_a_spec_error():
    text = spec("res", [1, 2, 2], ['kind = "flatten"', "units = 4\nresidual = 2"])
    with pytest.raises(symprop.SpecError, match=r"layers\[2\]\.residual: adds the input, an image \(1, 2, 2\) "
                                                 r"per sample, to this layer's rows"):
        symprop.loads(text)


def test_check_counts_no_entry_at_a_max_pooling_tie_and_shows_the_others_errors():
    net = symprop.loads('name = "ties"\ninputs = [1, 4, 4]\nwrt_input = true\n[[layers]]\nkind = "maxpool2d"\nsize = 2\n'
                        '[[layers]]\nkind = "flatten"\n[[layers]]\nunits = 2\n[loss]\nkind = "squared_error"\n')
    values = random_values(net, 0, batch=2)
    values["x"] = np.array([[[[1, 1, 0, 2], [0, 1, 2, 2], [3, 0, 1, 1], [1, 3, 0, 0]]]] * 2, dtype=float)
    report = symprop.check(net, values=values)
    row = next(r for r in report.sections["generated vs numerical"] if r.name == "x")
    # every window of x ties: one entry gets the gradient, the finite differences see a kink there
    assert row.ok and row.note.endswith("entries near a kink not counted") and row.compared < row.size
    assert row.max_rel < 1e-6  # the figures are those of the entries counted
    assert any("a tie for a window's maximum" in note for note in report.notes)
    assert not any(note.startswith("numerical gradients on a seeded sample") for note in report.notes)


def test_a_normalization_before_a_pooling_keeps_its_gradient_as_a_step():
    # conv -> max-pool -> batchnorm: the batchnorm's input gradient is the max-pooling gradient's
    # argument; inlined there, its staged form ran off the page and lost its "staged, in full" row
    net = symprop.loads(spec("pool_bn", [2, 5, 4], ['kind = "conv2d"\nfilters = 2\nkernel = 2\nactivation = "tanh"',
                                                    'kind = "maxpool2d"\nsize = 2\nstride = 1', 'kind = "batchnorm"',
                                                    'kind = "flatten"', "units = 2"]))
    for compact in (True, False):
        steps = {s.name: s for s in symbolic.derive(net, compact=compact).steps}
        assert "dL_da2" in steps and steps["dL_da1"].expr.args[2].name == "dL_da2"  # (a1, a2, dL_da2)
    rows = [line.split(" &= ")[0] + " " + line.split(r"\tag*")[1] for line in symbolic.derive(net).latex().splitlines()
            if r"\tag*{" in line and "staged" in line or "normalization rule" in line]
    name = r"\frac{\partial L}{\partial a_{2}}"
    assert rows[-2:] == [name + " {staged, in full}\\\\", name + " {the normalization rule: the same, simplified}\\\\"]
