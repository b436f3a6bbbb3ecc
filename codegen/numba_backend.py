"""The compiled backend, `symprop generate NET --backend numba`: the same program, compiled.

A compiled module has the NumPy module's API and checks (section 3 of the contract): each public
function checks its arguments in Python, then calls one function compiled by `numba.njit` that
runs every step of the derivation, with no Python between the steps, and returns the results
and whether they are finite (the look for NaN and inf, done where the results are made). The
steps are printed by `NumbaPrinter`, which differs from `GradientPrinter` only where Numba
compiles a subset of NumPy; its helpers are those of `codegen.runtime_numba`.

A module imported from its file keeps what Numba compiled in `__pycache__` beside it (`CACHE`),
so only the first process compiles; one compiled in memory (`codegen.files.compile_module`)
cannot. Numba compiles a function for the types of its first call (seconds for a dense network, up to a
minute or two for a CNN; once a process); the module computes in float64 (other float arrays are
converted).
"""

from __future__ import annotations

import inspect

from ..errors import UsageError
from ..symbolic.arrays import Matmul, Transposed, shape_of
from . import runtime_numba
from .printer import GradientPrinter

INDENT = "    "


class NumbaPrinter(GradientPrinter):
    """Prints array expressions as code Numba compiles (`numba.njit`, nopython mode).

    Each operation prints as for NumPy (`_numpycode`), except those below: a table of the
    operations that print otherwise, and of those the compiled backend does not support yet.
    """

    def __init__(self, layout: str = "row", shapes: dict | None = None):
        super().__init__(layout)
        self.printmethod = "_numbacode"  # none has it: each `_numpycode` is called by `_print_Basic` below
        self.shapes = shapes or {}  # symbol -> shape, for the number of axes of a product's operands
        self.learned = []  # the symbols `learn` added
        self.squares = {}  # a weight gradient's name -> the name of the sum of its squares

    def assignment(self, symbol, expr) -> list[str]:
        """A row-layout weight gradient `a.T @ delta` also gives the sum of its squares (the
        kernel's look for NaN and inf in the results then takes no second pass over it)."""
        if (self.layout == "row" and isinstance(expr, Matmul) and isinstance(expr.args[0], Transposed)
                and self._ndim(expr.args[0]) == 2 and self._ndim(expr.args[1]) == 2):
            self.helpers.add("_weight_gradient_squares")
            self.squares[symbol.name] = f"_squares_{symbol.name}"
            a, delta = expr.args[0].args[0], expr.args[1]
            return [f"{symbol.name}, _squares_{symbol.name} = _weight_gradient_squares({self.doprint(a)}, "
                    f"{self.doprint(delta)})"]
        return super().assignment(symbol, expr)

    def learn(self, lines: list) -> None:
        """Records the shapes of a function's lines, its common subexpressions (t0, t1, ...) among
        them, forgetting the previous function's (its t0 is another expression)."""
        for symbol in self.learned:
            del self.shapes[symbol]
        self.squares = {}
        self.learned = [symbol for symbol, _ in lines if symbol not in self.shapes]
        for symbol in self.learned:
            self.shapes[symbol] = None  # unknown until its line is reached
        for symbol, expr in lines:
            try:
                self.shapes[symbol] = shape_of(expr, self.shapes)
            except (KeyError, TypeError, ValueError, AttributeError):  # a loop (Scan), an operation with no shape rule
                pass

    def _ndim(self, expr):
        try:
            return len(shape_of(expr, self.shapes))
        except (KeyError, TypeError):  # a loop's common subexpression, or a line not known (None)
            return None

    def _print_Matmul(self, expr):  # Numba's np.dot takes vectors and matrices only
        left, right = expr.args
        if self._ndim(left) in (1, 2) and self._ndim(right) in (1, 2):
            return expr._numpycode(self)
        self.helpers.add("_dot")
        return f"_dot({self._print(left)}, {self._print(right)})"

    def _print_StepsOuter(self, expr):  # no np.tensordot in Numba
        self.helpers.add("_steps_outer")
        return f"_steps_outer({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_KeepDims(self, expr):  # Numba's np.expand_dims takes one axis
        text = self._print(expr.args[0])
        for axis in sorted(int(k) for k in expr.args[1:]):
            text = f"np.expand_dims({text}, {axis})"
        return text

    def _print_SumAxes(self, expr):  # no keepdims in Numba, nor a tuple of axes before 0.68: one axis at a time
        a, axes, keepdims = expr.args
        axes = tuple(int(k) for k in axes)
        if not keepdims:
            return self._method_target(a) + "".join(f".sum(axis={k})" for k in sorted(axes, reverse=True))
        helper, kept = {(0, 2, 3): ("_sum_channels", "(1, -1, 1, 1)"),
                        (1, 2, 3): ("_sum_samples", "(-1, 1, 1, 1)")}.get(axes, (None, None))
        if helper is None:
            raise Unsupported(f"a sum over the axes {axes} with keepdims")
        self.helpers.add(helper)
        return f"{helper}({self._print(a)}).reshape{kept}"

    def _print_BatchMatmul(self, expr):
        raise Unsupported("attention")
    def _print_Basic(self, expr):
        if hasattr(expr, "_numpycode"):
            return expr._numpycode(self)
        return super()._print_Basic(expr)

    def _print_Function(self, expr):
        if hasattr(expr, "_numpycode"):
            return self._print_Basic(expr)
        return super()._print_Function(expr)

    @staticmethod
    def at_time(array: str, offset: str = "") -> str:  # contiguous, for np.dot (a copy of one step)
        return f"np.ascontiguousarray({array}[:, t{offset}])"

    @staticmethod
    def backwards(length) -> str:  # no reversed() in Numba
        return f"range({length} - 1, -1, -1)"

    @staticmethod
    def kept(name: str, shape: str) -> str:  # arrays (N, T, ...), not lists, in Numba
        return f"{name} = np.empty({shape})"

    @staticmethod
    def keep(name: str, value: str) -> str:
        return f"{name}[:, t] = {value}"

    @classmethod
    def kept_at(cls, name: str, offset: str = "") -> str:
        return cls.at_time(name, offset)

    @staticmethod
    def float_dtype(arrays: list) -> str:  # the module computes in float64
        return "np.float64"

    def _print_RowSum(self, expr):  # no keepdims in Numba
        self.helpers.add("_row_sum")
        return f"_row_sum({self._print(expr.args[0])})"

    def _print_OneHot(self, expr):  # no np.eye(..., dtype=bool) in Numba
        labels, classes = expr.args
        self.helpers.add("_one_hot")
        return f"_one_hot({self._print(labels)}, {self._print(classes)})"

    def _print_Lookup(self, expr):  # one advanced index of one axis, in Numba
        self.helpers.add("_lookup")
        return f"_lookup({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_IndexAdd(self, expr):  # the gradient of a lookup: rows added at integer indices
        index = expr.index
        if len(index) != 1 or not index[0].is_Symbol:
            raise Unsupported("a scatter-add at this index")
        self.helpers.add("_index_add")
        return expr._numpycode(self)

    def in_dtype_of(self, text, array):  # no np.result_type in Numba: the module computes in float64
        return text


