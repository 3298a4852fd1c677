"""VGG: configurations A, A-LRN, B, C, D and E.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", arXiv:1409.1556
(ICLR 2015): Table 1 (the six configurations), Table 2 (parameters in millions), §2.1 (3×3 convolutions of
stride 1 padded to keep the resolution, 2×2 max-pools of stride 2, ReLU everywhere, LRN with AlexNet's
constants where used), §3.1 (dropout 0.5 on the first two fully-connected layers; initialisation), §3.2
(dense evaluation: see `convzoo.to_fully_conv`).

Stages ``conv1`` … ``conv5`` are Table 1's groups of convolutions between max-pools; layers inside them are
named as in the authors' released Caffe models (``conv3_1``, ``pool3``, ``fc6``).

Deviations from the paper:
- Initialisation: Glorot & Bengio (2010) uniform weights and zero biases for every configuration. §3.1
  trained A from N(0, 10⁻²) weights and started the deeper nets from A's trained layers; the authors' note in
  §3.1 says Glorot initialisation works without that pre-training, and a constructor cannot pre-train.
- ``vgg*_bn``: batch normalisation after every convolution (torchvision's addition; not in the paper).
- torchvision's VGG (the peer of ``vgg11/13/16/19`` and ``_bn``, same weights) puts an adaptive average pool
  to 7×7 before fc6 so that any input size runs; it is the identity at 224. We keep the paper's fixed
  224×224 input; for larger images use `convzoo.to_fully_conv` (the paper's dense evaluation).
- MobileNet's Table 9 (Howard et al. 2017) quotes 15,300 M multiply-adds for VGG-16; configuration D has
  15.47 G (torchvision agrees), which rounds to 15,500 M: a gap in the quoted figure, pinned in the tests.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor, nn

from ..base import ZooModel
from ..init import init_glorot
from ..layers import krizhevsky_lrn
from ..registry import Paper, PaperFigure, register_model

__all__ = ["CFGS", "TABLE1", "VGG", "VGGCfg"]

VGG_PAPER = Paper("Simonyan & Zisserman", 2014, "Very Deep Convolutional Networks for Large-Scale Image "
                  "Recognition", "arXiv:1409.1556 (ICLR 2015)")

Conv = tuple[int, int]  # Table 1's "conv⟨receptive field⟩-⟨channels⟩": conv3-64 is (3, 64)


@dataclass(frozen=True)
class VGGCfg:
    """One column of Table 1: the convolutions of each stage (a max-pool ends every stage)."""

    column: str  # "A", "A-LRN", "B", "C", "D", "E"
    stages: tuple[tuple[Conv, ...], ...]  # five stages of (receptive field, channels)
    lrn: bool = False  # A-LRN: local response normalisation after the first convolution
    batch_norm: bool = False  # torchvision's *_bn: batch norm after every convolution (not in the paper)


def _column(column: str, *stages: tuple[Conv, ...], lrn: bool = False) -> VGGCfg:
    return VGGCfg(column, tuple(stages), lrn)


# Table 1, column by column; each row of the table is a stage here.
TABLE1: dict[str, VGGCfg] = {
    "A": _column("A", ((3, 64),), ((3, 128),), ((3, 256), (3, 256)), ((3, 512), (3, 512)),
                 ((3, 512), (3, 512))),
    "A-LRN": _column("A-LRN", ((3, 64),), ((3, 128),), ((3, 256), (3, 256)), ((3, 512), (3, 512)),
                     ((3, 512), (3, 512)), lrn=True),
    "B": _column("B", ((3, 64), (3, 64)), ((3, 128), (3, 128)), ((3, 256), (3, 256)), ((3, 512), (3, 512)),
                 ((3, 512), (3, 512))),
    "C": _column("C", ((3, 64), (3, 64)), ((3, 128), (3, 128)), ((3, 256), (3, 256), (1, 256)),
                 ((3, 512), (3, 512), (1, 512)), ((3, 512), (3, 512), (1, 512))),
    "D": _column("D", ((3, 64), (3, 64)), ((3, 128), (3, 128)), ((3, 256),) * 3, ((3, 512),) * 3,
                 ((3, 512),) * 3),
    "E": _column("E", ((3, 64), (3, 64)), ((3, 128), (3, 128)), ((3, 256),) * 4, ((3, 512),) * 4,
                 ((3, 512),) * 4),
}

CFGS: dict[str, VGGCfg] = {
    "vgg11": TABLE1["A"],
    "vgg11_lrn": TABLE1["A-LRN"],
    "vgg13": TABLE1["B"],
    "vgg16_c": TABLE1["C"],
    "vgg16": TABLE1["D"],
    "vgg19": TABLE1["E"],
    "vgg11_bn": replace(TABLE1["A"], batch_norm=True),
    "vgg13_bn": replace(TABLE1["B"], batch_norm=True),
    "vgg16_bn": replace(TABLE1["D"], batch_norm=True),
    "vgg19_bn": replace(TABLE1["E"], batch_norm=True),
}


def _stage(index: int, in_chans: int, convs: tuple[Conv, ...], cfg: VGGCfg) -> nn.Sequential:
    """Stage ``conv{index}``: (conv → [BN] → ReLU) per row, [LRN after the first], then the 2×2 max-pool."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for j, (kernel, chans) in enumerate(convs, start=1):
        layers[f"conv{index}_{j}"] = nn.Conv2d(in_chans, chans, kernel, padding=kernel // 2)  # keeps H×W
        if cfg.batch_norm:
            layers[f"bn{index}_{j}"] = nn.BatchNorm2d(chans)
        layers[f"relu{index}_{j}"] = nn.ReLU()
        if cfg.lrn and index == 1 and j == 1:
            layers[f"norm{index}"] = krizhevsky_lrn()  # §2.1: AlexNet's constants
        in_chans = chans
    layers[f"pool{index}"] = nn.MaxPool2d(2, 2)
    return nn.Sequential(layers)


class VGG(ZooModel):
    """conv1 … conv5 (``features``) → fc6, fc7, fc8 (``head``): one column of Table 1."""

    def __init__(self, cfg: VGGCfg, *, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        chans = in_chans
        for i, convs in enumerate(cfg.stages, start=1):
            stages[f"conv{i}"] = _stage(i, chans, convs, cfg)
            chans = convs[-1][1]
        self.features = nn.Sequential(stages)
        self.num_features = chans
        self.head = nn.Sequential(OrderedDict(  # Table 1's FC-4096, FC-4096, FC-1000 (soft-max in the loss)
            flatten=nn.Flatten(1),
            fc6=nn.Linear(chans * 7 * 7, 4096),  # 224 / 2⁵ = 7
            relu6=nn.ReLU(),
            drop6=nn.Dropout(dropout),
            fc7=nn.Linear(4096, 4096),
            relu7=nn.ReLU(),
            drop7=nn.Dropout(dropout),
            fc8=nn.Linear(4096, num_classes),
        ))
        init_glorot(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 224, 224) -> (N, 512, 7, 7)
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def _table2(millions: int) -> PaperFigure:
    return PaperFigure(millions * 1e6, 0.5e6 / (millions * 1e6), "Table 2 (in millions: ±0.5 M)")


_GLOROT = "Glorot initialisation instead of §3.1's N(0, 10⁻²) for A and A's trained layers for the deeper nets"
_BN = (_GLOROT, "batch normalisation after every convolution (torchvision's addition, not in the paper)")
_VGG = dict(paper=VGG_PAPER, input_size=(3, 224, 224),
            input_hint="the network takes 224×224 crops; convzoo.to_fully_conv(model) runs it densely on larger "
                       "images (§3.2)")
_GAP16 = ("MobileNet's Table 9 quotes 15,300 M; the conv + fc multiply-adds of configuration D are 15.47 G "
          "(torchvision's count agrees), which rounds to 15,500 M")


@register_model(**_VGG, params=_table2(133), deviations=(_GLOROT,), peers={"torchvision": "vgg11"},
                config=CFGS["vgg11"])
def vgg11(**kwargs: Any) -> VGG:
    """VGG-11, configuration A (Table 1)."""
    return VGG(CFGS["vgg11"], **kwargs)


@register_model(**_VGG, params=_table2(133), deviations=(_GLOROT,), config=CFGS["vgg11_lrn"])
def vgg11_lrn(**kwargs: Any) -> VGG:
    """VGG-11 with local response normalisation after the first convolution, configuration A-LRN."""
    return VGG(CFGS["vgg11_lrn"], **kwargs)


@register_model(**_VGG, params=_table2(133), deviations=(_GLOROT,), peers={"torchvision": "vgg13"},
                config=CFGS["vgg13"])
def vgg13(**kwargs: Any) -> VGG:
    """VGG-13, configuration B (Table 1)."""
    return VGG(CFGS["vgg13"], **kwargs)


@register_model(**_VGG, params=_table2(134), deviations=(_GLOROT,), config=CFGS["vgg16_c"])
def vgg16_c(**kwargs: Any) -> VGG:
    """VGG-16 with 1×1 convolutions ending stages 3–5, configuration C (Table 1)."""
    return VGG(CFGS["vgg16_c"], **kwargs)


@register_model(**_VGG, params=_table2(138),
                macs=PaperFigure(15300e6, 50e6 / 15300e6, "MobileNet (Howard et al. 2017, arXiv:1704.04861) "
                                 "Table 9; the VGG paper gives none (\"15300\": three significant figures)", _GAP16),
                deviations=(_GLOROT,), peers={"torchvision": "vgg16"}, config=CFGS["vgg16"])
def vgg16(**kwargs: Any) -> VGG:
    """VGG-16, configuration D (Table 1)."""
    return VGG(CFGS["vgg16"], **kwargs)


@register_model(**_VGG, params=_table2(144), deviations=(_GLOROT,), peers={"torchvision": "vgg19"},
                config=CFGS["vgg19"])
def vgg19(**kwargs: Any) -> VGG:
    """VGG-19, configuration E (Table 1)."""
    return VGG(CFGS["vgg19"], **kwargs)


@register_model(**_VGG, deviations=_BN, peers={"torchvision": "vgg11_bn"}, config=CFGS["vgg11_bn"])
def vgg11_bn(**kwargs: Any) -> VGG:
    """Configuration A with batch normalisation (torchvision's vgg11_bn)."""
    return VGG(CFGS["vgg11_bn"], **kwargs)


@register_model(**_VGG, deviations=_BN, peers={"torchvision": "vgg13_bn"}, config=CFGS["vgg13_bn"])
def vgg13_bn(**kwargs: Any) -> VGG:
    """Configuration B with batch normalisation (torchvision's vgg13_bn)."""
    return VGG(CFGS["vgg13_bn"], **kwargs)


@register_model(**_VGG, deviations=_BN, peers={"torchvision": "vgg16_bn"}, config=CFGS["vgg16_bn"])
def vgg16_bn(**kwargs: Any) -> VGG:
    """Configuration D with batch normalisation (torchvision's vgg16_bn)."""
    return VGG(CFGS["vgg16_bn"], **kwargs)


@register_model(**_VGG, deviations=_BN, peers={"torchvision": "vgg19_bn"}, config=CFGS["vgg19_bn"])
def vgg19_bn(**kwargs: Any) -> VGG:
    """Configuration E with batch normalisation (torchvision's vgg19_bn)."""
    return VGG(CFGS["vgg19_bn"], **kwargs)
