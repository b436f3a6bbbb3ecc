"""symprop.trace: learner-style NumPy functions traced, derived, generated, and proved equal to
central differences of the function itself and to PyTorch float64; refusals name file and line."""

import inspect

import numpy as np
import pytest
from numpy import asarray

import symprop
from learner import CASES
import learner


def _flat(arrays: dict) -> dict:
    """The arrays by name, a parameter dict's entries under their keys."""
    out = {}
    for key, value in arrays.items():
        out.update(value) if isinstance(value, dict) else out.__setitem__(key, value)
    return out


def _value(fn, arrays: dict):
    value = fn(**arrays)
    return value[0] if isinstance(value, tuple) else value


def _module(program) -> dict:
    namespace = {}
    exec(compile(symprop.generate(program), f"<{program.name}>", "exec"), namespace)
    return namespace


def _with(arrays: dict, changed: dict) -> dict:
    """`arrays` with the entries of `changed` put in (inside a parameter dict too)."""
    out = {}
    for key, value in arrays.items():
        if isinstance(value, dict):
            out[key] = {k: changed.get(k, v) for k, v in value.items()}
        else:
            out[key] = changed.get(key, value)
    return out


def _normwise(got, expected) -> float:
    return float(np.max(np.abs(got - expected)) / max(np.max(np.abs(expected)), 1e-12))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_traced_gradients_equal_central_differences(case, seed):
    fn, make = CASES[case]
    rng = np.random.default_rng(seed)
    arrays = make(rng)
    program = symprop.trace(fn, **arrays)
    module = _module(program)
    flat = _flat(arrays)
    given = {a.name: flat[a.name] for a in program.arrays if a.role != "upstream"}
    value = _value(fn, arrays)
    np.testing.assert_allclose(module["forward"](**given), value, rtol=1e-12, atol=1e-12)
    dout = None if program.scalar else rng.normal(size=np.shape(value))

    def f(**changed):
        v = _value(fn, _with(arrays, changed))
        return float(v) if dout is None else float(np.sum(v * dout))

    expected = symprop.numerical_gradients(f, given, list(program.wrt))
    got = module["gradients"](**given, **({} if dout is None else {"dout": dout}))
    assert set(got) == set(program.wrt) == {a.name for a in program.arrays if a.role == "differentiated"}
    for name in program.wrt:
        assert got[name].shape == np.shape(flat[name])
        # central differences of the user's own function; away from kinks (random values)
        assert _normwise(got[name], expected[name]) < 1e-6, name


def _single(value):
    """`value` with its float arrays (inside a parameter dict too) in float32."""
    if isinstance(value, dict):
        return {key: _single(v) for key, v in value.items()}
    value = np.asarray(value)
    return value.astype(np.float32) if value.dtype.kind == "f" else value


@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_arrays_give_float32_gradients(case):
    # where the learner's own function computes in float32, so do its gradients (a mask as
    # .astype(float), a constant gradient np.broadcast_to(1, ...) + 0.0 and the count of the
    # maxima in a max's gradient were float64 and made them float64), close to the float64 ones
    fn, make = CASES[case]
    arrays = make(np.random.default_rng(0))
    single = {key: _single(value) for key, value in arrays.items()}
    with np.errstate(all="ignore"):
        value = np.asarray(_value(fn, single))
    module = _module(symprop.trace(fn, **single))
    program = symprop.trace(fn, **arrays)
    exact = _module(program)
    flat, flat64 = _flat(single), _flat(arrays)
    given = {a.name: flat[a.name] for a in program.arrays if a.role != "upstream"}
    given64 = {a.name: flat64[a.name] for a in program.arrays if a.role != "upstream"}
    if not program.scalar:
        dout = np.random.default_rng(1).normal(size=value.shape)
        given["dout"], given64["dout"] = dout.astype(np.float32), dout
    gradients, expected = module["gradients"](**given), exact["gradients"](**given64)
    for name, gradient in gradients.items():
        if value.dtype == np.float32:  # (a float64 one-hot or buffer of the learner's makes it float64)
            assert gradient.dtype == np.float32, (name, gradient.dtype)
        # float32 rounding (6e-8 relative) through a few operations: 1e-4 of the gradient's scale
        assert _normwise(gradient, expected[name]) < 1e-4, (name, _normwise(gradient, expected[name]))


def zeros_like_plus(x):
    return np.sum((np.zeros_like(x) + x) ** 2)


def ones_like_times(x):
    return np.sum(np.ones_like(x) * x ** 2)


def zeros_of_its_dtype(x):
    h = np.zeros((x.shape[0], 3), dtype=x.dtype)
    for t in range(x.shape[1]):
        h = np.tanh(h + x[:, t:t + 1])
    return np.sum(h ** 2)


@pytest.mark.parametrize("fn, traced, called", [
    (fn, traced, called) for fn in (zeros_like_plus, ones_like_times, zeros_of_its_dtype)
    for traced, called in ((np.float32, np.float32), (np.float64, np.float32), (np.float32, np.float64))
    if not (fn is zeros_of_its_dtype and traced == np.float64)])  # traced in float64, dtype=x.dtype is
# np.zeros(shape, dtype=np.float64) to the trace: NumPy's default, which stays float64
def test_zeros_like_an_array_take_the_dtype_of_the_arrays(fn, traced, called):
    # np.zeros_like(x) and np.zeros(shape, dtype=x.dtype) were float64 zeros in the module: a
    # float32 LSTM with c = np.zeros_like(h0) gave a float64 forward and float64 gradients
    x = np.random.default_rng(0).normal(size=(2, 4))
    module = _module(symprop.trace(fn, x=x.astype(traced)))
    value, gradients = module["loss_and_gradients"](x=x.astype(called))
    assert gradients["x"].dtype == called
    exact = symprop.numerical_gradients(fn, {"x": x}, "x")["x"]
    assert _normwise(gradients["x"], exact) < (1e-4 if called == np.float32 else 1e-8)


def computed_in_float64(x, W):
    z = (x @ W).astype(np.float64)  # the loss in double precision, from float32 arrays
    return np.sum(np.tanh(z) ** 2 + 1e-9)


