"""ImageFolder data: ``<dir>/<class>/<image>`` trees, decoded to uint8 tensors of one size and mode.

Layouts: ``<dir>/train/<class>/*`` with ``<dir>/val/<class>/*`` (or ``test/`` when there is no ``val/``),
or one tree ``<dir>/<class>/*`` split per class into train and test by `test_fraction`, seeded. Images
of any mode and size become `channels` channels (1: L, 3: RGB; transparent pixels — RGBA, LA, P with
transparency — are composited on white; 16-bit grey is scaled to 8 bits; EXIF rotation is applied),
then resized on the shorter side and centre-cropped to `size` (the standard evaluation transform).

A dataset whose splits fit in 1 GiB at that size is decoded once into memory (through a DataLoader with
workers); a larger one stays a `FolderSplit` for `stream_batches`. A file that cannot be decoded is a
`UserError` naming it, raised in the calling process even when a worker hit it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from .stats import channel_stats
from .types import Dataset, FolderSplit, TensorSplit

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["decode_image", "image_extensions", "load_imagefolder", "split_stratified", "stream_batches",
           "to_memory"]

MEMORY_LIMIT = 1 << 30  # bytes of uint8 images kept in memory by in_memory=None
STATS_SAMPLE = 512  # training images decoded to estimate mean/std of a streamed dataset
_FEW = 256  # fewer images than this decode in the calling process (starting workers costs more)
_WHITE = (255, 255, 255, 255)


def image_extensions() -> tuple[str, ...]:
    """torchvision's IMG_EXTENSIONS (".jpg", ".png", ...), matched case-insensitively."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return tuple(IMG_EXTENSIONS)


def _to_mode(im: PILImage, channels: int) -> PILImage:
    """A PIL image of any mode as "L" (channels=1) or "RGB" (channels=3)."""
    from PIL import Image

    if im.mode.startswith("I"):  # 16- or 32-bit grey: scale 0..65535 to 0..255 (PIL would clip instead)
        a = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(a / 257 + 0.5, 0, 255).astype(np.uint8), "L")
    if "A" in im.mode or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba)
    return im.convert("L" if channels == 1 else "RGB")


