"""ResNet and ResNeXt.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", arXiv:1512.03385, Table 1
(stages conv2_x … conv5_x, FLOPs per depth), Fig. 5 (basic and bottleneck blocks), §3.3 (projection
shortcut "option B" where the shape changes), §3.4 (He initialisation, BN after every convolution).
Xie, Girshick, Dollár, Tu & He, "Aggregated Residual Transformations for Deep Neural Networks",
arXiv:1611.05431, Table 1 and Fig. 3(c) (the grouped-convolution form of the aggregated block).

Deviations from the papers:
- ``resnet50/101/152`` are the paper's network: the bottleneck downsamples in its first 1×1
  convolution. ``resnet*_v1_5`` put the stride on the 3×3 instead (torchvision's and NVIDIA's
  "v1.5"): same parameters, more MACs (ResNet-50: 4.09 G instead of 3.86 G) and a little more accurate.
  ResNeXt puts the stride on the 3×3 in its own paper, so it is not a deviation there.
- The fully-connected layer keeps PyTorch's default initialisation; the paper does not specify one.
- ``dropout`` (default 0, as in the paper) drops the pooled features before the classifier.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor, nn

from ..base import ZooModel
from ..layers import ClassifierHead, ConvBNAct
from ..meta import is_meta
from ..registry import Paper, PaperFigure, register_model

__all__ = ["CFGS", "BasicBlock", "Bottleneck", "ResNet", "ResNetCfg"]

RESNET = Paper("He, Zhang, Ren & Sun", 2015, "Deep Residual Learning for Image Recognition",
               "arXiv:1512.03385 (CVPR 2016)")
RESNEXT = Paper("Xie, Girshick, Dollár, Tu & He", 2016,
                "Aggregated Residual Transformations for Deep Neural Networks", "arXiv:1611.05431 (CVPR 2017)")


@dataclass(frozen=True)
class ResNetCfg:
    """One column of Table 1 (ResNet) or Table 1 (ResNeXt)."""

    block: Literal["basic", "bottleneck"]
    depths: tuple[int, int, int, int]  # blocks in conv2_x, conv3_x, conv4_x, conv5_x
    groups: int = 1  # ResNeXt cardinality C
    width_per_group: int = 64  # ResNeXt bottleneck width d (per group, in conv2_x)
    stride_in_3x3: bool = False  # False: the ResNet paper (stride on the first 1×1); True: "v1.5"/ResNeXt


CFGS: dict[str, ResNetCfg] = {
    "resnet18": ResNetCfg("basic", (2, 2, 2, 2)),
    "resnet34": ResNetCfg("basic", (3, 4, 6, 3)),
    "resnet50": ResNetCfg("bottleneck", (3, 4, 6, 3)),
    "resnet101": ResNetCfg("bottleneck", (3, 4, 23, 3)),
    "resnet152": ResNetCfg("bottleneck", (3, 8, 36, 3)),
    "resnet50_v1_5": ResNetCfg("bottleneck", (3, 4, 6, 3), stride_in_3x3=True),
    "resnet101_v1_5": ResNetCfg("bottleneck", (3, 4, 23, 3), stride_in_3x3=True),
    "resnet152_v1_5": ResNetCfg("bottleneck", (3, 8, 36, 3), stride_in_3x3=True),
    "resnext50_32x4d": ResNetCfg("bottleneck", (3, 4, 6, 3), 32, 4, stride_in_3x3=True),
    "resnext101_32x8d": ResNetCfg("bottleneck", (3, 4, 23, 3), 32, 8, stride_in_3x3=True),
    "resnext101_64x4d": ResNetCfg("bottleneck", (3, 4, 23, 3), 64, 4, stride_in_3x3=True),
}


def _shortcut(in_chans: int, out_chans: int, stride: int) -> nn.Module:
    """Identity, or option B's 1×1 projection (with BN) where the shape changes (§3.3)."""
    if stride == 1 and in_chans == out_chans:
        return nn.Identity()
    return ConvBNAct(in_chans, out_chans, 1, stride, act=None)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions plus shortcut (Fig. 5 left); ResNet-18/34."""

    expansion = 1

    def __init__(self, in_chans: int, planes: int, stride: int, cfg: ResNetCfg) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_chans, planes, 3, stride)
        self.conv2 = ConvBNAct(planes, planes, 3, act=None)
        self.shortcut = _shortcut(in_chans, planes, stride)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (grouped for ResNeXt) → 1×1 expand, plus shortcut (Fig. 5 right; Xie Fig. 3c)."""

    expansion = 4

    def __init__(self, in_chans: int, planes: int, stride: int, cfg: ResNetCfg) -> None:
        super().__init__()
        width = planes * cfg.width_per_group // 64 * cfg.groups
        out_chans = planes * self.expansion
        s1, s3 = (1, stride) if cfg.stride_in_3x3 else (stride, 1)
        self.conv1 = ConvBNAct(in_chans, width, 1, s1)
        self.conv2 = ConvBNAct(width, width, 3, s3, groups=cfg.groups)
        self.conv3 = ConvBNAct(width, out_chans, 1, act=None)
        self.shortcut = _shortcut(in_chans, out_chans, stride)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def _stage(cfg: ResNetCfg, in_chans: int, planes: int, depth: int, stride: int) -> nn.Sequential:
    block = BasicBlock if cfg.block == "basic" else Bottleneck
    layers = []
    for i in range(depth):
        layers.append(block(in_chans, planes, stride if i == 0 else 1, cfg))
        in_chans = planes * block.expansion
    return nn.Sequential(*layers)


