"""Writing files atomically: a reader never sees a half-written derivation, plot or checkpoint.
A file gets the permissions the umask gives any new file; a missing folder is an error unless
the caller asks for it to be created."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["MissingFolder", "write_atomic"]


class MissingFolder(FileNotFoundError):
    """The folder a file is to be written in does not exist (and was not to be created)."""


def write_atomic(path: str | os.PathLike, data: str | bytes, *, parents: bool = False) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, then rename it.

    The file's mode is 0o666 less the umask, as for `open(path, "w")` (a temporary file
    alone would be 0o600).

    Args:
        parents: create the folder (and its parents) when missing.

    Returns:
        The path written.

    Raises:
        MissingFolder: the folder of `path` does not exist and `parents` is False.
    """
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise MissingFolder(
            f"cannot write {str(path)!r}: the folder {str(path.parent)!r} does not exist; "
            "create it first"
        )
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process's umask. POSIX can only read it by setting it, so it is set straight back
    (the two calls are not atomic against another thread changing the umask in between)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
