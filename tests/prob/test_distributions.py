"""Each distribution's negative log-likelihood is a familiar loss: the same gradient (sd.verify
against the loss's own derivative) and the same value up to a constant and a scale."""

from __future__ import annotations

import numpy as np
import sympy
from sympy import Symbol, log, pi

import symdl as sd
from symdl.core.explicit import evaluate
from symdl.prob import Bernoulli, Categorical, Gaussian, Laplace, Poisson
from symdl.prob.losses import GaussianNLL, MatGaussianNLL

mus = sympy.symbols("mu0:3", real=True)
ys = sympy.symbols("y0:3", real=True)
z, y = Symbol("z", real=True), Symbol("y", real=True)


def _same_gradient(nll, loss, wrt):
    for w in wrt:
        assert sd.verify(nll, w, sd.grad(loss, w)), w


def test_gaussian_nll_is_half_n_times_mse_plus_a_constant():
    nll = sympy.Add(*(Gaussian(m).nll(t) for m, t in zip(mus, ys, strict=True)))
    loss = sympy.Rational(3, 2) * sd.mse(list(mus), list(ys))
    _same_gradient(nll, loss, mus)
    difference = sympy.simplify(nll - loss.rewrite("elementary"))
    assert difference == sympy.Rational(3, 2) * log(2 * pi)


def test_gaussian_with_variance_scales_the_squared_error():
    sigma2 = Symbol("sigma2", positive=True)
    nll = Gaussian(z, sigma2).nll(y)
    assert sympy.simplify(nll - ((y - z) ** 2 / (2 * sigma2) + log(2 * pi * sigma2) / 2)) == 0


def test_learned_log_variance_nll_and_its_gradients():
    s = Symbol("s", real=True)
    nll = Gaussian.with_log_variance(z, s).nll(y)
    assert sympy.simplify(nll - (s + (y - z) ** 2 * sympy.exp(-s) + log(2 * pi)) / 2) == 0
    assert sd.verify(nll, s, "(1 - (y - z)**2*exp(-s))/2")
    assert sd.verify(nll, z, "-(y - z)*exp(-s)")


def test_bernoulli_nll_is_binary_cross_entropy():
    p = Symbol("p", real=True)
    assert sd.verify(Bernoulli(p).nll(y), p, sd.grad(sd.binary_cross_entropy([p], [y]), p))
    on_logit = Bernoulli.from_logit(z).nll(y)
    assert sd.verify(on_logit, z, sd.grad(sd.binary_cross_entropy_with_logits([z], [y]), z))
    assert (
        sympy.simplify(
            on_logit - sd.binary_cross_entropy_with_logits([z], [y]).rewrite("elementary")
        )
        == 0
    )


def test_categorical_nll_is_cross_entropy():
    logits = list(sympy.symbols("z0:3", real=True))
    for label in range(3):
        nll = Categorical(logits).nll(label)
        for w in logits:
            assert sd.verify(nll, w, sd.grad(sd.cross_entropy(logits, label), w))
    onehot = Categorical(logits).nll([0, 1, 0])
    assert sd.verify(onehot, logits[0], sd.grad(sd.cross_entropy(logits, 1), logits[0]))


def test_laplace_nll_is_the_l1_loss_plus_log_2b():
    nll = sympy.Add(*(Laplace(m).nll(t) for m, t in zip(mus, ys, strict=True)))
    loss = sd.l1([m - t for m, t in zip(mus, ys, strict=True)])
    at = {
        **dict(zip(mus, (0.3, -1.2, 2.0), strict=True)),
        **dict(zip(ys, (1.0, 0.5, -0.7), strict=True)),
    }
    _same_gradient(nll, loss, mus)  # away from the kink y = mu
    assert abs(float((nll - loss.rewrite("elementary")).subs(at)) - 3 * np.log(2)) < 1e-12


def test_poisson_nll_on_log_rate_is_the_poisson_loss():
    nll = Poisson.from_log_rate(z).nll(y)
    torch_form = sympy.exp(z) - y * z  # torch.nn.PoissonNLLLoss(log_input=True) without log y!
    assert sympy.simplify(nll - torch_form) == sympy.loggamma(y + 1)
    assert sd.verify(nll, z, "exp(z) - y")
    rate = Symbol("lam", positive=True)
    assert sd.verify(Poisson(rate).nll(y), rate, "1 - y/lam")


def test_categorical_refuses_a_class_out_of_range():
    import pytest

    with pytest.raises(ValueError, match="class 3 is outside 0..2"):
        Categorical([z, y, z]).nll(3)


def test_matrix_gaussian_nll_gradient_matches_its_entries():
    loss, wrt, ranges = MatGaussianNLL.example()
    Z, Y = wrt
    rng = np.random.default_rng(0)
    at = {Z: rng.uniform(-1.5, 1.5, (2, 3)), Y: rng.uniform(-2, 2, (1, 3))}
    for M in wrt:
        gradient = evaluate(sd.grad(loss, M), at)
        entries = sympy.Matrix(*M.shape, lambda i, j: Symbol(f"m{i}{j}", real=True))
        scalar = loss.func(*(entries if a == M else a for a in loss.args)).doit()
        other = at[Y] if M == Z else at[Z]
        scalar = scalar.subs({Y if M == Z else Z: sympy.Matrix(other)}).doit()
        point = {entries[i, j]: at[M][i, j] for i in range(M.shape[0]) for j in range(M.shape[1])}
        reference = np.array(
            [[float(scalar.diff(e).subs(point)) for e in row] for row in entries.tolist()]
        )
        assert np.allclose(gradient, reference, atol=1e-10), M


def test_heteroscedastic_model_gradient_matches_finite_differences():
    model = sd.nn.Sequential(
        sd.nn.Dense(6),
        sd.nn.Activation("tanh"),
        sd.nn.Dense(2),
        loss=GaussianNLL(),
        input_shape=(1,),
    )
    compiled = model.compile()
    params = model.init(0)
    X = np.linspace(-1, 1, 7)[:, None]
    t = np.sin(3 * X[:, 0])
    _, grads = compiled.loss_and_grads(params, X, t)
    eps = 1e-6
    for name, value in params.items():
        for index in np.ndindex(value.shape):
            up = {k: v.copy() for k, v in params.items()}
            down = {k: v.copy() for k, v in params.items()}
            up[name][index] += eps
            down[name][index] -= eps
            numeric = (compiled.loss(up, X, t) - compiled.loss(down, X, t)) / (2 * eps)
            assert abs(numeric - grads[name][index]) < 1e-7, (name, index)


def test_heteroscedastic_model_learns_the_noise_level():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (400, 1))
    noise = np.where(X[:, 0] > 0, 0.5, 0.05)  # noisy on the right, quiet on the left
    t = X[:, 0] + noise * rng.normal(size=400)
    model = sd.nn.Sequential(
        sd.nn.Dense(16, "tanh"), sd.nn.Dense(2), loss=GaussianNLL(), input_shape=(1,)
    )
    compiled = model.compile()
    params = model.init(0)
    optimizer = sd.optim.Adam(lr=0.02)
    for _ in range(600):
        _, grads = compiled.loss_and_grads(params, X, t)
        optimizer.step(params, grads)
    log_var = compiled.predict(params, np.array([[-0.7], [0.7]]))[:, 1]
    assert log_var[1] > log_var[0] + 2  # variances 0.25 vs 0.0025: log ratio about 4.6
