"""A scan's forward and reverse loops as Python `for` statements (`symbolic.scan`).

A generated function is a list of lines `name = expression`. A line whose expression is a
`Scan` becomes the forward loop: one time step's equations, printed once, inside
`for t in range(T)`, the values the reverse loop reads kept, one array per step, in a list
(`i1.append(i1_t)`, read back as `i1[t]`; the Numba backend keeps arrays (N, T, ...)). The
gradients of one scan's arguments (`ScanGrad`, one per argument, all from the same upstream
gradient) become one reverse loop, `for t in reversed(range(T))`, before the first line that uses
any of them: the step's gradient equations printed once, a parameter's gradient summed over the
steps (`dL_dWx1 += ...`), a sequence's written at t (`dL_dx[:, t] = ...`), and the previous
state's carried to the step before (`dL_dh1_next = dL_dh1_prev`). This reads like the loops one
writes by hand (cs231n's `rnn_forward` and `rnn_backward`).
"""

from __future__ import annotations

import re

import sympy as sp

from ..symbolic.scan import Loop, Scan, ScanGrad, next_name, scan

INDENT = "    "


def statements(printer, lines: list, cse) -> list[str]:
    """The printed statements of `lines` ((symbol, expression) pairs in order), every scan and
    every group of scan gradients as a loop; `cse(exprs)` gives a body's lines."""
    groups = _groups(lines)
    taken = [int(s.name[1:]) for s, _ in lines if re.fullmatch(r"t\d+", s.name)]
    cse = _renumbered(cse, max(taken, default=-1) + 1)
    kept = {}  # loop -> body symbols the reverse loops of this function read from the forward one
    for (loop, _), parts in groups.items():
        kept.setdefault(loop, set()).update(_reads(loop, parts))
    done, out = set(), []
    run = {expr.loop for _, expr in lines if isinstance(expr, Scan)}
    for symbol, expr in lines:
        if isinstance(expr, Scan):
            out += _forward(printer, symbol, expr, kept.get(expr.loop, set()), cse)
            continue
        for key in _keys(expr):
            if key not in done:
                done.add(key)
                loop, args = key
                if loop not in run:  # a function that needs the gradients but not the value: the reverse
                    run.add(loop)    # loop reads the forward loop's values all the same
                    out += _forward(printer, sp.Symbol(loop.name), scan(loop)(*args[1:]), kept[loop], cse)
                out += _backward(printer, key, groups[key], cse)
        replaced = expr.xreplace({e: groups[_key(e)][e.part] for e in expr.atoms(ScanGrad)})
        if replaced != symbol:  # a line that is one part of a reverse loop: the loop wrote it
            out += printer.assignment(symbol, replaced)
    return out


def _renumbered(cse, start: int):
    """`cse` whose temporaries continue the function's numbering (t3, t4, ... after its t0 to
    t2): a loop's body shares the function's names, and its t0 would overwrite the function's."""
    counter = [start]

    def numbered(steps):
        lines = cse(steps)
        temps = {s: sp.Symbol(f"t{counter[0] + i}") for i, s in enumerate(
            s for s, _ in lines if re.fullmatch(r"t\d+", s.name) and s not in {step.symbol for step in steps})}
        counter[0] += len(temps)
        return [(temps.get(s, s), e.xreplace(temps)) for s, e in lines]
    return numbered


def _key(e: ScanGrad) -> tuple:
    return (e.loop, e.args)


def _keys(expr) -> list:
    return list(dict.fromkeys(_key(e) for e in sorted(expr.atoms(ScanGrad), key=sp.default_sort_key)))


def _groups(lines) -> dict:
    """(loop, arguments) -> {part: the symbol the reverse loop writes it to}: the line's own
    symbol when the line is the part, else a name of its own."""
    groups = {}
    for symbol, expr in lines:
        for e in sorted(expr.atoms(ScanGrad), key=sp.default_sort_key):
            parts = groups.setdefault(_key(e), {})
            if e.part not in parts:
                parts[e.part] = symbol if expr == e else sp.Symbol(f"dL_d{e.part}_{e.loop.name}")
    return groups


def _reads(loop: Loop, parts: dict) -> set:
    """The body steps whose values the reverse loop reads (a carried state's previous value is the
    new one of the step before)."""
    used = set().union(*(s.expr.free_symbols for s in loop.reverse(parts)))
    steps = {s.symbol for s in loop.body.steps}
    out = used & steps
    out |= {sp.Symbol(new) for prev, new, _ in loop.carried if sp.Symbol(prev) in used}
    return out


def _shape(printer, loop: Loop, symbol, stacked: bool) -> str:
    """The shape of a body value (over all steps when `stacked`) as code, the batch from a sequence,
    and its dtype: that of the sequence and the parameters together (float32 in, float32 kept)."""
    dims = loop.body.shapes()[symbol][1:]
    seq = loop.sequences[0][1]
    dims = ((sp.Integer(loop.length),) if stacked else ()) + tuple(dims)
    floats = {a.name for a in loop.body.arrays if a.dtype.startswith("float")}  # not an integer mask's dtype
    arrays = [outer for inner, outer in loop.sequences if inner in floats][:1] + [p for p in loop.parameters
                                                                               if p in floats][:1]
    dtype = printer.float_dtype(arrays)
    return f"({seq}.shape[0], " + ", ".join(str(int(d)) for d in dims) + f"), dtype={dtype}"


