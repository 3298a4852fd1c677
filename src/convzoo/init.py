"""Initialisers that two or more families share (each family's docstring says why it uses its own)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .meta import is_meta

__all__ = ["init_glorot", "trunc_normal_2sigma"]


def init_glorot(model: nn.Module) -> None:
    """Glorot & Bengio (2010): uniform weights for convolutions and linear layers (Keras's and TF-slim's
    default, "xavier"), zero biases; batch norm γ = 1, β = 0. Skipped on meta."""
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def trunc_normal_2sigma(weight: Tensor, std: float) -> None:
    """N(0, std²) cut at ±2σ (TensorFlow's truncated_normal), drawn by inverse CDF in one pass: torch's
    rejection sampler takes several passes at this cut and makes building an Inception network seconds
    slower."""
    edge = math.erf(-2 / math.sqrt(2))  # 2·Φ(−2) − 1
    with torch.no_grad():
        weight.uniform_(edge, -edge).erfinv_().mul_(std * math.sqrt(2))
