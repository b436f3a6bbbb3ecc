"""Derivations people read: LaTeX that compiles, Markdown, notebook display, per-entry forms.

The golden files are regenerated with:
    symprop derive relu_softmax_3_4_2 -o tests/golden/relu_softmax_3_4_2.tex
    symprop derive relu_softmax_3_4_2 -o tests/golden/relu_softmax_3_4_2.md
"""

import re
import shutil
import subprocess

import numpy as np
import pytest
import sympy as sp
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from networks import mlp, networks

from symprop import symbolic
from symprop.cli import main
from symprop.codegen import files
from symprop.codegen.module import _cse
from symprop.symbolic.program import needed_steps
from symprop.symbolic import elements
from symprop.symbolic.document import PREAMBLE, element_rows
from symprop.symbolic.notation import ArrayLatexPrinter, latex_name

PRESETS = symbolic.presets()
SMALL = [name for name in PRESETS if name != "relu_batch_10_20_1"]
needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                    reason="pdflatex is not installed (apt-get install texlive-latex-base)")


OVERFULL = 20  # pt: how far a line may run into the margin


def overfull_lines(tex: str, work) -> list[float]:
    """Compile `tex` with pdflatex in `work`; how many pt each overfull line runs off the page."""
    (work / "doc.tex").write_text(tex)
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                            cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:]
    assert (work / "doc.pdf").read_bytes()[:5] == b"%PDF-"
    log = (work / "doc.log").read_text(errors="replace")
    return [float(pt) for pt in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]


def one_document(derivations) -> str:
    """The bodies of several derivations' documents in one (a single pdflatex run)."""
    bodies = []
    for derivation in derivations:
        document = derivation.latex()
        bodies.append(document[len(PREAMBLE):document.rindex(r"\end{document}")])
    return PREAMBLE + "\\clearpage\n".join(bodies) + "\\end{document}\n"


@needs_pdflatex
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_compiles_with_pdflatex(name, tmp_path):
    derivation = symbolic.derive(symbolic.load(name))
    pdf = tmp_path / f"{name}.pdf"
    files.write_pdf(derivation.latex(elements=name in SMALL), pdf)
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000


@needs_pdflatex
@pytest.mark.parametrize("name", PRESETS)
def test_preset_documents_stay_on_the_page(name, tmp_path):
    # with --elements where the network is small enough: every entry's form, broken into lines
    derivation = symbolic.derive(symbolic.load(name))
    assert max(overfull_lines(derivation.latex(elements=name in SMALL), tmp_path), default=0) <= OVERFULL


# (hidden activation, output activation, loss, labels): every activation and loss at every depth
KINDS = [("sigmoid", "sigmoid", "squared_error", False), ("tanh", "softmax", "cross_entropy", True),
         ("relu", "sigmoid", "binary_cross_entropy", False), ("softplus", "identity", "squared_error", False),
         ("leaky_relu", "softmax", "cross_entropy", False)]


def deep(depth: int, layout: str, kind) -> symbolic.Network:
    hidden, output, loss, labels = kind
    return mlp(3, *[(3, hidden)] * (depth - 1), (2, output), loss=loss, layout=layout, labels=labels)


@needs_pdflatex
@pytest.mark.parametrize("depths", [range(1, 4), range(4, 7), range(7, 10), range(10, 13)])
def test_no_formula_runs_off_the_page_at_any_depth(depths, tmp_path):
    # a 10-layer network's expanded closed forms were 737 pt too wide; one document per depth class
    derivations = [symbolic.derive(deep(depth, layout, kind))
                   for depth in depths for layout in ("row", "column") for kind in KINDS]
    derivations.append(symbolic.derive(symbolic.loads(  # an l2 penalty on every weight: a long loss
        'name = "l2"\ninputs = 2\n' + '[[layers]]\nunits = 2\nactivation = "tanh"\n' * max(depths)
        + '[loss]\nkind = "squared_error"\nl2 = 0.1\n')))
    widths = overfull_lines(one_document(derivations), tmp_path)
    assert max(widths, default=0) <= OVERFULL, widths


def test_a_deep_network_boxes_its_gradients_in_terms_of_deltas():
    derivation = symbolic.derive(deep(10, "row", KINDS[0]))
    document = derivation.latex()
    assert "substituted as far as the formula fits on a line" in document
    deltas = {s.symbol: s.expr for s in derivation.steps if s.stage == "backward"}
    printer = ArrayLatexPrinter()
    for name in derivation.gradients:  # each boxed form is a step of substituting the deltas
        expr, forms = derivation.step("dL_d" + name).expr, []
        while True:
            forms.append(r"\boxed{" + latex_name("dL_d" + name) + " = " + printer.doprint(expr) + "}")
            if not expr.free_symbols & deltas.keys():
                break
            expr = expr.xreplace(deltas)
        boxed = [form for form in forms if form in document]
        assert len(boxed) == 1, name
    assert r"\boxed{\frac{\partial L}{\partial W_{1}} = x^{\top} \left(a_{1} \odot" in document
    assert r"\delta_{3} W_{3}^{\top}" in document  # the first layer's gradient, through delta_3
    assert r"\boxed{\frac{\partial L}{\partial b_{10}} = \frac{\sum_{n} \left(a_{10} \odot" in document  # in full


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
    lines = _cse(needed_steps(derivation.steps, [gradient]))
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
    # sigma'(z) as SymPy computes it, then (a line of its own) in the form the code uses
    assert (r"\sigma'\left(z\right) &= \frac{e^{- z}}{\left(1 + e^{- z}\right)^{2}} \tag*{SymPy's diff}\\" + "\n"
            + r" &= \left(1 - \sigma{\left(z \right)}\right) \odot \sigma{\left(z \right)} \tag*{the form used}") in document
    assert r"W_{1} &\in \mathbb{R}^{2 \times 2} \tag*{weight of layer 1}" in document


