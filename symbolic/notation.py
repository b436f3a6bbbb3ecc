"""One notation, printed as plain text and as LaTeX (see `symbolic.document` for whole documents).

The names are those of the generated code (`z1`, `a1`, `delta2`, `dL_dW2`), so a derivation, a
generated module and a check report can be read side by side. The array operations print as
`A @ B`, `A.T`, `outer(u, v)`, `sum_rows(A)`, `sum(A)`, `rowsum(A)`, `softmax(z)`, `onehot(y, K)`
in text and with their usual symbols in LaTeX.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from .arrays import (BATCH, ArrayFunction, AvgPool2d, AvgPool2dGrad, Conv2d, Conv2dInputGrad, Conv2dWeightGrad, Matmul, MaxPool2d,
                     MaxPool2dGrad, Outer)
from .scan import Scan, ScanGrad, next_name

STAGES = {"forward": "Forward pass", "loss": "Loss", "backward": "Backward pass",
          "gradient": "Backward pass"}


def _array_product(term) -> bool:
    """gamma2*xhat2: a product of named arrays, nothing else."""
    return term.is_Mul and all(factor.is_Symbol for factor in term.args)


class ArrayOrder:
    """Printer mixin: sums print their array products first (x @ W1 + b1), products before a
    lone array (gamma2*xhat2 + beta2), as written by hand,
    and a common numeric factor outside ((a2 - y)/5, where SymPy stores a2/5 - y/5)."""

    products = (Matmul, Outer, Conv2d)  # the operations whose terms come first

    def _print_Add(self, expr, order=None):
        content, primitive = expr.primitive()
        unit_terms = all(abs(term.as_coeff_Mul()[0]) == 1 for term in sp.Add.make_args(primitive))
        if content.is_Rational and content != 1 and primitive.is_Add and unit_terms:
            return self._print(sp.Mul(content, primitive, evaluate=False))
        return super()._print_Add(expr, order=order)

    def _as_ordered_terms(self, expr, order=None):
        return array_order(super()._as_ordered_terms(expr, order=order), self.products)


def array_order(terms, products) -> list:
    """The terms of a sum in the order the printers add them: `products` (x @ W1) first, then
    products of named arrays, the negative terms last; otherwise SymPy's order (stable)."""
    return sorted(terms, key=lambda term: (not term.has(*products), not _array_product(term),
                                           term.could_extract_minus_sign() and not term.is_Number))


def _power_of_ten(number) -> str | None:
    """p/10^k (k >= 3, |p| < 10) in LaTeX as p \\cdot 10^{-k}: eps = 10^{-5}, not 1/100000."""
    p, q = int(number.p), int(number.q)
    k = len(str(q)) - 1
    if q != 10 ** k or k < 3 or not 0 < abs(p) < 10:
        return None
    return ("-" if p < 0 else "") + ("" if abs(p) == 1 else f"{abs(p)} \\cdot ") + f"10^{{-{k}}}"


class TextPrinter(ArrayOrder, StrPrinter):
    """Array expressions in the plain-text notation of the derivation."""

    def _print_Rational(self, expr):  # eps = 1e-5, not 1/100000
        p, q = int(expr.p), int(expr.q)
        k = len(str(q)) - 1
        if q == 10 ** k and k >= 3 and 0 < abs(p) < 10:
            return f"{p}e-{k}"
        return super()._print_Rational(expr)

    def _print_ElementwiseBase(self, expr):  # an activation by its name: relu(z1), leaky_relu(z1, 0.2)
        return f"{expr.rule.name}({', '.join(self._print(arg) for arg in expr.args)})"

    def _print_Piecewise(self, expr):
        (then, cond), (otherwise, _) = expr.args
        if then == 1 and otherwise == 0:  # a step function: the condition as a 0/1 mask
            return f"({self._print(cond)})"
        return f"where({self._print(cond)}, {self._print(then)}, {self._print(otherwise)})"

    def _print_Max(self, expr):
        return f"max({', '.join(self._print(arg) for arg in sorted(expr.args, key=lambda a: a.is_Number))})"

    def _print_Min(self, expr):
        return f"min({', '.join(self._print(arg) for arg in sorted(expr.args, key=lambda a: a.is_Number))})"


