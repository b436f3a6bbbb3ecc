"""`trace`: a user's NumPy function, run once on symbolic stand-ins, recorded as a `Program`.

How it works
------------
Every floating-point argument becomes a `Traced` array: it has the argument's shape and dtype,
and stands for a SymPy symbol. NumPy hands every operation on it back to us (the
`__array_ufunc__` and `__array_function__` protocols, the operators and the methods); each is
recorded as one step `v = expr`, with the user's file and line, and gives a new `Traced`. The
constructors that take no array (`np.zeros`, `np.arange`, `np.eye`, ...) are seen through a
NumPy namespace put in place of the user's `np` while the function runs. An in-place write
(`a[idx] = v`, `a += v`) records what it computes (a copy with the entries replaced) and makes
the array stand for that. Python loops simply unroll.

Anything that would need a number the trace does not have (control flow on a traced value,
`float(t)`, `np.asarray(t)`) or an operation we have no rule for raises `TraceError` naming the
user's file and line: a program is exact or is not made.

After the run, every step takes the name of the local variable that held it (the learner's own
names: `scores`, `bnvar_inv`), and the unnamed steps used once are written into their user.
"""

from __future__ import annotations

import keyword
import numbers
import os
import sys
import types
import unicodedata
from dataclasses import dataclass, replace

import numpy as np
import sympy as sp

from . import ops, rolling
from .numpy_rules import Namespace
from .program import Array, Program, Step, needed_steps
from .rewrites import rewrite_steps
from .scan import Scan, scan
from .names import reserved
from .traced import _DATA_KINDS, RESERVED, Traced, TraceError, Tracer, user_code

__all__ = ["TraceError", "trace"]

# ---------------------------------------------------------------------------------------------
# Naming: the user's local variables


@dataclass
class _Names:
    """Watches the user's frames and names each step after the local variable that holds it."""

    tracer: Tracer
    code: types.CodeType

    def __post_init__(self):
        self.namespace = None  # the NumPy namespace put in the user's modules as they are entered
        self.names: dict[sp.Symbol, str] = {}
        self.aliases: dict[sp.Symbol, list] = {}  # every local name that held it (prev_h = next_h)
        self.helpers: dict[sp.Symbol, str] = {}  # the first name a called function gave it
        self.taken: set[str] = set()

    def global_trace(self, frame, event, arg):
        if self.namespace is not None:
            self.namespace.enter(frame.f_globals, frame.f_code.co_filename)  # a helper module's np too
        if frame.f_code is self.code:
            return self.local_trace
        if user_code(frame.f_code.co_filename):
            return self.helper_trace
        return None

    def local_trace(self, frame, event, arg):
        if event in ("line", "return"):
            self.collect(frame.f_locals)
        return self.local_trace

    def helper_trace(self, frame, event, arg):
        if event in ("line", "return"):
            code = frame.f_code
            self.collect(frame.f_locals, parameters=code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
        return self.helper_trace

    def collect(self, local: dict, parameters=None):
        """The names of `local` (a frame's locals; `parameters`: a called function's, these its parameters)."""
        def kind(name):
            return "local" if parameters is None else "parameter" if name in parameters else "helper"
        for name, value in local.items():
            if isinstance(value, Traced):
                self.name(value.expr, name, kind(name))
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Traced) and isinstance(key, str):
                        self.name(item.expr, key, kind(name))

    def name(self, expr, name, kind="local"):
        """Name expr's step after a local variable of the function (`kind` "local"); a called
        function's ("helper") are kept apart: a rolled loop's steps take those, the function's its
        own; a called function's parameter names what its caller computed, and is only an alias."""
        if not (expr.is_Symbol and expr.name.startswith("_v")):
            return
        if name not in self.aliases.setdefault(expr, []):
            self.aliases[expr].append(name)
        if kind != "local":
            if kind == "helper" and name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_"):
                self.helpers.setdefault(expr, name)
            return
        if expr in self.names:
            return
        base = name if name.isidentifier() and not keyword.iskeyword(name) else "v"
        if base.startswith("_") or _generated_name(base):  # _hidden, dL_dW1: a name of its own, v_hidden
            base = "v_" + base.lstrip("_")
        candidate, k = base, 2
        while candidate in self.taken or candidate in RESERVED or candidate.startswith("_") or \
                _generated_name(candidate):
            candidate, k = f"{base}_{k}", k + 1
        self.names[expr] = candidate
        self.taken.add(candidate)


