"""The derivation as people read it: LaTeX documents, Markdown and notebook display.

`sections(derivation)` lays the derivation out once, as sections of text and equation rows;
`latex_document` and `markdown` render them. The order is that of a derivation on the board:
the network and the shape of every array, the forward pass, the loss, each backward step with
the rule it applies (the loss derivative and each activation derivative as SymPy computes them
and in their closed form), and last one boxed closed form per gradient. `element_section` adds
every gradient entry's scalar form (`--elements`).

Every formula stays on the page (16 cm): widths are estimated from the LaTeX
(`notation.latex_width`); a boxed closed form too wide substitutes its deltas only as far as it
fits, and long sums (an l2 penalty, an entry's form) break between terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest

import sympy as sp

from . import rules
from .arrays import Columns, OneHot, RowSum, shape_of
from .derive import derive, grad_name
from .notation import ArrayLatexPrinter, index_rows, latex_name, latex_width, loop_gradients
from .ops import Concatenate
from .scan import Scan, ScanGrad, next_name

LINE = 40.0  # em: the longest formula set on one line (the text width, 16 cm at 11 pt, is 41.6 em)

PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage{amsmath,amssymb}
\setlength{\textwidth}{16cm}\setlength{\oddsidemargin}{0cm}\setlength{\evensidemargin}{0cm}
\setlength{\textheight}{23cm}\setlength{\topmargin}{-1cm}
\allowdisplaybreaks
\begin{document}
"""

_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
             "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: str) -> str:
    """Plain text for LaTeX's text mode."""
    return "".join(_SPECIALS.get(ch, ch) for ch in text)


@dataclass
class Section:
    title: str
    text: list = field(default_factory=list)  # paragraphs: plain text with `$...$` math
    rows: list = field(default_factory=list)  # `Row`s; boxed: LaTeX strings
    boxed: bool = False
    long: list = field(default_factory=list)  # `Long` equations, each broken into lines


@dataclass
class Long:
    """An equation that may be too long for one line: `lhs = ` pieces, broken between pieces."""

    lhs: str
    pieces: list  # LaTeX of the right-hand side, each piece with its operator: "a", "+ b", "- c \\Bigl(d"

    @classmethod
    def of_terms(cls, lhs: str, terms: list) -> Long:
        """The sum of `terms` (LaTeX, negative ones starting with "-")."""
        return cls(lhs, [_signed(term, first=not i) for i, term in enumerate(terms)])

    def room(self) -> float:
        """The width of a line after `lhs = ` (and a quad), in em."""
        return LINE - latex_width(self.lhs + " = ") - 1

    def lines(self) -> list[str]:
        """The right-hand side in lines that fit the room after `lhs = `."""
        lines, line, used, room = [], [], 0.0, self.room()
        for piece in self.pieces:
            if line and used + latex_width(piece) > room:
                lines.append(line)
                line, used = [], 0.0
            line.append(piece)
            used += latex_width(piece)
        return [" ".join(pieces) for pieces in lines + [line]]

    def aligned(self) -> str:
        """The rows of an align environment: `lhs &= ` the first line, the others indented."""
        lines = self.lines()
        return "\\\\\n".join([self.lhs + " &= " + lines[0]] + [r"&\quad " + line for line in lines[1:]])


def _signed(term: str, first: bool) -> str:
    """A term as it follows others: "+ b" (a negative term carries its "-")."""
    return term if first or term.startswith("-") else "+ " + term


@dataclass
class Row:
    """`lhs = forms[0] = forms[1] ...` and its note; with a note per form, one line per form."""

    lhs: str
    forms: list  # LaTeX of the right-hand sides
    notes: list = field(default_factory=list)  # plain text with `$...$` math
    relation: str = "="

    def aligned(self, tags: bool) -> str:
        """The rows of an align environment; the notes as tags at the margin (LaTeX: amsmath
        moves a tag below a long line rather than let it run off the page), or in a column."""
        forms = self.forms if len(self.notes) > 1 else [" = ".join(self.forms)]
        out = []
        for i, (form, note) in enumerate(zip_longest(forms, self.notes, fillvalue="")):
            line = (self.lhs if i == 0 else "") + f" &{self.relation} " + form
            if note:
                line += r" \tag*{" + _latex_text(note) + "}" if tags else " && " + _note(note)
            out.append(line)
        return "\\\\\n".join(out)


