"""The convolution and pooling run-time helpers (codegen.runtime) against PyTorch, in float64.

Forward values against torch.nn.functional; gradients against torch autograd with a random
upstream gradient. Tolerance: rtol 1e-12, plus an absolute 1e-12 times the largest reference entry
(sums that cancel to nearly 0 keep only an absolute accuracy, whichever order adds them).
"""

import ast
import inspect
import itertools

import numpy as np
import pytest

from symprop.codegen import runtime

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the reference needs it")
F = torch.nn.functional

HELPERS = ("_im2col", "_conv2d", "_conv2d_input_gradient", "_conv2d_weight_gradient",
           "_max_pool2d", "_max_pool2d_gradient", "_avg_pool2d", "_avg_pool2d_gradient")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: a second thread only adds waiting (tens of ms a call on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_matches(ours, reference):
    reference = reference.detach().numpy() if isinstance(reference, torch.Tensor) else reference
    assert ours.shape == reference.shape
    assert ours.dtype == reference.dtype
    scale = np.abs(reference).max(initial=0.0)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12 * scale)


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


def out_size(size, kernel, stride, padding=0):
    return (size + 2*padding - kernel) // stride + 1


# --- convolution -----------------------------------------------------------------------------

# (N, C, H, Wd, F, kernel, stride, padding); "ragged" marks (H + 2ph - kh) % sh != 0 (or width)
CONV_TABLE = [
    (1, 1, 4, 4, 1, 1, 1, 0),
    (3, 3, 5, 7, 4, 3, 1, 1),
    (3, 3, 5, 7, 4, 2, 2, 0),  # ragged
    (1, 3, 5, 7, 1, (2, 3), (2, 1), (1, 0)),  # ragged
    (3, 1, 7, 5, 4, (3, 1), 3, 2),  # ragged
    (1, 3, 4, 4, 4, 3, 2, 1),  # ragged
    (3, 3, 5, 7, 4, 1, 2, (1, 0)),
    (3, 1, 4, 4, 1, (2, 3), 3, 2),  # ragged
    (1, 3, 6, 5, 4, 3, 3, 0),  # ragged along the width
    (3, 3, 5, 5, 4, 3, (2, 1), 2),
    (1, 1, 1, 1, 4, 1, 1, 0),  # a single pixel
    (3, 1, 2, 3, 1, 3, 1, 1),  # kernel larger than the image, padding makes it fit
]
KERNELS = [1, 2, 3, (2, 3), (3, 1)]
STRIDES = [1, 2, (2, 1), 3]
PADDINGS = [0, 1, 2, (1, 0)]
# every kernel x stride x padding on a 5x7 image and on a 4x4 one
CONV_SWEEP = [(2, 2, h, w, 3, k, s, p)
              for (h, w), k, s, p in itertools.product([(5, 7), (4, 4)], KERNELS, STRIDES, PADDINGS)]


def test_the_table_has_ragged_cases():
    ragged = [case for case in CONV_TABLE + CONV_SWEEP
              if any((size + 2*p - k) % s for size, k, s, p in zip(case[2:4], pair(case[5]), pair(case[6]),
                                                                     pair(case[7])))]
    assert len(ragged) > 40


def check_conv(n, c, h, w, f, kernel, stride, padding, seed):
    kernel, stride, padding = pair(kernel), pair(stride), pair(padding)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    W = rng.standard_normal((f, c) + kernel)
    x_t = torch.tensor(x, requires_grad=True)
    W_t = torch.tensor(W, requires_grad=True)
    y_t = F.conv2d(x_t, W_t, stride=stride, padding=padding)
    delta = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(delta))
    inputs = [a.copy() for a in (x, W, delta)]

    columns = runtime._im2col(x, kernel, stride, padding)
    assert_matches(runtime._conv2d(columns, W), y_t)
    assert_matches(runtime._conv2d_input_gradient(delta, W, stride, padding, (h, w)), x_t.grad)
    assert_matches(runtime._conv2d_weight_gradient(columns, delta), W_t.grad)
    for before, after in zip(inputs, (x, W, delta)):
        np.testing.assert_array_equal(before, after)  # the helpers write into no argument


@pytest.mark.parametrize("seed, case", list(enumerate(CONV_TABLE)), ids=str)
def test_conv2d_table(seed, case):
    check_conv(*case, seed=seed)


@pytest.mark.parametrize("case", CONV_SWEEP, ids=str)
def test_conv2d_every_kernel_stride_padding(case):
    check_conv(*case, seed=len(str(case)))