_SCALARS = {BATCH}  # the batch size: a number, not an array
_GREEK = {"delta": r"\delta", "alpha": r"\alpha", "theta": r"\theta", "gamma": r"\gamma", "beta": r"\beta",
          "mu": r"\mu", "sigma": r"\sigma", "xhat": r"\hat{x}"}


def latex_name(name: str) -> str:
    """A name in LaTeX: trailing digits become a subscript, dL_dW1 a fraction."""
    loop = re.fullmatch(r"dL_d(\w+)_(next|prev)", name)
    if loop:  # the gradient a loop carries: of what comes after step t
        of, which = loop.groups()
        return (r"\frac{\partial L_{>t}}{\partial " + latex_name(of + "_t") + "}" if which == "next"
                else r"\frac{\partial L_{\geq t}}{\partial " + latex_name(of + "_prev") + "}")
    if name.startswith("dL_d"):
        return r"\frac{\partial L}{\partial " + latex_name(name[4:]) + "}"
    step = re.fullmatch(r"([A-Za-z]\w*?)(\d*)_(t|prev)", name)
    if step:  # a loop's value at step t (z1_t: z_{1,t}), or at the step before (h1_prev: h_{1,t-1})
        stem, index, when = step.groups()
        stem = _GREEK.get(stem, stem if len(stem) == 1 else r"\mathrm{" + stem.replace("_", r"\_") + "}")
        when = "t" if when == "t" else "t-1"
        return stem + "_{" + (f"{index}," if index else "") + when + "}"
    match = re.fullmatch(r"([A-Za-z]+)_?(\d*)", name)
    if match:
        stem, index = match.groups()
        stem = _GREEK.get(stem, stem if len(stem) == 1 else r"\mathrm{" + stem + "}")
        return stem + (f"_{{{index}}}" if index else "")
    return r"\mathrm{" + name.replace("_", r"\_") + "}"


class ArrayLatexPrinter(ArrayOrder, LatexPrinter):
    """Array expressions in LaTeX: products of arrays, transposes, sums over axes."""

    def terms(self, expr) -> list[str]:
        """The terms of a sum as `doprint` orders them, each with its sign: where a long line breaks."""
        if not expr.is_Add:
            return [self.doprint(expr)]
        return [self.doprint(term) for term in self._as_ordered_terms(expr)]

    def _print_Symbol(self, expr, style="plain"):
        return latex_name(expr.name)

    def _print_Rational(self, expr):
        power = _power_of_ten(expr)
        return power if power is not None else super()._print_Rational(expr)

    def _print_ElementwiseBase(self, expr, exp=None):  # an activation by its name: \sigma(z_1)
        applied = expr.rule.latex + r"\left(" + self._print(expr.args[0]) + r"\right)"
        return applied if exp is None else r"\left(" + applied + r"\right)^{" + exp + "}"

    def _print_Pow(self, expr):  # (W^T)^2, not SymPy's function power W^{T 2}: array operations take no `exp`
        if isinstance(expr.base, ArrayFunction) and expr.exp.is_positive and expr.exp != sp.S.Half:
            return r"\left(" + self._print(expr.base) + r"\right)^{" + self._print(expr.exp) + "}"
        return super()._print_Pow(expr)

    def _print_Piecewise(self, expr):
        (then, cond), (otherwise, _) = expr.args
        if then == 1 and otherwise == 0:
            return r"\mathbf{1}\left[" + self._print(cond) + r"\right]"
        return super()._print_Piecewise(expr)

    def _print_Max(self, expr):
        args = sorted(expr.args, key=lambda a: a.is_Number)
        return r"\max\left(" + ", ".join(self._print(a) for a in args) + r"\right)"

    def _print_Min(self, expr):
        args = sorted(expr.args, key=lambda a: a.is_Number)
        return r"\min\left(" + ", ".join(self._print(a) for a in args) + r"\right)"

    # -- images (N, C, H, W); `index_rows` writes each operation out in index notation -------

    def _print_Mul(self, expr):
        """Products of arrays are elementwise: their factors are joined by \\odot, after the scalar
        coefficient (numbers and powers of the batch size N) as a fraction."""
        factors = sp.Mul.make_args(expr)
        scalar = [f for f in factors if not (f.free_symbols - _SCALARS)]
        arrays = [f for f in factors if f.free_symbols - _SCALARS]
        if not expr.is_Mul or len(arrays) <= 1:
            return super()._print_Mul(expr)
        coefficient = sp.Mul(*scalar)
        body = r" \odot ".join(self.parenthesize(f, PRECEDENCE["Mul"], strict=False) for f in arrays)
        if coefficient == 1:
            return body
        if coefficient == -1:
            return "- " + body
        numerator, denominator = coefficient.as_numer_denom()
        if numerator == 1 or numerator == -1:
            sign = "- " if numerator == -1 else ""
            return sign + r"\frac{1}{" + self._print(denominator) + "} " + self._wrap(body, len(arrays))
        return self._print(coefficient) + " " + self._wrap(body, len(arrays))

    @staticmethod
    def _wrap(body, count):
        return r"\left(" + body + r"\right)" if count > 1 else body