def _eq(lhs: str, *forms: str, notes: tuple = ()) -> Row:
    return Row(lhs, list(forms), list(notes))


def _note(note: str) -> str:
    """A note in math mode: words in \\text, its `$...$` parts as math."""
    parts = note.split("$")
    return " ".join(part if i % 2 else r"\text{" + escape(part) + "}" for i, part in enumerate(parts) if part)


def sections(derivation) -> list[Section]:
    p = ArrayLatexPrinter()
    return [_network(derivation, p), _forward(derivation, p), _loss(derivation, p),
            _backward(derivation, p), _gradients(derivation, p)]


def _network(derivation, p) -> Section:
    net = derivation.network
    roles = {}
    for name, role in net.roles().items():
        layers = net.using(name)
        if role == "target" and net.loss.labels:
            role += " (class labels)"
        if layers and name != net.input:
            role += f" of layer{'s' if len(layers) > 1 else ''} " + " and ".join(map(str, layers))
        roles[name] = role
    section = Section("Network")
    if net.description:
        section.text.append(Plain(net.description))
    if net.layout == "row":
        section.text.append(f"Row layout: each sample is a row, $z = a W + b$. The batch size is ${p.doprint(derivation.batch)}$.")
    else:
        section.text.append("Column layout: one sample, a column vector, $z = W a + b$.")
    for name, shape in net.shapes(derivation.batch).items():
        labels = name == net.target and net.loss.labels
        space = _labels(net.outputs, shape, p) if labels else _space(shape, p)
        section.rows.append(Row(latex_name(name), [space], [roles[name]], relation=r"\in"))
    return section


def _forward(derivation, p) -> Section:
    section = Section("Forward pass", [
        r"Sums, products $\odot$, powers and functions of arrays act elementwise; $A B$ is the matrix "
        r"product, $\sum_n$ sums over the samples, $\sum_k$ over a sample's classes, $\sum$ over every "
        r"entry; $\mathbf{1}[z > 0]$ is 1 where $z > 0$, else 0."]
        + ([r"Images are $N \times C \times H \times W$ arrays; $\operatorname{conv}$ is PyTorch's "
            r"convolution (a cross-correlation with zero padding), written out entry by entry, in index "
            r"notation, below each step that uses it, as are the poolings and their gradients: a sum over "
            r"indices runs over those that land inside the arrays (whole numbers, where a stride divides), "
            r"$\operatorname{argmax}$ is a window's first maximum in row-major order, and a bias, $\gamma$ "
            r"or $\beta$ with one value per channel $c$ is added to every pixel of that channel."]
           if any(layer.image for layer in derivation.network.layers) else []))
    for step in derivation.steps:
        if step.stage != "forward":
            continue
        if isinstance(step.expr, Scan):
            section.rows += _loop_forward_rows(step, p)
            continue
        forms = [p.doprint(step.expr)]  # the identity: a = z, nothing applied
        written = rules.explicit(step.expr)
        if written != step.expr and not (written.is_Function and written.args == step.expr.args[:1]):
            forms.append(p.doprint(written))  # sigma(z) = 1/(1 + e^{-z}); tanh(z) only once
        section.rows.append(_eq(latex_name(step.name), *forms))
        section.rows += _index_rows(step, p)
    return section


def _index_rows(step, p) -> list[Row]:
    """A convolution's or pooling's entries in index notation, below the step that applies it."""
    rows = []
    for lhs, rhs in index_rows(step.expr, p, latex_name(step.name)):
        rows.append(_eq(lhs, rhs, notes=["in index notation"]))
    return rows


