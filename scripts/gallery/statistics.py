"""Gallery entries for statistics: PCA as an eigenproblem, the Gaussian negative log-likelihood."""

from __future__ import annotations

import numpy as np
import sympy
from sympy import Identity, MatrixSymbol, Symbol

import symdl as sd
from gallery.entry import Entry, N, dL, entry, grad_check, part
from gallery.reference import Claim, ExplicitDiff, Property
from symdl.core.explicit import evaluate
from symdl.render.latex import Equation, latex


@entry
def pca() -> Entry:
    n = Symbol("n", integer=True, positive=True)
    w, Sigma = MatrixSymbol("w", n, 1), MatrixSymbol("Sigma", n, n)
    X = MatrixSymbol("X", n, N)
    lam = Symbol("lambda", real=True)
    lagrangian = w.T * Sigma * w - lam * (w.T * w - Identity(1))
    covariance = {Sigma: X * X.T / N}  # symmetric, as a covariance is
    claims = [
        Claim(
            dL("w"),
            (Sigma + Sigma.T) * w - 2 * lam * w,
            lagrangian,
            w,
            "Petersen and Pedersen (2012), The Matrix Cookbook, eq. (81)",
        ),
        Claim(
            dL("w"),
            2 * Sigma * w - 2 * lam * w,
            lagrangian.xreplace(covariance),
            w,
            "Bishop (2006), Sec. 12.1.1, for the covariance $\\Sigma = X X^T / N$",
            covariance,
        ),
    ]

    def top_eigenvector() -> tuple[bool, str]:
        rng = np.random.default_rng(0)
        data = rng.normal(size=(3, 3)) @ rng.normal(size=(3, 200))
        data -= data.mean(axis=1, keepdims=True)
        cov = data @ data.T / data.shape[1]
        values, vectors = np.linalg.eigh(cov)
        top, v = values[-1], vectors[:, -1:]
        sizes = {n: 3}
        gradient = sd.grad(lagrangian, w).xreplace(sizes)
        at = {Sigma.xreplace(sizes): cov, w.xreplace(sizes): v, lam: top}
        residual = float(np.abs(evaluate(gradient, at)).max())
        u = rng.normal(size=(3, 5000))
        u /= np.linalg.norm(u, axis=0)
        most = float(np.max(np.einsum("ik,ij,jk->k", u, cov, u)))
        ok = residual < 1e-10 and most <= top + 1e-12
        return (
            ok,
            f"gradient {residual:.1e} at the top eigenvector; best random variance {most / top:.4f} of it",
        )

    return Entry(
        title="PCA as an eigenproblem",
        prose=(
            "The first principal direction maximises the variance $w^T \\Sigma w$ subject to "
            "$w^T w = 1$. Setting the gradient of the Lagrangian to zero gives $\\Sigma w = "
            "\\lambda w$: $w$ is an eigenvector, the variance along it is $\\lambda$, and the "
            "largest eigenvalue's eigenvector is the maximum."
        ),
        derivation=sd.derive(lagrangian, w),
        parts=(
            part("Stationarity (verified)", claims[0].equation),
            part(
                "For a covariance, which is symmetric (verified)",
                Equation(claims[1].lhs, (latex(claims[1].rhs), "0")),
                (Sigma * w, lam * w),
                (w.T * Sigma * w, lam * w.T * w, lam),
            ),
        ),
        checks=(
            *claims,
            Property(
                "numpy.linalg.eigh",
                "of a sample covariance: its top eigenvector makes the gradient 0, and no "
                "random unit vector has more variance",
                top_eigenvector,
            ),
        ),
    )


@entry
def gaussian_nll() -> Entry:
    x, mu, s = sympy.symbols("x mu s", real=True)
    sigma = Symbol("sigma", positive=True)
    nll = sympy.log(sigma) + (mu - x) ** 2 / (2 * sigma**2) + sympy.log(2 * sympy.pi) / 2
    nll_s = (sympy.log(2 * sympy.pi) + s + (mu - x) ** 2 * sympy.exp(-s)) / 2
    source, log_variance = "Bishop (2006), Sec. 1.2.4", "Kendall and Gal (2017)"
    claims = [
        Claim(dL(r"\mu"), (mu - x) / sigma**2, nll, mu, source),
        Claim(dL(r"\sigma"), 1 / sigma - (mu - x) ** 2 / sigma**3, nll, sigma, source),
        Claim(dL(r"\mu"), (mu - x) * sympy.exp(-s), nll_s, mu, log_variance),
        Claim(dL("s"), (1 - (mu - x) ** 2 * sympy.exp(-s)) / 2, nll_s, s, log_variance),
    ]
    return Entry(
        title="Gaussian negative log-likelihood",
        prose=(
            "The loss $-\\log \\mathcal{N}(x \\mid \\mu, \\sigma^2)$ of a network predicting a "
            "mean and a spread. Predicting $s = \\log \\sigma^2$ instead of $\\sigma$ keeps the "
            "variance positive and the gradient bounded as $\\sigma \\to 0$."
        ),
        derivation=sd.derive(nll, [mu, sigma], names={mu - x: "r"}),
        parts=(
            part("Published form (verified)", *(c.equation for c in claims[:2])),
            part(
                "With $s = \\log \\sigma^2$ (verified)",
                (Symbol("L"), nll_s),
                *(c.equation for c in claims[2:]),
            ),
        ),
        checks=(
            *claims,
            ExplicitDiff(nll, (mu, sigma), claimed=tuple(c.rhs for c in claims[:2])),
            grad_check(nll_s, [mu, s]),
        ),
    )
