"""The backward pass of a program: the reverse sweep's gradients as named, ordered steps.

One function for both front ends (a spec's layers and a traced function): `gradient_steps`
runs the sweep (`symbolic.sweep`) over a `Program`'s steps and applies the policies that turn
its output into the steps one writes by hand:

    naming       delta<l> = dL/dz<l> for a pre-activation of layer l (a layer's second one
                 delta<l>_2: unique by construction), dL_d<name> for anything else
    output terms every forward expression in a gradient written as its name (sigma(z1) as a1)
    inlining     a gradient used by one other only, and neither a delta nor asked for, is
                 written into that one (dL/da1 appears inside delta1); so is a gradient made of
                 data and numbers only (-onehot(y, K)/N), used once
    named sums   a sum computed already is written by its name (sum_rows(delta2) = dL_dbeta2)

and the shorter of each gradient and its cancelled form is kept (`_simplify`). What a step is
(a pre-activation, an activation, the loss) comes from its fields, never from its name.
"""

from __future__ import annotations

import sympy as sp

from .arrays import ArrayFunction, PadColumns, PerChannel, SumAxes, SumRows, Total, ZerosLike, shape_of
from .renamed import by_shape
from .sweep import Composite, sweep


def grad_name(name: str) -> str:
    return f"dL_d{name}"


def gradient_steps(program, composites=()) -> tuple[list, sp.Symbol]:
    """The forward steps of `program` (with the loss L = sum(out * dout) added for an array
    output) and its backward steps; and the loss's symbol. `composites`: compact rules
    (a normalization's) the sweep applies instead of the staged chain rule."""
    from .program import Step
    forward = list(program.steps)
    shapes = program.shapes()
    loss = program.output
    if not program.scalar:  # L = sum(out * dout): the gradients are vector-Jacobian products with dout
        taken = {s.name for s in forward} | set(program.inputs)
        loss = next(sp.Symbol(name) for name in ("L", "L_dout", "L_dout_sum") if name not in taken)
        forward.append(Step(loss, Total(program.output * sp.Symbol("dout")), (), "float64", stage="loss"))
        shapes[loss] = ()
    forward = [s if s.symbol != loss or s.stage == "loss" else _replace(s, stage="loss") for s in forward]
    data = frozenset(s.symbol for s in forward if s.data)
    wanted = tuple(sp.Symbol(name) for name in program.wrt)
    deltas = {s.symbol: s.layer for s in forward if s.role == "pre-activation"}
    names = _delta_names(deltas)

    def name(symbol):
        return names.get(symbol) or sp.Symbol(grad_name(symbol.name))

    grads = sweep([(s.symbol, s.expr) for s in forward], loss, wanted, shapes, name, composites, data=data)
    outputs = {s.expr: s.symbol for s in forward if not s.expr.is_Atom and not s.data}  # sigma(z1) -> a1
    roots = {s.expr: s.symbol for s in forward if s.expr.is_Pow and not s.expr.exp.is_Integer}
    for grad in grads:
        grad.terms = [_in_output_terms(term, outputs, roots) for term in grad.terms]
    keep = {name(s) for s in deltas} | {name(s) for s in wanted}
    grads = _inline(grads, keep=keep)
    grads = _inline_constants(grads, keep, data | {a.symbol for a in program.arrays if a.role == "data"})

    parts = {a.name: a.part for a in program.arrays}
    steps, named, definitions = [], {}, {}
    shapes.update({grad.symbol: shapes[grad.of] for grad in grads})
    by_symbol = {s.symbol: s for s in forward}
    wanted = frozenset(wanted)  # looked up once a gradient: a set, not the tuple (linear in depth)
    for grad in grads:
        expr = _joined(_sums_factored(grad.expr, shapes), len(shapes[grad.of]))
        expr = _simplify(expr) if len(grad.terms) == 1 else expr
        expr = expr.xreplace(named)  # a sum computed already, by its name: sum_rows(delta2) = dL_dbeta2
        if grad.of in wanted and _proved_zero(expr, composites, definitions, named, shapes):
            expr = ZerosLike(grad.of)  # the bias before a batch normalization: 0, not its rounding
        if grad.of in wanted and isinstance(expr, SumRows):
            named[expr] = grad.symbol
        if grad.of in wanted and isinstance(expr, SumAxes) and not expr.args[2] and expr.args[1] == _CHANNEL_SUM:
            named[SumAxes(expr.args[0], _CHANNEL_SUM, sp.S.One)] = PerChannel(grad.symbol)  # kept axes: broadcasts
        words = _through(grad, by_symbol)
        if grad.of in wanted:
            stage, role = "gradient", parts.get(grad.of.name, "")
            words = f"{role} gradient: " + words if role else "gradient: " + words
        else:
            stage, role = "backward", "delta" if grad.of in deltas else ""
            words = "chain rule: " + words
        definitions[grad.symbol] = expr
        steps.append(Step(grad.symbol, expr, shape_of(grad.of, shapes), stage=stage, rule=words,
                          layer=deltas.get(grad.of, 0), role=role, of=grad.of, unsimplified=grad.expr,
                          sources=tuple(grad.sources), composites=tuple(grad.composites)))
    return forward + steps, loss


