"""A Sequential is the graph of one input and one output: the same layers written as an
`nn.Model` chain give the same derivation, the same generated step, and the same loss and
gradients, which finite differences confirm."""

from __future__ import annotations

import numpy as np
import pytest

from symdl import nn

from .test_graph import finite_differences


def random_layers(rng, features: int, outputs: int) -> list:
    """Random Dense layers; some seeds add a residual block, a batch norm, an L2 penalty."""
    activations = ["tanh", "relu", "sigmoid", None]
    layers, width = [], features
    for _ in range(rng.integers(1, 4)):
        width = int(rng.integers(2, 6))
        options = {"l2": 0.01} if rng.random() < 0.3 else {}
        layers.append(nn.Dense(width, activations[rng.integers(4)], **options))
        if rng.random() < 0.4:
            layers.append(nn.Residual(nn.Dense(width, "tanh"), nn.Dense(width)))
        if rng.random() < 0.3:
            layers.append(nn.BatchNorm())
    return [*layers, nn.Dense(outputs)]


def both(seed: int):
    """(Sequential, graph Model, X, y) of the same random layers (built twice, from the same
    draws) and a batch."""
    rng = np.random.default_rng(seed)
    features, outputs = int(rng.integers(2, 5)), int(rng.integers(1, 4))
    loss = "mse" if seed % 2 else "cross_entropy"
    state = rng.bit_generator.state
    sequential = nn.Sequential(
        *random_layers(rng, features, outputs), loss=loss, input_shape=features
    )
    rng.bit_generator.state = state
    x = h = nn.Input(features)
    for layer in random_layers(rng, features, outputs):
        h = layer(h)
    graph = nn.Model(x, h, loss=loss)
    X = rng.normal(size=(6, features))
    y = rng.normal(size=(6, outputs)) if loss == "mse" else rng.integers(0, outputs, size=6)
    return sequential, graph, X, y


@pytest.mark.parametrize("seed", range(6))
def test_a_sequential_and_its_graph_agree(seed):
    sequential, graph, X, y = both(seed)
    assert [layer.name for layer in sequential.layers] == [layer.name for layer in graph.layers]
    assert sequential.derive().to_latex() == graph.derive().to_latex()
    a, b = sequential.compile(), graph.compile()
    assert a.source == b.source
    params = sequential.init(seed)
    assert params.keys() == graph.init(seed).keys()
    loss_a, grads_a = a.loss_and_grads(params, X, y)
    loss_b, grads_b = b.loss_and_grads(params, X, y)
    assert abs(loss_a - loss_b) <= 1e-12 * max(1.0, abs(loss_a))
    for name, g in grads_a.items():
        np.testing.assert_allclose(grads_b[name], g, rtol=1e-12, atol=1e-14, err_msg=name)
    # the running statistics each step updated, and the predictions, agree too
    for name, value in a.state.items():
        np.testing.assert_allclose(b.state[name], value, rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(b.predict(params, X), a.predict(params, X), rtol=1e-12)
    np.testing.assert_allclose(b.loss(params, X, y), a.loss(params, X, y), rtol=1e-12)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_graph_gradient_matches_finite_differences(seed):
    _, graph, X, y = both(seed)
    step = graph.compile().eval()  # running statistics: the loss a smooth function of params
    params = graph.init(seed)
    _, grads = step.loss_and_grads(params, X, y)
    reference = finite_differences(step, params, X, y)
    for name in params:
        np.testing.assert_allclose(grads[name], reference[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_a_graph_of_one_input_takes_the_batch_as_a_list_too():
    sequential, graph, X, y = both(0)
    params = sequential.init(0)
    step = graph.compile()
    loss, grads = step.loss_and_grads(params, X, y)
    loss_list, grads_list = step.loss_and_grads(params, [X], [y])
    assert loss == pytest.approx(loss_list, rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(grads_list[name], g, rtol=1e-12, err_msg=name)
