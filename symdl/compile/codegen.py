"""Compile a Derivation to one NumPy function that returns the value and the gradient.

The forward steps, then the adjoint steps, go through common-subexpression elimination and
are printed by SymPy's NumPy printer, which asks each op for its own `_numpycode`.
"""

from __future__ import annotations

import keyword
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import sympy
from sympy import Basic, Identity, MatMul, MatrixSymbol, OneMatrix, S, Symbol, Transpose
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction as _Elementwise
from sympy.printing.numpy import SciPyPrinter
from sympy.printing.precedence import PRECEDENCE

from symdl.compile.passes import (
    folded_spreads,
    fused_sums,
    inlined_row_products,
    released_after,
    stacked_pads,
)
from symdl.core.derivation import Derivation
from symdl.core.matrices import ENTRY, as_elementwise
from symdl.ops.runtime import ShapeError


class SymdlNumPyPrinter(SciPyPrinter):
    """NumPy (and SciPy) printer whose output broadcasts over a batch and follows symdl's kink convention."""

    def _print_Heaviside(self, expr):
        arg = self._print(expr.args[0])
        at_zero = expr.pargs[1] if len(expr.pargs) > 1 else S.Half
        if at_zero in (0, 1):  # a comparison, as a person writes ReLU'; faster than heaviside
            # sign(max(x, 0)) is 1[x > 0] in x's own dtype (float32 stays float32)
            sign, maximum = self._module_format("numpy.sign"), self._module_format("numpy.maximum")
            if at_zero == 0:
                return f"{sign}({maximum}({arg}, 0))"
            return f"(1 - {sign}({maximum}(-({arg}), 0)))"
        return f"{self._module_format('numpy.heaviside')}({arg}, {self._print(at_zero)})"

    def _print_ITE(self, expr):
        # a condition that chooses between conditions (SymPy writes one when a Piecewise's
        # condition holds a Piecewise): a truth value, not select's float with a nan default
        cond, then, otherwise = (self._print(a) for a in expr.args)
        return f"{self._module_format('numpy.where')}({cond}, {then}, {otherwise})"

    def _print_DiracDelta(self, expr):
        # the derivative of a step (Heaviside') is 0 wherever it is a number, 0 at the kink
        # by symdl's convention; same shape as the argument
        return f"{self._module_format('numpy.zeros_like')}({self._print(expr.args[0])})"

    # Matrix expressions: products with @, elementwise operations broadcast, and the all-ones
    # matrix never built: b 1ᵀ broadcasts b, X 1 sums the rows of X.
    def _print_MatMul(self, expr):
        coeff, factors = expr.as_coeff_matrices()
        if len(factors) == 2 and isinstance(factors[1], OneMatrix) and factors[1].shape[1] == 1:
            dots = self.row_sum(factors[0], fused_only=True)
            if dots is not None:
                return (
                    dots if coeff == 1 else f"{self.parenthesize(coeff, PRECEDENCE['Mul'])}*{dots}"
                )
        code, shape = None, None
        for f in factors:
            if isinstance(f, Identity):
                continue
            if isinstance(f, OneMatrix):
                if code is None:
                    code, shape = "ONES", f.shape
                    continue
                summed = code if shape[1] == 1 else self._sum(code, 1)
                shape = (shape[0], f.shape[1])
                code = summed if shape[1] == 1 else self._broadcast(summed, shape)
                continue
            printed = self.parenthesize(f, PRECEDENCE["Mul"], strict=False)
            if code == "ONES":
                summed = printed if f.shape[0] == 1 else self._sum(printed, 0)
                code = summed if shape[0] == 1 else self._broadcast(summed, (shape[0], f.shape[1]))
            elif code is None:
                code = printed
            else:
                code = f"{code} @ {printed}"
            shape = (shape[0] if shape else f.shape[0], f.shape[1])
        if code == "ONES":
            code = f"{self._module_format('numpy.ones')}({self._print(shape)})"
        if code is None:
            code = f"{self._module_format('numpy.eye')}({self._print(expr.shape[0])})"
        if coeff == 1:
            return code
        c = self.parenthesize(coeff, PRECEDENCE["Mul"])
        if len(factors) == 1 and isinstance(factors[0], sympy.HadamardProduct):
            # c (u 1ᵀ ∘ B): c scales the column u, not the full-size product
            folded = self._scaled_hadamard(coeff, factors[0])
            if folded is not None:
                return folded
        broadcast = self._module_format("numpy.broadcast_to") + "("
        if code.startswith(broadcast) and code.endswith(")"):  # c (u 1ᵀ): a view of c u
            inner, _, shape_code = code[len(broadcast) : -1].rpartition(", (")
            return f"{broadcast}{c}*{inner}, ({shape_code})"
        return f"{c}*({code})"

    def _scaled_hadamard(self, coeff, product) -> str | None:
        """c (u 1ᵀ ∘ B ∘ ...) with c multiplied into the broadcast column (or row) u; None if
        no factor is a broadcast."""
        args = list(product.args)
        for i, a in enumerate(args):
            if isinstance(a, MatMul) and self._broadcast_operand(a) is not None:
                a_coeff, mats = a.as_coeff_matrices()
                args[i] = MatMul(coeff * a_coeff, *mats)
                return self._print_HadamardProduct(sympy.HadamardProduct(*args))
        return None

    def row_sum(self, node, fused_only: bool = False) -> str | None:
        """Code for the row sums of the matrix `node`, as a column: of an entrywise product of
        two full-size matrices (or a square), one dot product per row, with no full-size
        temporary (`row_dots`); else `.sum(axis=1)`, or None if `fused_only`."""
        pair = None
        if isinstance(node, sympy.HadamardPower) and node.exp == 2:
            pair = (node.base, node.base)
        elif isinstance(node, sympy.HadamardProduct) and len(node.args) == 2:
            a, b = node.args
            if all(
                self._broadcast_operand(f) is None
                and not _is_indicator(f)
                and f.shape == node.shape
                for f in (a, b)
            ):
                pair = (a, b)
        if pair is not None and node.shape[1] != 1:
            dots = self._module_format("symdl.ops.runtime.row_dots")
            return f"{dots}({self._print(pair[0])}, {self._print(pair[1])})"
        return None if fused_only else self._sum(self._print(node), 1)

    def _sum(self, code, axis):
        # the ufunc's reduce, what ndarray.sum calls (the same bits) without its Python layer:
        # a small network's step makes a few such sums, 0.3-0.5 µs each
        return f"{self._module_format('numpy.add')}.reduce({code}, axis={axis}, keepdims=True)"

    def _broadcast(self, code, shape):
        return f"{self._module_format('numpy.broadcast_to')}({code}, {self._print(shape)})"

    def _elementwise_operand(self, arg):
        """A term or factor of an elementwise operation; c·1 (the all-ones matrix) is just c."""
        coeff, mats = arg.as_coeff_matrices() if isinstance(arg, MatMul) else (S.One, [arg])
        if len(mats) == 1 and isinstance(mats[0], OneMatrix):
            return f"({self._print(coeff)})"
        return f"({self._print(arg)})"

    def _broadcast_operand(self, arg) -> str | None:
        """Code for the column c of a term c 1ᵀ (or the row r of 1 r), which NumPy broadcasts
        against a full-size operand without broadcast_to; None for other terms."""
        if not isinstance(arg, MatMul):
            return None
        coeff, mats = arg.as_coeff_matrices()
        if len(mats) < 2:
            return None
        if isinstance(mats[-1], OneMatrix) and mats[-1].shape[0] == 1:
            rest = MatMul(coeff, *mats[:-1]) if coeff != 1 or len(mats) > 2 else mats[0]
            return f"({self._print(rest)})" if rest.shape[1] == 1 else None
        if isinstance(mats[0], OneMatrix) and mats[0].shape[1] == 1:
            rest = MatMul(coeff, *mats[1:]) if coeff != 1 or len(mats) > 2 else mats[1]
            return f"({self._print(rest)})" if rest.shape[0] == 1 else None
        return None

    def _elementwise_operands(self, args) -> list[str]:
        compact = [self._broadcast_operand(a) for a in args]
        if all(c is not None for c in compact):  # nothing full-size to broadcast against
            compact[0] = None
        return [
            c if c is not None else self._elementwise_operand(a)
            for a, c in zip(args, compact, strict=True)
        ]

    def _print_MatAdd(self, expr):
        # a term -c·M is subtracted: Z - Y, not Z + (-1)*Y, one array operation fewer
        terms, signs = [], []
        for term in expr.args:
            coeff, mats = term.as_coeff_matrices() if isinstance(term, MatMul) else (S.One, [term])
            negative = coeff.is_number and coeff.is_extended_negative
            terms.append(MatMul(-coeff, *mats).doit(deep=False) if negative else term)
            signs.append(" - " if negative else " + ")
        if signs[0] == " - " and " + " in signs:  # start with a positive term
            first = signs.index(" + ")
            terms.insert(0, terms.pop(first))
            signs.insert(0, signs.pop(first))
        operands = self._elementwise_operands(terms)
        code = ("-" if signs[0] == " - " else "") + operands[0]
        code += "".join(
            sign + operand for sign, operand in zip(signs[1:], operands[1:], strict=True)
        )
        return f"({code})"

    def _print_HadamardProduct(self, expr):
        operands = self._elementwise_operands(expr.args)
        # a factor 1[x > 0] (ReLU') beside a numeric factor: the comparison itself, one pass
        # instead of sign(max(x, 0)); bool times the other factor keeps that factor's dtype
        numeric = [not _is_indicator(a) for a in expr.args]
        if any(numeric):
            operands = [
                o if keep else f"(({self._print(a.expr)}) > 0)"
                for a, o, keep in zip(expr.args, operands, numeric, strict=True)
            ]
        return "(" + "*".join(operands) + ")"

    def _print_HadamardPower(self, expr):
        base, exp = expr.args
        return f"({self._print(base)})**({self._print(exp)})"

    # constant matrices of any size, symbolic sizes included (they are parameters of the code)
    def _print_Identity(self, expr):
        return f"{self._module_format('numpy.eye')}({self._print(expr.rows)})"

    def _print_OneMatrix(self, expr):
        return f"{self._module_format('numpy.ones')}({self._print(expr.shape)})"

    def _print_ZeroMatrix(self, expr):
        return f"{self._module_format('numpy.zeros')}({self._print(expr.shape)})"

    def _print_Determinant(self, expr):
        return f"{self._module_format('numpy.linalg.det')}({self._print(expr.arg)})"

    def _print_Trace(self, expr):
        arg = expr.arg
        if isinstance(arg, MatMul):  # tr(AᵀB) = sum(A ∘ B): no n x n product
            coeff, mats = arg.as_coeff_matrices()
            if len(mats) == 2 and isinstance(mats[0], Transpose):
                a, b = self._print(mats[0].arg), self._print(mats[1])
                return f"{self.parenthesize(coeff, PRECEDENCE['Mul'])}*(({a})*({b})).sum()"
        return f"{self._module_format('numpy.trace')}({self._print(arg)})"

    def _print_Transpose(self, expr):
        return f"({self._print(expr.arg)}).T"

    def _print_ElementwiseApplyFunction(self, expr):
        marker = Symbol("_symdl_entry_")
        body = expr.function.expr.xreplace({expr.function.variables[0]: marker})
        shared, (body,) = sympy.cse([body], symbols=self._temporaries(), order="none")
        if not shared:
            return f"({self._print(body).replace('_symdl_entry_', '(' + self._print(expr.expr) + ')')})"
        # a subexpression used more than once (tanh(softplus(Z)) in mish') computed once:
        # (e := Z, t := f(e), g(e, t))[-1]
        entry = next(self._temporaries())
        parts = [f"({self._print(entry)} := {self._print(expr.expr)})"]
        parts += [
            f"({self._print(t)} := {self._print(e.xreplace({marker: entry}))})" for t, e in shared
        ]
        parts.append(self._print(body.xreplace({marker: entry})))
        return f"({', '.join(parts)})[-1]"

    def _temporaries(self):
        """Fresh names for values inside one elementwise function (_e1, _e2, ...)."""
        while True:
            self._count = getattr(self, "_count", 0) + 1
            yield Symbol(f"_e{self._count}")

    def _print_MatrixElement(self, expr):
        return f"({self._print(expr.parent)})[{self._print(expr.i)}, {self._print(expr.j)}]"

    # float32 stays float32: NumPy (NEP 50) lets a Python float take an array's dtype, but a
    # NumPy float64 scalar such as numpy.sqrt(2) or an array of constants upcasts to float64
    def _print_Pow(self, expr, rational=False):
        if expr.is_number and not expr.is_Rational and expr.is_real:
            return repr(float(expr))
        return super()._print_Pow(expr, rational=rational)

    def _print_Piecewise(self, expr):
        code = super()._print_Piecewise(expr)
        if not all(value.is_number for value, _ in expr.args):
            return code
        # constant pieces (LeakyReLU's slope 1 or α) come out float64: take the dtype of what
        # the conditions compare
        relations = (c for _, c in expr.args if isinstance(c, sympy.core.relational.Relational))
        operand = next((c.lhs for c in relations), None)
        if operand is None:
            return code
        np_ = self._module_format("numpy")
        dtype = f"{np_}.result_type({np_}.asarray({self._print(operand)}), 1.0)"
        return f"{np_}.asarray({code}, dtype={dtype})"

    def _print_Max(self, expr):
        return self._nested("numpy.maximum", expr.args)

    def _print_Min(self, expr):
        return self._nested("numpy.minimum", expr.args)

    def _nested(self, func, args):
        code = self._print(args[0])
        for arg in args[1:]:
            code = f"{self._module_format(func)}({code}, {self._print(arg)})"
        return code


