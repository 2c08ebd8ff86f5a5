"""Matrix expressions made explicit: each MatrixSymbol replaced by a Matrix of entry symbols
or of numbers. This is how matrix results are compared with the scalar path, entry by entry."""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping

import numpy as np
import sympy
from sympy import (
    Basic,
    HadamardPower,
    HadamardProduct,
    ImmutableMatrix,
    MatMul,
    MatrixBase,
    MatrixSymbol,
)
from sympy.matrices.expressions import (
    Determinant,
    DiagMatrix,
    DiagonalOf,
    Inverse,
    MatPow,
    MatrixExpr,
)
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy.matrices.utilities import dotprodsimp


def entries(M: MatrixSymbol) -> ImmutableMatrix:
    """`M` as an explicit matrix of real entry symbols named like ``W[0,1]``."""
    rows, cols = (int(d) for d in M.shape)
    return ImmutableMatrix(
        rows,
        cols,
        [sympy.Symbol(f"{M.name}[{i},{j}]", real=True) for i in range(rows) for j in range(cols)],
    )


def expand(expr: Basic, values: Mapping) -> Basic:
    """`expr` with matrix symbols (and scalars) replaced by `values`, then computed.

    Values may be SymPy matrices, NumPy arrays or numbers. Returns an explicit Matrix for a
    matrix expression, a scalar expression otherwise.
    """
    swap = {k: _as_sympy(v) for k, v in values.items()}
    memo: dict[Basic, Basic] = {}

    def explicit(node):
        if node not in memo:
            if node in swap:
                memo[node] = swap[node]
            elif isinstance(node, MatrixExpr) and not node.free_symbols - _dims(node):
                memo[node] = node.as_explicit()  # constants: Identity, OneMatrix, ZeroMatrix
            elif node.is_Atom or not node.args or isinstance(node, MatrixSymbol):
                memo[node] = node
            else:
                memo[node] = _evaluate(node, [explicit(a) for a in node.args])
        return memo[node]

    return explicit(expr)


def evaluate(expr: Basic, values: Mapping) -> np.ndarray | float:
    """`expr` at numeric `values` (arrays for matrix symbols), as floats."""
    result = expand(expr, values)
    if isinstance(result, MatrixBase):
        return np.array(result.evalf(), dtype=float)
    return float(result.evalf())


def _dims(node) -> set:
    return {s for d in node.shape for s in sympy.sympify(d).free_symbols}


def _evaluate(node, args):
    """`node` applied to explicit arguments, computed, with no simplification of the products
    of symbolic entries on the way (SymPy's dotprodsimp: minutes for (X Xᵀ + I)⁻² at 3x3)."""
    with dotprodsimp(False):
        return _computed(node, args)


def _computed(node, args):
    if isinstance(node, HadamardProduct):
        result = args[0]
        for arg in args[1:]:
            result = result.multiply_elementwise(arg)
        return result
    if isinstance(node, HadamardPower):
        base, exp = args
        return base.applyfunc(lambda e: e**exp)
    if isinstance(node, ElementwiseApplyFunction):
        return args[1].applyfunc(node.function)
    if isinstance(node, MatrixElement):
        return args[0][args[1], args[2]]
    if isinstance(node, DiagonalOf) and isinstance(args[0], MatrixBase):
        return ImmutableMatrix([args[0][i, i] for i in range(min(args[0].shape))])
    if isinstance(node, DiagMatrix) and isinstance(args[0], MatrixBase):
        return ImmutableMatrix(sympy.diag(*args[0]))
    if isinstance(node, Inverse) and isinstance(args[0], MatrixBase):
        return _inverse(args[0])
    if isinstance(node, Determinant) and isinstance(args[0], MatrixBase):
        return args[0].det(method="berkowitz")
    if isinstance(node, MatPow) and isinstance(args[0], MatrixBase) and args[1].is_Integer:
        base = _inverse(args[0]) if args[1] < 0 else args[0]
        return ImmutableMatrix(base ** abs(int(args[1])))
    if isinstance(node, MatMul) and not any(_symbolic_matrix(a) for a in args):
        return functools.reduce(operator.mul, args)  # SymPy keeps sqrt(2)*Matrix a MatMul
    rebuilt = node.func(*args)
    if isinstance(rebuilt, MatrixBase) or not isinstance(rebuilt, Basic):
        return rebuilt
    result = rebuilt.doit(deep=False) if any(isinstance(a, MatrixBase) for a in args) else rebuilt
    if isinstance(result, MatrixExpr) and not isinstance(result, MatrixBase):
        if all(isinstance(a, MatrixBase) or not isinstance(a, MatrixExpr) for a in args):
            result = result.as_explicit()  # DiagonalOf, DiagMatrix: doit keeps them symbolic
    if (
        isinstance(result, MatrixBase)
        and result.shape == (1, 1)
        and not isinstance(node, MatrixExpr)
    ):
        return result[0, 0]  # a 1x1 matrix in a scalar context (a trace, a determinant)
    return result


def _inverse(M: MatrixBase) -> MatrixBase:
    """M⁻¹ written out as adj(M)/det(M) (Berkowitz, division free): SymPy's default Gaussian
    elimination simplifies every pivot, which on the symbolic entries of a 3x3 X Xᵀ + I runs
    for minutes."""
    if not M.free_symbols:
        return ImmutableMatrix(M.inv())
    det = M.det(method="berkowitz")
    return ImmutableMatrix(M.adjugate(method="berkowitz") / det)


def _symbolic_matrix(arg) -> bool:
    return isinstance(arg, MatrixExpr) and not isinstance(arg, MatrixBase)


def _as_sympy(value):
    if isinstance(value, np.ndarray):
        return ImmutableMatrix(value.tolist()) if value.ndim == 2 else sympy.Float(float(value))
    if isinstance(value, MatrixBase):
        return ImmutableMatrix(value)
    return sympy.sympify(value)