def test_astype_float64_computes_on_in_float64():
    # .astype(np.float64) was dropped: the module computed in float32 where NumPy computes float64
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(4, 2)).astype(np.float32)
    module = _module(symprop.trace(computed_in_float64, x=x, W=W))
    # float64 after the cast: 1e-12, where float32 would be 1e-7 off (SymPy may order the sum otherwise)
    assert module["loss"](x=x, W=W) == pytest.approx(computed_in_float64(x, W), rel=1e-12)
    gradients = module["gradients"](x=x, W=W)
    t = np.tanh((x @ W).astype(np.float64))
    dz = 2 * t * (1 - t ** 2)
    np.testing.assert_allclose(gradients["W"], x.T.astype(np.float64) @ dz, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gradients["x"], dz @ W.T.astype(np.float64), rtol=1e-6, atol=1e-7)
    assert gradients["x"].dtype == gradients["W"].dtype == np.float64


def scaled_then_widened(x):
    return (x * 0.5).astype(np.float64) + 1e-9  # NumPy: x * 0.5 is float32 (a Python number is weak)


def narrowed(x, W):
    return np.sum(np.tanh((x @ W).astype(np.float32)) ** 2)


def test_a_python_number_keeps_float32_and_a_cast_after_it_is_kept():
    # the trace took x * 0.5 for float64 (NumPy 2 keeps float32), so the cast after it was dropped
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    module = _module(symprop.trace(scaled_then_widened, x=x))
    np.testing.assert_allclose(module["forward"](x=x), scaled_then_widened(x), rtol=1e-12)  # float32: 1e-9 off
    assert module["forward"](x=x).dtype == np.float64


def test_check_of_a_function_that_narrows_to_float32_computes_in_float64():
    # finite differences of a float32 value keep about 3 digits: symprop's own gradients were WRONG
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    program = symprop.trace(narrowed, x=x, W=W)
    assert program.narrowed
    module = _module(program)
    assert module["_SINGLE"] is np.float32 and module["loss"](x=x, W=W) == pytest.approx(narrowed(x, W), rel=1e-6)
    report = symprop.check(program)
    assert report.ok, report.format()
    assert any("checked in float64 throughout" in note for note in report.notes)


def test_maximum_with_a_list_is_a_trace_error():
    with pytest.raises(symprop.TraceError, match="a Python list or tuple used as an array"):
        symprop.trace(lambda x: np.sum(np.maximum(x, [0.0, 0.5, 1.0])), x=np.ones(3))


def clip_far(x):
    return np.sum(np.clip(x, -1e4, 1e4) ** 2)  # bounds far from the values (a guard before exp)


def maximum_far(x):
    return np.sum(np.maximum(x, -1e8) ** 2)


def minimum_far(x):
    return np.sum(np.minimum(1e8, x) ** 2)


@pytest.mark.parametrize("fn", [clip_far, maximum_far, minimum_far])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_bound_far_from_the_values_leaves_them_exact(fn, dtype):
    # clip and maximum were c + relu(x - c): adding and taking back 1e4 lost x ~ 1e-3 in float32
    # (dx came out [0, 0, 0.00195] for 2x = [0.00025, -0.00026, 0.00128]); the value is x itself
    x = (np.random.default_rng(0).normal(size=(2, 3)) * (1e-3 if dtype == np.float32 else 1e-6)).astype(dtype)
    module = _module(symprop.trace(fn, x=x))
    np.testing.assert_array_equal(module["gradients"](x=x)["x"], 2 * x)
    assert module["loss"](x=x) == pytest.approx(float(fn(x)), rel=1e-6)


def clip_guarded_sigmoid(z):
    return 1 / (1 + np.exp(-np.clip(z, -500, 500)))


def test_the_clip_guard_of_a_sigmoid_computes_what_numpy_computes():
    z = (np.random.default_rng(0).normal(size=(2, 3)) * 0.01).astype(np.float32)
    module = _module(symprop.trace(clip_guarded_sigmoid, z=z))
    np.testing.assert_allclose(module["forward"](z=z), clip_guarded_sigmoid(z), rtol=1e-6)
    dout = np.ones((2, 3), np.float32)
    s = clip_guarded_sigmoid(z.astype(np.float64))
    np.testing.assert_allclose(module["gradients"](z=z, dout=dout)["z"], s * (1 - s), rtol=1e-5)


def clip_sum(x):
    return np.sum(np.clip(x, -1.0, 2.0))


def maximum_sum(x):
    return np.sum(np.maximum(x, 0.5))


def minimum_sum(x):
    return np.sum(np.minimum(x, 0.5))


@pytest.mark.parametrize("fn, expected", [
    (clip_sum, [0, 1, 1, 1, 0]),  # PyTorch's clamp: 1 from a_min to a_max, both included
    (maximum_sum, [0, 0, 0, 1, 1]),  # a tie goes to the other operand, as relu'(0) = 0
    (minimum_sum, [1, 1, 1, 0, 0]),
])
def test_the_derivative_at_a_bound(fn, expected):
    x = np.array([-2.0, -1.0, 0.5, 2.0, 3.0])
    module = _module(symprop.trace(fn, x=x))
    np.testing.assert_array_equal(module["gradients"](x=x)["x"], expected)


def test_the_learners_names_are_the_steps_names():
    fn, make = CASES["bessel_batchnorm"]
    program = symprop.trace(fn, **make(np.random.default_rng(0)))
    names = [step.name for step in program.steps]
    # every local variable names its step; the returned value, which has none, is `out`
    assert names == ["bnmeani", "bndiff", "bndiff2", "bnvar", "bnvar_inv", "bnraw", "hpreact", "h", "out"]
    text = symprop.derive(program).text()
    for line in ("  bnvar = sum_n(bndiff2)/4", "  bnraw = bndiff*bnvar_inv", "  h = tanh(hpreact)",
                 "  dL_dhpreact = 2*h*(1 - h**2)", "  dL_dgamma = sum_n(bnraw*dL_dhpreact)"):
        assert line + "\n" in text


