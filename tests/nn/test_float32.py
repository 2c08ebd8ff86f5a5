"""A compiled model computes in the dtype of its parameters, float32 or float64: inputs,
intermediates, gradients and optimizer state; gradients checked against PyTorch's autograd
in the same dtype, and float32 numerics finite at logits of ±1000."""

import re

import numpy as np
import pytest

from symdl import nn, optim
from symdl.nn.layers import ACTIVATIONS

from ..conftest import needs, optional

torch = optional("torch")
needs_torch = needs(torch, "torch")
F = torch.nn.functional if torch else None

DTYPES = [np.float32, np.float64]
TOLERANCE = {np.float32: {"rtol": 2e-4, "atol": 2e-6}, np.float64: {"rtol": 1e-9, "atol": 1e-12}}
TORCH = {np.float32: torch.float32, np.float64: torch.float64} if torch else {}


def _dense():
    return nn.Sequential(nn.Dense(16, "relu"), nn.Dense(8, "tanh"), nn.Dense(4), input_shape=6)


def _dense_reference(t, X):
    a = F.relu(X @ t["dense_1.W"].T + t["dense_1.b"])
    a = torch.tanh(a @ t["dense_2.W"].T + t["dense_2.b"])
    return a @ t["dense_3.W"].T + t["dense_3.b"]


def _cnn():
    return nn.Sequential(
        nn.Conv2d(6, 3, padding="same", activation="relu"),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(4),
        input_shape=(2, 6, 6),
    )


def _cnn_reference(t, X):
    a = F.relu(F.conv2d(X, t["conv2d_1.K"], t["conv2d_1.b"], padding=1))
    a = F.max_pool2d(a, 2).flatten(1)
    return a @ t["dense_1.W"].T + t["dense_1.b"]


def _batchnorm():
    return nn.Sequential(
        nn.Dense(12),
        nn.BatchNorm(),
        nn.Activation("relu"),
        nn.Dense(12),
        nn.LayerNorm(),
        nn.Dense(4),
        input_shape=6,
    )


def _batchnorm_reference(t, X):
    a = X @ t["dense_1.W"].T + t["dense_1.b"]
    a = F.batch_norm(a, None, None, t["batchnorm_1.gamma"], t["batchnorm_1.beta"], training=True)
    a = F.relu(a) @ t["dense_2.W"].T + t["dense_2.b"]
    a = F.layer_norm(a, (12,), t["layernorm_1.gamma"], t["layernorm_1.beta"])
    return a @ t["dense_3.W"].T + t["dense_3.b"]


MODELS = {
    "dense": (_dense, _dense_reference),
    "cnn": (_cnn, _cnn_reference),
    "batchnorm": (_batchnorm, _batchnorm_reference),
}


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MODELS)
def test_gradients_match_pytorch_in_the_parameters_dtype(kind, dtype):
    build, reference = MODELS[kind]
    model = build()
    rng = np.random.default_rng(5)
    params = model.init(2, dtype=dtype)
    for name in params:
        if name.endswith(".gamma"):
            params[name] = rng.uniform(0.5, 1.5, params[name].shape).astype(dtype)
    X = rng.normal(size=(8, *model.input_shape)).astype(dtype)
    y = rng.integers(0, 4, size=8)
    loss, grads = model.compile().loss_and_grads(params, X, y)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    expected = F.cross_entropy(reference(t, torch.tensor(X)), torch.tensor(y))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=TOLERANCE[dtype]["rtol"])
    for name, value in t.items():
        assert grads[name].dtype == dtype, name
        assert grads[name].shape == params[name].shape, name
        np.testing.assert_allclose(grads[name], value.grad.numpy(), **TOLERANCE[dtype])


def _intermediate_dtypes(compiled, model, params, X, y) -> dict[str, tuple]:
    """Every assignment of the generated training step: (dtype, all finite)."""
    function = compiled._train[0]
    lines = []
    for line in function.source.splitlines():
        lines.append(line)
        match = re.match(r"^    (\w+) = ", line)
        if match:
            name = match.group(1)
            lines.append(
                f"    _seen[{name!r}] = ({name}).dtype, bool(numpy.isfinite({name}).all())"
            )
    namespace: dict = {}
    source = "\n".join(lines).replace("def value_and_grad(", "def value_and_grad(_seen, ")
    exec(source, namespace)  # noqa: S102 (the generated step, instrumented)
    dtype = params[next(iter(params))].dtype
    Ys = compiled._targets(y, dtype)
    inputs = compiled._inputs(compiled._train[1], params, compiled._batch(X, dtype), Ys)
    seen: dict = {}
    namespace["value_and_grad"](seen, *inputs, len(X))
    return seen


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_float32_stays_float32_and_finite_in_every_step(activation):
    """No step of the generated code upcasts (a NumPy float64 constant, a float64 mask or
    an array of constant pieces would) and large inputs give no overflow."""
    model = nn.Sequential(
        nn.Dense(6, activation),
        nn.Dropout(0.2),
        nn.BatchNorm(),
        nn.Dense(3),
        input_shape=4,
    )
    rng = np.random.default_rng(1)
    params = model.init(0, dtype=np.float32)
    X = (1000 * rng.normal(size=(7, 4))).astype(np.float32)
    seen = _intermediate_dtypes(model.compile(), model, params, X, rng.integers(0, 3, 7))
    assert {str(d) for d, _ in seen.values()} == {"float32"}, seen
    assert all(finite for _, finite in seen.values()), seen


