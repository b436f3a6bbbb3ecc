"""One test loop over every registered operation (`symbolic.ops.OPERATIONS`: the spec's and the traced programs'):
for each of its samples, the generated vector-Jacobian products equal central differences of the
operation's own value, the generated forward equals that value, the exact (SymPy number) value
equals the float one, and the derivation prints as text and LaTeX."""

import numpy as np
import pytest
import sympy as sp

import symprop
from symprop.symbolic import ops
from symprop.symbolic.arrays import evaluate, shape_of
from symprop.symbolic.program import Array, Program, Step, derive_program

SAMPLES = [pytest.param(op, k, id=f"{op.__name__}-{k}") for op in ops.OPERATIONS for k in range(len(op.samples()))]


def test_every_operation_is_sampled_or_declared_values_only():
    import inspect

    from symprop.symbolic import arrays
    defined = {cls for module in (arrays, ops) for _, cls in inspect.getmembers(module, inspect.isclass)
               if issubclass(cls, sp.Function) and cls.__module__ == module.__name__
               and not cls.__name__.startswith("_") and cls not in (ops.Op, arrays.ArrayFunction)}
    assert defined == set(ops.OPERATIONS) | set(ops.VALUES_ONLY) | set(arrays.GRADIENTS)
    assert all(op.samples() for op in ops.OPERATIONS)


def _program(expr, floats: dict, data: dict) -> Program:
    shapes = {sp.Symbol(n): tuple(sp.Integer(d) for d in s) for n, s in floats.items()}
    shapes.update({sp.Symbol(n): tuple(sp.Integer(d) for d in np.shape(v)) for n, v in data.items()})
    shape = tuple(int(d) for d in shape_of(expr, shapes))
    arrays = [Array(n, tuple(s), "float64", "differentiated") for n, s in floats.items()]
    arrays += [Array(n, np.shape(v), np.asarray(v).dtype.name, "data") for n, v in data.items()]
    arrays.append(Array("dout", shape, "float64", "upstream"))
    out = sp.Symbol("out")
    return Program("sample", tuple(arrays), (Step(out, expr, shape, "float64"),), out, tuple(floats), scalar=False,
                   source="symbolic/ops.py")


@pytest.mark.parametrize("op, k", SAMPLES)
def test_the_vjp_of_every_operation_equals_central_differences(op, k):
    expr, floats, data = op.samples()[k]
    program = _program(expr, floats, data)
    rng = np.random.default_rng(k)
    values = {n: rng.normal(size=s) for n, s in floats.items()}
    values.update({n: np.asarray(v) for n, v in data.items()})
    module = {}
    exec(compile(symprop.generate(program), f"<{op.__name__}>", "exec"), module)
    env = {sp.Symbol(n): v for n, v in values.items()}
    value = np.asarray(evaluate(expr, env), dtype=float)
    _assert_equal(op, module["forward"](**values), value)  # the printed code is the value
    dout = rng.normal(size=value.shape)
    got = module["gradients"](**values, dout=dout)

    def f(**changed):
        local = {sp.Symbol(n): v for n, v in {**values, **changed}.items()}
        return float(np.sum(np.asarray(evaluate(expr, local), dtype=float) * dout))
    expected = symprop.numerical_gradients(f, {n: values[n] for n in floats}, list(floats))
    for name in floats:
        assert got[name].shape == np.shape(values[name])
        scale = max(np.max(np.abs(expected[name]), initial=0.0), 1.0)
        # central differences of a piecewise-linear or smooth operation: rounding only
        assert np.max(np.abs(got[name] - expected[name]), initial=0.0) <= 1e-8 * scale, name


@pytest.mark.parametrize("op, k", SAMPLES)
def test_the_exact_value_of_every_operation_is_its_float_value(op, k):
    expr, floats, data = op.samples()[k]
    rng = np.random.default_rng(k)
    floats = {n: rng.integers(-9, 10, size=s) / 4 for n, s in floats.items()}  # exact in binary
    exact = {sp.Symbol(n): np.vectorize(sp.Rational, otypes=[object])(v) if np.ndim(v) else sp.Rational(v)
             for n, v in floats.items()}
    exact.update({sp.Symbol(n): np.asarray(v) for n, v in data.items()})
    env = {sp.Symbol(n): v for n, v in floats.items()} | {sp.Symbol(n): np.asarray(v) for n, v in data.items()}
    _assert_equal(op, np.asarray(evaluate(expr, exact), dtype=float), np.asarray(evaluate(expr, env), dtype=float))


def _assert_equal(op, got, expected):
    """Exactly equal; for an operation whose float value depends on how it is computed (exp, log,
    a sum in another order), to rounding: 16 units in the last place of the largest entry."""
    if getattr(op, "rounds", False):
        scale = np.max(np.abs(expected), initial=0.0)
        np.testing.assert_allclose(got, expected, rtol=0, atol=16 * np.finfo(float).eps * scale)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("op, k", SAMPLES)
def test_every_operation_prints_in_text_and_latex(op, k):
    expr, floats, data = op.samples()[k]
    derivation = derive_program(_program(expr, floats, data))
    text, latex = derivation.text(), derivation.latex()
    assert "  out = " in text and "dL_d" in text
    assert type(expr).__name__ not in text  # its own notation, not SymPy's fallback
    assert r"\begin{align*}" in latex and type(expr).__name__ not in latex
