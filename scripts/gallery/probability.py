"""Gallery entries for probability: negative log-likelihoods that are the usual losses, KL
divergences between Gaussians and between categoricals, and the reparameterised gradient of a
VAE's evidence lower bound; checked by sd.verify, SciPy's densities and numerical integration."""

from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.stats
import sympy
from sympy import MatrixSymbol, Symbol, exp, log

import symdl as sd
from gallery.entry import Entry, dL, entry, grad_check, part
from gallery.reference import Claim, Property
from symdl.core.explicit import evaluate
from symdl.ops import elementary
from symdl.ops.activations import sigmoid
from symdl.prob import (
    Bernoulli,
    Categorical,
    Gaussian,
    Laplace,
    Poisson,
    elbo_derivation,
    kl_categorical,
    kl_full,
    kl_gaussian,
    negative_elbo,
)
from symdl.render.latex import Equation, latex

y, mu, z = sympy.symbols("y mu z", real=True)
LOGITS = sympy.symbols("z0:3", real=True)
CLASS = 1  # the observed class of the categorical examples


def _likelihoods() -> dict[str, sympy.Expr]:
    return {
        "gaussian": Gaussian(mu).nll(y),
        "bernoulli": Bernoulli.from_logit(z).nll(y),
        "categorical": Categorical(list(LOGITS)).nll(CLASS),
        "laplace": Laplace(mu).nll(y),
        "poisson": Poisson.from_log_rate(z).nll(y),
    }


def _against_scipy_densities() -> tuple[bool, str]:
    """Each NLL against minus scipy.stats' log density or mass at random points."""
    rng = np.random.default_rng(0)
    nll = {k: sympy.lambdify([mu, z, y, *LOGITS], v, "scipy") for k, v in _likelihoods().items()}
    worst = 0.0
    for _ in range(5):
        m, t, *logits = rng.normal(size=5)
        binary, count = int(rng.integers(0, 2)), int(rng.integers(0, 6))
        p = np.exp(logits) / np.exp(logits).sum()
        pairs = [
            (nll["gaussian"](m, 0, t, *logits), -scipy.stats.norm.logpdf(t, m, 1)),
            (nll["bernoulli"](0, t, binary, *logits), -scipy.stats.bernoulli.logpmf(binary, 1 / (1 + np.exp(-t)))),
            (nll["categorical"](0, 0, 0, *logits), -scipy.stats.multinomial.logpmf([0, 1, 0], 1, p)),
            (nll["laplace"](m, 0, t, *logits), -scipy.stats.laplace.logpdf(t, m, 1)),
            (nll["poisson"](0, t, count, *logits), -scipy.stats.poisson.logpmf(count, np.exp(t))),
        ]  # fmt: skip
        worst = max(worst, max(abs(float(a) - float(b)) for a, b in pairs))
    return worst < 1e-12, f"largest difference {worst:.1e} at 5 random points each"


def _minus_the_losses() -> tuple[bool, str]:
    """NLL minus symdl's loss (PyTorch's Poisson loss) is the constant the page shows."""
    nll = _likelihoods()
    differences = {
        "gaussian": (nll["gaussian"] - sd.mse([mu], [y]) / 2, log(2 * sympy.pi) / 2),
        "bernoulli": (nll["bernoulli"] - sd.binary_cross_entropy_with_logits([z], [y]), 0),
        "categorical": (nll["categorical"] - sd.cross_entropy(list(LOGITS), CLASS), 0),
        "laplace": (nll["laplace"] - sd.l1([mu - y]), log(2)),
        "poisson": (nll["poisson"] - (exp(z) - y * z), sympy.loggamma(y + 1)),
    }
    rng = np.random.default_rng(1)
    worst = 0.0
    for difference, constant in differences.values():
        gap = elementary(difference - constant)
        for _ in range(5):
            at = dict(zip((mu, z, y, *LOGITS), rng.uniform(-2, 2, size=6), strict=True))
            worst = max(worst, abs(float(gap.subs(at).evalf())))
    return worst < 1e-12, f"largest difference {worst:.1e} at 5 random points each"


