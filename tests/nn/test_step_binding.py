"""The one-pass argument binding of a compiled training step: after steps with good
parameters, a parameter of a new shape, a missing one or a list still gets the checks and
their messages, and the gradients equal those of the per-argument path."""

import numpy as np
import pytest

from symdl import nn, optim
from symdl.nn.layers import ShapeError


def model():
    return nn.Sequential(nn.Dense(4, "tanh"), nn.Dense(1), loss="mse", input_shape=3)


def batch():
    rng = np.random.default_rng(1)
    return rng.normal(size=(5, 3)), rng.normal(size=5)


def test_a_new_shape_after_good_steps_is_named():
    m = model()
    step, params = m.compile(), m.init(0)
    X, y = batch()
    step.loss_and_grads(params, X, y)  # the binding is made and used
    bad = dict(params, **{"dense_1.W": np.zeros((4, 2))})
    with pytest.raises(
        ShapeError, match=r"dense_1.W: expected an array of shape \(4, 3\), got \(4, 2\)"
    ):
        step.loss_and_grads(bad, X, y)
    missing = {k: v for k, v in params.items() if k != "dense_2.b"}
    with pytest.raises(ShapeError, match="params has no 'dense_2.b'"):
        step.loss_and_grads(missing, X, y)


def test_lists_and_the_checked_path_give_the_same_gradients():
    m = model()
    step, params = m.compile(), m.init(0)
    X, y = batch()
    loss, grads = step.loss_and_grads(params, X, y)
    as_lists = {k: v.tolist() for k, v in params.items()}  # not ndarrays: the checked path
    loss2, grads2 = step.loss_and_grads(as_lists, X, y)
    assert loss == pytest.approx(loss2, rel=1e-12)
    for name, g in grads.items():
        assert g.shape == params[name].shape == grads2[name].shape
        np.testing.assert_allclose(g, grads2[name], rtol=1e-12)


def test_float32_gradients_keep_their_dtype_and_shapes():
    m = model()
    step, params = m.compile(), m.init(0, dtype=np.float32)
    X, y = batch()
    _, grads = step.loss_and_grads(params, X.astype(np.float32), y)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    assert all(grads[k].shape == v.shape for k, v in params.items())


def test_dtypes_and_batch_sizes_after_good_steps():
    """The step's gradients are checked once per (dtype, batch size) of a call whose
    parameters are all arrays of one dtype; a call of another dtype, batch size or a mix of
    dtypes still gets gradients of the parameters' dtype and shapes, equal to float64's."""
    m = model()
    step, params = m.compile(), m.init(0)
    X, y = batch()
    _, reference = step.loss_and_grads(params, X, y)
    step.loss_and_grads(params, X, y)  # the second call of (float64, 5) takes the checked form
    single = {k: v.astype(np.float32) for k, v in params.items()}
    mixed = dict(params, **{"dense_1.W": single["dense_1.W"]})  # float32 first, then float64
    for given, dtype, rtol in ((single, np.float32, 1e-5), (mixed, np.float32, 1e-5)):
        for _ in range(2):
            _, grads = step.loss_and_grads(given, X, y)
            assert {g.dtype for g in grads.values()} == {np.dtype(dtype)}
            for name, g in grads.items():
                assert g.shape == params[name].shape
                np.testing.assert_allclose(g, reference[name], rtol=rtol, atol=1e-6)
    _, small = step.loss_and_grads(params, X[:1], y[:1])  # N = 1: new shapes inside the step
    assert all(small[k].shape == v.shape and small[k].dtype == v.dtype for k, v in params.items())


def test_adam_work_array_is_not_state_and_matches_the_formula():
    p = {"w": np.array([1.0, -2.0, 3.0])}
    g = {"w": np.array([0.5, 0.25, -1.0])}
    opt = optim.Adam(lr=0.1)
    w, m, v = p["w"].copy(), np.zeros(3), np.zeros(3)
    for t in (1, 2, 3):
        opt.step(p, g)
        m = 0.9 * m + 0.1 * g["w"]
        v = 0.999 * v + 0.001 * g["w"] ** 2
        w = w - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(p["w"], w, rtol=1e-12)
    assert set(opt.state_dict()) == {"step", "m/w", "v/w"}