def test_softmax_with_cross_entropy_simplifies_to_yhat_minus_y():
    document = symbolic.derive(symbolic.load("relu_softmax_3_4_2")).latex()
    assert r" &= a_{2} \odot \sum_{k} y - y \tag*{simplified}" in document


def test_notebook_display():
    derivation = symbolic.derive(symbolic.load("relu_softmax_3_4_2"))
    latex, markdown = derivation._repr_latex_(), derivation._repr_markdown_()
    assert latex.startswith("$$\\begin{aligned}") and latex.endswith("\\end{aligned}$$")
    assert r"\boxed{\frac{\partial L}{\partial W}" in latex
    assert r"\delta_{1} &= \left(U^{\top} \delta_{2}\right) \odot \mathbf{1}\left[z_{1} > 0\right] && \text{chain rule}" in latex
    assert markdown.count("$$") % 2 == 0 and "### Backward pass" in markdown
    assert r"\tag" not in latex + markdown  # MathJax allows no \tag inside aligned


@pytest.mark.parametrize("net, says", [
    ("relu_softmax_3_4_2", ["column layout, one sample", "Column layout: one sample"]),
    ("sigmoid_mse_2_2_1", ["row layout, batch N", "The batch size is $N$."]),
    ("relu_batch_10_20_1", ["row layout, batch 5", "The batch size is $5$."]),
])
def test_every_format_says_how_many_samples(net, says):
    # the column layout's x is (inputs,): one sample, never "batch N"
    derivation = symbolic.derive(symbolic.load(net))
    text, header = derivation.text(), derivation.text().splitlines()[0]
    assert header == f"Network {net}: {says[0]}"
    for document in (derivation.latex(), derivation.markdown()):
        assert says[1] in document
    if "column" in says[0]:
        assert "batch" not in text + derivation.latex() + derivation.markdown()


def test_an_activation_is_written_once_where_its_name_is_its_formula():
    document = symbolic.derive(mlp(2, (2, "tanh"), (1, "sigmoid"))).latex()
    assert "a_{1} &= \\tanh\\left(z_{1}\\right)\\\\\n" in document
    assert r"a_{2} &= \sigma\left(z_{2}\right) = \frac{1}{1 + e^{- z_{2}}}" in document  # two forms: both


@pytest.mark.parametrize("layout, classes, space", [
    ("row", 3, r"y &\in \{0, 1, 2\}^{N} \tag*{target (class labels)}"),
    ("column", 3, r"y &\in \{0, 1, 2\} \tag*{target (class labels)}"),
    ("row", 10, r"y &\in \{0, \dots, 9\}^{N} \tag*{target (class labels)}"),
])
def test_class_labels_are_integers_not_reals(layout, classes, space):
    net = mlp(2, (classes, "softmax"), loss="cross_entropy", labels=True, layout=layout)
    derivation = symbolic.derive(net)
    assert space in derivation.latex()
    assert space.replace(r" \tag*{target (class labels)}", r" && \text{target (class labels)}") in derivation.markdown()
    one_hot = symbolic.derive(mlp(2, (classes, "softmax"), loss="cross_entropy", layout=layout)).latex()
    assert r"y &\in \mathbb{R}^{" in one_hot


def test_the_loss_derivative_is_named_by_its_symbol():
    derivation = symbolic.derive(symbolic.load("sigmoid_mse_2_2_1"))
    assert r"\tag*{SymPy: $\partial \ell / \partial \hat y$}" in derivation.latex()
    assert r"&& \text{SymPy: } \partial \ell / \partial \hat y" in derivation.markdown()
    assert "diff of ell" not in derivation.latex() + derivation.markdown()


@pytest.mark.parametrize("name", SMALL)
def test_element_rows_cover_every_entry(name):
    net = symbolic.load(name)
    rows = element_rows(symbolic.derive(net))
    shapes = net.shapes(net.batch or 1)
    assert len(rows) == sum(int(np.prod(shapes[n])) for n in net.differentiated)
    assert all(row.lhs.startswith(r"\frac{\partial L}{\partial ") and row.pieces for row in rows)