def _fit(img: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize uint8 (C, h, w) so that it covers `size`, then centre-crop to exactly `size`."""
    from torchvision.transforms.v2 import functional as tf

    (h, w), (out_h, out_w) = img.shape[-2:], size
    scale = max(out_h / h, out_w / w)
    new = [max(out_h, round(h * scale)), max(out_w, round(w * scale))]
    if new != [h, w]:
        img = tf.resize(img, new, antialias=True)
    return tf.center_crop(img, [out_h, out_w]).contiguous()


def decode_image(path: str, size: tuple[int, int], channels: int) -> Tensor:
    """One image file -> uint8 (channels, H, W); a file that cannot be decoded raises `UserError`."""
    import struct

    from PIL import Image, ImageOps
    from torchvision.transforms.v2 import functional as tf

    try:
        with Image.open(path) as im:
            im.load()
            pil = _to_mode(ImageOps.exif_transpose(im), channels)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise UserError(f"cannot decode image {path!r} ({reason}); delete or replace the file") from None
    return _fit(tf.pil_to_tensor(pil), size)


class _Images(torch.utils.data.Dataset):
    """Decoded samples; a decoding failure comes back as its message (str) so the caller can raise it."""

    def __init__(self, samples: tuple[tuple[str, int], ...], size: tuple[int, int], channels: int) -> None:
        self.samples, self.size, self.channels = samples, size, channels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor | str, int]:
        path, label = self.samples[i]
        try:
            return decode_image(path, self.size, self.channels), label
        except UserError as err:
            return str(err), label


def _collate(items: list[tuple[Tensor | str, int]]) -> tuple[Tensor, Tensor] | str:
    for img, _ in items:
        if isinstance(img, str):
            return img
    return torch.stack([img for img, _ in items]), torch.tensor([label for _, label in items], dtype=torch.int64)


def default_workers() -> int:
    """min(4, the CPUs this process may use)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(4, cpus)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A permutation of range(n) that depends only on (seed, epoch): a resumed epoch repeats its order."""
    state = np.random.SeedSequence([seed % 2**64, epoch % 2**64]).generate_state(1, np.uint64)[0]
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(state))).tolist()


def stream_batches(split: FolderSplit, *, size: tuple[int, int], channels: int, batch_size: int = 64,
                   shuffle: bool = False, seed: int = 0, epoch: int = 0, workers: int | None = None,
                   pin_memory: bool = False, drop_last: bool = False,
                   batch_index: list[list[int]] | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Decode a folder split in batches: uint8 (B, channels, H, W) images and int64 (B,) labels.

    Args:
        split: the (path, label) samples.
        size: (H, W) of every image (shorter-side resize, centre crop).
        channels: 1 (grey) or 3 (RGB).
        batch_size: images per batch.
        shuffle: a seeded order that depends on (seed, epoch) only; else the split's order.
        seed, epoch: the shuffle's seed.
        workers: DataLoader worker processes (default min(4, CPUs); 0 decodes in this process).
        pin_memory: pin the batches (for fast copies to a GPU).
        drop_last: drop a last, smaller batch.
        batch_index: the sample indices of every batch, in order, instead of `batch_size`, `shuffle` and
            `drop_last` (a process's shares of the global batches; see `pipeline.batches`).

    Raises:
        UserError: a file cannot be decoded (its name in the message), from whichever process read it.
    """
    workers = default_workers() if workers is None else workers
    images = _Images(split.samples, (int(size[0]), int(size[1])), channels)
    if batch_index is not None:
        loader = torch.utils.data.DataLoader(images, batch_sampler=batch_index, num_workers=workers,
                                             collate_fn=_collate, pin_memory=pin_memory, persistent_workers=False)
    else:
        order = epoch_order(len(split), seed, epoch) if shuffle else list(range(len(split)))
        loader = torch.utils.data.DataLoader(images, batch_size=batch_size, sampler=order, num_workers=workers,
                                             collate_fn=_collate, pin_memory=pin_memory, drop_last=drop_last,
                                             persistent_workers=False)
    for batch in loader:
        if isinstance(batch, str):
            raise UserError(batch)
        yield batch


def to_memory(split: FolderSplit, size: tuple[int, int], channels: int, workers: int | None = None) -> TensorSplit:
    """Decode a whole folder split into one uint8 (N, channels, H, W) tensor."""
    images = torch.empty((len(split), channels, *size), dtype=torch.uint8)
    if workers is None:
        workers = 0 if len(split) < _FEW else default_workers()
    i = 0
    for batch, _ in stream_batches(split, size=size, channels=channels, batch_size=64, shuffle=False, seed=0,
                                   workers=workers):
        images[i:i + len(batch)] = batch
        i += len(batch)
    return TensorSplit(images, split.labels)


def _walk(folder: Path, exts: tuple[str, ...]) -> list[str]:
    found = []
    for top, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(top, f) for f in files if f.lower().endswith(exts) and not f.startswith(".")]
    return sorted(found)


