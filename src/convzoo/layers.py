"""Blocks used by two or more families (the rule of two: a block moves here once a second family needs it)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn

__all__ = ["ActLayer", "ClassifierHead", "ConvBNAct", "NormLayer", "same_padding"]

NormLayer = Callable[[int], nn.Module]
ActLayer = Callable[[], nn.Module]


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

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__(OrderedDict(
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(1),
            drop=nn.Dropout(dropout),
            fc=nn.Linear(in_features, num_classes),
        ))


def krizhevsky_lrn() -> nn.LocalResponseNorm:
    """Local response normalisation with AlexNet's constants (§3.3): k = 2, n = 5, α = 1e-4, β = 0.75.

    The paper divides by (k + α Σ a²)^β; torch divides by (k + α/n Σ a²)^β, so α is passed as α·n = 5e-4
    to compute the paper's formula. (Caffe's LRN also divides by n, which is why ports that copy its
    alpha=1e-4 compute a normalisation five times weaker than the paper's.) VGG's A-LRN and GoogLeNet
    reuse these constants.
    """
    return nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)