def test_an_in_place_write_is_what_it_computes():
    fn, make = CASES["svm_loss"]
    program = symprop.trace(fn, **make(np.random.default_rng(0)))
    source = symprop.generate(program)
    assert "_set_item(margins" in source  # margins[np.arange(N), y] = 0, recorded
    x = np.array([[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]])
    y = np.array([1, 2])
    module = _module(symprop.trace(fn, x=x, y=y))
    # by hand: sample 0: margins 1 - 2 + 1 = 0, -, 0.5 - 2 + 1 = -0.5 -> 0; sample 1: 0.2 - 3 + 1 < 0, -1 - 3 + 1 < 0
    assert module["loss"](x=x, y=y) == 0.0
    x[0, 0] = 3.0  # now 3 - 2 + 1 = 2 for class 0 of sample 0: loss 2 / 2
    assert module["loss"](x=x, y=y) == 1.0
    np.testing.assert_array_equal(module["gradients"](x=x, y=y)["x"], [[0.5, -0.5, 0], [0, 0, 0]])


def test_wrt_names_intermediates_as_the_learner_writes_dlogprobs():
    torch = pytest.importorskip("torch")
    fn, make = CASES["bessel_batchnorm"]
    arrays = make(np.random.default_rng(3))
    program = symprop.trace(fn, wrt=["x", "gamma", "bnvar_inv", "bnraw", "bndiff"], **arrays)
    got = _module(program)["gradients"](**arrays)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    n = t["x"].shape[0]
    bnmeani = t["x"].sum(0, keepdim=True) / n
    bndiff = t["x"] - bnmeani
    bnvar = (bndiff ** 2).sum(0, keepdim=True) / (n - 1)
    bnvar_inv = (bnvar + 1e-5) ** -0.5
    bnraw = bndiff * bnvar_inv
    for v in (bndiff, bnvar_inv, bnraw):
        v.retain_grad()
    (torch.tanh(t["gamma"] * bnraw + t["beta"]) ** 2).sum().backward()
    expected = {"x": t["x"].grad, "gamma": t["gamma"].grad, "bnvar_inv": bnvar_inv.grad, "bnraw": bnraw.grad,
                "bndiff": bndiff.grad}
    for name, value in expected.items():
        assert _normwise(got[name], value.numpy()) < 1e-12, name


def _torch_cases(torch):
    F = torch.nn.functional
    return {
        "softmax_loss": lambda x, y: F.cross_entropy(x, y),
        "svm_loss": lambda x, y: F.multi_margin_loss(x, y, reduction="sum") * x.shape[1] / x.shape[0],
        "two_layer_net": lambda X, y, W1, b1, W2, b2: F.cross_entropy(torch.relu(X @ W1 + b1) @ W2 + b2, y)
        + 0.05 * ((W1 ** 2).sum() + (W2 ** 2).sum()),
        "batchnorm_compact": lambda x, gamma, beta: F.batch_norm(x, None, None, gamma, beta, training=True),
        "layernorm_forward": lambda x, gamma, beta: F.layer_norm(x, (x.shape[1],), gamma, beta),
        "rnn_list": lambda x, h0, Wx, Wh, b: _torch_rnn(torch, x, h0, Wx, Wh, b),
        "rnn_buffer": lambda x, h0, Wx, Wh, b: _torch_rnn(torch, x, h0, Wx, Wh, b),
        "conv_naive": lambda x, w, b: F.conv2d(x, w, b),
        "word_embedding_forward": lambda x, W: F.embedding(x, W),
        "affine_forward": lambda x, w, b: x.reshape(x.shape[0], -1) @ w + b,
        "relu_forward": lambda x: torch.relu(x),
        "sigmoid_forward": lambda x: torch.sigmoid(x),
        "rnn_step_forward": lambda x, prev_h, Wx, Wh, b: torch.tanh(x @ Wx + prev_h @ Wh + b),
        "batchnorm_staged": lambda x, gamma, beta: F.batch_norm(x, None, None, gamma, beta, training=True),
        "dropout_forward": lambda x, mask: x * mask / 0.5,
        "sigmoid_mse": lambda x, y, W1, b1, W2, b2: 0.5 * F.mse_loss(
            torch.sigmoid(torch.sigmoid(x @ W1 + b1) @ W2 + b2), y),
        "column_relu_softmax": lambda x, y, W, b1, U, b2: -(y * F.log_softmax(
            U @ torch.relu(W @ x + b1) + b2, dim=0)).sum(),
        "two_inputs": lambda x1, x2, W1, W2: ((torch.tanh(x1 @ W1) * torch.tanh(x2 @ W2)) ** 2).sum(),
        "one_hot_cross_entropy": lambda x, y, W: F.cross_entropy(x @ W, y),
        "concatenated": lambda x, u, W: (torch.tanh(torch.cat([x, u], dim=1) @ W) ** 2).sum(),
        "l1_regularized": lambda x, y, W: F.mse_loss(x @ W, y) + 0.1 * W.abs().sum(),
        "bessel_batchnorm": lambda x, gamma, beta: (torch.tanh(gamma * (x - x.mean(0)) / torch.sqrt(
            x.var(0, unbiased=True) + 1e-5) + beta) ** 2).sum(),
        "inplace_bias": lambda x, W, b: torch.exp(-2 * (x @ W + b)).sum(),
        "transposed_layers": lambda x, W: ((x @ W.T).T ** 2).sum() + (W.T ** 2).sum(),
        "leaky_clip": lambda x, W: (F.leaky_relu(x @ W, 0.1).clamp(-1, 1) ** 2).sum()
        + torch.clamp(x @ W, max=0.5).sum(),
        "std_and_sqrt": lambda x: torch.sqrt(x.std(0, unbiased=False) + 1).sum() + torch.log1p(x ** 2).sum(),
        "gather_sum": lambda W, idx: (W[idx] ** 2).sum() + (W[0] * W[1]).sum(),
        "reductions_dropping_axes": lambda x: ((x ** 2).sum(1) ** 2).sum() + x.mean(1).sum() + x.amax(-1).sum()
        + (torch.tanh(x).sum(-1) * x.amax(dim=(0, 2)).reshape(1, 4)).sum(),
    }


