"""Programs: a SymPy expression flattened into named steps in forward order.

Every function application, every shared subexpression and every output becomes one step
`name = rhs`; sums, products and powers used once stay inside the step that uses them, so a
neuron reads `z = w x + b`, `a = tanh(z)`, as in a textbook.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy
from sympy import Add, Basic, Lambda, Mul, Pow, Symbol, Tuple
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import Boolean
from sympy.matrices.expressions import (
    HadamardPower,
    HadamardProduct,
    Identity,
    MatAdd,
    MatMul,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
    Trace,
    Transpose,
    ZeroMatrix,
)
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from symdl.core.index_sums import matrix_form_of_sum
from symdl.core.matrices import elementwise, entry
from symdl.core.rules import UnsupportedMatrixOp, rule_for


class TextPrinter(StrPrinter):
    """SymPy's text form, with Hadamard products and powers as written by hand (A ∘ B) and
    the all-ones matrix as ones(m, n), not a bare 1."""

    def _print_OneMatrix(self, expr):
        return f"ones({self._print(expr.rows)}, {self._print(expr.cols)})"

    def _print_HadamardProduct(self, expr):
        return " ∘ ".join(self.parenthesize(a, PRECEDENCE["Mul"]) for a in expr.args)

    def _print_HadamardPower(self, expr):
        return f"{self.parenthesize(expr.base, PRECEDENCE['Pow'])}∘^({self._print(expr.exp)})"


class UnsupportedExpression(TypeError):
    """The object is not something symdl can differentiate (a Python function, a string, ...)."""


@dataclass(frozen=True)
class Step:
    """One forward assignment `name = rhs`; `rhs` refers to leaves and earlier step names."""

    name: Symbol
    rhs: Basic

    def __str__(self) -> str:
        return f"{self.name} = {TextPrinter().doprint(self.rhs)}"


# Sums, products and powers (of scalars or matrices) stay inside the step that uses them once.
_ALGEBRA = (Add, Mul, Pow, MatAdd, MatMul, Transpose, HadamardProduct, HadamardPower)
# A Piecewise's (expression, condition) pairs and its conditions are never steps of their own:
# a condition is a truth value, not a number, and SymPy rebuilds a Piecewise only from pairs.
_NEVER_STEPS = (ExprCondPair, Boolean, Tuple)
# Matrix leaves: symbols, and constants whose arguments are only their dimensions.
_MATRIX_LEAVES = (MatrixSymbol, Identity, ZeroMatrix, OneMatrix)


@dataclass(frozen=True)
class Program:
    """Named steps in forward order, the outputs they compute, and the leaves they read."""

    steps: tuple[Step, ...]
    outputs: tuple[Symbol, ...]
    leaves: tuple[Symbol, ...]
    sources: Mapping[Symbol, Basic] = field(
        default_factory=dict
    )  # name -> the user's subexpression

    def __str__(self) -> str:
        return "\n".join(str(step) for step in self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def definitions(self) -> dict[Symbol, Basic]:
        """Each step's name mapped to its right-hand side."""
        return {step.name: step.rhs for step in self.steps}

    def expressions(self, leaves: Mapping[Symbol, Basic] | None = None) -> dict[Symbol, Basic]:
        """Each step's name mapped to its expression in the leaves (steps substituted back).

        `leaves` optionally replaces leaves on the way; subexpressions stay shared objects.
        A step flattened from the user's expression maps to that very subexpression.
        """
        full: dict[Symbol, Basic] = dict(leaves or {})
        for step in self.steps:
            full[step.name] = self.sources.get(step.name) or step.rhs.xreplace(full)
        return full


def as_expr(obj, what: str = "expression") -> Basic:
    """`obj` as a SymPy object, refusing what symdl cannot differentiate, with a reason."""
    if isinstance(obj, Basic):
        return obj
    if isinstance(obj, bool) or not isinstance(obj, int | float):
        if callable(obj):
            name = getattr(obj, "__name__", type(obj).__name__)
            raise UnsupportedExpression(
                f"{what}: got the Python function {name!r}; symdl differentiates SymPy "
                f"expressions, so call it on symbols first, e.g. f(*sympy.symbols('x y'))"
            )
        raise UnsupportedExpression(
            f"{what}: expected a SymPy expression, got {type(obj).__name__} {obj!r:.60}; "
            "strings are accepted only by sd.verify (as claims), never evaluated"
        )
    return sympy.sympify(obj)


