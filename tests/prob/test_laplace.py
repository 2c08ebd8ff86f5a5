"""The last-layer Laplace approximation: its Hessian against finite differences of the compiled
training gradients, the predictive band widening away from the data, calibration and entropy on
the digits; MC dropout as a baseline."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import symdl as sd
from symdl import nn, optim
from symdl.prob import (
    LaplaceError,
    LastLayerLaplace,
    expected_calibration_error,
    mc_dropout,
    output_hessian,
    predictive_entropy,
)


def test_categorical_output_hessian_against_sympy_diff_of_log_sum_exp():
    H, z, y, _ = output_hessian(nn.CrossEntropy(), 3)
    reference = sympy.log(sum(sympy.exp(zk) for zk in z)) - sum(
        yk * zk for yk, zk in zip(y, z, strict=True)
    )
    at = {z[0]: 0.3, z[1]: -1.2, z[2]: 2.0, y[0]: 0.0, y[1]: 1.0, y[2]: 0.0}
    for k in range(3):
        for m in range(3):
            want = float(sympy.diff(reference, z[k], z[m]).subs(at))
            assert float(H[k, m].subs(at).doit()) == pytest.approx(want, abs=1e-12)


def _finite_difference_hessian(compiled, params, X, y, names, h=1e-5):
    """The Hessian of the compiled training loss in the entries of `names`, by central
    differences of its gradients."""
    flat = [(name, index) for name in names for index in np.ndindex(params[name].shape)]
    rows = []
    for name, index in flat:
        sides = []
        for sign in (1, -1):
            moved = {k: v.copy() for k, v in params.items()}
            moved[name][index] += sign * h
            _, grads = compiled.loss_and_grads(moved, X, y)
            sides.append(np.array([grads[n][i] for n, i in flat]))
        rows.append((sides[0] - sides[1]) / (2 * h))
    return np.array(rows), flat


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_ggn_is_the_hessian_of_the_training_loss_in_the_last_layer(loss):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 3))
    y = rng.integers(0, 3, 12) if loss == "cross_entropy" else rng.normal(size=(12, 3))
    model = nn.Sequential(nn.Dense(4, "tanh"), nn.Dense(3), loss=loss, input_shape=3)
    compiled = model.compile().eval()
    params = model.init(seed=2)
    laplace = LastLayerLaplace(compiled, params, X, y, prior_precision=0.5)
    numeric, flat = _finite_difference_hessian(compiled, params, X, y, ["dense_2.W", "dense_2.b"])
    # vec[W b] by columns: W[k, j] is entry j*K + k, b[k] is entry 4*K + k
    order = [
        index[1] * 3 + index[0] if name.endswith("W") else 4 * 3 + index[0] for name, index in flat
    ]
    ggn = laplace.ggn[np.ix_(order, order)]
    # the GGN is of the summed NLL: N x the mean cross-entropy, N K / (2 sigma^2) x the MSE
    scale = 12 if loss == "cross_entropy" else 12 * 3 / (2 * laplace.noise_variance)
    assert np.allclose(ggn, scale * numeric, atol=1e-6 * scale)
    assert np.allclose(laplace.precision, laplace.ggn + 0.5 * np.eye(len(order)))


def test_regression_predictive_variance_widens_away_from_the_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (60, 1))
    y = np.sin(x[:, 0]) + 0.1 * rng.normal(size=60)
    model = nn.Sequential(nn.Dense(32, "relu"), nn.Dense(1), loss="mse", input_shape=1)
    history = sd.train(model, x, y, optim.Adam(lr=0.01), 60, validation=None, progress=False)
    laplace = LastLayerLaplace(history.compiled.eval(), history.params, x, y)
    mean, variance = laplace.predict(np.array([[0.0], [1.0], [-4.0], [4.0], [-8.0], [8.0]]))
    inside, near, far = variance[:2, 0].max(), variance[2:4, 0], variance[4:, 0]
    assert np.all(inside < near) and np.all(near < far)
    assert np.all(variance > laplace.noise_variance)  # the noise plus the model's own doubt
    assert abs(mean[0, 0]) < 0.3  # sin(0), from the trained weights


@pytest.fixture(scope="module")
def digits_model():
    X, y = sd.datasets.load_digits()
    X_train, X_rest, y_train, y_rest = sd.datasets.train_test_split(X / 16, y, 0.5, seed=0)
    model = nn.Sequential(nn.Dense(32, "relu"), nn.Dense(10), input_shape=64)
    # 200 examples for 100 epochs: a model confident beyond its accuracy
    history = sd.train(
        model,
        X_train[:200],
        y_train[:200],
        optim.Adam(lr=0.02),
        100,
        validation=None,
        progress=False,
    )
    compiled = history.compiled.eval()
    laplace = LastLayerLaplace(compiled, history.params, X_train[:200], y_train[:200])
    laplace.tune_prior_precision(X_rest[:300], y_rest[:300])
    return compiled, history.params, laplace, X_rest[300:], y_rest[300:]


def test_laplace_is_better_calibrated_than_the_plain_model_on_the_digits(digits_model):
    compiled, params, laplace, X_test, y_test = digits_model
    plain = compiled.predict(params, X_test)
    bayes = laplace.predict(X_test)
    assert expected_calibration_error(bayes, y_test) < expected_calibration_error(plain, y_test)
    assert np.mean(bayes.argmax(1) == y_test) > 0.85  # the means barely move


def test_laplace_entropy_is_higher_on_noise_than_on_digits(digits_model):
    compiled, params, laplace, X_test, _ = digits_model
    noise = np.random.default_rng(0).uniform(0, 1, (300, 64))
    assert (
        predictive_entropy(laplace.predict(noise)).mean()
        > predictive_entropy(laplace.predict(X_test)).mean()
    )
    # and the probit approximation agrees with Monte-Carlo averaging of the logits
    mc = laplace.predict(X_test[:100], method="mc", samples=4000)
    assert np.abs(mc - laplace.predict(X_test[:100])).max() < 0.08


def test_mc_dropout_varies_and_averages_near_the_deterministic_prediction():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (40, 1))
    model = nn.Sequential(
        nn.Dense(32, "relu"), nn.Dropout(0.2), nn.Dense(1), loss="mse", input_shape=1
    )
    history = sd.train(
        model, x, np.sin(x[:, 0]), optim.Adam(lr=0.01), 40, validation=None, progress=False
    )
    compiled = history.compiled
    mean, variance = mc_dropout(compiled, history.params, x, samples=200)
    assert np.all(variance > 0)
    deterministic = compiled.predict(history.params, x)
    assert np.abs(mean - deterministic).mean() < 0.1
    plain = nn.Sequential(nn.Dense(4, "relu"), nn.Dense(1), loss="mse", input_shape=1)
    with pytest.raises(LaplaceError, match="Dropout"):
        mc_dropout(plain.compile(), plain.init(0), x, samples=3)


def test_refuses_models_it_does_not_cover():
    X, y = np.zeros((4, 2)), np.zeros(4)
    with_activation = nn.Sequential(nn.Dense(3), nn.Dense(1, "tanh"), loss="mse", input_shape=2)
    with pytest.raises(LaplaceError, match="without activation"):
        LastLayerLaplace(with_activation.compile(), with_activation.init(0), X, y)
    huber = nn.Sequential(nn.Dense(3), nn.Dense(1), loss="huber", input_shape=2)
    with pytest.raises(LaplaceError, match="not a likelihood"):
        LastLayerLaplace(huber.compile(), huber.init(0), X, y)
    single = nn.Sequential(nn.Dense(2), loss="mse", input_shape=2)
    laplace = LastLayerLaplace(single.compile(), single.init(0), np.eye(2), np.ones((2, 2)))
    with pytest.raises(LaplaceError, match="method"):
        laplace.predict(np.eye(2), method="exact")