@entry
def likelihood_losses() -> Entry:
    nll = _likelihoods()
    softmax = [sd.softmax(k, *LOGITS) for k in range(3)]
    claims = [
        Claim(dL(r"\mu"), mu - y, nll["gaussian"], mu, "Bishop (2006), Sec. 1.2.5 (the Gaussian)"),
        Claim(dL("z"), sigmoid(z) - y, nll["bernoulli"], z, "Bishop (2006), eq. 4.91 (the Bernoulli)"),
        Claim(dL("z_{1}"), softmax[1] - 1, nll["categorical"], LOGITS[1], "Bishop (2006), eq. 4.109 (the categorical)"),
        Claim(dL("z_{0}"), softmax[0], nll["categorical"], LOGITS[0], "Bishop (2006), eq. 4.109 (the categorical)"),
        Claim(dL(r"\mu"), sympy.sign(mu - y), nll["laplace"], mu, "Murphy (2012), Sec. 7.4 (the Laplace, away from $\\mu = y$)"),
        Claim(dL("z"), exp(z) - y, nll["poisson"], z, "PyTorch's PoissonNLLLoss on log rates (the Poisson)"),
    ]  # fmt: skip
    rows = [
        (r"-\log \mathcal{N}\left(y \mid \mu, 1\right)", "gaussian",
         r"\frac{1}{2}\operatorname{MSE}\left(\mu, y\right) + \frac{1}{2}\log 2\pi"),
        (r"-\log \operatorname{Bern}\left(y \mid \sigma(z)\right)", "bernoulli",
         r"\operatorname{BCE}\left(\sigma(z), y\right)"),
        (r"-\log \operatorname{Cat}\left(1 \mid \operatorname{softmax}(z)\right)", "categorical",
         r"\operatorname{CE}\left(z, 1\right)"),
        (r"-\log \operatorname{Laplace}\left(y \mid \mu, 1\right)", "laplace",
         r"\operatorname{L1}\left(\mu - y\right) + \log 2"),
        (r"-\log \operatorname{Poisson}\left(y \mid e^{z}\right)", "poisson",
         r"e^{z} - y z + \log y!"),
    ]  # fmt: skip
    written = {"poisson": r"e^{z} - y z + \log \Gamma\left(y + 1\right)"}
    return Entry(
        title="Negative log-likelihoods are the usual losses",
        prose=(
            "Training by maximum likelihood minimises $-\\log p(y \\mid \\theta)$, and for the "
            "common likelihoods that is a familiar loss up to a constant: a unit-variance "
            "Gaussian gives half the squared error, a Bernoulli of $\\sigma(z)$ the binary "
            "cross-entropy, a categorical of $\\operatorname{softmax}(z)$ the cross-entropy, "
            "a Laplace the L1 loss and a Poisson of rate $e^z$ the Poisson loss. The "
            "gradients are the textbook ones, so the choice of loss is a choice of noise model."
        ),
        parts=(
            part(
                "Each NLL is a loss, up to a constant (verified)",
                *(
                    Equation(lhs, (written.get(key, latex(nll[key])), loss))
                    for lhs, key, loss in rows
                ),
            ),
            part("Their gradients (verified)", *(c.equation for c in claims)),
        ),
        checks=(
            Property(
                "scipy.stats",
                "log densities and masses (norm, bernoulli, multinomial, laplace, poisson): each "
                "NLL is minus their logarithm",
                _against_scipy_densities,
            ),
            Property(
                "NumPy",
                "evaluating each NLL minus symdl's loss (its MSE, BCE on logits, cross-entropy "
                "and L1; PyTorch's Poisson loss $e^z - y z$) at random points: the constant shown",
                _minus_the_losses,
            ),
            *claims,
        ),
    )