def index_rows(expr, p, name: str | None = None) -> list[tuple[str, str]]:
    """(lhs, rhs) in LaTeX: each convolution or pooling in `expr` written out in index notation
    (on the left by `name`, the step's LaTeX name, where `expr` is the operation itself),
    entry by entry: n the sample, c and f channels, i and j output pixels, p and q offsets in a
    window, h and w input pixels; the input of a convolution is 0 outside the image (padding)."""
    rows = []
    for op in sorted(expr.atoms(*_INDEX_FORMS), key=sp.default_sort_key):
        arrays, settings = op.split()
        indices, rhs = _INDEX_FORMS[type(op)](*(p._print(a) for a in arrays), *settings)
        rows.append((_entry(name if name is not None and op == expr else p._print(op), indices), rhs))
    return rows


def _window_entry(a: str, stride, padding=(0, 0)) -> str:
    """Entry (p, q) of window (i, j) of `a`: a[n, c, s i + p - P, s j + q - P]."""
    return _entry(a, f"n,c,{_offset('i', 'p', stride[0], padding[0])},{_offset('j', 'q', stride[1], padding[1])}")


def _conv_form(x, W, kernel, stride, padding):
    return "nfij", r"\sum_{c,p,q} " + _entry(W, "fcpq") + r"\, " + _window_entry(x, stride, padding)


def _conv_weight_form(x, g, stride, padding, kernel):  # the correlation of the input with delta
    return "fcpq", r"\sum_{n,i,j} " + _entry(g, "nfij") + r"\, " + _window_entry(x, stride, padding)


def _conv_input_form(g, W, stride, padding, size):  # delta convolved with the flipped kernel
    rows, cols = _source("h", "p", stride[0], padding[0]), _source("w", "q", stride[1], padding[1])
    return "nchw", r"\sum_{f,p,q} " + _entry(g, f"n,f,{rows},{cols}") + r"\, " + _entry(W, "fcpq")


def _max_form(a, size, stride):
    return "ncij", rf"\max_{{p<{size[0]},\, q<{size[1]}}} " + _window_entry(a, stride)


def _max_gradient_form(a, largest, g, size, stride):  # routing by a mask: the first maximum of each window
    corner = f"({_offset('i', '', stride[0], 0)}, {_offset('j', '', stride[1], 0)})".replace("+", "")
    return "nchw", (r"\sum_{i,j} " + _entry(g, "ncij") + r"\, \mathbf{1}\left[(h, w) = " + corner
                    + r" + \operatorname{argmax}_{p,q} " + _window_entry(a, stride) + r"\right]")


