"""ShuffleNet (v1).

Zhang, Zhou, Lin & Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
Devices", arXiv:1707.01083 (CVPR 2018): §3.1 and Fig. 1 (channel shuffle: reshape the channels into
(g, n), transpose, flatten), §3.2 and Fig. 2(b)/(c) (the ShuffleNet unit: 1×1 group conv, BN, ReLU →
shuffle → 3×3 depthwise conv, BN → 1×1 group conv, BN → add, or at stride 2 concatenate a 3×3/2 average
pooled shortcut → ReLU; bottleneck = ¼ of the unit's output; stage 2's first 1×1 is not grouped), §3.3 and
Table 1 (Conv1 24, MaxPool, Stage2–4 of 1 + 3, 1 + 7, 1 + 3 units, output channels per group count g),
Table 2 (scaled networks "ShuffleNet s×": filters × s). The scaled g = 3 and g = 8 networks follow the
official code (megvii-model/ShuffleNet-Series, ShuffleNetV1), whose README gives their FLOPs and params.

Deviations from the paper (none in the layers; choices where it is silent), and its figures:
- Conv1 width of the scaled networks: the official code's 12, 24, 24, 48 channels at 0.5×, 1×, 1.5×, 2×
  (not 24·s at 1.5×). 0.25× was not released; we keep 12 channels as at 0.5×, which gives Table 2's
  "≈ 13M" for g = 1–4 (13.2–13.5M), where 24·s = 6 would give 11.0–11.9M. Each width is rounded up to a
  multiple of g, which the stride-2 concatenation needs (this gives the official g = 8 0.5×'s 16; g = 8
  at 0.25× thus has 16 channels and 15.7M).
- Stage widths at scale s are Table 1's × s rounded to the nearest multiple of 4g (halves up), so that the
  bottleneck (¼) splits into g groups. This changes nothing for g = 1, 3, 8 or at 1× and 2×; the paper
  does not say how it rounded g = 2 and g = 4 at 0.25×, 0.5× and 1.5×.
- The official code shuffles after the depthwise convolution (a per-channel layer commutes with a
  permutation, so only its weight order differs) and reshapes to (n, g), the inverse permutation, which
  also feeds every group from every group. Ours follows §3.1 and Fig. 2. As in the official code, the
  shortcut comes first in the stride-2 concatenation, and the FC layer has no bias.
- Dropout defaults to 0 (the paper uses none). Initialisation follows the official code; the paper states
  none.
- Table 1's complexities count no FC layer: without it ours round to all five (142.50, 140.04, 136.50,
  133.25, 136.83M); with it (our MACs convention) g = 2, 4, 8 fall outside the printed precision (gaps).
- The official README's "138M" for 1× g = 3 is a gap: its network is ours, 137.46M with the FC layer
  (136.50M without); its other seven rows agree with ours, with the FC layer, to the printed precision.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..base import ZooModel
from ..errors import UserError
from ..layers import ClassifierHead, ConvBNAct
from ..meta import is_meta
from ..options import check_choice
from ..registry import Paper, PaperFigure, register_model

__all__ = ["CFGS", "TABLE_1", "ChannelShuffle", "ShuffleNetCfg", "ShuffleNetV1", "ShuffleUnit", "Stage"]

SHUFFLENET = Paper("Zhang, Zhou, Lin & Sun", 2017,
                   "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
                   "arXiv:1707.01083 (CVPR 2018)")

GROUPS = (1, 2, 3, 4, 8)  # the columns of Table 1


@dataclass(frozen=True)
class Stage:
    """A Stage row pair of Table 1: one stride-2 unit, then `repeat` stride-1 units."""

    name: str
    repeat: int  # stride-1 units after the stride-2 unit (Table 1's "Repeat" 1, then 3/7/3)
    out_channels: tuple[int, ...]  # per group count g, in the order of GROUPS


# Table 1: Conv1 3×3/2 (24) → MaxPool 3×3/2 → Stage2 → Stage3 → Stage4 → GlobalPool 7×7 → FC.
TABLE_1: tuple[Stage, ...] = (
    Stage("stage2", repeat=3, out_channels=(144, 200, 240, 272, 384)),
    Stage("stage3", repeat=7, out_channels=(288, 400, 480, 544, 768)),
    Stage("stage4", repeat=3, out_channels=(576, 800, 960, 1088, 1536)),
)
# Conv1 width per scale s (Table 2's "s×"): the official code's; 0.25× was not released (see Deviations).
CONV1_BY_SCALE: dict[float, int] = {0.25: 12, 0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}


@dataclass(frozen=True)
class ShuffleNetCfg:
    """A registered network: the group count g (a column of Table 1) and the scale s (Table 2)."""

    groups: int
    scale: float = 1.0


CFGS: dict[str, ShuffleNetCfg] = {
    **{f"shufflenet_v1_g{g}": ShuffleNetCfg(g) for g in GROUPS},
    "shufflenet_v1_g3_x0_25": ShuffleNetCfg(3, 0.25),
    "shufflenet_v1_g3_x0_5": ShuffleNetCfg(3, 0.5),
    "shufflenet_v1_g3_x1_5": ShuffleNetCfg(3, 1.5),
    "shufflenet_v1_g3_x2_0": ShuffleNetCfg(3, 2.0),
    "shufflenet_v1_g8_x0_5": ShuffleNetCfg(8, 0.5),
    "shufflenet_v1_g8_x1_5": ShuffleNetCfg(8, 1.5),
    "shufflenet_v1_g8_x2_0": ShuffleNetCfg(8, 2.0),
}


def _check(groups: object, scale: object) -> tuple[int, float]:
    """The group count g (a column of Table 1) and the scale s (a width of Table 2 the official code builds)."""
    return (check_choice("ShuffleNetV1", "groups", groups, GROUPS, note="Table 1's columns"),
            check_choice("ShuffleNetV1", "scale", scale, tuple(CONV1_BY_SCALE),
                         note="Table 2's s×, as the official code builds them"))


def widths(groups: int, scale: float) -> tuple[int, tuple[int, int, int]]:
    """Conv1 and Stage2–4 output channels for group count g and scale s (see the module docstring)."""
    g, q = groups, 4 * groups
    conv1 = -(-CONV1_BY_SCALE[scale] // g) * g  # up to a multiple of g
    col = GROUPS.index(g)
    s2, s3, s4 = (max(q, int(st.out_channels[col] * scale / q + 0.5) * q) for st in TABLE_1)
    return conv1, (s2, s3, s4)


class ChannelShuffle(nn.Module):
    """Channel shuffle (§3.1, Fig. 1c): channels viewed as (g, n), transposed to (n, g), flattened."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ShuffleUnit(nn.Module):
    """ShuffleNet unit (Fig. 2b; Fig. 2c at stride 2, where the shortcut is pooled and concatenated)."""

    def __init__(self, in_chans: int, out_chans: int, stride: int, groups: int, group_first: bool = True) -> None:
        super().__init__()
        mid = out_chans // 4  # the bottleneck: ¼ of the unit's output (§3.3)
        branch = out_chans - in_chans if stride == 2 else out_chans  # the concat supplies in_chans
        self.stride = stride
        self.gconv1 = ConvBNAct(in_chans, mid, 1, groups=groups if group_first else 1)
        self.shuffle = ChannelShuffle(groups)
        self.dwconv = ConvBNAct(mid, mid, 3, stride, groups=mid, act=None)  # no ReLU here (§3.2)
        self.gconv2 = ConvBNAct(mid, branch, 1, groups=groups, act=None)
        self.shortcut = nn.AvgPool2d(3, 2, padding=1) if stride == 2 else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.gconv2(self.dwconv(self.shuffle(self.gconv1(x))))
        if self.stride == 2:
            return self.act(torch.cat((self.shortcut(x), y), 1))
        return self.act(self.shortcut(x) + y)


