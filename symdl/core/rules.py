r"""Vector-Jacobian products of matrix operations, in matrix notation: one rule per operation.

A rule takes a node, the adjoint $G$ of its value and the expression standing for that value,
and gives the adjoint contribution of each argument: $G \mapsto G X^\top$ for $W X$,
$G \mapsto G \circ f'(Z)$ for $f(Z)$. symdl's own matrix ops carry their rule as a `vjp` method;
`pullback` walks a step's right-hand side with them and never names an op itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import sympy
from sympy import Add, Basic, Dummy, MatrixBase, Mul
from sympy.matrices.expressions import (
    Determinant,
    DiagMatrix,
    DiagonalOf,
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    KroneckerProduct,
    MatAdd,
    MatMul,
    MatPow,
    MatrixExpr,
    MatrixSlice,
    MatrixSymbol,
    Trace,
    Transpose,
)
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement

from symdl.core.matrices import (
    ENTRY,
    as_elementwise,
    elementwise,
    hadamard,
    kronecker_pullback,
    unit_matrix,
)


class UnsupportedOp(TypeError, NotImplementedError):
    """An operation symdl cannot handle where it is asked to: it has no derivative rule, or
    an export's array library (JAX, PyTorch) cannot run its code. One class for both, so one
    `except UnsupportedOp` (or the TypeError / NotImplementedError it also is) catches either."""


class UnsupportedMatrixOp(TypeError):
    """A matrix operation with no vector-Jacobian rule."""


def _matadd(*parts):
    parts = [p for p in parts if not (getattr(p, "is_ZeroMatrix", False) or p == 0)]
    return MatAdd(*parts).doit(deep=False) if len(parts) > 1 else parts[0]


def _matmul(*factors):
    return MatMul(*factors).doit(deep=False)


def _product(factors):
    return _matmul(*factors) if factors else None


def _vjp_matadd(node, G, out):
    return [(arg, G) for arg in node.args]


def _vjp_matmul(node, G, out):
    coeff, mats = node.as_coeff_matrices()
    result = []
    for i, factor in enumerate(mats):
        left, right = _product(mats[:i]), _product(mats[i + 1 :])
        parts = [coeff] if coeff != 1 else []
        parts += [left.T] if left is not None else []
        parts += [G] + ([right.T] if right is not None else [])
        result.append((factor, _matmul(*parts)))
    if coeff != 1:  # the scalar factor: <G, M> = tr(Gᵀ M)
        result.append((coeff, Trace(_matmul(G.T, *mats))))
    return result


def _vjp_transpose(node, G, out):
    return [(node.arg, G.T)]


def _vjp_inverse(node, G, out):
    value = out if out is not None else node
    return [(node.arg, -_matmul(value.T, G, value.T))]


def _vjp_matpow(node, G, out):
    base, exp = node.args
    if not exp.is_Integer:
        raise UnsupportedMatrixOp(
            f"{node}: the exponent of a matrix power must be an integer (got {exp}); "
            "write a fractional power through a decomposition of your own"
        )
    if exp < 0:  # X^{-k} = (X^{-1})^k: through the power, then the inverse
        return [(MatPow(Inverse(base), -exp), G)]
    if exp == 0:
        return []
    n = int(exp)
    terms = [_matmul(*([base.T] * j), G, *([base.T] * (n - 1 - j))) for j in range(n)]
    return [(base, _matadd(*terms))]


def _vjp_kronecker(node, G, out):
    left, *rest = node.args
    right = rest[0] if len(rest) == 1 else KroneckerProduct(*rest)
    return [(left, kronecker_pullback(G, right, 0)), (right, kronecker_pullback(G, left, 1))]


def _vjp_diag_matrix(node, G, out):
    v = node.args[0]  # a column (or a row) of the diagonal
    diagonal = DiagonalOf(G)
    return [(v, diagonal if v.shape[1] == 1 else diagonal.T)]


def _vjp_diagonal_of(node, G, out):
    column = G if G.shape[1] == 1 else G.T
    return [(node.arg, DiagMatrix(column))]


def _vjp_hadamard_product(node, G, out):
    args = node.args
    return [(a, hadamard(G, *args[:i], *args[i + 1 :])) for i, a in enumerate(args)]


def _vjp_hadamard_power(node, G, out):
    base, exp = node.args
    if exp == 1:
        return [(base, G)]
    power = base if exp == 2 else HadamardPower(base, exp - 1)  # not C^{∘1}
    result = [(base, exp * hadamard(G, power))]
    if exp.free_symbols:  # a scalar exponent: <G, log(C) ∘ C^{∘p}>
        value = out if out is not None else node
        logs = elementwise(sympy.log, base)
        result.append((exp, Trace(_matmul(G.T, hadamard(logs, value)))))
    return result


def _vjp_elementwise(node, G, out):
    x = ENTRY
    body = node.function.expr.xreplace({node.function.variables[0]: x})
    derivative = body.diff(x)
    value = Dummy("y")  # f' written through f's own value when it can be: σ' = σ(1 − σ)
    through_value = derivative.xreplace({body: value})
    if not through_value.has(x) and out is not None:
        local = as_elementwise(through_value.xreplace({value: x}), out)
    else:
        local = as_elementwise(derivative, node.expr)
    return [(node.expr, hadamard(G, local))]


def _vjp_trace(node, G, out):
    return [(node.arg, G * Identity(node.arg.shape[0]))]


def _vjp_determinant(node, G, out):
    value = out if out is not None else node
    return [(node.arg, (G * value) * Inverse(node.arg).T)]


def _vjp_matrix_element(node, G, out):
    matrix, i, j = node.args
    if matrix.shape == (1, 1):
        return [(matrix, G * Identity(1))]
    return [(matrix, G * unit_matrix(i, j, *matrix.shape))]


def _vjp_matrix_slice(node, G, out):
    """X[rows, cols] = P_r X P_cᵀ with P the selected rows of an identity: X gets P_rᵀ G P_c."""
    parent = node.parent
    R, C = parent.shape
    rows = MatrixSlice(Identity(R), node.rowslice, (0, R, 1))
    cols = MatrixSlice(Identity(C), node.colslice, (0, C, 1))
    return [(parent, _matmul(rows.T, G, cols))]


def _vjp_explicit(node, G, out):
    """A matrix written out entry by entry (an op with no entrywise form, such as an
    eigenvalue, applied to a Matrix of scalars): entry (i, j) receives the adjoint G_ij."""
    return [
        (node[i, j], MatrixElement(G, i, j))
        for i in range(node.rows)
        for j in range(node.cols)
        if node[i, j].free_symbols
    ]


@dataclass(frozen=True)
class Rule:
    """A vector-Jacobian rule and an example scalar function that exercises it (for the tests:
    a rule joins the test suite by being added to RULES)."""

    vjp: Callable
    example: Callable[[], tuple]


_n, _m = sympy.symbols("n m", integer=True, positive=True)
_X, _Y = MatrixSymbol("X", _n, _n), MatrixSymbol("Y", _n, _n)
_A, _B, _C = (MatrixSymbol(name, _n, _n) for name in "ABC")
_SIZES = {_n: 2}


def _probe(M):
    """<C, M>: a scalar that depends on every entry of M."""
    return Trace(_C.T * M)


def _elementwise_exp(M):
    return elementwise(sympy.exp, M)  # positive entries, for any real power


def _kron_probe():
    """<K, X ⊗ Y> + <K', (X Y) ⊗ X ⊗ Y>, for X, Y of size n."""
    K = MatrixSymbol("K", _n * _n, _n * _n)
    K3 = MatrixSymbol("K3", _n**3, _n**3)
    return Trace(K.T * KroneckerProduct(_X, _Y)) + Trace(K3.T * KroneckerProduct(_X * _Y, _X, _Y.T))


