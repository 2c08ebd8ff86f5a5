"""sd.nn: every layer's compiled gradient against finite differences of the compiled loss, 20
random small models, sd.check_grad on a model's expression, PyTorch autograd when installed,
inference statistics, shape errors and the derived backprop equations."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from sympy import MatrixSymbol

import symdl as sd
from symdl import nn
from symdl.core.matrices import elementwise

H = 1e-6  # central-difference step; the losses here are O(1), so the error is ~1e-9 relative
RTOL = 1e-6


def _loss_at(compiled, params, X, y, seed):
    compiled.rng = np.random.default_rng(seed)  # the same dropout mask every call
    return compiled.loss_and_grads(params, X, y)


def assert_fd(model, X, y, *, seed=0, entries=8, jitter=0.0):
    """Central differences of the compiled training loss match the compiled gradient.

    `jitter` moves the initial parameters by that much noise: zero biases put a ReLU of a
    padded border or of a dead unit's output exactly at its kink, where differences fail."""
    compiled = model.compile(seed=seed)
    noise = np.random.default_rng(seed + 2)
    params = {k: v + jitter * noise.normal(size=v.shape) for k, v in model.init(seed).items()}
    value, grads = _loss_at(compiled, params, X, y, seed)
    rounding = 1e-9 * max(1.0, abs(value))  # ~ eps * |L| / H, the floor of a central difference
    assert set(grads) == set(params)
    pick = np.random.default_rng(seed + 1)
    for name, value in params.items():
        assert grads[name].shape == value.shape, name
        for index in pick.choice(value.size, min(entries, value.size), replace=False):
            shifted = {k: v.copy() for k, v in params.items()}
            shifted[name].flat[index] += H
            up, _ = _loss_at(compiled, shifted, X, y, seed)
            shifted[name].flat[index] -= 2 * H
            down, _ = _loss_at(compiled, shifted, X, y, seed)
            numeric, symbolic = (up - down) / (2 * H), grads[name].flat[index]
            tolerance = RTOL * max(abs(numeric), abs(symbolic)) + rounding
            assert abs(numeric - symbolic) <= tolerance, (name, index, numeric, symbolic)


def _labels(rng, n, classes):
    return np.arange(n) % classes if n >= classes else rng.integers(0, classes, n)


ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "softplus", "elu", "gelu", "silu", None]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_every_activation(activation):
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Dense(5, activation), nn.Dense(3), input_shape=4)
    assert_fd(model, rng.normal(size=(6, 4)), _labels(rng, 6, 3))


@pytest.mark.parametrize(
    "loss, targets",
    [
        ("cross_entropy", lambda rng: np.array([0, 1, 2, 1, 0, 2])),
        ("binary_cross_entropy_with_logits", lambda rng: rng.integers(0, 2, (6, 3)).astype(float)),
        ("mse", lambda rng: rng.normal(size=(6, 3))),
        (nn.Huber(0.5), lambda rng: 2 * rng.normal(size=(6, 3))),
        ("hinge", lambda rng: rng.choice([-1.0, 1.0], (6, 3))),
    ],
    ids=["cross_entropy", "bce_logits", "mse", "huber", "hinge"],
)
def test_every_loss(loss, targets):
    rng = np.random.default_rng(1)
    model = nn.Sequential(nn.Dense(4, "tanh"), nn.Dense(3), loss=loss, input_shape=2)
    assert_fd(model, rng.normal(size=(6, 2)), targets(rng))


CONV2D = [  # (kernel, stride, padding) on 7x6 images: odd and even sizes, every padding kind
    (3, 1, "valid"),
    (3, 1, "same"),
    (3, 2, "valid"),
    (3, 2, 1),
    (2, 1, 1),
    (2, 2, "valid"),
    ((3, 2), (2, 1), (1, 0)),
    (1, 1, "valid"),
]


@pytest.mark.parametrize("kernel, stride, padding", CONV2D, ids=str)
def test_conv2d_every_geometry(kernel, stride, padding):
    rng = np.random.default_rng(2)
    model = nn.Sequential(
        nn.Conv2d(3, kernel, stride=stride, padding=padding, activation="tanh"),
        nn.Flatten(),
        nn.Dense(3),
        input_shape=(2, 7, 6),
    )
    assert_fd(model, rng.normal(size=(3, 2, 7, 6)), np.array([0, 1, 2]))


