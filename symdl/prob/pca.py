r"""PCA as maximising variance under a unit-norm constraint: the Lagrangian
$\mathcal{L}(w, \lambda) = w^\top S w - \lambda (w^\top w - 1)$ is stationary where
$S w = \lambda w$, so the best direction is the top eigenvector and its variance the eigenvalue."""

from __future__ import annotations

import numpy as np
import sympy
from sympy import MatrixSymbol, Trace

from symdl.core.calculus import grad

DIMENSION = sympy.Symbol("d", integer=True, positive=True)


def pca_lagrangian(dimension: int | sympy.Symbol = DIMENSION):
    """The Lagrangian of the first principal direction and its symbols.

    Returns:
        (lagrangian, w, S, lam): a scalar expression of the direction `w` (d x 1), the
        covariance `S` (d x d) and the multiplier `lam`.
    """
    w, S = MatrixSymbol("w", dimension, 1), MatrixSymbol("S", dimension, dimension)
    lam = sympy.Symbol("lambda", real=True)
    return Trace(w.T * S * w) - lam * (Trace(w.T * w) - 1), w, S, lam


def stationarity(dimension: int | sympy.Symbol = DIMENSION):
    r"""$\partial\mathcal{L}/\partial w$ from symdl's reverse mode: $(S + S^\top) w - 2\lambda w$,
    zero exactly where $S w = \lambda w$ for a symmetric $S$."""
    lagrangian, w, S, lam = pca_lagrangian(dimension)
    return grad(lagrangian, w), (w, S, lam)


def principal_components(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top `k` principal directions (columns) of data `X` (N x d) and the fraction of
    the variance each explains (all d fractions, descending)."""
    centred = X - X.mean(axis=0)
    variances, directions = np.linalg.eigh(centred.T @ centred / (len(X) - 1))
    order = np.argsort(variances)[::-1]
    variances = np.clip(variances[order], 0, None)
    return directions[:, order[:k]], variances / variances.sum()


__all__ = ["pca_lagrangian", "principal_components", "stationarity"]
