r"""Sums of the rows ($M\mathbf{1}$) or columns ($\mathbf{1}^T M$) of a matrix expression in
closed form, as a person simplifies them: the sum distributes over a matrix sum, a factor
constant along the summed axis comes out ($(u\mathbf{1}^T \circ M)\mathbf{1} = u \circ
M\mathbf{1}$), and a matrix centred along that axis sums to zero ($(X - \operatorname{mean}(X)
\mathbf{1}^T)\mathbf{1} = 0$). Batch and layer norm's gradients reach the textbook's form so."""

from __future__ import annotations

from collections.abc import Mapping

import sympy
from sympy import (
    Basic,
    HadamardProduct,
    MatAdd,
    MatMul,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
    S,
    ZeroMatrix,
)
from sympy.matrices.expressions.matexpr import MatrixElement

from symdl.core.matrices import hadamard, matadd, matmul, scale

Terms = dict  # {matrix term: scalar coefficient}, a linear combination


def tidy_sums(expr: Basic) -> Basic:
    """`expr` with each product by the all-ones matrix ($M \\mathbf{1}$, $\\mathbf{1}^T M$)
    rewritten by the rules above where that makes the expression smaller; a Hadamard
    product's scalar factors brought in front ($(cA) \\circ B = c (A \\circ B)$)."""
    if not isinstance(expr, MatrixExpr):  # a scalar closed form has no matrix sums
        return expr
    return _Sums({}, lambda new, old: _size(new) < _size(old)).rebuild(expr)


def sums_through_steps(rhs: Basic, steps: Mapping[Basic, Basic]) -> Basic:
    """`rhs` (a step of a program whose matrix steps are `steps`: name -> right-hand side)
    with its row and column sums rewritten by the same rules, looking through the steps they
    read, where that costs no more full-size array passes: e.g. with x̂ = C ∘ s 1ᵀ,
    (Ḡ ∘ x̂) 1 = s ∘ (Ḡ ∘ C) 1, a sum another step needs too (γ's and σ's adjoints share it)."""
    return _Sums(steps, lambda new, old: _passes(new) <= _passes(old) and _real(new)).rebuild(rhs)


