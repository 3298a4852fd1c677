"""Xception.

Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", arXiv:1610.02357 (CVPR 2017):
Fig. 5 (entry flow, middle flow repeated eight times, exit flow; batch norm after every convolution and
separable convolution; depth multiplier 1), §3 (36 convolution layers in 14 modules, linear residual
connections around all but the first and the last), §4.3 (ImageNet: dropout 0.5 before the logistic
regression), §4.7 (no non-linearity between the depthwise and the pointwise convolution), Table 3
(22,855,952 parameters).

Grid sizes at 299: 299 → 149 (3×3/2 "valid") → 147 (3×3 "valid") → 74 → 37 → 19 (the entry-flow modules'
3×3/2 max-pools, padded by 1) → 19 (middle flow) → 10 (the exit-flow module's max-pool).

Deviations from the paper:
- The stride-2 max-pools pad one pixel on every side (PyTorch, and timm's port of the Keras weights); the
  Keras reference pads "same", which on the even 74×74 map pads only bottom and right. Sizes are equal;
  the pooling windows of entry-flow module 2 sit one pixel apart.
- Batch norm ε = 1e-5 (PyTorch's default, timm ``legacy_xception``'s); the paper gives none, Keras uses 1e-3.
- The paper states no initialisation; `init_glorot` uses the Keras reference's defaults (see there).

Not deviations: the logistic regression is a linear layer (the loss applies the softmax), and ``dropout``
(default 0.5, §4.3's ImageNet setting) drops the pooled features before it as an ``nn.Dropout`` module.
timm's ``legacy_xception`` computes its dropout and discards the result, so only eval-mode outputs compare.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..base import ZooModel
from ..init import init_glorot
from ..layers import ClassifierHead, ConvBNAct
from ..registry import Paper, PaperFigure, register_model

__all__ = ["CFGS", "EntryExitBlock", "MiddleFlowBlock", "SeparableConv2d", "Xception", "XceptionCfg"]

PAPER = Paper("Chollet", 2016, "Xception: Deep Learning with Depthwise Separable Convolutions",
              "arXiv:1610.02357 (CVPR 2017)")


@dataclass(frozen=True)
class XceptionCfg:
    """Fig. 5 as data: the filters of each convolution, flow by flow."""

    stem: tuple[int, int] = (32, 64)  # Conv 3×3/2, Conv 3×3 (module 1, no residual)
    entry_flow: tuple[int, ...] = (128, 256, 728)  # one module each: 2 SeparableConv + max-pool, 1×1/2 shortcut
    middle_flow: int = 728  # filters of the middle flow's SeparableConvs
    middle_repeats: int = 8  # "repeated eight times"
    middle_depth: int = 3  # SeparableConvs per middle-flow module
    exit_flow: tuple[int, int] = (728, 1024)  # the exit module: 2 SeparableConv + max-pool, 1×1/2 shortcut
    exit_convs: tuple[int, int] = (1536, 2048)  # module 14 (no residual): SeparableConv → ReLU, twice


CFGS: dict[str, XceptionCfg] = {"xception": XceptionCfg()}


class SeparableConv2d(nn.Sequential):
    """Depthwise 3×3 (one filter per channel) then pointwise 1×1, nothing between (§4.7); no bias (BN follows)."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__(OrderedDict(
            depthwise=nn.Conv2d(in_chans, in_chans, 3, padding=1, groups=in_chans, bias=False),
            pointwise=nn.Conv2d(in_chans, out_chans, 1, bias=False),
        ))


def _relu_sep_bn(in_chans: int, out_chans: int, relu: bool = True) -> nn.Sequential:
    """Fig. 5's "ReLU, SeparableConv" pair, with the batch norm the caption adds after the convolution."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if relu:
        layers["act"] = nn.ReLU()
    layers["conv"] = SeparableConv2d(in_chans, out_chans)
    layers["bn"] = nn.BatchNorm2d(out_chans)
    return nn.Sequential(layers)


class EntryExitBlock(nn.Module):
    """Entry/exit-flow module (Fig. 5): [ReLU →] SepConv → ReLU → SepConv → max-pool 3×3/2, plus a 1×1/2 conv.

    The shortcut is registered first, as in timm's ``legacy_xception``, so that state dicts list the
    same tensors in the same order.
    """

    def __init__(self, in_chans: int, widths: tuple[int, int], first_relu: bool = True) -> None:
        super().__init__()
        self.shortcut = ConvBNAct(in_chans, widths[1], 1, stride=2, act=None)
        self.residual = nn.Sequential(
            _relu_sep_bn(in_chans, widths[0], relu=first_relu),
            _relu_sep_bn(widths[0], widths[1]),
            nn.MaxPool2d(3, 2, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class MiddleFlowBlock(nn.Module):
    """Middle-flow module (Fig. 5): (ReLU → SepConv) × 3 plus the identity."""

    def __init__(self, chans: int, depth: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(*(_relu_sep_bn(chans, chans) for _ in range(depth)))

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + x


def _exit_convs(in_chans: int, widths: tuple[int, int]) -> nn.Sequential:
    """Module 14 (Fig. 5): SepConv → BN → ReLU, twice; no residual connection."""
    layers = []
    for width in widths:
        layers += [SeparableConv2d(in_chans, width), nn.BatchNorm2d(width), nn.ReLU()]
        in_chans = width
    return nn.Sequential(*layers)


class Xception(ZooModel):
    """Entry flow → middle flow (×8) → exit flow → global average pool → dropout → logistic regression (Fig. 5)."""

    def __init__(self, cfg: XceptionCfg, *, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        c1, c2 = cfg.stem
        self.stem = nn.Sequential(OrderedDict(
            conv1=ConvBNAct(in_chans, c1, 3, stride=2, padding=0),  # 299 → 149
            conv2=ConvBNAct(c1, c2, 3, padding=0),  # 149 → 147
        ))
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        chans = c2
        for i, width in enumerate(cfg.entry_flow, 1):
            # the stem ends in a ReLU, so the first module starts with its SeparableConv (Fig. 5)
            stages[f"entry_flow_block{i}"] = EntryExitBlock(chans, (width, width), first_relu=i > 1)
            chans = width
        stages["middle_flow"] = nn.Sequential(
            *(MiddleFlowBlock(cfg.middle_flow, cfg.middle_depth) for _ in range(cfg.middle_repeats)))
        stages["exit_flow_block"] = EntryExitBlock(cfg.middle_flow, cfg.exit_flow)
        stages["exit_flow_convs"] = _exit_convs(cfg.exit_flow[1], cfg.exit_convs)
        self.stages = nn.Sequential(stages)
        self.num_features = cfg.exit_convs[1]
        self.head = ClassifierHead(self.num_features, num_classes, dropout)
        init_glorot(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 299, 299) -> (N, 2048, 10, 10)
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


@register_model(
    paper=PAPER, input_size=(3, 299, 299),
    params=PaperFigure(22_855_952, 0, "Table 3"),
    deviations=("stride-2 max-pools pad 1 on every side (Keras 'same' pads bottom/right only on even maps)",
                "batch norm ε = 1e-5 (PyTorch/timm); the paper gives none",
                "Glorot-uniform initialisation (the Keras reference's default); the paper gives none"),
    peers={"timm": "legacy_xception"},
    config=CFGS["xception"],
)
def xception(**kwargs: Any) -> Xception:
    """Xception (Fig. 5): depthwise separable convolutions with residual connections."""
    return Xception(CFGS["xception"], **kwargs)