def _univariate_against_quad() -> tuple[bool, str]:
    mp, vp, mq, vq = sympy.symbols("m_p v_p m_q v_q", real=True)
    closed = sympy.lambdify([mp, vp, mq, vq], kl_gaussian(mp, vp, mq, vq))
    worst = 0.0
    for a, va, b, vb in [(0.0, 1.0, 1.0, 2.0), (-0.5, 0.3, 0.7, 1.5), (2.0, 4.0, -1.0, 0.5)]:
        p, q = scipy.stats.norm(a, np.sqrt(va)), scipy.stats.norm(b, np.sqrt(vb))
        integral = scipy.integrate.quad(
            lambda t, p=p, q=q: p.pdf(t) * (p.logpdf(t) - q.logpdf(t)), -30, 30, limit=200
        )[0]
        worst = max(worst, abs(integral - closed(a, va, b, vb)))
    return worst < 1e-8, f"largest difference {worst:.1e} at 3 pairs"


def _two_dimensional_against_dblquad() -> tuple[bool, str]:
    """KL between 2-D Gaussians (one pair diagonal, one pair full) against dblquad."""
    k = 2
    mp, mq = MatrixSymbol("m_p", k, 1), MatrixSymbol("m_q", k, 1)
    Sp, Sq = MatrixSymbol("S_p", k, k), MatrixSymbol("S_q", k, k)
    closed = kl_full(mp, Sp, mq, Sq)
    pairs = [
        ([0.2, -0.3], np.diag([0.5, 1.2]), [0.0, 0.4], np.diag([1.0, 0.7])),
        ([0.5, 0.0], [[1.0, 0.6], [0.6, 0.8]], [-0.2, 0.3], [[0.9, -0.3], [-0.3, 1.1]]),
    ]
    worst = 0.0
    for a, A, b, B in pairs:
        p, q = scipy.stats.multivariate_normal(a, A), scipy.stats.multivariate_normal(b, B)

        def integrand(t2, t1, p=p, q=q):
            point = [t1, t2]
            return p.pdf(point) * (p.logpdf(point) - q.logpdf(point))

        integral = scipy.integrate.dblquad(integrand, -9, 9, -9, 9, epsabs=1e-10)[0]
        at = {mp: np.c_[a], mq: np.c_[b], Sp: np.array(A, float), Sq: np.array(B, float)}
        worst = max(worst, abs(integral - float(evaluate(closed, at))))
    return worst < 1e-7, f"largest difference {worst:.1e} (a diagonal and a full pair)"


def _categorical_is_a_divergence() -> tuple[bool, str]:
    p, q = sympy.symbols("p0:3", positive=True), sympy.symbols("q0:3", positive=True)
    kl = sympy.lambdify([p, q], kl_categorical(p, q))
    rng = np.random.default_rng(2)
    smallest, at_equal = np.inf, 0.0
    for _ in range(1000):
        a, b = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3))
        smallest = min(smallest, kl(a, b))
        at_equal = max(at_equal, abs(kl(a, a)))
        reference = float(scipy.stats.entropy(a, b))
        if abs(kl(a, b) - reference) > 1e-12:
            return False, f"KL {kl(a, b)} but scipy.stats.entropy {reference} at {a}, {b}"
    return smallest >= 0 and at_equal < 1e-15, f"smallest {smallest:.2e}; 0 at p = q"


