"""Checkpoints: groups of named NumPy arrays plus JSON metadata in one .npz file, written
atomically (a temporary file renamed into place), read back without unpickling anything."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from symdl.render.files import write_atomic

__all__ = ["FORMAT", "CheckpointError", "load_checkpoint", "save_arrays", "save_checkpoint"]

FORMAT = "symdl-checkpoint-1"


class CheckpointError(ValueError):
    """A file that is not a readable symdl checkpoint, or a group name that cannot be stored."""


def save_checkpoint(
    path: str | os.PathLike, groups: Mapping[str, Mapping[str, np.ndarray]], meta: Mapping
) -> Path:
    """Write `groups` ({group: {name: array}}) and JSON-able `meta` to the .npz at `path`.

    An array is stored as "group/name"; `meta` (with the format tag added) as the key "meta".

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
    return save_arrays(path, arrays)


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Named arrays as an .npz at `path` (`np.load` reads them back), written atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Read what `save_checkpoint` wrote: ({group: {name: array}}, meta).

    Raises:
        CheckpointError: a missing or unreadable file, or an .npz that is not a symdl
            checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {error}") from error
    meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a symdl checkpoint ({FORMAT})")
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, array in arrays.items():
        group, _, name = key.partition("/")
        groups.setdefault(group, {})[name] = array
    return groups, meta