def _mean_form(a, size, stride):
    return "ncij", rf"\frac{{1}}{{{size[0] * size[1]}}} \sum_{{p,q}} " + _window_entry(a, stride)


def _mean_gradient_form(g, size, stride, image):
    where = rf"h = {_offset('i', 'p', stride[0], 0)},\ w = {_offset('j', 'q', stride[1], 0)}"
    return "nchw", rf"\frac{{1}}{{{size[0] * size[1]}}} \sum_{{i,j:\ {where}}} " + _entry(g, "ncij")


_INDEX_FORMS = {Conv2d: _conv_form, Conv2dWeightGrad: _conv_weight_form, Conv2dInputGrad: _conv_input_form,
                MaxPool2d: _max_form, MaxPool2dGrad: _max_gradient_form, AvgPool2d: _mean_form,
                AvgPool2dGrad: _mean_gradient_form}


def _entry(latex: str, indices: str) -> str:
    """An entry of an array in LaTeX: x_{nfij}, or (W_{1})_{fcpq} where the name has a subscript."""
    base = latex if re.fullmatch(r"[A-Za-z]", latex) else r"\left(" + latex + r"\right)"
    return base + "_{" + indices + "}"


def _offset(out: str, kernel: str, stride: int, padding: int) -> str:
    """The input row that output row `out` sees at kernel offset `kernel`: s i + p - P."""
    text = (f"{stride}{out}" if stride != 1 else out) + "+" + kernel
    return text + (f"-{padding}" if padding else "")


def _source(pixel: str, kernel: str, stride: int, padding: int) -> str:
    """The output row whose window holds input row `pixel` at offset `kernel`: (h + P - p) / s."""
    text = pixel + (f"+{padding}" if padding else "") + "-" + kernel
    return text if stride == 1 else f"({text})/{stride}"


def text(derivation) -> str:
    printer = TextPrinter()
    net = derivation.network
    size = f"batch {derivation.batch}" if net.layout == "row" else "one sample"
    lines = [f"Network {net.name}: {net.layout} layout, {size}", ""]
    for name, shape in net.shapes(derivation.batch).items():
        lines.append(f"  {name:>8} : {_shape_text(shape)}")
    stage, shown = None, set()
    for step in derivation.steps:
        if STAGES[step.stage] != stage:
            stage = STAGES[step.stage]
            lines += ["", stage]
        if isinstance(step.expr, Scan):
            lines += _loop_forward_text(step.expr.loop, printer)
        for loop, parts in loop_gradients(derivation, step, shown):
            lines += _loop_backward_text(loop, parts, printer)
        if isinstance(step.expr, ScanGrad):
            continue  # written by the reverse loop above
        if isinstance(step.expr, Scan):
            loop = step.expr.loop
            said = f"{loop.output} at t = {loop.length}" if loop.last else f"{loop.output} of every step t"
            lines.append(f"  {step.name} = {said}")
        else:
            lines.append(f"  {step.name} = {printer.doprint(step.expr)}")
        lines.append(f"      {_shape_text(step.shape)}   [{step.rule}]")
    return "\n".join(lines) + "\n"


def loop_gradients(derivation, step, shown: set) -> list:
    """(loop, the outer arguments whose gradients the derivation takes through it) for every scan
    whose reverse loop `step` is the first to use; `shown` the loops already written."""
    out = []
    for e in sorted(step.expr.atoms(ScanGrad), key=sp.default_sort_key):
        if e.loop not in shown:
            shown.add(e.loop)
            parts = [g.part for s in derivation.steps for g in s.expr.atoms(ScanGrad) if g.loop is e.loop]
            out.append((e.loop, list(dict.fromkeys(parts))))
    return out


