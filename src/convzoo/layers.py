"""Blocks used by two or more families (the rule of two: a block moves here once a second family needs it)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ActLayer", "ClassifierHead", "ConvBNAct", "NormLayer", "same_padding"]

NormLayer = Callable[[int], nn.Module]
ActLayer = Callable[[], nn.Module]

# Batch norm as Google's TensorFlow releases of the Inception family set it (ε = 0.001); the torchvision
# and timm ports keep it, so their weights only reproduce their outputs with it.
TF_BATCH_NORM: NormLayer = partial(nn.BatchNorm2d, eps=1e-3)


def same_padding(kernel_size: int | tuple[int, int], dilation: int = 1) -> int | tuple[int, int]:
    """Padding that keeps the spatial size at stride 1 for an odd kernel: (k − 1)/2 · d per side."""
    if isinstance(kernel_size, tuple):
        return tuple((k - 1) // 2 * dilation for k in kernel_size)  # type: ignore[return-value]
    return (kernel_size - 1) // 2 * dilation


class ConvBNAct(nn.Sequential):
    """Convolution → batch norm → activation, children named ``conv``, ``bn``, ``act``.

    `norm=None` drops the norm (and gives the convolution a bias); `act=None` drops the activation
    (MobileNet v2's linear bottleneck). Norms and activations are passed as callables, never strings.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        norm: NormLayer | None = nn.BatchNorm2d,
        act: ActLayer | None = nn.ReLU,
    ) -> None:
        padding = same_padding(kernel_size) if padding is None else padding
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding, groups=groups,
                                   bias=norm is None)
        if norm is not None:
            layers["bn"] = norm(out_chans)
        if act is not None:
            layers["act"] = act()
        super().__init__(layers)
        self.out_chans = out_chans


class ClassifierHead(nn.Sequential):
    """Global average pool → flatten → dropout → linear (children ``pool``, ``flatten``, ``drop``, ``fc``)."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__(OrderedDict(
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(1),
            drop=nn.Dropout(dropout),
            fc=nn.Linear(in_features, num_classes, bias=bias),
        ))


class FilterConcat(nn.Module):
    """Branches applied to one input, their outputs stacked on the channel axis (the Inception papers'
    "Filter concatenation"); the branches are the keyword arguments, in order."""

    def __init__(self, **branches: nn.Module) -> None:
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)


def inception_conv(in_chans: int, out_chans: int, kernel: int | tuple[int, int], stride: int = 1,
                   padding: int | tuple[int, int] | None = None) -> ConvBNAct:
    """The Inception v3/v4 releases' convolution unit: conv (no bias) → BN (ε 0.001) → ReLU, 'same'
    padding at stride 1 and none (the papers' "V") at stride 2 unless `padding` is given."""
    if padding is None:
        padding = same_padding(kernel) if stride == 1 else 0
    return ConvBNAct(in_chans, out_chans, kernel, stride, padding, norm=TF_BATCH_NORM)


def tower(in_chans: int, *layers: tuple[Any, ...]) -> nn.Sequential:
    """One branch of an Inception module: `inception_conv` units in sequence, each given as
    ``(out_chans, kernel[, stride[, padding]])``."""
    convs = []
    for out, kernel, *rest in layers:
        convs.append(inception_conv(in_chans, out, kernel, *rest))
        in_chans = out
    return nn.Sequential(*convs)


def krizhevsky_lrn() -> nn.LocalResponseNorm:
    """Local response normalisation with AlexNet's constants (§3.3): k = 2, n = 5, α = 1e-4, β = 0.75.

    The paper divides by (k + α Σ a²)^β; torch divides by (k + α/n Σ a²)^β, so α is passed as α·n = 5e-4
    to compute the paper's formula. (Caffe's LRN also divides by n, which is why ports that copy its
    alpha=1e-4 compute a normalisation five times weaker than the paper's.) VGG's A-LRN and GoogLeNet
    reuse these constants.
    """
    return nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)