@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, "same"), (2, 2, 1), (4, 3, "valid")])
def test_conv1d_every_geometry(kernel, stride, padding):
    rng = np.random.default_rng(3)
    model = nn.Sequential(
        nn.Conv1d(2, kernel, stride=stride, padding=padding, activation="sigmoid"),
        nn.Flatten(),
        nn.Dense(2),
        loss="mse",
        input_shape=(3, 9),
    )
    assert_fd(model, rng.normal(size=(4, 3, 9)), rng.normal(size=(4, 2)))


POOLS = [(2, None), (2, 1), (3, 2), ((2, 3), (1, 2))]


@pytest.mark.parametrize("pool", [nn.MaxPool2d, nn.AvgPool2d], ids=lambda p: p.__name__)
@pytest.mark.parametrize("size, stride", POOLS, ids=str)
def test_pool2d_every_geometry(pool, size, stride):
    rng = np.random.default_rng(4)  # continuous inputs: no ties in a max-pool window
    model = nn.Sequential(
        nn.Conv2d(2, 2, activation="tanh"),
        pool(size, stride=stride),
        nn.Flatten(),
        nn.Dense(3),
        input_shape=(1, 7, 7),
    )
    assert_fd(model, rng.normal(size=(3, 1, 7, 7)), np.array([2, 0, 1]))


@pytest.mark.parametrize("pool", [nn.MaxPool1d, nn.AvgPool1d], ids=lambda p: p.__name__)
def test_pool1d(pool):
    rng = np.random.default_rng(5)
    model = nn.Sequential(
        nn.Conv1d(2, 3, padding="same", activation="tanh"),
        pool(2),
        nn.Flatten(),
        nn.Dense(2),
        input_shape=(1, 8),
    )
    assert_fd(model, rng.normal(size=(4, 1, 8)), np.array([0, 1, 1, 0]))


def test_normalisation_dropout_and_penalties():
    rng = np.random.default_rng(6)
    model = nn.Sequential(
        nn.Dense(5, "tanh", l2=0.01),
        nn.BatchNorm(),
        nn.Dropout(0.3),
        nn.LayerNorm(),
        nn.Dense(3, l1=0.02),
        input_shape=4,
    )
    assert_fd(model, rng.normal(size=(6, 4)), _labels(rng, 6, 3))


def test_the_penalties_are_in_the_loss():
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(5, 3)), np.array([0, 1, 0, 1, 1])
    plain = nn.Sequential(nn.Dense(2), input_shape=3)
    penalised = nn.Sequential(nn.Dense(2, l1=0.1, l2=0.2), input_shape=3)
    params = plain.init(0)
    W = params["dense_1.W"]
    difference = penalised.compile().loss(params, X, y) - plain.compile().loss(params, X, y)
    assert difference == pytest.approx(0.1 * np.abs(W).sum() + 0.2 * (W**2).sum(), rel=1e-12)


def _random_model(seed: int):
    """A small random model: dense or convolutional trunk, normalisation, dropout, a loss."""
    rng = np.random.default_rng(seed)
    activations = ["tanh", "sigmoid", "softplus", "elu", "gelu", "silu", "leaky_relu"]
    layers: list = []
    if rng.random() < 0.5:
        shape = (int(rng.integers(1, 3)), int(rng.integers(5, 8)), int(rng.integers(5, 8)))
        layers.append(
            nn.Conv2d(
                int(rng.integers(1, 4)),
                int(rng.integers(1, 4)),
                stride=int(rng.integers(1, 3)),
                padding=int(rng.integers(0, 2)),
                activation=rng.choice(activations),
            )
        )
        if rng.random() < 0.6:
            layers.append((nn.MaxPool2d if rng.random() < 0.5 else nn.AvgPool2d)(2, stride=1))
        layers.append(nn.Flatten())
    else:
        shape = (int(rng.integers(2, 6)),)
    for _ in range(int(rng.integers(1, 3))):
        layers.append(nn.Dense(int(rng.integers(2, 6)), rng.choice(activations)))
        extra = rng.random()
        if extra < 0.25:
            layers.append(nn.BatchNorm())
        elif extra < 0.5:
            layers.append(nn.LayerNorm())
        elif extra < 0.7:
            layers.append(nn.Dropout(0.25))
    loss = ["cross_entropy", "mse", "binary_cross_entropy_with_logits", "huber"][seed % 4]
    outputs = int(rng.integers(2, 4))
    layers.append(nn.Dense(outputs, l2=0.01 if rng.random() < 0.3 else 0.0))
    model = nn.Sequential(*layers, loss=loss, input_shape=shape)
    n = int(rng.integers(3, 6))
    X = rng.normal(size=(n, *shape))
    if loss == "cross_entropy":
        y = _labels(rng, n, outputs)
    elif loss == "binary_cross_entropy_with_logits":
        y = rng.integers(0, 2, (n, outputs)).astype(float)
    else:
        y = rng.normal(size=(n, outputs))
    return model, X, y


