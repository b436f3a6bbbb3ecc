"""A loop over time: `Scan`, one step of a program whose body is itself a program, and its
gradient `ScanGrad`, the reverse loop (backpropagation through time).

A scan runs its body once per time step t = 0, ..., T-1. The body is an ordinary `Program` over
one step's arrays: a slice of each sequence (`x_t`, the outer x[:, t]), the state carried from
the step before (`h1_prev`: the initial state at t = 0, zeros unless an array gives it) and the
parameters (the outer arrays themselves). Its `output` step, stacked along axis 1, is the scan's
value (N, T, ...); each carried state's new value is the next step's previous one.

The derivative of a scan is a scan (as in JAX): the body is differentiated once, by the same
sweep as every program, into the gradients of one step given the gradient that reaches its
output from outside (`dL_da1_t`, the outer gradient's slice) and the one carried back from step
t+1 (`dL_dh1_next`); the reverse loop runs that from t = T-1 down to 0, summing the parameters'
gradients over the steps, writing the sequences' at t, and carrying the previous state's
gradient (`dL_dh1_prev`) to step t-1. The outer sweep sees a scan as an operation like any other:
its vector-Jacobian product for argument k is `ScanGrad` of part k, and a code printer computes
all the parts of one scan in one reverse loop (`codegen.loops`).

The values here (`Scan.numpy`, `ScanGrad.numpy`) run the loops step by step, on float arrays or
on arrays of exact SymPy numbers, so the element-level oracle unrolls the loop: it shares
nothing with the derived reverse loop but the body's forward operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import sympy as sp

from .arrays import ArrayFunction, Total, evaluate


@dataclass(frozen=True, eq=False)
class Loop:
    """A scan: its `body` (a `Program` of one time step) and how the body's arrays are bound."""

    body: object  # Program
    sequences: tuple  # (body array, outer array): the body's array is the outer one's slice [:, t]
    carried: tuple  # (body array of the previous state, body step of the new one, outer initial array or None: 0)
    parameters: tuple  # body arrays that are the outer arrays of the same name
    output: str  # the body step stacked along axis 1: the scan's value
    length: int  # T
    name: str  # the outer step the scan computes (a1)
    stored: dict = field(default_factory=dict)  # body step -> the outer name of its stacked values (N, T, ...)
    words: str = ""  # what the loop computes, in words
    last: bool = False  # the scan's value is the output's last step (N, ...), not all of them (N, T, ...)

    @property
    def arguments(self) -> tuple[str, ...]:
        """The outer arrays a scan takes, in order: the sequences, the initial states, the parameters."""
        return (tuple(outer for _, outer in self.sequences) + tuple(init for _, _, init in self.carried if init)
                + tuple(self.parameters))

    @property
    def locals(self) -> set:
        """The names its code defines besides the gradients: a step's slices and states, its
        steps, and their values over all the steps."""
        return ({a.name for a in self.body.arrays if a.name not in self.parameters}
                | {s.name for s in self.body.steps} | set(self.stored.values()))

    def stacked(self, step: str) -> str:
        """The outer name of a body step's values over all steps (N, T, ...)."""
        return self.stored[step]

    def upstream(self) -> dict:
        """The body's upstream arrays, by name: the outer gradient's slice (none when the scan's
        value is the last step: its gradient starts the carried one), then one per carried state
        (the gradient carried back from step t+1)."""
        out = {} if self.last else {f"dL_d{self.name}_t": self.output}
        out.update({next_name(new): new for _, new, _ in self.carried})
        return out

    @cached_property
    def operations(self) -> dict:
        """The loop's `Scan` ("scan") and its `ScanGrad` of each argument (by name): one class each."""
        out = {"scan": type(f"Scan_{self.name}", (Scan,), {"loop": self, "nargs": len(self.arguments)})}
        for part in self.arguments:
            out[part] = type(f"ScanGrad_{self.name}_{part}", (ScanGrad,),
                             {"loop": self, "part": part, "nargs": 1 + len(self.arguments)})
        return out

    @cached_property
    def backward(self) -> tuple:
        """(the backward and gradient steps of one time step, the gradient's symbol of each body
        array by name): the body's sweep, given the upstream arrays."""
        from .backward import gradient_steps
        from .program import Array, Program, Step
        body = self.body
        shapes = body.shapes()
        upstream = self.upstream()
        arrays = body.arrays + tuple(Array(name, shapes[sp.Symbol(of)], "float64", "upstream")
                                     for name, of in upstream.items())
        loss = sp.Add(*(Total(sp.Symbol(of) * sp.Symbol(name)) for name, of in upstream.items()))
        words = " and ".join(upstream)
        steps = body.steps + (Step(sp.Symbol("L_t"), loss, (), stage="loss",
                                   notes={"words": f"what reaches step t from the outside: {words}"}),)
        wrt = tuple(a.name for a in body.arrays if a.dtype.startswith("float"))
        program = Program(name=body.name, arrays=arrays, steps=steps, output=sp.Symbol("L_t"), wrt=wrt,
                          composites=body.composites)
        steps, _ = gradient_steps(program, body.composites)
        steps = [s for s in steps if s.stage in ("backward", "gradient") and s.expr != s.symbol]
        grads = {s.of.name: s.symbol for s in steps if s.stage == "gradient"}
        return tuple(steps), grads


    def reverse(self, parts) -> list:
        """The body's gradient steps a reverse loop computes for the outer arguments `parts`: those
        they and the carried states' gradients depend on, in order."""
        steps, grads = self.backward
        inner = {outer: inner for inner, outer in self.sequences} | {name: name for name in self.parameters}
        needed = {grads[inner[part]] for part in parts if part in inner}
        needed |= {grads[prev] for prev, _, _ in self.carried}
        for step in reversed(steps):
            if step.symbol in needed:
                needed |= step.expr.free_symbols
        return [s for s in steps if s.symbol in needed]