def _loss(derivation, p) -> Section:
    net = derivation.network
    rule = rules.LOSSES[net.loss.kind]
    yhat = sp.Symbol("yhat")
    if rule.ell is not None:
        ell = sp.latex(rule.ell.subs({rules.a: yhat, rules.y: sp.Symbol("y")}), symbol_names={yhat: r"{\hat y}"})
        per = r"per entry $\ell(\hat y, y) = " + ell + "$"
    else:
        per = (r"per sample of class $c$, $\ell(\hat y, y) = " + rule.ell_latex + r"$ with margin $\Delta = "
               + f"{net.loss.margin:g}$")
    words = net.loss.kind.replace("_", " ") + (", averaged" if net.loss.reduction == "mean" else ", summed")
    section = Section("Loss", [words.capitalize() + ": " + per
                               + r", with $\hat y = " + latex_name(derivation.output.name) + "$."])
    loss = derivation.step("L").expr
    if latex_width("L = " + p.doprint(loss)) <= LINE:
        section.rows.append(_eq("L", p.doprint(loss)))
    else:  # a penalty on many weights
        section.long.append(Long.of_terms("L", p.terms(loss)))
    return section


def _backward(derivation, p) -> Section:
    section = Section("Backward pass", [r"$\delta_l = \partial L / \partial z_l$, the error at layer $l$'s "
                                        r"pre-activation; the chain rule carries it down, one step at a time, "
                                        r"and an array used twice gets the sum of both pulls."])
    staged, loops = None, set()
    for step in derivation.steps:
        if step.stage not in ("backward", "gradient"):
            continue
        for loop, parts in loop_gradients(derivation, step, loops):
            section.rows += _loop_backward_rows(loop, parts, p)
        if isinstance(step.expr, ScanGrad):
            continue  # written by the reverse loop
        composites = list(step.composites)
        if composites:
            staged = staged or derive(derivation.network, compact=False)
            shown = {s.name for s in derivation.steps}
            section.rows += _staged_rows(staged, composites[0], step, shown - {step.name}, p)
        if composites:
            section.rows.append(_eq(latex_name(step.name), p.doprint(step.expr),
                                    notes=[f"the {composites[0].name} rule: the same, simplified"]))
        elif step.role == "delta":
            section.rows += _delta_rows(derivation, step, p)
        else:
            note = step.role if step.stage == "gradient" else "chain rule"
            section.rows.append(_eq(latex_name(step.name), p.doprint(step.expr), notes=[note]))
        section.rows += _index_rows(step, p)
    return section


def _loop_forward_rows(step, p) -> list[Row]:
    """A scan: `t = 1, ..., T`, the step's equations (indented), then what the layer outputs."""
    loop = step.expr.loop
    starts = ", ".join(f"${latex_name(prev)} = " + (latex_name(init) if init else "0") + "$"
                       for prev, _, init in loop.carried)
    rows = [_eq("t", r"1, \dots, " + str(loop.length), notes=[f"each step in turn, from {starts} at t = 1"])]
    for inner in loop.body.steps:
        rows.append(_eq(r"\quad " + latex_name(inner.name), p.doprint(inner.expr), notes=[inner.rule]))
    out = latex_name(loop.output)[:-2]  # z_{1,t} without its t}: the value at step s is out + "s}"
    value = out + f"{loop.length}}}" if loop.last else (
        r"\left(" + out + "1}" + r", \dots, " + out + f"{loop.length}}}" + r"\right)")
    rows.append(_eq(latex_name(step.name), value, notes=[step.rule]))
    return rows


