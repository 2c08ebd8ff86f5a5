"""Checkpoints: groups of named NumPy arrays plus JSON metadata in one .npz file, written
atomically (a temporary file renamed into place) with the one it replaces kept as
NAME.prev.npz, read back without unpickling anything; a damaged file is a CheckpointError."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from symdl.render.files import write_atomic

__all__ = [
    "FORMAT",
    "CheckpointError",
    "load_checkpoint",
    "previous_path",
    "save_arrays",
    "save_checkpoint",
]

FORMAT = "symdl-checkpoint-1"


class CheckpointError(ValueError):
    """A file that is not a readable symdl checkpoint, or a group name that cannot be stored."""


def save_checkpoint(
    path: str | os.PathLike,
    groups: Mapping[str, Mapping[str, np.ndarray]],
    meta: Mapping,
    *,
    parents: bool = False,
) -> Path:
    """Write `groups` ({group: {name: array}}) and JSON-able `meta` to the .npz at `path`.

    An array is stored as "group/name"; `meta` (with the format tag added) as the key "meta".
    A checkpoint already at `path` is kept as NAME.prev.npz (`previous_path`). `parents`
    creates a missing folder (else it is an error, `MissingFolder`).

    Returns:
        The path written.

    Raises:
        CheckpointError: a group name containing "/" or named "meta".

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "ck.npz"
    >>> _ = save_checkpoint(path, {"param": {"dense_1.W": np.ones(2)}}, {"epoch": 3})
    >>> groups, meta = load_checkpoint(path)
    >>> groups["param"]["dense_1.W"], meta["epoch"]
    (array([1., 1.]), 3)
    """
    arrays = {}
    for group, members in groups.items():
        if "/" in group or group == "meta":
            raise CheckpointError(f"save_checkpoint: group name {group!r} cannot be stored")
        arrays |= {f"{group}/{name}": np.asarray(a) for name, a in members.items()}
    arrays["meta"] = np.array(json.dumps({"format": FORMAT, **meta}))
    if parents:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    _keep_previous(Path(path))
    return save_arrays(path, arrays)


def _keep_previous(path: Path) -> None:
    """Keep the checkpoint about to be replaced as NAME.prev.npz, so that a crash while the
    new one is written, or a new one found damaged later, still leaves one to resume from.

    A hard link keeps `path` in place throughout (copied where links are not possible)."""
    if not path.is_file():
        return
    previous = previous_path(path)
    tmp = previous.with_name(f".{previous.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, previous)


def save_arrays(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], *, parents: bool = False
) -> Path:
    """Named arrays as an .npz at `path` (`np.load` reads them back), written atomically;
    `parents` creates a missing folder."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_atomic(path, buffer.getvalue(), parents=parents)


def previous_path(path: str | os.PathLike) -> Path:
    """Where `save_checkpoint` keeps the checkpoint it replaced: NAME.prev.npz beside NAME.npz."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix or '.npz'}")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Read what `save_checkpoint` wrote: ({group: {name: array}}, meta).

    Raises:
        CheckpointError: a missing, truncated or damaged file, or one that is not a symdl
            checkpoint; the message names the file and what to do (start afresh, or resume
            from the previous checkpoint NAME.prev.npz when one is kept).
    """
    try:
        saved = np.load(path, allow_pickle=False)
        if not isinstance(saved, np.lib.npyio.NpzFile):
            raise damaged(path, "it holds one array (.npy), not an .npz checkpoint")
        with saved:
            arrays = {key: saved[key] for key in saved.files}
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: no such file") from None
    except Exception as error:  # zipfile, zlib, EOF, CRC, pickle refusals: all mean damaged
        raise damaged(path, _reason(error)) from None
    try:
        meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
    except ValueError:
        raise damaged(path, "its metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise damaged(path, f"it is not a symdl checkpoint ({FORMAT})")
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, array in arrays.items():
        group, _, name = key.partition("/")
        groups.setdefault(group, {})[name] = array
    return groups, meta


def damaged(path: str | os.PathLike, reason: str) -> CheckpointError:
    """The error for checkpoint `path` that cannot be used, saying what to do instead."""
    previous = previous_path(path)
    way_out = (
        f"resume from the previous checkpoint {str(previous)!r}, or start afresh without resume"
        if previous.exists() and previous != Path(path)
        else "start afresh without resume (or delete the file)"
    )
    return CheckpointError(f"cannot read checkpoint {str(path)!r}: {reason}; {way_out}")


def _reason(error: Exception) -> str:
    text = str(error)
    if "pickle" in text:  # numpy's message suggests allow_pickle, which would run code
        return "it is not an .npz file of arrays"
    if isinstance(error, EOFError) or "truncated" in text.lower() or "EOF" in text:
        return "the file is truncated"
    if "CRC" in text or "zlib" in type(error).__module__ or "decompress" in text.lower():
        return f"its contents are damaged ({text})"
    if isinstance(error, zipfile.BadZipFile) or "zip" in text.lower():
        return f"it is not a complete .npz archive ({text})"
    return f"the file is damaged ({type(error).__name__}: {text})"