RULES: dict[type, Rule] = {
    MatAdd: Rule(_vjp_matadd, lambda: (_probe(_X + _Y.T), [_X, _Y], _SIZES)),
    MatMul: Rule(_vjp_matmul, lambda: (_probe(_A * _X * _B / _n), [_A, _X, _B], _SIZES)),
    Transpose: Rule(_vjp_transpose, lambda: (_probe(_A * _X.T), [_X], _SIZES)),
    Inverse: Rule(_vjp_inverse, lambda: (_probe(Inverse(_X)), [_X], _SIZES)),
    MatPow: Rule(
        _vjp_matpow, lambda: (_probe(MatPow(_X, 3)) + _probe(MatPow(_Y, -2)), [_X, _Y], _SIZES)
    ),
    KroneckerProduct: Rule(
        _vjp_kronecker,
        lambda: (_kron_probe(), [_X, _Y], _SIZES),
    ),
    DiagMatrix: Rule(
        _vjp_diag_matrix,
        lambda: (
            _probe(DiagMatrix(MatrixSymbol("v", _n, 1)) * _X),
            [MatrixSymbol("v", _n, 1), _X],
            _SIZES,
        ),
    ),
    DiagonalOf: Rule(
        _vjp_diagonal_of,
        lambda: (
            Trace(MatrixSymbol("v", _n, 1).T * DiagonalOf(_X * _Y)),
            [_X, _Y],
            _SIZES,
        ),
    ),
    HadamardProduct: Rule(
        _vjp_hadamard_product, lambda: (_probe(HadamardProduct(_X, _Y, _A)), [_X, _Y], _SIZES)
    ),
    HadamardPower: Rule(
        _vjp_hadamard_power,
        lambda: (
            _probe(HadamardPower(_X, 3))
            + _probe(HadamardPower(_elementwise_exp(_Y), sympy.Rational(3, 2)))
            + _probe(HadamardPower(_elementwise_exp(_A), -1)),
            [_X, _Y, _A],
            _SIZES,
        ),
    ),
    ElementwiseApplyFunction: Rule(
        _vjp_elementwise, lambda: (_probe(_X.applyfunc(sympy.tanh)), [_X], _SIZES)
    ),
    elementwise: Rule(
        _vjp_elementwise,
        lambda: (_probe(elementwise(lambda x: sympy.exp(-(x**2)) * x, _X)), [_X], _SIZES),
    ),
    MatrixSlice: Rule(
        _vjp_matrix_slice,
        lambda: (
            Trace(_A[0:1, :] * _X[:, 1:2]) + Trace(_X[1:2, 0:2:1] * _Y[0:2, 0:1]),
            [_X, _Y],
            _SIZES,
        ),
    ),
    Trace: Rule(_vjp_trace, lambda: (Trace(_A * _X * _X), [_X], _SIZES)),
    Determinant: Rule(_vjp_determinant, lambda: (sympy.log(Determinant(_X)), [_X], _SIZES)),
    MatrixElement: Rule(
        _vjp_matrix_element,
        lambda: (
            sympy.tanh(
                MatrixElement(MatrixSymbol("a", _n, 1).T * _X * MatrixSymbol("b", _n, 1), 0, 0)
            )
            + sympy.exp(MatrixElement(_X, 0, 1)) * MatrixElement(_A * _Y, 1, 1),
            [_X, _Y],
            _SIZES,
        ),
    ),
}