def _loop_backward_rows(loop, parts, p) -> list[Row]:
    """A scan's reverse loop: `t = T, ..., 1`, the step's gradients (indented; a parameter's summed
    over the steps), the carried gradients handed to step t - 1."""
    steps, grads = loop.backward
    summed = {grads[name] for name in loop.parameters}
    starts = ", ".join(f"${latex_name(next_name(new))} = " + (latex_name(f"dL_d{loop.name}")
                       if loop.last and new == loop.output else "0") + "$" for _, new, _ in loop.carried)
    rows = [_eq("t", str(loop.length) + r", \dots, 1", notes=[f"backpropagation through time, from {starts}"])]
    shapes = loop.body.shapes()
    for step in loop.reverse(parts):
        relation = r"\mathrel{+}=" if step.symbol in summed else "="
        note = "summed over the steps" if step.symbol in summed else step.rule.split(":")[0]
        if isinstance(step.expr, Concatenate):  # the gates' blocks side by side: one row each
            start = 0
            for block in step.expr.args[:-1]:
                width = int(shape_of(block, shapes | {s.symbol: s.shape for s in loop.backward[0]})[-1])
                lhs = r"\quad " + p.doprint(Columns(step.symbol, start, start + width))
                rows.append(Row(lhs, [p.doprint(block)], [note if not start else ""], relation=relation))
                start += width
            continue
        rows.append(Row(r"\quad " + latex_name(step.name), [p.doprint(step.expr)], [note], relation=relation))
    for prev, new, _ in loop.carried:
        rows.append(_eq(r"\quad \frac{\partial L_{>t-1}}{\partial " + latex_name(prev) + "}",
                        latex_name(grads[prev].name), notes=["carried to step t - 1"]))
    return rows


def _staged_rows(staged, composite, step, shown: set, p) -> list[Row]:
    """The chain rule through a normalization's mean and variance, step by step, as the sweep
    gives it without the compact rule: the steps the compact form does without, then `step`."""
    inner = set(composite.inner) | {composite.output}
    rows = []
    for other in staged.steps:
        if other.stage not in ("backward", "gradient") or other.name in shown:
            continue
        if other.of in inner or other.expr.free_symbols & inner and other.name != step.name:
            rows.append(_eq(latex_name(other.name), p.doprint(other.expr), notes=["staged"]))
        elif other.name == step.name:
            rows += _broken(latex_name(other.name), other.expr, "staged, in full", p)
    return rows


def _broken(lhs: str, expr, note: str, p) -> list[Row]:
    """`lhs = expr` as rows of an align environment, broken between terms where too long."""
    if latex_width(lhs + " = " + p.doprint(expr)) <= LINE - 8:  # room for the note
        return [_eq(lhs, p.doprint(expr), notes=[note])]
    long = Long.of_terms(lhs, p.terms(sp.expand_mul(expr, deep=False)))  # a product: its terms
    long.lhs = lhs + r"\qquad\qquad"  # the room the note takes at the margin
    first, *rest = long.lines()
    return [_eq(lhs, first, notes=[note])] + [Row("", [r"\quad " + line], relation="") for line in rest]


def _delta_rows(derivation, step, p) -> list[Row]:
    """A delta step: the rule, SymPy's derivatives, and the result."""
    rows, name = [], latex_name(step.name)
    output = next((s for s in derivation.steps if s.role == "activation" and s.layer == step.layer
                   and step.of in s.expr.free_symbols), None)
    activation = output.activation if output is not None else "identity"
    from_loss = output is not None and output.symbol == derivation.output  # the last layer
    rule = rules.LOSSES[derivation.network.loss.kind]
    g = None
    if from_loss and rule.ell is not None:  # the output layer: SymPy's derivative of the loss
        target = derivation.arrays[derivation.network.target]
        if derivation.network.loss.labels:
            target = OneHot(target, derivation.network.outputs)
        g = sp.diff(rule.ell, rules.a).subs({rules.a: derivation.output, rules.y: target})
        rows.append(_eq(r"\frac{\partial \ell}{\partial \hat y}", p.doprint(g),
                        notes=[r"SymPy: $\partial \ell / \partial \hat y$"]))
    c = derivation.step("L").notes.get("scale", 1)
    if activation == "softmax":
        if g is not None:
            a = derivation.output
            rows.append(_eq(name, p.doprint(c * a * (g - RowSum(a * g))), p.doprint(step.expr),
                            notes=["through softmax", "simplified"]))
        else:
            rows.append(_eq(name, p.doprint(step.expr), notes=["chain rule"]))
        return rows
    if activation != "identity":
        activation_rule = rules.ACTIVATIONS[activation]
        fz = sp.Function(activation_rule.latex)(sp.Symbol("z"))
        sympy_form = activation_rule.derivative.subs(rules.slope, sp.Symbol("s"))
        table_form = activation_rule.df.subs({rules.a: fz, rules.slope: sp.Symbol("s")})  # softplus': sigma(z)
        derivative = [sp.latex(sympy_form)]
        if sp.latex(table_form) != derivative[0]:
            derivative.append(ArrayLatexPrinter().doprint(table_form))
        said = ["SymPy's diff", "the form used"] if len(derivative) > 1 else ["SymPy's diff, the form used"]
        rows.append(_eq(activation_rule.latex + r"'\left(z\right)", *derivative, notes=said))
    if g is not None:  # the loss's derivative times the activation's, then simplified
        slope = sp.Rational(repr(derivation.network.layers[step.layer - 1].negative_slope))
        df = rules.ACTIVATIONS[activation].df.xreplace({rules.z: step.of, rules.a: derivation.output, rules.slope: slope})
        rows.append(_eq(name, p.doprint(sp.Mul(c, g, df, evaluate=False)), p.doprint(step.expr),
                        notes=["chain rule", "simplified"]))
    else:
        rows.append(_eq(name, p.doprint(step.expr), notes=["chain rule"]))
    return rows


