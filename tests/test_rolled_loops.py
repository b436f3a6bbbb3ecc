"""A learner's Python loop over time, traced: the T recorded copies of its body rolled back up
into one loop of the program (`symbolic.rolling`), derived once, generated as one forward and one
reverse loop, and equal to the learner's own function (central differences), to the exact
unrolled oracle, to cs231n's published values and to the spec's `rnn`; the loops it cannot roll
stay unrolled, and exact."""

import re
import shutil
import subprocess

import numpy as np
import pytest

import learner_sequences as L
import symprop
from symprop.symbolic.program import element_gradients
from symprop.symbolic.scan import Scan

from test_sequences import LSTM_FORWARD_H, RNN_FORWARD_H
from test_trace import _module, _normwise, _value, _with


def _n(rng, *shape):
    return rng.normal(size=shape)


def _rnn(rng, N, T, D, H):
    return dict(x=_n(rng, N, T, D), h0=_n(rng, N, H), Wx=_n(rng, D, H) / 2, Wh=_n(rng, H, H) / 2, b=_n(rng, H))


def _lstm(rng, N, T, D, H):
    return dict(x=_n(rng, N, T, D), h0=_n(rng, N, H), Wx=_n(rng, D, 4 * H) / 2, Wh=_n(rng, H, 4 * H) / 2,
                b=_n(rng, 4 * H))


def _captioning(rng, N, T, D, H, V=4, F=3):
    return dict(features=_n(rng, N, F), captions=rng.integers(0, V, size=(N, T + 1)), W_proj=_n(rng, F, H),
                b_proj=_n(rng, H), W_embed=_n(rng, V, D), Wx=_n(rng, D, H) / 2, Wh=_n(rng, H, H) / 2, b=_n(rng, H),
                W_vocab=_n(rng, H, V), b_vocab=_n(rng, V))


def _classifier(rng, N, T, D, H, K=3):
    return dict(x=_n(rng, N, T, D), y=rng.integers(0, K, size=N), Wx=_n(rng, D, 4 * H) / 2,
                Wh=_n(rng, H, 4 * H) / 2, b=_n(rng, 4 * H), W=_n(rng, H, K), c=_n(rng, K))


# case -> (function, arrays(rng, N, T, D, H)): every form of loop a learner writes over time
CASES = {
    "rnn_forward (a step function, an (N, T, H) buffer)": (L.rnn_forward, _rnn),
    "rnn_forward_list (a list, np.array and transpose)": (L.rnn_forward_list, _rnn),
    "rnn_last_state (the state the loop ends with)": (L.rnn_last_state, _rnn),
    "lstm_forward (two states, c from np.zeros_like)": (L.lstm_forward, _lstm),
    "lstm_classifier (the loop inside a loss)": (L.lstm_classifier, _classifier),
    "captioning_loss (embedding, rnn, temporal affine, masked softmax)": (L.captioning_loss, _captioning),
}


def _trace(case, seed=0, N=2, T=3, D=3, H=4):
    fn, make = CASES[case]
    arrays = make(np.random.default_rng(seed), N, T, D, H)
    return fn, arrays, symprop.trace(fn, **arrays)


def _loops(program) -> int:
    return sum(isinstance(s.expr, Scan) for s in program.steps)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_traced_loop_is_one_loop_of_the_program_whatever_its_length(case):
    sizes = {}
    for T in (3, 11):
        _, _, program = _trace(case, T=T)
        assert _loops(program) == 1, [str(s.expr) for s in program.steps]
        source = symprop.generate(program)
        gradients = source[source.index("def gradients"):source.index("def loss_and_gradients")
                           if program.scalar else source.index("def _program_arrays")]
        # one forward loop and one reverse loop, and no other
        assert gradients.count(f"for t in range({T}):") == 1 and gradients.count("for t in reversed(range(") == 1
        assert len(re.findall(r"^\s+for ", gradients, re.M)) == 2
        sizes[T] = (len(program.steps), len(symprop.derive(program).text().splitlines()),
                    len(source.splitlines()))
    assert sizes[3] == sizes[11]  # the derivation and the module: the same length at T = 3 and T = 11


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_rolled_gradients_equal_central_differences_of_the_learners_function(case, seed):
    fn, arrays, program = _trace(case, seed)
    module = _module(program)
    given = {a.name: arrays[a.name] for a in program.arrays if a.role != "upstream"}
    value = _value(fn, arrays)
    np.testing.assert_allclose(module["forward"](**given), value, rtol=1e-12, atol=1e-12)
    rng = np.random.default_rng(seed + 10)
    dout = None if program.scalar else rng.normal(size=np.shape(value))

    def f(**changed):
        v = _value(fn, _with(arrays, changed))
        return float(v) if dout is None else float(np.sum(v * dout))

    expected = symprop.numerical_gradients(f, given, list(program.wrt))
    got = module["gradients"](**given, **({} if dout is None else {"dout": dout}))
    assert set(got) == {a.name for a in program.arrays if a.role == "differentiated"}
    for name in program.wrt:
        assert _normwise(got[name], expected[name]) < 1e-6, name


