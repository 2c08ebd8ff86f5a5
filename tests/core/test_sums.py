"""Closed forms of sums over a row or column (symdl.core.sums): batch and layer norm's gradients
as short as the textbook's (the gallery's hand-written forms), and the rules behind them."""

from __future__ import annotations

import gallery.networks
import numpy as np
import pytest
import sympy
from gallery.reference import Claim, substitute
from sympy import MatrixSymbol, OneMatrix, Symbol, ZeroMatrix

import symdl as sd
from symdl.core.explicit import evaluate
from symdl.core.matrices import hadamard
from symdl.core.sums import _size, tidy_sums
from symdl.ops import mean

d, N = Symbol("d", integer=True, positive=True), Symbol("N", integer=True, positive=True)


def _claims(entry_name: str) -> list[Claim]:
    entry = getattr(gallery.networks, entry_name)()
    return [check for check in entry.checks if isinstance(check, Claim)]


@pytest.mark.parametrize("entry_name", ["batch_norm", "layer_norm"])
def test_normalisation_gradients_are_as_short_as_the_textbook(entry_name):
    """Each gradient symdl derives has at most 1.1x the operations (and tree nodes) of the
    published form written out in the same symbols (∂L/∂X had 57 operations against 34 and
    281 nodes against 190 before the sums were simplified: the adjoint of μ repeated the
    whole of C̄; now 32-34 and 182-190)."""
    for claim in _claims(entry_name):
        derived = sd.grad(claim.f, claim.wrt)
        by_hand = substitute(claim.rhs, claim.where)
        assert sympy.count_ops(derived) <= 1.1 * sympy.count_ops(by_hand), (claim.wrt, derived)
        assert _size(derived) <= 1.1 * _size(by_hand), (claim.wrt, derived)


@pytest.mark.parametrize("entry_name", ["batch_norm", "layer_norm"])
def test_the_short_closed_forms_are_the_published_values(entry_name):
    """The simplified closed form against the hand-written one at explicit sizes and random
    values: the same numbers (an independent reference: the published formula)."""
    rng = np.random.default_rng(5)
    sizes = {d: 3, N: 4}
    for claim in _claims(entry_name):
        derived = sd.grad(claim.f, claim.wrt).xreplace(sizes)
        by_hand = substitute(claim.rhs, claim.where).xreplace(sizes)
        leaves = derived.free_symbols | by_hand.free_symbols
        values = {
            s.xreplace(sizes): rng.normal(size=s.xreplace(sizes).shape)
            for s in claim.f.atoms(MatrixSymbol)
        }
        values |= {s: 1e-3 for s in leaves if isinstance(s, Symbol) and s.name == "epsilon"}
        np.testing.assert_allclose(evaluate(derived, values), evaluate(by_hand, values), rtol=1e-9)


def test_a_spread_factor_comes_out_of_a_row_sum():
    u, M = MatrixSymbol("u", d, 1), MatrixSymbol("M", d, N)
    summed = tidy_sums(hadamard(u * OneMatrix(1, N), M) * OneMatrix(N, 1))
    assert summed == hadamard(u, M * OneMatrix(N, 1))
    summed = tidy_sums(OneMatrix(1, d) * hadamard(OneMatrix(d, 1) * u.T, M.T.T))
    assert summed == hadamard(u.T, OneMatrix(1, d) * M)


def test_a_centred_matrix_sums_to_zero_along_its_mean():
    """(Z - mean(Z) 1ᵀ) 1 = 0 and 1ᵀ (Z - 1 mean(Z)) = 0, Z a sum itself (W X + b 1ᵀ)."""
    W, X, b = MatrixSymbol("W", d, 3), MatrixSymbol("X", 3, N), MatrixSymbol("b", d, 1)
    Z = W * X + b * OneMatrix(1, N)
    rows = (Z - mean(Z, 1) * OneMatrix(1, N)) * OneMatrix(N, 1)
    assert tidy_sums(rows) == ZeroMatrix(d, 1)
    columns = OneMatrix(1, d) * (Z - OneMatrix(d, 1) * mean(Z, 0))
    assert tidy_sums(columns) == ZeroMatrix(1, N)


def test_sums_that_do_not_simplify_stay():
    """Centred along the other axis, or a plain sum: nothing to gain, the product stays."""
    X = MatrixSymbol("X", d, N)
    plain = X * OneMatrix(N, 1)
    assert tidy_sums(plain) == plain
    other_axis = (X - OneMatrix(d, 1) * mean(X, 0)) * OneMatrix(N, 1)
    assert tidy_sums(other_axis) == other_axis