def next_name(state: str) -> str:
    """The gradient carried back to a state from the step after: dL_dh1_next for h1_t."""
    return f"dL_d{state.removesuffix('_t')}_next"


def _zeros_like(value):
    if np.asarray(value).dtype == object:
        return np.full(np.shape(value), sp.S.Zero, dtype=object)
    return np.zeros(np.shape(value))


def _run_forward(loop: Loop, values: dict) -> list[dict]:
    """Every step's environment (body symbol -> value), t = 0 to T-1; `values` the outer arrays by name."""
    body = loop.body
    n = np.shape(values[loop.sequences[0][1]])[0]
    states = {}
    for prev, _, init in loop.carried:
        like = np.asarray(values[loop.sequences[0][1]])
        shape = (n, *(int(d) for d in body.array(prev).shape[1:]))
        states[prev] = values[init] if init else _zeros_like(np.empty(shape, dtype=like.dtype))
    envs = []
    for t in range(loop.length):
        env = {sp.Symbol(name): values[name] for name in loop.parameters}
        env.update({sp.Symbol(inner): np.asarray(values[outer])[:, t] for inner, outer in loop.sequences})
        env.update({sp.Symbol(prev): state for prev, state in states.items()})
        for step in body.steps:
            env[step.symbol] = evaluate(step.expr, env)
        states = {prev: env[sp.Symbol(new)] for prev, new, _ in loop.carried}
        envs.append(env)
    return envs


class Scan(ArrayFunction):
    """The values of a loop's output step over t = 0..T-1, stacked along axis 1; one subclass per
    `Loop` (its `loop`), its arguments the outer arrays `loop.arguments`."""

    loop: Loop = None

    def result_shape(self, shape) -> tuple:
        body = self.loop.body
        out = body.shapes()[sp.Symbol(self.loop.output)]
        return out if self.loop.last else (out[0], sp.Integer(self.loop.length), *out[1:])

    def value(self, evaluate):
        values = {name: evaluate(arg) for name, arg in zip(self.loop.arguments, self.args)}
        envs = _run_forward(self.loop, values)
        if self.loop.last:
            return envs[-1][sp.Symbol(self.loop.output)]
        return np.stack([env[sp.Symbol(self.loop.output)] for env in envs], axis=1)

    def vjp(self, index, g, shape):
        return scan_grad(self.loop, self.loop.arguments[index])(g, *self.args)

    def _sympystr(self, printer):
        return f"scan_{self.loop.name}(" + ", ".join(printer._print(a) for a in self.args) + ")"

    def _latex(self, printer):
        return (r"\operatorname{scan}_{" + printer._print(sp.Symbol(self.loop.name)) + r"}\left("
                + ", ".join(printer._print(a) for a in self.args) + r"\right)")


class ScanGrad(ArrayFunction):
    """Part `part` (an outer argument's name) of a scan's gradient given g = dL/d(scan output):
    the reverse loop's result for that argument. Arguments: g, then the scan's."""

    loop: Loop = None
    part: str = ""
    named = True  # the gradients of a loop's arguments keep their names: the loop writes them

    def result_shape(self, shape) -> tuple:
        return shape(self.args[1 + self.loop.arguments.index(self.part)])

    def value(self, evaluate):
        g, *args = (evaluate(arg) for arg in self.args)
        return reverse_loop(self.loop, {name: v for name, v in zip(self.loop.arguments, args)}, g)[self.part]

    def _sympystr(self, printer):
        return f"bptt_{self.loop.name}[{self.part}](" + printer._print(self.args[0]) + ")"

    def _latex(self, printer):
        return (r"\operatorname{bptt}_{" + printer._print(sp.Symbol(self.loop.name)) + r"}\left["
                + printer._print(sp.Symbol(self.part)) + r"\right]\left(" + printer._print(self.args[0]) + r"\right)")


def reverse_loop(loop: Loop, values: dict, g) -> dict:
    """The gradient of every outer argument of the scan, by name, given g = dL/d(its output):
    the body's gradient steps run from t = T-1 down to 0."""
    envs = _run_forward(loop, values)
    steps, grads = loop.backward
    out = {}
    for inner, outer in loop.sequences:
        out[outer] = np.empty(np.shape(values[outer]), dtype=np.asarray(g).dtype)
    for name in loop.parameters:
        out[name] = _zeros_like(values[name])
    carry = {next_name(new): _zeros_like(envs[0][sp.Symbol(new)]) for _, new, _ in loop.carried}
    if loop.last:  # the gradient of the last output: carried back into the last step
        carry[next_name(loop.output)] = g
    for t in reversed(range(loop.length)):
        env = dict(envs[t])
        if not loop.last:
            env[sp.Symbol(f"dL_d{loop.name}_t")] = np.asarray(g)[:, t]
        env.update({sp.Symbol(name): value for name, value in carry.items()})
        for step in steps:
            env[step.symbol] = evaluate(step.expr, env)
        for inner, outer in loop.sequences:
            out[outer][:, t] = env[grads[inner]]
        for name in loop.parameters:
            out[name] = out[name] + env[grads[name]]
        carry = {next_name(new): env[grads[prev]] for prev, new, _ in loop.carried}
    for prev, new, init in loop.carried:
        if init:
            out[init] = carry[next_name(new)]
    return out


def scan(loop: Loop):
    """The `Scan` operation of `loop` (one class per loop, kept on it)."""
    return loop.operations["scan"]


def scan_grad(loop: Loop, part: str):
    """The `ScanGrad` operation of part `part` (an outer argument) of `loop`."""
    return loop.operations[part]
