"""The derivation entry points: derive, grad, jacobian and hessian of SymPy expressions."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import sympy
from sympy import Basic, Matrix, Symbol
from sympy.matrices.expressions import (
    HadamardProduct,
    Identity,
    MatAdd,
    MatMul,
    MatrixExpr,
    MatrixSymbol,
    Transpose,
)
from sympy.matrices.expressions.diagonal import DiagMatrix

from symdl.core.backward import backward
from symdl.core.derivation import Derivation, _tidy, shape_like
from symdl.core.matrices import hadamard
from symdl.core.program import UnsupportedExpression, _Graph, as_expr, build_program


def derive(f, wrt, names: Mapping[Basic, str] | None = None) -> Derivation:
    """Derive the gradient of scalar `f` with respect to `wrt` by the reverse-mode chain rule.

    Args:
        f: a scalar SymPy expression (or a 1x1 Matrix).
        wrt: a Symbol, a sequence of Symbols, or a Matrix of Symbols.
        names: names for subexpressions shown as steps, e.g. ``{w*x + b: "z"}``.

    Returns:
        A Derivation: `.steps`, `.gradient`, `.closed_form()`, `.to_latex()`, `.compile()`.

    >>> import sympy, symdl as sd
    >>> w, x, b = sympy.symbols("w x b")
    >>> print(sd.derive(sd.sigmoid(w*x + b), w, names={w*x + b: "z"}))
    z = b + w*x
    L = sigmoid(z)
    bar_z = L*(1 - L)
    bar_w = bar_z*x
    """
    expr = _scalar(f, "f")
    symbols = _wrt_symbols(wrt)
    real = _real_versions([expr, *symbols])
    program = build_program([expr], names=names, leaves=real)
    derivation = backward(program, [real.get(s, s) for s in symbols])
    restore = {r: s for s, r in real.items()}
    return dataclasses.replace(derivation, shape=shape_like(wrt), restore=restore)


def grad(f, wrt):
    """The gradient of scalar `f` in closed form, shaped like `wrt`.

    Symbol -> expression; sequence -> list; Matrix of symbols -> Matrix of the same shape.

    >>> import sympy, symdl as sd
    >>> x, y = sympy.symbols("x y")
    >>> sd.grad(x**2 * y, [x, y])
    [2*x*y, x**2]
    """
    return derive(f, wrt).closed_form()


def jacobian(F, wrt) -> Matrix:
    """The Jacobian matrix of a vector (sequence or Matrix) `F`: one row per entry of `F`.

    >>> import sympy, symdl as sd
    >>> x, y = sympy.symbols("x y")
    >>> sd.jacobian([x*y, x + y], [x, y])
    Matrix([
    [y, x],
    [1, 1]])

    For a column-vector matrix expression `F` and a column MatrixSymbol `wrt`, the result is a
    matrix expression: ``sd.jacobian(A*x, x) == A``.
    """
    if isinstance(wrt, MatrixSymbol) or isinstance(F, MatrixExpr):
        return _matrix_jacobian(F, wrt)
    entries = _vector_entries(F)
    symbols = _wrt_symbols(wrt)
    real = _real_versions([*entries, *symbols])
    program = build_program(entries, leaves=real)
    wrt_real = [real.get(s, s) for s in symbols]
    restore = {r: s for s, r in real.items()}
    rows = []
    for k in range(len(entries)):
        derivation = dataclasses.replace(backward(program, wrt_real, output=k), restore=restore)
        rows.append(derivation.closed_form())
    return Matrix(rows)


def hessian(f, wrt) -> Matrix:
    """The Hessian matrix of scalar `f`: the Jacobian of its reverse-mode gradient, symmetric.

    >>> import sympy, symdl as sd
    >>> x, y = sympy.symbols("x y")
    >>> sd.hessian(x**2 * y, [x, y])
    Matrix([
    [2*y, 2*x],
    [2*x,   0]])
    """
    if isinstance(wrt, MatrixSymbol):  # ∇²f in matrix notation: xᵀAx -> A + Aᵀ
        return _matrix_jacobian(grad(f, wrt), wrt)
    symbols = _wrt_symbols(wrt)
    rows = jacobian(derive(f, symbols).closed_form(), symbols)
    n = len(symbols)  # mirror the upper triangle: exactly symmetric, as the Hessian of a C^2 f
    return Matrix(n, n, lambda i, j: rows[min(i, j), max(i, j)])


def _matrix_jacobian(F, x):
    """∂F/∂xᵀ for column vectors F and x, in matrix notation.

    The gradient of vᵀF for a fresh vector v is Jᵀv; J is read off that linear function of v.
    """
    if not (isinstance(x, MatrixSymbol) and x.shape[1] == 1):
        raise UnsupportedExpression(f"wrt: {x} must be a column-vector MatrixSymbol here")
    if not (isinstance(F, MatrixExpr) and F.shape[1] == 1):
        raise UnsupportedExpression(f"F: {F} must be a column-vector matrix expression here")
    v = MatrixSymbol("_jacobian_seed", F.shape[0], 1)
    transposed = grad(v.T * F, x)
    return _tidy(_coefficient(transposed, v).T)


def _coefficient(R, v):
    """M with R = M v, for R a matrix expression linear in the column vector v."""
    if R == v:
        return Identity(v.shape[0])
    if not R.has(v):
        raise UnsupportedExpression(f"jacobian: {R} does not depend on the seed linearly")
    if isinstance(R, MatAdd):
        return MatAdd(*(_coefficient(term, v) for term in R.args)).doit(deep=False)
    if isinstance(R, Transpose) and R.shape == (1, 1):
        return _coefficient(R.arg, v)  # a 1x1 matrix is its own transpose
    if isinstance(R, MatMul):
        coeff, factors = R.as_coeff_matrices()
        holders = [i for i, f in enumerate(factors) if f.has(v)]
        if len(holders) == 1:
            i = holders[0]
            if i < len(factors) - 1 and factors[i].shape == (1, 1):
                factors = factors[:i] + factors[i + 1 :] + [factors[i]]  # a 1x1 factor commutes
                i = len(factors) - 1
            if i == len(factors) - 1:
                return MatMul(coeff, *factors[:-1], _coefficient(factors[-1], v)).doit(deep=False)
    if isinstance(R, HadamardProduct):
        holders = [a for a in R.args if a.has(v)]
        others = [a for a in R.args if not a.has(v)]
        if len(holders) == 1:
            if R.shape == (1, 1):  # entrywise product of 1x1 matrices is the product
                return _coefficient(MatMul(*others, holders[0]).doit(deep=False), v)
            diagonal = DiagMatrix(hadamard(*others)) if len(others) > 1 else DiagMatrix(others[0])
            return MatMul(diagonal, _coefficient(holders[0], v)).doit(deep=False)
    raise UnsupportedExpression(f"jacobian: cannot read a matrix off {R}")


def _scalar(f, what: str) -> Basic:
    if isinstance(f, sympy.MatrixBase):
        if f.shape != (1, 1):
            raise ValueError(
                f"{what}: a {f.shape[0]}x{f.shape[1]} matrix is not a scalar; "
                "use sd.jacobian for a vector function"
            )
        f = f[0, 0]
    expr = as_expr(f, what)
    if isinstance(expr, MatrixExpr) and expr.shape != (1, 1):
        raise ValueError(
            f"{what}: a matrix expression of shape {expr.shape} is not a scalar; "
            "differentiate a scalar (a loss, a trace, a 1x1 product)"
        )
    return expr


def _vector_entries(F) -> list[Basic]:
    if isinstance(F, sympy.MatrixBase):
        return [as_expr(e, "F") for e in F]
    if isinstance(F, Sequence) and not isinstance(F, str):
        return [as_expr(e, "F") for e in F]
    return [_scalar(F, "F")]


def _wrt_symbols(wrt) -> list[Symbol]:
    if isinstance(wrt, sympy.MatrixBase) or isinstance(wrt, Sequence) and not isinstance(wrt, str):
        entries = list(wrt)
    else:
        entries = [wrt]
    for e in entries:
        if not isinstance(e, Symbol | sympy.MatrixSymbol):
            raise UnsupportedExpression(
                f"wrt: {e!r} is not a Symbol or MatrixSymbol; differentiate with respect to "
                "symbols (introduce a symbol for a subexpression and substitute it)"
            )
    return entries


def _real_versions(exprs: Sequence[Basic]) -> dict[Symbol, Symbol]:
    """Real twins of the symbols without assumptions: deep learning is over the reals."""
    graph = _Graph(exprs)
    symbols = graph.symbols - graph.dimensions  # a matrix's dimensions stay as they are
    by_name: dict[str, Symbol] = {}
    for s in sorted(symbols, key=lambda s: (s.name, s.is_real is not True)):
        if s.name in by_name and type(s) is Symbol:
            raise ValueError(
                f"the symbols {sympy.srepr(by_name[s.name])} and {sympy.srepr(s)} share the name "
                f"{s.name!r}; symdl treats every symbol "
                "as real, so they would become one: give them different names"
            )
        by_name[s.name] = s
    return {s: Symbol(s.name, real=True) for s in symbols if type(s) is Symbol and not s.is_real}