def _loop_forward_text(loop, printer) -> list[str]:
    starts = ", ".join(f"{prev} = {init or 0} at t = 1" for prev, _, init in loop.carried)
    lines = [f"  for t = 1, ..., {loop.length}:   [{starts}; then the step before's]"]
    for step in loop.body.steps:
        lines.append(f"    {step.name} = {printer.doprint(step.expr)}")
        lines.append(f"        {_shape_text(step.shape)}   [{step.rule}]")
    return lines


def _loop_backward_text(loop, parts, printer) -> list[str]:
    steps, grads = loop.backward
    starts = ", ".join(f"{next_name(new)} = " + (f"dL_d{loop.name}" if loop.last and new == loop.output else "0")
                       for _, new, _ in loop.carried)
    lines = [f"  for t = {loop.length}, ..., 1:   [backpropagation through time: {starts} at t = {loop.length}]"]
    summed = {grads[name] for name in loop.parameters}
    for step in loop.reverse(parts):
        how = "+=" if step.symbol in summed else "="
        lines.append(f"    {step.name} {how} {printer.doprint(step.expr)}")
        lines.append(f"        {_shape_text(step.shape)}   [{step.rule}]")
    for prev, new, init in loop.carried:
        lines.append(f"    {next_name(new)} = {grads[prev].name}   [carried to step t - 1]")
    for inner, outer in loop.sequences:
        if outer in parts:
            lines.append(f"  dL_d{outer}[:, t] = {grads[inner].name}, for every t")
    for prev, new, init in loop.carried:
        if init in parts:
            lines.append(f"  dL_d{init} = {next_name(new)} after t = 1")
    return lines


def _shape_text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


# How wide a formula sets, estimated from its LaTeX, in em of the document's font: a letter 0.55
# (a capital 0.85), a bracket or comma 0.4, a binary operator or relation with its spaces 1.4,
# scripts 0.7 of their size, a fraction its wider part; commands that only select a font count
# nothing. Calibrated on the documents' formulas against pdflatex (the tests check the pages).
_TOKENS = re.compile(r"\\[A-Za-z]+|\\.|[{}^_&]|\s+|.")
_SPACES = {r"\,": 0.17, r"\:": 0.22, r"\;": 0.28, r"\quad": 1.0, r"\qquad": 2.0, r"\ ": 0.33}
_NOTHING = {r"\mathrm", r"\operatorname", r"\mathbf", r"\mathbb", r"\text", r"\hat", r"\displaystyle", "&"}
_SIZED = {r"\left": 0.55, r"\right": 0.55, r"\boxed": 0.7}  # a grown delimiter; the box's frame
_OPERATORS = {"+", "-", "=", "<", ">", r"\odot", r"\times", r"\in", r"\cdot", r"\leq", r"\geq"}
_NAMED = {r"\log", r"\max", r"\min", r"\exp", r"\tanh", r"\dots", r"\ldots"}  # as wide as their letters


def latex_width(latex: str) -> float:
    """The width of `latex` set in display style, in em (an estimate that errs on the wide side)."""
    tokens = [t for t in _TOKENS.findall(latex) if not t.isspace()]
    width, _ = _width_of(tokens, 0, len(tokens))
    return width


def _width_of(tokens, start, stop) -> tuple[float, int]:
    """The width of tokens[start:stop] (up to a closing brace at depth 0) and where it ended."""
    width, i, stacked = 0.0, start, 0.0
    while i < stop:
        token = tokens[i]
        if token == "}":
            return width, i + 1
        if token in "^_":  # a subscript and a superscript stack: the wider counts
            script, i = _argument(tokens, i + 1, stop)
            width += max(0.0, 0.7 * script - stacked)
            stacked = 0.7 * script if not stacked else 0.0
            continue
        stacked = 0.0
        if token == r"\frac":
            top, i = _argument(tokens, i + 1, stop)
            bottom, i = _argument(tokens, i, stop)
            width += max(top, bottom) + 0.2
            continue
        if token == "{":
            inner, i = _width_of(tokens, i + 1, stop)
            width += inner
            continue
        width += _glyph_width(token)
        i += 1
    return width, i