def _generated_name(name: str) -> bool:
    """Names of the generated code's own: gradients dL_d..., temporaries t0, t1, ..."""
    return name.startswith("dL_d") or (name[0] == "t" and name[1:].isdigit())


# ---------------------------------------------------------------------------------------------
# trace


def trace(fn, *, wrt=None, **arrays) -> Program:
    """`fn` run once on symbolic stand-ins for `arrays` (by the names of its parameters) and
    recorded as a `Program` (see the module docstring); `wrt`: the names to differentiate
    (default: every floating-point array); a name may be an intermediate (a local variable)."""
    if not callable(fn):
        raise TypeError(f"trace takes a function, not {type(fn).__name__}")
    if wrt is not None:
        wrt = [wrt] if isinstance(wrt, str) else list(wrt)  # wrt="x": the one name, not its letters
        if not wrt:
            raise TraceError("wrt is empty: name at least one array to differentiate (or leave it out: every "
                             "floating-point array)")
        twice = sorted({w for w in wrt if wrt.count(w) > 1})
        if twice:
            raise TraceError(f"wrt names {', '.join(map(repr, twice))} twice")
    tracer = Tracer()
    inputs, call, constants = [], {}, {}
    taken = set()
    for name, value in arrays.items():
        if isinstance(value, dict):  # a parameter dict: traced entry by entry under its keys
            entries = {}
            for key, item in value.items():
                entries[key] = _argument(tracer, str(key), item, inputs, constants, taken)
            call[name] = entries
        else:
            call[name] = _argument(tracer, name, value, inputs, constants, taken)
    owner = getattr(fn, "__self__", None)
    attributes = {}  # a bound method's dicts of float arrays (cs231n's self.params), traced entry by entry
    for attr, value in (vars(owner).items() if hasattr(owner, "__dict__") else ()):
        if (isinstance(value, dict) and value and all(isinstance(k, str) for k in value)
                and all(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in value.values())):
            attributes[attr] = (value, {k: _argument(tracer, k, v, inputs, constants, taken) for k, v in value.items()})
    names = _Names(tracer, getattr(fn, "__code__", None) or getattr(getattr(fn, "__func__", None), "__code__", None))
    names.taken |= taken
    namespace = names.namespace = Namespace(tracer)
    module_globals = getattr(fn, "__globals__", None) or getattr(getattr(fn, "__func__", None), "__globals__", {})
    previous = sys.gettrace()
    try:
        for attr, (_, entries) in attributes.items():
            setattr(owner, attr, entries)
        namespace.enter(module_globals, getattr(getattr(fn, "__code__", None), "co_filename", ""))
        sys.settrace(names.global_trace)
        try:
            result = fn(**call)
        finally:
            sys.settrace(previous)
    except TraceError:
        raise
    finally:
        namespace.leave()
        for attr, (value, _) in attributes.items():
            setattr(owner, attr, value)
    if isinstance(result, tuple):
        if not result:
            raise TraceError(f"{_describe(fn)} returned an empty tuple: return the loss, or an array")
        result = result[0]
    if not isinstance(result, Traced):
        raise TraceError(f"{_describe(fn)} returned {type(result).__name__}, not a traced array: its value does "
                         "not depend on the floating-point arrays given")
    if result.dtype.kind != "f":
        raise TraceError(f"{_describe(fn)} returned an array of {result.dtype.name}: only a float result is "
                         "differentiated")
    if not any(step.symbol == result.expr for step in tracer.steps):  # an argument or a constant, as it is
        expr = ops.Full(sp.Float(float(result.expr)), *result.shape) if result.expr.is_Number and result.shape \
            else result.expr
        tracer.steps.append(Step(sp.Symbol("_v0"), expr, result.shape, result.dtype.name))
        result = Traced(tracer, sp.Symbol("_v0"), result.shape, result.dtype)
    program = _program(fn, tracer, inputs, names, result, wrt, constants)
    values = {k: v for value, _ in attributes.values() for k, v in value.items()}
    for name, value in arrays.items():
        values.update(value) if isinstance(value, dict) else values.__setitem__(name, value)
    object.__setattr__(program, "values", {a.name: np.array(values[a.name]) for a in inputs})
    object.__setattr__(program, "groups", {name: tuple(str(k) for k in value) for name, value in arrays.items()
                                           if isinstance(value, dict)})
    object.__setattr__(program, "function", fn)
    return program