class ShuffleNetV1(ZooModel):
    """Conv1 → MaxPool → Stage2 → Stage3 → Stage4 → global pool → FC (Table 1)."""

    def __init__(self, *, groups: int = 3, scale: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.groups, self.scale = groups, scale = _check(groups, scale)
        conv1, stage_widths = widths(groups, scale)
        self.stem = nn.Sequential(OrderedDict(
            conv1=ConvBNAct(in_chans, conv1, 3, 2),
            maxpool=nn.MaxPool2d(3, 2, padding=1),
        ))  # (N, 24, 56, 56)
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        chans = conv1
        for st, out in zip(TABLE_1, stage_widths):
            units = [ShuffleUnit(chans, out, 2, groups, group_first=st.name != "stage2")]
            units += [ShuffleUnit(out, out, 1, groups) for _ in range(st.repeat)]
            stages[st.name] = nn.Sequential(*units)
            chans = out
        self.stages = nn.Sequential(stages)
        self.num_features = chans
        self.head = ClassifierHead(chans, num_classes, dropout, bias=False)  # the official code's bias-free FC
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 224, 224) -> (N, Stage4, 7, 7)
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def init_weights(model: ShuffleNetV1) -> None:
    """The official code's: Conv1 N(0, 0.01); other convolutions N(0, 1/(input channels per group)); BN γ = 1,
    β = 1e-4; FC N(0, 0.01)."""
    if is_meta(model):
        return
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0, 0.01 if name.startswith("stem.") else 1.0 / m.weight.shape[1])
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.constant_(m.bias, 1e-4)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)