def _is_indicator(node) -> bool:
    """1[x > 0] applied entry by entry (ReLU's derivative, 0 at the kink)."""
    return getattr(node, "is_indicator", False) is True


def inline_broadcasts(assignments: list[Assignment], keep: set) -> list[Assignment]:
    """A step that only spreads a column over the batch (v̄ = c u 1ᵀ, the adjoint of a mean)
    written into the steps that read it, where it prints as NumPy broadcasting: no full-size
    array is built for it. Steps in `keep` (returned values) stay."""
    spread: dict = {}
    for a in assignments:  # in order, so a spread of a spread is written out whole
        if a.target not in keep and isinstance(a.target, MatrixSymbol) and _is_spread(a.rhs):
            spread[a.target] = a.rhs.xreplace(spread) if spread else a.rhs
    if not spread:
        return assignments
    return [
        Assignment(
            a.target, a.rhs.xreplace(spread) if a.rhs.free_symbols & spread.keys() else a.rhs
        )
        for a in assignments
        if a.target not in spread
    ]


def _is_spread(rhs) -> bool:
    """c u 1ᵀ with u a column (or c 1 r with r a row): a broadcast, nothing computed."""
    if not isinstance(rhs, MatMul):
        return False
    _, mats = rhs.as_coeff_matrices()
    if len(mats) != 2:
        return False
    (u, ones), (ones_, r) = mats, mats
    column = isinstance(ones, OneMatrix) and ones.shape[0] == 1 and u.shape[1] == 1
    row = isinstance(ones_, OneMatrix) and ones_.shape[1] == 1 and r.shape[0] == 1
    plain = (MatrixSymbol, Transpose)
    return (column and isinstance(u, plain)) or (row and isinstance(r, plain))