def relu_rnn_squared_error(x, y, h0, Wx, Wh, b):  # rational in every entry: the oracle is exact
    N, T, D = x.shape
    h = np.zeros((N, T, h0.shape[1]))
    prev_h = h0
    for t in range(T):
        prev_h = np.maximum(0, x[:, t, :] @ Wx + prev_h @ Wh + b)
        h[:, t, :] = prev_h
    return np.sum((h - y) ** 2) / N


def test_the_derived_reverse_loop_equals_the_exact_unrolled_oracle():
    # the oracle runs the loop forward step by step on exact rationals and differentiates the loss
    # entry by entry (sympy.diff): it shares nothing with the derived reverse loop
    rng = np.random.default_rng(0)
    arrays = dict(x=_n(rng, 2, 3, 2), y=_n(rng, 2, 3, 2), **{k: v for k, v in _rnn(rng, 2, 3, 2, 2).items() if k != "x"})
    program = symprop.trace(relu_rnn_squared_error, **arrays)
    assert _loops(program) == 1
    exact = element_gradients(program, arrays)
    got = _module(program)["gradients"](**arrays)
    for name, value in exact.items():
        expected = np.asarray(value, dtype=float)
        assert np.max(np.abs(got[name] - expected)) <= 1e-13 * max(1.0, np.max(np.abs(expected))), name


def test_the_exact_oracle_reads_the_loops_masks():
    # the captioning loss's mask (captions != 0) is data inside the oracle's exact arithmetic too
    _, arrays, program = _trace("captioning_loss (embedding, rnn, temporal affine, masked softmax)", N=1, T=2, D=1,
                                H=1)
    given = {a.name: arrays[a.name] for a in program.arrays}
    from symprop.symbolic.program import evaluate_steps
    import sympy as sp
    exact = {sp.Symbol(k): np.vectorize(sp.Rational, otypes=[object])(v) if np.asarray(v).dtype.kind == "f" else v
             for k, v in given.items()}
    loss = evaluate_steps(program, {k.name: v for k, v in exact.items()})[program.output]
    assert abs(float(sp.N(loss, 30)) - L.captioning_loss(**arrays)) < 1e-12


def _linspace(lo, hi, *shape):
    return np.linspace(lo, hi, num=int(np.prod(shape))).reshape(*shape)


def test_traced_cs231n_rnn_forward_gives_the_published_values():
    N, T, D, H = 2, 3, 4, 5
    arrays = dict(x=_linspace(-0.1, 0.3, N, T, D), h0=_linspace(-0.3, 0.1, N, H), Wx=_linspace(-0.2, 0.4, D, H),
                  Wh=_linspace(-0.4, 0.1, H, H), b=_linspace(-0.7, 0.1, H))
    program = symprop.trace(L.rnn_forward, **arrays)
    assert _loops(program) == 1
    h = _module(program)["forward"](**arrays)
    assert np.max(np.abs(h - RNN_FORWARD_H)) < 1e-8  # published to 8 decimals


def test_traced_cs231n_lstm_forward_gives_the_published_values():
    N, D, H, T = 2, 5, 4, 3
    arrays = dict(x=_linspace(-0.4, 0.6, N, T, D), h0=_linspace(-0.4, 0.8, N, H), Wx=_linspace(-0.2, 0.9, D, 4 * H),
                  Wh=_linspace(-0.3, 0.6, H, 4 * H), b=_linspace(0.2, 0.7, 4 * H))
    program = symprop.trace(L.lstm_forward, **arrays)
    assert _loops(program) == 1
    h = _module(program)["forward"](**arrays)
    assert np.max(np.abs(h - LSTM_FORWARD_H)) < 1e-8


