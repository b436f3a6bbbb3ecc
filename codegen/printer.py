"""NumPy code for array expressions: a SymPy `NumPyPrinter` subclass.

Each whole-array operation of `symprop.symbolic.arrays` has a `_print_` method here; elementwise SymPy
functions print as NumPy ufuncs (`np.exp`, `np.tanh`, ...), with the numerically stable form
where one exists. The printer records the module-level helpers it used (`helpers`), as SymPy's
printers record their imports.
"""

from __future__ import annotations

import inspect

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from ..symbolic.arrays import BATCH, ArrayFunction, Conv2d, Conv2dWeightGrad, Matmul
from ..symbolic.notation import ArrayOrder
from ..symbolic.rules import ElementwiseBase
from . import runtime

def helper_source(name: str) -> str:
    """The source of a helper a generated module defines when its code uses it: a real function
    of `codegen.runtime`, copied in (a class with the module constants it reads)."""
    source = inspect.getsource(getattr(runtime, name))
    if name == "_Workspace":
        source = ("KEEP_WORKSPACES = True  # False: no buffers kept between calls (see _Workspace)\n"
                  "_SPARE = {}  # function name -> the buffers its last call left\n\n\n" + source)
    return source


class _Sigmoid(sp.Function):
    """1/(1 + exp(-u)), printed as `_sigmoid(u)`: no overflow warning for u < -709."""


class _Softplus(sp.Function):
    """log(1 + exp(u)), printed as `np.logaddexp(0, u)`: finite for any u."""


def _one_plus_exp(expr):
    """u when `expr` is 1 + exp(u), else None."""
    if expr.is_Add and len(expr.args) == 2 and 1 in expr.args:
        (other,) = set(expr.args) - {1}
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


class _Im2col(sp.Function):
    """The windows of an image batch copied into columns, `_im2col(x, kernel, stride, padding)`:
    computed once, shared by a convolution (`_conv2d`) and its weight gradient."""


class _PooledIm2col(_Im2col):
    """`_im2col(x, kernel, stride, padding, pooled=(h, w))`: the columns in the order of the max
    pooling that tiles the convolution (`codegen.pooled`)."""


class _PooledMax(sp.Function):
    """`_max_pool2d_pooled(a, shape)`: the max pooling of a convolution computed in pooling order."""


class _PooledMaxGrad(sp.Function):
    """`_max_pool2d_pooled_gradient(a, largest, delta)`: its gradient, in pooling order."""


class _ConvColumns(sp.Function):
    """A convolution from the columns of its input: `_conv2d(columns, W)`."""


class _WeightColumns(sp.Function):
    """A convolution's weight gradient from the columns of its input: `_conv2d_weight_gradient(columns, delta)`."""


def code_forms(expr: sp.Expr) -> sp.Expr:
    """`expr` as the code computes it: the stable forms (`stable_forms`), and each convolution and
    weight gradient through the columns of its input, a subexpression that common-subexpression
    elimination then computes once for both. Each rewrite runs only where what it rewrites occurs
    (one walk finds out): most lines have none, and a deep network has thousands of lines."""
    from ..symbolic.arrays import OneHot
    kinds = {type(e) for e in sp.preorder_traversal(expr)}

    def has(*classes):
        return any(issubclass(kind, classes) for kind in kinds)
    if has(sp.exp):
        expr = stable_forms(expr)
    if has(sp.Piecewise):
        expr = expr.replace(lambda e: e.is_Add, _masks_as_numbers)
    if has(sp.Piecewise, OneHot):
        expr = _negated_masks(expr)
    if has(Conv2d):
        expr = expr.replace(lambda e: isinstance(e, Conv2d),
                            lambda e: _ConvColumns(_Im2col(e.args[0], *e.args[2:]), e.args[1]))
    if has(Conv2dWeightGrad):  # (x, g, stride, padding, kernel)
        expr = expr.replace(lambda e: isinstance(e, Conv2dWeightGrad),
                            lambda e: _WeightColumns(_Im2col(e.args[0], e.args[4], e.args[2], e.args[3]), e.args[1]))
    return expr


