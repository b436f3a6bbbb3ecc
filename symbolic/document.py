"""The derivation as people read it: LaTeX documents, Markdown and notebook display.

`sections(derivation)` lays the derivation out once, as sections of text and equation rows;
`latex_document` and `markdown` render them. The order is that of a derivation on the board:
the network and the shape of every array, the forward pass, the loss, each backward step with
the rule it applies (the loss derivative and each activation derivative as SymPy computes them
and in their closed form), and last one boxed closed form per gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from . import rules
from .notation import ArrayLatexPrinter, latex_name

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
    rows: list = field(default_factory=list)  # equation rows: "lhs &= rhs" LaTeX strings
    boxed: bool = False


def _eq(lhs: str, *rhs: str, note: str = "") -> str:
    row = lhs + " &= " + " = ".join(rhs)
    return row + (r" && \text{" + escape(note) + "}" if note else "")


def sections(derivation) -> list[Section]:
    net = derivation.network
    p = ArrayLatexPrinter()
    out = []

    shapes = net.shapes(derivation.batch)
    roles = {net.input: "input", net.target: "target" + (" (class labels)" if net.loss.labels else "")}
    for i, layer in enumerate(net.layers, 1):
        roles[layer.weight] = f"weight of layer {i}"
        if layer.bias is not None:
            roles[layer.bias] = f"{'shared ' if layer.shared_bias else ''}bias of layer {i}"
    network = Section("Network")
    if net.description:
        network.text.append(net.description.replace("$", ""))
    layout = ("Row layout: each sample is a row, $z = a W + b$." if net.layout == "row"
              else "Column layout: one sample, a column vector, $z = W a + b$.")
    network.text.append(layout + (f" The batch size is ${p.doprint(derivation.batch)}$." if net.layout == "row" else ""))
    network.rows = [latex_name(name) + r" &\in " + _space(shape, p) + r" && \text{" + escape(roles[name]) + "}"
                    for name, shape in shapes.items()]
    out.append(network)

    forward = Section("Forward pass")
    for step in derivation.steps:
        if step.stage != "forward":
            continue
        if step.name.startswith("a"):
            layer = net.layers[int(step.name[1:]) - 1]
            rule = rules.ACTIVATIONS[layer.activation]
            z = sp.Symbol("z" + step.name[1:])
            applied = rule.latex + r"\left(" + latex_name(z.name) + r"\right)"
            forward.rows.append(_eq(latex_name(step.name), applied, p.doprint(step.expr))
                                if layer.activation != "softmax" else _eq(latex_name(step.name), p.doprint(step.expr)))
        else:
            forward.rows.append(_eq(latex_name(step.name), p.doprint(step.expr)))
    forward.text.append(r"Sums, products $\odot$, powers and functions of arrays act elementwise; "
                        r"$A B$ is the matrix product, $\sum_n$ sums over the samples, $\sum_k$ over a sample's "
                        r"classes, $\sum$ over every entry; $\mathbf{1}[z > 0]$ is 1 where $z > 0$, else 0.")
    out.append(forward)

    loss = derivation.step("L")
    rule = rules.LOSSES[net.loss.kind]
    yhat = sp.Symbol("yhat")
    ell = sp.latex(rule.ell.subs({rules.a: yhat, rules.y: sp.Symbol("y")}), symbol_names={yhat: r"{\hat y}"})
    output = latex_name(derivation.output.name)
    words = net.loss.kind.replace("_", " ") + (", averaged" if net.loss.reduction == "mean" else ", summed")
    loss_section = Section("Loss", [words.capitalize() + r": per entry $\ell(\hat y, y) = "
                                    + ell + r"$, with $\hat y = " + output + "$."])
    loss_section.rows.append(_eq("L", p.doprint(loss.expr)))
    out.append(loss_section)

    backward = Section("Backward pass", [r"$\delta_l = \partial L / \partial z_l$, the error at layer $l$'s "
                                         r"pre-activation; the chain rule carries it down, one layer at a time."])
    for step in derivation.steps:
        if step.stage == "backward":
            backward.rows += _delta_rows(step, p)
        elif step.stage == "gradient":
            backward.rows.append(_eq(latex_name(step.name), p.doprint(step.expr), note=step.rule.split(":")[0].split(" gradient")[0]))
    out.append(backward)

    closed = Section("Gradients", [r"In closed form, every $\delta$ substituted:"], boxed=True)
    for name in derivation.gradients:
        closed.rows.append(r"\boxed{" + latex_name("dL_d" + name) + " = " + p.doprint(derivation.closed_form(name)) + "}")
    out.append(closed)
    return out


def _delta_rows(step, p) -> list[str]:
    """A delta step: the rule, SymPy's derivatives, and the result."""
    notes, rows = step.notes, []
    activation = notes["activation"]
    name = latex_name(step.name)
    if "dell" in notes:  # the output layer
        rows.append(_eq(r"\frac{\partial \ell}{\partial \hat y}", p.doprint(notes["dell"]),
                        note="SymPy: diff of ell"))
    if activation == "softmax":
        rows.append(_eq(name, p.doprint(notes["unsimplified"]), p.doprint(step.expr),
                        note="through softmax, simplified"))
        return rows
    rule = rules.ACTIVATIONS[activation]
    f = rule.latex
    z = sp.Symbol("z")
    fz = sp.Function(f)(z)
    sympy_form = rule.derivative.subs(rules.slope, sp.Symbol("s"))
    table_form = rule.df.subs({rules.a: fz, rules.slope: sp.Symbol("s")})
    derivative = [sp.latex(sympy_form)]
    if sp.latex(table_form) != derivative[0]:
        derivative.append(ArrayLatexPrinter().doprint(table_form))
    rows.append(_eq(f + r"'\left(z\right)", *derivative, note="SymPy's diff; the form used"))
    if "dell" in notes:
        rows.append(_eq(name, p.doprint(notes["unsimplified"]), p.doprint(step.expr),
                        note="chain rule, simplified"))
    else:
        rows.append(_eq(name, p.doprint(step.expr), note="chain rule"))
    return rows