def split_elementwise(assignments: list[Assignment]) -> list[Assignment]:
    """Each elementwise function of a matrix written as its parts, one function application
    per elementwise node (mish(Z) as Z ∘ tanh(softplus(Z)), tanh(softplus(Z)) as tanh of
    softplus(Z)): a part that another step computes too, forward or backward, is then one
    matrix subexpression that `eliminate_common_matrices` computes once. NumPy makes one array
    per function application either way."""
    memo: dict[Basic, Basic] = {}
    out = []
    for a in assignments:
        nodes = [n for n in sympy.preorder_traversal(a.rhs) if isinstance(n, _Elementwise)]
        if not nodes:
            out.append(a)
            continue
        swaps = {n: _split(n, memo) for n in nodes}
        out.append(Assignment(a.target, a.rhs.xreplace(swaps)))
    return out


def _split(node: Basic, memo: dict) -> Basic:
    """`node` (any matrix expression) with every elementwise function in it split in parts."""
    if node not in memo:
        if isinstance(node, _Elementwise):
            body = node.function.expr.xreplace({node.function.variables[0]: ENTRY})
            memo[node] = as_elementwise(body, _split(node.expr, memo), nested=True)
        elif node.is_Atom or not isinstance(node, sympy.MatrixExpr) or isinstance(node, _FREE):
            memo[node] = node
        else:
            args = [_split(a, memo) for a in node.args]
            memo[node] = node.func(*args) if args != list(node.args) else node
    return memo[node]