def _build(name: str, kwargs: dict[str, Any]) -> ShuffleNetV1:
    """The registered network; a group count (or, for the scaled names, a scale) other than its own is refused
    with the name that builds it."""
    cfg = CFGS[name]
    groups, scale = _check(kwargs.get("groups", cfg.groups), kwargs.get("scale", cfg.scale))
    fixed = {"groups": cfg.groups} if cfg.scale == 1.0 else {"groups": cfg.groups, "scale": cfg.scale}
    for knob, value in fixed.items():
        if kwargs.get(knob, value) != value:
            other = next((n for n, c in CFGS.items() if c == ShuffleNetCfg(groups, scale)),
                         f"shufflenet_v1_g{groups} with scale={scale}")
            raise UserError(f"{name} has {knob}={value}; build {other} for {knob}={kwargs[knob]!r}")
    return ShuffleNetV1(**{**fixed, **kwargs})


_COMMON = dict(paper=SHUFFLENET, input_size=(3, 224, 224))
_README = "official code README (megvii-model/ShuffleNet-Series, ShuffleNetV1)"
_NO_FC = "Table 1 counts no FC layer: without its {} MACs ours is {}M, which rounds to the table's figure"


def _table1(value: float, gap: str | None = None) -> PaperFigure:
    return PaperFigure(value, 0.5e6 / value, "Table 1 (complexity, MFLOPs = multiply-adds)", gap)


def _readme(value: float, precision: float, gap: str | None = None) -> PaperFigure:
    return PaperFigure(value, precision / 2 / value, _README, gap)


_OFFICIAL = ("Conv1 width per scale from the official code (not 24·s at 1.5×)",)
_SCALES = ("none at 1×; with `scale`, Conv1 widths come from the official code and stage widths are rounded "
           "to multiples of 4g (the paper gives no rule)",)


