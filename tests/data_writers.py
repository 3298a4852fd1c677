"""Small dataset files in the real formats, for the data tests (imported as `data_writers`).

idx files with the proper header (gzipped or not), CIFAR-10/100 pickle batches written the way the
official Python 2 files are (protocol 2, numpy.core globals) and packed into the official .tar.gz, and
ImageFolder trees of PNG/JPEG images in several modes.
"""
from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from convzoo.data import sources

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network, an empty cache under tmp_path, and no system copy: returns the cache directory."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CONVZOO_OFFLINE", "1")
    monkeypatch.setenv("CONVZOO_CACHE", str(cache))
    monkeypatch.setitem(sources.SYSTEM_DIRS, "fashion-mnist", tmp_path / "no-system-copy")
    return cache


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file of unsigned bytes: magic 0x0000080N, N big-endian dimensions, then the data."""
    head = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return head + array.astype(np.uint8).tobytes()


def write_idx(d: Path, *, gz: bool = True, n_train: int = 6, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """The four idx files of a tiny MNIST-like set in `d`; returns the arrays by file name."""
    rng = np.random.default_rng(seed)
    arrays = {
        IDX_FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        IDX_FILES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        IDX_FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        IDX_FILES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    d.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        data = idx_bytes(a)
        if gz:
            (d / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (d / name).write_bytes(data)
    return arrays


def official_pickle(obj: object) -> bytes:
    """Pickle like the official CIFAR files: protocol 2, numpy arrays rebuilt by numpy.core.multiarray."""
    return pickle.dumps(obj, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _batch(rng: np.random.Generator, n: int, label_key: bytes, classes: int) -> tuple[dict, np.ndarray, np.ndarray]:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, classes, n)
    batch = {b"batch_label": b"a test batch", label_key: [int(v) for v in labels], b"data": data,
             b"filenames": [f"img{i}.png".encode() for i in range(n)]}
    return batch, data.reshape(n, 3, 32, 32), labels


def _write(files: dict[str, bytes], d: Path, folder: str, archive: str | None) -> None:
    if archive is None:
        (d / folder).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (d / folder / name).write_bytes(data)
        return
    d.mkdir(parents=True, exist_ok=True)
    with tarfile.open(d / archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_cifar10(d: Path, *, tar: bool = False, n: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """data_batch_1..5, test_batch and batches.meta (in d/cifar-10-batches-py/, or d/cifar-10-python.tar.gz)."""
    rng = np.random.default_rng(seed)
    files, train, test = {}, [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch, images, labels = _batch(rng, n, b"labels", 10)
        files[name] = official_pickle(batch)
        (test if name == "test_batch" else train).append((images, labels))
    files["batches.meta"] = official_pickle({b"label_names": [c.encode() for c in CIFAR10_NAMES],
                                             b"num_cases_per_batch": n, b"num_vis": 3072})
    _write(files, d, "cifar-10-batches-py", "cifar-10-python.tar.gz" if tar else None)
    out = {}
    for split, parts in (("train", train), ("test", test)):
        out[f"{split}_images"] = np.concatenate([images for images, _ in parts])
        out[f"{split}_labels"] = np.concatenate([labels for _, labels in parts])
    return out


def write_cifar100(d: Path, *, tar: bool = False, n: int = 5, seed: int = 0, protocol: int = 2,
                   ) -> dict[str, np.ndarray]:
    """train, test and meta (fine and coarse names) in d/cifar-100-python/ or d/cifar-100-python.tar.gz."""
    rng = np.random.default_rng(seed)
    dump = official_pickle if protocol == 2 else (lambda o: pickle.dumps(o, protocol=protocol))
    out, files = {}, {}
    for name in ("train", "test"):
        batch, images, labels = _batch(rng, n, b"fine_labels", 100)
        batch[b"coarse_labels"] = [int(v) // 5 for v in labels]
        files[name] = dump(batch)
        out[f"{name}_images"], out[f"{name}_labels"] = images, labels
    files["meta"] = dump({b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                          b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    _write(files, d, "cifar-100-python", "cifar-100-python.tar.gz" if tar else None)
    return out


def write_image(path: Path, mode: str = "RGB", size: tuple[int, int] = (8, 8), colour: object = (200, 30, 60),
                ) -> Path:
    """A uniform image of `size` (W, H) and `mode`; the format follows the suffix."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, colour).convert("P") if mode == "P" else Image.new(mode, size, colour)
    img.save(path)
    return path


def write_tree(root: Path, counts: dict[str, int], size: tuple[int, int] = (8, 8)) -> dict[str, tuple[int, ...]]:
    """`counts[c]` PNG images in root/c/, class c's colour distinct; returns the RGB colour of each class."""
    colours = {}
    for k, (c, n) in enumerate(sorted(counts.items())):
        colours[c] = (20 * k + 10, 255 - 20 * k, 7 * k)
        for i in range(n):
            write_image(root / c / f"{i:03d}.png", "RGB", size, colours[c])
    return colours