def rule_for(node: Basic) -> Callable:
    """The vector-Jacobian rule of `node`: its own `vjp`, or the table's entry for its class."""
    if hasattr(node, "vjp"):
        return lambda node, G, out: [
            (a, node.vjp(i, G, out)) for i, a in enumerate(node.args) if a.free_symbols
        ]
    for cls in type(node).__mro__:
        if cls in RULES:
            return RULES[cls].vjp
    if isinstance(node, MatrixBase):
        return _vjp_explicit
    raise UnsupportedMatrixOp(
        f"no vector-Jacobian rule for {type(node).__name__} in {node}; add one to "
        "symdl.core.rules.RULES or give the op a vjp(index, G, out) method"
    )


def pullback(rhs: Basic, G, out, active: set) -> dict[Basic, list]:
    """Adjoint contributions to each active symbol of `rhs`, given the adjoint `G` of its value.

    `out` is the symbol standing for the value of `rhs` (rules such as the inverse's reuse it).
    Scalar sub-expressions (coefficients, functions of scalars) use SymPy's diff.
    """
    contributions: dict[Basic, list] = defaultdict(list)

    def visit(node, adjoint, value):
        if node in active:
            contributions[node].append(adjoint)
            return
        if not (node.free_symbols & active):
            return
        if isinstance(node, MatrixExpr | MatrixBase) or (
            node.has(MatrixExpr) and not _is_scalar_algebra(node)
        ):
            for arg, part in rule_for(node)(node, adjoint, value):
                visit(arg, part, None)
            return
        for arg in dict.fromkeys(node.args):  # scalar algebra: ∂node/∂arg by a stand-in symbol
            if arg.free_symbols & active:
                stand_in = Dummy("a")
                local = node.xreplace({arg: stand_in}).diff(stand_in).xreplace({stand_in: arg})
                visit(arg, adjoint * local, None)

    visit(rhs, G, out)
    return contributions


def _is_scalar_algebra(node) -> bool:
    return isinstance(node, Add | Mul | sympy.Pow | sympy.Function) and not isinstance(
        node, MatrixExpr
    )


def total(parts: list):
    """The sum of adjoint contributions: MatAdd for matrices, Add for scalars."""
    if isinstance(parts[0], MatrixExpr):
        return _matadd(*parts)
    return Add(*parts)


def is_matrix_step(rhs: Basic) -> bool:
    """Whether a step involves matrices (and so goes through `pullback`)."""
    return isinstance(rhs, MatrixExpr | MatrixBase) or bool(rhs.atoms(MatrixSymbol))
