"""Per-channel statistics of uint8 images, exact and cheap (a 256-bin histogram per channel)."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["channel_stats"]


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and (population) standard deviation of each channel of uint8 images (N, C, H, W), on [0, 1].

    A histogram keeps this exact without a float copy of the images: 47M Fashion-MNIST pixels take ~0.1 s.
    """
    levels = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = hist.sum().clamp_min(1)
        mean = (hist * levels).sum() / n
        means.append(float(mean))
        stds.append(float(((hist * (levels - mean) ** 2).sum() / n).sqrt()))
    return tuple(means), tuple(stds)
