"""The training loop, on hand-written NumPy models that obey the model protocol.

The models' own gradients are first checked against finite differences, so every later test
trains something known to be right.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import symdl as sd
from symdl import datasets, optim
from symdl.render.plot import plot_decision_boundary, plot_grad_norms
from symdl.training.checkpoint import CheckpointError
from symdl.training.loop import (
    EarlyStopping,
    History,
    TrainingDiverged,
    TrainingError,
    accuracy,
    train,
)

# ---------------------------------------------------------------- hand-written models

ACTIVATIONS = {
    "tanh": (np.tanh, lambda z, a: 1 - a**2),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
}


class MLP:
    """Dense layers `dense_l.W` (in, out) and `dense_l.b`; softmax cross-entropy or MSE."""

    def __init__(self, sizes, activation="tanh", loss="softmax", dropout=0.0, track_mean=False):
        self.sizes, self.activation, self.loss = sizes, activation, loss
        self.dropout, self.track_mean = dropout, track_mean
        self.is_classifier = loss == "softmax"

    def init(self, seed):
        rng = np.random.default_rng(seed)
        gain = 2.0 if self.activation == "relu" else 1.0
        params = {}
        for layer, (n_in, n_out) in enumerate(zip(self.sizes, self.sizes[1:], strict=False), 1):
            params[f"dense_{layer}.W"] = rng.normal(scale=np.sqrt(gain / n_in), size=(n_in, n_out))
            params[f"dense_{layer}.b"] = np.zeros(n_out)
        return params

    def compile(self):
        return CompiledMLP(self)


class CompiledMLP:
    def __init__(self, model):
        self.model, self.training = model, True
        self.rng = np.random.default_rng(99) if model.dropout else None
        self.state = {"input_mean": np.zeros(model.sizes[0])} if model.track_mean else {}

    def train(self):
        self.training = True

    def eval(self):
        self.training = False

    def _forward(self, params, X):
        f = ACTIVATIONS[self.model.activation][0]
        n_layers = len(self.model.sizes) - 1
        if self.model.track_mean:
            X = X - self.state["input_mean"]
        cache, a = [], X
        for layer in range(1, n_layers + 1):
            z = a @ params[f"dense_{layer}.W"] + params[f"dense_{layer}.b"]
            if layer == n_layers:
                cache.append((a, z, None, None))
                return z, cache
            h, mask = f(z), None
            cache.append((a, z, h, None))
            a = h
            if self.model.dropout and self.training:
                keep = 1 - self.model.dropout
                mask = (self.rng.random(h.shape) < keep) / keep
                cache[-1] = (cache[-1][0], z, h, mask)
                a = h * mask

    def predict(self, params, X):
        return self._forward(params, X)[0]

    def loss_and_grads(self, params, X, y):
        out, cache = self._forward(params, X)
        n = len(X)
        if self.model.loss == "softmax":
            shifted = out - out.max(axis=1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            loss = -log_p[np.arange(n), y].mean()
            delta = np.exp(log_p)
            delta[np.arange(n), y] -= 1
            delta /= n
        else:
            target = y.reshape(out.shape)
            loss = np.mean((out - target) ** 2)
            delta = 2 * (out - target) / out.size
        if self.model.track_mean and self.training:
            self.state["input_mean"] = 0.9 * self.state["input_mean"] + 0.1 * X.mean(axis=0)
        grads, derivative = {}, ACTIVATIONS[self.model.activation][1]
        for layer in range(len(cache), 0, -1):
            a_in, _, _, _ = cache[layer - 1]
            grads[f"dense_{layer}.W"] = a_in.T @ delta
            grads[f"dense_{layer}.b"] = delta.sum(axis=0)
            if layer > 1:
                _, z, h, mask = cache[layer - 2]
                delta = (delta @ params[f"dense_{layer}.W"].T) * derivative(z, h)
                if mask is not None:
                    delta = delta * mask
        return float(loss), grads


def _finite_difference_check(compiled, params, X, y, reset=lambda: None):
    reset()
    _, grads = compiled.loss_and_grads(params, X, y)
    rng = np.random.default_rng(0)
    for name, p in params.items():
        for _ in range(3):
            idx = tuple(int(rng.integers(0, s)) for s in p.shape)
            values = []
            for sign in (1, -1):
                shifted = {k: v.copy() for k, v in params.items()}
                shifted[name][idx] += sign * 1e-6
                reset()
                values.append(compiled.loss_and_grads(shifted, X, y)[0])
            numeric = (values[0] - values[1]) / 2e-6
            assert grads[name][idx] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (name, idx)


@pytest.mark.parametrize(
    "model",
    [
        MLP([3, 5, 4], "tanh"),
        MLP([3, 6, 5, 2], "sigmoid", loss="mse"),
        MLP([3, 5, 3], "relu"),
        MLP([3, 7, 3], "tanh", dropout=0.3, track_mean=True),
    ],
    ids=["tanh-softmax", "sigmoid-mse", "relu-softmax", "dropout-state"],
)
def test_test_models_have_right_gradients(model, rng):
    compiled = model.compile()
    params = model.init(1)
    X = rng.normal(size=(8, 3))
    y = rng.integers(0, model.sizes[-1], size=8) if model.is_classifier else rng.normal(size=(8, 2))

    def reset():  # the same dropout mask and input mean for every evaluation
        if compiled.rng is not None:
            compiled.rng = np.random.default_rng(5)
        compiled.state = {k: np.full_like(v, 0.25) for k, v in compiled.state.items()}

    _finite_difference_check(compiled, params, X, y, reset)


# ---------------------------------------------------------------- learning and bookkeeping


def test_learns_two_moons_and_records_its_history():
    X, y = datasets.make_moons(240, noise=0.1, seed=0)
    X_train, X_val, y_train, y_val = datasets.train_test_split(X, y, 0.25, seed=1)
    model = MLP([2, 16, 2], "tanh")
    history = train(
        model,
        X_train,
        y_train,
        optim.Adam(lr=0.05),
        epochs=40,
        batch_size=32,
        validation=(X_val, y_val),
        progress=False,
    )
    assert history.epochs == 40 and len(history.val_loss) == 40
    assert set(history.metrics) == {"accuracy", "val_accuracy"}
    assert list(history.grad_norms) == ["dense_1", "dense_2"]  # input to output
    assert len(history.step_loss) == 40 * 6
    assert history.loss[-1] < 0.5 * history.loss[0]
    outputs = history.compiled.predict(history.params, X_val)
    independent = np.mean(outputs.argmax(axis=1) == y_val)
    assert history.metrics["val_accuracy"][-1] == independent
    assert independent >= 0.95
    assert history["val_loss"] is history.val_loss


def test_gradient_norms_are_per_layer_means_over_the_batches():
    X, y = datasets.make_moons(40, seed=2)
    model = MLP([2, 4, 2])
    seen = []
    compiled = model.compile()
    original = compiled.loss_and_grads

    def recording(params, Xb, yb):
        loss, grads = original(params, Xb, yb)
        seen.append({k: g.copy() for k, g in grads.items()})
        return loss, grads

    compiled.loss_and_grads = recording
    model.compile = lambda: compiled
    history = train(
        model, X, y, optim.SGD(lr=0.1), 1, batch_size=16, validation=None, progress=False
    )
    for layer in ("dense_1", "dense_2"):
        per_batch = [
            np.sqrt(np.sum(g[f"{layer}.W"] ** 2) + np.sum(g[f"{layer}.b"] ** 2)) for g in seen
        ]
        assert history.grad_norms[layer] == pytest.approx([np.mean(per_batch)], rel=1e-12)


class Recorder:
    """A linear model that records which rows it sees, in which mode."""

    is_classifier = False

    def __init__(self):
        self.seen = []

    def init(self, seed):
        return {"dense_1.W": np.zeros((1, 1))}

    def compile(self):
        return self

    def train(self):
        self.mode = "train"

    def eval(self):
        self.mode = "eval"

    def loss_and_grads(self, params, X, y):
        self.seen.append((self.mode, X[:, 0].astype(int).tolist()))
        return 0.0, {"dense_1.W": np.zeros((1, 1))}

    def predict(self, params, X):
        return X @ params["dense_1.W"]


def test_batches_are_seeded_shuffles_that_cover_each_sample_once():
    X, y = np.arange(23.0).reshape(23, 1), np.zeros(23)

    def epochs_seen(seed):
        model = Recorder()
        train(model, X, y, optim.SGD(), 3, batch_size=5, validation=None, seed=seed, progress=False)
        batches = [rows for mode, rows in model.seen if mode == "train"]
        assert [len(b) for b in batches] == [5, 5, 5, 5, 3] * 3
        return [sum(batches[i : i + 5], []) for i in range(0, 15, 5)]

    first = epochs_seen(0)
    for epoch in first:
        assert sorted(epoch) == list(range(23))
    assert first[0] != first[1] != first[2]
    assert epochs_seen(0) == first
    assert epochs_seen(1) != first


def test_validation_fraction_is_held_out_of_training():
    X, y = np.arange(50.0).reshape(50, 1), np.zeros(50)
    model = Recorder()
    train(model, X, y, optim.SGD(), 2, batch_size=8, validation=0.2, progress=False)
    trained = {r for mode, rows in model.seen if mode == "train" for r in rows}
    validated = {r for mode, rows in model.seen if mode == "eval" for r in rows}
    assert len(validated) == 10 and len(trained) == 40
    assert trained.isdisjoint(validated) and trained | validated == set(range(50))


def test_early_stopping_restores_the_best_epoch():
    # Training pulls the output towards 1, validation wants 0.3: validation loss falls, then rises.
    X, y = np.ones((32, 1)), np.ones((32, 1))
    X_val, y_val = np.ones((8, 1)), np.full((8, 1), 0.3)
    snapshots = []
    history = train(
        MLP([1, 1], loss="mse"),
        X,
        y,
        optim.SGD(lr=0.02),
        100,
        batch_size=8,
        validation=(X_val, y_val),
        early_stopping=EarlyStopping(patience=3),
        params={"dense_1.W": np.zeros((1, 1)), "dense_1.b": np.zeros(1)},
        progress=False,
        callbacks=[
            lambda epoch, h, params: snapshots.append({k: v.copy() for k, v in params.items()})
        ],
    )
    best = int(np.argmin(history.val_loss)) + 1
    assert history.stopped_early and history.best_epoch == best
    assert history.epochs == best + 3 < 100
    assert history.val_loss[best - 1] < history.val_loss[best - 2]
    for name, value in history.params.items():
        np.testing.assert_array_equal(value, snapshots[best - 1][name])


def test_callback_returning_true_stops():
    X, y = datasets.make_moons(40)
    history = train(
        MLP([2, 3, 2]),
        X,
        y,
        optim.SGD(),
        10,
        validation=None,
        progress=False,
        callbacks=[lambda epoch, h, p: epoch == 3],
    )
    assert history.epochs == 3 and not history.stopped_early


def test_metric_functions_and_accuracy_conventions():
    assert accuracy(np.array([1, 0, 1]), np.array([[0.9], [0.2], [0.4]])) == pytest.approx(2 / 3)
    assert accuracy(
        np.eye(3)[[0, 2, 1]], np.array([[3, 0, 0], [0, 0, 1], [1, 0, 0.0]])
    ) == pytest.approx(2 / 3)

    def mean_output(y_true, outputs):
        return float(outputs.mean())

    X, y = datasets.make_moons(40)
    history = train(
        MLP([2, 3, 2]), X, y, optim.SGD(), 2, metrics=[mean_output, "accuracy"], progress=False
    )
    assert set(history.metrics) == {"mean_output", "val_mean_output", "accuracy", "val_accuracy"}


# ---------------------------------------------------------------- checkpoints and resume


@pytest.mark.parametrize(
    "model, make_optimizer",
    [
        (lambda: MLP([2, 8, 2], "tanh"), lambda: optim.Adam(lr=0.01)),
        (
            lambda: MLP([2, 8, 2], "relu", dropout=0.2, track_mean=True),
            lambda: optim.SGD(lr=optim.StepLR(0.1, 5, 0.5), momentum=0.9),
        ),
    ],
    ids=["adam", "dropout-state-momentum-schedule"],
)
def test_resume_continues_bitwise_exactly(model, make_optimizer, tmp_path):
    X, y = datasets.make_moons(90, noise=0.2, seed=4)
    kwargs = {"batch_size": 16, "seed": 3, "progress": False, "early_stopping": EarlyStopping(10)}
    straight = train(model(), X, y, make_optimizer(), 4, **kwargs)
    path = tmp_path / "run" / "checkpoint.npz"
    first = train(model(), X, y, make_optimizer(), 2, checkpoint=path, **kwargs)
    assert first.epochs == 2
    resumed = train(model(), X, y, make_optimizer(), 4, resume=path, checkpoint=path, **kwargs)
    assert resumed.epochs == 4
    for name in straight.params:
        assert np.array_equal(straight.params[name], resumed.params[name]), name
    assert resumed.loss == straight.loss and resumed.val_loss == straight.val_loss
    assert resumed.grad_norms == straight.grad_norms
    assert resumed.compiled.state.keys() == straight.compiled.state.keys()
    for key in straight.compiled.state:
        assert np.array_equal(resumed.compiled.state[key], straight.compiled.state[key])


def test_checkpoint_is_a_complete_npz_and_nothing_else_is_left(tmp_path):
    X, y = datasets.make_moons(60, seed=5)
    path = tmp_path / "ck.npz"
    history = train(MLP([2, 4, 2]), X, y, optim.Adam(), 3, checkpoint=path, progress=False)
    # the checkpoint and the one it replaced (kept so a crash during a save leaves one)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz", "ck.prev.npz"]
    with np.load(path, allow_pickle=False) as saved:
        keys = set(saved.files)
        np.testing.assert_array_equal(saved["param/dense_1.W"], history.params["dense_1.W"])
        assert int(saved["optim/step"]) == len(history.step_loss)
        meta = json.loads(str(saved["meta"]))
    assert meta["epoch"] == 3 and meta["rng"]["bit_generator"] == "PCG64"
    assert meta["history"]["loss"] == history.loss
    assert {"optim/m/dense_1.W", "optim/v/dense_2.b", "param/dense_2.b"} <= keys
    with pytest.raises(TrainingError, match=r"written with seed 0 .* this call has seed 1"):
        train(MLP([2, 4, 2]), X, y, optim.Adam(), 5, resume=path, seed=1, progress=False)
    with pytest.raises(TrainingError, match=r"holds parameters .* but this model has"):
        train(MLP([2, 5, 2]), X, y, optim.Adam(), 5, resume=path, progress=False)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        train(MLP([2, 4, 2]), X, y, optim.Adam(), 5, resume=tmp_path / "junk.npz", progress=False)


# ---------------------------------------------------------------- divergence


class Faulty(MLP):
    """An MLP whose `fault`-th call of loss_and_grads returns a NaN loss or an inf gradient."""

    def __init__(self, fault, kind):
        super().__init__([2, 4, 2])
        self.fault, self.kind = fault, kind

    def compile(self):
        compiled, calls = super().compile(), [0]
        original = compiled.loss_and_grads

        def loss_and_grads(params, X, y):
            loss, grads = original(params, X, y)
            calls[0] += compiled.training
            if compiled.training and calls[0] == self.fault:
                if self.kind == "loss":
                    loss = float("nan")
                else:
                    grads["dense_2.b"][0] = np.inf
            return loss, grads

        compiled.loss_and_grads = loss_and_grads
        return compiled


@pytest.mark.parametrize(
    "kind, message",
    [("loss", "the loss is nan"), ("grad", "the gradient of dense_2 is not finite")],
)
def test_non_finite_loss_or_gradient_stops_with_the_last_good_parameters(kind, message):
    X, y = datasets.make_moons(60, seed=6)  # 54 training rows: 3 batches of 20 per epoch
    kwargs = {"batch_size": 20, "progress": False}
    with pytest.raises(
        TrainingDiverged, match=rf"{message} at epoch 3, batch 1 \(step 7\)"
    ) as caught:
        train(Faulty(7, kind), X, y, optim.Adam(lr=0.01), 5, **kwargs)
    error = caught.value
    assert (error.epoch, error.batch, error.step) == (3, 1, 7)
    assert error.history.epochs == 2
    six_steps = train(MLP([2, 4, 2]), X, y, optim.Adam(lr=0.01), 2, **kwargs)
    for name, value in six_steps.params.items():
        assert np.array_equal(error.params[name], value)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_an_update_that_overflows_keeps_the_parameters_before_it():
    X, y = datasets.make_moons(40, seed=7)
    X = 1e3 * X  # gradients of order 10 or more: lr * gradient overflows
    model = MLP([2, 4, 2])
    start = model.init(0)
    with pytest.raises(
        TrainingDiverged, match=r"update made a parameter non-finite at epoch 1, batch 1 \(step 1\)"
    ) as caught:
        train(model, X, y, optim.SGD(lr=1e308), 2, validation=None, params=start, progress=False)
    for name, value in start.items():
        assert np.array_equal(caught.value.params[name], value)


# ---------------------------------------------------------------- progress, plots, errors


def test_progress_bar_only_when_asked_or_on_a_terminal(capsys):
    X, y = datasets.make_moons(40)
    train(MLP([2, 3, 2]), X, y, optim.SGD(), 2, progress=True)
    assert "train" in capsys.readouterr().err
    train(MLP([2, 3, 2]), X, y, optim.SGD(), 2)  # pytest's stdout is not a terminal
    train(MLP([2, 3, 2]), X, y, optim.SGD(), 2, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def _png_size(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path).shape


def test_plots_are_written_as_png(tmp_path):
    X, y = datasets.make_spirals(90, classes=3, seed=1)
    history = train(MLP([2, 12, 3]), X, y, optim.Adam(lr=0.02), 5, progress=False)
    assert _png_size(history.plot(tmp_path / "curves.png"))[0] > 100
    assert _png_size(history.plot_grad_norms(tmp_path / "norms.png"))[0] > 100
    other = train(MLP([2, 12, 3], "relu"), X, y, optim.Adam(lr=0.02), 5, progress=False)
    assert (
        _png_size(plot_grad_norms({"tanh": history, "relu": other}, tmp_path / "both.png"))[1] > 100
    )
    boundary = plot_decision_boundary(
        lambda P: history.compiled.predict(history.params, P),
        X,
        y,
        tmp_path / "boundary.png",
        resolution=50,
    )
    assert _png_size(boundary)[0] > 100
    regression = train(
        MLP([2, 3, 1], loss="mse"), X, y.astype(float), optim.SGD(), 2, progress=False
    )
    assert _png_size(regression.plot(tmp_path / "regression.png"))[0] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "both.png",
        "boundary.png",
        "curves.png",
        "norms.png",
        "regression.png",
    ]


def test_vanishing_gradients_show_in_the_norms():
    X, y = datasets.make_spirals(120, classes=2, seed=2)
    ratios = {}
    for activation in ("sigmoid", "relu"):
        model = MLP([2] + [32] * 6 + [2], activation)
        history = train(
            model, X, y, optim.SGD(lr=0.01), 1, batch_size=30, validation=None, progress=False
        )
        norms = history.grad_norms
        ratios[activation] = norms["dense_1"][0] / norms["dense_7"][0]
    assert ratios["sigmoid"] < 1e-3 < 0.1 < ratios["relu"]


def test_bad_arguments_are_named():
    X, y = datasets.make_moons(20)
    with pytest.raises(TrainingError, match=r"X has shape \(20, 2\) and y has shape \(19,\)"):
        train(MLP([2, 3, 2]), X, y[:-1], optim.SGD(), 1)
    with pytest.raises(TrainingError, match="validation=0.01 of 20 samples leaves 0"):
        train(MLP([2, 3, 2]), X, y, optim.SGD(), 1, validation=0.01)
    with pytest.raises(TrainingError, match="monitors 'val_accuracy' but there is no validation"):
        train(
            MLP([2, 3, 2]),
            X,
            y,
            optim.SGD(),
            1,
            validation=None,
            early_stopping=EarlyStopping(monitor="val_accuracy"),
        )
    with pytest.raises(TrainingError, match="unknown metric 'f1'"):
        train(MLP([2, 3, 2]), X, y, optim.SGD(), 1, metrics=["f1"])
    with pytest.raises(TrainingError, match="either params or resume"):
        train(MLP([2, 3, 2]), X, y, optim.SGD(), 1, params={}, resume="x.npz")
    with pytest.raises(KeyError, match="History has no 'accuracy'"):
        History()["accuracy"]


def test_public_api_and_a_fast_import():
    assert sd.train is train and sd.History is History and sd.optim is optim
    code = "import sys, symdl; print(sorted(m for m in ('matplotlib', 'tqdm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