@pytest.mark.parametrize("seed", range(20))
def test_random_models(seed):
    model, X, y = _random_model(seed)
    assert_fd(model, X, y, seed=seed, entries=4)


def test_check_grad_on_the_model_expression():
    """sd.check_grad (its own finite differences of the explicit expression) on a model."""
    model = nn.Sequential(nn.Dense(3, "tanh"), nn.Dense(2), input_shape=2)
    loss, _, _, _ = model.expression()
    N = next(iter(loss.free_symbols & {sympy.Symbol("N", integer=True, positive=True)}))
    at_n = loss.subs(N, 3)
    for symbol in model.parameters().values():
        check = sd.check_grad(at_n, symbol, points=2)
        assert check, check.report()


def test_matches_pytorch_autograd():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    model = nn.Sequential(
        nn.Conv2d(3, 3, stride=2, padding=1, activation="relu"),
        nn.MaxPool2d(2, stride=1),
        nn.Flatten(),
        nn.Dense(6, "tanh"),
        nn.BatchNorm(),
        nn.LayerNorm(),
        nn.Dense(4),
        input_shape=(2, 8, 8),
    )
    params = model.init(3)
    params["batchnorm_1.gamma"] = rng.uniform(0.5, 1.5, 6)
    params["layernorm_1.beta"] = rng.normal(size=6)
    X, y = rng.normal(size=(5, 2, 8, 8)), np.array([0, 3, 1, 2, 3])
    loss, grads = model.compile().loss_and_grads(params, X, y)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    a = F.relu(F.conv2d(torch.tensor(X), t["conv2d_1.K"], t["conv2d_1.b"], stride=2, padding=1))
    a = F.max_pool2d(a, 2, stride=1).flatten(1)
    a = torch.tanh(a @ t["dense_1.W"].T + t["dense_1.b"])
    a = F.batch_norm(a, None, None, t["batchnorm_1.gamma"], t["batchnorm_1.beta"], training=True)
    a = F.layer_norm(a, (6,), t["layernorm_1.gamma"], t["layernorm_1.beta"])
    reference = F.cross_entropy(a @ t["dense_2.W"].T + t["dense_2.b"], torch.tensor(y))
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-10)
    for name, value in t.items():
        np.testing.assert_allclose(grads[name], value.grad.numpy(), rtol=1e-8, atol=1e-11)


