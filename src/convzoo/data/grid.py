"""A labelled grid of samples as a PNG: a look at the data before training on it."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UserError
from ..fsio import atomic_path
from .folder import to_memory
from .types import Dataset, TensorSplit

__all__ = ["save_grid"]

FOLDER_SIZE = (96, 96)  # streamed (folder) images are decoded at this size for the grid


def _pick(dataset: Dataset, split: str, n: int, seed: int) -> tuple[Tensor, Tensor, int]:
    """`n` samples of the split chosen by `seed`: uint8 images, labels, and the split's size."""
    if split not in ("train", "test"):
        raise UserError(f"split {split!r} is not 'train' or 'test'")
    part = dataset.train if split == "train" else dataset.test
    if n < 1:
        raise UserError(f"a grid of {n} images is empty; ask for 1 or more")
    index = torch.randperm(len(part), generator=torch.Generator().manual_seed(seed))[:n]
    chosen = part.subset(index)
    if not isinstance(chosen, TensorSplit):
        chosen = to_memory(chosen, FOLDER_SIZE, dataset.channels)
    return chosen.images, chosen.labels, len(part)


def save_grid(dataset: Dataset, out: str | os.PathLike[str], *, split: str = "train", n: int = 64,
              seed: int = 0) -> Path:
    """Write a grid of `n` seeded samples of `split`, each with its class name under it, as a PNG.

    Args:
        dataset: an in-memory or folder dataset.
        out: the PNG file, written whole or not at all.
        split: "train" or "test".
        n: images in the grid (fewer when the split is smaller).
        seed: which samples.

    Raises:
        UserError: matplotlib is not installed, a bad split or count, an image that cannot be decoded.
    """
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
    except ImportError:
        raise UserError("drawing the grid needs matplotlib: pip install matplotlib") from None
    images, labels, total = _pick(dataset, split, n, seed)
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    fig = Figure(figsize=(1.2 * cols, 1.3 * rows + 0.4), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, img, label in zip(axes, images, labels.tolist()):
        pixels = img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()
        ax.imshow(pixels, cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(dataset.classes[label], fontsize=7)
    for ax in axes[len(images):]:
        ax.axis("off")
    fig.suptitle(f"{dataset.name} {split}: {len(images)} of {total:,} images (seed {seed})", fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return Path(out)
