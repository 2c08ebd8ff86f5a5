"""Sums over the entries of matrices, as SymPy makes of ``(1ᵀ exp(W x))[0, 0]``, written back
in matrix notation: ``Σ_i f(M_i)`` is ``1ᵀ f(M) 1`` with f taken entry by entry.

SymPy turns the entry of a product into a ``Sum`` over indices at once, and its own converter
(``convert_indexed_to_array``) reads only products and sums of entries. This module reads the
rest: functions of entries (``exp``, ``log``, symdl's ops), powers, entrywise products of
several matrices, vectors broadcast along a row or a column, diagonals and Kronecker deltas. A
sum it cannot read gives None, so the caller can name it in its error."""

from __future__ import annotations

import sympy
from sympy import Basic, Lambda, MatrixExpr, OneMatrix, Symbol
from sympy.matrices.expressions import DiagonalOf, HadamardPower, HadamardProduct, Identity, Trace
from sympy.matrices.expressions.matexpr import MatrixElement

from symdl.core.matrices import elementwise


def matrix_form_of_sum(index_sum: sympy.Sum) -> Basic | None:
    """`index_sum` (a Sum over entries of matrices, every index from 0) as ``tr(1ᵀ F 1)``, or
    None when it is not a sum this module reads."""
    body, limits = _flattened(index_sum)
    if body is None or not 1 <= len(limits) <= 2:
        return None
    rows = limits[0]
    cols = limits[1] if len(limits) == 2 else None
    matrix = _Reader(rows, cols).read(body)
    if matrix is None:
        return None
    R, C = rows[1], (cols[1] if cols else sympy.S.One)
    if not isinstance(matrix, MatrixExpr):  # a body without the indices: R C copies of it
        return matrix * R * C
    return Trace(OneMatrix(1, R) * matrix * OneMatrix(C, 1))


def _flattened(index_sum: sympy.Sum):
    """(body, [(index, size)]) of nested Sums over indices counted from 0, else (None, [])."""
    body, limits = index_sum, []
    while isinstance(body, sympy.Sum):
        for index, low, high in body.limits:
            if low != 0:
                return None, []
            limits.append((index, high + 1))
        body = body.function
    return body, limits


class _Reader:
    """Reads a scalar body in the indices `rows` = (i, R) and `cols` = (j, C) or None as an R x C
    matrix expression (or a scalar, when the body does not depend on them)."""

    def __init__(self, rows: tuple[Symbol, Basic], cols: tuple[Symbol, Basic] | None):
        self.i, self.R = rows
        self.j, self.C = cols if cols else (None, sympy.S.One)
        self.indices = {self.i} | ({self.j} if self.j is not None else set())

    def depends(self, e: Basic) -> bool:
        return bool(e.free_symbols & self.indices)

    def read(self, e: Basic):
        if not self.depends(e):
            return e
        if isinstance(e, MatrixElement):
            return self.element(e)
        if isinstance(e, sympy.Sum):
            return self.inner_sum(e)
        if isinstance(e, sympy.KroneckerDelta) and set(e.args) == self.indices:
            return Identity(self.R) if self.R == self.C else None
        if isinstance(e, sympy.Add):
            return self.combine(e.args, sympy.Add, sympy.MatAdd)
        if isinstance(e, sympy.Mul):
            return self.combine(e.args, sympy.Mul, HadamardProduct)
        if isinstance(e, sympy.Pow) and not self.depends(e.exp):
            base = self.read(e.base)
            return None if base is None else HadamardPower(base, e.exp)
        if isinstance(e, sympy.Function) and not isinstance(e, MatrixExpr):
            return self.function(e)
        return None

    def combine(self, args, scalar_op, matrix_op):
        """A sum or product of terms read one by one: scalars among them stay scalars."""
        read = [self.read(a) for a in args]
        if any(r is None for r in read):
            return None
        scalars = [r for r in read if not isinstance(r, MatrixExpr)]
        matrices = [r for r in read if isinstance(r, MatrixExpr)]
        if scalar_op is sympy.Add:
            if scalars:
                matrices.append(sympy.Add(*scalars) * OneMatrix(self.R, self.C))
            return matrices[0] if len(matrices) == 1 else sympy.MatAdd(*matrices)
        whole = matrices[0] if len(matrices) == 1 else matrix_op(*matrices)
        return sympy.Mul(*scalars) * whole if scalars else whole

    def function(self, e: Basic):
        """f(..., u, ...) with one argument u depending on the indices: f entry by entry."""
        moving = [k for k, a in enumerate(e.args) if self.depends(a)]
        if len(moving) != 1:
            return None
        k = moving[0]
        inner = self.read(e.args[k])
        if inner is None:
            return None
        u = sympy.Dummy("u")
        body = e.func(*(u if m == k else a for m, a in enumerate(e.args)))
        return elementwise(Lambda(u, body), inner)

    def element(self, e: MatrixElement):
        """M[i, j] as M, M[j, i] as Mᵀ, a vector's M[i, 0] spread along the columns (and M[j, 0]
        along the rows), M[i, i] as the diagonal of M."""
        M, p, q = e.parent, e.i, e.j
        i, j, R, C = self.i, self.j, self.R, self.C
        if j is not None and (p, q) == (i, j):
            return M
        if j is not None and (p, q) == (j, i):
            return M.T
        column = q == 0 and M.shape[1] == 1
        row = p == 0 and M.shape[0] == 1
        vector = M if column else M.T if row else None
        at = p if column else q if row else None
        if vector is not None and at == i:
            return vector if C == 1 else vector * OneMatrix(1, C)
        if vector is not None and j is not None and at == j:
            return OneMatrix(R, 1) * vector.T
        if p == q == i and j is None and M.shape[0] == M.shape[1]:
            return DiagonalOf(M)
        return None

    def inner_sum(self, e: sympy.Sum):
        """Σ_k g(i, k), with one outer index i: the R x K matrix of g times a column of ones;
        Σ_k a(i, k) b(k, j), with two: the product of the matrices of a and b."""
        body, limits = _flattened(e)
        if body is None or len(limits) != 1:
            return None
        (k, K) = limits[0]
        if self.j is not None:
            return self.product(body, k, K)
        inner = _Reader((self.i, self.R), (k, K)).read(body)
        if inner is None:
            return None
        if not isinstance(inner, MatrixExpr):
            return inner * K
        return inner * OneMatrix(K, 1)

    def product(self, body: Basic, k: Symbol, K: Basic):
        """Σ_k a(i, k) b(k, j): the factors in i and k make a, those in k and j make b."""
        left, right = [], []
        for factor in sympy.Mul.make_args(body):
            free = factor.free_symbols
            if self.i in free and self.j in free:
                return None
            (right if self.j in free else left).append(factor)
        a = _Reader((self.i, self.R), (k, K)).read(sympy.Mul(*left))
        b = _Reader((k, K), (self.j, self.C)).read(sympy.Mul(*right))
        if a is None or b is None:
            return None
        a = a if isinstance(a, MatrixExpr) else a * OneMatrix(self.R, K)
        b = b if isinstance(b, MatrixExpr) else b * OneMatrix(K, self.C)
        return a * b
