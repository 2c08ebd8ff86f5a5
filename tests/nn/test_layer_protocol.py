"""The layer protocol: a layer declares the extra inputs it needs fed and the values it wants
back after a training step, and answers for them itself, so the compiled model names no layer
kind. The two layers here are new and defined in this file only: nothing in symdl knows them."""

import math

import numpy as np
import sympy
from sympy import MatrixSymbol

import symdl as sd
from symdl import nn
from symdl.core.matrices import matadd, scale
from symdl.nn.layers import Layer


class GaussianNoise(Layer):
    """A + sigma E in training, E standard normal drawn afresh each step; A at inference."""

    kind = "noise"

    def __init__(self, sigma: float, name=None):
        super().__init__(name)
        self.sigma = float(sigma)

    def forward(self, A, params, context):
        if not context.train:
            return None, A
        E = MatrixSymbol(f"E^{{({context.index})}}", A.shape[0], context.batch)
        context.extra_input(self, "noise", E)
        return None, matadd(A, scale(sympy.Float(self.sigma), E))

    def extra_input_value(self, key, shape, train, rng, state):
        assert key == "noise" and train
        return rng.standard_normal(shape)


class StepCounter(Layer):
    """The identity, counting the training steps and examples it has seen, and keeping the
    mean of its input over the last batch, through state updates."""

    kind = "counter"

    def state(self):
        return {"steps": np.zeros(1), "examples": np.zeros(1), "last_mean": np.zeros(1)}

    def forward(self, A, params, context):
        if context.train:
            context.state_update(self, "input", A)
        return None, A

    def update_state(self, state, values, batch):
        assert values["input"].shape[1] == batch
        return {
            "steps": state["steps"] + 1,
            "examples": state["examples"] + batch,
            "last_mean": np.array([values["input"].mean()]),
        }


def test_an_extra_input_is_drawn_by_its_layer_from_the_model_generator():
    """The noisy model's loss and gradients are those of the plain model on X + sigma E^T,
    E drawn from a generator seeded as the compiled model's."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    noisy = nn.Sequential(GaussianNoise(0.5), nn.Dense(2), loss="mse", input_shape=3)
    plain = nn.Sequential(nn.Dense(2), loss="mse", input_shape=3)
    params = noisy.init(seed=1)
    compiled, reference = noisy.compile(seed=4), plain.compile()
    draws = np.random.default_rng(4)
    for _ in range(2):  # a fresh draw each step
        loss, grads = compiled.loss_and_grads(params, X, y)
        E = draws.standard_normal((3, len(X)))
        expected, expected_grads = reference.loss_and_grads(params, X + 0.5 * E.T, y)
        np.testing.assert_allclose(loss, expected, rtol=1e-12)
        for name in params:
            np.testing.assert_allclose(grads[name], expected_grads[name], rtol=1e-10)
    # at inference no noise and no draw
    state = compiled.rng.bit_generator.state
    assert compiled.loss(params, X, y) == reference.loss(params, X, y)
    assert compiled.rng.bit_generator.state == state


def test_new_layers_train_through_sd_train_inside_a_residual_block(tmp_path):
    """sd.train on a model with both new layers, one inside a residual block: the counter's
    state counts every training step, the noise draws resume bit for bit from a checkpoint."""
    X, y = sd.datasets.make_moons(90, noise=0.2, seed=3)

    def model():
        return nn.Sequential(
            nn.Dense(8, "tanh"),
            nn.Residual(GaussianNoise(0.1), nn.Dense(8, "tanh"), StepCounter()),
            nn.Dense(2),
            input_shape=2,
        )

    options = {"batch_size": 16, "seed": 2, "progress": False, "validation": 0.2}
    straight = sd.train(model(), X, y, sd.optim.Adam(lr=0.01), 3, **options)
    state = straight.compiled.state
    n_train = 90 - round(0.2 * 90)
    assert state["counter_1.steps"][0] == 3 * math.ceil(n_train / 16)
    assert state["counter_1.examples"][0] == 3 * n_train
    assert 0 < abs(state["counter_1.last_mean"][0]) < 1  # the mean of tanh outputs
    assert straight.loss[-1] < straight.loss[0]

    path = tmp_path / "checkpoint.npz"
    sd.train(model(), X, y, sd.optim.Adam(lr=0.01), 1, checkpoint=path, **options)
    resumed = sd.train(model(), X, y, sd.optim.Adam(lr=0.01), 3, resume=path, **options)
    for name in straight.params:
        assert np.array_equal(straight.params[name], resumed.params[name]), name
    for key in state:
        assert np.array_equal(state[key], resumed.compiled.state[key]), key