class Unsupported(UsageError):
    """An operation the compiled backend cannot print yet."""

    def __init__(self, what: str, network: str = ""):
        super().__init__(f"{network + ': ' if network else ''}--backend numba does not support {what} yet; "
                         "use --backend numpy (the default)")
        self.what = what


HELPERS = frozenset(name for name, value in vars(runtime_numba).items() if inspect.isfunction(value))


NEEDS = {"_row_sum": ("_rows",), "_softmax": ("_rows",), "_log_softmax": ("_rows",), "_dot": ("_rows",), "_steps_outer": ("_rows",),
         "_weight_gradient_squares": ("_sum_squares",)}


INTERNAL = frozenset({"_padded", "_windows", "_add_windows", "_window_max"})  # the NumPy image helpers' own


SUMMING = frozenset({"_sum_squares", "_weight_gradient_squares"})  # helpers whose sums run in any order


def helper_source(name: str) -> str:
    """A helper's source under `@numba.njit`: the compiled version where there is one."""
    if name not in HELPERS:
        raise Unsupported(f"the helper {name}")
    options = ", fastmath={'reassoc'}" if name in SUMMING else ""  # a vectorized sum: 8x faster
    return f"@numba.njit(cache=CACHE{options})\n" + inspect.getsource(getattr(runtime_numba, name))


def function(name: str, arguments: tuple, values: str, body: list[str], wanted: list, result: str,
             doc: str, signature: str, squares: dict) -> str:
    """A public function that checks its arguments and calls its compiled kernel `_<name>`, and
    the kernel: `body` (the printed steps, indented) returning whether the results are finite
    and the results; `squares`: result name -> a name the body gives the sum of its squares."""
    results = [symbol.name for symbol in wanted]
    total = " + ".join(squares.get(r, f"_sum_squares({r})") for r in results)
    kernel = [
        "@numba.njit(cache=CACHE)",
        f"def _{name}({', '.join(arguments)}):",
        *body,
        f"{INDENT}_total = {total}",
        f"{INDENT}return _total - _total == 0.0, {', '.join(results)}",
    ]
    public = [
        f"def {name}(*, {signature}, **unknown):",
        f'{INDENT}"""{doc}"""',
        f"{INDENT}if VALIDATE:",
        f"{INDENT * 2}{values} = _arrays({name!r}, ({values}), unknown)",
        f"{INDENT}_ok, {', '.join(results)} = _{name}({', '.join(arguments)})",
        f"{INDENT}if VALIDATE and not _ok:",
        f"{INDENT * 2}_converted({name!r}, ({values}), unknown)  # raises if an argument holds NaN or inf",
        f"{INDENT}return {result}",
    ]
    return "\n".join(public) + "\n\n\n" + "\n".join(kernel) + "\n"


def kernel_helpers(printer) -> list[str]:
    names = (printer.helpers - INTERNAL) | {"_sum_squares"}
    names |= {needed for name in names for needed in NEEDS.get(name, ())}
    return [helper_source(name) for name in sorted(names)]


def unsupported_program() -> Unsupported:
    return Unsupported("a traced function (a Program)")

