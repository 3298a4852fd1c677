"""MobileNet v2.

Sandler, Howard, Zhu, Zhmoginov & Chen, "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
arXiv:1801.04381 (CVPR 2018): Table 1 (the bottleneck residual block: 1×1 expansion by t with ReLU6,
3×3 depthwise with ReLU6, linear 1×1 projection), Table 2 (the body, rows t, c, n, s), Fig. 4(b)
(identity shortcut when stride is 1 and the widths agree), Table 4 (3.4M parameters, 300M multiply-adds);
§5 (width multipliers, kept off the last convolution below 1). The widths 0.35/0.5/0.75/1.4 are those of
the official release (tensorflow/models, research/slim/nets/mobilenet), whose README gives their MACs.

Deviations from the paper, and how figures are read:
- Channels are width × c rounded to the nearest multiple of 8 (never below 8, nor below 90% of width × c),
  as the official code and torchvision do; the paper does not say how it rounds. The last 1×1 convolution
  keeps 1280 channels below width 1 (§5; the release's "finegrain classification mode") and scales above.
- Dropout 0.2 before the classifier: the release's training scope (keep probability 0.8) and
  torchvision's default; the paper's §6.1 does not mention dropout. BN ε = 1e-5 (torchvision; TF-slim's
  default is 1e-3). 3×3 convolutions pad 1 on every side (TF's "SAME" pads only bottom/right at stride 2):
  the same shapes and MACs, but TF checkpoints would need their padding.
- Initialisation as torchvision (He fan-out for convolutions, N(0, 0.01) for the classifier); the paper
  states none (the release used a truncated normal with σ = 0.09).
- Printed figures: the release README prints MACs truncated to the million (all 22 of its width ×
  resolution rows agree with ours truncated; 8 of them, e.g. 1.0@224 = 300.77M → "300", do not when
  rounded), so MAC figures are tested within 1M. Parameter figures count without batch-norm γ/β:
  Table 4's "3.4M" is the release's 3.47M (3,470,760 without BN) cut to one decimal, and each release row
  equals our count minus BN γ/β (34,112 at width 1). We count them (3,504,872, as torchvision), so the
  parameter figures are documented gaps.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import Tensor, nn

from ..base import ZooModel
from ..errors import UserError
from ..layers import ClassifierHead, ConvBNAct
from ..meta import is_meta
from ..options import check_float
from ..registry import Paper, PaperFigure, register_model

__all__ = ["CFGS", "TABLE_2", "InvertedResidual", "MobileNetV2", "MobileNetV2Cfg", "Row", "make_divisible"]

MOBILENET_V2 = Paper("Sandler, Howard, Zhu, Zhmoginov & Chen", 2018,
                     "MobileNetV2: Inverted Residuals and Linear Bottlenecks", "arXiv:1801.04381 (CVPR 2018)")


class Row(NamedTuple):
    """One "bottleneck" row of Table 2."""

    t: int  # expansion factor
    c: int  # output channels
    n: int  # repeats
    s: int  # stride of the first repeat (the others have stride 1)


# Table 2: conv2d 3×3/2 (32) → seven bottleneck rows → conv2d 1×1 (1280) → avgpool 7×7 → conv2d 1×1 (k).
STEM_CHANNELS = 32
TABLE_2: tuple[Row, ...] = (
    Row(t=1, c=16, n=1, s=1),
    Row(t=6, c=24, n=2, s=2),
    Row(t=6, c=32, n=3, s=2),
    Row(t=6, c=64, n=4, s=2),
    Row(t=6, c=96, n=3, s=1),
    Row(t=6, c=160, n=3, s=2),
    Row(t=6, c=320, n=1, s=1),
)
LAST_CHANNELS = 1280



@dataclass(frozen=True)
class MobileNetV2Cfg:
    """A registered network: Table 2 at width multiplier `width_mult` (§5)."""

    width_mult: float = 1.0


# The registered widths: those of the official release's checkpoints.
CFGS: dict[str, MobileNetV2Cfg] = {
    "mobilenet_v2": MobileNetV2Cfg(1.0),
    "mobilenet_v2_x0_35": MobileNetV2Cfg(0.35),
    "mobilenet_v2_x0_5": MobileNetV2Cfg(0.5),
    "mobilenet_v2_x0_75": MobileNetV2Cfg(0.75),
    "mobilenet_v2_x1_4": MobileNetV2Cfg(1.4),
}


def _check_width(width_mult: object) -> float:
    return check_float("MobileNetV2", "width_mult", width_mult, minimum=0, min_open=True,
                       note="the release's widths are 0.35, 0.5, 0.75, 1 and 1.4")


def make_divisible(value: float, divisor: int = 8) -> int:
    """`value` rounded to the nearest multiple of `divisor`, at least `divisor` and at least 90% of `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """Bottleneck residual block (Table 1, Fig. 4b): expand ×t → depthwise 3×3 → linear 1×1 projection."""

    def __init__(self, in_chans: int, out_chans: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = in_chans * t
        self.use_shortcut = stride == 1 and in_chans == out_chans
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if t != 1:  # t = 1 (the first row) has nothing to expand
            layers["expand"] = ConvBNAct(in_chans, hidden, 1, act=nn.ReLU6)
        layers["depthwise"] = ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6)
        layers["project"] = ConvBNAct(hidden, out_chans, 1, act=None)  # the linear bottleneck (§3.2)
        self.conv = nn.Sequential(layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_shortcut else self.conv(x)


class MobileNetV2(ZooModel):
    """conv2d → bottleneck1 … bottleneck7 → conv2d 1×1 → avgpool → classifier (Table 2)."""

    def __init__(self, *, width_mult: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.2) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.width_mult = width_mult = _check_width(width_mult)
        chans = make_divisible(STEM_CHANNELS * width_mult)
        self.stem = ConvBNAct(in_chans, chans, 3, 2, act=nn.ReLU6)  # (N, 32·w, 112, 112)
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        for i, row in enumerate(TABLE_2):
            out = make_divisible(row.c * width_mult)
            blocks = [InvertedResidual(chans if j == 0 else out, out, row.s if j == 0 else 1, row.t)
                      for j in range(row.n)]
            stages[f"bottleneck{i + 1}"] = nn.Sequential(*blocks)
            chans = out
        self.num_features = make_divisible(LAST_CHANNELS * max(1.0, width_mult))
        stages["conv2d_1x1"] = ConvBNAct(chans, self.num_features, 1, act=nn.ReLU6)
        self.stages = nn.Sequential(stages)
        self.head = ClassifierHead(self.num_features, num_classes, dropout)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 224, 224) -> (N, 1280, 7, 7)
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def init_weights(model: nn.Module) -> None:
    """torchvision's: convolutions He-normal (fan-out), BN γ = 1, β = 0, classifier N(0, 0.01), bias 0."""
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def _build(name: str, kwargs: dict[str, Any]) -> MobileNetV2:
    width = CFGS[name].width_mult
    if name != "mobilenet_v2" and "width_mult" in kwargs and _check_width(kwargs["width_mult"]) != width:
        raise UserError(f"{name} has width_mult={width}; build mobilenet_v2 with width_mult="
                        f"{kwargs['width_mult']!r} for another width")
    return MobileNetV2(**{"width_mult": width, **kwargs})


_README = "official release README (tensorflow/models slim/nets/mobilenet)"
_NO_BN = ("the figure counts weights without batch-norm γ/β (the release's convention: every README row "
          "equals ours minus BN γ/β); ours includes them, as torchvision's")


def _macs(value: float, where: str = _README) -> PaperFigure:
    return PaperFigure(value, 1e6 / value, f"{where}; MACs printed truncated to 1M")


def _params(value: float, where: str = _README) -> PaperFigure:
    return PaperFigure(value, 0.005e6 / value, where, gap=_NO_BN)


_COMMON = dict(paper=MOBILENET_V2, input_size=(3, 224, 224))
_DEV = ("channels rounded to multiples of 8 (official code, torchvision); dropout 0.2 (release, torchvision)",)


@register_model(**_COMMON, params=PaperFigure(3.4e6, 0.1e6 / 3.4e6, "Table 4", gap=_NO_BN),
                macs=_macs(300e6, "Table 4"), deviations=_DEV,
                peers={"torchvision": "mobilenet_v2", "timm": "mobilenetv2_100"}, config=CFGS["mobilenet_v2"])
def mobilenet_v2(**kwargs: Any) -> MobileNetV2:
    """MobileNet v2 (Table 2), width 1.0 unless `width_mult` is given."""
    return _build("mobilenet_v2", kwargs)


@register_model(**_COMMON, params=_params(2.61e6), macs=_macs(209e6), deviations=_DEV,
                peers={"timm": "mobilenetv2_075"}, config=CFGS["mobilenet_v2_x0_75"])
def mobilenet_v2_x0_75(**kwargs: Any) -> MobileNetV2:
    """MobileNet v2 at width 0.75."""
    return _build("mobilenet_v2_x0_75", kwargs)


@register_model(**_COMMON, params=_params(1.95e6), macs=_macs(97e6), deviations=_DEV,
                peers={"timm": "mobilenetv2_050"}, config=CFGS["mobilenet_v2_x0_5"])
def mobilenet_v2_x0_5(**kwargs: Any) -> MobileNetV2:
    """MobileNet v2 at width 0.5."""
    return _build("mobilenet_v2_x0_5", kwargs)


@register_model(**_COMMON, params=_params(1.66e6), macs=_macs(59e6), deviations=_DEV,
                peers={"timm": "mobilenetv2_035"}, config=CFGS["mobilenet_v2_x0_35"])
def mobilenet_v2_x0_35(**kwargs: Any) -> MobileNetV2:
    """MobileNet v2 at width 0.35."""
    return _build("mobilenet_v2_x0_35", kwargs)


@register_model(**_COMMON, params=_params(6.06e6), macs=_macs(582e6), deviations=_DEV,
                peers={"timm": "mobilenetv2_140"}, config=CFGS["mobilenet_v2_x1_4"])
def mobilenet_v2_x1_4(**kwargs: Any) -> MobileNetV2:
    """MobileNet v2 at width 1.4 (the last 1×1 convolution scales too)."""
    return _build("mobilenet_v2_x1_4", kwargs)