def test_traced_cs231n_captioning_loss_is_published_and_its_gradients_are_the_specs():
    # cs231n's CaptioningRNN check (every parameter linspace(-1.4, 1.3), captions arange % V): the
    # learner's loss traced gives 9.83235591003, and its gradients are those of the same network
    # written as a spec (embedding, rnn, dense softmax, masked loss): two front ends, one answer
    N, D, W, H, V, T = 10, 20, 30, 40, 3, 13
    params = dict(W_proj=_linspace(-1.4, 1.3, D, H), b_proj=_linspace(-1.4, 1.3, H),
                  W_embed=_linspace(-1.4, 1.3, V, W), Wx=_linspace(-1.4, 1.3, W, H), Wh=_linspace(-1.4, 1.3, H, H),
                  b=_linspace(-1.4, 1.3, H), W_vocab=_linspace(-1.4, 1.3, H, V), b_vocab=_linspace(-1.4, 1.3, V))
    features = _linspace(-1.5, 0.3, N, D)
    captions = (np.arange(N * T) % V).reshape(N, T)
    program = symprop.trace(L.captioning_loss, features=features, captions=captions, **params)
    assert _loops(program) == 1
    module = _module(program)
    arrays = dict(features=features, captions=captions, **params)
    loss, grads = module["loss_and_gradients"](**arrays)
    assert abs(loss - 9.83235591003) < 1e-10  # published to 11 digits

    from test_sequences import CLASSIFY, dense, embedding, rnn, spec
    from symprop.codegen.files import compile_module
    net = spec("captioning", [T - 1], embedding(V, W), rnn(H, initial="h0"), dense(V, activation="softmax"),
               loss=CLASSIFY + '\nmask = "mask"')
    h0 = features @ params["W_proj"] + params["b_proj"]
    expected = compile_module(net).gradients(
        x=captions[:, :-1], y=captions[:, 1:], mask=(captions[:, 1:] != 0).astype(float), h0=h0,
        W1=params["W_embed"], Wx2=params["Wx"], Wh2=params["Wh"], b2=params["b"], W3=params["W_vocab"],
        b3=params["b_vocab"])
    pairs = {"W_embed": "W1", "Wx": "Wx2", "Wh": "Wh2", "b": "b2", "W_vocab": "W3", "b_vocab": "b3"}
    for ours, theirs in pairs.items():
        assert _normwise(grads[ours], expected[theirs]) < 1e-12, ours


def test_the_rolled_loop_reads_like_the_learners_code():
    _, _, program = _trace("lstm_forward (two states, c from np.zeros_like)")
    source = symprop.generate(program)
    # the step function's own names at t, the states by the names the loop gave them
    for line in ("a_t = np.dot(prev_h, Wh) + np.dot(x_t, Wx) + b", "next_c_t = f_t*prev_c + g_t*i_t",
                 "next_h_t = o_t*np.tanh(next_c_t)", "h[:, t] = next_h_t", "prev_c = next_c_t",
                 "dL_da_t = np.concatenate(", "dL_dWx += ", "dL_dx[:, t] = "):
        assert line in source, line
    assert "_index_add" not in source  # the gates' gradients join, not four scatters
    text = symprop.derive(program).text()
    assert "for t = 1, ..., 3:" in text and "for t = 3, ..., 1:" in text
    assert "dL_dnext_c_next = dL_dprev_c   [carried to step t - 1]" in text


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_the_rolled_derivation_typesets(tmp_path):
    _, _, program = _trace("captioning_loss (embedding, rnn, temporal affine, masked softmax)")
    (tmp_path / "d.tex").write_text(symprop.derive(program).latex())
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "d.pdf").stat().st_size > 0


# -- what stays unrolled, and exact --------------------------------------------------------------


def shifted_input(x, h0, Wx, Wh, b):  # reads the step after t: not the slice at t
    h, hs = h0, []
    for t in range(x.shape[1] - 1):
        h = np.tanh(x[:, t + 1] @ Wx + h @ Wh + b)
        hs.append(h)
    return np.stack(hs, axis=1)


def two_steps_back(x, h0, Wx, Wh, b):  # the state of two steps before
    hs = [h0, h0]
    for t in range(x.shape[1]):
        hs.append(np.tanh(x[:, t] @ Wx + hs[-2] @ Wh + b))
    return np.stack(hs[2:], axis=1)


def state_from_a_number(x, h0, Wx, Wh, b):  # c = 0, a number: block 0 differs from the others
    h, c, hs = h0, 0, []
    for t in range(x.shape[1]):
        c = c + np.tanh(x[:, t] @ Wx + h @ Wh + b)
        h = np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1)


def over_the_batch(x, h0, Wx, Wh, b):  # a loop over axis 0
    rows = [np.tanh(x[n, 0] @ Wx + h0[n] @ Wh + b) for n in range(x.shape[0])]
    return np.stack(rows)