def numeric_form(expr: Basic) -> Basic:
    """`expr` with each op that says how it is best computed (`numeric_form`) rewritten so:
    scalar functions, then matrix ops (a convolution as a product with its window matrix,
    which common-subexpression elimination then shares with the kernel gradient)."""
    swaps = {f: f.numeric_form() for f in expr.atoms(sympy.Function) if hasattr(f, "numeric_form")}
    expr = expr.xreplace(swaps) if swaps else expr
    while True:  # again after a rewrite: an op may be nested in a rewritten one's arguments
        swaps = {
            m: m.numeric_form()
            for m in sympy.preorder_traversal(expr)
            if isinstance(m, sympy.MatrixExpr) and hasattr(m, "numeric_form")
        }
        if not swaps:
            return expr
        expr = expr.xreplace(swaps)


def python_names(symbols: Sequence[Symbol], reserved: set[str]) -> dict[Symbol, str]:
    """A distinct, valid, non-keyword Python identifier for each symbol (names are never code)."""
    names: dict[Symbol, str] = {}
    used = set(reserved)
    for s in symbols:
        base = re.sub(r"\W", "_", s.name) or "_"
        base = re.sub(r"_+", "_", base)
        if base[0].isdigit() or keyword.iskeyword(base) or base in reserved:
            base = "_" + base
        name, i = base, 1
        while name in used:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        names[s] = name
    return names


