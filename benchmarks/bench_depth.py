"""Time against depth: derive, generate and (with --check) check an L-layer tanh MLP.

    python benchmarks/bench_depth.py                 # L = 10, 50, 100, 200, 500
    python benchmarks/bench_depth.py --depths 50 200 --check

Each network is 8 inputs, L dense tanh layers of 8 units and a softmax layer of 3, with the
cross-entropy loss. Each figure is one run in a fresh network (SymPy's caches warm from the
runs before it, as in a session): `derive` is symprop.derive, `generate` is symprop.generate
(which derives again), `check` is symprop.check (numerical gradients of every entry, on float64
random values). Goal (issue 23): linear in L; 200 layers generate under 2 s and within 5x of 50.
"""

from __future__ import annotations

import argparse
import time

import symprop


def spec(layers: int) -> str:
    dense = "".join('[[layers]]\nkind = "dense"\nunits = 8\nactivation = "tanh"\n\n' for _ in range(layers))
    return (f'name = "deep{layers}"\ninputs = 8\n\n{dense}[[layers]]\nkind = "dense"\nunits = 3\n'
            'activation = "softmax"\n\n[loss]\nkind = "cross_entropy"\n')


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    parser.add_argument("--check", action="store_true", help="also time symprop.check (slow for deep nets)")
    args = parser.parse_args(argv)
    print("| layers | derive s | generate s |" + (" check s |" if args.check else ""))
    print("|---|---|---|" + ("---|" if args.check else ""))
    for depth in args.depths:
        network = symprop.loads(spec(depth), source=f"<deep{depth}>")
        row = [timed(lambda: symprop.derive(network)), timed(lambda: symprop.generate(network))]
        if args.check:
            row.append(timed(lambda: symprop.check(network)))
        print(f"| {depth} | " + " | ".join(f"{value:.2f}" for value in row) + " |", flush=True)


if __name__ == "__main__":
    main()