class ResNet(ZooModel):
    """conv1 → max-pool → conv2_x … conv5_x → global average pool → fc (Table 1)."""

    def __init__(self, cfg: ResNetCfg, *, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        self.stem = nn.Sequential(OrderedDict(  # conv1, and the max-pool that opens conv2_x
            conv=nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False),
            bn=nn.BatchNorm2d(64),
            act=nn.ReLU(),
            pool=nn.MaxPool2d(3, 2, padding=1),
        ))
        expansion = 1 if cfg.block == "basic" else Bottleneck.expansion
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        chans = 64
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), cfg.depths)):
            stages[f"conv{i + 2}_x"] = _stage(cfg, chans, planes, depth, 1 if i == 0 else 2)
            chans = planes * expansion
        self.stages = nn.Sequential(stages)
        self.num_features = chans
        self.head = ClassifierHead(chans, num_classes, dropout)
        init_he(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 224, 224) -> (N, 512·expansion, 7, 7)
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def init_he(model: nn.Module) -> None:
    """He et al. 2015 ("Delving deep", eq. 10): conv weights N(0, 2/fan_in); BN γ = 1, β = 0 (§3.4)."""
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


_V15 = ("stride 2 on the bottleneck's 3×3 instead of its first 1×1 (torchvision's 'v1.5'); "
        "same parameters, more MACs than the paper's Table 1",)


def _macs(value: float, gap: str | None = None) -> PaperFigure:
    return PaperFigure(value, 0.05e9 / value, "Table 1 (FLOPs = multiply-adds)", gap)


_RESNET = dict(paper=RESNET, input_size=(3, 224, 224))
_RESNEXT = dict(paper=RESNEXT, input_size=(3, 224, 224))
_GAP34 = ("Table 1 prints 3.6 G; the conv + fc multiply-adds of the Table 1 network are 3.66 G "
          "(torchvision's count agrees), which rounds to 3.7")
_GAP50 = ("Table 1 prints 3.8 G; the conv + fc multiply-adds of the Table 1 network (stride on the first 1×1) "
          "are 3.86 G, which rounds to 3.9; the paper's other depths round correctly, so 3.8 looks truncated")


@register_model(**_RESNET, macs=_macs(1.8e9), peers={"torchvision": "resnet18", "timm": "resnet18"},
                config=CFGS["resnet18"])
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18 (Table 1), basic blocks."""
    return ResNet(CFGS["resnet18"], **kwargs)


@register_model(**_RESNET, macs=_macs(3.6e9, _GAP34), peers={"torchvision": "resnet34", "timm": "resnet34"},
                config=CFGS["resnet34"])
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34 (Table 1), basic blocks."""
    return ResNet(CFGS["resnet34"], **kwargs)


@register_model(**_RESNET, macs=_macs(3.8e9, _GAP50), config=CFGS["resnet50"])
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 as in the paper: bottleneck stride on the first 1×1."""
    return ResNet(CFGS["resnet50"], **kwargs)


@register_model(**_RESNET, macs=_macs(7.6e9), config=CFGS["resnet101"])
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101 as in the paper: bottleneck stride on the first 1×1."""
    return ResNet(CFGS["resnet101"], **kwargs)


@register_model(**_RESNET, macs=_macs(11.3e9), config=CFGS["resnet152"])
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152 as in the paper: bottleneck stride on the first 1×1."""
    return ResNet(CFGS["resnet152"], **kwargs)


@register_model(**_RESNET, deviations=_V15, peers={"torchvision": "resnet50", "timm": "resnet50"},
                config=CFGS["resnet50_v1_5"])
def resnet50_v1_5(**kwargs: Any) -> ResNet:
    """ResNet-50 with the stride on the bottleneck's 3×3 (torchvision's form)."""
    return ResNet(CFGS["resnet50_v1_5"], **kwargs)


@register_model(**_RESNET, deviations=_V15, peers={"torchvision": "resnet101", "timm": "resnet101"},
                config=CFGS["resnet101_v1_5"])
def resnet101_v1_5(**kwargs: Any) -> ResNet:
    """ResNet-101 with the stride on the bottleneck's 3×3 (torchvision's form)."""
    return ResNet(CFGS["resnet101_v1_5"], **kwargs)


@register_model(**_RESNET, deviations=_V15, peers={"torchvision": "resnet152", "timm": "resnet152"},
                config=CFGS["resnet152_v1_5"])
def resnet152_v1_5(**kwargs: Any) -> ResNet:
    """ResNet-152 with the stride on the bottleneck's 3×3 (torchvision's form)."""
    return ResNet(CFGS["resnet152_v1_5"], **kwargs)


@register_model(**_RESNEXT, params=PaperFigure(25.0e6, 0.05e6 / 25.0e6, "Table 1"),
                macs=PaperFigure(4.2e9, 0.05e9 / 4.2e9, "Table 1 (FLOPs = multiply-adds)"),
                peers={"torchvision": "resnext50_32x4d", "timm": "resnext50_32x4d"},
                config=CFGS["resnext50_32x4d"])
def resnext50_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-50 (32×4d): cardinality 32, bottleneck width 4 per group."""
    return ResNet(CFGS["resnext50_32x4d"], **kwargs)


@register_model(**_RESNEXT, peers={"torchvision": "resnext101_32x8d", "timm": "resnext101_32x8d"},
                config=CFGS["resnext101_32x8d"])
def resnext101_32x8d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 (32×8d): cardinality 32, bottleneck width 8 per group."""
    return ResNet(CFGS["resnext101_32x8d"], **kwargs)


@register_model(**_RESNEXT, peers={"torchvision": "resnext101_64x4d", "timm": "resnext101_64x4d"},
                config=CFGS["resnext101_64x4d"])
def resnext101_64x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 (64×4d): cardinality 64, bottleneck width 4 per group."""
    return ResNet(CFGS["resnext101_64x4d"], **kwargs)
