"""Files written whole or not at all: a temporary name in the same directory, fsync, then rename.

A run killed at any moment (SIGKILL included) leaves either the old file or the new one, never half of
one. A full disk or any other write failure removes the temporary file and raises `UserError`.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import UserError

__all__ = ["atomic_path", "write_bytes", "write_json", "write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on a clean exit it replaces `path`, otherwise it is removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # a folder that cannot be made or written: nothing was created
        raise UserError(f"cannot write {str(path)!r}: {err.strerror or err}; choose another path") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the mode open() would give
        with open(tmp_path, "rb+") as f:  # the bytes reach the disk before the name does
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except OSError as err:
        tmp_path.unlink(missing_ok=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"cannot write {str(path)!r}: the disk is full; free some space and run again "
                            "(nothing was half-written)") from None
        raise UserError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write(path: str | os.PathLike[str], fill: Callable[[IO[Any]], None], mode: str) -> Path:
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        fill(f)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return _write(path, lambda f: f.write(data), "wb")


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return _write(path, lambda f: f.write(text), "w")


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=1) + "\n")
