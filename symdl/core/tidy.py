r"""Closed forms with their constants as a textbook writes them: a numeric factor common to a
sum's terms cancels against the product around it, $(2\mu - 2x)/(2\sigma^2) = (\mu - x)/\sigma^2$,
and a scalar common to a matrix sum's terms is factored out, $(\operatorname{softmax}(Z) - Y)/N$.
Nothing is expanded or simplified beyond that, and shared subexpressions are visited once."""

from __future__ import annotations

import sympy
from sympy import Add, Basic, Dummy, Lambda, Mul, Pow, S
from sympy.matrices.expressions import (
    HadamardProduct,
    MatAdd,
    MatMul,
    MatrixExpr,
    MatrixSymbol,
)
from sympy.matrices.expressions.matexpr import MatrixElement


def cancel_constants(expr: Basic) -> Basic:
    """`expr` with numeric contents of sums moved into the products that hold them (where they
    cancel or combine with the product's coefficient), and a scalar factor common to every
    term of a matrix sum written once in front of it.

    >>> import sympy
    >>> mu, x, s = sympy.symbols("mu x sigma")
    >>> cancel_constants((2*mu - 2*x) / (2*s**2))
    (mu - x)/sigma**2
    """
    memo: dict[Basic, Basic] = {}

    def rebuild(node: Basic) -> Basic:
        if node in memo:
            return memo[node]
        result = node
        if not (node.is_Atom or isinstance(node, MatrixSymbol | Lambda)):
            args = [rebuild(a) for a in node.args]
            if args != list(node.args):
                # MatrixElement's func would evaluate the entry of a product into an index sum
                build = MatrixElement if isinstance(node, MatrixElement) else node.func
                result = build(*args)
            if isinstance(result, Mul | Pow) and not isinstance(result, MatrixExpr):
                result = _absorb_contents(result)
            elif isinstance(result, HadamardProduct):
                result = _scalars_in_front(result)
            elif isinstance(result, MatAdd):
                result = _common_scale(result)
        memo[node] = result
        return result

    return rebuild(expr)


def _absorb_contents(product: Basic) -> Basic:
    """A product (or an integer power) whose sum factors lose their numeric content to the
    coefficient: (2a - 2b) c / 2 = (a - b) c."""
    coeff, factors, changed = S.One, [], False
    for factor in Mul.make_args(product):
        base, exp = factor.as_base_exp() if isinstance(factor, Pow) else (factor, S.One)
        if isinstance(base, Add) and exp.is_Integer:
            content, primitive = base.primitive()
            if content != 1:
                coeff, factor, changed = coeff * content**exp, primitive**exp, True
        factors.append(factor)
    if not changed:
        return product
    return Mul(coeff, *factors)


def _scalars_in_front(product: HadamardProduct) -> Basic:
    """(c A) ∘ B as c (A ∘ B): the scalar written once, in front."""
    coeff, factors = S.One, []
    for factor in product.args:
        c, M = _split_scalar(factor) if isinstance(factor, MatMul) else (S.One, factor)
        coeff *= c
        factors.append(M)
    if coeff == 1:
        return product
    return MatMul(coeff, HadamardProduct(*factors))


def _split_scalar(term: MatMul) -> tuple[Basic, Basic]:
    """(c, M) with term = c M, M a matrix expression without a scalar factor."""
    scalars = [a for a in term.args if not isinstance(a, MatrixExpr)]
    mats = [a for a in term.args if isinstance(a, MatrixExpr)]
    coeff = Mul(*scalars)
    return coeff, (mats[0] if len(mats) == 1 else MatMul(*mats))


def _common_scale(total: MatAdd) -> Basic:
    """c A + c B as c (A + B) when every term has the scalar factor c (1/N, 2/N, ...)."""
    parts = [_split_scalar(t) if isinstance(t, MatMul) else (S.One, t) for t in total.args]
    marks = [Dummy() for _ in parts]
    factored = sympy.factor_terms(Add(*(c * m for (c, _), m in zip(parts, marks, strict=True))))
    common, _ = factored.as_independent(*marks, as_Add=False)
    if common in (1, -1) or not common.is_commutative:
        return total
    terms = [_scaled(c / common, M) for c, M in parts]
    return MatMul(common, MatAdd(*terms))


def _scaled(c: Basic, M: Basic) -> Basic:
    return M if c == 1 else MatMul(c, M)