def _proved_zero(expr, composites, definitions: dict, named: dict, shapes: dict) -> bool:
    """Whether `expr`, a sum of a gradient computed before, is 0 in every entry: the sum over the
    batch of the gradient a batch normalization pulls back (its composite's `zero_sum`: the
    normalized output sums to 0 over the batch, so the gradient of its input does too). Proved
    term by term: the sum is linear, a factor that does not vary along the summed axes comes out,
    a term that does not vary along them is counted once per entry summed, the normalized output
    sums to 0; SymPy then cancels what is left."""
    for composite in composites:
        zero = composite.zero_sum
        if zero is None or type(expr) is not type(zero) or expr.args[1:2] != zero.args[1:2]:
            continue  # another sum (the axes; kept as ones or not, a sum of zeros is 0)
        inner = definitions.get(expr.args[0])
        if inner is None:
            continue
        back = {name: total for total, name in named.items()}  # dL_dbeta2 (or dL_dbeta2[c]) as the sum it is
        inner = inner.xreplace(back)
        reduce, settings = type(zero), zero.args[1:]
        axes = (0,) if reduce is SumRows else tuple(int(k) for k in settings[0])
        full = shape_of(inner, shapes)
        count = sp.Mul(*(full[k] for k in axes))

        def constant(factor):  # of length one (or absent) along every summed axis
            shape = shape_of(factor, shapes)
            return all(k < len(full) - len(shape) or shape[k - len(full) + len(shape)] == 1 for k in axes)

        def reduced(e):
            if e.is_Add:
                return sp.Add(*(reduced(term) for term in e.args))
            factors = sp.Mul.make_args(e)
            outside = [f for f in factors if constant(f)]
            rest = [f for f in factors if not constant(f)]
            if not rest:
                return count * e
            if len(rest) == 1 and rest[0] == composite.output:
                return sp.S.Zero
            if len(rest) == 1 and rest[0].is_Add:
                return sp.Mul(*outside) * reduced(rest[0])
            return sp.Mul(*outside) * reduce(sp.Mul(*rest), *settings)
        if sp.expand(reduced(inner)) == 0:
            return True
    return False


def _replace(step, **changes):
    from dataclasses import replace
    return replace(step, **changes)


def _delta_names(deltas: dict) -> dict:
    """delta<l> for the pre-activation of layer l; a layer's second one delta<l>_2 (never merged)."""
    names = {}
    for symbol, layer in deltas.items():
        base = f"delta{layer}"
        count = sum(1 for taken in names.values() if taken.name == base or taken.name.startswith(base + "_"))
        names[symbol] = sp.Symbol(base if not count else f"{base}_{count + 1}")
    return names