def _is_step(expr) -> bool:
    """Piecewise((1, condition), (0, True)): a 0/1 mask, printed as the (boolean) condition."""
    return (isinstance(expr, sp.Piecewise) and len(expr.args) == 2 and expr.args[0].expr == 1
            and expr.args[1].expr == 0 and expr.args[1].cond is sp.true)


def _is_mask(expr) -> bool:
    """A factor printed as a boolean array: a one-hot of labels, a 0/1 step."""
    from ..symbolic.arrays import OneHot
    return isinstance(expr, OneHot) or _is_step(expr)


def _negated_masks(expr, term: bool = False):
    """-mask*x printed as -1.0*mask*x: Python negates first, and NumPy negates no boolean array. A
    term of a sum is left as it is (it prints as a subtraction, a - mask)."""
    if expr.is_Atom:
        return expr
    args = [_negated_masks(arg, term=expr.is_Add) for arg in expr.args]
    if expr.is_Mul and not term and args[0] == -1 and any(_is_mask(f) for f in args[1:]):
        return sp.Mul(sp.Float(-1.0), *args[1:], evaluate=False)
    return expr.func(*args) if args != list(expr.args) else expr


def _masks_as_numbers(add: sp.Add) -> sp.Add:
    """A sum with a mask as a term of its own (1 - mask, from min(a, b)): the mask as numbers,
    since NumPy does not subtract booleans."""
    def term(t):
        coeff, rest = t.as_coeff_Mul()
        if _is_step(rest):
            return sp.Piecewise((coeff, rest.args[0].cond), (0, True))
        return t
    return sp.Add(*(term(t) for t in add.args))


def stable_forms(expr: sp.Expr) -> sp.Expr:
    """`expr` with the logistic sigmoid and softplus marked, to be printed in their stable forms.

    Applied before common-subexpression elimination, which would otherwise name 1 + exp(-z)
    and leave np.log(t0) and 1/t0 behind.
    """
    expr = expr.replace(lambda e: isinstance(e, sp.log) and _one_plus_exp(e.args[0]) is not None,
                        lambda e: _Softplus(_one_plus_exp(e.args[0])))
    return expr.replace(lambda e: e.is_Pow and e.exp == -1 and _one_plus_exp(e.base) is not None,
                        lambda e: _Sigmoid(-_one_plus_exp(e.base)))


def _stepped(expr):
    """The array z of a 0/1 step [z > 0] (`_is_step`), None for anything else."""
    cond = expr.args[0].cond if _is_step(expr) else None
    return cond.lhs if cond is not None and cond.is_Relational and cond.lhs.is_Symbol else None


