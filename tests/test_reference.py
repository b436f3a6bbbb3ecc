"""The PyTorch reference (`symprop.reference`) on every new layer kind and loss, against a NumPy
forward pass written out here by hand and its finite-difference gradients.

Each spec of the table is small; its values are seeded and redrawn until every ReLU pre-activation
and every hinge term is at least AWAY from its kink, so that the finite differences see a smooth
function. The NumPy forward shares nothing with symprop or the reference: it follows the contract's
words (sections 1 and 1a).
"""

import numpy as np
import pytest

import symprop

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the reference needs it")

from symprop.reference import torch_loss_and_gradients  # noqa: E402  (needs torch)

N = 4  # samples, where the spec leaves the batch open
AWAY = 0.05  # every kink this far off: the five-point steps (at most 2e-3 of an entry) never cross one
# The finite differences (symprop.numerical) are five-point estimates accepted once two successive
# steps agree to 1e-7: their truncation error is O(h^4) ~ 1e-12 and their rounding about 1e-13 of
# the loss, so a right gradient is within ~1e-9 of them normwise; a wrong formula (a factor, a
# missing branch or term) is off by O(1). 1e-6 sits well between the two.
GRAD_RTOL = 1e-6
FLOOR = 1e-6  # a gradient zero up to rounding (a bias just before a batchnorm) has no scale: floor it
LOSS_RTOL = 1e-12  # the same float64 sums in another order


def spec(name, body, layout="row", inputs=3, wrt_input=False):
    return (f'name = "{name}"\nlayout = "{layout}"\ninputs = {inputs}\n'
            f"wrt_input = {str(wrt_input).lower()}\n{body}")


HINGE = '[loss]\nkind = "multiclass_hinge"\n'
SQUARED = '[loss]\nkind = "squared_error"\n'

