"""Damaged checkpoints: each of some thirty corruptions of a real checkpoint (a model with
BatchNorm statistics, dropout's RNG and Adam's buffers) is one clear CheckpointError naming the
file and the way out, never a traceback, never accepted; the previous checkpoint is kept."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from symdl import datasets, nn, optim
from symdl.training.checkpoint import CheckpointError, load_checkpoint, previous_path
from symdl.training.loop import TrainingDiverged, train

X, Y = datasets.make_moons(60, seed=1)
ENV = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # this symdl


def model():
    return nn.Sequential(
        nn.Dense(4, "relu"),
        nn.BatchNorm(),
        nn.Dropout(0.2),
        nn.Dense(2),
        loss="cross_entropy",
        input_shape=2,
    )


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The bytes of a checkpoint after two epochs, and of the one after one epoch."""
    folder = tmp_path_factory.mktemp("good")
    path = folder / "ck.npz"
    train(model(), X, Y, optim.Adam(), 2, checkpoint=path, progress=False)
    return path.read_bytes(), previous_path(path).read_bytes()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _npy(value) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=True)
    return buffer.getvalue()


def _without(*names):
    return lambda m: _zip({k: v for k, v in m.items() if k.removesuffix(".npy") not in names})


def _meta(change):
    def damage(members):
        meta = json.loads(str(np.load(io.BytesIO(members["meta.npy"]))))
        change(meta)
        return _zip(members | {"meta.npy": _npy(np.array(json.dumps(meta)))})

    return damage


def _replace(name, value):
    return lambda m: _zip(m | {name + ".npy": _npy(value)})


def _flip(fraction):
    def damage(data):
        data = bytearray(data)
        data[int(len(data) * fraction)] ^= 0xFF
        return bytes(data)

    return damage


RAW = {  # damage to the bytes of the file
    "empty": lambda d: b"",
    "garbage": lambda d: bytes(range(256)) * 10,
    "text": lambda d: b"epoch = 3\n",
    "truncated-1": lambda d: d[:1],
    "truncated-10%": lambda d: d[: len(d) // 10],
    "truncated-50%": lambda d: d[: len(d) // 2],
    "truncated-90%": lambda d: d[: len(d) * 9 // 10],
    "truncated-last-byte": lambda d: d[:-1],
    "truncated-end-record": lambda d: d[:-22],
    "flipped-byte-20%": _flip(0.2),
    "flipped-byte-45%": _flip(0.45),
    "zeroed-middle": lambda d: d[: len(d) // 3] + bytes(200) + d[len(d) // 3 + 200 :],
    "a-pickle": lambda d: _npy(np.array([{"a": 1}], dtype=object)),
    "an-npy-array": lambda d: _npy(np.ones(3)),
}
MEMBERS = {  # damage to the arrays and metadata inside a well-formed archive
    "no-meta": _without("meta"),
    "pickled-member": _replace("param/dense_1.b", np.array([object()], dtype=object)),
    "meta-not-json": _replace("meta", np.array("{epoch: 2")),
    "meta-a-list": _replace("meta", np.array("[1, 2]")),
    "wrong-format": _meta(lambda m: m.update(format="other-1")),
    "no-batchnorm-statistics": _without(
        "state/batchnorm_1.running_mean", "state/batchnorm_1.running_var"
    ),
    "wrong-batchnorm-shape": _replace("state/batchnorm_1.running_var", np.ones(7)),
    "no-adam-buffers": _without(*(f"optim/v/{p}" for p in ("dense_1.W", "dense_1.b"))),
    "no-optimizer-step": _without("optim/step"),
    "nan-parameter": _replace("param/dense_2.b", np.array([np.nan, 0.0])),
    "inf-parameter": _replace("param/dense_1.W", np.full((4, 2), np.inf)),
    "bad-rng-state": _meta(lambda m: m["rng"]["state"].update(state=-(2**200))),
    "rng-of-another-kind": _meta(lambda m: m["rng"].update(bit_generator="MT19937")),
    "bad-model-rng": _meta(lambda m: m.update(model_rng={"bit_generator": "PCG64"})),
    "history-unknown-record": _meta(lambda m: m["history"].update(speed=[1])),
    "history-short": _meta(lambda m: m["history"].update(loss=[0.5])),
}
for key in ("seed", "rng", "history", "n_train", "epoch", "wait", "model_rng", "best_value"):
    MEMBERS[f"no-{key}"] = _meta(lambda m, key=key: m.pop(key))
MEMBERS["seed-a-string"] = _meta(lambda m: m.update(seed="0"))


def _damaged(good_bytes, name) -> bytes:
    if name in RAW:
        return RAW[name](good_bytes)
    return MEMBERS[name](_members(good_bytes))


@pytest.mark.parametrize("name", [*RAW, *MEMBERS])
def test_a_damaged_checkpoint_is_one_clear_error(good, tmp_path, name):
    path = tmp_path / "ck.npz"
    path.write_bytes(_damaged(good[0], name))
    with pytest.raises(CheckpointError) as caught:
        train(model(), X, Y, optim.Adam(), 3, resume=path, progress=False)
    message = str(caught.value)
    assert str(path) in message and "start afresh" in message, message
    assert "pickle" not in message and "\n" not in message, message
    assert caught.value.__cause__ is None  # no chained traceback


def test_the_way_out_names_the_previous_checkpoint_and_it_resumes(good, tmp_path):
    path = tmp_path / "ck.npz"
    path.write_bytes(good[0][: len(good[0]) // 2])
    previous_path(path).write_bytes(good[1])
    with pytest.raises(CheckpointError, match=r"resume from the previous checkpoint .*ck\.prev"):
        load_checkpoint(path)
    history = train(model(), X, Y, optim.Adam(), 2, resume=previous_path(path), progress=False)
    assert history.epochs == 2


def test_a_crash_during_a_save_leaves_the_checkpoint_and_its_predecessor(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    train(model(), X, Y, optim.Adam(), 2, checkpoint=path, progress=False)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        train(model(), X, Y, optim.Adam(), 3, resume=path, checkpoint=path, progress=False)
    assert path.read_bytes() == before
    assert load_checkpoint(previous_path(path))[1]["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz", "ck.prev.npz"]


def test_nan_parameters_never_become_last_good_parameters(good, tmp_path):
    path = tmp_path / "ck.npz"
    path.write_bytes(_damaged(good[0], "nan-parameter"))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        train(model(), X, Y, optim.Adam(), 3, resume=path, progress=False)
    assert TrainingDiverged  # the divergence path is tested in test_train


NET = """import symdl as sd
from symdl import nn
model = nn.Sequential(nn.Dense(4, "relu"), nn.BatchNorm(), nn.Dense(2), loss="cross_entropy",
                      input_shape=2)
"""


@pytest.mark.parametrize("name", ["truncated-50%", "garbage", "no-rng", "bad-rng-state"])
def test_symdl_train_resume_prints_one_line_and_exits_2(tmp_path, name):
    (tmp_path / "net.py").write_text(NET)
    command = [sys.executable, "-m", "symdl", "train", "net.py", "--data", "moons"]
    first = subprocess.run(
        [*command, "--epochs", "1", "--checkpoint", "ck.npz", "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert first.returncode == 0, first.stderr
    path = tmp_path / "ck.npz"
    path.write_bytes(_damaged(path.read_bytes(), name))
    result = subprocess.run(
        [*command, "--epochs", "2", "--resume", "ck.npz", "--no-progress", "-o", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "ck.npz" in result.stderr and "start afresh" in result.stderr
    assert not (tmp_path / "out" / "last_good_params.npz").exists()
