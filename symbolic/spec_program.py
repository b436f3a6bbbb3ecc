"""The spec front end of the program: a `Network` as the `Program` its layers write.

The layers' forward equations and the loss (`symbolic.layers`, `symbolic.derive.forward_pass`)
become the program's steps, under the same names (`z1`, `a1`, `mu2`, `L`); the input, the target,
the masks and the parameters its arrays, with their roles; the differentiated arrays its `wrt`.
A program has fixed shapes: the batch is the spec's (or its [values]'), else `batch`.

The spec's own derivation (`symbolic.derive`) still reads the `Network` (its composite
normalization rule, its `delta<l>` names and its documents); this is the first step of making
every back end read the program. The tests prove the two equal on every preset and layer kind.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from .program import Array, Program, Step
from .spec import as_network


def program_of(network, batch: int = 3) -> Program:
    """The program of `network` (a Network, or the preset or spec file it names)."""
    from .derive import forward_pass
    network = as_network(network)
    n = network.batch or batch
    if network.batch is None and network.layout == "row" and network.input in network.values:
        n = len(network.values[network.input])  # the batch of the spec's [values]
    f, steps = forward_pass(network, sp.Integer(n) if network.layout == "row" else sp.S.One)
    shapes = network.shapes(n)
    floats = {network.input, *network.parameters} | ({network.target} if not network.loss.labels else set())
    roles = {name: "differentiated" if name in network.differentiated else "data" for name in shapes}
    arrays = tuple(Array(name, tuple(int(d) for d in shapes[name]), "float64" if name in floats or
                         name in network.masks else "int64", roles[name])
                   for name in (network.input, network.target, *network.masks, *network.parameters))
    program_steps = tuple(Step(s.symbol, s.expr, tuple(int(d) for d in s.shape), "float64",
                               stage="loss" if s.stage == "loss" else "forward") for s in steps)
    values = {name: np.asarray(value) for name, value in network.values.items()}
    return Program(name=network.name, arrays=arrays, steps=program_steps, output=steps[-1].symbol,
                   wrt=tuple(network.differentiated), scalar=True, source=network.source, values=values)
