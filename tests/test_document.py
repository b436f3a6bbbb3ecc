"""Derivations people read: LaTeX that compiles, Markdown, notebook display, per-entry forms.

The golden files are regenerated with:
    symprop derive relu_softmax_3_4_2 -o tests/golden/relu_softmax_3_4_2.tex
    symprop derive relu_softmax_3_4_2 -o tests/golden/relu_softmax_3_4_2.md
"""

import shutil

import numpy as np
import pytest
import sympy as sp
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from networks import networks

from symprop import symbolic
from symprop.codegen import files
from symprop.cli import main
from symprop.codegen.module import _cse, _needed
from symprop.symbolic import elements
from symprop.symbolic.document import element_rows
from symprop.symbolic.notation import ArrayLatexPrinter

PRESETS = symbolic.presets()
SMALL = [name for name in PRESETS if name != "relu_batch_10_20_1"]
needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                    reason="pdflatex is not installed (apt-get install texlive-latex-base)")


@needs_pdflatex
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_compiles_with_pdflatex(name, tmp_path):
    derivation = symbolic.derive(symbolic.load(name))
    pdf = tmp_path / f"{name}.pdf"
    files.write_pdf(derivation.latex(elements=name in SMALL), pdf)
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000


@needs_pdflatex
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(max_depth=3, max_width=3))
def test_random_networks_compile_with_pdflatex(network, tmp_path_factory):
    pdf = tmp_path_factory.mktemp("pdf") / "net.pdf"
    files.write_pdf(symbolic.derive(network).latex(), pdf)
    assert pdf.read_bytes()[:5] == b"%PDF-"


def generated_closed_form(derivation, name):
    """The gradient as the code generator emits it: its printed lines, substituted back."""
    gradient = derivation.gradients[name]
    lines = _cse(_needed(derivation.steps, [gradient]))
    backward = {symbol: expr for symbol, expr in lines if not symbol.name.startswith(("z", "a"))}
    expr = backward[gradient]
    while expr.free_symbols & (backward.keys() - {gradient}):
        expr = expr.xreplace(backward)
    return expr


@pytest.mark.parametrize("name", PRESETS)
def test_boxed_closed_forms_are_what_the_generator_emits(name):
    derivation = symbolic.derive(symbolic.load(name))
    document = derivation.latex()
    for array in derivation.gradients:
        closed = derivation.closed_form(array)
        # the same SymPy object, up to SymPy's canonical expansion (a2/5 - y/5 is (a2 - y)/5)
        assert sp.expand(generated_closed_form(derivation, array), deep=True) == sp.expand(closed, deep=True), array
        boxed = r"\boxed{" + r"\frac{\partial L}{\partial " + _latex(array) + "} = " + ArrayLatexPrinter().doprint(closed) + "}"
        assert boxed in document, array


def _latex(name):
    from symprop.symbolic.notation import latex_name
    return latex_name(name)


@pytest.mark.parametrize("suffix", ["tex", "md"])
def test_golden_files(suffix):
    derivation = symbolic.derive(symbolic.load("relu_softmax_3_4_2"))
    expected = (ROOT / "tests" / "golden" / f"relu_softmax_3_4_2.{suffix}").read_text()
    text = derivation.latex() if suffix == "tex" else derivation.markdown()
    assert text == expected


def test_document_has_the_steps_in_order_and_sympys_derivatives():
    document = symbolic.derive(symbolic.load("sigmoid_mse_2_2_1")).latex()
    order = ["Network", "Forward pass", "Loss", "Backward pass", "Gradients"]
    positions = [document.index(r"\subsection*{" + title + "}") for title in order]
    assert positions == sorted(positions)
    # sigma'(z) as SymPy computes it, then in the form the code uses
    assert r"\sigma'\left(z\right) &= \frac{e^{- z}}{\left(1 + e^{- z}\right)^{2}} = " in document
    assert r"\left(1 - \sigma{\left(z \right)}\right) \odot \sigma{\left(z \right)}" in document
    assert r"W_{1} &\in \mathbb{R}^{2 \times 2}" in document


def test_softmax_with_cross_entropy_simplifies_to_yhat_minus_y():
    document = symbolic.derive(symbolic.load("relu_softmax_3_4_2")).latex()
    assert r"= a_{2} \odot \sum_{k} y - y && \text{through softmax, simplified}" in document


def test_notebook_display():
    derivation = symbolic.derive(symbolic.load("relu_softmax_3_4_2"))
    latex, markdown = derivation._repr_latex_(), derivation._repr_markdown_()
    assert latex.startswith("$$\\begin{aligned}") and latex.endswith("\\end{aligned}$$")
    assert r"\boxed{\frac{\partial L}{\partial W}" in latex
    assert markdown.count("$$") % 2 == 0 and "### Backward pass" in markdown


@pytest.mark.parametrize("name", SMALL)
def test_element_rows_cover_every_entry(name):
    net = symbolic.load(name)
    rows = element_rows(symbolic.derive(net))
    shapes = net.shapes(net.batch or 1)
    assert len(rows) == sum(int(np.prod(shapes[n])) for n in net.differentiated)
    assert all(row.startswith(r"\frac{\partial L}{\partial ") for row in rows)


def test_compact_names_keep_the_value():
    # a1_12 stands for sigma(z1_12) and z1_12 for its affine sum: putting them back is the same
    net = symbolic.load("sigmoid_shared_bias_2_2_2")
    expanded = elements.expand(net, batch=1)
    grad = expanded.gradient("W1")[0, 1]
    compact = expanded.compact(grad)
    assert sp.Symbol("a1_12", real=True) in compact.free_symbols or sp.Symbol("z1_12", real=True) in compact.free_symbols
    back = {}
    for i, (z, a) in enumerate(expanded.layers, 1):
        for index in np.ndindex(z.shape):
            back[elements.entry_symbol(f"z{i}", index)] = z[index]
            back[elements.entry_symbol(f"a{i}", index)] = a[index]
    restored = compact
    while restored.free_symbols & back.keys():
        restored = restored.xreplace(back)
    point = {s: sp.Rational(k + 2, 7) for k, s in enumerate(sorted(grad.free_symbols, key=str))}
    assert sp.N(restored.xreplace(point) - grad.xreplace(point), 40) == 0


def test_elements_refused_for_a_large_network(capsys):
    assert main(["derive", "relu_batch_10_20_1", "--elements", "--format", "latex"]) == 2
    assert "241 gradient entries; --elements writes out at most 64" in capsys.readouterr().err


def test_pdf_without_pdflatex_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["derive", "sigmoid_mse_2_2_1", "-o", str(tmp_path / "d.pdf")]) == 2
    assert "apt-get install texlive-latex-base" in capsys.readouterr().err
    assert not (tmp_path / "d.pdf").exists()
