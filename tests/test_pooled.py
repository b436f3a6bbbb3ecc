"""A convolution computed in the order of the max pooling that tiles it (`codegen.pooled`): where
it applies and where it must not (the input's gradient through the convolution, overlapping
windows, rows left over, a normalization, an average pooling), and that it changes no value
beyond rounding (the weight and bias gradients sum the pixels in another order): every function,
float32 and float64, ties in the windows, and random image networks, against the module in the
image layout."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import networks
import symprop
from symprop.check import check, random_values
from symprop.codegen import module
from symprop.codegen.files import compile_module

FUNCTIONS = ("forward", "loss", "gradients", "loss_and_gradients")


def _text(*layers, image=(2, 6, 6), wrt_input=False):
    blocks = "".join(f"[[layers]]\n{layer}\n" for layer in layers)
    return (f'name = "pooled"\ninputs = {list(image)}\nwrt_input = {str(wrt_input).lower()}\n{blocks}'
            '[[layers]]\nkind = "flatten"\n[[layers]]\nunits = 3\nactivation = "softmax"\n'
            '[loss]\nkind = "cross_entropy"\n')


def _conv(activation="relu", kernel=3, padding=1, extra=""):
    return f'kind = "conv2d"\nfilters = 3\nkernel = {kernel}\npadding = {padding}\nactivation = "{activation}"\n{extra}'


MAX2 = 'kind = "maxpool2d"\nsize = 2'
# name -> (spec, how many convolutions are in pooling order)
CASES = {
    "relu 2x2": (_text(_conv(), MAX2), 1),
    "tanh, no bias": (_text(_conv("tanh", extra="bias = false"), MAX2), 1),
    "leaky ReLU (its slope on the image-size gradient)": (_text(_conv("leaky_relu"), MAX2), 1),
    "identity, 2x3 windows": (_text(_conv("identity"), 'kind = "maxpool2d"\nsize = [2, 3]'), 1),
    "two blocks: the second's input gradient reads its delta": (
        _text(_conv(), MAX2, _conv("relu"), 'kind = "maxpool2d"\nsize = 3', image=(1, 6, 6)), 1),
    "an L2 term in the weight gradient": (_text(_conv(), MAX2).replace('"cross_entropy"', '"cross_entropy"\nl2 = 0.2'), 1),
    "the input's gradient": (_text(_conv(), MAX2, wrt_input=True), 0),
    "overlapping windows": (_text(_conv(), 'kind = "maxpool2d"\nsize = 2\nstride = 1'), 0),
    "rows left over": (_text(_conv(padding=0), MAX2, image=(2, 7, 7)), 0),
    "batchnorm between": (_text(_conv("identity"), 'kind = "batchnorm"\nactivation = "relu"', MAX2), 0),
    "average pooling": (_text(_conv(), 'kind = "avgpool2d"\nsize = 2'), 0),
}


def _pair(network, monkeypatch):
    reordered = compile_module(network)
    with monkeypatch.context() as patch:
        patch.setattr(module, "pooled", lambda lines, results, shapes: lines)
        image = compile_module(network)
    return reordered, image


def _close(got, expected, what):
    if isinstance(expected, dict):
        assert got.keys() == expected.keys(), what
        for key in expected:
            _close(got[key], expected[key], f"{what}[{key}]")
    elif isinstance(expected, tuple):
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _close(g, e, f"{what}[{i}]")
    else:
        got, expected = np.asarray(got), np.asarray(expected)
        assert got.dtype == expected.dtype, what
        # the same products, summed over the pixels in another order: a few roundings of each
        # entry, and an absolute floor for entries whose terms cancel (a bias gradient's sum of
        # positive and negative deltas): the rounding of a sum of a few hundred terms of the
        # values' size, O(1) here (random values of unit scale), another BLAS or CPU included
        eps = np.finfo(expected.dtype).eps if expected.dtype.kind == "f" else 0.0
        scale = max(np.max(np.abs(expected)) if expected.size else 0.0, 1.0)
        np.testing.assert_allclose(got, expected, rtol=64 * eps, atol=256 * eps * scale, err_msg=what)


def _values(network, seed, dtype, whole=False):
    values = random_values(network, seed, batch=3)
    if whole:  # whole numbers: ties in the windows, the first maximum takes the gradient
        values = {k: np.round(2 * v) if np.asarray(v).dtype.kind == "f" else v for k, v in values.items()}
    return {k: v.astype(dtype) if np.asarray(v).dtype.kind == "f" else v for k, v in values.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_where_the_convolution_is_in_pooling_order_and_where_not(name, monkeypatch):
    text, count = CASES[name]
    network = symprop.loads(text)
    source = symprop.generate(network)
    gradients = source.split("def gradients(")[1].split("\ndef ")[0]
    assert gradients.count("pooled=(") == count
    assert gradients.count("_max_pool2d_pooled_gradient(") == count
    reordered, image = _pair(network, monkeypatch)
    for seed, dtype, whole in [(0, np.float64, False), (1, np.float32, False), (2, np.float64, True)]:
        values = _values(network, seed, dtype, whole)
        for function in FUNCTIONS:
            arguments = {k: values[k] for k in reordered.ARGUMENTS[function]}
            _close(getattr(reordered, function)(**arguments), getattr(image, function)(**arguments),
                   f"{name} {function} seed {seed}")


def test_symprop_check_of_a_convolution_in_pooling_order():
    # `check` appends functions of its own to the module (every step, by name: the image layout)
    network = symprop.loads(CASES["relu 2x2"][0])
    assert "pooled=(2, 2)" in symprop.generate(network)
    report = check(network)
    assert report.ok, report


@st.composite
def pooled_images(draw) -> str:
    """A random convolutional network whose convolutions a max pooling tiles exactly (any kernel,
    stride, padding, activation, bias), with dropout or a normalization around them, the input's
    gradient or not, any loss, with or without L2: the networks the rewrite is for, and its edges."""
    shape = [draw(st.integers(1, 3)), draw(st.integers(2, 8)), draw(st.integers(2, 8))]
    lines = ['name = "random_pooled"', f"inputs = {shape}", f"wrt_input = {str(draw(st.booleans())).lower()}"]
    for _ in range(draw(st.integers(1, 2))):
        kernel = [draw(st.integers(1, min(3, shape[1] + 2))), draw(st.integers(1, min(3, shape[2] + 2)))]
        padding = [draw(st.integers(0, 1)) if kernel[0] <= shape[1] else 1,
                   draw(st.integers(0, 1)) if kernel[1] <= shape[2] else 1]
        stride = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
        out = [(shape[1 + i] + 2 * padding[i] - kernel[i]) // stride[i] + 1 for i in (0, 1)]
        shape = [draw(st.integers(1, 3))] + out
        lines += ["", "[[layers]]", 'kind = "conv2d"', f"filters = {shape[0]}", f"kernel = {kernel}",
                  f"stride = {stride}", f"padding = {padding}", f'activation = "{draw(st.sampled_from(networks.HIDDEN))}"']
        if draw(st.booleans()):
            lines.append("bias = false")
        if draw(st.integers(0, 5)) == 0:
            lines += ["", "[[layers]]", 'kind = "dropout"', "p = 0.5"]
        sizes = [(h, w) for h in range(1, out[0] + 1) for w in range(1, out[1] + 1)
                 if out[0] % h == 0 and out[1] % w == 0 and (h, w) != (1, 1)]
        if sizes:
            h, w = draw(st.sampled_from(sizes))
            lines += ["", "[[layers]]", 'kind = "maxpool2d"', f"size = [{h}, {w}]"]
            shape = [shape[0], out[0] // h, out[1] // w]
        after = draw(st.sampled_from(["", "", "", "dropout", "batchnorm"]))
        if after == "dropout":
            lines += ["", "[[layers]]", 'kind = "dropout"', "p = 0.5"]
        elif after == "batchnorm":
            lines += ["", "[[layers]]", 'kind = "batchnorm"', f'activation = "{draw(st.sampled_from(networks.HIDDEN))}"']
    lines += ["", "[[layers]]", 'kind = "flatten"']
    loss = draw(st.sampled_from(["squared_error", "cross_entropy", "multiclass_hinge"]))
    last = "softmax" if loss == "cross_entropy" else "identity"
    lines += ["", "[[layers]]", f"units = {draw(st.integers(2, 3))}", f'activation = "{last}"', "", "[loss]",
              f'kind = "{loss}"', f"l2 = {draw(st.sampled_from([0.0, 0.1]))}"]
    return "\n".join(lines) + "\n"


def test_the_random_networks_are_mostly_reordered():
    # the property test below is about the rewrite: most of its networks must get it
    reordered = []

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(text=pooled_images())
    def count(text):
        reordered.append("pooled=(" in symprop.generate(symprop.loads(text)).split("\ndef _arrays(")[0])
    count()
    assert len(reordered) == 60 and sum(reordered) >= 20, sum(reordered)


@settings(max_examples=40, deadline=None)
@given(text=st.one_of(pooled_images(), networks.images()), seed=st.integers(0, 2**16), single=st.booleans())
def test_random_image_networks_equal_the_image_layout(text, seed, single):
    network = symprop.loads(text)
    with pytest.MonkeyPatch().context() as patch:
        reordered, image = _pair(network, patch)
    values = random_values(network, seed, batch=2) if network.batch is None else random_values(network, seed)
    dtype = np.float32 if single else np.float64
    values = {k: v.astype(dtype) if np.asarray(v).dtype.kind == "f" else v for k, v in values.items()}
    for function in FUNCTIONS:
        arguments = {k: values[k] for k in reordered.ARGUMENTS[function]}
        _close(getattr(reordered, function)(**arguments), getattr(image, function)(**arguments), function)