def _argument(tracer, name, value, inputs, constants, taken):
    if not name.isidentifier() or keyword.iskeyword(name):
        raise TraceError(f"the array name {name!r} is not a Python identifier")
    folded = unicodedata.normalize("NFKC", name)
    if folded != name:  # Python reads the identifier ﬁ as fi: two keys would be one parameter
        raise TraceError(f"the array name {name!r} is {folded!r} to Python (it folds identifiers to NFKC): "
                         f"name it {folded!r}")
    why = reserved(name, steps=False)
    if why:
        raise TraceError(f"the array name {name!r} is {why}")
    if name in taken:
        raise TraceError(f"two arrays named {name!r}")
    if isinstance(value, (bool, numbers.Number)) and not isinstance(value, np.ndarray) or value is None:
        constants[name] = value
        return value
    array = np.asarray(value)
    if array.dtype.kind == "f":
        role = "differentiated"
    elif array.dtype.kind in _DATA_KINDS:
        role = "data"
    else:
        raise TraceError(f"the array {name!r} holds {array.dtype}: give floats (differentiated), or whole "
                         "numbers or booleans (data)")
    taken.add(name)
    inputs.append(Array(name, array.shape, array.dtype.name, role))
    return Traced(tracer, sp.Symbol(name), array.shape, array.dtype)


def _describe(fn) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return getattr(fn, "__name__", "the function")
    return f"{code.co_filename}:{code.co_firstlineno}: {fn.__name__}"


def _program(fn, tracer, inputs, names, result, wrt, constants) -> Program:
    steps = tracer.steps
    # The steps the output (or a wanted intermediate) needs, in order.
    wanted_names = list(wrt) if wrt is not None else [a.name for a in inputs if a.role == "differentiated"]
    by_name = {v: k for k, v in names.names.items()}
    needed = {result.expr}
    for w in wanted_names:
        if w in by_name:
            needed.add(by_name[w])
    kept = []
    for step in reversed(steps):
        if step.symbol in needed:
            kept.append(step)
            needed |= step.expr.free_symbols
    kept.reverse()
    used = {result.expr}.union(*(step.expr.free_symbols for step in kept))
    for poison, message in tracer.poisons.items():  # a random draw or an argmax that reaches the value
        if poison in used:
            raise TraceError(message)
    keep = {result.expr} | {by_name[w] for w in wanted_names if w in by_name}
    kept = rolling.roll(kept, rolling.Arrays({sp.Symbol(a.name): tuple(a.shape) for a in inputs},
                                             {sp.Symbol(a.name): a.dtype for a in inputs}), keep)
    _name_scans(kept, names)
    known = {a.name for a in inputs}
    for w in wanted_names:
        if w not in known and w not in by_name:
            local = sorted(set(names.names.values()))
            raise TraceError(f"wrt names {w!r}, which is neither an array given nor a local variable of "
                             f"{getattr(fn, '__name__', 'the function')} that holds a traced array"
                             + (f" (those: {', '.join(local)})" if local else ""))
        if w in known and next(a for a in inputs if a.name == w).role != "differentiated":
            raise TraceError(f"wrt names {w!r}, which holds integers or booleans (data, not differentiated)")
    # Names: each kept step takes its local variable's name; an unnamed one used once is written
    # into its user, one used more often gets a name of its own.
    uses = {}
    for step in kept:
        for s in step.expr.free_symbols:  # an array a loop takes is a name of its own (the loop binds it)
            uses[s] = uses.get(s, 0) + (2 if isinstance(step.expr, Scan) else 1)
    rename, inline = {}, {}
    taken = set(names.taken)
    named = {a.name for a in inputs} | {names.names[s.symbol] for s in kept
                                        if s.symbol in names.names and not isinstance(s.expr, Scan)}
    for step in kept:
        expr = step.expr.xreplace(inline).xreplace(rename)
        if isinstance(step.expr, Scan):  # its name at t (h_t) is the loop's too: both free
            user = names.names.get(step.symbol)
            name = _loop_name(user or ("out" if step.symbol == result.expr else "v"),
                              named | {r.name for r in rename.values()} | (set() if user else taken))
            rename[step.symbol] = sp.Symbol(name)
            taken |= {name, f"{name}_t"}
            continue
        if step.symbol in names.names:
            rename[step.symbol] = sp.Symbol(names.names[step.symbol])
        elif step.symbol == result.expr:
            rename[step.symbol] = sp.Symbol(_fresh("out", taken))
        elif uses.get(step.symbol, 0) == 1 and not step.data and not _keeps_name(expr):
            inline[step.symbol] = expr
            continue
        else:
            rename[step.symbol] = sp.Symbol(_fresh("v", taken))
        taken.add(rename[step.symbol].name)
    final = []
    for step in kept:
        if step.symbol in inline:
            continue
        expr = step.expr.xreplace(inline).xreplace(rename)
        expr = expr.xreplace(inline).xreplace(rename)
        final.append(Step(rename[step.symbol], expr, step.shape, step.dtype, step.data, step.where))
    output = rename.get(result.expr, result.expr)
    final = _named_loops(final, names, {a.name for a in inputs})
    final = _rewritten(final, inputs, output, {rename[by_name[w]] for w in wanted_names if w in by_name})
    scalar = result.shape == ()
    arrays = list(inputs)
    if not scalar:
        if "dout" in {a.name for a in inputs}:
            raise TraceError("an argument is named 'dout', the name of the upstream gradient")
        arrays.append(Array("dout", result.shape, result.dtype.name, "upstream"))
    wrt_final = tuple(wanted_names)
    code = getattr(fn, "__code__", None)
    source = f"{os.path.basename(code.co_filename)}:{fn.__name__}" if code else getattr(fn, "__name__", "function")
    return Program(name=getattr(fn, "__name__", "traced"), arrays=tuple(arrays), steps=tuple(final), output=output,
                   wrt=wrt_final, scalar=scalar, source=source, constants=constants,
                   bounds={a.name: tracer.bounds[a.symbol] for a in inputs if a.symbol in tracer.bounds},
                   narrowed=tracer.narrowed)