@register_model(**_COMMON, macs=_table1(143e6), deviations=_SCALES, config=CFGS["shufflenet_v1_g1"])
def shufflenet_v1_g1(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 1× with g = 1 (no group convolution; `scale` gives s×)."""
    return _build("shufflenet_v1_g1", kwargs)


@register_model(**_COMMON, macs=_table1(140e6, _NO_FC.format("0.80M", "140.04")), deviations=_SCALES,
                config=CFGS["shufflenet_v1_g2"])
def shufflenet_v1_g2(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 1× with g = 2 (`scale` gives s×)."""
    return _build("shufflenet_v1_g2", kwargs)


@register_model(**_COMMON, params=_readme(1.9e6, 0.1e6), macs=_table1(137e6), deviations=_SCALES,
                config=CFGS["shufflenet_v1_g3"])
def shufflenet_v1_g3(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 1× with g = 3 (`scale` gives s×)."""
    return _build("shufflenet_v1_g3", kwargs)


@register_model(**_COMMON, macs=_table1(133e6, _NO_FC.format("1.09M", "133.25")), deviations=_SCALES,
                config=CFGS["shufflenet_v1_g4"])
def shufflenet_v1_g4(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 1× with g = 4 (`scale` gives s×)."""
    return _build("shufflenet_v1_g4", kwargs)


@register_model(**_COMMON, params=_readme(2.4e6, 0.1e6), macs=_table1(137e6, _NO_FC.format("1.54M", "136.83")),
                deviations=_SCALES, config=CFGS["shufflenet_v1_g8"])
def shufflenet_v1_g8(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 1× with g = 8 (`scale` gives s×)."""
    return _build("shufflenet_v1_g8", kwargs)


@register_model(**_COMMON, macs=PaperFigure(13e6, 0.5e6 / 13e6, "Table 2 (≈ 13 MFLOPs)"),
                deviations=("Conv1 keeps 12 channels at 0.25× (not released; see the module docstring)",),
                config=CFGS["shufflenet_v1_g3_x0_25"])
def shufflenet_v1_g3_x0_25(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 0.25× with g = 3."""
    return _build("shufflenet_v1_g3_x0_25", kwargs)


@register_model(**_COMMON, params=_readme(0.7e6, 0.1e6), macs=_readme(38e6, 1e6), deviations=_OFFICIAL,
                config=CFGS["shufflenet_v1_g3_x0_5"])
def shufflenet_v1_g3_x0_5(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 0.5× with g = 3."""
    return _build("shufflenet_v1_g3_x0_5", kwargs)


@register_model(**_COMMON, params=_readme(3.4e6, 0.1e6), macs=_readme(292e6, 1e6), deviations=_OFFICIAL,
                config=CFGS["shufflenet_v1_g3_x1_5"])
def shufflenet_v1_g3_x1_5(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 1.5× with g = 3."""
    return _build("shufflenet_v1_g3_x1_5", kwargs)


@register_model(**_COMMON, params=_readme(5.4e6, 0.1e6), macs=_readme(524e6, 1e6), deviations=_OFFICIAL,
                config=CFGS["shufflenet_v1_g3_x2_0"])
def shufflenet_v1_g3_x2_0(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 2× with g = 3."""
    return _build("shufflenet_v1_g3_x2_0", kwargs)


@register_model(**_COMMON, params=_readme(1.0e6, 0.1e6), macs=_readme(40e6, 1e6), deviations=_OFFICIAL,
                config=CFGS["shufflenet_v1_g8_x0_5"])
def shufflenet_v1_g8_x0_5(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 0.5× with g = 8."""
    return _build("shufflenet_v1_g8_x0_5", kwargs)


@register_model(**_COMMON, params=_readme(4.3e6, 0.1e6), macs=_readme(290e6, 1e6), deviations=_OFFICIAL,
                config=CFGS["shufflenet_v1_g8_x1_5"])
def shufflenet_v1_g8_x1_5(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 1.5× with g = 8."""
    return _build("shufflenet_v1_g8_x1_5", kwargs)


@register_model(**_COMMON, params=_readme(6.5e6, 0.1e6), macs=_readme(522e6, 1e6), deviations=_OFFICIAL,
                config=CFGS["shufflenet_v1_g8_x2_0"])
def shufflenet_v1_g8_x2_0(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet 2× with g = 8."""
    return _build("shufflenet_v1_g8_x2_0", kwargs)
