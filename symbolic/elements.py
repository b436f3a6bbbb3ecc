"""The element-level derivation: the exact oracle for small networks.

The loss is written out over one scalar symbol per array entry (W1_12 is W1[0, 1]) for concrete
sizes, and `sympy.diff` differentiates it with respect to each of them. Nothing here uses the
matrix-level rules of `symbolic.derive`: the two derivations are independent, and the tests prove
that they agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from . import rules
from .spec import Network

MAX_ENTRIES = 400  # more differentiated entries than this: too large to write out


@dataclass(frozen=True)
class Elements:
    network: Network
    batch: int  # the concrete batch size (1 in the column layout)
    symbols: dict  # array name -> object array of its entries' symbols (labels: integers)
    output: np.ndarray  # yhat, entry by entry
    loss: sp.Expr
    layers: tuple = ()  # per layer: (z, a), its pre-activations and outputs, entry by entry

    def compact(self, expr: sp.Expr) -> sp.Expr:
        """`expr` with every pre-activation and activation written as its own symbol (z1_12,
        a1_12), innermost layer first: the closed form of an entry as one writes it by hand."""
        stages = []  # the names given so far, in order: each entry is matched written in them
        for i, (z, a) in enumerate(self.layers, 1):
            for name, values in ((f"z{i}", z), (f"a{i}", a)):
                names = {}
                for index in np.ndindex(values.shape):
                    value = values[index]
                    for stage in stages:
                        value = value.xreplace(stage)
                    symbol = entry_symbol(name, index)
                    names[value] = symbol
                    names[-value] = -symbol  # SymPy distributes the sign: exp(-z)
                expr = expr.xreplace(names)
                stages.append(names)
        return expr

    def gradient(self, name: str, indices=None) -> np.ndarray:
        """dL/d(entry) for every entry of the named array (or those at `indices`), by `sympy.diff`."""
        entries = self.symbols[name]
        grads = np.empty(entries.shape, dtype=object)
        for index in np.ndindex(entries.shape) if indices is None else indices:
            grads[index] = sp.diff(self.loss, entries[index])
        return grads


def entry_symbol(name: str, index: tuple) -> sp.Symbol:
    """The scalar symbol of one entry, indices from 1: W1_12, or W1_1_12 past 9."""
    if not index:
        return sp.Symbol(name)
    parts = [str(i + 1) for i in index]
    joiner = "" if all(len(p) == 1 for p in parts) else "_"
    return sp.Symbol(f"{name}_{joiner.join(parts)}", real=True)


def expand(network: Network, batch: int = 2, labels=None) -> Elements:
    """The loss of `network` over scalar symbols; `labels` gives integer labels when needed."""
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
        array = np.empty(shape, dtype=object)
        for index in np.ndindex(shape):
            array[index] = entry_symbol(name, index)
        symbols[name] = array

    row = network.layout == "row"
    a = symbols[network.input]
    layers = []
    for layer in network.layers:
        W = symbols[layer.weight]
        z = a @ W if row else W @ a
        if layer.bias is not None:
            z = z + symbols[layer.bias]
        a = _activate(layer, z)
        layers.append((z, a))

    y = symbols[network.target]
    if network.loss.labels:
        y = (np.asarray(y)[..., None] == np.arange(network.outputs)).astype(int)
    rule = rules.LOSSES[network.loss.kind]
    total = sum(rule.ell.subs({rules.a: p, rules.y: t}) for p, t in zip(a.flat, y.flat))
    if network.loss.reduction == "mean":
        total = total / (a.size if rule.per == "element" else n)
    loss = sp.Rational(repr(network.loss.scale)) * total
    l2 = sp.Rational(repr(network.loss.l2))
    if l2:
        loss += l2 * sum(w**2 for layer in network.layers for w in symbols[layer.weight].flat)
    return Elements(network, n, symbols, a, loss, tuple(layers))


def _activate(layer, z: np.ndarray) -> np.ndarray:
    rule = rules.ACTIVATIONS[layer.activation]
    if rule.f is None:  # softmax over the last axis
        e = np.vectorize(sp.exp, otypes=[object])(z)
        return e / e.sum(axis=-1, keepdims=True)
    f = lambda v: rule.at(v, v, layer.negative_slope)[0]  # noqa: E731
    return np.vectorize(f, otypes=[object])(z)
