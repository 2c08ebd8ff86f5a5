r"""Closed forms as a textbook writes them: a numeric factor common to a sum's terms cancels
against the product around it, $(2\mu - 2x)/(2\sigma^2) = (\mu - x)/\sigma^2$; a scalar common
to a matrix sum's terms is written once, $(\operatorname{softmax}(Z) - Y)/N$; a matrix shared
by terms is factored out, $(A + A^T)x$; and an entrywise reciprocal meeting its own factor in a
Hadamard product cancels. Nothing is expanded or simplified beyond that, and shared
subexpressions are visited once."""

from __future__ import annotations

import functools

import sympy
from sympy import Add, Basic, Dummy, Lambda, Mul, Pow, S
from sympy.matrices.expressions import (
    HadamardPower,
    HadamardProduct,
    MatAdd,
    MatMul,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
)
from sympy.matrices.expressions.matexpr import MatrixElement

from symdl.core.matrices import hadamard, matmul


def textbook_form(expr: Basic, memo: dict | None = None) -> Basic:
    r"""`expr` with numeric contents of sums moved into the products that hold them (where they
    cancel or combine with the product's coefficient), a scalar factor common to every term of
    a matrix sum written once in front of it, and a Hadamard product without a factor and its
    reciprocal ($P \circ P^{\circ -1}$), distributed over a sum when that makes it shorter.

    >>> import sympy
    >>> mu, x, s = sympy.symbols("mu x sigma")
    >>> textbook_form((2*mu - 2*x) / (2*s**2))
    (mu - x)/sigma**2

    `memo` ({node: its form}) may be shared between calls: the entries of one gradient share
    most of their subexpressions, each then tidied once.
    """
    memo = {} if memo is None else memo

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
            result = _tidied(result)
        memo[node] = result
        return result

    return rebuild(expr)


# rewrites the ops register (core knows no op): each takes a node and returns its textbook
# form, or None; sigmoid's turns exp(u)/(exp(u) + 1) into sigmoid(u)
REWRITES: list = []
_EXPAND_AT_MOST = 40  # operations of a scalar sum that is tried expanded


def _tidied(node: Basic) -> Basic:
    """`node`, whose arguments are tidy, with the rule for its kind applied."""
    for rewrite in REWRITES:
        found = rewrite(node)
        if found is not None:
            return found
    if isinstance(node, Mul | Pow) and not isinstance(node, MatrixExpr):
        return _absorb_contents(node)
    if isinstance(node, Add) and not isinstance(node, MatrixExpr):
        return _expanded_if_shorter(node)
    if isinstance(node, MatMul):
        return _positive_lead(matmul(*node.args))  # c (d A) B as (c d) A B
    if isinstance(node, HadamardProduct):
        return _hadamard(node)
    if isinstance(node, MatAdd):
        grouped = _common_factor(node)
        return _common_scale(grouped) if isinstance(grouped, MatAdd) else grouped
    return node


def _absorb_contents(product: Basic) -> Basic:
    """A product (or an integer power) whose sum factors lose their numeric content to the
    coefficient: (2a - 2b) c / 2 = (a - b) c."""
    coeff, factors, changed = S.One, [], False
    for factor in Mul.make_args(product):
        base, exp = factor.as_base_exp() if isinstance(factor, Pow) else (factor, S.One)
        if isinstance(base, Add) and exp.is_Integer:
            content, primitive = _primitive(base)
            if content != 1:
                coeff, factor, changed = coeff * content**exp, primitive**exp, True
        factors.append(factor)
    if not changed:
        return product
    return Mul(coeff, *factors)


@functools.lru_cache(maxsize=4096)
def _primitive(total: Add) -> tuple[Basic, Basic]:
    """`total.primitive()`, once per sum: a gradient's entries hold the same large sum (SymPy
    writes 2(out - y) as 2 out - 2y) in thousands of products, and each call re-sorts its terms."""
    return total.primitive()


def _hadamard(product: HadamardProduct) -> Basic:
    """(c A) ∘ B as c (A ∘ B), without a factor and its reciprocal (P ∘ P^{∘-1} = 1), and
    distributed over a sum factor when the terms then shorten: ((Y ∘ P^{∘-1}) - S) ∘ P as
    Y - S ∘ P."""
    coeff, factors = S.One, []
    for factor in product.args:
        c, M = _split_scalar(factor) if isinstance(factor, MatMul) else (S.One, factor)
        coeff, factors = (
            coeff * c,
            factors + list(M.args if isinstance(M, HadamardProduct) else [M]),
        )
    factors = _without_reciprocals(factors)
    tidy = _scaled(coeff, hadamard(*factors) if factors else OneMatrix(*product.shape))
    sums = [i for i, f in enumerate(factors) if isinstance(f, MatAdd)]
    if len(sums) != 1:
        return tidy
    i = sums[0]
    others = factors[:i] + factors[i + 1 :]
    terms = [_hadamard(HadamardProduct(term, *others)) for term in factors[i].args]
    distributed = _scaled(coeff, _common_scale(MatAdd(*terms)))
    return distributed if sympy.count_ops(distributed) < sympy.count_ops(tidy) else tidy