def _gradients(derivation, p) -> Section:
    """One boxed closed form per gradient; where it would run off the page, the deltas are
    substituted only as far as the formula fits on a line."""
    section = Section("Gradients", boxed=True)
    deltas = {s.symbol: s.expr for s in derivation.steps if s.stage == "backward"}
    partial = False
    for name in derivation.gradients:
        expr = derivation.step(grad_name(name)).expr
        if isinstance(expr, ScanGrad):  # through a loop: as its reverse loop writes it
            section.rows.append(_loop_boxed(expr, p))
            continue
        row = _boxed(name, expr, p)
        while expr.free_symbols & deltas.keys():
            expr = expr.xreplace(deltas)
            wider = _boxed(name, expr, p)
            if latex_width(wider) > LINE:
                partial = True
                break
            row = wider
        section.rows.append(row)
    section.text.append(r"In closed form, every $\delta$ substituted" + (
        r"; where that runs off the page, the $\delta_l$ of the backward pass substituted as far as the "
        "formula fits on a line:" if partial else ":"))
    return section


def _loop_boxed(grad, p) -> str:
    """The gradient of a loop's argument: a parameter's is the sum over the steps, a sequence's is
    its step's at each t, an initial state's is the carried one at t = 1."""
    loop, part = grad.loop, grad.part
    steps, grads = loop.backward
    by_symbol = {s.symbol: s for s in steps}
    if part in loop.parameters:
        return (r"\boxed{" + latex_name(grad_name(part)) + r" = \sum_{t=1}^{" + str(loop.length) + "} "
                + p.doprint(by_symbol[grads[part]].expr) + "}")
    inner = next((i for i, outer in loop.sequences if outer == part), None)
    if inner is not None:
        return r"\boxed{" + latex_name(grad_name(inner)) + " = " + p.doprint(by_symbol[grads[inner]].expr) + "}"
    prev = next(prev for prev, _, init in loop.carried if init == part)
    return (r"\boxed{" + latex_name(grad_name(part)) + " = " + latex_name(grads[prev].name)
            + r"\big|_{t=1}}")


def _boxed(name: str, expr, p) -> str:
    return r"\boxed{" + latex_name(grad_name(name)) + " = " + p.doprint(expr) + "}"


def _space(shape, p) -> str:
    """R^{N x 3}, or R for a scalar."""
    if not shape:
        return r"\mathbb{R}"
    return r"\mathbb{R}^{" + r" \times ".join(p.doprint(sp.sympify(d)) for d in shape) + "}"


def _labels(classes: int, shape, p) -> str:
    """Class labels: {0, 1, 2}^N, or {0, ..., 9} for a single label."""
    labels = ", ".join(map(str, range(classes))) if classes <= 4 else rf"0, \dots, {classes - 1}"
    power = "".join("^{" + p.doprint(sp.sympify(d)) + "}" for d in shape)
    return r"\{" + labels + r"\}" + power