class GradientPrinter(ArrayOrder, NumPyPrinter):
    """Prints array expressions as the lines of careful hand-written NumPy backprop."""

    products = ArrayOrder.products + (_ConvColumns,)

    def __init__(self, layout: str = "row"):
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.helpers: set[str] = set()
        self.layout = layout  # in the row layout, A.T @ delta is a weight gradient
        self.placements: dict = {}  # symbol -> where its line computes into (`codegen.workspaces`)
        self._placing = None  # (the operation printed with out=, the buffer's code)
        self.floats: tuple[str, ...] = ()  # the float arguments of the function printed (its writer sets them)

    # -- a line, and its buffer (codegen.workspaces) ---------------------------------------------

    def assignment(self, symbol, expr) -> list[str]:
        """The statements of the line `symbol = expr`: one, or, placed in a buffer or in place
        (`self.placements`), the statements that compute it there."""
        from . import workspaces
        place = self.placements.get(symbol)
        name = symbol.name
        if isinstance(place, workspaces.InPlace) and isinstance(expr, ElementwiseBase):  # a1 = np.tanh(z1, out=z1)
            return [f"{name} = {self._placed(expr, place.operand.name)}"]
        if isinstance(place, workspaces.InPlace):
            rest = sp.Mul(*(f for f in expr.args if f != place.operand))
            return [f"{name} = np.multiply({place.operand.name}, {self.doprint(rest)}, out={place.operand.name})"]
        if isinstance(place, workspaces.Split):  # z1 = np.dot(x, W1); z1 += b1
            lines = [f"{name} = {self.doprint(place.first)}"]
            if expr.is_Mul:
                (rest,) = (arg for arg in expr.args if arg is not place.first)
                return lines + [f"{name} *= {self.doprint(rest)}"]
            terms = self._as_ordered_terms(expr)  # added one by one, in the plain line's order
            if place.first not in terms[:2]:  # the plan orders terms as the printer does: not expected
                return [f"{name} = {self.doprint(expr)}"]  # (a + b) + c is (b + a) + c bit for bit, not a + (b + c)
            for term in terms:
                if term is not place.first:
                    negative = term.could_extract_minus_sign()
                    lines.append(f"{name} {'-=' if negative else '+='} {self.doprint(-term if negative else term)}")
            return lines
        if place is None and _stepped(expr) is not None:  # a mask on a line of its own (used twice) is
            return [f"{name} = {self.in_dtype_of(self.doprint(expr), _stepped(expr))}"]  # summed: as floats
        if place is None:
            return [f"{name} = {self.doprint(expr)}"]
        dims = ", ".join(self.doprint(d) for d in place.shape)
        arrays, literal = place.dtype
        dtype = (f"{arrays[0]}.dtype" if len(arrays) == 1 and not literal
                 else f"np.result_type({', '.join(arrays + (('1.0',) if literal else ()))})")
        buffer = f"work.empty({name!r}, ({dims}), {dtype})"
        self.need("_Workspace")
        op = place.op
        lines = [f"{name} = {self._placed(op, buffer)}"]
        if op is not expr:  # the rest of a sum, added in place
            lines.append(f"{name} += {self.doprint(sp.Add(*(t for t in expr.args if t is not op)))}")
        return lines

    def _placed(self, op, out: str) -> str:
        """The code of the operation `op` computing into `out` (a buffer, or an operand's memory)."""
        self._placing = (stable_forms(op.explicit()) if isinstance(op, ElementwiseBase) else code_forms(op), out)
        try:
            return self.doprint(op)
        finally:
            self._placing = None

    def _out(self, expr) -> str:
        """", out=<buffer>" for the operation being placed in a buffer, else nothing."""
        return f", out={self._placing[1]}" if self._placing is not None and expr == self._placing[0] else ""

    def doprint(self, expr, assign_to=None):
        return super().doprint(code_forms(expr), assign_to)

    def _module_format(self, fqn, register=True):
        if fqn.startswith("numpy."):
            fqn = "np." + fqn[len("numpy."):]
        return super()._module_format(fqn, register)

    def parenthesize(self, item, level, strict=False):
        if isinstance(item, sp.Rational) and item >= 0 and "/" not in self._print(item):
            return self._print(item)  # a decimal literal needs no parentheses
        if isinstance(item, Matmul):
            return self._print(item)  # np.dot(...): a call
        return super().parenthesize(item, level, strict)

    def _method_target(self, expr):
        """`expr` as the object of a method call or attribute: parenthesized unless atomic."""
        text = self._print(expr)
        return text if expr.is_Symbol or isinstance(expr, ArrayFunction) else f"({text})"  # a call: np.dot(...)

    # -- loops over time (codegen.loops) -------------------------------------------------------

    @staticmethod
    def at_time(array: str, offset: str = "") -> str:
        """The slice of a sequence (N, T, ...) at step t (plus `offset`, " - 1")."""
        return f"{array}[:, t{offset}]"

    @staticmethod
    def backwards(length) -> str:
        """The steps of a reverse loop, T - 1 down to 0."""
        return f"reversed(range({length}))"

    # A step's values the reverse loop reads: a list of the step's own arrays, as one writes BPTT by
    # hand (cs231n's cache): nothing copied, and each step's array contiguous when read back.

    @staticmethod
    def kept(name: str, shape: str) -> str:
        """The statement before the forward loop that starts the values of a step over all steps
        (`shape`: their shape and dtype as code, for a backend that keeps them in an array)."""
        return f"{name} = []"

    @staticmethod
    def keep(name: str, value: str) -> str:
        """The statement in the forward loop that keeps `value`, the step's array at t."""
        return f"{name}.append({value})"

    @staticmethod
    def kept_at(name: str, offset: str = "") -> str:
        """A kept step's array at step t (plus `offset`, " - 1")."""
        return f"{name}[t{offset}]"

    @staticmethod
    def float_dtype(arrays: list) -> str:
        """The dtype of a loop's buffers from the float arrays that feed it: theirs (float32 in,
        float32 kept), float64 for integers."""
        if len(arrays) > 1:
            return f"np.result_type({', '.join(arrays)})"
        return f"np.result_type({arrays[0]}, 1.0)" if arrays else "float"

    def arguments_dtype(self) -> str:
        """The float dtype of the function's arguments as code: that of an array of numbers it
        computes (a constant gradient), as NumPy's promotion gives it for the arrays' own values."""
        return self.float_dtype(list(self.floats))

    # -- whole-array operations ----------------------------------------------------------------

    def _print__Sigmoid(self, expr):
        self.helpers.add("_sigmoid")
        return f"_sigmoid({self._print(expr.args[0])})"

    # -- images (N, C, H, W): the helpers of codegen.runtime ----------------------------------

    def need(self, name: str) -> None:
        """The runtime helper `name` is used: it and those it calls go into the module."""
        self.helpers.add(name)
        self.helpers.update(runtime.NEEDS.get(name, ()))

    def _helper(self, name, expr, *keywords):
        """`name(arrays..., keyword=setting, ...)`, the helper (and those it calls) recorded."""
        self.helpers.add(name)
        self.helpers.update(runtime.NEEDS.get(name, ()))
        arrays, settings = expr.split()
        words = [self._print(arg) for arg in arrays]
        words += [f"{keyword}={setting!r}" for keyword, setting in zip(keywords, settings)]
        return f"{name}({', '.join(words)}{self._out(expr)})"

    def _print__Im2col(self, expr):
        x, kernel, stride, padding = expr.args
        self.helpers.add("_im2col")
        self.helpers.update(runtime.NEEDS["_im2col"])
        settings = ", ".join(f"{name}={tuple(int(d) for d in value)!r}"
                             for name, value in zip(("kernel", "stride", "padding"), (kernel, stride, padding)))
        return f"_im2col({self._print(x)}, {settings}{self._out(expr)})"

    def _print__PooledIm2col(self, expr):
        x, kernel, stride, padding, pooled = expr.args
        self.need("_im2col")
        settings = ", ".join(f"{name}={tuple(int(d) for d in value)!r}" for name, value in
                             zip(("kernel", "stride", "padding", "pooled"), (kernel, stride, padding, pooled)))
        return f"_im2col({self._print(x)}, {settings}{self._out(expr)})"

    def _print__PooledMax(self, expr):
        a, shape = expr.args
        self.need("_max_pool2d_pooled")
        return f"_max_pool2d_pooled({self._print(a)}, shape={tuple(int(d) for d in shape)!r}{self._out(expr)})"

    def _print__PooledMaxGrad(self, expr):
        self.need("_max_pool2d_pooled_gradient")
        arrays = ", ".join(self._print(arg) for arg in expr.args)
        return f"_max_pool2d_pooled_gradient({arrays}{self._out(expr)})"

    def _print__ConvColumns(self, expr):
        self.helpers.add("_conv2d")
        return f"_conv2d({self._print(expr.args[0])}, {self._print(expr.args[1])}{self._out(expr)})"

    def _print__WeightColumns(self, expr):
        self.helpers.add("_conv2d_weight_gradient")
        return f"_conv2d_weight_gradient({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    # -- elementwise ---------------------------------------------------------------------------

    def _print_ElementwiseBase(self, expr):  # an activation: its formula, in the stable form
        return self._print(stable_forms(expr.explicit()))

    def _print_Relational(self, expr):
        rhs = "0" if expr.rhs == 0 else self._print(expr.rhs)
        return f"({self._print(expr.lhs)} {expr.rel_op} {rhs})"

    def _print_Mul(self, expr):
        text = super()._print_Mul(expr)
        masks = [f for f in expr.args if _stepped(f) is not None]
        if masks and all(not f.free_symbols - {BATCH} for f in expr.args if f not in masks):
            # a mask and numbers only, (margins > 0)/N: a boolean array divided is float64 whatever
            # the arrays are; in the dtype of the array the mask is of (float32 stays float32)
            return self.in_dtype_of(f"({text})", _stepped(masks[0]))
        return text

    def in_dtype_of(self, text: str, array) -> str:
        """`text`, a float64 array of numbers and a mask, in the float dtype of `array`."""
        return f"{text}.astype(np.result_type({self._print(array)}, 1.0))"

    def _print_Piecewise(self, expr):
        if len(expr.args) != 2 or expr.args[1].cond is not sp.true:
            raise NotImplementedError(f"cannot print {expr}")
        (then, cond), (otherwise, _) = expr.args
        if then == 1 and otherwise == 0:  # a step: the condition itself, as a 0/1 mask
            return self._print(cond)
        text = f"np.where({self._print(cond)}, {self._print(then)}, {self._print(otherwise)})"
        if then.is_Number and otherwise.is_Number and cond.lhs.is_Symbol:
            return self.in_dtype_of(text, cond.lhs)  # float32 stays float32, integers become float64
        return text

    def _print_Pow(self, expr, rational=False):
        base, exponent = expr.args
        if base.is_Number and exponent.is_Number and not exponent.is_Integer:  # sqrt(2): a Python float,
            return repr(float(expr))  # correctly rounded (a NumPy float64 scalar would make float32 arrays float64)
        if exponent.is_Integer and exponent < 0:  # 1/(1 + np.exp(-z)), not (...)**(-1.0)
            power = base if exponent == -1 else sp.Pow(base, -exponent, evaluate=False)
            return "1/" + self.parenthesize(power, PRECEDENCE["Mul"], strict=True)
        return super()._print_Pow(expr, rational=rational)

    def _print_Max(self, expr):
        return self._pairwise("np.maximum", expr.args, self._out(expr))

    def _print_tanh(self, expr):
        return f"np.tanh({self._print(expr.args[0])}{self._out(expr)})"

    def _print_Min(self, expr):
        return self._pairwise("np.minimum", expr.args)

    def _pairwise(self, function, args, out=""):
        """function(function(a, b), c) ..., `out` (", out=...") given to the outermost call."""
        args = sorted(args, key=lambda arg: arg.is_Number)  # np.maximum(z1, 0.0): array first
        text = self._print(args[0])
        for i, arg in enumerate(args[1:], 2):
            text = f"{function}({text}, {self._print(arg)}{out if i == len(args) else ''})"
        return text

    def _print__Softplus(self, expr):
        return f"np.logaddexp(0, {self._print(expr.args[0])})"

    def _print_Rational(self, expr):
        value = float(expr)
        if sp.Rational(repr(value)) == expr:  # a short decimal: 0.5, 0.01
            return repr(value)
        return f"{expr.p}/{expr.q}"

    def _print_Zero(self, expr):
        return "0.0"  # a float: np.maximum(z, 0.0) skips a cast

    def _print_Half(self, expr):
        return "0.5"