@pytest.mark.parametrize("fn", [shifted_input, two_steps_back, state_from_a_number, over_the_batch])
def test_a_loop_it_cannot_roll_stays_unrolled_and_exact(fn):
    arrays = _rnn(np.random.default_rng(0), 2, 3, 3, 4)
    program = symprop.trace(fn, **arrays)
    assert _loops(program) == 0
    module = _module(program)
    dout = np.random.default_rng(1).normal(size=np.shape(fn(**arrays)))
    expected = symprop.numerical_gradients(lambda **c: float(np.sum(fn(**_with(arrays, c)) * dout)), arrays,
                                           list(program.wrt))
    got = module["gradients"](**arrays, dout=dout)
    for name in program.wrt:
        assert _normwise(got[name], expected[name]) < 1e-6, name


def _example(name):
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, dict(np.load(ROOT / "examples" / f"{name}.npz"))


def test_check_of_a_traced_loop_diagnoses_the_forgotten_carry():
    layers, arrays = _example("rnn_layers")
    program = symprop.trace(layers.rnn_forward, **arrays)
    assert _loops(program) == 1
    assert symprop.check(program, against=layers.rnn_backward).ok
    report = symprop.check(program, against=layers.rnn_backward_no_carry)
    rows = report.sections["rnn_backward_no_carry vs generated"]
    assert {row.name for row in rows if row.verdict == "WRONG"} == {"x", "h0", "Wx", "Wh", "b"}
    (diagnosis,) = next(row for row in rows if row.name == "x").diagnosis
    T = arrays["x"].shape[1]
    assert diagnosis["kind"] == "steps" and diagnosis["right_from"] == T - 1  # right at the last step only


# -- what an adversarial review found (each a wrong gradient or a crash before) -----------------


def same_gradient_twice(x, h0, Wh, b, c):  # b and c get the same gradient at every step
    s = h0
    for t in range(x.shape[1]):
        s = np.tanh(x[:, t] + s @ Wh + b + c)
    return s


def argument_as_the_state(x, h, Wx, Wh, b):  # the argument h reassigned: the loop's value is not h
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ Wx + h @ Wh + b)
    return h


def integer_sequence_first(x, counts, h0):  # the first sequence the loop reads holds integers
    s, out = h0, []
    for t in range(counts.shape[1]):
        s = np.tanh(0.5 * s + counts[:, t] * x[:, t])
        out.append(s)
    return np.stack(out, axis=1)


def a_local_named_like_the_carry(x, h0, Wx, Wh, b, c):  # h_next: the name of the carried gradient's array
    z = np.tanh(c)
    h = h0
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ Wx + h @ Wh + b)
    h_next = h + z
    return h_next * h_next


def an_argument_named_like_the_slice(x, h0, Wx, Wh, out_t):  # out_t: the loop's value at t
    out = np.zeros((x.shape[0], x.shape[1], h0.shape[1]))
    s = h0
    for t in range(x.shape[1]):
        s = np.tanh(x[:, t] @ Wx + s @ Wh + out_t)
        out[:, t] = s
    return out


def the_buffer_is_an_argument(x, h0, Wx, Wh, h):  # written over whole: its gradient is 0
    h = h.copy()
    s = h0
    for t in range(x.shape[1]):
        s = np.tanh(x[:, t] @ Wx + s @ Wh)
        h[:, t] = s
    return h


def _found(rng, N=2, T=3, D=3, H=4):
    return {
        same_gradient_twice: dict(x=_n(rng, N, T, H), h0=_n(rng, N, H), Wh=_n(rng, H, H) / 2, b=_n(rng, H),
                                  c=_n(rng, H)),
        argument_as_the_state: dict(x=_n(rng, N, T, D), h=_n(rng, N, H), Wx=_n(rng, D, H), Wh=_n(rng, H, H) / 2,
                                    b=_n(rng, H)),
        integer_sequence_first: dict(x=_n(rng, N, T, H), counts=rng.integers(0, 3, size=(N, T, H)),
                                     h0=_n(rng, N, H)),
        a_local_named_like_the_carry: dict(x=_n(rng, N, T, D), h0=_n(rng, N, H), Wx=_n(rng, D, H),
                                           Wh=_n(rng, H, H) / 2, b=_n(rng, H), c=_n(rng, H)),
        an_argument_named_like_the_slice: dict(x=_n(rng, N, T, D), h0=_n(rng, N, H), Wx=_n(rng, D, H),
                                               Wh=_n(rng, H, H) / 2, out_t=_n(rng, H)),
        the_buffer_is_an_argument: dict(x=_n(rng, N, T, D), h0=_n(rng, N, H), Wx=_n(rng, D, H),
                                        Wh=_n(rng, H, H) / 2, h=_n(rng, N, T, H)),
    }