def build_program(
    outputs: Sequence[Basic],
    names: Mapping[Basic, str | Symbol] | None = None,
    output_names: Sequence[str] | None = None,
    leaves: Mapping[Symbol, Symbol] | None = None,
) -> Program:
    """Flatten `outputs` into a Program, one step per function application or shared node.

    Args:
        outputs: the expressions to compute.
        names: names for chosen subexpressions, e.g. ``{w*x + b: "z"}``.
        output_names: names for the outputs (default ``L`` for one output, ``f_1, ...``).
        leaves: symbols to replace on the way (symdl uses it to make every symbol real).

    Raises:
        ValueError: a name in `names` is already a symbol of the expression, or a named
            subexpression does not occur in it.
    """
    names = {canonical(as_expr(k, "names")): v for k, v in (names or {}).items()}
    outputs = [stable_forms(canonical(as_expr(out)), keep=names) for out in outputs]
    outputs = _expose(outputs, names)
    graph = _Graph(outputs)
    _require_rules(graph)
    taken = {str(s) for s in graph.symbols | graph.matrices | graph.dimensions}
    named = _check_names(names or {}, graph, taken)
    taken |= {str(s) for s in named.values()}
    out_names = _output_names(outputs, output_names, named, taken)
    leaves = dict(leaves or {})

    steps: list[Step] = []
    replaced: dict[Basic, Basic] = {}  # node -> its step name, or the node rebuilt on step names
    sources: dict[Symbol, Basic] = {}
    fresh = _fresh_names(taken)

    def visit(node: Basic, is_step: bool) -> Basic:
        if node in replaced:
            return replaced[node]
        # f(w x + b): z = w x + b, a = f(z)
        args_are_steps = not isinstance(node, _ALGEBRA + _NEVER_STEPS)
        new_args = [
            _replace_leaves(arg, leaves)
            if graph.inline(arg)
            else visit(arg, _is_step(arg, graph, named, args_are_steps))
            for arg in node.args
        ]
        rebuilt = node.func(*new_args) if new_args != list(node.args) else node
        if not is_step:
            replaced[node] = rebuilt
            return rebuilt
        name = _shaped_like(node, named.get(node) or out_names.get(node) or next(fresh))
        steps.append(Step(name, rebuilt))
        sources[name] = node
        replaced[node] = name
        return name

    result = []
    named_inline: dict[Basic, Basic] = {}  # an output that is a symbol or constant: its step
    for out in outputs:
        if not graph.inline(out):
            result.append(visit(out, True))
            continue
        if out not in named_inline:  # a bare symbol or constant: give it a step, once
            name = _shaped_like(out, out_names.get(out) or next(fresh))
            steps.append(Step(name, _replace_leaves(out, leaves)))
            named_inline[out] = name
        result.append(named_inline[out])
    symbols = sorted((leaves.get(s, s) for s in graph.symbols | graph.matrices), key=str)
    return Program(tuple(steps), tuple(result), tuple(symbols), sources)


def _require_rules(graph: _Graph) -> None:
    """Refuse, before any step is built, a matrix operation that has no derivative rule."""
    for node, constant in reversed(graph.constant.items()):  # the outermost first
        if isinstance(node, MatrixExpr) and not constant and not isinstance(node, _MATRIX_LEAVES):
            try:
                rule_for(node)
            except UnsupportedMatrixOp as error:
                raise UnsupportedExpression(str(error)) from None