def _torch_rnn(torch, x, h0, Wx, Wh, b):
    rnn = torch.nn.RNN(x.shape[2], h0.shape[1], batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        rnn.bias_hh_l0.zero_()
    rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0 = (torch.nn.Parameter(Wx.T), torch.nn.Parameter(Wh.T),
                                                          torch.nn.Parameter(b))
    # functional_call keeps the graph to Wx, Wh and b
    out, _ = torch.func.functional_call(rnn, {"weight_ih_l0": Wx.T, "weight_hh_l0": Wh.T, "bias_ih_l0": b,
                                              "bias_hh_l0": torch.zeros_like(b)}, (x, h0[None]))
    return out


def test_every_learner_function_has_a_pytorch_twin():
    torch = pytest.importorskip("torch")
    assert set(_torch_cases(torch)) == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_traced_gradients_equal_pytorch(case):
    torch = pytest.importorskip("torch")
    fn, make = CASES[case]
    rng = np.random.default_rng(7)
    arrays = make(rng)
    program = symprop.trace(fn, **arrays)
    flat = _flat(arrays)
    given = {a.name: flat[a.name] for a in program.arrays if a.role != "upstream"}
    tensors = {k: torch.tensor(v, requires_grad=np.asarray(v).dtype.kind == "f") for k, v in given.items()}
    value = _torch_cases(torch)[case](**tensors)
    dout = None if program.scalar else rng.normal(size=tuple(value.shape))
    (value if dout is None else (value * torch.tensor(dout)).sum()).backward()
    got = _module(program)["gradients"](**given, **({} if dout is None else {"dout": dout}))
    for name in program.wrt:
        assert _normwise(got[name], tensors[name].grad.numpy()) < 1e-10, name


def test_the_generated_module_is_reproducible_and_imports_only_numpy():
    fn, make = CASES["conv_naive"]
    arrays = make(np.random.default_rng(0))
    first = symprop.generate(symprop.trace(fn, **arrays))
    assert first == symprop.generate(symprop.trace(fn, **arrays))
    imports = [line for line in first.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import numpy as np"]


def test_a_generated_module_refuses_a_wrong_array_by_name():
    fn, make = CASES["softmax_loss"]
    arrays = make(np.random.default_rng(0))
    module = _module(symprop.trace(fn, **arrays))
    with pytest.raises(ValueError, match=r"x has shape \(4, 4\), expected \(5, 4\)"):
        module["loss"](x=np.zeros((4, 4)), y=arrays["y"])
    with pytest.raises(ValueError, match="needs the array y"):
        module["loss"](x=arrays["x"])
    with pytest.raises(ValueError, match="unknown array"):
        module["loss"](x=arrays["x"], y=arrays["y"], z=1)


@pytest.mark.parametrize("function", ["loss", "gradients", "loss_and_gradients", "forward"])
def test_a_generated_module_names_a_nan_argument_and_a_label_out_of_range(function):
    # as a spec's module does (section 3): once a silent nan, and NumPy's IndexError from inside
    fn, make = CASES["softmax_loss"]
    arrays = make(np.random.default_rng(0))
    module = _module(symprop.trace(fn, **arrays))
    assert module["RANGES"] == {"y": arrays["x"].shape[1]}
    x = arrays["x"].copy()
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"^x holds nan at \(2, 1\): expected finite numbers$"):
        module[function](**{k: v for k, v in dict(arrays, x=x).items() if k in module["ARGUMENTS"][function]})
    y = arrays["y"].copy()
    y[0] = 4
    if "y" in module["ARGUMENTS"][function]:
        with pytest.raises(ValueError, match=r"^y holds \d+ to 4: as an index into an axis of 4 entries it must "
                                             r"lie from -4 to 3$"):
            module[function](**dict(arrays, y=y))
    if "y" in module["ARGUMENTS"][function]:  # booleans would be a mask: NumPy's IndexError from inside before
        with pytest.raises(ValueError, match=r"^y holds booleans, expected whole numbers"):
            module[function](**dict(arrays, y=arrays["y"] > 0))
    module["VALIDATE"] = False  # the checks off: NumPy's own behaviour, nan through
    assert np.isnan(module["loss"](x=x, y=arrays["y"]))


# ---------------------------------------------------------------------------------------------
# Refusals: a TraceError naming the user's file, line and operation; never a wrong program


def control_flow(x):
    if x.sum() > 0:
        return x.sum()
    return -x.sum()


def to_float(x):
    return float(x.sum()) * x.sum()


def to_numpy(x):
    return np.sum(asarray(x))  # NumPy's own asarray, imported by name: it needs the numbers


def unsupported(x):
    return np.sum(np.sort(x))


def argmax_index(x):
    return x[np.arange(2), x.argmax(axis=1)].sum()


def float_index(x):
    return x[x].sum()


def mask_index(x):
    return x[x > 0].sum()


def integer_result(x, y):
    return y.sum()


def made_array(x):
    return np.sum(x * np.linspace(0, 1, 3))


REFUSALS = {
    control_flow: "control flow on a traced array",
    to_float: r"float\(\) of a traced array",
    to_numpy: "np.asarray/np.array of a traced array",
    unsupported: "np.sort: symprop has no rule for this function yet",
    argmax_index: r"\.argmax\(\) of a traced array",
    float_index: "an index that is a float array",
    mask_index: "a boolean mask as an index",
    made_array: "a NumPy array of shape",
}


@pytest.mark.parametrize("fn", list(REFUSALS), ids=lambda f: f.__name__)
def test_refusals_name_the_file_line_and_operation(fn):
    lines, first = inspect.getsourcelines(fn)
    line = first + 1  # each refused operation is on the function's first body line
    with pytest.raises(symprop.TraceError, match=REFUSALS[fn]) as error:
        symprop.trace(fn, x=np.ones((2, 3)))
    message = str(error.value)
    assert message.startswith(f"{__file__}:{line}: ") and message.endswith(f" (in: {lines[1].strip()})")
    assert "\n" not in message


def test_a_result_that_is_not_a_float_array_is_refused():
    with pytest.raises(symprop.TraceError, match="returned an array of int64"):
        symprop.trace(integer_result, x=np.ones(3), y=np.arange(3))
    with pytest.raises(symprop.TraceError, match="wrt names 'nothing'"):
        symprop.trace(learner.softmax_loss, wrt=["nothing"], x=np.ones((2, 3)), y=np.arange(2))
    with pytest.raises(symprop.TraceError, match="holds integers or booleans"):
        symprop.trace(learner.softmax_loss, wrt=["y"], x=np.ones((2, 3)), y=np.arange(2))


def test_np_asarray_of_a_traced_array_is_the_array():
    # through the module's `np`, asarray and array of a traced array are exact: the array itself
    def loss(x):
        x = np.asarray(x)
        return np.sum(np.array(x) ** 2)
    program = symprop.trace(loss, x=np.ones(3))
    assert _module(program)["gradients"](x=np.array([1.0, 2.0, 3.0]))["x"].tolist() == [2.0, 4.0, 6.0]


def test_unused_results_are_no_error():
    # cs231n's loss computes its own gradients next to the loss: never reached, never traced
    def loss(x, W):
        scores = x @ W
        dscores = np.ones_like(scores)
        dscores[range(2), [0, 1]] -= 1
        dW = x.T @ dscores
        return np.sum(scores ** 2), {"W": dW}
    program = symprop.trace(loss, x=np.ones((2, 3)), W=np.ones((3, 2)))
    assert [s.name for s in program.steps] == ["scores", "out"]


# ---------------------------------------------------------------------------------------------
# check and assert_gradients_match on a traced program


def _two_layer_backward(X, y, W1, b1, W2, b2, reg=0.05, bug=""):
    """cs231n's TwoLayerNet backward, written by hand; `bug` plants one mistake."""
    N = X.shape[0]
    hidden = np.maximum(0, X @ W1 + b1)
    scores = hidden @ W2 + b2
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -np.log(probs[range(N), y]).sum() / N + reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    dscores = probs.copy()
    dscores[range(N), y] -= 1
    dscores /= N if bug != "no 1/N" else 1
    dW2 = hidden.T @ dscores + 2 * reg * W2
    db2 = dscores.sum(axis=0)
    dhidden = dscores @ W2.T
    dhidden[hidden <= 0] = 0
    dW1 = X.T @ dhidden + (2 * reg * W1 if bug != "no reg" else 0)
    db1 = dhidden.sum(axis=0) * (-1 if bug == "sign" else 1)
    dX = dhidden @ W1.T
    return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "X": dX}


