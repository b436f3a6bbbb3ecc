"""symprop: closed-form gradients of neural networks, derived by SymPy, generated as NumPy, checked.

    import symprop

    net = symprop.load("relu_softmax_3_4_2")    # a preset by name, or a spec file (TOML)
    derivation = symprop.derive(net)            # the named steps; .text(), .latex(), .markdown()
    source = symprop.generate(net)              # the NumPy module `symprop generate` writes
    report = symprop.check(net, my_backward)    # generated vs numerical (and your backward pass)
    symprop.numerical_gradients(f, arrays, "W1")
    program = symprop.trace(loss, X=X, y=y, W1=W1, b1=b1)  # your own NumPy function, traced

A traced `Program` is accepted wherever a network is (derive, generate, check).

In pytest: `symprop.testing.assert_gradients_match(net, my_backward)`. The command line is
`symprop` (or `python -m symprop`). The subpackages are `symprop.symbolic` (specs, rules,
derivations) and `symprop.codegen` (printing and writing modules).
"""

import os
import sys
from importlib.metadata import PackageNotFoundError, version

# SymPy caches its constructions in LRU caches of SYMPY_CACHE_SIZE entries (1000 by default), read
# when SymPy is first imported. A deep network's derivation has a working set larger than that: at
# 200 layers the misses rebuilt every expression, and generating took 1.4x as long. Your own
# setting, or a SymPy imported before symprop, is left as it is.
os.environ.setdefault("SYMPY_CACHE_SIZE", "10000")

try:
    from .check import Report, check
    from .codegen import generate
    from .numerical import numerical_gradients
    from .symbolic import Derivation, Network, Program, SpecError, TraceError, derive, load, loads, presets, trace

    try:
        __version__ = version("symprop")
    except PackageNotFoundError:  # a checkout that was never installed
        __version__ = "0+unknown"
except KeyboardInterrupt:  # Ctrl-C while the command line starts (importing SymPy): exit 130, no traceback
    if sys.orig_argv[1:3] == ["-m", "symprop"] or sys.argv[:1] and sys.argv[0].endswith(("/symprop", "symprop.exe")):
        print("symprop: interrupted", file=sys.stderr)  # os._exit: see symprop.cli.interrupted
        sys.stderr.flush()
        os._exit(130)
    raise

__all__ = ["Derivation", "Network", "Program", "Report", "SpecError", "TraceError", "check", "derive", "generate",
           "load", "loads", "numerical_gradients", "presets", "trace"]


def __getattr__(name):  # `symprop.testing` without importing it (and pytest's assertion rewriting) up front
    if name == "testing":  # importlib: `from . import testing` would ask this function again, forever
        import importlib
        return importlib.import_module(f"{__name__}.testing")
    raise AttributeError(f"module 'symprop' has no attribute {name!r}")
