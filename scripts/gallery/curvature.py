"""Gallery entries built on second derivatives: Newton's (and Gauss-Newton's) step for logistic
regression with the Hessian XᵀSX from sd.hessian, and the predictive variance of the last-layer
Laplace approximation of a regression model."""

from __future__ import annotations

import numpy as np
import sympy
from sympy import Symbol

import symdl as sd
from gallery.entry import Entry, dL, entry, part
from gallery.reference import Claim, Property
from symdl import nn
from symdl.ops import elementary
from symdl.ops.activations import sigmoid
from symdl.prob import LastLayerLaplace

EXAMPLES, FEATURES = 3, 2  # the sizes at which the Hessians are compared symbolically


def _hessian_is(H: sympy.Matrix, expected: sympy.Matrix) -> tuple[bool, str]:
    difference = elementary(H) - elementary(expected)
    at = {
        s: sympy.Rational(k + 2, 7) for k, s in enumerate(sorted(difference.free_symbols, key=str))
    }
    value = difference.xreplace(at).evalf(30)
    if any(abs(v) > 1e-20 for v in value):  # not 0 at a rational point: no need to simplify
        return False, f"the difference is not 0 at {at}: {value}"
    difference = difference.applyfunc(sympy.simplify)
    ok = difference == sympy.zeros(*H.shape)
    return ok, f"difference simplifies to 0 at N = {EXAMPLES}, d = {FEATURES}" if ok else str(
        difference
    )


def _logistic(examples: int = EXAMPLES):
    w = sympy.symbols(f"w0:{FEATURES}", real=True)
    X = sympy.Matrix(examples, FEATURES, lambda n, j: Symbol(f"x_{n}{j}", real=True))
    t = sympy.symbols(f"t0:{examples}", real=True)
    z = X * sympy.Matrix(w)
    loss = sympy.Add(
        *(sd.binary_cross_entropy_with_logits([z[n]], [t[n]]) for n in range(examples))
    )
    return loss, w, X, t, z


def _newton_against_descent() -> tuple[bool, str]:
    """Iterations to a gradient norm of 1e-8 on 60 points: Newton with sd.hessian's matrix,
    against gradient descent with step 1."""
    rng = np.random.default_rng(0)
    data = np.c_[rng.normal(size=(60, 2)), np.ones(60)]
    labels = (data @ [1.5, -2.0, 0.3] + 0.8 * rng.normal(size=60) > 0).astype(float)
    w, x = sympy.symbols("w0:3", real=True), sympy.symbols("x0:3", real=True)
    t = Symbol("t", real=True)
    per_example = sd.binary_cross_entropy_with_logits(
        [sum(a * b for a, b in zip(w, x, strict=True))], [t]
    )
    g = sympy.lambdify([w, x, t], sd.grad(per_example, list(w)))
    H = sympy.lambdify([w, x, t], sd.hessian(per_example, list(w)))

    def mean(f, v):
        return np.mean(
            [np.array(f(v, a, b), dtype=float) for a, b in zip(data, labels, strict=True)], axis=0
        )

    def iterations(step, limit):
        v = np.zeros(3)
        for k in range(limit):
            if np.linalg.norm(mean(g, v)) < 1e-8:
                return k
            v = step(v)
        return limit

    newton = iterations(lambda v: v - np.linalg.solve(mean(H, v), mean(g, v)), 50)
    descent = iterations(lambda v: v - mean(g, v), 2000)
    ok = newton <= 10 and descent > 10 * newton
    slow = f"over {descent}" if descent == 2000 else str(descent)
    return ok, f"Newton {newton} iterations, gradient descent {slow}"


@entry
def newton_logistic_regression() -> Entry:
    loss, w, X, t, z = _logistic()
    x0, x1, t0 = sympy.symbols("x_{0} x_{1} t", real=True)
    one = sd.binary_cross_entropy_with_logits([w[0] * x0 + w[1] * x1], [t0])
    sig = [sigmoid(z[n]) for n in range(EXAMPLES)]
    S = sympy.diag(*(s * (1 - s) for s in sig))
    source = "Bishop (2006), eq. 4.96"
    claims = [
        Claim(
            dL(f"w_{{{j}}}"),
            sympy.Add(*((sig[n] - t[n]) * X[n, j] for n in range(EXAMPLES))),
            loss,
            w[j],
            source,
        )
        for j in range(FEATURES)
    ]
    return Entry(
        title="Newton's method for logistic regression",
        prose=(
            "The loss $\\sum_n \\operatorname{BCE}(\\sigma(w^T x_n), t_n)$ has gradient "
            "$X^T(\\sigma - t)$ and Hessian $X^T S X$ with $S = \\operatorname{diag}(\\sigma_n "
            "(1 - \\sigma_n))$; symdl's sd.hessian gives that matrix, and because the logits "
            "are linear in $w$ the Gauss-Newton matrix $J^T H_z J$ is the same. Newton's step "
            "(iteratively reweighted least squares) converges in a handful of iterations where "
            "gradient descent needs hundreds."
        ),
        derivation=sd.derive(one, [w[0], w[1]], names={w[0] * x0 + w[1] * x1: "z"}),
        parts=(
            part("Gradient of the summed loss (verified)", *(c.equation for c in claims)),
            part(
                "Hessian, Gauss-Newton and Newton's step (verified)",
                (r"\nabla^{2}_{w} L", r"X^{T} S X", r"J^{T} H_{z} J"),
                (
                    r"S",
                    r"\operatorname{diag}\left(\sigma(z_{n}) \left(1 - \sigma(z_{n})\right)\right)",
                ),
                (
                    r"w_{\mathrm{new}}",
                    r"w - \left(X^{T} S X\right)^{-1} X^{T} \left(\sigma - t\right)",
                ),
            ),  # fmt: skip
        ),
        checks=(
            *claims,
            Property(
                "sympy.simplify",
                f"of sd.hessian of the summed loss minus $X^T S X$ written by hand (Bishop (2006), "
                f"eq. 4.97), at $N = {EXAMPLES}$ examples of $d = {FEATURES}$ features",
                lambda: _hessian_is(sd.hessian(loss, list(w)), X.T * S * X),
            ),
            Property(
                "NumPy",
                "running Newton's step with sd.hessian and gradient descent (step 1) on 60 "
                "points: Newton converges in at most 10 iterations, more than 10 times fewer",
                _newton_against_descent,
            ),
        ),
    )