@pytest.mark.parametrize("bug, first_wrong", [("", None), ("no reg", "W1"), ("sign", "b1"), ("no 1/N", "W2")])
def test_check_pinpoints_a_learners_backward(bug, first_wrong):
    fn, make = CASES["two_layer_net"]
    arrays = make(np.random.default_rng(0))
    program = symprop.trace(fn, **arrays)

    def backward(**kw):
        return _two_layer_backward(**kw, bug=bug)
    report = symprop.check(program, against=backward)
    numerical = report.sections["generated vs numerical"]
    assert [row.name for row in numerical] == ["X", "W1", "b1", "W2", "b2"] and all(row.ok for row in numerical)
    assert report.ok == (bug == "")
    assert report.first_wrong == first_wrong
    if bug == "no reg":
        assert report.wrong == ["W1"]
    if first_wrong:
        assert f"first wrong: {first_wrong} (the first array found wrong in backward order)" in str(report)
        with pytest.raises(AssertionError, match=f"first wrong: {first_wrong}"):
            symprop.testing.assert_gradients_match(program, backward)
    else:
        symprop.testing.assert_gradients_match(program, backward)


def test_check_of_a_layer_takes_dout():
    fn, make = CASES["batchnorm_staged"]
    program = symprop.trace(fn, **make(np.random.default_rng(0)))

    def batchnorm_backward(dout, x, gamma, beta):  # the compact form of the batchnorm gradient
        N = x.shape[0]
        xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
        dxhat = dout * gamma
        dx = (N * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)) / (N * np.sqrt(x.var(axis=0) + 1e-5))
        return {"x": dx, "gamma": (dout * xhat).sum(axis=0), "beta": dout.sum(axis=0)}
    for seed in (0, 3):
        report = symprop.check(program, against=batchnorm_backward, seed=seed)
        assert report.ok, str(report)
    wrong = lambda **kw: {**batchnorm_backward(**kw), "beta": kw["dout"].mean(axis=0)}  # noqa: E731
    report = symprop.check(program, against=wrong)
    assert report.first_wrong == "beta" and not report.ok


def test_a_models_loss_method_is_traced_with_its_params_dict_unchanged():
    model = learner.TwoLayerNet()
    params = dict(model.params)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(4, 3)), np.array([0, 2, 1, 2])
    program = symprop.trace(model.loss, X=X, y=y)
    assert all(model.params[k] is v for k, v in params.items())  # the dict restored, entry by entry
    assert program.wrt == ("X", "W1", "b1", "W2", "b2")
    module = _module(program)
    loss, grads = module["loss_and_gradients"](X=X, y=y, **model.params)
    their_loss, theirs = model.loss(X, y)
    assert loss == pytest.approx(their_loss, rel=1e-13)
    for name in ("W1", "b1", "W2", "b2"):
        assert _normwise(grads[name], theirs[name]) < 1e-12, name

    def backward(X, y, W1, b1, W2, b2):  # the learner's own gradients, under the params' names
        return model.loss(X, y)
    with pytest.raises(AssertionError, match="X .* missing"):  # it returns no dX
        symprop.testing.assert_gradients_match(program, backward, seeds=(0,))
    weights = symprop.trace(model.loss, wrt=["W1", "b1", "W2", "b2"], X=X, y=y)
    symprop.testing.assert_gradients_match(weights, backward, seeds=(0,))


# ---------------------------------------------------------------------------------------------
# Idioms rewritten; the element-level oracle