class _Graph:
    """One walk over the DAG of `outputs`: how often each node is used, which symbols occur,
    and which nodes are constants (a tree walk per node would cost exponential time)."""

    def __init__(self, outputs: Iterable[Basic]):
        self.uses: Counter = Counter()
        self.symbols: set[Symbol] = set()
        self.matrices: set[MatrixSymbol] = set()
        self.dimensions: set[Symbol] = set()
        self.constant: dict[Basic, bool] = {}
        for out in outputs:
            self._walk(out)
            self.uses[out] += 1  # an output is a use: inside another output it is a step

    def _walk(self, root: Basic) -> None:
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                self.constant[node] = all(self.constant[a] for a in node.args)
                continue
            if node in self.constant:
                continue
            if node.is_Atom or isinstance(node, _MATRIX_LEAVES + (Lambda,)):
                leaf = isinstance(node, Symbol | MatrixSymbol)
                self.constant[node] = not leaf
                if isinstance(node, Symbol):
                    self.symbols.add(node)
                elif isinstance(node, MatrixSymbol):
                    self.matrices.add(node)
                    self.dimensions |= {
                        s for d in node.shape for s in sympy.sympify(d).free_symbols
                    }
                continue
            stack.append((node, True))
            for arg in node.args:
                self.uses[arg] += 1
                if arg not in self.constant:
                    stack.append((arg, False))

    def __contains__(self, node) -> bool:
        return node in self.constant

    def inline(self, node: Basic) -> bool:
        """Atoms, constants, negated or scaled atoms, a scalar times the all-ones matrix,
        transposed matrix symbols and powers of a dimension (1/N) stay inside the steps that use them, as an author writes them."""
        if node.is_Atom or isinstance(node, _MATRIX_LEAVES) or self.constant.get(node, False):
            return True
        args = node.args
        if isinstance(node, Transpose):
            return isinstance(node.arg, MatrixSymbol)
        if isinstance(node, Pow):
            return node.base in self.dimensions and node.exp.is_Number
        if isinstance(node, MatMul) and len(args) == 2 and isinstance(args[1], OneMatrix):
            return args[0].is_Atom  # ε 1: a broadcast scalar, never an array of its own
        return isinstance(node, Mul) and len(args) == 2 and args[0].is_Number and args[1].is_Atom


def canonical(expr: Basic, memo: dict | None = None) -> Basic:
    """`expr` in the forms the program works with: every elementwise function over one shared
    variable (SymPy's applyfunc makes a new Dummy each time, so equal functions would differ),
    every matrix entry an `entry` (which stays an entry, never an index sum), and an index sum
    over matrix entries back in matrix form: the sum SymPy makes of ``(x.T*A*x)[0, 0]``.

    Raises:
        UnsupportedExpression: a scalar function of a matrix (``sympy.tanh(W*X)``, which SymPy
            builds as a scalar), or an index sum that has no matrix form.

    `memo` ({node: its form}) may be shared between calls on parts of one expression.
    """
    memo = {} if memo is None else memo
    stack = [(expr, False)]
    while stack:
        node, done = stack.pop()
        if node in memo:
            continue
        if node.is_Atom or isinstance(node, _MATRIX_LEAVES + (Lambda,)):
            memo[node] = node
            continue
        if not done:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in memo)
            continue
        args = [memo[a] for a in node.args]
        memo[node] = _canonical_node(node, args)
    return memo[expr]


def _canonical_node(node: Basic, args: list[Basic]) -> Basic:
    if isinstance(node, ElementwiseApplyFunction):
        # f(Xᵀ Wᵀ) is f(W X)ᵀ: the argument with fewer transposes, so that a transposed copy
        # of a subexpression (SymPy pushes a transpose inside f) is the same step
        flipped = _flip(args[1], {})
        if _transposes(flipped) < _transposes(args[1]):
            return Transpose(elementwise(node.function, flipped))
        return elementwise(node.function, args[1])
    if isinstance(node, MatrixElement):
        return entry(*args)
    if isinstance(node, sympy.DotProduct):  # of two vectors, rows or columns
        a, b = (v if v.shape[1] == 1 else v.T for v in args)
        return entry(MatMul(a.T, b), 0, 0)
    if isinstance(node, sympy.Adjoint):  # real matrices: the transpose
        return canonical(Transpose(args[0]))
    if isinstance(node, sympy.BlockMatrix):
        if all(d.is_Integer for d in node.shape):
            return canonical(node.as_explicit())  # written out, entry by entry
        raise UnsupportedExpression(
            f"{node}: a BlockMatrix of symbolic size has no derivative rule here; give the "
            "sizes as numbers (it is then written out), or write it with products of the blocks"
        )
    if isinstance(node, sympy.Sum) and node.has(MatrixElement):
        try:
            return canonical(_matrix_form(node))
        except UnsupportedExpression:
            indices = {i for e in node.atoms(MatrixElement) for i in (e.i, e.j)}
            if indices & node.free_symbols:
                return node  # an inner sum over an outer sum's index: the outer one reads it
            raise
    if isinstance(node, sympy.Function) and not isinstance(node, MatrixExpr):
        for arg in args:
            if isinstance(arg, MatrixExpr) and arg.shape != (1, 1):
                name = type(node).__name__
                raise UnsupportedExpression(
                    f"{node}: SymPy's {name} of a {arg.shape[0]}x{arg.shape[1]} matrix "
                    f"expression is a scalar, not {name} of each entry; write "
                    f"sd.elementwise(sympy.{name}, {arg}) for the matrix of {name} of the entries"
                )
    return node.func(*args) if args != list(node.args) else node