def _scan(root: Path) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
    """The class folders of `root` (sorted) and every image under them as (path, class index)."""
    exts = image_extensions()
    classes = tuple(sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")))
    per_class = [_walk(root / c, exts) for c in classes]
    if not any(per_class):
        raise UserError(f"no images found in {str(root)!r}: ImageFolder expects {root}/<class>/<image> files "
                        f"with extensions {' '.join(exts)} (or train/<class>/ beside val/<class>/)")
    empty = [c for c, files in zip(classes, per_class) if not files]
    if empty:
        raise UserError(f"class folder(s) {', '.join(empty)} in {str(root)!r} hold no images "
                        f"({' '.join(exts)}); add images or remove the folder(s)")
    if len(classes) < 2:
        raise UserError(f"{str(root)!r} has one class folder ({classes[0]!r}); a classifier needs two or more")
    return classes, tuple((p, i) for i, files in enumerate(per_class) for p in files)


def _layout(root: Path) -> tuple[Path, Path | None]:
    """(train tree, test tree), or (the one tree, None) when it is to be split."""
    if not root.is_dir():
        raise UserError(f"--data-dir {str(root)!r} is not a directory; give the root of an ImageFolder tree")
    train = root / "train"
    test = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if train.is_dir() and test is not None:
        return train, test
    if train.is_dir() or test is not None:
        have, lack = ("train/", "val/ or test/") if test is None else (f"{test.name}/", "train/")
        raise UserError(f"{str(root)!r} has {have} but no {lack}; add it, or point --data-dir at one tree of "
                        "class folders to split it by the test fraction")
    return root, None


def split_stratified(samples: tuple[tuple[str, int], ...], test_fraction: float, seed: int,
                     ) -> tuple[FolderSplit, FolderSplit]:
    """Per class, round(n·test_fraction) samples to test (at least one when n >= 2, never all), seeded."""
    if not 0 < test_fraction < 1:
        raise UserError(f"test fraction {test_fraction} is not between 0 and 1; use e.g. 0.2")
    g = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for i, (_, c) in enumerate(samples):
        by_class.setdefault(c, []).append(i)
    test: list[int] = []
    for c in sorted(by_class):
        idx = by_class[c]
        k = min(len(idx) - 1, max(1 if len(idx) >= 2 else 0, round(len(idx) * test_fraction)))
        test += [idx[j] for j in torch.randperm(len(idx), generator=g)[:k].tolist()]
    chosen = set(test)
    return (FolderSplit(tuple(s for i, s in enumerate(samples) if i not in chosen)),
            FolderSplit(tuple(samples[i] for i in sorted(chosen))))


def _splits(root: Path, test_fraction: float, seed: int) -> tuple[tuple[str, ...], FolderSplit, FolderSplit]:
    train_root, test_root = _layout(root)
    classes, samples = _scan(train_root)
    if test_root is None:
        return (classes, *split_stratified(samples, test_fraction, seed))
    test_classes, test_samples = _scan(test_root)
    if test_classes != classes:
        only_train, only_test = sorted(set(classes) - set(test_classes)), sorted(set(test_classes) - set(classes))
        raise UserError(f"the class folders of {str(train_root)!r} and {str(test_root)!r} differ (only in train: "
                        f"{', '.join(only_train) or 'none'}; only in {test_root.name}: {', '.join(only_test) or 'none'}"
                        "); give both the same class folders")
    return classes, FolderSplit(samples), FolderSplit(test_samples)


def load_imagefolder(data_dir: str | os.PathLike[str] | None, image_size: tuple[int, int], *,
                     test_fraction: float = 0.2, seed: int = 0, in_memory: bool | None = None) -> Dataset:
    """An ImageFolder tree as a `Dataset` of 3 channels (see the module docstring for layouts and decoding).

    `in_memory=None` decodes both splits into memory when they take at most 1 GiB at `image_size`; a
    streamed dataset's mean/std are estimated from a seeded sample of 512 training images.
    """
    if data_dir is None:
        raise UserError("imagefolder needs --data-dir DIR (data_dir=...): the root of <class>/<image> folders")
    root, channels = Path(data_dir).expanduser(), 3
    classes, train, test = _splits(root, test_fraction, seed)
    size = (int(image_size[0]), int(image_size[1]))
    if in_memory is None:
        in_memory = (len(train) + len(test)) * channels * size[0] * size[1] <= MEMORY_LIMIT
    if in_memory:
        train_t, test_t = to_memory(train, size, channels), to_memory(test, size, channels)
        mean, std = channel_stats(train_t.images)
        return Dataset("imagefolder", classes, train_t, test_t, channels, size, mean, std, True, str(root))
    sample = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:STATS_SAMPLE])
    mean, std = channel_stats(to_memory(sample, size, channels).images)
    return Dataset("imagefolder", classes, train, test, channels, None, mean, std, True, str(root))
