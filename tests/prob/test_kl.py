"""KL divergences against numerical integration (SciPy) and Monte Carlo; the reparameterised
gradient of an expectation; the VAE's negative ELBO and its gradients."""

from __future__ import annotations

import numpy as np
import sympy
from scipy import integrate, stats
from sympy import MatrixSymbol, exp

import symdl as sd
from symdl.core.explicit import evaluate
from symdl.prob.kl import (
    elbo_derivation,
    kl_categorical,
    kl_diagonal,
    kl_full,
    kl_gaussian,
    negative_elbo,
)


def _kl_by_quadrature(mp, vp, mq, vq):
    p, q = stats.norm(mp, np.sqrt(vp)), stats.norm(mq, np.sqrt(vq))
    value, _ = integrate.quad(lambda t: p.pdf(t) * (p.logpdf(t) - q.logpdf(t)), -np.inf, np.inf)
    return value


def test_univariate_kl_matches_numerical_integration():
    for args in [(0.0, 1.0, 0.0, 1.0), (0.3, 0.5, -1.0, 2.0), (2.0, 3.0, 0.5, 0.2)]:
        closed = float(kl_gaussian(*map(sympy.Float, args)))
        assert abs(closed - _kl_by_quadrature(*args)) < 1e-8, args


def test_univariate_kl_derived_from_the_definition():
    t = sympy.Symbol("t", real=True)
    mp, mq = sympy.symbols("m_p m_q", real=True)
    sp, sq = sympy.symbols("s_p s_q", positive=True)
    log_p = -((t - mp) ** 2) / (2 * sp**2) - sympy.log(sp)
    log_q = -((t - mq) ** 2) / (2 * sq**2) - sympy.log(sq)
    density = exp(-((t - mp) ** 2) / (2 * sp**2)) / (sp * sympy.sqrt(2 * sympy.pi))
    integral = sympy.integrate(density * sympy.expand(log_p - log_q), (t, -sympy.oo, sympy.oo))
    assert sympy.simplify(integral - kl_gaussian(mp, sp**2, mq, sq**2)) == 0


def test_diagonal_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mp, vp = np.array([0.2, -1.0, 0.5]), np.array([0.5, 1.5, 0.8])
    mq, vq = np.array([0.0, 0.0, 1.0]), np.array([1.0, 2.0, 0.5])
    closed = float(kl_diagonal(*(list(map(sympy.Float, v)) for v in (mp, vp, mq, vq))))
    samples = mp + np.sqrt(vp) * rng.normal(size=(200_000, 3))
    log_ratio = stats.norm(mp, np.sqrt(vp)).logpdf(samples) - stats.norm(mq, np.sqrt(vq)).logpdf(
        samples
    )
    estimate = log_ratio.sum(axis=1)
    assert abs(closed - estimate.mean()) < 4 * estimate.std() / np.sqrt(estimate.size)


def test_full_covariance_kl_matches_monte_carlo_and_the_diagonal_case():
    m_p, m_q = MatrixSymbol("m_p", 2, 1), MatrixSymbol("m_q", 2, 1)
    S_p, S_q = MatrixSymbol("S_p", 2, 2), MatrixSymbol("S_q", 2, 2)
    kl = kl_full(m_p, S_p, m_q, S_q)
    at = {
        m_p: np.array([[0.3], [-0.2]]),
        S_p: np.array([[1.0, 0.6], [0.6, 2.0]]),
        m_q: np.array([[-0.5], [0.4]]),
        S_q: np.array([[1.5, -0.3], [-0.3, 0.7]]),
    }
    closed = evaluate(kl, at)
    rng = np.random.default_rng(1)
    p = stats.multivariate_normal(at[m_p][:, 0], at[S_p])
    q = stats.multivariate_normal(at[m_q][:, 0], at[S_q])
    samples = p.rvs(200_000, random_state=rng)
    estimate = p.logpdf(samples) - q.logpdf(samples)
    assert abs(closed - estimate.mean()) < 4 * estimate.std() / np.sqrt(estimate.size)
    diagonal = {**at, S_p: np.diag([1.0, 2.0]), S_q: np.diag([1.5, 0.7])}
    as_diagonal = kl_diagonal([0.3, -0.2], [1.0, 2.0], [-0.5, 0.4], [1.5, 0.7])
    assert abs(evaluate(kl, diagonal) - float(as_diagonal)) < 1e-12