def _inline_constants(grads: list, keep: set, data: set) -> list:
    """A gradient made of data and numbers only (-onehot(y, K)/N), used by one other gradient,
    written into it: softmax's rule then meets the one-hot rows and gives (softmax - onehot)/N."""
    for grad in list(grads):
        if grad.symbol in keep or not grad.expr.free_symbols <= data:
            continue
        users = [other for other in grads if any(term.has(grad.symbol) for term in other.terms)]
        if len(users) == 1:
            users[0].terms = [term.xreplace({grad.symbol: grad.expr}) for term in users[0].terms]
            grads = [g for g in grads if g is not grad]
    return grads


def _in_output_terms(expr, outputs: dict, roots: dict):
    """`expr` with every forward expression written by its name; a power of a root too:
    (var + eps)**(-3/2) is sigma**(-3) where sigma = sqrt(var + eps)."""
    expr = expr.xreplace(outputs)
    for root, symbol in roots.items():
        expr = expr.replace(lambda e: e.is_Pow and e.base == root.base and (e.exp / root.exp).is_Integer,
                            lambda e: symbol ** (e.exp / root.exp))
    return expr


def _through(grad, forward: dict) -> str:
    """Where a gradient's pulls came from, in words."""
    from .notation import TextPrinter

    def one(source):
        if isinstance(source, Composite):
            return f"the {source.name} rule through {source.output} (the sums of a - mean vanish)"
        if isinstance(source, tuple):
            return " and ".join(one(s) for s in source) + ", broadcast"
        if source is None:  # a wanted step the loss does not use
            return "nothing: the loss does not depend on it"
        step = forward[source]
        if step.stage == "loss":
            return step.notes.get("words", "the loss L")  # a loop's step: what reaches it from the outside
        if step.activation and step.activation not in ("identity", "softmax") and step.expr.has(grad.of):
            return f"dL/d{source} * {step.activation}'({grad.of})"
        if step.activation == "identity" and step.expr == grad.of:
            return f"dL/d{source} (identity)"
        return f"{source} = {TextPrinter().doprint(step.expr)}"

    names = list(dict.fromkeys(one(source) for source in grad.sources if source != ()))
    if not names:  # nothing reaches it: a loss that is 0 (scale = 0)
        return "zero: the loss does not depend on it"
    if len(names) > 1:
        words = "the sum over its uses: " + ", ".join(names)
    else:
        words = names[0] if names[0].startswith("dL/d") else "through " + names[0]
    inlined = [c for c in grad.composites if c not in grad.sources]
    return words + "".join(f", with the {c.name} rule through {c.output}" for c in inlined)


def _inline(grads: list, keep: set) -> list:
    """Each gradient not in `keep` that is used once, or used by one other only and is a mere
    product of arrays (gamma2*delta2), written into that one.

    The first such gradient in order is written in, and the search starts over, until none is
    left. The uses of each gradient (in every term, and by how many gradients) are counted once
    and kept up to date as terms change, so a search is one pass of cheap tests: linear in the
    number of gradients, not quadratic, however deep the network."""
    grads = list(grads)
    symbols = {g.symbol for g in grads}
    uses, users = {}, {}  # a gradient's symbol: occurrences in all terms; the gradients that use it

    def count(grad, sign):
        seen = set()
        for term in grad.terms:
            for node in sp.preorder_traversal(term):
                if node in symbols:
                    uses[node] = uses.get(node, 0) + sign
                    seen.add(node)
        for symbol in seen:
            (users.setdefault(symbol, set()).add if sign > 0 else users[symbol].discard)(id(grad))

    for grad in grads:
        count(grad, 1)
    named = {id(g): _named(g.expr) for g in grads}

    def inlined(grad) -> bool:
        if grad.symbol in keep or named[id(grad)]:
            return False
        if (grad.composites or len(grad.terms) > 1) and any(named[id(other)] and other.expr.has(grad.symbol)
                                                            for other in grads if named[id(other)]):
            return False  # a normalization's rule (or its staged sum) stays a step, not an image operation's argument
        return (uses.get(grad.symbol, 0) == 1 or len(users.get(grad.symbol, ())) == 1 and len(grad.terms) == 1
                and _array_product(grad.expr))

    while True:
        grad = next((g for g in grads if inlined(g)), None)
        if grad is None:
            return grads
        count(grad, -1)
        holding = users.get(grad.symbol, set())
        for other in [g for g in grads if id(g) in holding]:
            if other is not grad:
                count(other, -1)
                other.terms = [term.xreplace({grad.symbol: grad.expr}) for term in other.terms]
                other.composites = other.composites + grad.composites
                count(other, 1)
                named[id(other)] = _named(other.expr)
        grads = [g for g in grads if g is not grad]


