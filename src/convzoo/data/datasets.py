"""The datasets by name: `load_dataset`, `locate`, `data_status` and `dataset_names`.

The official datasets (Fashion-MNIST, MNIST, CIFAR-10/100) load whole into memory as uint8 tensors at
their native size; the input pipeline resizes them on the training device. `image_size` applies to
imagefolder (default 224×224) and synthetic (default 32×32) only.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError, closest
from . import formats, sources, synthetic
from .folder import load_imagefolder
from .sources import Found, Spec
from .stats import channel_stats
from .types import Dataset, TensorSplit

__all__ = ["data_status", "dataset_names", "load_dataset", "locate"]

# name -> (classes, train size, test size, hflip): what `data list` shows without reading any file.
_KNOWN: dict[str, tuple[int, int, int, bool]] = {
    "cifar10": (10, 50_000, 10_000, True),
    "cifar100": (100, 50_000, 10_000, True),
    "fashion-mnist": (10, 60_000, 10_000, True),
    "mnist": (10, 60_000, 10_000, False),  # a mirrored digit is another glyph
    "synthetic": (10, synthetic.TRAIN_SIZE, synthetic.TEST_SIZE, True),
}
# CIFAR pickles: the label key of the batches and the class-name key of the meta file.
_CIFAR_KEYS = {"cifar10": (b"labels", b"label_names"), "cifar100": (b"fine_labels", b"fine_label_names")}


def dataset_names() -> list[str]:
    """Every dataset name `load_dataset` accepts, sorted."""
    return sorted([*_KNOWN, "imagefolder"])


def _check_name(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    if key not in dataset_names():
        near = closest(key, dataset_names())
        did = f"did you mean {' or '.join(near)}? " if near else ""
        raise UserError(f"unknown dataset {name!r}; {did}known: {', '.join(dataset_names())}")
    return key


def _check_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:
        return None
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise UserError(f"image size {image_size!r} is not a pair (H, W) of integers; use e.g. (224, 224)") from None
    if h < 1 or w < 1:
        raise UserError(f"image size {image_size!r} must be positive; use e.g. (224, 224)")
    return h, w


def _fix(s: Spec, file: str) -> str:
    """The advice for a broken or unofficial file."""
    return f"delete it and fetch it again from {sources.source_url(s, file + '.gz' if s.kind == 'idx' else '')}"


def _mismatch(s: Spec, path: Path, got: str, want: str) -> UserError:
    return UserError(f"{str(path)!r} is not the official {s.name} file (MD5 {got}, expected {want}); "
                     f"{_fix(s, path.name.removesuffix('.gz'))}, or pass --no-verify (verify=False) to use "
                     "your own files in the same format")


def _idx_split(s: Spec, found: Found, files: tuple[str, ...], verify: bool) -> TensorSplit:
    arrays = []
    for f, ndim in zip(files, (3, 1)):
        path = found.files[f]
        data, file_md5 = formats.read_file(path, f"{_fix(s, f)}")
        if verify and file_md5 != s.md5[f]:  # the .gz as torchvision lists it, else its content
            content = file_md5 if path.suffix != ".gz" else hashlib.md5(data, usedforsecurity=False).hexdigest()
            if content != s.content_md5[f]:
                raise _mismatch(s, path, file_md5, s.md5[f] if path.suffix == ".gz" else s.content_md5[f])
        arrays.append(formats.read_idx(data, ndim, repr(str(path)), _fix(s, f)))
    images, labels = arrays
    if len(images) != len(labels):
        raise UserError(f"{str(found.files[files[0]])!r} holds {len(images):,} images but "
                        f"{str(found.files[files[1]])!r} {len(labels):,} labels; {_fix(s, files[0])}")
    return TensorSplit(images.unsqueeze(1).contiguous(), labels.to(torch.int64))


def _load_idx(s: Spec, found: Found, verify: bool) -> Dataset:
    from torchvision.datasets import FashionMNIST

    train, test = _idx_split(s, found, s.train, verify), _idx_split(s, found, s.test, verify)
    classes = tuple(FashionMNIST.classes) if s.name == "fashion-mnist" else tuple(str(d) for d in range(10))
    return _dataset(s.name, classes, train, test, found)


def _cifar_blobs(s: Spec, found: Found, verify: bool) -> dict[str, bytes]:
    fix = f"delete it and fetch it again from {sources.source_url(s)}"
    if found.archive is not None:
        if verify:
            from torchvision.datasets.utils import calculate_md5

            if (got := calculate_md5(found.archive)) != s.archive_md5:
                raise _mismatch(s, found.archive, got, s.archive_md5)
        return formats.read_cifar_archive(found.archive, s.files, fix)
    blobs = {}
    for f, path in found.files.items():
        blobs[f], md5 = formats.read_file(path, fix)
        if verify and md5 != s.md5[f]:
            raise _mismatch(s, path, md5, s.md5[f])
    return blobs


def _load_cifar(s: Spec, found: Found, verify: bool) -> Dataset:
    blobs = _cifar_blobs(s, found, verify)
    label_key, names_key = _CIFAR_KEYS[s.name]
    where = found.archive or found.where
    fix = f"delete it and fetch it again from {sources.source_url(s)}"

    def read(files: tuple[str, ...]) -> TensorSplit:
        parts = [formats.read_cifar_batch(blobs[f], label_key, f"{f} in {str(where)!r}", fix) for f in files]
        return TensorSplit(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))

    classes = formats.read_cifar_meta(blobs[s.meta], names_key, f"{s.meta} in {str(where)!r}", fix)
    return _dataset(s.name, classes, read(s.train), read(s.test), found)


def _dataset(name: str, classes: tuple[str, ...], train: TensorSplit, test: TensorSplit, found: Found) -> Dataset:
    for split, which in ((train, "training"), (test, "test")):
        if len(split) and not 0 <= int(split.labels.min()) <= int(split.labels.max()) < len(classes):
            raise UserError(f"the {which} labels of {name} in {str(found.where)!r} fall outside 0..{len(classes) - 1}"
                            f"; these are not {name} files (delete them and fetch the official ones)")
    mean, std = channel_stats(train.images)
    size = (int(train.images.shape[-2]), int(train.images.shape[-1]))
    return Dataset(name, classes, train, test, int(train.images.shape[1]), size, mean, std, _KNOWN[name][3],
                   str(found.where))


def _not_found(name: str, data_dir: str | os.PathLike[str] | None, roots: list[Path], download: bool | None) -> str:
    s = sources.spec(name)
    if data_dir is not None:
        subs = ", ".join(f"{sub}/" for sub in s.layouts)
        return (f"no {name} files in --data-dir {str(data_dir)!r} (looked in it and in {subs}); "
                f"{sources.hint(name)}")
    why = "CONVZOO_OFFLINE=1" if download is None else "download=False"
    return (f"{name} not found in {', '.join(repr(str(r)) for r in roots)} and downloads are off ({why}); "
            f"{sources.hint(name)}")


def _load_official(name: str, data_dir: str | os.PathLike[str] | None, verify: bool,
                   download: bool | None) -> Dataset:
    found, roots = sources.find(name, data_dir)
    if found is None:
        if data_dir is not None or not sources.downloads_allowed(download):
            raise UserError(_not_found(name, data_dir, roots, download))
        found = sources.download(name)
    s = sources.spec(name)
    return _load_idx(s, found, verify) if s.kind == "idx" else _load_cifar(s, found, verify)


def load_dataset(name: str, *, data_dir: str | os.PathLike[str] | None = None, verify: bool = True,
                 download: bool | None = None, image_size: tuple[int, int] | None = None,
                 test_fraction: float = 0.2, seed: int = 0, in_memory: bool | None = None) -> Dataset:
    """Load a dataset by name (see `dataset_names`).

    Args:
        name: "fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder" or "synthetic".
        data_dir: look for the files there and only there (required for imagefolder).
        verify: check the official MD5s; False accepts your own files in the same format.
        download: fetch missing official files into the cache; None: yes unless CONVZOO_OFFLINE=1.
        image_size: (H, W) for imagefolder (default 224×224) and synthetic (default 32×32); the official
            datasets keep their native size.
        test_fraction: imagefolder with one tree: the share of each class held out as the test split.
        seed: imagefolder's split and synthetic's noise.
        in_memory: imagefolder: decode into memory (True), stream (False), or by size (None: up to 1 GiB).
            The other datasets are always in memory.

    Raises:
        UserError: unknown name, missing, corrupt or unofficial files, bad ImageFolder tree.
    """
    key, size = _check_name(name), _check_size(image_size)
    if key == "synthetic":
        return synthetic.synthetic(size, seed)
    if key == "imagefolder":
        return load_imagefolder(data_dir, size or (224, 224), test_fraction=test_fraction, seed=seed,
                                in_memory=in_memory)
    return _load_official(key, data_dir, verify, download)


def locate(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The directory holding the files of `name` (only `data_dir` is searched when given), or None."""
    key = _check_name(name)
    if key == "synthetic":
        return None
    if key == "imagefolder":
        return Path(data_dir).expanduser() if data_dir is not None and Path(data_dir).expanduser().is_dir() else None
    found, _ = sources.find(key, data_dir)
    return found.where if found else None


def data_status(data_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """One record per dataset for `convzoo data list`: name, classes, train, test, found, where, hint.

    Only looks for the files (no reading or checksums), so it is fast.
    """
    rows = []
    for name in dataset_names():
        classes, train, test, _ = _KNOWN.get(name, (None, None, None, True))
        row: dict[str, Any] = {"name": name, "classes": classes, "train": train, "test": test}
        if name == "synthetic":
            row |= {"found": True, "where": "built in", "hint": ""}
        elif name == "imagefolder":
            where = locate(name, data_dir)
            row |= {"found": where is not None, "where": str(where) if where else "give --data-dir",
                    "hint": "" if where else "--data-dir DIR holding <class>/<image> folders"}
        else:
            where = locate(name, data_dir)
            row |= {"found": where is not None, "where": str(where) if where else "not found",
                    "hint": "" if where else sources.hint(name)}
        rows.append(row)
    return rows
