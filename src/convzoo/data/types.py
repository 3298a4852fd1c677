"""What a loaded dataset is: classes, splits and the statistics the input pipeline needs."""
from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor

__all__ = ["Dataset", "FolderSplit", "TensorSplit"]


@dataclass(frozen=True)
class TensorSplit:
    """A split held in memory: uint8 images (N, C, H, W) and int64 labels (N,), on the CPU until the
    trainer moves them to its device."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: Tensor) -> TensorSplit:
        return TensorSplit(self.images[index], self.labels[index])


@dataclass(frozen=True)
class FolderSplit:
    """A split streamed from image files: (path, class index) pairs; images of any size and mode."""

    samples: tuple[tuple[str, int], ...]

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, index: Tensor) -> FolderSplit:
        return FolderSplit(tuple(self.samples[i] for i in index.tolist()))

    @property
    def labels(self) -> Tensor:
        import torch

        return torch.tensor([c for _, c in self.samples], dtype=torch.int64)


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset.

    Attributes:
        name: the registered name ("fashion-mnist", "cifar10", "imagefolder", ...).
        classes: class names, index = label.
        train, test: the splits (the test split never chooses anything in training).
        channels: 1 or 3 (what the stored images have).
        size: (H, W) of in-memory images; None for streamed folder data (any size).
        mean, std: per-channel statistics of the training images on the [0, 1] scale.
        hflip: whether a horizontal mirror keeps the label (False for digits).
        source: the directory the files were found in, or "synthetic".
    """

    name: str
    classes: tuple[str, ...]
    train: TensorSplit | FolderSplit
    test: TensorSplit | FolderSplit
    channels: int
    size: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool
    source: str

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, TensorSplit)

    def with_splits(self, train: TensorSplit | FolderSplit, test: TensorSplit | FolderSplit) -> Dataset:
        return replace(self, train=train, test=test)