def test_two_normalisations_of_one_width_stay_float32():
    """ε 1 shared by two BatchNorm layers of the same width is a broadcast scalar, not a
    float64 array of ones that would upcast every later step."""
    model = nn.Sequential(
        nn.Dense(5),
        nn.BatchNorm(),
        nn.Activation("relu"),
        nn.Dense(5),
        nn.BatchNorm(),
        nn.Activation("relu"),
        nn.Dense(5),
        nn.LayerNorm(),
        nn.Dense(5),
        nn.LayerNorm(),
        nn.Dense(3),
        input_shape=4,
    )
    rng = np.random.default_rng(2)
    params = model.init(0, dtype=np.float32)
    X = rng.normal(size=(7, 4)).astype(np.float32)
    seen = _intermediate_dtypes(model.compile(), model, params, X, rng.integers(0, 3, 7))
    assert {str(d) for d, _ in seen.values()} == {"float32"}, seen


@pytest.mark.parametrize(
    "loss, y",
    [
        ("mse", np.linspace(-1, 1, 7)),
        ("huber", np.linspace(-1, 1, 7)),
        ("hinge", np.array([1.0, -1, 1, -1, 1, 1, -1])),
        ("binary_cross_entropy_with_logits", np.array([1.0, 0, 1, 0, 1, 1, 0])),
    ],
)
def test_every_loss_stays_float32_at_logits_of_a_thousand(loss, y):
    model = nn.Sequential(nn.Dense(1), loss=loss, input_shape=3)
    params = model.init(0, dtype=np.float32)
    params["dense_1.W"][:] = 1000.0
    X = np.sign(np.random.default_rng(2).normal(size=(7, 3))).astype(np.float32)
    seen = _intermediate_dtypes(model.compile(), model, params, X, y)
    assert {str(d) for d, _ in seen.values()} == {"float32"}, seen
    assert all(finite for _, finite in seen.values()), seen


def test_cross_entropy_at_logits_of_a_thousand_in_float32():
    model = nn.Sequential(nn.Dense(3), input_shape=2)
    params = model.init(0, dtype=np.float32)
    params["dense_1.W"][:] = [[1000.0, 0.0], [-1000.0, 0.0], [0.0, 1000.0]]
    X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    loss, grads = model.compile().loss_and_grads(params, X, np.array([1, 0]))
    assert np.isfinite(loss) and loss == pytest.approx((2000.0 + 1000.0) / 2, rel=1e-6)
    assert all(g.dtype == np.float32 and np.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize("make", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSProp, optim.Adagrad])
def test_optimizer_state_keeps_the_parameters_dtype(make):
    model = nn.Sequential(nn.Dense(4, "tanh"), nn.Dense(2), input_shape=3)
    params = model.init(0, dtype=np.float32)
    compiled, opt = model.compile(), make()
    X, y = np.ones((5, 3), dtype=np.float32), np.array([0, 1, 0, 1, 1])
    for _ in range(2):
        _, grads = compiled.loss_and_grads(params, X, y)
        opt.step(params, grads)
    assert all(p.dtype == np.float32 for p in params.values())
    buffers = {k: v for k, v in opt.state_dict().items() if k != "step"}
    assert all(v.dtype == np.float32 for v in buffers.values()), buffers


def test_running_statistics_predictions_and_loss_in_float32():
    model = _batchnorm()
    compiled = model.compile()
    params = model.init(0, dtype=np.float32)
    X = np.random.default_rng(3).normal(size=(9, 6)).astype(np.float32)
    compiled.loss_and_grads(params, X, np.arange(9) % 4)
    compiled.eval()
    assert compiled.predict(params, X).dtype == np.float32
    _, grads = compiled.loss_and_grads(params, X, np.arange(9) % 4)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert np.isfinite(compiled.loss(params, X, np.arange(9) % 4))


def test_init_takes_float32_or_float64_only():
    model = _dense()
    assert model.init(0, dtype=np.float32)["dense_1.W"].dtype == np.float32
    np.testing.assert_allclose(
        model.init(0, dtype=np.float32)["dense_1.W"], model.init(0)["dense_1.W"], rtol=1e-7
    )
    with pytest.raises(TypeError, match="float32 or float64"):
        model.init(0, dtype=np.int32)


def test_positions_and_fixed_attention_masks_stay_float32():
    """The sinusoidal positions and a causal mask's constants come in the parameters' dtype
    (extra inputs), so attention's scores, softmax and everything after stay float32."""
    model = nn.Sequential(
        nn.PositionalEncoding(),
        nn.SelfAttention(2, causal=True),
        nn.TokenLayerNorm(),
        nn.Flatten(),
        nn.Dense(3),
        input_shape=(3, 4),
    )
    rng = np.random.default_rng(3)
    params = model.init(0, dtype=np.float32)
    X = rng.normal(size=(5, 3, 4)).astype(np.float32)
    seen = _intermediate_dtypes(model.compile(), model, params, X, rng.integers(0, 3, 5))
    assert {str(d) for d, _ in seen.values()} == {"float32"}, seen