def latex_document(derivation, elements: Section | None = None) -> str:
    """A complete LaTeX document (amsmath and amssymb only), compiled by pdflatex."""
    net = derivation.network
    parts = [PREAMBLE, r"\section*{Gradients of \texttt{" + escape(net.name) + "}}", ""]
    for section in sections(derivation) + ([elements] if elements else []):
        parts.append(r"\subsection*{" + section.title + "}")
        parts += [_latex_text(paragraph) + "\n" for paragraph in section.text]
        if section.rows:
            env = "gather*" if section.boxed else "align*"
            rows = section.rows if section.boxed else [row.aligned(tags=True) for row in section.rows]
            parts.append(rf"\begin{{{env}}}" + "\n" + "\\\\\n".join(rows) + "\n" + rf"\end{{{env}}}")
        if section.long:
            parts.append(r"\begin{align*}" + "\n" + "\\\\\n".join(e.aligned() for e in section.long)
                         + "\n" + r"\end{align*}")
        parts.append("")
    parts.append(r"\end{document}")
    return "\n".join(parts) + "\n"


def markdown(derivation, elements: Section | None = None) -> str:
    """Markdown with `$$...$$` blocks: renders on GitHub and in Jupyter."""
    net = derivation.network
    out = [f"## Gradients of `{net.name}`", ""]
    for section in sections(derivation) + ([elements] if elements else []):
        out += [f"### {section.title}", ""]
        out += [_markdown_text(paragraph) + "\n" for paragraph in section.text]
        if section.rows:
            env = "gathered" if section.boxed else "aligned"
            rows = section.rows if section.boxed else [row.aligned(tags=False) for row in section.rows]
            out += ["$$", rf"\begin{{{env}}}", "\\\\\n".join(rows), rf"\end{{{env}}}", "$$", ""]
        for equation in section.long:
            out += ["$$", r"\begin{aligned}", equation.aligned(), r"\end{aligned}", "$$", ""]
    return "\n".join(out)


class Plain(str):
    """A paragraph of the user's own text (a description): no math in it, every character as written."""


_MARKDOWN_SPECIALS = "\\`*_[]<>$~|"  # inline emphasis, code, links, HTML, math (MathJax), tables


def _markdown_text(paragraph: str) -> str:
    if isinstance(paragraph, Plain):
        return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in paragraph)
    return paragraph.replace("*", r"\*").replace("_", r"\_") if "$" not in paragraph else paragraph


def _latex_text(paragraph: str) -> str:
    """Plain text escaped for LaTeX, the `$...$` math left as it is."""
    if isinstance(paragraph, Plain):
        return escape(paragraph)
    parts = paragraph.split("$")
    return "$".join(part if i % 2 else escape(part) for i, part in enumerate(parts))


def repr_latex(derivation) -> str:
    """One display-math block for notebooks (`_repr_latex_`)."""
    rows = []
    for section in sections(derivation):
        rows.append(r"&\textbf{" + section.title + r"}")
        rows += ["&" + r if section.boxed else r.aligned(tags=False) for r in section.rows]
    return "$$\\begin{aligned}" + "\\\\\n".join(rows) + "\\end{aligned}$$"


def element_section(derivation, batch: int = 1, limit: int = 64) -> Section:
    """The scalar closed form of every gradient entry; ValueError when there are too many.

    From the element-level derivation (`sympy.diff` of the loss written out over one symbol per
    entry), simplified, with every pre-activation and activation entry named (z1[0,1], a1[0,1])
    as by hand; indices count from 0, as in NumPy and `symprop check`.
    """
    net = derivation.network
    n = net.batch or batch
    if net.layout == "column":
        size = "for the one sample"
    elif net.batch is None:
        size = f"for {'one sample' if n == 1 else f'{n} samples'}, $N = {n}$"
    else:
        size = f"for the batch of $N = {n}$"
    section = Section("Every entry", [
        f"From the element-level derivation, {size}: the loss written out over one symbol per entry, "
        "differentiated by SymPy and simplified, every pre-activation and activation entry named "
        r"($z_{1}[0,1]$, $a_{1}[0,1]$); indices count from 0, as in NumPy"
        + (", and every class label is 0." if net.loss.labels else ".")])
    section.long = element_rows(derivation, batch, limit)
    return section


