"""The file formats of the official datasets: idx (MNIST, Fashion-MNIST) and CIFAR's python pickles.

Every reader turns a broken file into one `UserError` naming the file and the fix, never a traceback.
CIFAR pickles are loaded by a restricted unpickler that only knows how to rebuild numpy arrays, so a
hostile pickle cannot run code.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError

__all__ = ["read_cifar_archive", "read_cifar_batch", "read_cifar_meta", "read_file", "read_idx", "safe_loads"]

_IDX_UBYTE = 0x08  # idx type code of unsigned bytes, the only one the datasets use


def read_file(path: Path, fix: str) -> tuple[bytes, str]:
    """The bytes of `path` (gunzipped when it ends in ".gz") and the MD5 of the file as stored."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {str(path)!r}: {err.strerror or err}; {fix}") from None
    md5 = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    if path.suffix != ".gz":
        return raw, md5
    try:
        return gzip.decompress(raw), md5
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError; a cut file is an EOFError
        raise UserError(f"{str(path)!r} is not a complete gzip file ({err}); {fix}") from None


def read_idx(data: bytes, ndim: int, where: str, fix: str) -> Tensor:
    """Parse an idx file of unsigned bytes with `ndim` dimensions into a uint8 tensor of its shape.

    Args:
        data: the uncompressed file.
        ndim: 3 for images (N, H, W), 1 for labels (N,).
        where: the file's name, for messages.
        fix: what the user should do about a broken file, for messages.
    """
    head = 4 + 4 * ndim
    if len(data) < head or data[:2] != b"\0\0" or data[2] != _IDX_UBYTE or data[3] != ndim:
        magic = data[:4].hex() if len(data) >= 4 else "missing"
        raise UserError(f"{where} is not an idx file of {ndim}-d unsigned bytes (magic number {magic}, expected "
                        f"00000{_IDX_UBYTE:x}0{ndim}); {fix}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(data) - head != int(np.prod(dims)):
        raise UserError(f"{where} holds {len(data) - head:,} bytes of data but its header announces "
                        f"{'×'.join(map(str, dims))} = {int(np.prod(dims)):,} (truncated?); {fix}")
    return torch.frombuffer(bytearray(memoryview(data)[head:]), dtype=torch.uint8).reshape(dims)


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """How Python 3 pickles bytes in protocols 0-2 (``_codecs.encode(text, "latin1")``); no other codec."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"it asks for _codecs.encode with {encoding!r}, which convzoo refuses")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR pickle needs: numpy's array and scalar reconstruction (by either module path),
    and the latin-1 encoding with which Python 3 writes bytes in protocol 2."""
    reconstruct, scalar = np.ndarray.__reduce__(np.zeros(1))[0], np.float64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): _latin1}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1 wrote the first, numpy 2 either
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except numpy's array reconstruction."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, encoding="bytes")
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR batch never does "
                                     "and convzoo refuses to load")


def safe_loads(data: bytes, where: str, fix: str) -> Any:
    """Unpickle `data` (encoding="bytes") allowing numpy arrays only; anything else is a `UserError`."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as err:  # a broken pickle fails in many ways (EOFError, KeyError, ValueError, ...)
        raise UserError(f"{where} is not a valid CIFAR pickle ({type(err).__name__}: {err}); {fix}") from None


def read_cifar_batch(data: bytes, label_key: bytes, where: str, fix: str) -> tuple[Tensor, Tensor]:
    """A CIFAR batch pickle -> uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    d = safe_loads(data, where, fix)
    images = d.get(b"data") if isinstance(d, dict) else None
    labels = d.get(label_key) if isinstance(d, dict) else None
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 \
            or images.shape[1] != 3 * 32 * 32 or labels is None:
        raise UserError(f"{where} is not a CIFAR batch (expected a dict with b'data', uint8 N×3072, and "
                        f"{label_key!r}); {fix}")
    try:
        labels_t = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    except (TypeError, ValueError):
        raise UserError(f"{where}: its {label_key!r} are not integers; {fix}") from None
    if labels_t.shape != (images.shape[0],):
        raise UserError(f"{where} holds {images.shape[0]} images but {labels_t.numel()} labels; {fix}")
    return torch.from_numpy(images.copy()).reshape(-1, 3, 32, 32), labels_t


def read_cifar_meta(data: bytes, key: bytes, where: str, fix: str) -> tuple[str, ...]:
    """The class names stored under `key` in a CIFAR meta pickle."""
    d = safe_loads(data, where, fix)
    names = d.get(key) if isinstance(d, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, bytes | str) for n in names):
        raise UserError(f"{where} is not a CIFAR meta file (no list of names under {key!r}); {fix}")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)


def read_cifar_archive(path: Path, members: tuple[str, ...], fix: str) -> dict[str, bytes]:
    """The bytes of the named batch files inside a CIFAR ``.tar.gz``, read in one pass without extracting.

    Args:
        path: the archive.
        members: base names wanted (e.g. "data_batch_1", "batches.meta").
        fix: what to do about a broken archive, for messages.
    """
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r|gz") as tar:
            for m in tar:
                base = m.name.rsplit("/", 1)[-1]
                if m.isfile() and base in members and base not in out:
                    f = tar.extractfile(m)
                    out[base] = f.read() if f else b""
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise UserError(f"{str(path)!r} is not a complete .tar.gz archive ({err}); {fix}") from None
    missing = [m for m in members if m not in out]
    if missing:
        raise UserError(f"{str(path)!r} lacks {', '.join(missing)}; {fix}")
    return out
