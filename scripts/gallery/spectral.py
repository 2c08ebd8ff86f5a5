"""Gallery entries for spectral functions: the derivatives of the eigenvalues and eigenvectors of
a symmetric matrix and of the singular values of any matrix, the rules symdl's core pulls back
through, checked against finite differences of NumPy's eigen- and singular value solvers."""

from __future__ import annotations

import numpy as np
import sympy
from sympy import MatrixSymbol, Symbol, Trace

import symdl as sd
from gallery.entry import Entry, entry, part
from gallery.reference import Property
from symdl.core.explicit import evaluate
from symdl.ops.linalg import (
    RepeatedEigenvalueError,
    eigh_vectors,
    eigvalsh,
    max_eigenvalue,
    nuclear_norm,
    singular_values,
)

STEP = 1e-6  # central differences: their error, about STEP^2 times the third derivative


def _symmetric(rng, size: int) -> np.ndarray:
    B = rng.normal(size=(size, size))
    return B + B.T


def _eigen_against_differences() -> tuple[bool, str]:
    """dλ_i = v_iᵀ E v_i and dv_i = Σ_{j≠i} v_jᵀ E v_i / (λ_i − λ_j) v_j against central
    differences of numpy.linalg.eigh along random symmetric directions E."""
    rng = np.random.default_rng(0)
    A = _symmetric(rng, 4)
    w, V = np.linalg.eigh(A)
    worst_value = worst_vector = 0.0
    for _ in range(5):
        E = _symmetric(rng, 4)
        (wp, Vp), (wm, Vm) = np.linalg.eigh(A + STEP * E), np.linalg.eigh(A - STEP * E)
        Vp, Vm = Vp * np.sign(np.sum(Vp * V, axis=0)), Vm * np.sign(np.sum(Vm * V, axis=0))
        M = V.T @ E @ V
        gap = w[None, :] - w[:, None]  # gap[j, i] = λ_i − λ_j
        np.fill_diagonal(gap, np.inf)
        worst_value = max(worst_value, np.abs((wp - wm) / (2 * STEP) - np.diag(M)).max())
        worst_vector = max(worst_vector, np.abs((Vp - Vm) / (2 * STEP) - V @ (M / gap)).max())
    ok = worst_value < 1e-6 and worst_vector < 1e-6
    return ok, f"largest error {worst_value:.1e} (eigenvalues), {worst_vector:.1e} (eigenvectors)"


def _singular_against_differences() -> tuple[bool, str]:
    """dσ_i = u_iᵀ E v_i against central differences of numpy.linalg.svd along random E."""
    rng = np.random.default_rng(1)
    A = rng.normal(size=(4, 3))
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    worst = 0.0
    for _ in range(5):
        E = rng.normal(size=(4, 3))
        up, down = (np.linalg.svd(A + h * E, compute_uv=False) for h in (STEP, -STEP))
        claimed = np.einsum("ji,jk,ki->i", U, E, Vt.T)
        worst = max(worst, np.abs((up - down) / (2 * STEP) - claimed).max())
    return worst < 1e-6, f"largest error {worst:.1e} over 5 directions"


def _check_grads(losses, wrt) -> tuple[bool, str]:
    errors = []
    for loss in losses:
        check = sd.check_grad(loss, wrt, method="richardson", points=1)
        if not check:
            return False, check.report()
        errors.append(check.max_error)
    return True, f"largest error {max(errors):.1e}"