CASES = {
    "batchnorm_scale_shift_relu": spec("bn1", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nkind = "batchnorm"\nactivation = "relu"
[[layers]]\nunits = 2
""" + SQUARED + "scale = 0.5\n"),
    "batchnorm_no_scale_no_shift": spec("bn2", """
[[layers]]\nunits = 4
[[layers]]\nkind = "batchnorm"\nscale = false\nshift = false\neps = 1e-3\nactivation = "sigmoid"
[[layers]]\nunits = 2
""" + SQUARED + 'reduction = "sum"\n'),
    "batchnorm_scale_only_softmax_last": spec("bn3", """
[[layers]]\nunits = 3\nactivation = "tanh"
[[layers]]\nkind = "batchnorm"\nshift = false\nactivation = "softmax"
[loss]\nkind = "cross_entropy"\nlabels = true
""", wrt_input=True),
    "layernorm_row": spec("ln1", """
[[layers]]\nunits = 4\nactivation = "leaky_relu"\nnegative_slope = 0.2
[[layers]]\nkind = "layernorm"\nactivation = "tanh"
[[layers]]\nunits = 3
""" + SQUARED),
    "layernorm_row_on_input": spec("ln2", """
[[layers]]\nkind = "layernorm"\nscale = "g"\nshift = false
[[layers]]\nunits = 2\nactivation = "softplus"
""" + SQUARED, wrt_input=True),
    "layernorm_column_sigmoid_last": spec("ln3", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nkind = "layernorm"\neps = 0.01\nactivation = "sigmoid"
[loss]\nkind = "binary_cross_entropy"
""", layout="column", wrt_input=True),
    "dropout_row_p0": spec("do1", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nkind = "dropout"\np = 0.0
[[layers]]\nunits = 2
""" + SQUARED),
    "dropout_row_p05_on_input_hinge": spec("do2", """
[[layers]]\nkind = "dropout"\np = 0.5
[[layers]]\nunits = 4\nactivation = "relu"
[[layers]]\nkind = "dropout"\np = 0.5\nmask = "keep"
[[layers]]\nunits = 3
""" + HINGE + "labels = true\n", wrt_input=True),
    "dropout_column_p0": spec("do3", """
[[layers]]\nunits = 4\nactivation = "sigmoid"
[[layers]]\nkind = "dropout"\np = 0
[[layers]]\nunits = 2
""" + SQUARED, layout="column"),
    "dropout_column_p05_last": spec("do4", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nkind = "dropout"\np = 0.5
""" + SQUARED + 'reduction = "sum"\n', layout="column", wrt_input=True),
    "residual_true": spec("res1", """
[[layers]]\nunits = 3\nactivation = "tanh"
[[layers]]\nunits = 3\nactivation = "relu"\nresidual = true
[[layers]]\nunits = 2
""" + SQUARED),
    "residual_k2_column": spec("res2", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nunits = 3\nactivation = "tanh"
[[layers]]\nunits = 4\nactivation = "softplus"\nresidual = 2
[[layers]]\nunits = 1
""" + SQUARED, layout="column"),
    "residual_reaching_the_input": spec("res3", """
[[layers]]\nunits = 5\nactivation = "tanh"
[[layers]]\nunits = 3\nactivation = "leaky_relu"\nresidual = 2
[[layers]]\nunits = 2\nresidual = false
""" + SQUARED, wrt_input=True),
    "tied_autoencoder_row_l2": spec("tied1", """
[[layers]]\nunits = 3\nactivation = "tanh"
[[layers]]\nunits = 4\nweight = "W1"\ntranspose_weight = true
""" + SQUARED + "scale = 0.5\nl2 = 0.1\n", inputs=4),
    "tied_autoencoder_column": spec("tied2", """
[[layers]]\nunits = 3\nactivation = "sigmoid"\nbias = false
[[layers]]\nunits = 4\nweight = "W1"\ntranspose_weight = true\nbias = "c"
""" + SQUARED + 'reduction = "sum"\nl2 = 0.25\n', layout="column", inputs=4, wrt_input=True),
    "hinge_labels_mean_margin_1": spec("h1", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nunits = 3
""" + HINGE + "labels = true\n"),
    "hinge_one_hot_sum_margin_05": spec("h2", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nunits = 3
""" + HINGE + 'reduction = "sum"\nmargin = 0.5\nscale = 2.0\n'),
    "hinge_labels_sum_l2": spec("h3", """
[[layers]]\nunits = 5\nactivation = "relu"
[[layers]]\nunits = 4
""" + HINGE + 'labels = true\nreduction = "sum"\nl2 = 0.05\n'),
    "hinge_one_hot_mean_margin_05_l2": spec("h4", """
[[layers]]\nunits = 3
""" + HINGE + "margin = 0.5\nl2 = 0.2\n", wrt_input=True),
    "hinge_column_labels": spec("h5", """
[[layers]]\nunits = 4\nactivation = "tanh"
[[layers]]\nunits = 3
""" + HINGE + "labels = true\nmargin = 0.5\n", layout="column", wrt_input=True),
    "hinge_column_one_hot": spec("h6", """
[[layers]]\nunits = 4\nactivation = "softplus"
[[layers]]\nunits = 3
""" + HINGE + 'reduction = "sum"\n', layout="column"),
}


# ---------------------------------------------------------------------------------------------
# The NumPy forward, by hand

ACTIVATIONS = {
    "identity": lambda z, s: z,
    "sigmoid": lambda z, s: 1 / (1 + np.exp(-z)),
    "tanh": lambda z, s: np.tanh(z),
    "relu": lambda z, s: np.maximum(z, 0.0),
    "leaky_relu": lambda z, s: np.where(z > 0, z, s * z),
    "softplus": lambda z, s: np.log1p(np.exp(z)),
    "softmax": lambda z, s: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True),
}


def numpy_forward(net, arrays, unbiased=False, hinge_counts_label=False):
    """(loss, distance of the nearest kink) of `net` at `arrays` (0 when no hinge term is active).
    The two flags are wrong variants, for the tests that show a wrong formula is caught."""
    row = net.layout == "row"
    outputs, kinks = [arrays[net.input]], [np.inf]
    for l, layer in enumerate(net.layers, 1):
        a = outputs[-1]
        if layer.kind == "dropout":
            outputs.append(arrays[layer.mask] * a / (1 - layer.p))
            continue
        if layer.kind == "dense":
            W = arrays[layer.weight].T if layer.transpose_weight else arrays[layer.weight]
            z = a @ W if row else W @ a
            if layer.bias is not None:
                z = z + arrays[layer.bias]
        else:
            axis = 0 if layer.kind == "batchnorm" else -1  # over the batch, or over each sample's features
            count = a.shape[axis]
            mean = a.mean(axis, keepdims=True)
            var = ((a - mean) ** 2).sum(axis, keepdims=True) / (count - 1 if unbiased else count)
            z = (a - mean) / np.sqrt(var + layer.eps)
            if layer.scale is not None:
                z = arrays[layer.scale] * z
            if layer.shift is not None:
                z = z + arrays[layer.shift]
        if "relu" in layer.activation:
            kinks.append(np.abs(z).min())
        a = ACTIVATIONS[layer.activation](z, layer.negative_slope)
        if layer.residual:
            a = a + outputs[l - layer.residual]
        outputs.append(a)
    yhat, y, loss = outputs[-1], arrays[net.target], net.loss
    if not row:  # one sample: a batch of one
        yhat, y = yhat[None], (np.reshape(y, 1) if loss.labels else y[None])
    if loss.kind in ("cross_entropy", "multiclass_hinge"):
        labels = np.asarray(y, dtype=int) if loss.labels else y.argmax(-1)
        onehot = np.eye(yhat.shape[1])[labels]
    if loss.kind == "squared_error":
        per, count = (yhat - y) ** 2, yhat.size
    elif loss.kind == "binary_cross_entropy":
        per, count = -(y * np.log(yhat) + (1 - y) * np.log(1 - yhat)), yhat.size
    elif loss.kind == "cross_entropy":
        per, count = -np.log((onehot * yhat).sum(-1)), len(yhat)
    else:  # multiclass_hinge: the terms j != label
        u = yhat - (onehot * yhat).sum(-1, keepdims=True) + loss.margin
        others = onehot == 0
        kinks.append(np.abs(u[others]).min())
        if not np.any(u[others] > 0):  # no active term: a zero loss and gradient, a draw that tests nothing
            kinks.append(0.0)
        per, count = np.where(others | hinge_counts_label, np.maximum(u, 0.0), 0.0), len(yhat)
    data = per.sum() / (count if loss.reduction == "mean" else 1)
    penalty = sum((arrays[name] ** 2).sum() for name in dict.fromkeys(
        layer.weight for layer in net.layers if layer.kind == "dense"))
    return loss.scale * data + loss.l2 * penalty, min(kinks)


def draw_values(net, seed):
    """Seeded values for every array, redrawn until every kink is at least AWAY."""
    for attempt in range(200):
        rng = np.random.default_rng(1000 * seed + attempt)
        values = {}
        for name, shape in net.shapes(N).items():
            if name == net.target and net.loss.labels:
                values[name] = np.asarray(rng.integers(0, net.outputs, size=shape))
            elif name == net.target and net.loss.kind in ("cross_entropy", "multiclass_hinge"):
                values[name] = np.eye(net.outputs)[rng.integers(0, net.outputs, size=shape[:-1])]
            elif name == net.target and net.loss.kind == "binary_cross_entropy":
                values[name] = rng.uniform(0, 1, size=shape)
            elif name in net.masks:  # the mask is an input: mixed 0/1 whatever p is
                values[name] = (rng.uniform(size=shape) < 0.7).astype(float)
            else:
                values[name] = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.25, 1.25, size=shape)
        if numpy_forward(net, values)[1] >= AWAY:
            return values
    raise AssertionError(f"no values away from the kinks for {net.name}")


def normwise_error(got, expected, loss):
    scale = max(np.abs(expected).max(initial=0.0), FLOOR * max(1.0, abs(loss)))
    return np.abs(np.asarray(got) - expected).max(initial=0.0) / scale


# ---------------------------------------------------------------------------------------------
# The tests


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", list(CASES))
def test_reference_matches_a_hand_written_numpy_forward(case, seed):
    net = symprop.loads(CASES[case], source=case)
    values = draw_values(net, seed)
    loss, grads = torch_loss_and_gradients(net, values)
    expected_loss, _ = numpy_forward(net, values)
    assert loss == pytest.approx(expected_loss, rel=LOSS_RTOL, abs=1e-300)
    numerical = symprop.numerical_gradients(lambda **arrays: numpy_forward(net, arrays)[0],
                                            values, net.differentiated)
    assert set(grads) == set(net.differentiated)
    for name in net.differentiated:
        assert grads[name].shape == np.shape(values[name]), name
        assert normwise_error(grads[name], numerical[name], loss) <= GRAD_RTOL, (name, grads[name], numerical[name])


def test_the_table_covers_every_new_kind_and_option():
    nets = [symprop.loads(text) for text in CASES.values()]
    layers = [(net, layer) for net in nets for layer in net.layers]
    kinds = {(layer.kind, net.layout) for net, layer in layers}
    assert {("batchnorm", "row"), ("layernorm", "row"), ("layernorm", "column"),
            ("dropout", "row"), ("dropout", "column")} <= kinds
    assert {layer.p for _, layer in layers if layer.kind == "dropout"} == {0.0, 0.5}
    batchnorms = [layer for _, layer in layers if layer.kind == "batchnorm"]
    assert {(layer.scale is None, layer.shift is None) for layer in batchnorms} >= {(False, False), (True, True)}
    assert any(layer.activation != "identity" for layer in batchnorms)
    residuals = {(layer.residual, layer.residual == l) for net in nets for l, layer in enumerate(net.layers, 1)}
    assert {(1, False), (2, False), (2, True)} <= residuals
    assert any(layer.transpose_weight for _, layer in layers)
    hinges = {(net.loss.labels, net.loss.reduction, net.loss.margin, net.loss.l2 > 0, net.layout)
              for net in nets if net.loss.kind == "multiclass_hinge"}
    assert {h[0] for h in hinges} == {True, False} and {h[1] for h in hinges} == {"mean", "sum"}
    assert {h[2] for h in hinges} == {1.0, 0.5} and any(h[3] for h in hinges)
    assert {h[4] for h in hinges} == {"row", "column"}


@pytest.mark.parametrize("case, wrong", [
    ("batchnorm_scale_shift_relu", {"unbiased": True}),  # the variance divided by N - 1
    ("batchnorm_no_scale_no_shift", {"unbiased": True}),
    ("layernorm_row", {"unbiased": True}),
    ("hinge_labels_mean_margin_1", {"hinge_counts_label": True}),  # the j = label term counted too
    ("hinge_column_one_hot", {"hinge_counts_label": True}),
])
def test_a_wrong_formula_is_told_apart(case, wrong):
    net = symprop.loads(CASES[case], source=case)
    values = draw_values(net, 0)
    loss, grads = torch_loss_and_gradients(net, values)
    wrong_loss, _ = numpy_forward(net, values, **wrong)
    assert abs(loss - wrong_loss) > 1e-3 * abs(loss)


def test_a_tied_weight_is_penalised_once_and_gets_both_uses():
    net = symprop.loads(CASES["tied_autoencoder_row_l2"])
    values = draw_values(net, 0)
    loss, grads = torch_loss_and_gradients(net, values)
    assert set(grads) == {"W1", "b1", "b2"} and grads["W1"].shape == (4, 3)
    no_l2 = symprop.loads(CASES["tied_autoencoder_row_l2"].replace("l2 = 0.1", "l2 = 0.0"))
    loss0, grads0 = torch_loss_and_gradients(no_l2, values)
    assert loss - loss0 == pytest.approx(0.1 * (values["W1"] ** 2).sum(), rel=1e-12)  # once, not twice
    np.testing.assert_allclose(grads["W1"] - grads0["W1"], 0.2 * values["W1"], rtol=1e-12, atol=1e-15)


def test_hinge_derivative_at_a_kink_is_zero():
    # scores b = (0, -1, 0.5) for every sample, label 0, margin 1: the term of class 1 is exactly
    # max(0, -1 - 0 + 1) = max(0, 0), whose derivative the contract takes as 0
    net = symprop.loads(spec("kink", "[[layers]]\nunits = 3\n" + HINGE + 'labels = true\nreduction = "sum"\n'))
    values = {"x": np.ones((2, 3)), "y": np.zeros(2, dtype=np.int64), "W1": np.zeros((3, 3)),
              "b1": np.array([0.0, -1.0, 0.5])}
    loss, grads = torch_loss_and_gradients(net, values)
    assert loss == pytest.approx(2 * 1.5)  # class 2 only: 0.5 - 0 + 1, per sample
    np.testing.assert_array_equal(grads["b1"], [-2.0, 0.0, 2.0])