def _named(expr) -> bool:
    """Whether `expr` applies an operation whose result keeps its name (an image's gradient)."""
    return any(op.named for op in expr.atoms(ArrayFunction))


def _array_product(expr) -> bool:
    """A product of named arrays and numbers: gamma2*delta2 (gamma2 per channel of an image too)."""
    return expr.is_Mul and all(factor.is_Symbol or factor.is_Number or isinstance(factor, PerChannel)
                               and factor.args[0].is_Symbol for factor in expr.args)


_CHANNEL_SUM = sp.Tuple(0, 2, 3)  # the axes of a per-channel sum over an image batch


def _sums_factored(expr, shapes: dict):
    """Every sum over the batch (or over axes of an image batch) with the factors that do not
    vary along it taken out: sum_rows(gamma2*delta2) = gamma2*sum_rows(delta2) (gamma2 is the
    same in every row)."""
    def factored(op):
        arg = op.args[0]
        if not arg.is_Mul:
            return op
        rows = len(shape_of(arg, shapes))
        axes = (0,) if isinstance(op, SumRows) else tuple(int(k) for k in op.args[1])

        def constant(f):  # of length one (or absent) along every summed axis
            shape = shape_of(f, shapes)
            return all(k < rows - len(shape) or shape[k - rows + len(shape)] == 1 for k in axes)
        outside = [f for f in arg.args if constant(f)]
        if not outside or rows < 2 or len(outside) == len(arg.args):
            return op
        return sp.Mul(*outside) * op.func(sp.Mul(*(f for f in arg.args if f not in outside)), *op.args[1:])
    return expr.replace(lambda e: isinstance(e, (SumRows, SumAxes)), factored)


def _joined(expr: sp.Expr, ndim: int) -> sp.Expr:
    """A sum of zero-padded blocks of columns that tile the width, as their concatenation: the
    gradient of an LSTM's gate pre-activations is [di, df, do, dg] side by side, not four padded
    arrays added."""
    if not expr.is_Add or not all(isinstance(term, PadColumns) for term in expr.args):
        return expr
    blocks = sorted(((int(term.args[1]), int(term.args[2]), int(term.args[3]), term.args[0]) for term in expr.args),
                    key=lambda block: block[:3])  # by position (two pads of one block: not tiled)
    width = blocks[0][2]
    tiled = all(b[2] == width for b in blocks) and blocks[0][0] == 0 and blocks[-1][1] == width and all(
        a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    if not tiled:
        return expr
    from .ops import Concatenate
    return Concatenate(*(block[3] for block in blocks), sp.Integer(ndim - 1))


@by_shape  # one layer's form simplified once, however deep the network
def _simplify(expr: sp.Expr) -> sp.Expr:
    """The shorter of `expr` and its cancelled form, common numeric factors pulled out."""
    candidates = [sp.factor_terms(expr)]
    if not expr.has(sp.Piecewise):
        candidates.append(sp.factor_terms(sp.cancel(expr)))
    return min(candidates, key=sp.count_ops)  # the first on a tie
