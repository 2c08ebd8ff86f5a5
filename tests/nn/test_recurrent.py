"""RNN, GRU and LSTM layers against PyTorch (the same weights) and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from symdl import nn

from ..conftest import needs, optional
from .test_graph import finite_differences

torch = optional("torch")
needs_torch = needs(torch, "torch")

T, F, H, N, CLASSES = 4, 3, 5, 6, 3
GATES = {"rnn": ["h"], "gru": ["r", "z", "n"], "lstm": ["i", "f", "g", "o"]}


def torch_layer(kind, params, name):
    """The PyTorch layer with symdl's weights: gates stacked in PyTorch's order, the summed
    bias put in bias_ih (bias_hh zero, except GRU's recurrent bias of n)."""
    module = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[kind]
    layer = module(F, H, batch_first=True).double()
    gates = {"rnn": ["h"], "gru": ["r", "z", "n"], "lstm": ["i", "f", "g", "o"]}[kind]

    def stacked(letter):
        return torch.tensor(np.concatenate([params[f"{name}.{letter}_{g}"] for g in gates]))

    hidden_bias = np.zeros(len(gates) * H)
    if kind == "gru":
        hidden_bias[2 * H :] = params[f"{name}.c_n"]
    with torch.no_grad():
        layer.weight_ih_l0.copy_(stacked("W"))
        layer.weight_hh_l0.copy_(stacked("U"))
        layer.bias_ih_l0.copy_(stacked("b"))
        layer.bias_hh_l0.copy_(torch.tensor(hidden_bias))
    return layer


def assert_matches_pytorch(model, kind, sequences, params, X, y):
    """`model` (one recurrent layer, Flatten if `sequences`, Dense(CLASSES), cross-entropy)
    gives PyTorch's loss and gradients with the same weights."""
    loss, grads = model.compile().loss_and_grads(params, X, y)
    recurrent = torch_layer(kind, params, f"{kind}_1")
    W = torch.tensor(params["dense_1.W"], requires_grad=True)
    b = torch.tensor(params["dense_1.b"], requires_grad=True)
    out, _ = recurrent(torch.tensor(X))
    features = out.reshape(len(X), -1) if sequences else out[:, -1]
    reference = torch.nn.functional.cross_entropy(features @ W.T + b, torch.tensor(y))
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-12)
    np.testing.assert_allclose(grads["dense_1.W"], W.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["dense_1.b"], b.grad.numpy(), rtol=1e-9, atol=1e-12)
    for letter, torch_name in (("W", "weight_ih_l0"), ("U", "weight_hh_l0"), ("b", "bias_ih_l0")):
        expected = getattr(recurrent, torch_name).grad.numpy()
        mine = np.concatenate([grads[f"{kind}_1.{letter}_{g}"] for g in GATES[kind]])
        np.testing.assert_allclose(mine, expected, rtol=1e-9, atol=1e-12, err_msg=letter)
    if kind == "gru":
        expected = recurrent.bias_hh_l0.grad.numpy()[2 * H :]
        np.testing.assert_allclose(grads["gru_1.c_n"], expected, rtol=1e-9, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("sequences", [False, True])
def test_recurrent_layers_match_pytorch(kind, sequences):
    rng = np.random.default_rng(0)
    cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind]
    layers = [cls(H, return_sequences=sequences)]
    if sequences:
        layers.append(nn.Flatten())
    model = nn.Sequential(*layers, nn.Dense(CLASSES), input_shape=(T, F))
    X, y = rng.normal(size=(N, T, F)), rng.integers(0, CLASSES, N)
    assert_matches_pytorch(model, kind, sequences, model.init(1), X, y)


@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU, nn.LSTM])
def test_stacked_recurrent_layers_match_finite_differences(cls):
    rng = np.random.default_rng(2)
    model = nn.Sequential(
        cls(3, return_sequences=True), cls(2), nn.Dense(2), loss="mse", input_shape=(3, 2)
    )
    compiled, params = model.compile(), model.init(0)
    X, Y = rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 2))
    _, grads = compiled.loss_and_grads(params, X, Y)
    reference = finite_differences(compiled, params, X, Y)
    for name in params:
        np.testing.assert_allclose(grads[name], reference[name], rtol=1e-6, atol=1e-7, err_msg=name)


def test_the_rnn_derivation_is_backpropagation_through_time():
    model = nn.Sequential(nn.RNN(2), nn.Dense(2), input_shape=(3, 2))
    text = str(model.derive())
    # δ flows from h_3 back to h_2 and h_1; U gathers one term per step after the first
    adjoint_U = next(line for line in text.splitlines() if line.startswith("bar_U_{h}^{(1)} ="))
    assert adjoint_U.count("h_{1}^{(1)}.T") == 1 and adjoint_U.count("h_{2}^{(1)}.T") == 1
    assert "bar_h_{2}^{(1)} = U_{h}^{(1)}.T*bar_z_{3}^{(1)}" in text


def test_a_sequence_of_the_wrong_shape_is_named():
    with pytest.raises(nn.ShapeError, match=r"needs sequences of shape \(T, F\)"):
        nn.Sequential(nn.GRU(4), nn.Dense(2), input_shape=12)


@needs_torch
def test_clipping_by_global_norm_matches_pytorch():
    from symdl.optim import SGD, ClipGradNorm

    rng = np.random.default_rng(3)
    grads = {"a": rng.normal(size=(3, 2)) * 10, "b": rng.normal(size=4)}
    params = {k: np.zeros_like(v) for k, v in grads.items()}
    ClipGradNorm(SGD(1.0), max_norm=2.0).step(params, grads)
    tensors = [
        torch.zeros(v.shape, dtype=torch.float64, requires_grad=True) for v in grads.values()
    ]
    for t, g in zip(tensors, grads.values(), strict=True):
        t.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_norm_(tensors, 2.0)
    for t, p in zip(tensors, params.values(), strict=True):
        np.testing.assert_allclose(p, -t.grad.numpy(), rtol=1e-12)
