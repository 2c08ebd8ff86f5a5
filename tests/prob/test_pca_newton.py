"""PCA from a Lagrangian (stationarity is the eigenproblem) on the digits; Newton's method with
symdl's Hessian against gradient descent on logistic regression."""

from __future__ import annotations

import numpy as np
import sympy

import symdl as sd
from symdl.core.explicit import evaluate
from symdl.prob.pca import principal_components, stationarity


def test_lagrangian_stationarity_is_the_eigenproblem():
    gradient, (w, S, lam) = stationarity(3)
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 3))
    cov = A @ A.T
    values, vectors = np.linalg.eigh(cov)
    for i in range(3):  # every eigenpair is a stationary point...
        at = {w: vectors[:, i : i + 1], S: cov, lam: values[i]}
        assert np.allclose(evaluate(gradient, at), 0, atol=1e-12)
    at = {w: np.ones((3, 1)) / np.sqrt(3), S: cov, lam: 1.0}  # ...and a non-eigenvector is not
    assert np.abs(evaluate(gradient, at)).max() > 1e-3
    u = rng.normal(size=(3, 200))  # the top eigenvector has the largest variance
    u /= np.linalg.norm(u, axis=0)
    assert np.all(np.einsum("ij,ik,kj->j", u, cov, u) <= values[-1] + 1e-12)


def test_pca_on_the_digits_explains_variance_in_decreasing_order():
    X, _ = sd.datasets.load_digits()
    X = np.asarray(X, dtype=float).reshape(len(X), -1)
    directions, explained = principal_components(X, 2)
    assert np.all(np.diff(explained) <= 1e-12)
    assert abs(explained.sum() - 1) < 1e-12
    assert np.allclose(directions.T @ directions, np.eye(2), atol=1e-10)
    assert explained[:10].sum() > 0.5  # a few directions carry most of the variance


def _logistic_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X @ np.array([1.5, -2.0]) + 0.3 + 0.8 * rng.normal(size=60) > 0).astype(float)
    w = sympy.symbols("w0:3", real=True)
    xs = sympy.symbols("x0:2", real=True)
    t = sympy.Symbol("t", real=True)
    z = w[0] * xs[0] + w[1] * xs[1] + w[2]
    per_example = sd.binary_cross_entropy_with_logits([z], [t])
    g = sympy.lambdify([w, xs, t], sd.grad(per_example, list(w)))
    H = sympy.lambdify([w, xs, t], sd.hessian(per_example, list(w)))

    def gradient(v):
        return np.mean(
            [np.array(g(v, x, yi), dtype=float) for x, yi in zip(X, y, strict=True)], axis=0
        )

    def hessian(v):
        return np.mean(
            [np.array(H(v, x, yi), dtype=float) for x, yi in zip(X, y, strict=True)], axis=0
        )

    return gradient, hessian


def _iterations(step, gradient, limit, tol=1e-8):
    v = np.zeros(3)
    for k in range(limit):
        if np.linalg.norm(gradient(v)) < tol:
            return k
        v = step(v)
    return limit


def test_newton_converges_in_far_fewer_iterations_than_gradient_descent():
    gradient, hessian = _logistic_problem()
    newton = _iterations(lambda v: v - np.linalg.solve(hessian(v), gradient(v)), gradient, 50)
    descent = _iterations(lambda v: v - 1.0 * gradient(v), gradient, 2000)
    assert newton <= 10
    assert descent > 10 * newton