def test_element_indices_count_from_zero_as_check_does():
    rows = element_rows(symbolic.derive(symbolic.load("relu_softmax_3_4_2")))
    entries = [row.lhs for row in rows if row.lhs.startswith(r"\frac{\partial L}{\partial W[")]
    assert entries == [r"\frac{\partial L}{\partial W[" + f"{i},{j}" + "]}" for i in range(4) for j in range(3)]
    document = symbolic.derive(symbolic.load("relu_softmax_3_4_2")).latex(elements=True)
    assert r"\theta\left(z_{1}[0]\right)" in document and "z_{1}[4]" not in document
    assert "indices count from 0, as in NumPy" in document


@pytest.mark.parametrize("name, says", [
    ("sigmoid_mse_2_2_1", "for one sample, $N = 1$"),
    ("relu_softmax_3_4_2", "for the one sample"),
])
def test_elements_say_how_many_samples_they_write_out(name, says):
    derivation = symbolic.derive(symbolic.load(name))
    assert says in derivation.latex(elements=True)
    assert says in derivation.markdown(elements=True)


@pytest.mark.parametrize("name, entry, form", [
    # sigma'(z2) is a2 (1 - a2), not e^{-z2} / (1 + e^{-z2})^2
    ("sigmoid_mse_2_2_1", r"W_{2}[1,0]", r"a_{1}[0,1] a_{2}[0,0] \left(1 - a_{2}[0,0]\right) \left(a_{2}[0,0] - y[0,0]\right)"),
    ("sigmoid_shared_bias_2_2_2", r"b_{2}", r"a_{2}[0,0] \left(1 - a_{2}[0,0]\right) \left(a_{2}[0,0] - y[0,0]\right)"
                                            r" + a_{2}[0,1] \left(1 - a_{2}[0,1]\right) \left(a_{2}[0,1] - y[0,1]\right)"),
    # softmax with cross-entropy: a2[0] (y[0] + y[1]) - y[0], in the softmax outputs (no e^{z2})
    ("relu_softmax_3_4_2", r"b_{2}[0]", r"a_{2}[0] y[1] - y[0] \left(1 - a_{2}[0]\right)"),
    ("relu_softmax_3_4_2", r"U[1,2]", r"a_{1}[2] \left(a_{2}[1] y[0] - y[1] \left(1 - a_{2}[1]\right)\right)"),
    # an identity output layer: a3 - y_true, not the affine sum written out
    ("relu_regression_3_4_3_1", r"B_{3}[0]", r"a_{3}[0] - \mathrm{y\_true}[0]"),
])
def test_element_forms_are_simplified_in_the_named_entries(name, entry, form):
    rows = {row.lhs: row for row in element_rows(symbolic.derive(symbolic.load(name)))}
    row = rows[r"\frac{\partial L}{\partial " + entry + "}"]
    assert " ".join(row.lines()) == form
    assert not any("e^{" in term for row in rows.values() for term in row.pieces)


def entry_values(expanded) -> dict:
    """Each named entry (z1_01, a1_01) and the expression it stands for."""
    values = {}
    for i, (z, a) in enumerate(expanded.layers, 1):
        for index in np.ndindex(z.shape):
            values[elements.entry_symbol(f"z{i}", index)] = z[index]
            values[elements.entry_symbol(f"a{i}", index)] = a[index]
    return values


SIMPLIFIED = {name: lambda name=name: symbolic.load(name) for name in SMALL} | {  # and every activation
    "relu_softplus_leaky_relu": lambda: mlp(1, (1, "relu"), (1, "softplus"), (2, "leaky_relu"), layout="column"),
    "tanh_identity_softmax_labels": lambda: mlp(2, (2, "tanh"), (2, "identity"), (3, "softmax"),
                                                loss="cross_entropy", labels=True),
    "leaky_relu_sigmoid_bce": lambda: mlp(2, (2, "leaky_relu"), (1, "sigmoid"), loss="binary_cross_entropy"),
}


@pytest.mark.parametrize("name", SIMPLIFIED)
def test_simplified_entries_keep_their_value(name):
    # the named, simplified form of every entry, its names put back, equals sympy.diff's
    net = SIMPLIFIED[name]()
    expanded = elements.expand(net, batch=1, labels=0 if net.loss.labels else None)
    values = entry_values(expanded)
    point = {s: sp.Rational(k % 7 + 2, 7) * (-1) ** k for k, s in enumerate(sorted(expanded.loss.free_symbols, key=str))}
    for array in net.differentiated:
        grads = expanded.gradient(array)
        for index in np.ndindex(grads.shape):
            readable = expanded.readable(grads[index])
            while readable.free_symbols & values.keys():
                readable = readable.xreplace(values)
            difference = sp.N(readable.xreplace(point) - grads[index].xreplace(point), 40)
            assert abs(difference) < 1e-30, (array, index)


def test_compact_names_keep_the_value():
    # a1_01 stands for sigma(z1_01) and z1_01 for its affine sum: putting them back is the same
    net = symbolic.load("sigmoid_shared_bias_2_2_2")
    expanded = elements.expand(net, batch=1)
    grad = expanded.gradient("W1")[0, 1]
    compact = expanded.compact(grad)
    assert sp.Symbol("a1_01", real=True) in compact.free_symbols or sp.Symbol("z1_01", real=True) in compact.free_symbols
    restored, back = compact, entry_values(expanded)
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
