"""The element-level derivation: the exact oracle for small networks.

The loss is written out over one scalar symbol per array entry (W1_01 is W1[0, 1]: indices from
0, as NumPy and `symprop check` count) for concrete sizes, and `sympy.diff` differentiates it with
respect to each of them. The forward steps are the layers' own (`symbolic.layers`), evaluated
entry by entry (`symbolic.arrays.evaluate`), every activation written out (`rules.explicit`):
no gradient rule of the operations and no derivative of the rule table is used, so the two
derivations are independent, and the tests prove that they agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import sympy as sp

from . import rules
from .arrays import Softmax, evaluate
from .spec import Network

MAX_ENTRIES = 400  # more differentiated entries than this: too large to write out
FACTOR_OPS = 300  # `readable` factors entries of at most this many operations (the presets': 150)


@dataclass(frozen=True)
class Elements:
    network: Network
    batch: int  # the concrete batch size (1 in the column layout)
    symbols: dict  # array name -> object array of its entries' symbols (labels: integers)
    output: np.ndarray  # yhat, entry by entry
    loss: sp.Expr
    steps: dict = None  # every forward step's name -> its entries, in order
    inverses: dict = None  # an activation step's name -> (its activation, the pre-activation's name)

    @property
    def layers(self) -> tuple:
        """(z, a) entries of each layer that has a pre-activation z<l> and an output a<l>."""
        pairs = []
        for l in range(1, len(self.network.layers) + 1):
            if f"z{l}" in self.steps and f"a{l}" in self.steps:
                pairs.append((self.steps[f"z{l}"], self.steps[f"a{l}"]))
        return tuple(pairs)

    def compact(self, expr: sp.Expr) -> sp.Expr:
        """`expr` with every pre-activation and activation written as its own symbol (z1_01,
        a1_01), innermost layer first: the closed form of an entry as one writes it by hand."""
        for names, sums in zip(self._stages, self._sums):
            expr = expr.xreplace(names).replace(lambda e: e.is_Add, lambda e: _named_sum(e, sums))
        return expr

    def gradient(self, name: str, indices=None) -> np.ndarray:
        """dL/d(entry) for every entry of the named array (or those at `indices`), by `sympy.diff`."""
        entries = self.symbols[name]
        grads = np.empty(entries.shape, dtype=object)
        for index in np.ndindex(entries.shape) if indices is None else indices:
            grads[index] = sp.diff(self.loss, entries[index])
        return grads

    @cached_property
    def _stages(self) -> list[dict]:
        """Per forward step: {entry's value, written in the names before it: its symbol}."""
        stages = []
        for name, values in self.steps.items():
            if values.shape:
                names = {}
                for index in np.ndindex(values.shape):
                    value = sp.sympify(values[index])
                    if not value.free_symbols:
                        continue  # a constant (a hinge's own margin, a batch of one's xhat) stays a number
                    for stage in stages:
                        value = value.xreplace(stage)
                    symbol = entry_symbol(name, index)
                    names[value] = symbol
                    names[-value] = -symbol  # SymPy distributes the sign: exp(-z)
                stages.append(names)
        return stages

    @cached_property
    def _sums(self) -> list[dict]:
        """Per stage, its sums with their numeric factor taken out: {W x + b: z}, {100 max + min: 100 a}."""
        out = []
        for names in self._stages:
            out.append({})
            for value, symbol in names.items():
                if value.is_Add:
                    content, primitive = value.primitive()
                    out[-1][primitive] = symbol / content
        return out

    def readable(self, expr: sp.Expr) -> sp.Expr:
        """`expr` as one writes an entry's gradient by hand: in the named entries (`compact`),
        every pre-activation that its activation determines written through that activation
        (a sigmoid's e^{-z} is (1 - a)/a; a softmax's z is log a up to the shift softmax
        ignores, and its outputs sum to 1), simplified; the shortest of a few SymPy forms
        (entries longer than FACTOR_OPS are not factored: that can take SymPy minutes)."""
        named = self.compact(expr)
        through = named.xreplace(self._inverses).xreplace(self._unit_sums)
        if sp.count_ops(through) > FACTOR_OPS:
            return _positive_factors(sp.factor_terms(through, sign=False))
        if through.has(sp.Heaviside):  # relu layers: one group per mask
            masks = sorted(through.atoms(sp.Heaviside), key=sp.default_sort_key)
            simplified = sp.collect(sp.expand(through), masks, func=sp.factor)
        else:  # term by term: factoring the whole sum takes minutes on some networks
            simplified = sp.Add(*(sp.factor(term) for term in sp.Add.make_args(through)))
        forms = [named, through, sp.factor_terms(simplified).xreplace(self._unit_sums)]
        return _positive_factors(sp.factor_terms(min(forms, key=sp.count_ops), sign=False))

    @cached_property
    def _inverses(self) -> dict:
        """{z entry: its value in terms of the a entry} where the activation is invertible."""
        out = {}
        for name, (activation, pre) in self.inverses.items():
            inverse = _inverse(activation)
            for index in np.ndindex(self.steps[pre].shape) if inverse is not None else ():
                out[entry_symbol(pre, index)] = inverse.subs(rules.a, entry_symbol(name, index))
        return out

    @cached_property
    def _unit_sums(self) -> dict:
        """{each softmax row's outputs, summed: 1}."""
        out = {}
        for name, (activation, pre) in self.inverses.items():
            z = self.steps[pre]
            if activation == "softmax":
                for row in np.ndindex(z.shape[:-1]):
                    out[sp.Add(*(entry_symbol(name, row + (k,)) for k in range(z.shape[-1])))] = sp.S.One
        return out


def entry_symbol(name: str, index: tuple) -> sp.Symbol:
    """The scalar symbol of one entry, indices from 0: W1_01, or W1_0_10 past 9."""
    if not index:
        return sp.Symbol(name)
    parts = [str(i) for i in index]
    joiner = "" if all(len(p) == 1 for p in parts) else "_"
    return sp.Symbol(f"{name}_{joiner.join(parts)}", real=True)


def expand(network: Network, batch: int = 2, labels=None, tokens=None) -> Elements:
    """The loss of `network` over scalar symbols; `labels` gives integer labels when needed, and
    `tokens` the input when it holds tokens (both data: never symbols)."""
    n = network.batch or (batch if network.layout == "row" else 1)
    shapes = network.shapes(n)
    count = sum(int(np.prod(shapes[name])) for name in network.differentiated)
    if count > MAX_ENTRIES:
        raise ValueError(f"{network.name} has {count} gradient entries; the element-level "
                         f"derivation writes out at most {MAX_ENTRIES}")
    symbols = {}
    for name, shape in shapes.items():
        if name == network.target and network.loss.labels:
            if labels is None:
                raise ValueError("integer labels are needed for the element-level loss")
            symbols[name] = np.asarray(labels, dtype=int).reshape(shape)
            continue
        if name == network.input and network.tokens:
            if tokens is None:
                raise ValueError("integer tokens are needed for the element-level loss")
            symbols[name] = np.asarray(tokens, dtype=int).reshape(shape)
            continue
        array = np.empty(shape, dtype=object)
        for index in np.ndindex(shape):
            array[index] = entry_symbol(name, index)
        symbols[name] = array

    from .spec_program import program_of

    program = program_of(network, sp.Integer(n))
    env = {sp.Symbol(name): entries if entries.shape else entries[()] for name, entries in symbols.items()}
    steps, inverses = {}, {}
    for step in program.steps:
        value = evaluate(step.expr, env)
        value = np.vectorize(rules.explicit, otypes=[object])(value) if np.ndim(value) else rules.explicit(value)
        env[step.symbol] = value
        steps[step.name] = np.asarray(value, dtype=object)
        if isinstance(step.expr, (rules.ElementwiseBase, Softmax)) and step.expr.args[0].is_Symbol:
            inverses[step.name] = (step.activation, step.expr.args[0].name)  # a = f(z), nothing added
    loss = steps.pop("L")[()]
    return Elements(network, n, symbols, steps[program.prediction.name], loss, steps, inverses)


def _named_sum(expr: sp.Add, sums: dict) -> sp.Expr:
    """A sum written in the named entries: a multiple of one (2 z: SymPy writes exp(z)**2 as
    exp(2 W x + 2 b)), or one among other terms (a3 - y)."""
    content, primitive = expr.primitive()
    if primitive in sums:
        return content * sums[primitive]
    terms = set(sp.Add.make_args(primitive))
    for value, symbol in sums.items():
        if set(value.args) < terms:
            return content * (symbol + sp.Add(*(terms - set(value.args))))
    return expr


@lru_cache(maxsize=None)
def _inverse(activation: str) -> sp.Expr | None:
    """z in terms of a = f(z), by `sympy.solve`; log a for softmax (up to a shift it ignores);
    None where f cannot be inverted (relu) or SymPy finds no real inverse."""
    rule = rules.ACTIVATIONS[activation]
    if rule.f is None:
        return sp.log(rules.a)
    if rule.f.has(sp.Max, sp.Min):
        return None
    for root in sp.solve(sp.Eq(rules.a, rule.f), rules.z):
        if sp.simplify(rule.f.subs(rules.z, root) - rules.a) == 0:
            return root
    return None


def _positive_factors(expr: sp.Expr) -> sp.Expr:
    """(1 - a) for -(a - 1) in every product, as one writes sigma' = a (1 - a); and a sum of
    negative terms turned round where that makes the product's sign positive."""
    if expr.is_Atom:
        return expr
    expr = expr.func(*map(_positive_factors, expr.args))
    if not expr.is_Mul:
        return expr
    factors = list(expr.args)
    sign = 1
    for i, factor in enumerate(factors):
        if factor.is_Add and any(term.is_Number and term < 0 for term in factor.args):
            factors[i], sign = -factor, -sign
    if sign * sp.Mul(*factors).as_coeff_Mul()[0] < 0:
        for i, factor in enumerate(factors):
            if factor.is_Add and all(term.could_extract_minus_sign() for term in factor.args):
                factors[i], sign = -factor, -sign
                break
    return sign * sp.Mul(*factors)