def test_conv2d_input_gradient_is_zero_where_no_window_reaches():
    """H = 6, kernel 2, stride 3: windows cover rows 0-1 and 3-4; row 2 and row 5 get nothing."""
    delta = np.ones((1, 1, 2, 2))
    dx = runtime._conv2d_input_gradient(delta, np.ones((1, 1, 2, 2)), (3, 3), (0, 0), (6, 6))
    expected_rows = np.array([1, 1, 0, 1, 1, 0], dtype=float)
    np.testing.assert_array_equal(dx[0, 0], np.outer(expected_rows, expected_rows))


def test_conv2d_a_hand_computed_cross_correlation():
    """Cross-correlation, not convolution: the kernel is not flipped."""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    W = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # x[i, j] - x[i + 1, j + 1]
    columns = runtime._im2col(x, (2, 2), (1, 1), (0, 0))
    np.testing.assert_array_equal(runtime._conv2d(columns, W), np.full((1, 1, 2, 2), -4.0))


# --- pooling ---------------------------------------------------------------------------------

# (N, C, H, Wd, size, stride): strides equal to the size and smaller (overlapping windows)
POOL_TABLE = [
    (3, 3, 4, 4, 2, 2),
    (1, 1, 5, 7, 2, 2),  # ragged: the last row and column are in no window
    (3, 1, 6, 6, 3, 3),
    (1, 3, 5, 7, 3, 3),  # ragged
    (3, 3, 5, 7, (2, 3), (2, 3)),  # ragged
    (3, 3, 4, 4, 2, 1),  # overlapping
    (1, 3, 5, 7, 3, 1),  # overlapping
    (3, 1, 5, 7, 3, 2),  # overlapping and ragged along the width
    (3, 3, 5, 7, (2, 3), (1, 2)),  # overlapping
    (1, 1, 5, 7, (2, 3), 1),  # overlapping
    (3, 3, 6, 5, (3, 1), (2, 1)),  # overlapping rows, 1-wide windows
    (1, 1, 1, 1, 1, 1),
]


def pool_reference(pool, a, size, stride, rng):
    """The pooled array and dL/da of torch's pooling for a random upstream gradient delta."""
    a_t = torch.tensor(a, requires_grad=True)
    out_t = pool(a_t, size, stride)
    delta = rng.standard_normal(tuple(out_t.shape))
    out_t.backward(torch.tensor(delta))
    return out_t, delta, a_t.grad


@pytest.mark.parametrize("values", ["ties", "random"])
@pytest.mark.parametrize("case", POOL_TABLE, ids=str)
def test_max_pool2d(case, values):
    n, c, h, w, size, stride = case
    size, stride = pair(size), pair(stride)
    rng = np.random.default_rng(len(str(case)))
    if values == "ties":  # integers from 0 to 2: most windows hold their maximum more than once
        a = rng.integers(0, 3, (n, c, h, w)).astype(np.float64)
    else:
        a = rng.standard_normal((n, c, h, w))
    out_t, delta, grad_t = pool_reference(F.max_pool2d, a, size, stride, rng)
    a_before = a.copy()
    largest = runtime._max_pool2d(a, size, stride)
    assert_matches(largest, out_t)
    assert_matches(runtime._max_pool2d_gradient(a, largest, delta, size, stride), grad_t)
    np.testing.assert_array_equal(a, a_before)


def test_max_pool2d_ties_go_to_the_first_maximum_in_row_major_order():
    """What PyTorch does (CPU, float64); overlapping windows add up at a shared maximum."""
    a = np.array([[[[1.0, 3.0, 3.0],
                    [3.0, 0.0, 3.0],
                    [2.0, 3.0, 1.0]]]])
    delta = np.array([[[[1.0, 10.0],
                        [100.0, 1000.0]]]])
    expected = np.array([[[[0.0, 11.0, 0.0],
                           [100.0, 0.0, 1000.0],
                           [0.0, 0.0, 0.0]]]])
    largest = runtime._max_pool2d(a, (2, 2), (1, 1))
    np.testing.assert_array_equal(runtime._max_pool2d_gradient(a, largest, delta, (2, 2), (1, 1)), expected)
    a_t = torch.tensor(a, requires_grad=True)
    F.max_pool2d(a_t, 2, 1).backward(torch.tensor(delta))
    np.testing.assert_array_equal(a_t.grad.numpy(), expected)


def test_max_pool2d_all_equal_windows_pick_their_first_entry():
    a = np.zeros((2, 3, 4, 6))
    delta = np.arange(1.0, 1 + 2*3*2*2).reshape(2, 3, 2, 2)
    gradient = runtime._max_pool2d_gradient(a, np.zeros((2, 3, 2, 2)), delta, (2, 3), (2, 3))
    expected = np.zeros_like(a)
    expected[:, :, ::2, ::3] = delta
    np.testing.assert_array_equal(gradient, expected)