@entry
def eigenvalue_derivative() -> Entry:
    n = Symbol("n", integer=True, positive=True)
    A, c = MatrixSymbol("A", n, n), MatrixSymbol("c", n, 1)
    X, w = MatrixSymbol("X", 3, 3), MatrixSymbol("c", 3, 1)
    symmetric = X + X.T
    losses = [
        max_eigenvalue(symmetric),
        Trace(w.T * eigvalsh(symmetric)),
        Trace(w.T * sd.hadamard(eigh_vectors(X.T * X), eigh_vectors(X.T * X)) * w),
    ]

    def repeated_is_refused() -> tuple[bool, str]:
        gradient = sd.grad(max_eigenvalue(X.T * X), X)
        try:
            evaluate(gradient, {X: np.diag([1.0, 2.0, 2.0])})
        except RepeatedEigenvalueError as error:
            return True, str(error).split(";")[0]
        return False, "a gradient was returned where the largest eigenvalue is repeated"

    return Entry(
        title="Derivatives of the eigenvalues and eigenvectors of a symmetric matrix",
        prose=(
            "Differentiating $A v_i = \\lambda_i v_i$ with $v_i^T v_i = 1$ for a symmetric $A$ "
            "with distinct eigenvalues gives $d\\lambda_i = v_i^T dA\\, v_i$ and a change of "
            "$v_i$ along the other eigenvectors, each divided by the gap between eigenvalues. "
            "symdl pulls a loss's adjoint back through these rules, so sd.grad of a loss "
            "holding $\\lambda_{\\max}$, the eigenvalues or the eigenvectors works, and at a "
            "repeated eigenvalue, where no derivative exists, it refuses by name."
        ),
        derivation=sd.derive(Trace(c.T * eigvalsh(A)), [A]),
        parts=(
            part(
                "First-order perturbation (verified by finite differences)",
                (r"d\lambda_{i}", r"v_{i}^{T}\, dA\, v_{i}"),
                (
                    r"dv_{i}",
                    r"\sum_{j \neq i} \frac{v_{j}^{T}\, dA\, v_{i}}{\lambda_{i} - \lambda_{j}}"
                    r"\, v_{j}",
                ),
            ),
            part(
                "Pulled back to $A$ (verified by finite differences)",
                (r"\bar{A}", r"V \operatorname{diag}\left(\bar{\lambda}\right) V^{T}"),
                (r"\frac{\partial \lambda_{\max}}{\partial A}", r"v_{\max} v_{\max}^{T}"),
                (
                    r"\bar{A}",
                    r"V \left(F \circ V^{T} \bar{V}\right) V^{T}, \quad "
                    r"F_{ij} = \frac{1}{\lambda_{j} - \lambda_{i}}, \quad F_{ii} = 0",
                ),
            ),
        ),
        checks=(
            Property(
                "finite differences",
                "of numpy.linalg.eigh of a random symmetric $4 \\times 4$ matrix along 5 random "
                "symmetric directions, against $d\\lambda_i$ and $dv_i$",
                _eigen_against_differences,
            ),
            Property(
                "sd.check_grad",
                "of $\\lambda_{\\max}(X + X^T)$, $c^T \\boldsymbol{\\lambda}(X + X^T)$ and "
                "$c^T (V \\circ V) c$ with $V$ the eigenvectors of $X^T X$, at $3 \\times 3$, "
                "against Richardson-extrapolated central differences",
                lambda: _check_grads(losses, X),
            ),
            Property(
                "RepeatedEigenvalueError",
                "raised by the gradient of $\\lambda_{\\max}(X^T X)$ at "
                "$X = \\operatorname{diag}(1, 2, 2)$, where the largest eigenvalue is repeated",
                repeated_is_refused,
            ),
        ),
    )


@entry
def singular_value_derivative() -> Entry:
    m, n = sympy.symbols("m n", integer=True, positive=True)
    A, c = MatrixSymbol("A", m, n), MatrixSymbol("c", sympy.Min(m, n), 1)
    R, w = MatrixSymbol("R", 4, 3), MatrixSymbol("c", 3, 1)
    losses = [Trace(w.T * singular_values(R)), nuclear_norm(R)]
    return Entry(
        title="Derivatives of the singular values",
        prose=(
            "For $A = U \\Sigma V^T$ with distinct nonzero singular values, differentiating "
            "$\\sigma_i = u_i^T A v_i$ gives $d\\sigma_i = u_i^T dA\\, v_i$ (the changes of "
            "$u_i$ and $v_i$ are orthogonal to them and drop out). Pulled back, a loss's "
            "adjoint $\\bar\\sigma$ becomes $\\bar A = U \\operatorname{diag}(\\bar\\sigma) "
            "V^T$, and the nuclear norm $\\lVert A \\rVert_* = \\sum_i \\sigma_i$ has gradient "
            "$U V^T$."
        ),
        derivation=sd.derive(Trace(c.T * singular_values(A)), [A]),
        parts=(
            part(
                "First-order perturbation (verified by finite differences)",
                (r"d\sigma_{i}", r"u_{i}^{T}\, dA\, v_{i}"),
            ),
            part(
                "Pulled back to $A$ (verified by finite differences)",
                (r"\bar{A}", r"U \operatorname{diag}\left(\bar{\sigma}\right) V^{T}"),
                (r"\frac{\partial \left\|A\right\|_*}{\partial A}", r"U V^{T}"),
            ),
        ),
        checks=(
            Property(
                "finite differences",
                "of numpy.linalg.svd of a random $4 \\times 3$ matrix along 5 random directions, "
                "against $d\\sigma_i$",
                _singular_against_differences,
            ),
            Property(
                "sd.check_grad",
                "of $c^T \\boldsymbol{\\sigma}(R)$ and $\\lVert R \\rVert_*$ at $4 \\times 3$, "
                "against Richardson-extrapolated central differences",
                lambda: _check_grads(losses, R),
            ),
        ),
    )