def test_batchnorm_inference_uses_running_statistics():
    rng = np.random.default_rng(9)
    model = nn.Sequential(nn.Dense(3), nn.BatchNorm(momentum=0.5), nn.Dense(2), input_shape=2)
    compiled = model.compile()
    params = model.init(0)
    X, y = rng.normal(size=(8, 2)), _labels(rng, 8, 2)
    compiled.loss_and_grads(params, X, y)  # training: one update of the running averages
    hidden = X @ params["dense_1.W"].T + params["dense_1.b"]
    mean = 0.5 * hidden.mean(axis=0)
    var = 0.5 * 1 + 0.5 * hidden.var(axis=0, ddof=1)  # unbiased, as PyTorch keeps it
    np.testing.assert_allclose(compiled.state["batchnorm_1.running_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(compiled.state["batchnorm_1.running_var"], var, rtol=1e-12)

    normalised = (hidden - mean) / np.sqrt(var + 1e-5)
    logits = normalised @ params["dense_2.W"].T + params["dense_2.b"]
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(compiled.predict(params, X), expected, rtol=1e-10)

    # eval mode: gradients of the inference loss (running statistics are constants)
    compiled.eval()
    assert_eval = compiled.loss_and_grads(params, X, y)[0]
    assert assert_eval == pytest.approx(compiled.loss(params, X, y), rel=1e-12)


def test_dropout_is_off_at_inference_and_scales_in_training():
    model = nn.Sequential(nn.Dropout(0.5), nn.Dense(1), loss="mse", input_shape=200)
    compiled = model.compile(seed=0)
    params = {"dense_1.W": np.ones((1, 200)), "dense_1.b": np.zeros(1)}
    X, y = np.ones((1, 200)), np.zeros((1, 1))
    assert compiled.loss(params, X, y) == pytest.approx(200.0**2)
    kept = np.sqrt(compiled.loss_and_grads(params, X, y)[0]) / 2  # each kept unit counts 2
    assert 60 < kept < 140 and kept == int(kept)


def test_predict_shapes_and_probabilities():
    model = nn.Sequential(nn.Dense(4, "relu"), nn.Dense(3), input_shape=5)
    probabilities = model.compile().predict(model.init(1), np.ones((7, 5)))
    assert probabilities.shape == (7, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_init_is_reproducible_and_scaled():
    model = nn.Sequential(nn.Dense(300, "relu"), nn.Dense(200, "tanh"), input_shape=400)
    a, b = model.init(seed=4), model.init(seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["dense_1.W"], model.init(seed=5)["dense_1.W"])
    assert np.std(a["dense_1.W"]) == pytest.approx(np.sqrt(2 / 400), rel=0.05)  # He
    limit = np.sqrt(6 / (300 + 200))  # Glorot uniform
    assert np.abs(a["dense_2.W"]).max() <= limit
    assert np.std(a["dense_2.W"]) == pytest.approx(limit / np.sqrt(3), rel=0.05)


def test_shape_errors_name_the_layer_and_the_shapes():
    model = nn.Sequential(nn.Dense(4), nn.Dense(2), input_shape=3)
    params = model.init(0)
    params["dense_2.W"] = np.zeros((2, 5))
    with pytest.raises(nn.ShapeError, match=r"dense_2\.W.*\(2, 4\).*\(2, 5\)"):
        model.compile().loss_and_grads(params, np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(nn.ShapeError, match=r"input.*\(7,\).*\(3,\)"):
        model.compile().predict(model.init(0), np.zeros((2, 7)))
    with pytest.raises(nn.ShapeError, match=r"conv2d_1.*5x5 window.*\(1, 4, 4\)"):
        nn.Sequential(nn.Conv2d(2, 5), nn.Flatten(), nn.Dense(2), input_shape=(1, 4, 4))
    with pytest.raises(nn.ShapeError, match=r"last layer gives examples of shape \(2, 3, 3\)"):
        nn.Sequential(nn.Conv2d(2, 2), nn.BatchNorm(), input_shape=(1, 4, 4))


def test_bad_labels_are_named():
    model = nn.Sequential(nn.Dense(3), input_shape=2)
    with pytest.raises(nn.TargetError, match="0 to 5.*3 outputs"):
        model.compile().loss_and_grads(model.init(0), np.zeros((2, 2)), np.array([0, 5]))


def test_derive_gives_the_textbook_equations():
    model = nn.Sequential(nn.Dense(4, "sigmoid"), nn.Dense(3), input_shape=2)
    derivation = model.derive()
    tex = derivation.to_latex()
    for piece in ["Z^{(1)}", "A^{(1)}", "W^{(2)}", r"\bar{Z}^{(1)}", r"\sigma"]:
        assert piece in tex, piece
    W1 = model.parameters()["dense_1.W"]
    # the gradient of the first layer is delta^{(1)} X^T, in matrix notation
    gradient = derivation.gradient[0]
    assert gradient.shape == W1.shape
    assert not isinstance(gradient, sympy.MatrixBase)


def test_second_derivatives_of_a_convolution_are_refused_by_name():
    from symdl.ops import Geometry, conv2d

    g = Geometry(C=1, H=3, W=3, kh=2, kw=2)
    x, K, b = MatrixSymbol("x", 9, 1), MatrixSymbol("K", 1, 4), MatrixSymbol("b", 1, 1)
    D = MatrixSymbol("D", 1, 4)
    f = sympy.Trace(D * elementwise(sympy.tanh, conv2d(x, K, b, g.as_tuple())))
    assert sd.grad(f, x).shape == x.shape
    with pytest.raises(Exception, match="conv2d_input_grad"):
        sd.hessian(f, x)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy_with_logits"])
def test_compiled_losses_stay_finite_for_logits_of_1000(loss):
    model = nn.Sequential(nn.Dense(3), loss=loss, input_shape=2)
    params = {"dense_1.W": np.array([[1000.0, 0], [-1000.0, 0], [0, 0]]), "dense_1.b": np.zeros(3)}
    X = np.array([[1.0, 0.0], [-1.0, 0.0]])
    y = np.array([1, 0]) if loss == "cross_entropy" else np.array([[0.0, 1, 0], [1, 0, 1]])
    value, grads = model.compile().loss_and_grads(params, X, y)
    assert np.isfinite(value) and value > 100  # confidently wrong: a large, finite loss
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    probabilities = model.compile().predict(params, X)
    assert np.all(np.isfinite(probabilities))


def test_784_128_10_network_on_a_batch_of_128_agrees_with_finite_differences():
    """Issue 4's acceptance: the compiled matrix gradient at full size, in matrix products."""
    model = nn.Sequential(nn.Dense(128, "relu"), nn.Dense(10), input_shape=784)
    compiled = model.compile()
    assert "@" in compiled.source and "for " not in compiled.source  # no code per entry
    rng = np.random.default_rng(10)
    X, y = rng.normal(size=(128, 784)), rng.integers(0, 10, 128)
    assert_fd(model, X, y, entries=5)


def test_trains_and_resumes_exactly_with_dropout_and_batch_statistics(tmp_path):
    """sd.train on an sd.nn model: the checkpoint carries the dropout generator and the
    running statistics, so a resumed run ends bit for bit where a straight one does."""
    X, y = sd.datasets.make_moons(120, noise=0.2, seed=1)

    def model():
        return nn.Sequential(
            nn.Dense(16, "relu"), nn.BatchNorm(), nn.Dropout(0.2), nn.Dense(2), input_shape=2
        )

    options = {"batch_size": 16, "seed": 2, "progress": False}
    straight = sd.train(model(), X, y, sd.optim.Adam(lr=0.01), 4, **options)
    path = tmp_path / "checkpoint.npz"
    sd.train(model(), X, y, sd.optim.Adam(lr=0.01), 2, checkpoint=path, **options)
    resumed = sd.train(model(), X, y, sd.optim.Adam(lr=0.01), 4, resume=path, **options)
    for name in straight.params:
        assert np.array_equal(straight.params[name], resumed.params[name]), name
    for key in straight.compiled.state:
        assert np.array_equal(straight.compiled.state[key], resumed.compiled.state[key]), key
    assert straight.loss == resumed.loss
    assert set(straight.grad_norms) == {"dense_1", "batchnorm_1", "dense_2"}
    assert straight.loss[-1] < straight.loss[0]
    assert straight.metrics["val_accuracy"][-1] > 0.8


# ---------------------------------------------------------------- residual blocks (issue 5)


def test_residual_dense_block():
    rng = np.random.default_rng(11)
    model = nn.Sequential(
        nn.Dense(4, "tanh"),
        nn.Residual(nn.Dense(5, "softplus"), nn.Dense(4, "tanh")),
        nn.Dense(3),
        input_shape=3,
    )
    assert_fd(model, rng.normal(size=(6, 3)), _labels(rng, 6, 3))


def test_residual_convolution_same_padding():
    rng = np.random.default_rng(12)
    model = nn.Sequential(
        nn.Conv2d(2, 3, padding="same", activation="tanh"),
        nn.Residual(
            nn.Conv2d(3, 3, padding="same", activation="elu"), nn.Conv2d(2, (3, 1), padding="same")
        ),
        nn.Flatten(),
        nn.Dense(3),
        input_shape=(1, 5, 4),
    )
    assert model.layers[1].output_shape == (2, 5, 4)
    assert_fd(model, rng.normal(size=(3, 1, 5, 4)), np.array([0, 2, 1]))


def test_residual_block_with_batch_norm_and_dropout():
    rng = np.random.default_rng(13)
    model = nn.Sequential(
        nn.Residual(nn.Dense(5, "tanh"), nn.BatchNorm(), nn.Dropout(0.3), nn.Dense(4, l2=0.01)),
        nn.Dense(2),
        loss="mse",
        input_shape=4,
    )
    assert_fd(model, rng.normal(size=(7, 4)), rng.normal(size=(7, 2)))


def test_nested_residual_blocks_and_a_sequential_inside():
    rng = np.random.default_rng(14)
    inner = nn.Sequential(nn.Dense(4, "sigmoid"), nn.Dense(4))
    model = nn.Sequential(
        nn.Dense(4, "tanh"),
        nn.Residual(nn.Dense(4, "silu"), nn.Residual(inner), nn.LayerNorm()),
        nn.Residual(nn.Dense(4, "gelu"), nn.Dense(4)),
        nn.Dense(3),
        input_shape=2,
    )
    names = [name.split(".")[0] for name in model.parameters()]
    assert list(dict.fromkeys(names)) == [
        *[f"dense_{i}" for i in (1, 2, 3, 4)],
        "layernorm_1",
        "dense_5",
        "dense_6",
        "dense_7",
    ]
    symbols = list(model.parameters().values())
    assert len({s.name for s in symbols}) == len(symbols)
    assert model.parameters()["dense_7.W"].name == "W^{(11)}"  # blocks 5, 7 and 10 numbered too
    assert_fd(model, rng.normal(size=(5, 2)), _labels(rng, 5, 3))


def test_residual_batch_norm_keeps_running_statistics():
    """A batch norm inside a block updates its running averages, and inference uses them."""
    rng = np.random.default_rng(15)
    model = nn.Sequential(
        nn.Residual(nn.Dense(3), nn.BatchNorm(momentum=1.0)), nn.Dense(2), input_shape=3
    )
    compiled = model.compile()
    params = model.init(0)
    params["batchnorm_1.beta"] = rng.normal(size=3)
    X, y = rng.normal(size=(8, 3)), _labels(rng, 8, 2)
    compiled.loss_and_grads(params, X, y)
    hidden = X @ params["dense_1.W"].T + params["dense_1.b"]
    mean, var = hidden.mean(axis=0), hidden.var(axis=0, ddof=1)
    np.testing.assert_allclose(compiled.state["batchnorm_1.running_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(compiled.state["batchnorm_1.running_var"], var, rtol=1e-12)
    normalised = (hidden - mean) / np.sqrt(var + 1e-5) + params["batchnorm_1.beta"]
    logits = (X + normalised) @ params["dense_2.W"].T + params["dense_2.b"]
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(
        compiled.predict(params, X), expected / expected.sum(axis=1, keepdims=True), rtol=1e-10
    )


def test_residual_mlp_matches_pytorch_autograd():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(16)
    model = nn.Sequential(
        nn.Dense(5, "relu"),
        nn.Residual(nn.Dense(6, "tanh"), nn.Dense(5)),
        nn.Residual(nn.Dense(5, "sigmoid")),
        nn.Dense(3),
        input_shape=4,
    )
    params = model.init(4)
    X, y = rng.normal(size=(7, 4)), np.array([0, 2, 1, 1, 0, 2, 2])
    loss, grads = model.compile().loss_and_grads(params, X, y)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}

    def dense(name, a):
        return a @ t[f"{name}.W"].T + t[f"{name}.b"]

    a = F.relu(dense("dense_1", torch.tensor(X)))
    a = a + dense("dense_3", torch.tanh(dense("dense_2", a)))
    a = a + torch.sigmoid(dense("dense_4", a))
    reference = F.cross_entropy(dense("dense_5", a), torch.tensor(y))
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-10)
    for name, value in t.items():
        np.testing.assert_allclose(grads[name], value.grad.numpy(), rtol=1e-8, atol=1e-11)


def test_residual_shape_errors_name_the_block_and_both_shapes():
    with pytest.raises(nn.ShapeError, match=r"residual_1.*\(3,\).*\(4,\)"):
        nn.Sequential(nn.Dense(4), nn.Residual(nn.Dense(3)), nn.Dense(2), input_shape=2)
    with pytest.raises(nn.ShapeError, match=r"residual_1.*\(2, 3, 3\).*\(1, 5, 5\)"):
        nn.Sequential(
            nn.Residual(nn.Conv2d(2, 3)), nn.Flatten(), nn.Dense(2), input_shape=(1, 5, 5)
        )
    with pytest.raises(nn.ShapeError, match=r"residual_1: conv2d_1.*9x9 window.*\(1, 5, 5\)"):
        nn.Sequential(
            nn.Residual(nn.Conv2d(1, 9)), nn.Flatten(), nn.Dense(2), input_shape=(1, 5, 5)
        )
    with pytest.raises(ValueError, match="at least one layer"):
        nn.Residual()
    with pytest.raises(TypeError, match="not a layer"):
        nn.Residual("relu")


def test_derive_shows_the_skip_connection_and_the_gradient_highway():
    model = nn.Sequential(
        nn.Dense(4, "tanh"),
        nn.Residual(nn.Dense(4, "relu"), nn.Dense(4)),
        nn.Dense(2),
        input_shape=3,
    )
    tex = model.derive().to_latex()
    assert r"A^{(4)} &= A^{(1)} + Z^{(3)}" in tex  # the block's output: input + f(input)
    # the block's input collects the skip and the path through the block
    assert r"\bar{A}^{(1)} &= \bar{A}^{(4)} + \left(W^{(2)}\right)^{T} \bar{Z}^{(2)}" in tex
    assert r"\intertext{Layer 4}" in tex and r"\intertext{Layer 5}" in tex
    assert "residual_1" in model.summary() and "  dense_2" in model.summary()


def test_trains_a_residual_network_on_moons():
    X, y = sd.datasets.make_moons(200, noise=0.15, seed=3)
    model = nn.Sequential(
        nn.Dense(16, "tanh"),
        nn.Residual(nn.Dense(16, "relu"), nn.BatchNorm(), nn.Dense(16)),
        nn.Residual(nn.Dense(16, "relu"), nn.Dropout(0.1), nn.Dense(16)),
        nn.Dense(2),
        input_shape=2,
    )
    options = {"batch_size": 32, "seed": 0, "progress": False}
    history = sd.train(model, X, y, sd.optim.Adam(lr=0.01), 30, **options)
    assert set(history.grad_norms) == {f"dense_{i}" for i in range(1, 7)} | {"batchnorm_1"}
    assert history.loss[-1] < 0.5 * history.loss[0]
    X_test, y_test = sd.datasets.make_moons(500, noise=0.15, seed=4)
    predicted = history.compiled.predict(history.params, X_test).argmax(axis=1)
    assert np.mean(predicted == y_test) > 0.9  # at inference: the block's running statistics


def test_repeated_matrix_subexpressions_are_computed_once():
    """Batch norm's (σ² + ε)^(-1/2) feeds the output, the input adjoint and γ's gradient: the
    generated step computes it once (and the gradient stays right: see the tests above)."""
    model = nn.Sequential(nn.Dense(5, "tanh"), nn.BatchNorm(), nn.Dense(2), input_shape=3)
    source = model.compile().source
    assert source.count("**(-1/2)") == 1, source
    rng = np.random.default_rng(11)
    assert_fd(model, rng.normal(size=(6, 3)), _labels(rng, 6, 2))


def test_missing_or_listed_parameters():
    model = nn.Sequential(nn.Dense(2), input_shape=2)
    params = model.init(0)
    compiled = model.compile()
    with pytest.raises(nn.ShapeError, match=r"no 'dense_1.b'.*dense_1.W, dense_1.b"):
        compiled.loss_and_grads({"dense_1.W": params["dense_1.W"]}, np.zeros((1, 2)), [0])
    as_lists = {name: value.tolist() for name, value in params.items()}
    X = np.array([[1.0, 2.0]])
    assert compiled.loss(as_lists, X, [1]) == compiled.loss(params, X, [1])


@pytest.mark.parametrize(
    "conv, shape",
    [(nn.Conv2d, (2, 5, 4)), (nn.Conv1d, (2, 7))],
    ids=["images", "sequences"],
)
def test_batch_norm_per_channel_after_a_convolution(conv, shape):
    rng = np.random.default_rng(12)
    model = nn.Sequential(
        conv(3, 3, padding="same", activation="tanh"),
        nn.BatchNorm(),
        nn.Flatten(),
        nn.LayerNorm(),
        nn.Dense(3),
        input_shape=shape,
    )
    assert model.parameters()["batchnorm_1.gamma"].shape == (3, 1)  # one per channel
    assert_fd(model, rng.normal(size=(4, *shape)), np.array([0, 1, 2, 1]))


def test_batch_norm_2d_and_layer_norm_on_images_match_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(13)
    model = nn.Sequential(
        nn.Conv2d(3, 3, padding="same", activation="relu"),
        nn.BatchNorm(momentum=0.2),
        nn.LayerNorm(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(3),
        input_shape=(2, 6, 6),
    )
    params = model.init(1)
    params["batchnorm_1.gamma"] = rng.uniform(0.5, 1.5, 3)
    params["batchnorm_1.beta"] = rng.normal(size=3)
    params["layernorm_1.gamma"] = rng.uniform(0.5, 1.5, 108)
    X, y = rng.normal(size=(5, 2, 6, 6)), np.array([0, 1, 2, 1, 0])
    compiled = model.compile()
    loss, grads = compiled.loss_and_grads(params, X, y)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    mean, var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    a = F.relu(F.conv2d(torch.tensor(X), t["conv2d_1.K"], t["conv2d_1.b"], padding=1))
    gamma, beta = t["batchnorm_1.gamma"], t["batchnorm_1.beta"]
    a = F.batch_norm(a, mean, var, gamma, beta, training=True, momentum=0.2)
    ln_gamma, ln_beta = t["layernorm_1.gamma"], t["layernorm_1.beta"]
    a = F.layer_norm(a, (3, 6, 6), ln_gamma.reshape(3, 6, 6), ln_beta.reshape(3, 6, 6))
    a = F.max_pool2d(a, 2).flatten(1)
    reference = F.cross_entropy(a @ t["dense_1.W"].T + t["dense_1.b"], torch.tensor(y))
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-10)
    for name, value in t.items():
        np.testing.assert_allclose(grads[name], value.grad.numpy(), rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(compiled.state["batchnorm_1.running_mean"], mean.numpy())
    np.testing.assert_allclose(compiled.state["batchnorm_1.running_var"], var.numpy())


def test_train_builds_a_model_from_the_datas_shape():
    X, y = sd.datasets.make_moons(60, noise=0.1, seed=3)
    model = nn.Sequential(nn.Dense(8, "tanh"), nn.Dense(2))
    history = sd.train(model, X, y, sd.optim.Adam(lr=0.05), 5, progress=False)
    assert model.input_shape == (2,) and history.epochs == 5
    with pytest.raises(nn.ShapeError, match="no input_shape yet"):
        nn.Sequential(nn.Dense(2)).compile()


ACTIVATIONS_ANY = ["tanh", "sigmoid", "softplus", "elu", "gelu", "silu", "leaky_relu", "relu", None]


def _composed_model(seed: int):
    """A random model of every kind of layer: conv (1-D or 2-D) with batch norm per channel,
    residual blocks around conv or dense layers with batch/layer norm and dropout inside,
    pooling, penalties, and one of the five losses."""
    rng = np.random.default_rng(seed)

    def act():
        return ACTIVATIONS_ANY[rng.integers(len(ACTIVATIONS_ANY))]

    layers: list = []
    if seed % 3 == 0:
        shape = (int(rng.integers(1, 3)), int(rng.integers(4, 7)), int(rng.integers(4, 7)))
        maps = int(rng.integers(1, 4))
        layers += [nn.Conv2d(maps, int(rng.choice([1, 3])), padding="same", activation=act())]
        layers += [nn.BatchNorm()] if rng.random() < 0.6 else []
        inner = [nn.Conv2d(maps, 3, padding="same", activation=act()), nn.BatchNorm()]
        layers += [nn.Residual(*inner[: int(rng.integers(1, 3))])] if rng.random() < 0.6 else []
        layers += [nn.MaxPool2d(2, stride=1) if rng.random() < 0.5 else nn.AvgPool2d(2)]
        layers += [nn.LayerNorm()] if rng.random() < 0.3 else []
        layers += [nn.Flatten()]
    elif seed % 3 == 1:
        shape = (int(rng.integers(1, 3)), int(rng.integers(6, 10)))
        layers += [nn.Conv1d(2, int(rng.integers(1, 4)), stride=int(rng.integers(1, 3)), padding=1)]
        layers += [nn.Activation(act() or "tanh"), nn.BatchNorm(), nn.MaxPool1d(2), nn.Flatten()]
    else:
        shape = (int(rng.integers(2, 6)),)
    width = int(rng.integers(2, 6))
    layers += [
        nn.Dense(width, act(), l1=0.01 * (rng.random() < 0.3), l2=0.01 * (rng.random() < 0.3))
    ]
    inner = [nn.Dense(width, act()), nn.LayerNorm(), nn.Dropout(0.2)]
    layers += [nn.Residual(*inner[: int(rng.integers(1, 4))])] if rng.random() < 0.7 else []
    layers += [nn.BatchNorm()] if rng.random() < 0.4 else []
    loss = ["cross_entropy", "mse", "binary_cross_entropy_with_logits", "huber", "hinge"][seed % 5]
    outputs = int(rng.integers(2, 4))
    model = nn.Sequential(*layers, nn.Dense(outputs), loss=loss, input_shape=shape)
    n = int(rng.integers(3, 6))
    X = rng.normal(size=(n, *shape))
    y = {
        "cross_entropy": lambda: _labels(rng, n, outputs),
        "binary_cross_entropy_with_logits": lambda: rng.integers(0, 2, (n, outputs)) * 1.0,
        "hinge": lambda: rng.choice([-1.0, 1.0], (n, outputs)),
    }.get(loss, lambda: rng.normal(size=(n, outputs)))()
    return model, X, y


@pytest.mark.parametrize("seed", range(30))
def test_random_compositions_of_every_layer(seed):
    model, X, y = _composed_model(seed)
    assert_fd(model, X, y, seed=seed, entries=3, jitter=0.1)