# the matrix expressions a transpose passes through as (AB)ᵀ = BᵀAᵀ, (A+B)ᵀ = Aᵀ+Bᵀ, (A∘B)ᵀ = Aᵀ∘Bᵀ
_LINEAR = (MatMul, MatAdd, HadamardProduct)


def _flip(expr: Basic, memo: dict) -> Basic:
    """`expr`ᵀ with the transpose pushed through products, sums and Hadamard products only,
    down to their factors: a transposed factor loses its transpose, any other factor is wrapped
    in one. The factors are canonical already; SymPy's `.T` would push the transpose through
    every op below them, again for every elementwise function of a deep network."""
    if expr in memo:
        return memo[expr]
    if isinstance(expr, Transpose):
        flipped = expr.arg
    elif isinstance(expr, _LINEAR):
        factors = [_flip(a, memo) if isinstance(a, MatrixExpr) else a for a in expr.args]
        if isinstance(expr, MatMul):  # scalars commute; the matrices reverse
            scalars = [a for a in factors if not isinstance(a, MatrixExpr)]
            factors = scalars + [a for a in reversed(factors) if isinstance(a, MatrixExpr)]
        flat = []  # flattened by hand: SymPy's evaluation would call doit on every factor
        for a in factors:
            flat.extend(a.args if type(a) is type(expr) else [a])
        flipped = expr.func(*flat)
    elif isinstance(expr, Identity | ZeroMatrix | OneMatrix):
        flipped = type(expr)(*reversed(expr.shape)) if not isinstance(expr, Identity) else expr
    else:
        flipped = Transpose(expr)
    memo[expr] = flipped
    return flipped


def _transposes(expr: Basic) -> int:
    """The number of distinct transposes in `expr` above its first op that is not a product,
    a sum or a Hadamard product (the transposes `_flip` can remove or adds)."""
    seen, stack, count = set(), [expr], 0
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        count += isinstance(node, Transpose)
        if isinstance(node, _LINEAR):
            stack.extend(a for a in node.args if isinstance(a, MatrixExpr))
    return count


def with_matrix_sums(expr: Basic) -> Basic:
    """`expr` with each sum over matrix entries (SymPy's form of ``(rᵀ r)[0, 0]``) written in
    matrix notation where symdl finds one, for display: ``(X w - y)ᵀ(X w - y)``, not ``Sum(...)``."""
    if not isinstance(expr, Basic) or not expr.has(sympy.Sum):
        return expr

    def readable(node):
        try:
            return _matrix_form(node)
        except UnsupportedExpression:
            return node

    return expr.replace(lambda e: isinstance(e, sympy.Sum) and e.has(MatrixElement), readable)