@entry
def kl_divergence() -> Entry:
    mp, mq = sympy.symbols("mu_p mu_q", real=True)
    sp, sq = sympy.symbols("sigma_p sigma_q", positive=True)
    k = Symbol("k", integer=True, positive=True)
    Mp, Mq = MatrixSymbol("mu_p", k, 1), MatrixSymbol("mu_q", k, 1)
    Sp, Sq = MatrixSymbol("Sigma_p", k, k), MatrixSymbol("Sigma_q", k, k)
    full = kl_full(Mp, Sp, Mq, Sq)
    p = [Symbol("p_0", positive=True), Symbol("p_1", positive=True)]
    p.append(1 - p[0] - p[1])
    logits = sympy.symbols("z0:3", real=True)
    categorical = kl_categorical(p, [sd.softmax(j, *logits) for j in range(3)])
    cookbook = (
        "the Matrix Cookbook (Petersen and Pedersen 2012), by its rules "
        "$\\partial \\log\\det X = X^{-T}$, $\\partial \\operatorname{tr}(A X) = A^T$ and "
        "$\\partial x^T B x = (B + B^T) x$"
    )
    claims = [
        Claim(dL(r"\mu_{p}", r"\mathrm{KL}"), (Sq.I + Sq.T.I) * (Mp - Mq) / 2, full, Mp, cookbook),
        Claim(dL(r"\Sigma_{p}", r"\mathrm{KL}"), (Sq.T.I - Sp.T.I) / 2, full, Sp, cookbook),
        Claim(
            dL("z_{0}", r"\mathrm{KL}"),
            sd.softmax(0, *logits) - p[0],
            categorical,
            logits[0],
            "Bishop (2006), eq. 4.109, for $q = \\operatorname{softmax}(z)$",
        ),
    ]
    return Entry(
        title="KL divergences between Gaussians and between categoricals",
        prose=(
            "$\\mathrm{KL}(p \\,\\|\\, q) = \\mathbb{E}_p[\\log p - \\log q]$ in closed form: "
            "for univariate Gaussians, for diagonal ones (a sum over coordinates), for full "
            "covariances, and for categoricals. The closed forms are checked against "
            "numerical integration and their gradients against the matrix calculus rules."
        ),
        parts=(
            part(
                "Gaussians (verified by numerical integration)",
                (
                    r"\mathrm{KL}\left(\mathcal{N}_p \,\|\, \mathcal{N}_q\right)",
                    latex(kl_gaussian(mp, sp**2, mq, sq**2)),
                ),
                (
                    r"\mathrm{KL}_{\mathrm{diag}}",
                    r"\sum_{i=1}^{k} \mathrm{KL}\left(\mathcal{N}(\mu_{p,i}, \sigma_{p,i}^{2})"
                    r" \,\|\, \mathcal{N}(\mu_{q,i}, \sigma_{q,i}^{2})\right)",
                ),
                (r"\mathrm{KL}_{\mathrm{full}}", latex(full)),
            ),
            part(
                "Categoricals (verified)",
                (r"\mathrm{KL}\left(p \,\|\, q\right)", r"\sum_{j} p_{j} \log \frac{p_{j}}{q_{j}}"),
            ),
            part("Gradients (verified)", *(c.equation for c in claims)),
        ),
        checks=(
            Property(
                "scipy.integrate.quad",
                "of $p \\log(p/q)$ for 3 pairs of univariate Gaussians, against the closed form",
                _univariate_against_quad,
            ),
            Property(
                "scipy.integrate.dblquad",
                "of $p \\log(p/q)$ for a diagonal and a full-covariance pair of 2-D Gaussians, "
                "against the full-covariance closed form",
                _two_dimensional_against_dblquad,
            ),
            Property(
                "scipy.stats.entropy",
                "of 1,000 random pairs of 3-class distributions equals the categorical KL, "
                "which is never negative and 0 at $p = q$",
                _categorical_is_a_divergence,
            ),
            *claims,
        ),
    )


def _reparameterised_expectations() -> tuple[bool, str]:
    """d/dμ and d/ds of E[f(μ + e^{s/2} ε)], ε ~ N(0, 1), by sympy.integrate of the expectation,
    against the expectation of symdl's gradient of f(μ + e^{s/2} ε) (f = exp and z³)."""
    s, eps = Symbol("s", real=True), Symbol("epsilon", real=True)
    density = exp(-(eps**2) / 2) / sympy.sqrt(2 * sympy.pi)
    expectation = lambda g: sympy.integrate(g * density, (eps, -sympy.oo, sympy.oo))  # noqa: E731
    for f in (exp(z), z**3):
        inside = f.subs(z, mu + exp(s / 2) * eps)
        whole = expectation(inside)
        for v in (mu, s):
            if sympy.simplify(sympy.diff(whole, v) - expectation(sd.grad(inside, v))) != 0:
                return False, f"d/d{v} of E[{f}] differs"
    return True, "equal for f = exp and f = z^3, in mu and in s"