@pytest.mark.parametrize("fn", list(_found(np.random.default_rng(0))), ids=lambda f: f.__name__)
def test_what_the_review_found_rolls_and_is_right(fn):
    rng = np.random.default_rng(0)
    arrays = _found(rng)[fn]
    program = symprop.trace(fn, **arrays)
    assert _loops(program) == 1
    module = _module(program)
    value = fn(**arrays)
    np.testing.assert_allclose(module["forward"](**{k: v for k, v in arrays.items()}), value, rtol=1e-12,
                               atol=1e-12)
    dout = rng.normal(size=np.shape(value))
    kept = dout.copy()
    expected = symprop.numerical_gradients(lambda **c: float(np.sum(fn(**_with(arrays, c)) * dout)), arrays,
                                           list(program.wrt))
    got = module["gradients"](**arrays, dout=dout)
    assert np.array_equal(dout, kept)  # the caller's dout is not written into
    for name in program.wrt:
        if not np.any(expected[name]):
            assert not np.any(got[name]), name  # written over whole: exactly 0
        else:
            assert _normwise(got[name], expected[name]) < 1e-6, name


def test_the_zeros_of_a_buffer_asked_for_by_name_stay_unrolled():
    def fn(x, h0, Wx, Wh):
        h = np.zeros((x.shape[0], x.shape[1], h0.shape[1]))
        s = h0
        for t in range(x.shape[1]):
            s = np.tanh(x[:, t] @ Wx + s @ Wh)
            h[:, t] = s
        return h
    arrays = {k: v for k, v in _rnn(np.random.default_rng(0), 2, 3, 3, 4).items() if k != "b"}
    program = symprop.trace(fn, wrt=["h"], **arrays)
    assert _loops(program) == 0
    got = _module(program)["gradients"](**arrays, dout=np.ones((2, 3, 4)))
    assert got["h"].shape == (2, 3, 4) and not np.any(got["h"])  # written over whole


def test_traced_cs231n_lstm_step_forward_gives_the_published_next_h():
    # cs231n's lstm_step_forward check: a nonzero prev_c, which a spec's lstm (c_0 = 0) cannot
    # take, is an argument of the learner's step function
    N, D, H = 3, 4, 5
    arrays = dict(x=_linspace(-0.4, 1.2, N, D), prev_h=_linspace(-0.3, 0.7, N, H), prev_c=_linspace(-0.4, 0.9, N, H),
                  Wx=_linspace(-2.1, 1.3, D, 4 * H), Wh=_linspace(-0.7, 2.2, H, 4 * H), b=_linspace(0.3, 0.7, 4 * H))
    program = symprop.trace(L.lstm_step_forward, **arrays)
    next_h = _module(program)["forward"](**arrays)
    expected = np.asarray([[0.24635157, 0.28610883, 0.32240467, 0.35525807, 0.38474904],
                           [0.49223563, 0.55611431, 0.61507696, 0.66844003, 0.7159181],
                           [0.56735664, 0.66310127, 0.74419266, 0.80889665, 0.858299]])
    assert np.max(np.abs(next_h - expected)) < 1e-8  # published to 8 decimals


def _zero_state_rnn(x, Wx, Wh):
    h0 = np.zeros((x.shape[0], Wh.shape[0]))
    h = h0
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ Wx + h @ Wh)
    return np.sum(h ** 2)


def _given_state_rnn(x, Wx, Wh, h0):
    h = h0
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ Wx + h @ Wh)
    return np.sum(h ** 2)


@pytest.mark.parametrize("T", [3, 8])
def test_the_gradient_of_a_zero_initial_state_asked_for_by_name(T):
    # the loop made its zero state itself and dropped h0 (a KeyError in generate); asked for by
    # name, the zeros stay a state of the loop and dL/dh0 is the gradient of a given h0 at zero
    rng = np.random.default_rng(0)
    arrays = dict(x=_n(rng, 2, T, 3), Wx=_n(rng, 3, 4), Wh=_n(rng, 4, 4) / 2)
    program = symprop.trace(_zero_state_rnn, wrt=["h0", "Wh"], **arrays)
    assert _loops(program) == 1
    gradients = _module(program)["gradients"](**arrays)
    expected = symprop.numerical_gradients(_given_state_rnn, dict(arrays, h0=np.zeros((2, 4))), ["h0", "Wh"])
    for name in ("h0", "Wh"):
        assert _normwise(gradients[name], expected[name]) < 1e-8, name