def probs_softmax(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    exp_scores = np.exp(shifted)
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    return -np.mean(np.log(probs[np.arange(x.shape[0]), y]))


@pytest.mark.parametrize("fn, step, far", [(learner.softmax_loss, "log_probs = log_softmax(x)", 1000.0),
                                           (probs_softmax, "probs = softmax(x)", 300.0)])
def test_the_stable_softmax_idioms_are_softmax(fn, step, far):
    # exp(1000) overflows: the shift matters; the probs form takes log(probs), finite for 300
    x = np.array([[far, 0.0, -far], [0.5, 0.25, 0.0]])
    y = np.array([2, 0])
    program = symprop.trace(fn, x=x, y=y)
    assert f"  {step}\n" in symprop.derive(program).text()
    module = _module(program)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        loss, grads = module["loss_and_gradients"](x=x, y=y)
    # by hand: sample 0 puts -2000 on its label's log-probability; sample 1 is a plain softmax
    row = np.exp([0.5, 0.25, 0.0]) / np.exp([0.5, 0.25, 0.0]).sum()
    assert loss == pytest.approx((2 * far - np.log(row[0])) / 2, rel=1e-15)
    first = np.exp(x[0] - far) / np.exp(x[0] - far).sum()  # 1, e^-far, e^-2far
    np.testing.assert_allclose(grads["x"], np.array([first - [0, 0, 1], row - [1, 0, 0]]) / 2, rtol=1e-14,
                               atol=1e-300)


SMALL = ["softmax_loss", "svm_loss", "sigmoid_mse", "two_inputs", "gather_sum", "l1_regularized",
         "bessel_batchnorm", "std_and_sqrt", "inplace_bias", "concatenated", "one_hot_cross_entropy",
         "column_relu_softmax", "transposed_layers"]


@pytest.mark.parametrize("case", SMALL)
def test_the_element_level_oracle_agrees_exactly(case):
    from symprop.symbolic.program import element_gradients
    fn, make = CASES[case]
    arrays = make(np.random.default_rng(0))
    program = symprop.trace(fn, **arrays)
    flat = _flat(arrays)
    exact = element_gradients(program, flat)  # every entry differentiated by SymPy, evaluated exactly
    got = _module(program)["gradients"](**{a.name: flat[a.name] for a in program.arrays})
    for name in program.wrt:
        expected = exact[name].astype(float)
        # float64 rounding of the generated code only: 1e-13 of the largest entry, floored at 1e-15
        assert np.max(np.abs(got[name] - expected)) <= 1e-13 * max(np.max(np.abs(expected)), 1e-2), name


# ---------------------------------------------------------------------------------------------
# The presets, written in NumPy and traced, are their specs


@pytest.mark.parametrize("preset", symprop.presets())
def test_a_preset_written_in_numpy_traces_to_its_spec(preset):
    import presets_numpy
    network = symprop.load(preset)
    values = {name: np.asarray(value, dtype=float) for name, value in network.values.items()}
    program = symprop.trace(getattr(presets_numpy, preset), wrt=list(network.differentiated), **values)
    traced = _module(program)
    spec = {}
    exec(compile(symprop.generate(network), preset, "exec"), spec)
    loss, grads = spec["loss_and_gradients"](**values)
    assert traced["loss"](**values) == pytest.approx(loss, rel=1e-14)
    got = traced["gradients"](**values)
    for name in network.differentiated:
        np.testing.assert_allclose(got[name], grads[name], rtol=1e-12, atol=1e-14 * np.max(np.abs(grads[name])))
    # the same forward steps under the same names (the spec names the loss L, as the seeds do)
    spec_steps = [s.name for s in symprop.derive(network).steps if s.stage in ("forward", "loss")]
    traced_steps = [s.name for s in program.steps]
    assert [n for n in traced_steps if n in spec_steps] == [n for n in spec_steps if n in traced_steps]
    assert set(traced_steps) <= set(spec_steps)
    gradients = {s.name for s in symprop.derive(program).steps if getattr(s, "stage", "") == "gradient"}
    assert gradients == {f"dL_d{name}" for name in network.differentiated}


# ---------------------------------------------------------------------------------------------
# The backprop ninja exercise: the gradient of every intermediate, under the learner's names


def _ninja_module():
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("backprop_ninja", ROOT / "examples" / "backprop_ninja.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ninja = _ninja_module()


def _ninja(slip=""):
    def backward(**arrays):
        return ninja.backward(**arrays, slip=slip)
    return backward


@pytest.mark.parametrize("slip, first_wrong", [("", None), ("no Bessel", "bndiff2")])
def test_backprop_ninja_every_intermediate_by_its_name(slip, first_wrong):
    arrays = ninja.example_arrays(np.random.default_rng(5))
    wrt = ninja.INTERMEDIATES + ninja.PARAMETERS
    program = symprop.trace(ninja.forward, wrt=wrt, **arrays)
    assert set(program.wrt) == set(wrt) and {s.name for s in program.steps} >= set(ninja.INTERMEDIATES)
    report = symprop.check(program, against=_ninja(slip))
    assert report.first_wrong == first_wrong, str(report)
    if slip:
        # what the backward pass computes from dbndiff2 on is wrong; but dbnmeani and db1, which are
        # zero up to rounding (the batchnorm subtracts the batch mean) whatever dbndiff2 is
        assert report.wrong == ["bndiff2", "bndiff", "hprebn", "embcat", "emb", "C", "W1"]
        after = report.order[report.order.index("bndiff2"):]
        assert set(after) - set(report.wrong) == {"bnmeani", "b1"}
    else:
        assert report.ok


def view_read_after_a_write(x):
    h = np.zeros((2, 3))
    first = h[0]
    h[0] = x[0]  # the view `first` shows it, as NumPy's does
    return np.sum(first * x[1])


def transposed_then_written(x):
    y = np.tanh(x)
    t = y.T
    y *= 2.0  # t shows it too
    t[0] *= 3.0  # and y shows this
    return np.sum(t ** 2) + np.sum(y[:, 1:] * x[:, :2])


def copied_by_its_reshape(x):
    y = np.tanh(x)
    flat = y.T.reshape(-1)  # NumPy copies: a transposed array's memory is not in that order
    flat -= flat.mean()  # on the copy only
    return np.sum(flat ** 2) + np.sum(y * x)  # y unchanged


def flattened_then_written(x):
    z = x * 2.0
    saved = z.flatten()  # always a copy
    raveled = z.ravel()  # a view: z is contiguous
    z[0] = 0.0
    return np.sum(saved ** 2) + np.sum(z) + np.sum(raveled * x.ravel())


@pytest.mark.parametrize("fn", [view_read_after_a_write, transposed_then_written, copied_by_its_reshape,
                                flattened_then_written])
def test_views_show_every_write_as_in_numpy(fn):
    # a reshape NumPy copies and .flatten() (a copy) were views: writes went through (once 34.0 for
    # NumPy's 39.5, and a spatial batchnorm's x.transpose(0, 2, 3, 1).reshape(-1, C) -= mean changed x)
    x = np.random.default_rng(0).normal(size=(2, 3))
    module = _module(symprop.trace(fn, x=x))
    assert module["loss"](x=x) == pytest.approx(fn(x.copy()), rel=1e-14)
    expected = symprop.numerical_gradients(fn, {"x": x}, "x")["x"]
    assert _normwise(module["gradients"](x=x)["x"], expected) < 1e-9


def test_views_read_before_any_write_and_copies_are_fine():
    def loss(x):
        h = np.zeros((2, 3))
        h[0] = x[0] * 2
        first = h[0]  # taken after the write: sees it, as NumPy's view does
        safe = h[1].copy()
        h[1] = x[1]
        return np.sum(first * safe) + np.sum(h ** 2)
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    module = _module(symprop.trace(loss, x=x))
    assert module["loss"](x=x) == loss(x.copy())
    # d/dx0 of sum(2 x0 * 0) + sum(4 x0^2) + sum(x1^2) = 8 x0; d/dx1 = 2 x1
    np.testing.assert_array_equal(module["gradients"](x=x)["x"], [[8.0, 16.0, 24.0], [8.0, 10.0, 12.0]])



# ---------------------------------------------------------------------------------------------
# Found by an adversarial review: each was a silently wrong gradient, a crash or a wrong shape


def _r(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).normal(size=shape)


REVIEWED = {
    "sum of a broadcast bias": (lambda x, b: np.sum(x + b), dict(x=_r(4, 3), b=_r(3))),
    "sum plus a 0-d scalar": (lambda x, s: np.sum(x + s), dict(x=_r(4, 3), s=np.array(0.5))),
    "mean of 2x + b": (lambda x, b: np.mean(2 * x + b), dict(x=_r(4, 3), b=_r(3))),
    "a row plus a matrix": (lambda x, y: np.sum(x[0] + y), dict(x=_r(4, 3), y=_r(4, 3, seed=1))),
    "minus the row maximum": (lambda x: np.sum(x - x.max(axis=1, keepdims=True)), dict(x=_r(4, 3))),
    "linear svm margins": (lambda x, y: np.sum(x - x[np.arange(4), y][:, None] + 1) / 4,
                           dict(x=_r(4, 3), y=np.array([0, 2, 1, 1]))),
    "sum of a square product": (lambda x, W: np.sum(x @ W), dict(x=_r(3, 3), W=_r(3, 3, seed=1))),
    "sum of a product": (lambda x, W: np.sum(x @ W), dict(x=_r(2, 3), W=_r(3, 4))),
    "sum of x.T x": (lambda x: np.sum(x.T @ x), dict(x=_r(2, 3))),
    "sum of a reshape": (lambda x: x.reshape(-1).sum(), dict(x=_r(2, 3))),
    "sum of a concatenation": (lambda x, y: np.concatenate([x, y], axis=1).sum(), dict(x=_r(2, 3), y=_r(2, 1))),
    "sum of a stack": (lambda x, y: np.stack([x, y]).sum(), dict(x=_r(2, 3), y=_r(2, 3, seed=1))),
    "mean of W @ x": (lambda W, x: np.mean(W @ x), dict(W=_r(2, 3), x=_r(3))),
    "row sums squared": (lambda x, W: np.sum((x @ W).sum(axis=1) ** 2), dict(x=_r(2, 4), W=_r(4, 3))),
    "softmax with a (K,) bias": (lambda x, W, b: -np.sum(np.log(
        (np.exp(x @ W + b) / np.sum(np.exp(x @ W + b), axis=1, keepdims=True))[np.arange(3), [0, 2, 1]])),
        dict(x=_r(3, 2), W=_r(2, 3), b=_r(3))),
    "times a negative arange": (lambda x: np.sum(x * np.arange(-2, 2)), dict(x=_r(2, 4))),
    "rows by a negative arange": (lambda x: np.sum(x[np.arange(-1, -4, -1)] ** 2), dict(x=_r(5, 2))),
    "a (3, 1) bias of a 3-d array": (lambda x, b: np.sum((x + b) ** 2), dict(x=_r(2, 3, 4), b=_r(3, 1))),
    "a conv bias (C, 1, 1)": (lambda x, b: np.sum(np.tanh(x + b)), dict(x=_r(2, 3, 4, 4), b=_r(3, 1, 1))),
    "minus a label gather": (lambda x, y: -np.sum(x[np.arange(3), y]), dict(x=_r(3, 4), y=np.array([0, 3, 1]))),
    "integer zeros as an index": (lambda x: np.sum(x[np.arange(3), np.zeros(3, dtype=int)] ** 2), dict(x=_r(3, 4))),
    "vstack of vectors": (lambda a, b: np.sum(np.vstack([a, b]) * np.arange(6).reshape(2, 3)),
                          dict(a=_r(3), b=_r(3, seed=1))),
    "squeeze, expand_dims, outer": (lambda x: np.sum(np.squeeze(x) ** 2) + np.sum(np.outer(x[0, 0], x[1, 0]))
                                    + np.sum(np.expand_dims(x, 0) ** 3), dict(x=_r(2, 1, 3))),
    "sqrt of an inline row squared": (lambda x: np.sum(np.sqrt(x[0] * x[0])) + np.sum((x[:, :2] ** 2) ** 0.5),
                                      dict(x=_r(2, 3))),
    "a sum over axis 4 of five": (lambda x: np.sum(np.sum(x, axis=4) ** 2), dict(x=_r(2, 2, 2, 2, 3))),
    "group norm": (lambda x: np.sum(np.tanh((lambda g: (g - g.mean(axis=(2, 3, 4), keepdims=True))
                                             / np.sqrt(g.var(axis=(2, 3, 4), keepdims=True) + 1e-5))(
                                                 x.reshape(2, 2, 2, 3, 3)).reshape(2, 4, 3, 3))),
                   dict(x=_r(2, 4, 3, 3))),
}


@pytest.mark.parametrize("case", sorted(REVIEWED))
def test_reviewed_cases_equal_central_differences(case):
    fn, arrays = REVIEWED[case]
    program = symprop.trace(fn, **arrays)
    module = _module(program)
    assert module["loss"](**arrays) == pytest.approx(fn(**arrays), rel=1e-13, abs=1e-13)
    got = module["gradients"](**arrays)
    expected = symprop.numerical_gradients(fn, arrays, list(program.wrt))
    for name in program.wrt:
        assert got[name].shape == np.shape(arrays[name]) and got[name].dtype == np.float64, name
        assert np.max(np.abs(got[name] - expected[name])) <= 1e-8 * max(np.max(np.abs(expected[name])), 1.0), name


def test_a_constant_or_an_argument_returned_as_it_is():
    x = _r(3, 2)
    for fn, dx in ((lambda x: x * 0 + 1.0, np.zeros((3, 2))), (lambda x: x, np.ones((3, 2)))):
        module = _module(symprop.trace(fn, x=x))
        np.testing.assert_array_equal(module["forward"](x=x), fn(x))
        np.testing.assert_array_equal(module["gradients"](x=x, dout=np.ones((3, 2)))["x"], dx)


@pytest.mark.parametrize("body, message", [
    ("b = a.copy(); b[[1, 1]] += 1.0", "a write at an index that names an entry twice"),
    ("b = a.copy(); b[y] = 0.0", "a write at an index array of data .* that may name an entry twice"),
    ("b = np.linalg.norm(a)", "np.linalg.norm: symprop has no rule"),
    ("b = a.cumsum()", r"\.cumsum of a traced array"),
    ("b = a * (np.random.rand(*a.shape) < 0.5)", "np.random.rand inside a traced function"),
    ("b = a * np.linspace(0, 1, 2)", "a NumPy array of shape \\(2,\\) made inside the function"),
])
def test_writes_that_may_repeat_and_unknown_functions_are_refused(body, message):
    namespace = {"np": np}
    exec(f"def f(a, y):\n    {body}\n    return np.sum(b)\n", namespace)
    with pytest.raises(symprop.TraceError, match=message):
        symprop.trace(namespace["f"], a=_r(3, 2), y=np.array([0, 1, 1]))


def test_np_in_a_helper_module_and_constructors_imported_by_name(tmp_path, monkeypatch):
    (tmp_path / "helper_layers.py").write_text(
        "import numpy as np\nfrom numpy import zeros\n\n\ndef affine(x, w):\n    out = np.zeros((x.shape[0], "
        "w.shape[1]))\n    out[:] = x @ w\n    return out\n\n\ndef double_first(x):\n    b = zeros(x.shape)\n"
        "    b[0] = x[0] * 2\n    return b\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import helper_layers

    def loss(x, w):
        return np.sum(helper_layers.affine(x, w) ** 2) + np.sum(helper_layers.double_first(x))
    arrays = {"x": _r(3, 2), "w": _r(2, 4)}
    program = symprop.trace(loss, **arrays)
    assert helper_layers.np is np and helper_layers.zeros is np.zeros  # put back
    got = _module(program)["gradients"](**arrays)
    expected = symprop.numerical_gradients(loss, arrays, ["x", "w"])
    for name in ("x", "w"):
        assert _normwise(got[name], expected[name]) < 1e-9


def test_mask_logic_and_arrays_of_traced_rows():
    def loss(x, y):
        m = (x > 0) & (y < 0.5)
        k = (x < -0.5) | ~(y > 0)
        both = np.logical_and(x > 0.2, np.logical_not(y > 1.0))
        stacked = np.array([x[0], x[1] * 2])
        return np.sum(np.where(m, x, 0.0) ** 2) + np.sum(x * k) + np.sum(x * both) + np.sum(stacked ** 2)
    arrays = {"x": _r(2, 3), "y": _r(2, 3, seed=1)}
    program = symprop.trace(loss, wrt=["x"], **arrays)
    module = _module(program)
    assert module["loss"](**arrays) == pytest.approx(loss(**arrays), rel=1e-14)
    expected = symprop.numerical_gradients(loss, arrays, ["x"])["x"]
    assert _normwise(module["gradients"](**arrays)["x"], expected) < 1e-9


def test_draws_and_argmax_are_an_error_only_where_they_reach_the_value():
    def loss(x, y):
        np.random.seed(0)
        scores = x * 2.0
        loss = np.sum(scores ** 2)
        # a learner's own gradient code beside the loss: never reaches it, never an error
        predicted = scores.argmax(axis=1)
        noise = np.random.randn(*x.shape)
        dscores = 4 * scores + 0 * noise
        dscores[np.arange(2), predicted] += 1
        return loss, {"x": dscores}
    x = _r(2, 3)
    module = _module(symprop.trace(loss, x=x, y=np.array([0, 1])))
    np.testing.assert_allclose(module["gradients"](x=x, y=np.array([0, 1]))["x"], 8 * x, rtol=1e-15)

    def dropout(x):
        mask = (np.random.rand(*x.shape) < 0.5) / 0.5
        return np.sum(x * mask)
    lines, first = inspect.getsourcelines(dropout)
    with pytest.raises(symprop.TraceError, match=rf":{first + 1}: np.random.rand inside a traced function"):
        symprop.trace(dropout, x=x)


def test_a_backward_that_takes_the_params_dict_is_called_with_it():
    fn, make = CASES["two_layer_net"]
    arrays = make(np.random.default_rng(0))
    program = symprop.trace(fn, wrt=["W1", "b1", "W2", "b2"], **arrays)
    assert program.groups == {"params": ("W1", "b1", "W2", "b2")}

    def backward(X, y, params, reg=0.05):  # the learner's own signature, as their forward's
        loss, grads = _two_layer_backward(X, y, **params, reg=reg)
        return loss, {k: v for k, v in grads.items() if k != "X"}
    report = symprop.check(program, against=backward)
    assert report.ok, str(report)
    for seed in (1, 2):
        assert symprop.check(program, against=backward, seed=seed).ok
    slip = lambda X, y, params: _two_layer_backward(X, y, **params, bug="sign")  # noqa: E731
    assert symprop.check(program, against=slip).first_wrong == "b1"
