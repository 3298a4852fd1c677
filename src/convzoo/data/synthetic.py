"""Synthetic data for benchmarks and tests: ten classes of coloured stripe patterns plus noise.

Class k is a pattern of (1 + k mod 5) horizontal stripes, crossed by a vertical cosine for k >= 5, in its
own colour; each image adds Gaussian noise (σ = 20 grey levels). Every pattern is mirror-symmetric, so a
horizontal flip keeps the label (hflip=True). The patterns are fixed; `seed` draws the labels' order and
the noise, so the same seed gives the same images. A small network tells the classes apart in a few steps.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .stats import channel_stats
from .types import Dataset, TensorSplit

__all__ = ["CLASSES", "TEST_SIZE", "TRAIN_SIZE", "synthetic"]

CLASSES = tuple(f"class{k}" for k in range(10))
TRAIN_SIZE, TEST_SIZE = 2048, 512
_CHUNK = 256  # images made at once: bounds the float memory at 224×224


def _patterns(size: tuple[int, int]) -> Tensor:
    """The ten class templates, float (10, 3, H, W) in grey levels."""
    h, w = size
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    out = []
    for k in range(len(CLASSES)):
        across = torch.cos(2 * math.pi * (xx - 0.5)) if k >= 5 else torch.ones_like(xx)  # even in x - 0.5
        wave = 0.5 + 0.5 * torch.sin(2 * math.pi * (1 + k % 5) * yy) * across
        colour = torch.tensor([0.5 + 0.5 * math.cos(2 * math.pi * k / 10 + p) for p in (0, 2.1, 4.2)])
        out.append(40 + 170 * wave * (0.4 + 0.6 * colour)[:, None, None])
    return torch.stack(out)


def _split(templates: Tensor, n: int, g: torch.Generator) -> TensorSplit:
    labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=g)]
    images = torch.empty((n, *templates.shape[1:]), dtype=torch.uint8)
    for i in range(0, n, _CHUNK):
        chunk = templates[labels[i:i + _CHUNK]]
        noisy = chunk + 20 * torch.randn(chunk.shape, generator=g)
        images[i:i + _CHUNK] = noisy.round().clamp(0, 255).to(torch.uint8)
    return TensorSplit(images, labels.to(torch.int64))


def synthetic(image_size: tuple[int, int] | None = None, seed: int = 0) -> Dataset:
    """The synthetic dataset: 2,048 train and 512 test uint8 images (3, H, W), default 32×32, 10 classes."""
    size = (int(image_size[0]), int(image_size[1])) if image_size is not None else (32, 32)
    templates = _patterns(size)
    g = torch.Generator().manual_seed(seed)
    train, test = _split(templates, TRAIN_SIZE, g), _split(templates, TEST_SIZE, g)
    mean, std = channel_stats(train.images)
    return Dataset("synthetic", CLASSES, train, test, channels=3, size=size, mean=mean, std=std,
                   hflip=True, source="synthetic")
