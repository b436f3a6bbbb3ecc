"""A traced Python loop over time, rolled back up into one `Scan` (`symbolic.scan`).

The tracer runs a learner's `for t in range(T)` loop and records its steps T times. Here the
repeats are found again: a stretch of the trace made of T blocks of the same steps (the same
source lines, operations and shapes), where block t reads

- the slice `x[:, t]` of an array from before the loop (a *sequence*: x is (N, T, ...));
- the steps of block t - 1 (a *carried state*: `prev_h = next_h`), and at t = 0 arrays from
  before the loop instead (its initial value; an `np.zeros` array is the zero state);
- arrays from before the loop, the same in every block (the *parameters*: Wx, Wh, b);

and whose value reaches the rest of the trace in one of three ways, all of one step of the block:
written into a buffer at t (`h[:, t, :] = next_h` into an `np.zeros((N, T, H))`), appended to a
list stacked after the loop (`np.stack(hs, axis=1)`, or `np.array(hs)`: axis 0), or the last
block's value (the final state). The blocks are then one body, a `Program` of one time step, and
the stretch one scan step: the derivation differentiates the body once and the generated code
runs it in one forward and one reverse loop, the same as a spec's `rnn`.

Anything else (an index that is not t on axis 1, a loop over a batch or a window, a state read
two steps back, a loop whose length is not the sequence's) stays unrolled: still exact, only as
long as the trace. The search is on the raw steps, before they are named (`symbolic.trace`); the
loop's names are given after (`name_loop`), once the steps outside it have theirs.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, replace

import sympy as sp

from .ops import GetItem, NewAxis, Permute, SetItem, Slice, Stack, Full
from .program import Array, Program, Step, needed_steps
from .rewrites import rewrite_steps
from .scan import Loop, scan

TIME = sp.Symbol("_time")  # the loop's index in a block's template
_TRIES = 4096  # assignments of initial values tried at most


@dataclass(frozen=True)
class Arrays:
    """What the search knows of the symbols outside the steps (the traced function's arguments):
    shape and dtype by symbol."""

    shapes: dict
    dtypes: dict


def roll(steps: list, arrays: Arrays, keep: set) -> list:
    """`steps` (a trace's raw steps in order) with every loop found rolled up into one scan step;
    `keep`: the symbols that must stay steps of their own (the output, the wanted intermediates)."""
    shapes = dict(arrays.shapes)
    dtypes = dict(arrays.dtypes)
    while True:
        for step in steps:
            shapes[step.symbol] = tuple(int(d) for d in step.shape)
            dtypes[step.symbol] = step.dtype
        found = _find(steps, shapes, dtypes, keep)
        if found is None:
            return steps
        steps = needed_steps(found, keep)  # a buffer's zeros, written over whole, are not


# ---------------------------------------------------------------------------------------------
# Finding the blocks


def _signature(step) -> tuple:
    return (step.where, tuple(step.shape), step.dtype, step.data, _key(step.expr))


def _key(expr):
    """The structure of an expression, its symbols and whole numbers left out (they differ from
    block to block: the steps of each block, the index t)."""
    if isinstance(expr, sp.Symbol):
        return "s"
    if isinstance(expr, sp.Integer):
        return "i"
    if isinstance(expr, (Slice, NewAxis)) or expr.is_Atom:
        return expr
    args = tuple(_key(a) for a in expr.args)
    if expr.is_Add or expr.is_Mul:
        args = tuple(sorted(args, key=repr))
    return (expr.func, args)


def _find(steps, shapes, dtypes, keep):
    """The steps with the first loop found rolled up, or None when there is none."""
    ids, positions = {}, {}
    codes = [ids.setdefault(_signature(s), len(ids)) for s in steps]
    for index, code in enumerate(codes):
        positions.setdefault(code, []).append(index)
    for start, code in enumerate(codes):
        for stop in positions[code]:  # where the same step comes again: a block's length
            if stop <= start:
                continue
            period = stop - start
            block = codes[start:stop]
            count = 1
            while codes[start + count * period:start + (count + 1) * period] == block:
                count += 1
            if count < 2:
                continue
            length = _length(steps[start:stop], shapes)
            if length is None or length < 2 or length > count:  # a loop of one step is no loop
                continue
            rolled = _Blocks(steps, start, period, length, shapes, dtypes).rolled(keep)
            if rolled is not None:
                return rolled
    return None


def _whole(component, size) -> bool:
    return isinstance(component, Slice) and component.value == slice(0, int(size), 1)


def _time_index(index, k, shape) -> bool:
    """index is [:, k] or [:, k, :, ...] of an array of `shape` (N, T, ...)."""
    return (2 <= len(index) <= len(shape) and isinstance(index[1], sp.Integer) and int(index[1]) == k
            and _whole(index[0], shape[0]) and all(_whole(c, d) for c, d in zip(index[2:], shape[2:])))


def _length(first_block, shapes) -> int | None:
    """T: the axis-1 length of the first array from before the block that it slices at [:, 0]."""
    inside = {s.symbol for s in first_block}
    for step in first_block:
        for e in sp.preorder_traversal(step.expr):
            if isinstance(e, GetItem) and e.args[0].is_Symbol and e.args[0] not in inside:
                shape = shapes.get(e.args[0])
                if shape and _time_index(e.index, 0, shape):
                    return shape[1]
    return None


def _timed(expr, k, region, shapes):
    """expr with k, the index of block k, as TIME where it slices an array from before the loop
    at axis 1 (x[:, t]) or writes a buffer there (h[:, t] = v)."""
    if isinstance(expr, (GetItem, SetItem)) and expr.args[0].is_Symbol:
        a = expr.args[0]
        outside = isinstance(expr, SetItem) or a not in region
        if outside and shapes.get(a) and _time_index(expr.index, k, shapes[a]):
            return type(expr)(*expr.args[:expr.lead], expr.index[0], TIME, *expr.index[2:])
    if expr.is_Atom or not expr.args:
        return expr
    args = tuple(_timed(a, k, region, shapes) for a in expr.args)
    return expr if args == expr.args else expr.func(*args)


def _symbols(exprs) -> set:
    return set().union(*(e.free_symbols for e in exprs)) if exprs else set()


# ---------------------------------------------------------------------------------------------
# Checking them and writing the scan


class _Blocks:
    """T blocks of `period` steps from `start`: the loop they are, if they are one."""

    def __init__(self, steps, start, period, count, shapes, dtypes):
        self.steps, self.start, self.period, self.count = steps, start, period, count
        self.shapes, self.dtypes = shapes, dtypes
        self.region = {}  # symbol -> (block, position)
        for k in range(count):
            for j in range(period):
                self.region[self.step(k, j).symbol] = (k, j)
        self.current = [sp.Symbol(f"_c{j}") for j in range(period)]
        self.previous = [sp.Symbol(f"_p{j}") for j in range(period)]

    def step(self, k, j) -> Step:
        return self.steps[self.start + k * self.period + j]

    @property
    def stop(self) -> int:
        return self.start + self.count * self.period

    def template(self, k) -> list | None:
        """Block k's expressions, its own steps written _c<j>, block k-1's _p<j> and the index t
        (where it slices a sequence or writes a buffer) TIME; None if it reads further back."""
        out = []
        for j in range(self.period):
            expr = self.step(k, j).expr
            replacement = {}
            for s in expr.free_symbols:
                if s in self.region:
                    kk, jj = self.region[s]
                    if kk == k:
                        replacement[s] = self.current[jj]
                    elif kk == k - 1:
                        replacement[s] = self.previous[jj]
                    else:
                        return None
            out.append(_timed(expr, k, self.region, self.shapes).xreplace(replacement))
        return out

    def initial(self, first, body) -> dict | None:
        """The value each _p<j> of the template `body` has in block 0 (`first`): arrays from before
        the loop, found by trying them."""
        previous = sorted(_symbols(body) & set(self.previous), key=sp.default_sort_key)
        if not previous:
            return {} if first == body else None
        inside = set(self.current) | {TIME}
        seen = _symbols(first) - inside
        parameters = _symbols(body) - inside - set(self.previous)
        candidates = sorted(seen - parameters, key=sp.default_sort_key) + sorted(seen & parameters,
                                                                                 key=sp.default_sort_key)
        for tries, choice in enumerate(itertools.product(candidates, repeat=len(previous))):
            if tries > _TRIES:
                return None
            start = dict(zip(previous, choice))
            if [e.xreplace(start) for e in body] == first:
                return start
        return None

    def rolled(self, keep):
        templates = [self.template(k) for k in range(self.count)]
        if any(t is None for t in templates) or any(t != templates[1] for t in templates[2:]):
            return None
        body = templates[1]
        start = self.initial(templates[0], body)
        if start is None:
            return None
        last = {self.step(self.count - 1, j).symbol: j for j in range(self.period)}
        if any(s in self.region and s not in last for s in keep):
            return None  # a wanted intermediate inside the loop: it stays unrolled, by name
        buffers = self.buffers(body)
        if buffers is None or any(start.get(self.previous[j]) in keep for j in buffers):
            return None  # (a buffer's zeros asked for by name: they are not part of the loop)
        outputs = self.outputs(buffers, last, keep)
        if outputs is None:
            return None
        return self.write(body, start, buffers, *outputs, keep)

    def buffers(self, body) -> dict | None:
        """{j: v}: the steps that write the value of step v into a buffer at t (h[:, t] = v);
        None if a buffer is read inside the loop or not written whole."""
        out = {}
        for j, e in enumerate(body):
            if isinstance(e, SetItem) and len(e.index) >= 2 and e.index[1] == TIME:
                if e.args[0] != self.previous[j] or e.args[1] not in self.current:
                    return None
                shape = self.shapes[self.step(0, j).symbol]
                v = self.current.index(e.args[1])
                value = self.shapes[self.step(0, v).symbol]
                if shape[1] != self.count or value != (shape[0], *shape[2:]):
                    return None
                out[j] = v
        others = [e for j, e in enumerate(body) if j not in out]
        if _symbols(others) & {s for j in out for s in (self.current[j], self.previous[j])}:
            return None
        return out

    def outputs(self, buffers, last, keep):
        """(j, stacked, last-used, the steps after the loop that are replaced): which block step
        reaches the rest of the trace, and how; None if more than one does, or another way."""
        stacked_by, replaced, ways = set(), {}, set()
        for index in range(self.stop, len(self.steps)):
            step = self.steps[index]
            used = step.expr.free_symbols & set(self.region)
            if not used:
                continue
            j = self.stack(step.expr)
            if j is not None:
                stacked_by.add(j)
                replaced[index] = step
                continue
            for s in used:
                j = self.reached(s, buffers, last)
                if j is None:
                    return None
                ways.add(j)
        for s in keep:
            if s in self.region:
                j = self.reached(s, buffers, last)
                if j is None:
                    return None
                ways.add(j)
        js = {abs(j) - 1 for j in ways} | stacked_by
        if len(js) != 1:
            return None
        j = js.pop()
        stacked = bool(stacked_by) or -(j + 1) in ways
        return j, stacked, (j + 1) in ways, replaced

    def reached(self, s, buffers, last) -> int | None:
        """How a symbol of the loop reaches a step after it: -(v + 1) for the last buffer of step
        v's values (all of them), v + 1 for the last block's step v; None: another way."""
        if s not in last:
            return None
        j = last[s]
        if j in buffers:
            return -(buffers[j] + 1)
        return j + 1

    def stack(self, expr) -> int | None:
        """j if expr stacks block step j of every block in order (a list appended to), else None."""
        if not isinstance(expr, Stack) or int(expr.args[-1]) not in (0, 1):
            return None
        arrays = expr.args[:-1]
        if len(arrays) != self.count or not all(a in self.region for a in arrays):
            return None
        j = self.region[arrays[0]][1]
        return j if list(arrays) == [self.step(k, j).symbol for k in range(self.count)] else None

    def write(self, body, start, buffers, out, stacked, last_used, replaced, keep):
        """The steps with the blocks replaced by one scan step (the loop named provisionally: _c<j>
        the body's steps, _p<j> the states, _s<i> the sequences; `symbolic.trace` names them)."""
        defined = {s.symbol: s for s in self.steps}
        sequences = {}  # the array before the loop -> the body's slice of it

        def sliced(e):
            if isinstance(e, GetItem) and len(e.index) >= 2 and e.index[1] == TIME:
                sequences.setdefault(e.args[0], sp.Symbol(f"_s{len(sequences)}"))
                return sequences[e.args[0]]
            if e.is_Atom or not e.args:
                return e
            args = tuple(sliced(a) for a in e.args)
            return e if args == e.args else e.func(*args)

        kept = [j for j in range(self.period) if j not in buffers]
        exprs = {j: sliced(body[j]) for j in kept}
        ends = {out} | {j for j in kept if any(self.previous[j] in e.free_symbols for e in exprs.values())}
        for j in list(kept):  # a step that only passes a value on (a slice, to a step function) is that value
            if exprs[j].is_Symbol and j not in ends:
                kept.remove(j)
                value = exprs.pop(j)
                exprs = {i: e.xreplace({self.current[j]: value}) for i, e in exprs.items()}
        used = _symbols(list(exprs.values()))
        if TIME in used or any(self.shapes[a][1] != self.count for a in sequences):
            return None
        carried = [j for j in kept if self.previous[j] in used]
        initial = {}
        for j in carried:
            init = start[self.previous[j]]
            if self.shapes.get(init) != self.shapes[self.step(0, j).symbol]:
                return None
            zeros = (init not in keep and init in defined and isinstance(defined[init].expr, Full)  # a zero state
                     and defined[init].expr.args[0].is_zero)  # made in the loop, unless asked for by name
            initial[j] = None if zeros and sequences and self.shapes[init][0] == self.shapes[
                next(iter(sequences))][0] else init
        inside = set(self.current) | set(self.previous) | set(sequences.values())
        parameters = sorted(used - inside, key=sp.default_sort_key)
        outer = list(sequences) + [i for i in initial.values() if i is not None] + parameters
        if not sequences or len(set(outer)) != len(outer):
            return None
        arrays = [Array(s.name, self._shape(a)[:1] + self._shape(a)[2:], self.dtypes[a], self._role(a), "sequence")
                  for a, s in sequences.items()]
        arrays += [Array(self.previous[j].name, self._shape(self.step(0, j).symbol), self.step(0, j).dtype,
                         self._role(self.step(0, j).symbol), "state") for j in carried]
        arrays += [Array(p.name, self._shape(p), self.dtypes[p], self._role(p)) for p in parameters]
        steps = [replace(self.step(0, j), symbol=self.current[j], expr=exprs[j],
                         notes={"traced": tuple(self.step(k, j).symbol for k in range(self.count))}) for j in kept]
        program = Program(name="loop", arrays=tuple(arrays), steps=tuple(steps), output=self.current[out],
                          wrt=(), scalar=False)
        stored = {f"_c{j}": f"_k{j}" for j in kept}
        final = [self.step(self.count - 1, j).symbol for j in buffers if buffers[j] == out]
        names = [start[self.previous[j]] for j in buffers if buffers[j] == out] + final
        wanted = [s for s in [*final, *(s.symbol for s in replaced.values() if int(s.expr.args[-1]) == 1)]
                  if s in keep]
        if len(wanted) > 1:
            return None
        lasting = self.step(self.count - 1, out).symbol
        if stacked:
            symbol = (wanted or final or [s.symbol for s in replaced.values() if int(s.expr.args[-1]) == 1]
                      or [sp.Symbol(f"_scan{self.start}")])[0]
            names += [s.symbol for s in replaced.values()]
        else:
            symbol = lasting
            names = [lasting, self.step(0, out).symbol]
        stored.update({f"_c{out}": symbol.name} if stacked else {})
        loop = Loop(program, tuple((s.name, a.name) for a, s in sequences.items()),
                    tuple((f"_p{j}", f"_c{j}", initial[j].name if initial[j] is not None else None) for j in carried),
                    tuple(p.name for p in parameters), f"_c{out}", self.count, symbol.name, stored, "", not stacked)
        value = scan(loop)(*(sp.Symbol(name) for name in loop.arguments))
        shape = value.result_shape(lambda a: self._shape(a) if a in self.shapes else None)
        first = self.step(0, 0)
        new = [Step(symbol, value, shape, self.step(0, out).dtype, where=first.where, notes={"names": tuple(names)})]
        swap = {s: symbol for s in final if s != symbol}
        for index, step in replaced.items():
            if step.symbol != symbol and int(step.expr.args[-1]) == 1:
                swap[step.symbol] = symbol
        if stacked and last_used:
            index = (Slice(0, shape[0], 1, shape[0]), sp.Integer(self.count - 1))
            new.append(Step(lasting, GetItem(symbol, *index), self.step(0, out).shape, self.step(0, out).dtype,
                            where=first.where))
        after = []
        for index in range(self.stop, len(self.steps)):
            step = self.steps[index]
            if index in replaced:
                if int(step.expr.args[-1]) == 0:  # np.array(hs): (T, N, ...), the scan's axes swapped
                    axes = (1, 0, *range(2, len(shape)))
                    after.append(replace(step, expr=Permute(symbol, *axes)))
                continue
            after.append(replace(step, expr=step.expr.xreplace(swap)) if step.expr.free_symbols & set(swap) else step)
        return self.steps[:self.start] + new + after

    def _shape(self, symbol) -> tuple:
        return tuple(sp.Integer(d) for d in self.shapes[symbol])

    def _role(self, symbol) -> str:
        return "differentiated" if str(self.dtypes[symbol]).startswith("float") else "data"


# ---------------------------------------------------------------------------------------------
# Naming a rolled loop


def named(loop: Loop, name: str, outer: dict, users: dict, aliases: dict, taken: set) -> Loop:
    """The rolled `loop` under its final names: `name` the scan step's, `outer` the final name of
    each array it takes (by provisional name), `users` and `aliases` the learner's local names of
    the traced steps (the first, and all), `taken` the names in use outside it. A body step takes
    its learner's name at t (`next_h_t`), the state before it the other name the learner gave it
    (`prev_h`, else `next_h_prev`), a sequence's slice `x_t`; a step of no name used once is
    written into its user, as in the rest of the trace."""
    from .names import reserved
    taken = set(taken) | {name, f"{name}_t"}  # dL_d<name>_t: the slice of the gradient that reaches the loop

    def fresh(base, suffix="", also=()):
        """base<suffix>, else base2<suffix>, ...: free, and so are base<k><s> for s in `also`
        (a state's h_t needs h_next free: dL_dh_next is the gradient it carries)."""
        k = 1
        while True:
            stem = f"{base}{k if k > 1 else ''}"
            candidate = stem + suffix
            if (candidate not in taken and not (candidate != "t" and reserved(candidate, steps=False))
                    and candidate != "t" and candidate.isidentifier() and not {stem + a for a in also} & taken):
                taken.add(candidate)
                taken.update(stem + a for a in also)
                return candidate
            k += 1

    body = loop.body
    rename = dict(outer)
    for inner, array in loop.sequences:
        rename[inner] = fresh(outer[array], "_t")
    uses = {}
    for step in body.steps:
        for s in step.expr.free_symbols:
            uses[s] = uses.get(s, 0) + 1
    carried = {new for _, new, _ in loop.carried}
    inline, kept = {}, []
    for step in body.steps:
        expr = step.expr.xreplace(inline)
        user = users.get(step.notes["traced"][0])
        if (user is None and uses.get(step.symbol, 0) == 1 and step.name not in carried
                and step.name != loop.output and not step.data):
            inline[step.symbol] = expr
            continue
        rename[step.name] = fresh(base_name(user) if user else "v", "_t", ("_next",) if step.name in carried else ())
        kept.append(replace(step, expr=expr))
    for prev, new, _ in loop.carried:
        raw = body.step(new).notes["traced"][0]
        other = [a for a in aliases.get(raw, ()) if a != users.get(raw) and a.isidentifier()]
        rename[prev] = fresh(other[0]) if other else fresh(rename[new].removesuffix("_t"), "_prev")
    rename[loop.name] = name
    stored = {}
    for step in kept:
        if step.name == loop.output and not loop.last:
            stored[rename[step.name]] = name
        else:
            stored[rename[step.name]] = fresh(rename[step.name].removesuffix("_t"))
    symbols = {sp.Symbol(a): sp.Symbol(b) for a, b in rename.items()}
    arrays = tuple(replace(a, name=rename.get(a.name, a.name)) for a in body.arrays)
    steps = [replace(s, symbol=symbols[s.symbol], expr=s.expr.xreplace(symbols)) for s in kept]
    shapes = {sp.Symbol(a.name): tuple(sp.Integer(d) for d in a.shape) for a in arrays}
    shapes.update({s.symbol: tuple(sp.Integer(d) for d in s.shape) for s in steps})
    ends = {symbols[sp.Symbol(new)] for _, new, _ in loop.carried} | {symbols[body.output]}
    steps = tuple(replace(s, rule=f"line {s.where[1]}" if s.where[1] else "")
                  for s in rewrite_steps(steps, shapes, ends))  # the idioms, as in the rest of the trace
    program = replace(body, arrays=arrays, steps=steps, output=symbols[body.output])
    where = kept[0].where if kept else ("", 0)
    words = (f"the loop at {os.path.basename(where[0])}:{where[1]}, " if where[1] else "the loop, ") + \
        f"over t = 1, ..., {loop.length}"
    return Loop(program, tuple((rename[i], rename[o]) for i, o in loop.sequences),
                tuple((rename[p], rename[n], rename[i] if i else None) for p, n, i in loop.carried),
                tuple(rename[p] for p in loop.parameters), rename[loop.output], loop.length, name, stored, words,
                loop.last)


def base_name(name: str) -> str:
    """A learner's name without the suffix the tracer gives a second value of it (next_h_2)."""
    return re.sub(r"_\d+$", "", name)
