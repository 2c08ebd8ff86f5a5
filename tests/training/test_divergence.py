"""Divergence: a loss that grows past `divergence` (1e3 by default) times its first value stops
training as a non-finite one does, with the last good parameters kept; `symdl train` exits 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symdl import datasets, nn, optim
from symdl.training.loop import DIVERGENCE, TrainingDiverged, TrainingError, train

X, Y = datasets.make_moons(200, noise=0.2, seed=0)


def model():
    return nn.Sequential(nn.Dense(16, "relu"), nn.Dense(2), loss="cross_entropy", input_shape=2)


def test_sgd_with_a_huge_learning_rate_stops_with_the_last_good_parameters():
    with pytest.raises(TrainingDiverged, match=r"over 1000 times its first") as caught:
        train(model(), X, Y, optim.SGD(lr=1e6), 5, progress=False, validation=None)
    error = caught.value
    assert all(np.isfinite(p).all() for p in error.params.values())
    # the kept parameters give a loss within the bound: they are the ones before the bad step
    compiled = model().compile()
    first = error.history.step_loss[0]
    loss = compiled.loss_and_grads(error.params, X[:32], Y[:32])[0]
    assert np.isfinite(loss) and loss < DIVERGENCE * max(first, 1.0) * 10


def test_growth_below_the_factor_and_a_switched_off_check_train_on():
    history = train(model(), X, Y, optim.Adam(lr=0.01), 3, progress=False)
    assert history.epochs == 3
    history = train(
        model(), X, Y, optim.SGD(lr=1e6), 1, batch_size=200, progress=False, divergence=None
    )
    assert history.epochs == 1
    with pytest.raises(TrainingError, match="divergence must be a number > 1"):
        train(model(), X, Y, optim.SGD(), 1, divergence=0.5)


def test_symdl_train_exits_1_and_keeps_finite_parameters(tmp_path):
    (tmp_path / "net.py").write_text(
        "from symdl import nn\nmodel = nn.Sequential(nn.Dense(16, 'relu'), nn.Dense(2), "
        "loss='cross_entropy', input_shape=2)\n"
    )
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(
        [sys.executable, "-m", "symdl", "train", "net.py", "--data", "moons"]
        + ["--optimizer", "sgd", "--lr", "1e6", "--epochs", "5", "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "times its first" in result.stdout and "Traceback" not in result.stderr
    saved = np.load(tmp_path / "symdl-train" / "last_good_params.npz")
    assert all(np.isfinite(saved[name]).all() for name in saved.files)