def _is_value(loop: Loop, step: str) -> bool:
    """Whether the step's values over all steps are the scan's value (all of the output's steps,
    an array (N, T, ...)); the other steps the reverse loop reads are kept as the printer keeps
    them (`printer.kept`: a list of the steps' arrays in NumPy)."""
    return not loop.last and step == loop.output


def _kept_at(printer, loop: Loop, step: str, offset: str = "") -> str:
    """A kept step's value at step t (plus `offset`), as code."""
    name = loop.stacked(step)
    return printer.at_time(name, offset) if _is_value(loop, step) else printer.kept_at(name, offset)


def _forward(printer, symbol, scan: Scan, kept: set, cse) -> list[str]:
    loop = scan.loop
    arguments = dict(zip(loop.arguments, scan.args))
    stored = [s.symbol for s in loop.body.steps if s.symbol in kept or (
        not loop.last and s.name == loop.output)]
    out = [f"{loop.stacked(s.name)} = np.empty({_shape(printer, loop, s, True)})" if _is_value(loop, s.name)
           else printer.kept(loop.stacked(s.name), _shape(printer, loop, s, True)) for s in stored]
    for prev, new, init in loop.carried:
        start = printer.doprint(arguments[init]) if init else f"np.zeros({_shape(printer, loop, sp.Symbol(prev), False)})"
        out.append(f"{prev} = {start}")
    out.append(f"for t in range({loop.length}):")
    body = [f"{inner} = {printer.at_time(printer.doprint(arguments[outer]))}" for inner, outer in loop.sequences]
    body += [f"{s.name} = {printer.doprint(e)}" for s, e in cse([step for step in loop.body.steps])]
    body += [f"{loop.stacked(s.name)}[:, t] = {s.name}" if _is_value(loop, s.name)
             else printer.keep(loop.stacked(s.name), s.name) for s in stored]
    body += [f"{prev} = {new}" for prev, new, _ in loop.carried]
    out += [INDENT + line for line in body]
    if loop.last:
        out.append(f"{symbol.name} = {loop.output}")
    return out


def _backward(printer, key, parts: dict, cse) -> list[str]:
    loop, args = key
    g, arguments = args[0], dict(zip(loop.arguments, args[1:]))
    steps, grads = loop.backward
    needed = loop.reverse(parts)
    used = set().union(*(s.expr.free_symbols for s in needed))
    out = []
    if not g.is_Symbol:
        out.append(f"dL_d{loop.name} = {printer.doprint(g)}")
        g = sp.Symbol(f"dL_d{loop.name}")
    sequences = {outer: inner for inner, outer in loop.sequences}
    for part, target in parts.items():
        if part in loop.parameters:
            out.append(f"{target} = np.zeros_like({printer.doprint(arguments[part])})")
        elif part in sequences:
            out.append(f"{target} = np.empty_like({printer.doprint(arguments[part])})")
    for prev, new, _ in loop.carried:
        start = g.name if loop.last and new == loop.output else f"np.zeros({_shape(printer, loop, sp.Symbol(new), False)})"
        out.append(f"{next_name(new)} = {start}")
    out.append(f"for t in {printer.backwards(loop.length)}:")
    body = []
    for inner, outer in loop.sequences:
        if sp.Symbol(inner) in used:
            body.append(f"{inner} = {printer.at_time(printer.doprint(arguments[outer]))}")
    for prev, new, init in loop.carried:
        if sp.Symbol(prev) in used:
            start = printer.doprint(arguments[init]) if init else f"np.zeros({_shape(printer, loop, sp.Symbol(prev), False)})"
            body.append(f"{prev} = {_kept_at(printer, loop, new, ' - 1')} if t else {start}")
    for step in loop.body.steps:
        if step.symbol in used:
            body.append(f"{step.name} = {_kept_at(printer, loop, step.name)}")
    if not loop.last and sp.Symbol(f"dL_d{loop.name}_t") in used:
        body.append(f"dL_d{loop.name}_t = {printer.at_time(g.name)}")
    targets = {grads[name]: (parts[name], "+=") for name in loop.parameters if name in parts}
    targets.update({grads[inner]: (parts[outer], "[:, t] =") for inner, outer in loop.sequences if outer in parts})
    lines = cse(needed)
    # a parameter's gradient at t that another line reads (dL_dc = dL_db): a local of its own, since
    # its name is the sum over the steps being accumulated
    read = set().union(*(e.free_symbols for _, e in lines)) if lines else set()
    taken = {s.name for s, _ in lines} | {s.name for s in read}
    local = {}
    for symbol in targets:
        if symbol in read and targets[symbol][1] == "+=":
            name, k = f"{symbol.name}_t", 2
            while name in taken:
                name, k = f"{symbol.name}_t{k}", k + 1
            local[symbol] = sp.Symbol(name)
    for symbol, expr in ((s, e.xreplace(local)) for s, e in lines):
        code = printer.doprint(expr)
        if symbol in local:
            body += [f"{local[symbol].name} = {code}", f"{targets[symbol][0].name} += {local[symbol].name}"]
        elif symbol in targets:
            target, how = targets[symbol]
            body.append(f"{target.name} += {code}" if how == "+=" else f"{target.name}[:, t] = {code}")
        else:
            body.append(f"{symbol.name} = {code}")
    body += [f"{next_name(new)} = {grads[prev].name}" for prev, new, _ in loop.carried]
    out += [INDENT + line for line in body]
    for prev, new, init in loop.carried:
        if init in parts:
            out.append(f"{parts[init].name} = {next_name(new)}")
    return out
