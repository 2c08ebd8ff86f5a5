"""Tokens as columns and per-example products (symdl.ops.tokens): the compiled NumPy code
against loops over the examples written directly, and the layouts' round trip. Their
vector-Jacobian rules are checked with every matrix op's (tests/core/test_matrix.py)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from sympy import MatrixSymbol

import symdl as sd
from symdl.ops import bmm, tokens, untokens

T, d, N = 3, 2, 4


@pytest.mark.parametrize(("ta", "tb"), [(False, False), (True, False), (False, True), (True, True)])
def test_bmm_is_the_product_of_each_examples_matrices(ta, tb, rng):
    p, k, q = 2, 3, 4  # op(A_n) is p x k, op(B_n) k x q
    A_n, B_n = rng.normal(size=(N, p, k)), rng.normal(size=(N, k, q))
    A_stored = np.swapaxes(A_n, 1, 2) if ta else A_n  # each example's stored matrix
    B_stored = np.swapaxes(B_n, 1, 2) if tb else B_n

    def columns(M):  # (N, r, c) -> (r, c·N), column t·N + n = column t of example n
        return np.transpose(M, (1, 2, 0)).reshape(M.shape[1], -1)

    A = MatrixSymbol("A", A_stored.shape[1], A_stored.shape[2] * N)
    B = MatrixSymbol("B", B_stored.shape[1], B_stored.shape[2] * N)
    product = bmm(A, B, A_stored.shape[2], B_stored.shape[2], ta, tb)
    assert product.shape == (p, q * N)
    G = rng.normal(size=(p, q * N))
    C = MatrixSymbol("C", p, q * N)
    compiled = sd.derive(sympy.Trace(C.T * product), [A, B]).compile()
    value, (dA, dB) = compiled({A: columns(A_stored), B: columns(B_stored), C: G})
    expected = columns(A_n @ B_n)
    assert value == pytest.approx(np.sum(G * expected), rel=1e-12)
    G_n = np.transpose(G.reshape(p, q, N), (2, 0, 1))
    dA_n, dB_n = G_n @ np.swapaxes(B_n, 1, 2), np.swapaxes(A_n, 1, 2) @ G_n
    np.testing.assert_allclose(dA, columns(np.swapaxes(dA_n, 1, 2) if ta else dA_n), rtol=1e-12)
    np.testing.assert_allclose(dB, columns(np.swapaxes(dB_n, 1, 2) if tb else dB_n), rtol=1e-12)


def test_tokens_puts_each_token_in_a_column_and_untokens_undoes_it(rng):
    X_value = rng.normal(size=(T * d, N))
    X = MatrixSymbol("X", T * d, N)
    C = MatrixSymbol("C", d, T * N)
    compiled = sd.derive(sympy.Trace(C.T * tokens(X, T)), [C]).compile()
    _, (columns,) = compiled({X: X_value, C: np.zeros((d, T * N))})
    for t in range(T):
        np.testing.assert_array_equal(columns[:, t * N : (t + 1) * N], X_value[t * d : (t + 1) * d])
    R = MatrixSymbol("R", T * d, N)
    back = sd.derive(sympy.Trace(R.T * untokens(tokens(X, T), T)), [R]).compile()
    np.testing.assert_array_equal(back({X: X_value, R: np.zeros((T * d, N))})[1][0], X_value)


def test_bmm_refuses_matrices_that_do_not_multiply():
    A, B = MatrixSymbol("A", 2, 6), MatrixSymbol("B", 4, 6)
    with pytest.raises(ValueError, match="each example's A has 3 columns but its B has 4 rows"):
        bmm(A, B, 3, 3)