def element_rows(derivation, batch: int = 1, limit: int = 64) -> list[Long]:
    """`element_section`'s equations: dL/d(entry) = its terms, entry by entry."""
    import numpy as np

    from . import elements as element_level

    net = derivation.network
    n = net.batch or batch
    count = sum(int(np.prod(net.shapes(n)[name])) for name in net.differentiated)
    if count > limit:
        raise ValueError(f"{net.name} has {count} gradient entries; --elements writes out at most {limit}: "
                         "use a smaller network, or the matrix-level derivation")
    looped = [layer.kind for layer in net.layers if layer.kind in ("rnn", "lstm")]
    if looped:  # each entry's formula holds every step's before it: minutes for three steps of two units
        raise ValueError(f"{net.name} has a loop over time ({looped[0]}): its entries' formulas grow with every "
                         "step, and --elements does not write them out; use the matrix-level derivation")
    labels = np.zeros(n if net.layout == "row" else (), dtype=int) if net.loss.labels else None
    expanded = element_level.expand(net, batch=n, labels=labels)
    arrays = dict(expanded.symbols)
    for i, (z, _) in enumerate(expanded.layers, 1):
        arrays[f"z{i}"] = arrays[f"a{i}"] = z
    names = {element_level.entry_symbol(name, index): _entry_latex(name, index)
             for name, entries in arrays.items() if entries.dtype == object for index in np.ndindex(entries.shape)}
    rows = []
    for name in net.differentiated:
        grads = expanded.gradient(name)
        for index in np.ndindex(grads.shape):
            lhs = r"\frac{\partial L}{\partial " + names[element_level.entry_symbol(name, index)] + "}"
            room = Long(lhs, []).room() - latex_width("+ ")
            pieces = []
            for term in expanded.readable(grads[index]).as_ordered_terms():
                first, *others = _fitting(term, names, room)
                pieces += [_signed(first, first=not pieces)] + others
            rows.append(Long(lhs, pieces))
    return rows


def _fitting(term, names, room: float) -> list[str]:
    """The LaTeX of `term` in pieces of at most `room` em, the first without a "+": a product too
    wide as its other factors, then each wide sum among its factors between \\Bigl( and \\Bigr),
    broken between its terms."""
    text = sp.latex(term, symbol_names=names)
    factors = sp.Mul.make_args(term)
    sums = [factor for factor in factors if factor.is_Add]
    if latex_width(text) <= room or not sums:
        return [text]
    width = {factor: latex_width(sp.latex(factor, symbol_names=names)) for factor in sums}
    wide = [factor for factor in sums if width[factor] > room / 3] or [max(sums, key=width.get)]
    rest = sp.Mul(*(factor for factor in factors if factor not in wide))
    lead = {1: "", -1: "- "}.get(rest, sp.latex(rest, symbol_names=names) + " ")
    if rest.is_Add:  # one narrow sum
        lead = r"\left(" + lead + r"\right) "
    pieces = [lead]
    for factor in wide:
        inner = []
        for part in factor.as_ordered_terms():
            first, *others = _fitting(part, names, room)
            inner += [_signed(first, first=not inner)] + others
        inner[0], inner[-1] = r"\Bigl(" + inner[0], inner[-1] + r"\Bigr)"
        if latex_width(pieces[-1] + inner[0]) <= room:  # on the line of the factors before it
            pieces[-1] += inner.pop(0)
        pieces += inner
    return [piece for piece in pieces if piece]


def _entry_latex(name: str, index: tuple) -> str:
    """W1[0,2]: indices from 0."""
    if not index:
        return latex_name(name)
    return latex_name(name) + "[" + ",".join(map(str, index)) + "]"
