r"""KL divergences in closed form (univariate, diagonal and full-covariance Gaussians,
categoricals) and the evidence lower bound of a variational autoencoder as a derivation.

>>> import sympy
>>> m, v = sympy.symbols("m v", positive=True)
>>> sympy.simplify(kl_gaussian(m, v, m, v))
0
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
from sympy import Determinant, Inverse, Trace, exp, log
from sympy.matrices.expressions import MatrixExpr

from symdl.core.calculus import derive
from symdl.core.derivation import Derivation
from symdl.ops.base import flatten_vector
from symdl.prob.distributions import Bernoulli


def kl_gaussian(mean_p, var_p, mean_q, var_q) -> sympy.Expr:
    r"""$\mathrm{KL}(\mathcal{N}(\mu_p, \sigma_p^2) \,\|\, \mathcal{N}(\mu_q, \sigma_q^2))
    = \frac12\left(\log\frac{\sigma_q^2}{\sigma_p^2} + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{\sigma_q^2} - 1\right)$."""
    return (log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / var_q - 1) / 2


def kl_diagonal(mean_p: Sequence, var_p: Sequence, mean_q: Sequence, var_q: Sequence) -> sympy.Expr:
    """KL between Gaussians with diagonal covariances: the sum of the univariate KLs."""
    vectors = [flatten_vector(v, "kl_diagonal") for v in (mean_p, var_p, mean_q, var_q)]
    if len({len(v) for v in vectors}) != 1:
        raise ValueError(f"kl_diagonal: lengths {[len(v) for v in vectors]} must be equal")
    return sympy.Add(*(kl_gaussian(*entries) for entries in zip(*vectors, strict=True)))


def kl_full(mean_p: MatrixExpr, cov_p: MatrixExpr, mean_q: MatrixExpr, cov_q: MatrixExpr):
    r"""KL between $k$-variate Gaussians, means $k\times 1$, covariances $k\times k$:
    $\frac12\left(\operatorname{tr}(\Sigma_q^{-1}\Sigma_p) + (\mu_q-\mu_p)^\top\Sigma_q^{-1}(\mu_q-\mu_p)
    - k + \log\det\Sigma_q - \log\det\Sigma_p\right)$."""
    k = mean_p.shape[0]
    if mean_q.shape != (k, 1) or cov_p.shape != (k, k) or cov_q.shape != (k, k):
        raise ValueError(
            f"kl_full: means {mean_p.shape}, {mean_q.shape} and covariances {cov_p.shape}, "
            f"{cov_q.shape}; give k x 1 means and k x k covariances"
        )
    d = mean_q - mean_p
    inverse = Inverse(cov_q)
    quadratic = Trace(d.T * inverse * d)
    return (
        Trace(inverse * cov_p) + quadratic - k + log(Determinant(cov_q)) - log(Determinant(cov_p))
    ) / 2


def kl_categorical(p: Sequence, q: Sequence) -> sympy.Expr:
    r"""$\mathrm{KL}(p \,\|\, q) = \sum_k p_k \log(p_k / q_k)$ for probability vectors."""
    p, q = flatten_vector(p, "kl_categorical"), flatten_vector(q, "kl_categorical")
    if len(p) != len(q):
        raise ValueError(f"kl_categorical: p has {len(p)} entries but q has {len(q)}")
    return sympy.Add(*(a * log(a / b) for a, b in zip(p, q, strict=True)))


def negative_elbo(x: Sequence, logits: Sequence, mean: Sequence, log_var: Sequence) -> sympy.Expr:
    r"""The negative evidence lower bound of a VAE with Bernoulli pixels and a Gaussian latent:
    $-\sum_i \log p(x_i \mid z) + \mathrm{KL}(\mathcal{N}(\mu, e^{s}) \,\|\, \mathcal{N}(0, 1))$,
    the decoder's `logits` computed from $z = \mu + e^{s/2}\varepsilon$."""
    reconstruction = sympy.Add(
        *(Bernoulli.from_logit(logit).nll(xi) for xi, logit in zip(x, logits, strict=True))
    )
    mean, log_var = list(mean), list(log_var)
    kl = kl_diagonal(mean, [exp(s) for s in log_var], [0] * len(mean), [1] * len(mean))
    return reconstruction + kl


def elbo_derivation(pixels: int = 2) -> Derivation:
    r"""The chain rule through one VAE example: a one-dimensional latent
    $z = \mu + e^{s/2}\varepsilon$ (reparameterised), a linear decoder $l_i = w_i z + b_i$, the
    negative ELBO; gradients with respect to the encoder's outputs $\mu$ and $s$ and the
    decoder's weights."""
    mu, s, eps = sympy.symbols("mu s epsilon", real=True)
    w = sympy.symbols(f"w0:{pixels}", real=True)
    b = sympy.symbols(f"b0:{pixels}", real=True)
    x = sympy.symbols(f"x0:{pixels}", real=True)
    z = sympy.Symbol("z", real=True)
    latent = mu + exp(s / 2) * eps
    loss = negative_elbo(x, [wi * latent + bi for wi, bi in zip(w, b, strict=True)], [mu], [s])
    return derive(loss, [mu, s, *w], names={latent: z})