@dataclass(frozen=True)
class Assignment:
    target: Symbol
    rhs: Basic


def schedule(assignments: list[Assignment]) -> list[Assignment]:
    """Order assignments so each runs after the assignments it reads (stable otherwise)."""
    defined_by = {a.target: a for a in assignments}
    done: set[Symbol] = set()
    ordered: list[Assignment] = []
    for root in assignments:
        stack = [(root, False)]
        while stack:
            a, expanded = stack.pop()
            if a.target in done:
                continue
            if expanded:
                done.add(a.target)
                ordered.append(a)
                continue
            stack.append((a, True))
            for s in sorted(a.rhs.free_symbols, key=str, reverse=True):
                if s in defined_by and s not in done:
                    stack.append((defined_by[s], False))
    return ordered


def eliminate_common(assignments: list[Assignment]) -> list[Assignment]:
    """Common-subexpression elimination across all assignments, then a valid order."""
    temps = sympy.numbered_symbols("_t", real=True)
    replacements, reduced = sympy.cse([a.rhs for a in assignments], symbols=temps, order="none")
    out = [Assignment(t, e) for t, e in replacements]
    out += [Assignment(a.target, e) for a, e in zip(assignments, reduced, strict=True)]
    return schedule(out)


_FREE = (MatrixSymbol, OneMatrix, Identity, sympy.ZeroMatrix)


def _worth_a_temporary(node) -> bool:
    """A matrix subexpression that costs an array operation of its own: not a symbol, a
    transpose (a view), or a product with the all-ones matrix (printed as a broadcast)."""
    if not isinstance(node, sympy.MatrixExpr) or isinstance(node, _FREE):
        return False
    if isinstance(node, Transpose) and isinstance(node.arg, _FREE):
        return False
    if isinstance(node, MatMul) and any(isinstance(a, OneMatrix) for a in node.args):
        return _is_full_sum(node)
    return True