def _matrix_form(index_sum: Basic) -> Basic:
    """An index sum over matrix entries, such as SymPy makes of ``(x.T*A*x)[0, 0]``, as the
    entry of a matrix expression."""
    from sympy.tensor.array.expressions import convert_array_to_matrix, convert_indexed_to_array

    # the converter reads a square x_i^2 (or (x_i - b_i)^2) only as the product x_i x_i
    unfolded = index_sum.replace(
        lambda e: isinstance(e, Pow) and e.exp == 2 and e.base.has(MatrixElement),
        lambda e: Mul(e.base, e.base, evaluate=False),
    )
    try:
        result = convert_array_to_matrix(convert_indexed_to_array(unfolded))
    except Exception as error:  # noqa: BLE001 - SymPy raises many kinds here
        result = error
    if isinstance(result, MatrixExpr) and result.shape == (1, 1):  # 1ᵀ X 1
        result = Trace(result)
    if not isinstance(result, MatrixElement | Trace):  # Σ_i exp((W x)_i): read entry by entry
        result = matrix_form_of_sum(index_sum) if isinstance(index_sum, sympy.Sum) else None
    if not isinstance(result, Basic):  # a trace, as in tr(A X) = Σ A_ij X_ji
        raise UnsupportedExpression(
            f"{index_sum}: this sum over matrix entries has no matrix form symdl can find; "
            "write it with matrix products and traces (x.T*A*x, Trace(A*X))"
        )
    return result


def stable_forms(expr: Basic, keep: Iterable[Basic] = ()) -> Basic:
    """`expr` with each composition that has an equal, stabler form in that form, so that no
    step divides by a value that rounded to 0: a function's own `stable_form()` (BCE of
    sigmoid(z) as BCE of the logits z) or what its one argument offers, `g.composed(f)`
    (log(sigmoid(z)) as a log-sigmoid). A composition whose argument is in `keep` (a
    subexpression the user named) stays as written."""
    keep, memo = set(keep), {}

    def rebuild(node):
        if node in memo:
            return memo[node]
        result = node
        if not (node.is_Atom or isinstance(node, _MATRIX_LEAVES + (Lambda,))):
            args = [rebuild(a) for a in node.args]
            result = node.func(*args) if args != list(node.args) else node
            stable = isinstance(result, sympy.Function) or hasattr(result, "stable_form")
            if stable and not keep.intersection(node.args):
                own = getattr(result, "stable_form", None)
                composed = getattr(args[0], "composed", None) if len(args) == 1 else None
                if callable(own):
                    result = own() or result
                elif callable(composed):
                    result = composed(result.func) or result
        memo[node] = result
        return result

    return rebuild(expr)


def _replace_leaves(expr: Basic, leaves: Mapping[Symbol, Symbol]) -> Basic:
    """`expr` with scalar leaves replaced; matrix symbols (and their dimensions) untouched."""
    if not leaves or isinstance(expr, _MATRIX_LEAVES):
        return expr
    if expr.is_Atom:
        return leaves.get(expr, expr)
    args = [_replace_leaves(a, leaves) for a in expr.args]
    return expr.func(*args) if args != list(expr.args) else expr


# sums and products SymPy flattens: a named part of one is found among its terms or factors
_FLAT = (Add, Mul, MatAdd, MatMul, HadamardProduct)


def _expose(outputs: list[Basic], names: Mapping[Basic, object]) -> list[Basic]:
    """`outputs` with each named sum or product that SymPy flattened into a larger one made a
    child of its own, so that it can be a step: ``w*x`` in ``2*w*x*y``, ``A B`` in ``A B C``,
    ``(1/N) relu(Z) 1`` in ``tr((1/N) 1ᵀ relu(Z) 1)``."""
    missing = [e for e in names if isinstance(e, _FLAT) and e not in _Graph(outputs)]
    if not missing:
        return outputs
    memo: dict[Basic, Basic] = {}

    def rebuild(node: Basic) -> Basic:
        if node in memo:
            return memo[node]
        result = node
        if not (node.is_Atom or isinstance(node, _MATRIX_LEAVES + (Lambda,))):
            args = [rebuild(a) for a in node.args]
            if args != list(node.args):
                result = (
                    node.func(*args, evaluate=False)
                    if isinstance(node, _FLAT)
                    else node.func(*args)
                )
            for part in missing:
                if part != result and type(part) is type(result):
                    result = _split(result, part) or result
        memo[node] = result
        return result

    return [rebuild(out) for out in outputs]