def test_full_covariance_kl_gradient_in_the_mean_is_the_mahalanobis_direction():
    m_p, m_q = MatrixSymbol("m_p", 2, 1), MatrixSymbol("m_q", 2, 1)
    S_p, S_q = MatrixSymbol("S_p", 2, 2), MatrixSymbol("S_q", 2, 2)
    gradient = sd.grad(kl_full(m_p, S_p, m_q, S_q), m_p)
    at = {m_p: np.array([[0.3], [-0.2]]), m_q: np.array([[-0.5], [0.4]])}
    at |= {S_p: np.eye(2), S_q: np.array([[1.5, -0.3], [-0.3, 0.7]])}
    expected = np.linalg.solve(at[S_q], at[m_p] - at[m_q])  # Σ_q⁻¹(μ_p − μ_q)
    assert np.allclose(evaluate(gradient, at), expected)


def test_categorical_kl():
    p, q = [0.2, 0.5, 0.3], [0.4, 0.4, 0.2]
    assert abs(float(kl_categorical(p, q)) - stats.entropy(p, q)) < 1e-12
    assert kl_categorical(p, p) == 0


def test_reparameterised_gradient_of_an_expectation():
    """d/dμ E[f(μ + σε)] = E[f'(μ + σε)], ε ~ N(0, 1): exact for f = exp and z³ by integration,
    and for f = sin by Monte Carlo with common random numbers."""
    mu, eps = sympy.Symbol("mu", real=True), sympy.Symbol("epsilon", real=True)
    sigma = sympy.Symbol("sigma", positive=True)
    density = exp(-(eps**2) / 2) / sympy.sqrt(2 * sympy.pi)
    z = sympy.Symbol("z", real=True)
    for f in (exp(z), z**3):
        inside = f.subs(z, mu + sigma * eps)
        expectation = sympy.integrate(inside * density, (eps, -sympy.oo, sympy.oo))
        of_derivative = sympy.integrate(sd.grad(inside, mu) * density, (eps, -sympy.oo, sympy.oo))
        assert sympy.simplify(sympy.diff(expectation, mu) - of_derivative) == 0
    draws = np.random.default_rng(0).normal(size=400_000)
    estimate = np.mean(np.cos(0.7 + 0.5 * draws))  # E[f'] for f = sin, μ = 0.7, σ = 0.5
    exact = np.cos(0.7) * np.exp(-(0.5**2) / 2)  # d/dμ of E[sin(μ + σε)] = sin μ e^{-σ²/2}
    assert abs(estimate - exact) < 3e-3


def test_negative_elbo_and_its_derivation():
    mu, s, eps = sympy.symbols("mu s epsilon", real=True)
    w0, w1, b0, b1, x0, x1 = sympy.symbols("w0 w1 b0 b1 x0 x1", real=True)
    z = mu + exp(s / 2) * eps
    expected = (
        sympy.log(1 + exp(w0 * z + b0))
        - x0 * (w0 * z + b0)
        + sympy.log(1 + exp(w1 * z + b1))
        - x1 * (w1 * z + b1)
        + (exp(s) + mu**2 - 1 - s) / 2
    )
    numeric = {mu: 0.3, s: -0.4, eps: 0.8, w0: 1.1, w1: -0.7, b0: 0.2, b1: 0.1, x0: 1, x1: 0}
    value = negative_elbo([x0, x1], [w0 * z + b0, w1 * z + b1], [mu], [s])
    assert abs(float((value - expected).subs(numeric))) < 1e-12
    back = "((sigmoid(w0*z + b0) - x0)*w0 + (sigmoid(w1*z + b1) - x1)*w1)"
    back = back.replace("z", "(mu + exp(s/2)*epsilon)")
    assert sd.verify(expected, mu, back + " + mu")
    assert sd.verify(expected, s, back + "*epsilon*exp(s/2)/2 + exp(s)/2 - 1/2")
    derivation = elbo_derivation()
    for wrt, got in zip([mu, s, w0, w1], derivation.closed_form(), strict=True):
        reference = sympy.diff(expected, wrt).subs(numeric)
        assert abs(float(got.subs(numeric) - reference)) < 1e-12, wrt
