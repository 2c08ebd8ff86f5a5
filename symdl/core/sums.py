r"""Sums of the rows ($M\mathbf{1}$) or columns ($\mathbf{1}^T M$) of a matrix expression in
closed form, as a person simplifies them: the sum distributes over a matrix sum, a factor
constant along the summed axis comes out ($(u\mathbf{1}^T \circ M)\mathbf{1} = u \circ
M\mathbf{1}$), and a matrix centred along that axis sums to zero ($(X - \operatorname{mean}(X)
\mathbf{1}^T)\mathbf{1} = 0$). Batch and layer norm's gradients reach the textbook's form so."""

from __future__ import annotations

from sympy import Basic, HadamardProduct, MatAdd, MatMul, MatrixSymbol, OneMatrix, S, ZeroMatrix
from sympy.matrices.expressions.matexpr import MatrixElement

from symdl.core.matrices import hadamard, matadd, matmul, scale

Terms = dict  # {matrix term: scalar coefficient}, a linear combination


def tidy_sums(expr: Basic) -> Basic:
    """`expr` with each product by the all-ones matrix ($M \\mathbf{1}$, $\\mathbf{1}^T M$)
    rewritten by the rules above where that makes the expression smaller; a Hadamard
    product's scalar factors brought in front ($(cA) \\circ B = c (A \\circ B)$)."""
    memo: dict[Basic, Basic] = {}

    def rebuild(node):
        if node not in memo:
            if node.is_Atom or isinstance(node, MatrixSymbol | MatrixElement):
                memo[node] = node
            else:
                args = [rebuild(a) for a in node.args]
                new = node.func(*args) if args != list(node.args) else node
                if isinstance(new, HadamardProduct):
                    new = _coefficients_out(new)
                elif isinstance(new, MatMul):
                    new = _summed(matmul(*new.args))
                memo[node] = new
        return memo[node]

    return rebuild(expr)


def _coefficients_out(product: HadamardProduct):
    coeff, factors = S.One, []
    for f in product.args:
        c, M = _coeff_matrix(f)
        coeff, factors = coeff * c, factors + [M]
    return scale(coeff, hadamard(*factors)) if coeff != 1 else product


def _summed(product: MatMul):
    """c A 1_{n×k} = c (A 1_n) 1_kᵀ, or c 1_{k×n} A = c 1_k (1_nᵀ A), with the sum rewritten
    when that is shorter; anything else unchanged."""
    if not isinstance(product, MatMul):
        return product
    coeff, mats = product.as_coeff_matrices()
    if len(mats) != 2 or all(isinstance(m, OneMatrix) for m in mats):
        return product
    (A, ones), side = (mats, "right") if isinstance(mats[1], OneMatrix) else (mats[::-1], "left")
    if not isinstance(ones, OneMatrix):
        return product
    k = ones.shape[1] if side == "right" else ones.shape[0]
    sums = _built(_sums(A, side), _sum_shape(A, side))
    if isinstance(sums, ZeroMatrix):
        return ZeroMatrix(*product.shape)
    if k != 1:  # the sums spread over the k columns (or rows) of the ones matrix
        sums = matmul(sums, OneMatrix(1, k)) if side == "right" else matmul(OneMatrix(k, 1), sums)
    rewritten = scale(coeff, sums)
    return rewritten if _size(rewritten) < _size(product) else product


def _sums(A, side: str) -> Terms:
    """A 1 (side "right") or 1ᵀ A ("left") as a linear combination of terms."""
    n = A.shape[1] if side == "right" else A.shape[0]
    if isinstance(A, MatAdd):
        out: Terms = {}
        for term in A.args:
            for t, c in _sums(term, side).items():
                out[t] = out.get(t, S.Zero) + c
        return {t: c for t, c in out.items() if c != 0}
    coeff, M = _coeff_matrix(A)
    if coeff != 1:
        return {t: coeff * c for t, c in _sums(M, side).items()}
    spread = _spread_of(A, side)
    if spread is not None:  # u 1_nᵀ 1_n = n u: u itself may be a mean, a sum again
        return {t: n * c for t, c in _expanded(spread, side).items()}
    if isinstance(A, HadamardProduct):
        spreads = [_spread_of(f, side) for f in A.args]
        if any(s is not None for s in spreads) and any(s is None for s in spreads):
            rest = hadamard(*(f for f, s in zip(A.args, spreads, strict=True) if s is None))
            pulled = [s for s in spreads if s is not None]
            return {hadamard(*pulled, t): c for t, c in _sums(rest, side).items()}
    ones = OneMatrix(n, 1) if side == "right" else OneMatrix(1, n)
    return {matmul(A, ones) if side == "right" else matmul(ones, A): S.One}


def _expanded(u, side: str) -> Terms:
    """u as terms, a mean written as the sum it is (an op's `as_product()`: c A 1 or c 1ᵀ A)
    so that it meets the same sum written out elsewhere."""
    form = getattr(u, "as_product", None)
    if form is not None:
        coeff, mats = _coeff_matrices(form())
        if len(mats) == 2 and _sum_side(mats) == side:
            A = mats[0] if side == "right" else mats[1]
            return {t: coeff * c for t, c in _sums(A, side).items()}
    return {u: S.One}


def _spread_of(f, side: str):
    """u when f is u 1ᵀ (a column spread over the columns: side "right") or 1 u ("left"),
    with any scalar coefficient inside u; else None."""
    coeff, mats = _coeff_matrices(f)
    if len(mats) < 2:
        return None
    if side == "right" and isinstance(mats[-1], OneMatrix) and mats[-1].shape[0] == 1:
        return scale(coeff, matmul(*mats[:-1]))
    if side == "left" and isinstance(mats[0], OneMatrix) and mats[0].shape[1] == 1:
        return scale(coeff, matmul(*mats[1:]))
    return None


def _sum_side(mats) -> str | None:
    if isinstance(mats[1], OneMatrix) and mats[1].shape[1] == 1:
        return "right"
    if isinstance(mats[0], OneMatrix) and mats[0].shape[0] == 1:
        return "left"
    return None


def _coeff_matrices(M):
    return M.as_coeff_matrices() if isinstance(M, MatMul) else (S.One, [M])


def _coeff_matrix(M):
    coeff, mats = _coeff_matrices(M)
    return (coeff, matmul(*mats)) if coeff != 1 else (S.One, M)


def _sum_shape(A, side: str) -> tuple:
    return (A.shape[0], 1) if side == "right" else (1, A.shape[1])


def _built(terms: Terms, shape: tuple):
    if not terms:
        return ZeroMatrix(*shape)
    return matadd(*(scale(c, t) for t, c in terms.items()))


def _size(expr: Basic, memo: dict | None = None) -> int:
    """How many nodes the expression tree has, a shared subexpression counted where it occurs
    (count_ops counts no Hadamard product, Hadamard power or op)."""
    memo = {} if memo is None else memo
    if expr not in memo:
        memo[expr] = 1 + sum(_size(a, memo) for a in expr.args)
    return memo[expr]
