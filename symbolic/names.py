"""The names a network's arrays and modules may not take, from what the generated code uses.

A generated function takes its arrays as parameters, so an array named like anything the
function reads by name would hide it: the globals and builtins it reads (`np`, `VALIDATE`,
`float`, `bool`, `int`, `slice`, the runtime helpers `_softmax`, `_arrays`, ...), and its own local names
(`unknown`, the derivation's steps `z1`, `a1`, `delta1`, `L`, the gradients `dL_d<name>` and the
temporaries `t0`, `t1`, ...). Those are reserved; everything else works, the module's own API
names (`loss`, `SHAPES`) included, since a parameter only hides a name inside its function. The
tests compile the module of every preset, layer kind and traced learner's function and prove that
every name its functions read or define is reserved here, or is one of its arrays or steps.

A module is written to `<name>.py` and imported by that name, so a network's name may not be a
module of Python's standard library or `numpy` (the module imports it, and would import itself),
nor a dunder name (`__init__.py` makes a package), and is at most `MAX_MODULE_NAME` characters
(the file and its temporary must fit the file system's 255 bytes).
"""

from __future__ import annotations

import keyword
import re
import sys

READ = frozenset({"np", "VALIDATE", "float", "bool", "int", "slice", "range", "reversed"})  # globals and builtins read
LOCALS = frozenset({"unknown", "arrays", "N", "dout", "t", "work"})  # their own locals, besides the steps
# (t: a loop's step; work: the buffers of the large intermediates, codegen.workspaces)
TEMPORARY = re.compile(r"^t\d+$|^dL_d")  # common subexpressions, gradients
STEPS = re.compile(r"^(z|a|delta|t|mu|var|sigma|xhat)\d+(_\d+)?$|^(L|margins)$"  # a spec's steps (z1, delta1_2, L)
                   r"|^\w*_(t|prev|next)$")  # a loop's locals: x_t, h1_prev, dL_dh1_next (and Kind.locals)
MODULES = frozenset(sys.stdlib_module_names) | {"numpy", "symprop", "sympy"}
MAX_MODULE_NAME = 100


def reserved(name: str, steps: bool = True) -> str | None:
    """Why `name` may not name an array, or None. `steps`: also a spec's own step names."""
    if name.startswith("_"):
        return "reserved for the generated code's own helpers (names starting with _)"
    if name in READ:
        return f"reserved: the generated code reads it ({', '.join(sorted(READ))})"
    if name in LOCALS:
        return f"reserved: the generated functions use it themselves ({', '.join(sorted(LOCALS))})"
    if TEMPORARY.match(name) or steps and STEPS.match(name):
        return "reserved for the generated code's intermediates"
    return None


def module_name_problem(name: str) -> str | None:
    """Why `name` cannot name a generated module, or None."""
    if not name.isidentifier() or not name.isascii():
        return "is not a Python identifier"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "is a Python keyword"
    if len(name) > MAX_MODULE_NAME:
        return f"is longer than {MAX_MODULE_NAME} characters ({len(name)}): it names the module's file"
    if name.startswith("__") and name.endswith("__"):
        return "is a special name (a module __init__.py would make its folder a package)"
    if name in MODULES:
        return f"is the name of the module {name} (the generated module would hide it, or import itself)"
    return None
