"""Spectral ops: sd.grad of losses holding eigenvalues, eigenvectors, singular values, the
nuclear norm and log-determinants, compiled and evaluated, against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from sympy import Determinant, Identity, MatrixSymbol, Trace, log

import symdl as sd
from symdl.core.explicit import evaluate
from symdl.core.matrices import hadamard
from symdl.ops.linalg import (
    RepeatedEigenvalueError,
    SpectralError,
    eigh_vectors,
    eigvalsh,
    max_eigenvalue,
    nuclear_norm,
    singular_values,
)

X = MatrixSymbol("X", 3, 3)
R = MatrixSymbol("R", 4, 3)
c = MatrixSymbol("c", 3, 1)

LOSSES = {
    "max_eigenvalue": (max_eigenvalue(X.T * X), X),
    "eigvalsh": (Trace(c.T * eigvalsh(X.T * X + X + X.T)), X),
    "eigh_vectors": (Trace(c.T * hadamard(eigh_vectors(X.T * X), eigh_vectors(X.T * X)) * c), X),
    "singular_values": (Trace(c.T * singular_values(R)), R),
    "nuclear_norm": (nuclear_norm(R) ** 2 + nuclear_norm(R.T * R), R),
    "logdet_covariance": (log(Determinant(R.T * R / 4 + Identity(3))), R),
}


def _finite_differences(value, at, M, eps=1e-6):
    numeric = np.zeros(at[M].shape)
    for index in np.ndindex(*at[M].shape):
        up, down = dict(at), dict(at)
        step = np.zeros(at[M].shape)
        step[index] = eps
        up[M], down[M] = at[M] + step, at[M] - step
        numeric[index] = (value(up) - value(down)) / (2 * eps)
    return numeric


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_finite_differences(name):
    loss, M = LOSSES[name]
    rng = np.random.default_rng(3)
    at = {X: rng.normal(size=(3, 3)), R: rng.normal(size=(4, 3)), c: rng.normal(size=(3, 1))}
    at = {k: v for k, v in at.items() if loss.has(k)}
    compiled = sd.derive(loss, [M]).compile()
    value, (gradient,) = compiled(**{str(k): v for k, v in at.items()})
    assert abs(value - evaluate(loss, at)) < 1e-10
    numeric = _finite_differences(lambda p: compiled(**{str(k): v for k, v in p.items()})[0], at, M)
    assert np.allclose(gradient, numeric, atol=1e-6), (gradient, numeric)
    assert np.allclose(evaluate(sd.grad(loss, M), at), numeric, atol=1e-6)


def test_rules_read_as_the_textbook_forms():
    assert str(sd.grad(max_eigenvalue(X), X)) == "top_eigenvector(X)*top_eigenvector(X).T"
    assert str(sd.grad(nuclear_norm(R), R)) == "svd_factor(R, 0)*svd_factor(R, 1).T"


def test_values_agree_with_numpy():
    A = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]])
    assert np.allclose(evaluate(eigvalsh(X), {X: A})[:, 0], np.linalg.eigvalsh(A))
    assert abs(evaluate(max_eigenvalue(X), {X: A}) - np.linalg.eigvalsh(A)[-1]) < 1e-12
    B = np.arange(12.0).reshape(4, 3) ** 1.5
    assert np.allclose(evaluate(singular_values(R), {R: B})[:, 0], np.linalg.svd(B)[1])
    assert abs(evaluate(nuclear_norm(R), {R: B}) - np.linalg.norm(B, "nuc")) < 1e-9


def test_a_non_square_matrix_has_no_eigenvalues():
    with pytest.raises(SpectralError, match=r"eigvalsh: the matrix has shape \(4, 3\)"):
        eigvalsh(R)


def test_symbolic_entries_are_refused_by_name():
    A = sympy.Matrix(2, 2, sympy.symbols("a:4"))
    assert eigvalsh(X).subs(X, sympy.ImmutableMatrix(A)).doit().has(eigvalsh)
    with pytest.raises(SpectralError, match="max_eigenvalue: the entries"):
        max_eigenvalue(X).explicit(sympy.ImmutableMatrix(A))


def test_a_repeated_largest_eigenvalue_is_refused_by_name_not_a_nan():
    """λ_max has a kink where the largest eigenvalue is repeated: its eigenvector is any unit
    vector of a plane, so the gradient v vᵀ would be an arbitrary answer. Refused when
    evaluated and when the compiled gradient runs; a distinct largest eigenvalue still works."""
    loss = max_eigenvalue(X.T * X) + Trace(X)
    repeated = {X: np.diag([1.0, 2.0, 2.0])}  # XᵀX has eigenvalues 1, 4, 4
    gradient = sd.grad(loss, X)
    message = r"max_eigenvalue: the largest eigenvalue 4 of the 3x3 matrix is repeated"
    with pytest.raises(RepeatedEigenvalueError, match=message):
        evaluate(gradient, repeated)
    compiled = sd.derive(loss, [X]).compile()
    with pytest.raises(RepeatedEigenvalueError, match="no derivative there"):
        compiled(X=repeated[X])
    assert abs(evaluate(loss, repeated) - 9.0) < 1e-12  # the value itself is fine
    distinct = np.diag([1.0, 2.0, 3.0])
    value, (G,) = compiled(X=distinct)
    assert value == 15.0 and np.allclose(G, np.diag([1.0, 1.0, 7.0]))


def test_eigenvectors_at_a_repeated_eigenvalue_are_refused_by_name_not_inf():
    loss, M = LOSSES["eigh_vectors"]
    compiled = sd.derive(loss, [M]).compile()
    at = {"X": np.diag([1.0, 1.0, 2.0]), "c": np.ones((3, 1))}
    with pytest.raises(
        RepeatedEigenvalueError, match="eigh_vectors: the 3x3 matrix has a repeated"
    ):
        compiled(**at)


def test_eckart_young_the_truncated_svd_is_the_best_rank_k_approximation():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(8, 6))
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    for k in range(1, 6):
        best = U[:, :k] * s[:k] @ Vt[:k]
        error = np.linalg.norm(A - best)
        assert abs(error - np.sqrt(np.sum(s[k:] ** 2))) < 1e-10  # Frobenius error = tail of σ
        assert abs(np.linalg.norm(A - best, 2) - s[k]) < 1e-10  # spectral error = σ_{k+1}
        for _ in range(20):  # no random rank-k matrix does better
            other = rng.normal(size=(8, k)) @ rng.normal(size=(k, 6))
            assert np.linalg.norm(A - other) > error


A = MatrixSymbol("A", 3, 3)


@pytest.mark.parametrize(
    "loss",
    [
        max_eigenvalue(A + A.T),
        max_eigenvalue(X.T * X) + Trace(X),
        eigvalsh(A + A.T)[0, 0] ** 2 + eigvalsh(A + A.T)[2, 0],
        nuclear_norm(R),
        singular_values(R)[0, 0] + 2 * nuclear_norm(R),
    ],
    ids=[
        "max_eigenvalue(A+A.T)",
        "max_eigenvalue(X.T*X)",
        "eigvalsh entries",
        "nuclear_norm",
        "singular_values",
    ],  # fmt: skip
)
def test_check_grad_takes_spectral_losses(loss):
    """check_grad writes the matrix out entry by entry and runs the eigen-solver point by point."""
    M = next(iter(loss.atoms(MatrixSymbol) - {c}))
    check = sd.check_grad(loss, M, points=2)
    assert check, check.report()
    assert sd.check_grad(loss, [M], points=1)  # a list of MatrixSymbols, entry by entry


def test_check_grad_takes_a_log_determinant_in_a_list():
    L = MatrixSymbol("L", 2, 2)
    S = L * L.T + Identity(2) / 10
    assert sd.check_grad(log(Determinant(S)), [L], points=2)


def test_check_grad_takes_a_gaussian_nll_with_a_full_covariance():
    """log det and the inverse of S = L Lᵀ + I/10 at 3x3, in L and mu (hung in SymPy's
    simplifying inverse before explicit inverses became adj/det)."""
    L, x, mu = MatrixSymbol("L", 3, 3), MatrixSymbol("x", 3, 1), MatrixSymbol("mu", 3, 1)
    S = L * L.T + sympy.Rational(1, 10) * sympy.Identity(3)
    nll = (sympy.Trace((x - mu).T * S.I * (x - mu)) + sympy.log(sympy.Determinant(S))) / 2
    assert sd.check_grad(nll, [L, mu])


def test_eigenvalues_weighted_unequally_at_a_repeated_eigenvalue_are_refused():
    from symdl.ops.linalg import RepeatedEigenvalueError, eigvalsh

    X, c = sympy.MatrixSymbol("X", 3, 3), sympy.MatrixSymbol("c", 3, 1)
    step = sd.derive((c.T * eigvalsh(X))[0, 0], X).compile()
    diag = np.diag([1.0, 1.0, 3.0])  # eigenvalue 1 twice
    with pytest.raises(RepeatedEigenvalueError, match="weighs them differently"):
        step({"X": diag, "c": np.array([[1.0], [2.0], [3.0]])})
    _, grad = step({"X": diag, "c": np.array([[2.0], [2.0], [5.0]])})  # alike: a derivative
    assert np.allclose(grad, np.diag([2.0, 2.0, 5.0]))
    A = np.random.default_rng(3).normal(size=(3, 3))
    A = A + A.T  # distinct eigenvalues: V diag(c) V^T, as finite differences say
    weights = np.array([[1.0], [-2.0], [0.5]])
    _, grad = step({"X": A, "c": weights})
    h, numeric = 1e-6, np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            E = np.zeros((3, 3))
            E[i, j] += h / 2  # a symmetric move: eigvalsh reads one triangle only
            E[j, i] += h / 2
            up = step({"X": A + E, "c": weights})[0]
            down = step({"X": A - E, "c": weights})[0]
            numeric[i, j] = (up - down) / (2 * h)
    assert np.allclose(grad, numeric, atol=1e-6)


def test_singular_values_at_zero_or_weighed_unequally_when_equal_are_refused():
    from symdl.ops.linalg import nuclear_norm, singular_values

    X, c = sympy.MatrixSymbol("X", 3, 2), sympy.MatrixSymbol("c", 2, 1)
    weighted = sd.derive((c.T * singular_values(X))[0, 0], X).compile()
    nuclear = sd.derive(nuclear_norm(X), X).compile()
    rank_one = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    with pytest.raises(RepeatedEigenvalueError, match="singular value 0"):
        nuclear({"X": rank_one})
    with pytest.raises(RepeatedEigenvalueError, match="singular value 0"):
        weighted({"X": rank_one, "c": np.array([[1.0], [1.0]])})
    equal = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]])  # sigma = (2, 2)
    with pytest.raises(RepeatedEigenvalueError, match="weighs them differently"):
        weighted({"X": equal, "c": np.array([[1.0], [3.0]])})
    _, grad = nuclear({"X": equal})  # alike: U V^T, the identity's top 3x2 block
    assert np.allclose(grad, np.eye(3, 2))