@entry
def vae_elbo() -> Entry:
    s, eps = sympy.symbols("s epsilon", real=True)
    w, b, x = (sympy.symbols(f"{v}0:2", real=True) for v in "wbx")
    latent = mu + exp(s / 2) * eps
    logits = [wi * latent + bi for wi, bi in zip(w, b, strict=True)]
    loss = negative_elbo(x, logits, [mu], [s])
    l_ = sympy.symbols("l0:2", real=True)
    where = {l_[i]: w[i] * z + b[i] for i in range(2)} | {z: latent}
    error = sympy.Add(*((sigmoid(l_[i]) - x[i]) * w[i] for i in range(2)))
    source = "Kingma and Welling (2014), Sec. 2.4 and Appendix B"
    claims = [
        Claim(dL(r"\mu"), error + mu, loss, mu, source, where),
        Claim(dL("s"), error * eps * exp(s / 2) / 2 + (exp(s) - 1) / 2, loss, s, source, where),
        Claim(dL("w_{0}"), (sigmoid(l_[0]) - x[0]) * z, loss, w[0], source, where),
    ]
    return Entry(
        title="The reparameterised gradient and the VAE's evidence lower bound",
        prose=(
            "Writing the latent as $z = \\mu + e^{s/2}\\varepsilon$ with $\\varepsilon \\sim "
            "\\mathcal{N}(0, 1)$ moves the randomness out of the parameters, so "
            "$\\nabla_{\\mu, s} \\mathbb{E}[f(z)] = \\mathbb{E}[\\nabla_{\\mu, s} f(z)]$ and one "
            "sample gives an unbiased gradient. For one example with Bernoulli pixels decoded "
            "by $l_i = w_i z + b_i$, the negative ELBO is the reconstruction's binary "
            "cross-entropy plus $\\mathrm{KL}(\\mathcal{N}(\\mu, e^{s}) \\,\\|\\, \\mathcal{N}(0, 1))$."
        ),
        derivation=elbo_derivation(pixels=2),
        parts=(
            part(
                "The reparameterisation trick (verified)",
                (
                    r"\frac{\partial}{\partial \mu} \mathbb{E}_{\varepsilon}\left[f(z)\right]",
                    r"\mathbb{E}_{\varepsilon}\left[f'(z)\right]",
                ),
                (
                    r"\frac{\partial}{\partial s} \mathbb{E}_{\varepsilon}\left[f(z)\right]",
                    r"\mathbb{E}_{\varepsilon}\left[f'(z)\, \frac{\varepsilon e^{s/2}}{2}\right]",
                ),
            ),  # fmt: skip
            part(
                "The negative ELBO of one example",
                (
                    "L",
                    r"\sum_{i} \operatorname{BCE}\left(\sigma(l_{i}), x_{i}\right) + "
                    r"\frac{1}{2}\left(\mu^{2} + e^{s} - s - 1\right)",
                ),
            ),
            part("Published gradients (verified)", *(c.equation for c in claims)),
        ),
        checks=(
            Property(
                "sympy.integrate",
                "of $f(\\mu + e^{s/2}\\varepsilon)$ against the Gaussian density, for "
                "$f = \\exp$ and $f(z) = z^3$: the derivative of the expectation equals the "
                "expectation of symdl's gradient, in $\\mu$ and in $s$",
                _reparameterised_expectations,
            ),
            *claims,
            grad_check(loss, [mu, s, w[0], b[1]]),
        ),
    )