def _laplace_against_the_formula() -> tuple[bool, str]:
    """sd.prob.LastLayerLaplace's predictive variance against the formula evaluated directly
    from the features, and its growth away from the data."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (40, 1))
    y = np.sin(x[:, 0]) + 0.1 * rng.normal(size=40)
    model = nn.Sequential(nn.Dense(16, "relu"), nn.Dense(1), loss="mse", input_shape=1)
    compiled, params = model.compile().eval(), model.init(seed=1)
    noise, prior = 0.05, 2.0
    laplace = LastLayerLaplace(compiled, params, x, y, prior_precision=prior, noise_variance=noise)
    queries = np.array([[0.0], [1.5], [-6.0], [6.0]])
    mean, variance = laplace.predict(queries)

    def features(points):
        phi = np.asarray(compiled.features(params, points), dtype=float)
        return np.c_[phi, np.ones(len(phi))]

    Phi, phi = features(x), features(queries)
    precision = Phi.T @ Phi / noise + prior * np.eye(Phi.shape[1])
    direct = np.einsum("ni,ij,nj->n", phi, np.linalg.inv(precision), phi) + noise
    error = float(np.abs(variance[:, 0] - direct).max() / direct.max())
    widens = variance[2:, 0].min() > variance[:2, 0].max()
    ok = error < 1e-10 and widens
    return (
        ok,
        f"relative error {error:.1e}; variance {variance[:, 0].round(3)} at x = 0, 1.5, -6, 6",
    )


@entry
def laplace_predictive_variance() -> Entry:
    w = sympy.symbols(f"w0:{FEATURES}", real=True)
    Phi = sympy.Matrix(EXAMPLES, FEATURES, lambda n, j: Symbol(f"varphi_{{{n}{j}}}", real=True))
    t = sympy.symbols(f"t0:{EXAMPLES}", real=True)
    noise, prior = Symbol("sigma^2", positive=True), Symbol("lambda", positive=True)
    residuals = sympy.Matrix(t) - Phi * sympy.Matrix(w)
    prior_term = prior * sum(v**2 for v in w) / 2
    energy = sum(r**2 for r in residuals) / (2 * noise) + prior_term
    f0, f1, t0 = sympy.symbols("varphi_{0} varphi_{1} t", real=True)
    one = (t0 - w[0] * f0 - w[1] * f1) ** 2 / (2 * noise) + prior_term
    source = "Bishop (2006), eqs. 3.13 and 3.27"
    claims = [
        Claim(
            dL(f"w_{{{j}}}"),
            -sympy.Add(*(residuals[n] * Phi[n, j] for n in range(EXAMPLES))) / noise + prior * w[j],
            energy,
            w[j],
            source,
        )
        for j in range(FEATURES)
    ]
    return Entry(
        title="Predictive variance of the last-layer Laplace approximation",
        prose=(
            "For a regression network whose last layer is $y = w^T \\varphi(x)$ with Gaussian "
            "noise $\\sigma^2$ and a Gaussian prior of precision $\\lambda$, the Hessian of the "
            "negative log posterior $L(w)$ is $\\Lambda = \\Phi^T \\Phi / \\sigma^2 + \\lambda I$ "
            "whatever $w$, so the Laplace posterior over the last layer is exact and the "
            "predictive variance is $\\varphi^T \\Lambda^{-1} \\varphi + \\sigma^2$. It grows "
            "away from the data, where the features point in directions the data did not pin "
            "down; the probit predictive for classifiers is an approximation and is not shown."
        ),
        derivation=sd.derive(one, list(w)),
        parts=(
            part(
                "Gradient of the negative log posterior (verified)", *(c.equation for c in claims)
            ),
            part(
                "Posterior precision and predictive (verified)",
                (r"\Lambda", r"\nabla^{2}_{w} L", r"\Phi^{T} \Phi / \sigma^{2} + \lambda I"),
                (
                    r"p\left(y_{*} \mid x_{*}\right)",
                    r"\mathcal{N}\left(w_{*}^{T} \varphi_{*},\ \varphi_{*}^{T} \Lambda^{-1} \varphi_{*}"
                    r" + \sigma^{2}\right)",
                ),
            ),  # fmt: skip
        ),
        checks=(
            *claims,
            Property(
                "sympy.simplify",
                "of sd.hessian of $L$ minus $\\Phi^T \\Phi / \\sigma^2 + \\lambda I$ written by "
                f"hand (Bishop (2006), eq. 3.54), at $N = {EXAMPLES}$ examples of "
                f"$d = {FEATURES}$ features",
                lambda: _hessian_is(
                    sd.hessian(energy, list(w)), Phi.T * Phi / noise + prior * sympy.eye(FEATURES)
                ),
            ),
            Property(
                "NumPy",
                "evaluating $\\varphi^T \\Lambda^{-1} \\varphi + \\sigma^2$ (Bishop (2006), eq. "
                "3.59) from a network's last-layer features, against the variance "
                "sd.prob.LastLayerLaplace predicts, which is larger at $x = \\pm 6$ than at the "
                "data",
                _laplace_against_the_formula,
            ),
        ),
    )