@pytest.mark.parametrize("case", POOL_TABLE, ids=str)
def test_avg_pool2d(case):
    n, c, h, w, size, stride = case
    size, stride = pair(size), pair(stride)
    rng = np.random.default_rng(len(str(case)))
    a = rng.standard_normal((n, c, h, w))
    out_t, delta, grad_t = pool_reference(F.avg_pool2d, a, size, stride, rng)
    assert_matches(runtime._avg_pool2d(a, size, stride), out_t)
    assert_matches(runtime._avg_pool2d_gradient(delta, size, stride, (h, w)), grad_t)


# --- dtypes, self-containedness --------------------------------------------------------------

def test_float32_in_float32_out():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    W = rng.standard_normal((4, 3, 3, 2))
    calls = {
        "_im2col": lambda x, W, d, p: runtime._im2col(x, (3, 2), (2, 1), (1, 0)),
        "_conv2d": lambda x, W, d, p: runtime._conv2d(runtime._im2col(x, (3, 2), (2, 1), (1, 0)), W),
        "_conv2d_input_gradient": lambda x, W, d, p: runtime._conv2d_input_gradient(d, W, (2, 1), (1, 0), (7, 6)),
        "_conv2d_weight_gradient": lambda x, W, d, p: runtime._conv2d_weight_gradient(
            runtime._im2col(x, (3, 2), (2, 1), (1, 0)), d),
        "_max_pool2d": lambda x, W, d, p: runtime._max_pool2d(x, (3, 2), (2, 1)),
        "_max_pool2d_gradient": lambda x, W, d, p: runtime._max_pool2d_gradient(
            x, runtime._max_pool2d(x, (3, 2), (2, 1)), p, (3, 2), (2, 1)),
        "_avg_pool2d": lambda x, W, d, p: runtime._avg_pool2d(x, (3, 2), (2, 1)),
        "_avg_pool2d_gradient": lambda x, W, d, p: runtime._avg_pool2d_gradient(p, (3, 2), (2, 1), (7, 6)),
    }
    assert set(calls) == set(HELPERS)
    delta = rng.standard_normal(runtime._conv2d(runtime._im2col(x, (3, 2), (2, 1), (1, 0)), W).shape)
    pooled = rng.standard_normal(runtime._max_pool2d(x, (3, 2), (2, 1)).shape)
    for name, call in calls.items():
        wide = call(x, W, delta, pooled)
        narrow = call(*(a.astype(np.float32) for a in (x, W, delta, pooled)))
        assert wide.dtype == np.float64, name
        assert narrow.dtype == np.float32, name
        np.testing.assert_allclose(narrow, wide, rtol=1e-4, atol=1e-5, err_msg=name)


def runtime_calls(name):
    """The runtime functions that the source of `name` calls by name."""
    tree = ast.parse(inspect.getsource(getattr(runtime, name)))
    called = {node.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    return {f for f in called if inspect.isfunction(getattr(runtime, f, None))}


def test_needs_lists_every_runtime_function_called_transitively():
    assert set(HELPERS) <= set(runtime.NEEDS)
    for name in runtime.NEEDS:
        closure, todo = set(), [name]
        while todo:
            for callee in runtime_calls(todo.pop()) - closure - {name}:
                closure.add(callee)
                todo.append(callee)
        assert set(runtime.NEEDS[name]) == closure, name


def test_the_helpers_run_alone_with_only_numpy():
    """What a generated module does: copy a helper and what it needs, with `np` as the only global."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 2, 5, 5))
    W = rng.standard_normal((3, 2, 2, 2))
    for name in HELPERS:
        namespace = {"np": np}
        for function in (name,) + runtime.NEEDS[name]:
            exec(inspect.getsource(getattr(runtime, function)), namespace)
        copied = namespace[name]
        if name == "_im2col":
            result = copied(a, (2, 2), (1, 1), (1, 1))
        elif name == "_conv2d":
            result = copied(runtime._im2col(a, (2, 2), (1, 1), (1, 1)), W)
        elif name == "_conv2d_input_gradient":
            result = copied(rng.standard_normal((2, 3, 4, 4)), W, (1, 1), (0, 0), (5, 5))
        elif name == "_conv2d_weight_gradient":
            result = copied(runtime._im2col(a, (2, 2), (1, 1), (0, 0)), rng.standard_normal((2, 3, 4, 4)))
        elif name == "_avg_pool2d_gradient":
            result = copied(rng.standard_normal((2, 2, 2, 2)), (2, 2), (2, 2), (5, 5))
        elif name == "_max_pool2d_gradient":
            result = copied(a, runtime._max_pool2d(a, (2, 2), (2, 2)), rng.standard_normal((2, 2, 2, 2)), (2, 2), (2, 2))
        else:
            result = copied(a, (2, 2), (2, 2))
        assert np.all(np.isfinite(result)), name