def _argument(tokens, i, stop) -> tuple[float, int]:
    if i < stop and tokens[i] == "{":
        return _width_of(tokens, i + 1, stop)
    return (_glyph_width(tokens[i]) if i < stop else 0.0), i + 1


def _glyph_width(token: str) -> float:
    if token in _NOTHING:
        return 0.0
    if token in _SPACES:
        return _SPACES[token]
    if token in _SIZED:
        return _SIZED[token]
    if token in _OPERATORS:
        return 1.4
    if token == r"\sum":
        return 1.6
    if token in _NAMED:
        return 0.5 * (len(token) - 1)
    if token in "()[],.;|" or token in (r"\{", r"\}"):
        return 0.4
    return 0.85 if token.isupper() else 0.55


def program_text(derivation) -> str:
    """A traced program's derivation in the plain-text notation: its arrays, then every step (a
    loop as one time step's equations, and its reverse loop)."""
    printer = TextPrinter()
    program = derivation.program
    lines = [f"Program {program.name}, traced from {program.source}", ""]
    for array in program.arrays:
        lines.append(f"  {array.name:>8} : {_shape_text(array.shape)} {array.dtype}, {array.role}")
    stage, loops = None, set()
    for step in derivation.steps:
        title = STAGES[step.stage]
        if title != stage:
            stage = title
            lines += ["", stage]
        for loop, parts in loop_gradients(derivation, step, loops):
            lines += _loop_backward_text(loop, parts, printer)
        if isinstance(step.expr, ScanGrad):
            continue  # written by the reverse loop above
        if isinstance(step.expr, Scan):
            loop = step.expr.loop
            lines += _loop_forward_text(loop, printer)
            said = f"{loop.output} at t = {loop.length}" if loop.last else f"{loop.output} of every step t"
            lines.append(f"  {step.name} = {said}")
        else:
            lines.append(f"  {step.name} = {printer.doprint(step.expr)}")
        where = getattr(step, "where", ("", 0))
        shown = f"   [line {where[1]}]" if where[1] else ""
        lines.append(f"      {_shape_text(step.shape)}{shown}")
    return "\n".join(lines) + "\n"


def _program_rows(derivation, printer) -> list:
    """(stage title, rows of an align environment) of each step: a step's one, a loop's several."""
    from .document import _loop_backward_rows, _loop_forward_rows
    out, loops = [], set()
    for step in derivation.steps:
        rows = [row.aligned(tags=False) for loop, parts in loop_gradients(derivation, step, loops)
                for row in _loop_backward_rows(loop, parts, printer)]
        if isinstance(step.expr, Scan):
            rows += [row.aligned(tags=False) for row in _loop_forward_rows(step, printer)]
        elif not isinstance(step.expr, ScanGrad):
            rows.append(latex_name(step.name) + " &= " + printer.doprint(step.expr))
        out.append((STAGES[step.stage], rows))
    return out


def program_latex(derivation) -> str:
    """A traced program's derivation as a LaTeX document: one aligned equation a step."""
    rows = []
    stage = None
    for title, lines in _program_rows(derivation, ArrayLatexPrinter()):
        if title != stage:
            stage = title
            rows.append(r"\intertext{\textbf{" + title + "}}")
        rows += [line + r" \\" for line in lines]
    name = derivation.program.name.replace("_", r"\_")
    return ("\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n\\begin{document}\n"
            f"\\section*{{The derivation of {name}}}\n\\begin{{align*}}\n" + "\n".join(rows)
            + "\n\\end{align*}\n\\end{document}\n")


def program_markdown(derivation) -> str:
    """A traced program's derivation as Markdown with one `$$...$$` block a step (aligned rows)."""
    out = [f"# The derivation of {derivation.program.name}", ""]
    for _, lines in _program_rows(derivation, ArrayLatexPrinter()):
        for line in lines:
            out.append(r"$$ \begin{aligned} " + line + r" \end{aligned} $$")
    return "\n".join(out) + "\n"