def _rewritten(steps, inputs, output, keep) -> list:
    """The steps with the idioms rewritten (`symbolic.rewrites`), and those no longer needed dropped."""
    shapes = {sp.Symbol(a.name): tuple(sp.Integer(d) for d in a.shape) for a in inputs}
    shapes.update({s.symbol: tuple(sp.Integer(d) for d in s.shape) for s in steps})
    return needed_steps(rewrite_steps(steps, shapes, keep), {output} | set(keep))


def _keeps_name(expr) -> bool:
    """An expression that should stay a step of its own even when used once: a write in place, a loop."""
    return isinstance(expr, (ops.SetItem, Scan))


def _loop_name(base: str, taken: set) -> str:
    """A name for a rolled loop's value: neither it nor its value at t (`name_t`) taken."""
    candidate, k = base, 1
    while candidate in taken or f"{candidate}_t" in taken or candidate in RESERVED or _generated_name(candidate):
        k += 1
        candidate = f"{base}{k}"
    return candidate


def _name_scans(steps, names) -> None:
    """A rolled loop's step takes the learner's name of what it computes: the buffer it fills
    (`h`), the list it stacks, or the state it ends with (`next_h`), when no other step has it."""
    kept = {s.symbol for s in steps}
    by_name = {v: k for k, v in names.names.items()}
    for step in steps:
        if not isinstance(step.expr, Scan):
            continue
        for candidate in step.notes.get("names", ()):
            user = names.names.get(candidate)
            if user is None or candidate in kept and candidate != step.symbol:
                continue
            base = rolling.base_name(user)
            if base != user and by_name.get(base) not in kept:
                user = base
            names.names[step.symbol] = user
            break


def _named_loops(steps, names, inputs) -> list:
    """The steps with every rolled loop under its final names (`symbolic.rolling.named`)."""
    taken = set(inputs) | {s.name for s in steps}
    out = []
    for step in steps:
        if isinstance(step.expr, Scan):
            loop = step.expr.loop
            outer = {name: arg.name for name, arg in zip(loop.arguments, step.expr.args)}
            loop = rolling.named(loop, step.name, outer, {**names.helpers, **names.names}, names.aliases, taken)
            taken |= {s.name for s in loop.body.steps} | {a.name for a in loop.body.arrays}
            taken |= set(loop.stored.values())
            step = replace(step, expr=scan(loop)(*step.expr.args))
        out.append(step)
    return out


def _fresh(base, taken) -> str:
    candidate, k = base, 1
    while candidate in taken:
        k += 1
        candidate = f"{base}{k}"
    return candidate
