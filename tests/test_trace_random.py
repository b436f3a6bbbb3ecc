"""Random NumPy programs (Hypothesis): a chain of operations drawn from the ones the tracer knows,
on arrays of drawn shapes, traced and generated; the module's value must equal the function's and
its gradients the central differences of the function itself."""

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import symprop

# Each step maps the current array a (2-D, (n, d)) and the inputs to a new 2-D array.
STEPS = {
    "tanh": lambda a, x, W, v: np.tanh(a),
    "square": lambda a, x, W, v: a ** 2 / 2,
    "sigmoid": lambda a, x, W, v: 1 / (1 + np.exp(-a)),
    "add row": lambda a, x, W, v: a + v[:a.shape[1]],
    "times column": lambda a, x, W, v: a * x[:a.shape[0], :1],  # slices of x fit a (rows may be fewer)
    "minus column mean": lambda a, x, W, v: a - a.mean(axis=1, keepdims=True),
    "over column std": lambda a, x, W, v: a / np.sqrt(a.var(axis=0) + 1.0),
    "relu": lambda a, x, W, v: np.maximum(0, a),
    "maximum of two": lambda a, x, W, v: np.maximum(a, x[:a.shape[0], :a.shape[1]] if a.shape[1] <= x.shape[1]
                                                    else a * 0.5),
    "where": lambda a, x, W, v: np.where(a > 0.1, a, 0.5 * a),
    "matmul": lambda a, x, W, v: np.tanh(a @ W[:a.shape[1], :]),
    "transpose twice": lambda a, x, W, v: (a.T * 1.5).T,
    "reshape": lambda a, x, W, v: np.cos(a.reshape(-1)).reshape(a.shape),
    "softmax": lambda a, x, W, v: np.exp(a - a.max(axis=1, keepdims=True))
    / np.exp(a - a.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True),
    "abs": lambda a, x, W, v: np.abs(a - 0.05),
    "slice rows": lambda a, x, W, v: a[::2] if a.shape[0] > 1 else a,
    "concatenate": lambda a, x, W, v: np.concatenate([a, np.tanh(a[:, :1])], axis=1) if a.shape[1] < 8 else a,
    # (at most 8 columns: W and v have 8 rows)
    "gather rows": lambda a, x, W, v: a[np.arange(a.shape[0])[::-1]],
    "write a row": lambda a, x, W, v: _write(a),
    "sum kept": lambda a, x, W, v: a * np.sum(a, axis=0, keepdims=True) / 4,
    "log1p": lambda a, x, W, v: np.log1p(a ** 2),
}


def _write(a):
    b = a.copy()
    b[0] = np.tanh(a[-1])
    b[:, -1] += 1.0
    return b


def make(steps):
    def fn(x, W, v, weights):
        a = x
        for name in steps:
            a = STEPS[name](a, x, W, v)
        return np.sum(a * weights[:a.shape[0], :a.shape[1]])
    return fn


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=5),
       n=st.integers(1, 4), d=st.integers(1, 4), seed=st.integers(0, 2**16))
@example(steps=["write a row"] * 3, n=1, d=1, seed=0)  # once an IndexError: a "loop" over x[:, 0] of length 1
def test_random_traced_programs_equal_central_differences(steps, n, d, seed):
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.uniform(-1, 1, size=(n, d)), "W": rng.uniform(-1, 1, size=(8, 8)),
              "v": rng.uniform(-1, 1, size=8), "weights": rng.uniform(-1, 1, size=(8, 16))}
    fn = make(steps)
    program = symprop.trace(fn, wrt=["x", "W", "v"], **arrays)
    module = {}
    exec(compile(symprop.generate(program), "<random>", "exec"), module)
    value = fn(**arrays)
    assert abs(module["loss"](**arrays) - value) <= 1e-12 * max(1.0, abs(value))
    got = module["gradients"](**arrays)
    expected = symprop.numerical_gradients(fn, arrays, list(program.wrt))
    scale = max(max(np.max(np.abs(e)) for e in expected.values()), 1.0)
    for name in program.wrt:
        # central differences (five points) of smooth or piecewise-linear steps; a kink within the
        # step is excused by the rare-draw floor of 1e-5 of the largest gradient entry
        assert np.max(np.abs(got[name] - expected[name])) <= 1e-5 * scale, (name, steps)