def _is_full_sum(node: MatMul) -> bool:
    """A sum of the rows or columns of a full-size matrix (an array pass, unlike a spread)."""
    return any(
        not isinstance(a, OneMatrix) and all(sympy.sympify(d) != 1 for d in a.shape)
        for a in node.args
        if isinstance(a, sympy.MatrixExpr)
    )


def eliminate_common_matrices(assignments: list[Assignment]) -> list[Assignment]:
    """Matrix subexpressions that occur more than once computed once (SymPy's cse would turn
    the all-ones matrices into arrays): a step's whole right-hand side found inside another is
    read from the step; other repeats go to temporaries m_k, the largest first, so a repeated
    product of repeated factors becomes one temporary, not several."""
    out = list(assignments)
    # the nodes of each right-hand side, kept up to date as steps are rewritten: a membership
    # test per pair of steps, not a walk (`has`) per pair, which was most of a compile
    inside = [set(sympy.preorder_traversal(a.rhs)) for a in out]
    for i in range(len(out)):
        step = out[i]  # as rewritten so far: earlier replacements are in its pattern too
        if not _worth_a_temporary(step.rhs):
            continue
        for j, b in enumerate(out):
            if j != i and step.rhs in inside[j]:
                out[j] = Assignment(b.target, b.rhs.xreplace({step.rhs: step.target}))
                inside[j] = set(sympy.preorder_traversal(out[j].rhs))

    def counted() -> Counter:
        return Counter(n for b in out for n in sympy.preorder_traversal(b.rhs))

    count = counted()
    candidates = {
        node
        for a in out
        for node in sympy.preorder_traversal(a.rhs)
        if node is not a.rhs and _worth_a_temporary(node)
    }
    for k, node in enumerate(sorted(candidates, key=lambda n: (-sympy.count_ops(n), str(n))), 1):
        if count[node] < 2:  # once, or only inside a larger repeat already computed
            continue
        temp = MatrixSymbol(f"m_{k}", *node.shape)
        out = [Assignment(b.target, b.rhs.xreplace({node: temp})) for b in out]
        out.append(Assignment(temp, node))
        count = counted()  # the repeats inside `node` now occur once, in its temporary
    return schedule(out)


def op_count(assignments: Sequence[Assignment]) -> int:
    """Arithmetic and function operations in `assignments` (SymPy's count_ops)."""
    return sum(sympy.count_ops(a.rhs) for a in assignments)


