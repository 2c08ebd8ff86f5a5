"""Graph models (nn.Input, layers on tensors, add/concat/multiply, shared layers, several
inputs and outputs) against finite differences and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import symdl as sd
from symdl import nn
from symdl.nn.layers import ShapeError


def finite_differences(compiled, params, X, y, eps=1e-6):
    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + eps
            plus = compiled.loss_and_grads(params, X, y)[0]
            value[idx] = old - eps
            minus = compiled.loss_and_grads(params, X, y)[0]
            value[idx] = old
            g[idx] = (plus - minus) / (2 * eps)
        grads[name] = g
    return grads


def assert_grads_match(model, X, y, seed=0):
    compiled = model.compile()
    params = model.init(seed)
    _, grads = compiled.loss_and_grads(params, X, y)
    reference = finite_differences(compiled, params, X, y)
    for name in params:
        np.testing.assert_allclose(grads[name], reference[name], rtol=1e-5, atol=1e-7, err_msg=name)


def random_graph(rng):
    """A random graph of Dense layers joined by add, concat, multiply and shared layers."""
    x = nn.Input(3)
    tensors = [x, nn.Dense(4, "tanh")(x)]
    shared = nn.Dense(4, "sigmoid")
    for _ in range(4):
        kind = rng.integers(5)
        a, b = (tensors[i] for i in rng.integers(len(tensors), size=2))
        if kind == 0:
            tensors.append(nn.Dense(4, "tanh")(a))
        elif kind == 1 and a.shape == b.shape:
            tensors.append(nn.add(a, b))
        elif kind == 2 and a.shape == b.shape:
            tensors.append(nn.multiply(a, b))
        elif kind == 3:
            tensors.append(nn.concat(a, b))
        elif a.shape == (4,):
            tensors.append(shared(a))
        else:
            tensors.append(nn.concat(a, tensors[-1]))
    return nn.Model(x, nn.Dense(3)(nn.concat(*tensors[1:])), loss="cross_entropy")


@pytest.mark.parametrize("seed", range(4))
def test_random_graphs_match_finite_differences(seed):
    rng = np.random.default_rng(seed)
    model = random_graph(rng)
    X, y = rng.normal(size=(5, 3)), rng.integers(0, 3, 5)
    assert_grads_match(model, X, y, seed)


def test_a_shared_layer_gathers_the_gradient_of_both_uses():
    dense = nn.Dense(3, "tanh")
    x = nn.Input(3)
    y = nn.Dense(2)(dense(dense(x)))
    model = nn.Model(x, y, loss="mse")
    assert list(model.parameters()) == ["dense_1.W", "dense_1.b", "dense_2.W", "dense_2.b"]
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    assert_grads_match(model, X, Y)
    # the same network in PyTorch, the layer applied twice
    torch = pytest.importorskip("torch")
    params = model.init(0)
    _, grads = model.compile().loss_and_grads(params, X, Y)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    Xt = torch.tensor(X)

    def shared(h):
        return torch.tanh(h @ t["dense_1.W"].T + t["dense_1.b"])

    out = shared(shared(Xt)) @ t["dense_2.W"].T + t["dense_2.b"]
    loss = ((out - torch.tensor(Y)) ** 2).mean()
    loss.backward()
    for k in params:
        np.testing.assert_allclose(grads[k], t[k].grad.numpy(), rtol=1e-10, atol=1e-12)


def test_fan_out_shows_in_the_derivation_as_a_sum_of_adjoints():
    x = nn.Input(2)
    h = nn.Dense(2, "tanh")(x)
    out = nn.Dense(2)(nn.add(h, nn.Dense(2, "tanh")(h)))
    derivation = nn.Model(x, out).derive()
    text = str(derivation)
    adjoint = next(line for line in text.splitlines() if line.startswith("bar_A^{(1)} ="))
    assert adjoint.count("+") == 1  # δ from the skip plus δ through the second layer


def test_several_inputs_and_outputs_with_a_loss_each():
    a, b = nn.Input(3), nn.Input(2)
    h = nn.Dense(4, "tanh")(nn.concat(a, b))
    classes = nn.Dense(3)(h)
    value = nn.Dense(1)(nn.multiply(h, nn.Dense(4, "sigmoid")(b)))
    model = nn.Model([a, b], [classes, value], loss=["cross_entropy", "mse"], loss_weights=[1, 0.5])
    rng = np.random.default_rng(1)
    Xa, Xb = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    labels, targets = rng.integers(0, 3, 5), rng.normal(size=5)
    assert_grads_match(model, (Xa, Xb), (labels, targets))
    compiled = model.compile()
    params = model.init(0)
    packed = model.pack(Xa, Xb)
    assert compiled.loss_and_grads(params, packed, (labels, targets))[0] == pytest.approx(
        compiled.loss_and_grads(params, (Xa, Xb), (labels, targets))[0]
    )
    probabilities, values = compiled.predict(params, (Xa, Xb))
    assert probabilities.shape == (5, 3) and values.shape == (5, 1)


def test_a_graph_model_trains_with_sd_train():
    a, b = nn.Input(2), nn.Input(2)
    h = nn.Dense(8, "tanh")(nn.concat(a, b))
    model = nn.Model([a, b], nn.Dense(2)(nn.add(h, nn.Dense(8, "tanh")(h))))
    rng = np.random.default_rng(0)
    Xa, Xb = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    y = ((Xa[:, 0] * Xb[:, 1]) > 0).astype(int)
    history = sd.train(
        model,
        model.pack(Xa, Xb),
        y,
        sd.optim.Adam(0.05),
        epochs=30,
        validation=None,
        progress=False,
    )
    assert history.loss[-1] < 0.5 * history.loss[0]


def test_shape_errors_name_the_layer():
    dense = nn.Dense(2, name="shared")
    dense(nn.Input(3))
    with pytest.raises(ShapeError, match="shared: used again on inputs of shape"):
        dense(nn.Input(4))
    with pytest.raises(ShapeError, match="add needs inputs of one shape"):
        nn.add(nn.Input(2), nn.Input(3))
    with pytest.raises(ValueError, match="an input not listed"):
        nn.Model(nn.Input(2), nn.Dense(2)(nn.Input(2)))
