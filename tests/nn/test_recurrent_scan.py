"""Recurrent layers compiled as a loop over time (symdl.nn.scan) against the unrolled step
(1e-10), PyTorch's nn.RNN/GRU/LSTM with the same weights, and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from symdl import nn

from .test_graph import finite_differences
from .test_recurrent import assert_matches_pytorch, needs_torch

T, F, H, N, CLASSES = 4, 3, 5, 6, 3
LAYERS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def _model(kind, sequences, unroll, steps=T):
    layers = [LAYERS[kind](H, return_sequences=sequences, unroll=unroll)]
    if sequences:
        layers.append(nn.Flatten())
    return nn.Sequential(*layers, nn.Dense(CLASSES), input_shape=(steps, F))


def _batch(seed=0, steps=T):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, steps, F)), rng.integers(0, CLASSES, N)


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("sequences", [False, True])
def test_the_looped_step_equals_the_unrolled_one(kind, sequences):
    looped = _model(kind, sequences, unroll=False).compile()
    unrolled = _model(kind, sequences, unroll=True).compile()
    assert [layer.name for layer in looped.looped] == [f"{kind}_1"]
    assert not unrolled.looped and "scan" not in unrolled.source
    assert "symdl.nn.scan.forward" in looped.source
    params = looped.model.init(1)
    X, y = _batch()
    loss, grads = looped.loss_and_grads(params, X, y)
    reference, expected = unrolled.loss_and_grads(params, X, y)
    assert loss == pytest.approx(reference, rel=1e-10, abs=1e-12)
    assert set(grads) == set(expected)
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-10, atol=1e-12, err_msg=name)
    assert looped.loss(params, X, y) == pytest.approx(unrolled.loss(params, X, y), rel=1e-10)
    np.testing.assert_allclose(looped.predict(params, X), unrolled.predict(params, X), rtol=1e-10)


@needs_torch
@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("sequences", [False, True])
def test_the_looped_step_matches_pytorch(kind, sequences):
    model = _model(kind, sequences, unroll=False)
    X, y = _batch(1)
    assert_matches_pytorch(model, kind, sequences, model.init(2), X, y)


@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU, nn.LSTM])
def test_stacked_looped_layers_match_finite_differences(cls):
    """The second layer's input gradient (the first layer's output adjoint, every step) is the
    loop's input gradient."""
    rng = np.random.default_rng(2)
    model = nn.Sequential(
        cls(3, return_sequences=True, unroll=False),
        cls(2, unroll=False),
        nn.Dense(2),
        loss="mse",
        input_shape=(3, 2),
    )
    compiled, params = model.compile(), model.init(0)
    assert len(compiled.looped) == 2
    X, Y = rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 2))
    _, grads = compiled.loss_and_grads(params, X, Y)
    reference = finite_differences(compiled, params, X, Y)
    for name in params:
        np.testing.assert_allclose(grads[name], reference[name], rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_float32_parameters_loop_in_float32(kind):
    model = _model(kind, True, unroll=False)
    compiled = model.compile()
    X, y = _batch(3)
    loss64, grads64 = compiled.loss_and_grads(model.init(0), X, y)
    loss32, grads32 = compiled.loss_and_grads(model.init(0, dtype=np.float32), X, y)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for name, g in grads64.items():
        assert grads32[name].dtype == np.float32, name
        np.testing.assert_allclose(grads32[name], g, rtol=1e-3, atol=1e-5, err_msg=name)
    assert compiled.predict(model.init(0, dtype=np.float32), X).dtype == np.float32


def test_a_graph_model_loops_too():
    x = nn.Input((T, F))
    models = []
    for unroll in (False, True):
        h = nn.LSTM(H, return_sequences=True, unroll=unroll, name="lstm")(x)
        last = nn.GRU(H, unroll=unroll, name="gru")(h)
        models.append(nn.Model(x, nn.Dense(CLASSES, name="out")(last)))
    looped, unrolled = (m.compile() for m in models)
    assert {layer.name for layer in looped.looped} == {"lstm", "gru"}
    params = models[0].init(4)
    X, y = _batch(4)
    loss, grads = looped.loss_and_grads(params, X, y)
    reference, expected = unrolled.loss_and_grads(params, X, y)
    assert loss == pytest.approx(reference, rel=1e-10)
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-10, atol=1e-12, err_msg=name)


def test_the_derivation_stays_unrolled():
    model = nn.Sequential(nn.RNN(2, unroll=False), nn.Dense(2), input_shape=(3, 2))
    text = str(model.derive())
    assert "bar_h_{2}^{(1)} = U_{h}^{(1)}.T*bar_z_{3}^{(1)}" in text
    assert "scan" not in text


def test_the_default_loops_from_the_measured_length():
    def first_layer(layer, steps):
        return nn.Sequential(layer, nn.Dense(2), input_shape=(steps, 2)).layers[0]

    for cls in (nn.GRU, nn.LSTM):
        first = cls.loop_from_steps
        assert not first_layer(cls(2), first - 1).loops() and first_layer(cls(2), first).loops()
        assert not first_layer(cls(2, unroll=True), 2 * first).loops()
        assert first_layer(cls(2, unroll=False), 2).loops()
    assert nn.RNN.loop_from_steps is None and not first_layer(nn.RNN(2), 256).loops()


@needs_torch
def test_exports_print_the_unrolled_layer():
    """JAX and PyTorch exports of a looped model run its unrolled twin (the same loss and
    gradients); printing the loop itself for them is refused, naming the layer."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from symdl.compile.backends import backend_source
    from symdl.compile.jax_backend import JaxPrinter, export_model
    from symdl.compile.torch_backend import export_module
    from symdl.core.rules import UnsupportedOp

    model = _model("gru", False, unroll=False)
    compiled, params = model.compile(), model.init(5)
    X, y = _batch(5)
    loss, grads = compiled.loss_and_grads(params, X, y)
    step = export_model(compiled)
    j_loss, j_grads = step.loss_and_grads(step.params(params), X, step.targets(y))
    assert float(j_loss) == pytest.approx(loss, rel=1e-10)
    for name, g in grads.items():
        np.testing.assert_allclose(np.asarray(j_grads[name]), g, rtol=1e-9, atol=1e-12)
    module = export_module(compiled, params)
    module(X, module.targets(y)).backward()
    for name, p in module.params().items():
        np.testing.assert_allclose(p.grad.numpy(), grads[name], rtol=1e-9, atol=1e-12)
    with pytest.raises(UnsupportedOp, match=r"gru_1 \(GRU\).*unroll=True"):
        backend_source(compiled._train[0], JaxPrinter())