class CompiledDerivation:
    """`f(*values)` or `f(**by_name)` or `f({symbol: value})` -> (value, gradient).

    Scalar derivations broadcast elementwise: a batch of inputs gives a batch of values and
    per-example gradients. Matrix derivations take a 2-D array per MatrixSymbol; symbolic
    dimensions (a batch size N) are read from the arrays, so any batch size works.
    """

    def __init__(self, derivation: Derivation, cse: bool = True, extra: Sequence[Basic] = ()):
        self.derivation = derivation
        # a `wrt` symbol absent from f is still an input (its gradient is 0)
        absent = [w for w in dict.fromkeys(derivation.wrt) if w not in derivation.program.leaves]
        leaves = sorted((*derivation.program.leaves, *absent), key=str)
        self.matrices = [a for a in leaves if isinstance(a, MatrixSymbol)]
        self.dimensions = _dimensions(self.matrices)
        # a size also used as a number (1/N in a mean) is read from the arrays, not passed
        self.args = tuple(a for a in leaves if a not in self.dimensions)
        forward = [Assignment(s.name, numeric_form(s.rhs)) for s in derivation.forward]
        backward = [Assignment(s.name, numeric_form(s.rhs)) for s in derivation.backward]
        self.forward_op_count = op_count(forward)
        # SymPy's cse is for scalars: on matrix programs it would build the all-ones matrices
        # that the printer otherwise turns into broadcasts and sums.
        if self.matrices:
            kept = {derivation.output, *derivation.gradient_entries, *extra}
            backward = inline_broadcasts(backward, kept)
            steps = stacked_pads(folded_spreads(fused_sums(forward + backward), kept))
            steps = inlined_row_products(steps, kept)
        else:
            steps = forward + backward
        if not cse:
            body = steps
        elif self.matrices:
            body = eliminate_common_matrices(split_elementwise(steps))
        else:
            body = eliminate_common(steps)
        self.op_count = op_count(body)
        self.body = body  # the assignments, for the printers of other backends
        outputs = [derivation.output, *derivation.gradient_entries, *extra]
        self.source = _source(self.args, self.dimensions, body, outputs)
        self.function = _load(self.source)
        self._function = self.function

    def __call__(self, *values, **by_name):
        values, sizes = self._arguments(values, by_name)
        if self.matrices:
            value, *grads = self._function(*values, *self._bind_dimensions(values, sizes))
            return _scalar_value(value), self._shaped([np.asarray(g, dtype=float) for g in grads])
        value, *grads = self._function(*values)
        shape = np.broadcast_shapes(*(np.shape(v) for v in values), np.shape(value))
        grads = [np.broadcast_to(np.asarray(g, dtype=float), shape) for g in grads]
        return np.broadcast_to(np.asarray(value, dtype=float), shape)[()], self._shaped(grads)

    def _bind_dimensions(self, values, given: Mapping[str, object] = {}) -> list[int]:  # noqa: B006
        """The value of each symbolic dimension, read from the arrays; sizes that disagree
        (or disagree with a size given by name) are refused, naming both arrays."""
        bound: dict[Symbol, tuple[int, str]] = {}  # size, and which array says so
        for symbol, value in zip(self.args, values, strict=True):
            if isinstance(symbol, MatrixSymbol):
                _bind(symbol, value, bound)
        for dim in self.dimensions:
            if dim.name in given:
                size, source = bound[dim]
                if int(np.asarray(given[dim.name])) != size:
                    raise ShapeError(
                        f"{dim} = {given[dim.name]} was given, but {source} makes {dim} = {size}; "
                        f"{dim} is a size, read from the arrays: leave it out"
                    )
        return [bound[d][0] for d in self.dimensions]

    def _shaped(self, grads):
        wrt_shape = self.derivation.shape
        if wrt_shape in (list, tuple):
            return wrt_shape(g[()] for g in grads)
        result = wrt_shape(list(range(len(grads))))
        if isinstance(result, sympy.MatrixBase):
            return np.stack(grads).reshape(result.shape + grads[0].shape)
        return grads[0][()]

    def _arguments(self, values, by_name):
        if len(values) == 1 and isinstance(values[0], Mapping):
            by_name = {str(k): v for k, v in values[0].items()} | by_name
            values = ()
        if values and by_name:
            raise TypeError("pass the inputs either by position or by name, not both")
        if values:
            if len(values) != len(self.args):
                names = ", ".join(map(str, self.args))
                raise TypeError(f"expected {len(self.args)} inputs ({names}), got {len(values)}")
            return [np.asarray(v, dtype=float) for v in values], {}
        # a size may be given by name too (it is checked against the arrays)
        sizes = {d.name: by_name.pop(d.name) for d in self.dimensions if d.name in by_name}
        missing = [str(s) for s in self.args if str(s) not in by_name]
        extra = set(by_name) - {str(s) for s in self.args}
        if missing or extra:
            raise TypeError(f"inputs: missing {missing}, unexpected {sorted(extra)}")
        return [np.asarray(by_name[str(s)], dtype=float) for s in self.args], sizes


def _bind(symbol: MatrixSymbol, value: np.ndarray, bound: dict) -> None:
    """Read the symbolic sizes of `symbol` off the array `value`, checking them against the
    sizes already `bound` and the numeric ones."""
    if value.ndim != 2:
        raise ShapeError(
            f"{symbol} must be a 2-D array of shape {symbol.shape}; got shape {value.shape}"
        )
    for axis, (dim, size) in enumerate(zip(symbol.shape, value.shape, strict=True)):
        dim = sympy.sympify(dim)
        if dim.is_Integer and int(dim) != size:
            raise ShapeError(
                f"{symbol} has shape {symbol.shape}, so axis {axis} must have size "
                f"{dim}; got an array of shape {value.shape}"
            )
        if dim.is_Integer:
            continue
        if dim in bound and bound[dim][0] != size:
            raise ShapeError(
                f"{symbol} has shape {symbol.shape}, so axis {axis} must have size {dim} = "
                f"{bound[dim][0]} (from {bound[dim][1]}); got an array of shape {value.shape}"
            )
        bound.setdefault(dim, (size, f"{symbol}, shape {value.shape}"))


