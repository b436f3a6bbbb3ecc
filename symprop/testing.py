"""Testing a hand-written backward pass in pytest.

    from symprop.testing import assert_gradients_match

    def test_my_backward():
        assert_gradients_match("relu_softmax_3_4_2", my_backward)

The backward pass is called the way `symprop check --against` calls it: every array by keyword,
under the spec's names (names that differ only in case are matched), returning a dict of
gradients by name or a `(loss, dict)` pair.
"""

from __future__ import annotations

from dataclasses import replace

from .check import check
from .symbolic.spec import as_network

__all__ = ["assert_gradients_match"]


def assert_gradients_match(network, backward, *, values=None, seeds=(0, 1, 2), batch: int = 4,
                           rtol: float = 1e-7, names: dict | None = None) -> None:
    """Raise AssertionError, with the check report as its message, unless `backward` gives the
    generated gradients of `network` (a Network, a preset name or a spec path).

    The comparison is made at `values` (default: the spec's [values] when it has them), and at
    seeded random values of every array for each of `seeds`, with `batch` samples where the spec
    leaves the batch size open. An array is wrong when its normwise relative error, max |got -
    expected| / max |expected|, exceeds `rtol` (at least 1e-5 for float32 results). The report
    names each wrong array, its worst entries, and what one of them should be. `names`: your
    backward's own names of the arrays, {"gamma2": "gamma1", "W3": "W2"} (see `symprop.check`).
    Data arrays the spec's [values] give (dropout masks, labels) are kept at every seed; the
    floating-point arrays are drawn again.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, then the report
    if not callable(backward):  # None would check nothing, and pass
        raise TypeError(f"backward must be a function (your backward pass), not {type(backward).__name__}")
    from .symbolic.program import Program
    if isinstance(network, Program):  # a traced program: its traced values, then seeded floats
        label = getattr(backward, "__name__", "backward")
        runs = [("the values given", values)] if values is not None else [("the traced values", None)]
        runs += [(f"random values (seed {seed}, data as traced)", None) for seed in seeds if seed]
        for (where, arrays), seed in zip(runs, [0, *[s for s in seeds if s]]):
            report = check(network, backward, seed=seed, values=arrays, numerical=False, rtol=rtol, names=names)
            if not report.ok:
                raise AssertionError(f"{label} disagrees with the generated gradients of {network.name} "
                                     f"at {where}:\n{report.format()}")
        return
    network = as_network(network)
    runs = []  # (where, network, values, seed)
    if values is not None:
        runs.append(("the values given", network, values, 0))
    elif network.values:
        runs.append(("the spec's [values]", network, None, 0))
    data = set(network.masks) | ({network.target} if network.loss.labels else set())
    kept = {name: value for name, value in network.values.items() if name in data}
    fresh = replace(network, values=kept)  # every array drawn at random but the given masks
    runs += [(f"random values (seed {seed})", fresh, None, seed) for seed in seeds]
    label = getattr(backward, "__name__", "backward")
    for where, net, arrays, seed in runs:
        report = check(net, backward, seed=seed, values=arrays, batch=batch, numerical=False, rtol=rtol, names=names)
        if not report.ok:
            raise AssertionError(f"{label} disagrees with the generated gradients of {network.name} "
                                 f"at {where}:\n{report.format()}")