def _without_reciprocals(factors: list[Basic]) -> list[Basic]:
    """`factors` of a Hadamard product without each pair P, P^{∘-1} (written 1/x of P)."""
    left = list(factors)
    for f in factors:
        inverse = _reciprocal_of(f)
        if inverse is not None and f in left and inverse in left:
            left.remove(f)
            left.remove(inverse)
    return left


def _reciprocal_of(factor: Basic) -> Basic | None:
    """P when `factor` is the entrywise reciprocal of P, else None."""
    if isinstance(factor, HadamardPower) and factor.exp == -1:
        return factor.base
    function = getattr(factor, "function", None)
    if isinstance(function, Lambda) and function.expr == 1 / function.variables[0]:
        return factor.args[1]
    return None


def _split_scalar(term: MatMul) -> tuple[Basic, Basic]:
    """(c, M) with term = c M, M a matrix expression without a scalar factor."""
    flat = matmul(term)
    if not isinstance(flat, MatMul):
        return S.One, flat
    scalars = [a for a in flat.args if not isinstance(a, MatrixExpr)]
    mats = [a for a in flat.args if isinstance(a, MatrixExpr)]
    return Mul(*scalars), (mats[0] if len(mats) == 1 else MatMul(*mats))


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


def _common_factor(total: MatAdd) -> Basic:
    """A w + B w as (A + B) w, and w A + w B as w (A + B), for the factor shared by the most
    terms: the Matrix Cookbook's (A + Aᵀ) x."""
    parts = [_split_scalar(t) if isinstance(t, MatMul) else (S.One, t) for t in total.args]
    factors = [list(M.args) if isinstance(M, MatMul) else [M] for _, M in parts]
    best = None
    for side in (-1, 0):
        groups: dict[Basic, list[int]] = {}
        for i, mats in enumerate(factors):
            if len(mats) > 1:
                groups.setdefault(mats[side], []).append(i)
        for factor, members in groups.items():
            if len(members) > 1 and (best is None or len(members) > len(best[2])):
                best = (side, factor, members)
    if best is None:
        return total
    side, factor, members = best
    rests = [
        _scaled(parts[i][0], matmul(*(factors[i][:-1] if side == -1 else factors[i][1:])))
        for i in members
    ]
    inner = _tidied(MatAdd(*rests))
    grouped = matmul(inner, factor) if side == -1 else matmul(factor, inner)
    others = [t for i, t in enumerate(total.args) if i not in members]
    return _tidied(MatAdd(grouped, *others)) if others else grouped


def _scaled(c: Basic, M: Basic) -> Basic:
    return M if c == 1 else MatMul(c, M)


def _expanded_if_shorter(total: Add) -> Basic:
    """A small scalar sum expanded when that has fewer operations: the terms of a softmax's
    gradient -p_0 (1 - s_0) + p_1 s_0 + (1 - p_0 - p_1) s_0 collapse to s_0 - p_0."""
    if not _at_most(total, 2 * _EXPAND_AT_MOST):  # a large sum: not counted (count_ops walks it)
        return total
    ops = sympy.count_ops(total)
    if ops > _EXPAND_AT_MOST:
        return total
    expanded = Add(*(sympy.expand_mul(term, deep=False) for term in total.args))
    return expanded if sympy.count_ops(expanded) < ops else total


def _positive_lead(product: Basic) -> Basic:
    """-c A (b - a) as c A (a - b): a negative coefficient moved into a sum factor whose terms
    are then mostly positive."""
    if not isinstance(product, MatMul):
        return product
    coeff, mats = product.as_coeff_matrices()
    if not (coeff.is_number and coeff.is_negative):
        return product
    for i, M in enumerate(mats):
        if not isinstance(M, MatAdd) or any(o.T.doit() == M.doit() for o in mats if o is not M):
            continue  # not a sum, or one of a pair (x - mu)(x - mu)^T that stays as written
        negative = sum(
            isinstance(t, MatMul) and _split_scalar(t)[0].could_extract_minus_sign() for t in M.args
        )
        if negative and 2 * negative >= len(M.args):  # at least half the terms negative
            flipped = MatAdd(*(-t for t in M.args)).doit(deep=False)
            lead = [-coeff] if coeff != -1 else []
            return MatMul(*lead, *mats[:i], flipped, *mats[i + 1 :])
    return product


def _at_most(expr: Basic, nodes: int) -> bool:
    """Whether `expr` has at most `nodes` nodes, walking no further than that."""
    for k, _ in enumerate(sympy.preorder_traversal(expr)):
        if k >= nodes:
            return False
    return True