def _scalar_value(value):
    value = np.asarray(value, dtype=float)
    return float(value.reshape(())) if value.size == 1 else value


def _dimensions(matrices) -> list[Symbol]:
    """The symbolic dimensions of the matrix inputs, in order of first appearance."""
    dims: list[Symbol] = []
    for M in matrices:
        for d in M.shape:
            d = sympy.sympify(d)
            if isinstance(d, Symbol) and d not in dims:
                dims.append(d)
            elif not d.is_Integer and not isinstance(d, Symbol):
                raise ShapeError(f"{M}: dimension {d} is not a number or a symbol")
    return dims


def _source(args, dimensions, body: list[Assignment], outputs: list[Basic], printer=None) -> str:
    """The function's source; `printer` (a SymdlNumPyPrinter subclass) for another backend."""
    symbols = list(args) + list(dimensions) + [a.target for a in body]
    names = python_names(symbols, reserved={"numpy", "scipy", "jax", "torch", "value_and_grad"})
    if printer is None:
        printer = SymdlNumPyPrinter({"fully_qualified_modules": True, "inline": True})
    dims = {d: Symbol(names[d], integer=True, positive=True) for d in dimensions}
    rename = {s: _renamed(s, names[s], dims) for s in symbols if s not in dims} | dims
    params = [names[a] for a in args] + [names[d] for d in dimensions]
    lines = [f"def value_and_grad({', '.join(params)}):"]
    for a, released in released_after(body, outputs):
        lines.append(f"    {names[a.target]} = {printer.doprint(a.rhs.xreplace(rename))}")
        if released:
            lines.append(f"    del {', '.join(names[t] for t in released)}")
    returned = ", ".join(_printed_output(printer, o, rename) for o in outputs)
    lines.append(f"    return ({returned},)")
    modules = sorted(m for m in printer.module_imports if m != "numpy")
    header = ["import numpy", *(f"import {m}" for m in modules)]
    return "\n".join(header + ["", ""] + lines) + "\n"


def _renamed(symbol, name, dims):
    if isinstance(symbol, MatrixSymbol):
        return MatrixSymbol(name, *(sympy.sympify(d).xreplace(dims) for d in symbol.shape))
    return Symbol(name)


def _printed_output(printer, output, rename) -> str:
    output = sympy.sympify(output).xreplace(rename)
    if getattr(output, "is_ZeroMatrix", False):
        return f"{printer._module_format('numpy.zeros')}({printer._print(output.shape)})"
    return printer.doprint(output)


def compile_derivation(
    derivation: Derivation, cse: bool = True, extra: Sequence[Basic] = ()
) -> CompiledDerivation:
    """Compile `derivation` to NumPy (see CompiledDerivation).

    `extra` lists forward step names whose values the function also returns, after the
    gradient (a network's batch statistics, say). The generated function itself is
    `.function(*inputs, *dimensions)`, inputs in `.args` order, for hot loops.
    """
    return CompiledDerivation(derivation, cse=cse, extra=extra)


class CompiledProgram:
    """NumPy code for a program's outputs alone (a forward pass): `.function(*inputs, *dims)`."""

    def __init__(self, program):
        self.program = program
        self.dimensions = _dimensions([a for a in program.leaves if isinstance(a, MatrixSymbol)])
        self.args = tuple(a for a in program.leaves if a not in self.dimensions)
        body = [Assignment(s.name, numeric_form(s.rhs)) for s in program.steps]
        self.source = _source(self.args, self.dimensions, body, list(program.outputs))
        self.function = _load(self.source)


def _load(source: str):
    namespace: dict = {}
    exec(compile(source, "<symdl generated>", "exec"), namespace)  # noqa: S102 - our own generated source
    return namespace["value_and_grad"]