def _space(shape, p) -> str:
    """R^{N x 3}, or R for a scalar."""
    if not shape:
        return r"\mathbb{R}"
    return r"\mathbb{R}^{" + r" \times ".join(p.doprint(sp.sympify(d)) for d in shape) + "}"


def latex_document(derivation, elements: list[str] | None = None) -> str:
    """A complete LaTeX document (amsmath and amssymb only), compiled by pdflatex."""
    net = derivation.network
    parts = [PREAMBLE, r"\section*{Gradients of \texttt{" + escape(net.name) + "}}", ""]
    for section in sections(derivation):
        parts.append(r"\subsection*{" + section.title + "}")
        parts += [_latex_text(paragraph) + "\n" for paragraph in section.text]
        if section.rows:
            if section.boxed:
                parts.append(r"\begin{gather*}" + "\n" + "\\\\\n".join(section.rows) + "\n" + r"\end{gather*}")
            else:
                parts.append(r"\begin{align*}" + "\n" + "\\\\\n".join(section.rows) + "\n" + r"\end{align*}")
        parts.append("")
    if elements:
        parts.append(r"\subsection*{Every entry}")
        parts.append("From the element-level derivation: the loss written out over one symbol per entry, "
                     "differentiated by SymPy.\n")
        parts += [r"\begin{multline*}" + row + r"\end{multline*}" for row in elements]
    parts.append(r"\end{document}")
    return "\n".join(parts) + "\n"


def markdown(derivation, elements: list[str] | None = None) -> str:
    """Markdown with `$$...$$` blocks: renders on GitHub and in Jupyter."""
    net = derivation.network
    out = [f"## Gradients of `{net.name}`", ""]
    for section in sections(derivation):
        out += [f"### {section.title}", ""]
        out += [_markdown_text(paragraph) + "\n" for paragraph in section.text]
        if section.rows:
            env = "gathered" if section.boxed else "aligned"
            rows = [r.replace(" &= ", " = ").replace(" &: ", " : ") if section.boxed else r for r in section.rows]
            out += ["$$", rf"\begin{{{env}}}", "\\\\\n".join(rows), rf"\end{{{env}}}", "$$", ""]
    if elements:
        out += ["### Every entry", ""]
        for row in elements:
            out += ["$$", row, "$$", ""]
    return "\n".join(out)


def _markdown_text(paragraph: str) -> str:
    return paragraph.replace("*", r"\*").replace("_", r"\_") if "$" not in paragraph else paragraph


def _latex_text(paragraph: str) -> str:
    """Plain text escaped for LaTeX, the `$...$` math left as it is."""
    parts = paragraph.split("$")
    return "$".join(part if i % 2 else escape(part) for i, part in enumerate(parts))


def repr_latex(derivation) -> str:
    """One display-math block for notebooks (`_repr_latex_`)."""
    rows = []
    for section in sections(derivation):
        rows.append(r"&\textbf{" + section.title + r"}")
        rows += ["&" + r if section.boxed else r for r in section.rows]
    return "$$\\begin{aligned}" + "\\\\\n".join(rows) + "\\end{aligned}$$"


def element_rows(derivation, batch: int = 1, limit: int = 64) -> list[str]:
    """The scalar closed form of every gradient entry, as LaTeX rows; ValueError when too large.

    From the element-level derivation (`sympy.diff` of the loss written out over one symbol per
    entry), with every pre-activation and activation entry named (z1[1,2], a1[1,2]) as by hand.
    """
    import numpy as np

    from . import elements as element_level

    net = derivation.network
    n = net.batch or batch
    count = sum(int(np.prod(net.shapes(n)[name])) for name in net.differentiated)
    if count > limit:
        raise ValueError(f"{net.name} has {count} gradient entries; --elements writes out at most {limit}: "
                         "use a smaller network, or the matrix-level derivation")
    labels = np.zeros(n if net.layout == "row" else (), dtype=int) if net.loss.labels else None
    expanded = element_level.expand(net, batch=n, labels=labels)
    names = {}
    arrays = dict(expanded.symbols)
    for i, (z, _) in enumerate(expanded.layers, 1):
        arrays[f"z{i}"] = arrays[f"a{i}"] = np.empty(z.shape, dtype=object)
    for name, entries in arrays.items():
        if entries.dtype == object:
            for index in np.ndindex(entries.shape):
                names[element_level.entry_symbol(name, index)] = _entry_latex(name, index)
    rows = []
    for name in net.differentiated:
        grads = expanded.gradient(name)
        for index in np.ndindex(grads.shape):
            entry = element_level.entry_symbol(name, index)
            terms = [sp.latex(t, symbol_names=names) for t in sp.Add.make_args(expanded.compact(grads[index]))]
            body = terms[0] + "".join(("\\\\ " if t.startswith("-") else "\\\\ + ") + t for t in terms[1:])
            rows.append(r"\frac{\partial L}{\partial " + names[entry] + "} = " + body)
    return rows


def _entry_latex(name: str, index: tuple) -> str:
    if not index:
        return latex_name(name)
    return latex_name(name) + "[" + ",".join(str(i + 1) for i in index) + "]"