def _split(node: Basic, part: Basic) -> Basic | None:
    """`node` (a flattened sum or product) as the same sum or product with `part` one of its
    arguments, when `part`'s terms or factors are among `node`'s; else None."""
    if isinstance(node, MatMul):  # the matrices in order, a run of them; scalars divide
        coeff, matrices = node.as_coeff_matrices()
        part_coeff, run = part.as_coeff_matrices()
        for start in range(len(matrices) - len(run) + 1):
            if len(run) > 1 and matrices[start : start + len(run)] == run:
                rest = coeff / part_coeff
                factors = [*matrices[:start], part, *matrices[start + len(run) :]]
                return MatMul(*([rest] if rest != 1 else []), *factors)
        return None
    if isinstance(node, Mul):
        coeff, factors = node.as_coeff_mul()
        part_coeff, part_factors = part.as_coeff_mul()
        inside, rest = Counter(factors), Counter(part_factors)
        if len(part_factors) < 2 or rest - inside or not part_coeff:
            return None
        others = list((inside - rest).elements())
        scale = coeff / part_coeff
        return Mul(*([scale] if scale != 1 else []), *others, part, evaluate=False)
    inside, rest = Counter(node.args), Counter(part.args)
    if rest - inside or len(part.args) < 2:
        return None
    return node.func(*(inside - rest).elements(), part, evaluate=False)


def _is_step(node: Basic, graph: _Graph, named, argument_of_function: bool) -> bool:
    """Function applications, shared nodes, named nodes and a function's arguments get steps
    of their own; a Piecewise's pairs and conditions never do."""
    if isinstance(node, _NEVER_STEPS):
        return False
    return (
        argument_of_function
        or not isinstance(node, _ALGEBRA)
        or graph.uses[node] > 1
        or node in named
    )


def _shaped_like(node: Basic, name: Symbol) -> Basic:
    """The step name for `node`: a MatrixSymbol of its shape when it is a matrix."""
    if isinstance(node, MatrixExpr):
        return MatrixSymbol(name.name, *node.shape)
    return name


def _check_names(names: Mapping, graph: _Graph, taken: set[str]) -> dict[Basic, Symbol]:
    checked = {}
    for expr, name in names.items():
        expr = as_expr(expr, "names")
        symbol = name if isinstance(name, Symbol) else Symbol(str(name), real=True)
        if str(symbol) in taken:
            raise ValueError(
                f"names: {symbol} is already a symbol of the expression; pick another name"
            )
        if expr not in graph:
            closest = _closest(expr, graph)
            hint = f"; the closest subexpression is {closest}" if closest is not None else ""
            raise ValueError(
                f"names: {expr} does not occur as a subexpression, so it cannot be named "
                f"{symbol}{hint}"
            )
        if graph.inline(expr):
            raise ValueError(
                f"names: {expr} is a symbol or constant; only compound subexpressions get names"
            )
        checked[expr] = symbol
    return checked


def _closest(expr: Basic, graph: _Graph) -> Basic | None:
    """The compound subexpression most like `expr`: of its shape, sharing the most symbols,
    then nearest in size."""
    symbols = expr.free_symbols
    shape = getattr(expr, "shape", None)
    candidates = [
        node
        for node in graph.uses
        if not graph.inline(node)
        and not isinstance(node, _NEVER_STEPS)
        and getattr(node, "shape", None) == shape
    ]
    if not candidates:
        return None
    size = sympy.count_ops(expr)

    def distance(node):
        shared = len(symbols & node.free_symbols) - len(symbols ^ node.free_symbols)
        return (-shared, abs(sympy.count_ops(node) - size), str(node))

    return min(candidates, key=distance)


def _output_names(outputs, given, named, taken) -> dict[Basic, Symbol]:
    if given is not None and len(given) != len(outputs):
        raise ValueError(f"output_names: {len(given)} names for {len(outputs)} outputs")
    default = ["L"] if len(outputs) == 1 else [f"f_{i + 1}" for i in range(len(outputs))]
    result = {}
    for out, name in zip(outputs, given or default, strict=True):
        if out in named or out in result:
            continue
        while name in taken:
            name = name + "'"
        taken.add(name)
        result[out] = Symbol(name, real=True)
    return result


def _fresh_names(taken: set[str]):
    i = 0
    while True:
        i += 1
        if f"v_{i}" not in taken:
            yield Symbol(f"v_{i}", real=True)