class _Sums:
    """The rules, with `steps` to look through (empty: the expression alone) and `better(new,
    old)` saying whether a rewritten sum is kept."""

    def __init__(self, steps: Mapping[Basic, Basic], better):
        self.steps, self.better = steps, better

    def rebuild(self, expr: Basic) -> Basic:
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
                        new = self.summed(matmul(*new.args))
                    memo[node] = new
            return memo[node]

        return rebuild(expr)

    def summed(self, product):
        """c A 1_{n×k} = c (A 1_n) 1_kᵀ, or c 1_{k×n} A = c 1_k (1_nᵀ A), the sum rewritten
        when that is better; anything else unchanged."""
        if not isinstance(product, MatMul):
            return product
        coeff, mats = product.as_coeff_matrices()
        if len(mats) != 2 or all(isinstance(m, OneMatrix) for m in mats):
            return product
        (A, ones), side = (
            (mats, "right") if isinstance(mats[1], OneMatrix) else (mats[::-1], "left")
        )
        if not isinstance(ones, OneMatrix) or ones.shape[0 if side == "right" else 1] == 1:
            return product  # u 1ᵀ or 1 u: a spread, nothing summed
        k = ones.shape[1] if side == "right" else ones.shape[0]
        sums = _built(self.sums(A, side), _sum_shape(A, side))
        if isinstance(sums, ZeroMatrix):
            rewritten = ZeroMatrix(*product.shape)
        else:
            if k != 1:  # the sums spread over the k columns (or rows) of the ones matrix
                spread = (sums, OneMatrix(1, k)) if side == "right" else (OneMatrix(k, 1), sums)
                sums = matmul(*spread)
            rewritten = scale(coeff, sums)
        return rewritten if self.better(rewritten, product) else product

    def sums(self, A, side: str) -> Terms:
        """A 1 (side "right") or 1ᵀ A ("left") as a linear combination of terms."""
        n = A.shape[1] if side == "right" else A.shape[0]
        if A in self.steps:  # a step read through where that says more than its sum
            through = self.sums(self.steps[A], side)
            return (
                through if through != {_plain_sum(self.steps[A], side): S.One} else _plain(A, side)
            )
        if isinstance(A, MatAdd):
            out: Terms = {}
            for term in A.args:
                for t, c in self.sums(term, side).items():
                    out[t] = out.get(t, S.Zero) + c
            return {t: c for t, c in out.items() if c != 0}
        coeff, M = _coeff_matrix(A)
        if coeff != 1:
            return {t: coeff * c for t, c in self.sums(M, side).items()}
        spread = spread_of(A, side)
        if spread is not None:  # u 1_nᵀ 1_n = n u: u itself may be a mean, a sum again
            return {t: n * c for t, c in self.expanded(spread, side).items()}
        if isinstance(A, HadamardProduct):
            factors = [g for f in A.args for g in self.factors(f, side)]
            spreads = [spread_of(f, side) for f in factors]
            if any(s is not None for s in spreads) and any(s is None for s in spreads):
                rest = hadamard(*(f for f, s in zip(factors, spreads, strict=True) if s is None))
                pulled = [s for s in spreads if s is not None]
                return {hadamard(*pulled, t): c for t, c in self.sums(rest, side).items()}
        return _plain(A, side)

    def factors(self, f, side: str) -> list:
        """f, or the factors of the step f when it is a Hadamard product with a spread."""
        definition = self.steps.get(f)
        if isinstance(definition, HadamardProduct) and any(
            spread_of(g, side) is not None for g in definition.args
        ):
            return list(definition.args)
        return [f]

    def expanded(self, u, side: str) -> Terms:
        """u as terms: a mean written as the sum it is (an op's `as_product()`: c A 1 or
        c 1ᵀ A), or a step that is such a sum, so that it meets the same sum elsewhere."""
        coeff, u = _coeff_matrix(u)
        form = self.steps.get(u, u)
        if hasattr(form, "as_product"):
            form = form.as_product()
        scaled, mats = _coeff_matrices(form)
        if len(mats) == 2 and _sum_side(mats) == side:
            A = mats[0] if side == "right" else mats[1]
            return {t: coeff * scaled * c for t, c in self.sums(A, side).items()}
        return {u: coeff}


def _coefficients_out(product: HadamardProduct):
    coeff, factors = S.One, []
    for f in product.args:
        c, M = _coeff_matrix(f)
        coeff, factors = coeff * c, factors + [M]
    return scale(coeff, hadamard(*factors)) if coeff != 1 else product


def _plain_sum(A, side: str):
    n = A.shape[1] if side == "right" else A.shape[0]
    return matmul(A, OneMatrix(n, 1)) if side == "right" else matmul(OneMatrix(1, n), A)


def _plain(A, side: str) -> Terms:
    return {_plain_sum(A, side): S.One}


def spread_of(f, side: str):
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


def _full(node) -> bool:
    return all(sympy.sympify(d) != 1 for d in node.shape)


def _passes(expr: Basic) -> int:
    """Full-size array passes that computing `expr` takes, a repeat counted once (it becomes
    one temporary): each full-size node but a symbol, a spread (a broadcast) or the all-ones
    matrix, and each sum of a full-size matrix."""
    counted = set()
    for node in sympy.preorder_traversal(expr):
        if not isinstance(node, MatrixExpr) or isinstance(node, MatrixSymbol | OneMatrix):
            continue
        if isinstance(node, MatMul):
            coeff, mats = node.as_coeff_matrices()
            if any(isinstance(m, OneMatrix) for m in mats):  # a sum, or a broadcast
                if any(not isinstance(m, OneMatrix) and _full(m) for m in mats):
                    counted.add(node)
                continue
        if _full(node):
            counted.add(node)
    return len(counted)


def _real(expr: Basic) -> bool:
    """Not a zero matrix: the compiled code keeps a gradient that is exactly 0 (its dtype
    comes from the arrays it is computed from)."""
    return not isinstance(expr, ZeroMatrix)
