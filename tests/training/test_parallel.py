"""Data-parallel training with JAX on 4 simulated CPU devices reaches the parameters one
device reaches (float64, 1e-12): the batch sharded, gradients averaged by the runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "jax_data_parallel.py"


def _run(devices: int, out: Path) -> str:
    env = os.environ | {
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "SYMDL_EXAMPLE_SMALL": "1",
        "JAX_ENABLE_X64": "1",
        "PYTHONPATH": str(EXAMPLE.parent.parent),
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_four_devices_reach_the_parameters_of_one(tmp_path):
    pytest.importorskip("jax", reason="jax is not installed: pip install symdl[export]")
    assert "4 device(s)" in _run(4, tmp_path / "four.npz")
    assert "1 device(s)" in _run(1, tmp_path / "one.npz")
    four, one = np.load(tmp_path / "four.npz"), np.load(tmp_path / "one.npz")
    assert sorted(four) == sorted(one)
    for name in one:
        np.testing.assert_allclose(four[name], one[name], rtol=1e-12, atol=1e-14, err_msg=name)


def test_symdl_train_backend_jax_devices(tmp_path):
    pytest.importorskip("jax", reason="jax is not installed: pip install symdl[export]")
    model = tmp_path / "model.py"
    model.write_text(
        "import symdl as sd\nmodel = sd.nn.Sequential(sd.nn.Dense(8, 'relu'), sd.nn.Dense(10))\n"
    )
    env = os.environ | {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "PYTHONPATH": str(EXAMPLE.parent.parent),
    }
    command = [sys.executable, "-m", "symdl", "train", str(model), "--data", "digits"]
    command += ["--backend", "jax", "--devices", "2", "--epochs", "1", "--optimizer", "sgd"]
    result = subprocess.run(
        [*command, "-o", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SGD steps) with JAX" in result.stdout
    assert np.load(tmp_path / "out" / "params.npz")["dense_1.W"].shape == (8, 64)
