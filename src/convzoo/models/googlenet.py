"""GoogLeNet (Inception v1): the paper's network, and torchvision's batch-normalised form.

Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke & Rabinovich, "Going Deeper with
Convolutions", arXiv:1409.4842: Table 1 (the modules, output sizes, per-layer params and ops), Fig. 2(b)
(the Inception module with 1×1 dimension reductions), Fig. 3 (the whole network: LRN in the stem, the two
auxiliary classifiers), §5 (auxiliary classifiers: average pool 5×5/3, 1×1 convolution with 128 filters,
FC 1024, dropout 70 %, loss weight 0.3; dropout 40 % before the classifier), §1 (a budget of 1.5 billion
multiply-adds at inference).

``googlenet`` is the paper's network. The paper gives no pooling rounding, padding, LRN constants or
initialisation; they come from BVLC's Caffe reproduction (models/bvlc_googlenet): "same" padding, every
pooling rounds up (ceil mode: Table 1's 56, 28, 14, 7 at 224; rounding down would give 55, 27, 13, 6), the
LRN after pool1 and after the 3×3 conv2 (as Fig. 3 places them), Xavier weights with biases 0.2. The LRN
uses AlexNet's constants (`krizhevsky_lrn`; BVLC's Caffe α = 1e-4 is divided by n, five times weaker).
``googlenet_bn`` is torchvision's ``googlenet`` (a port of TF-slim's weights) and loads its weights.

Deviations from the paper:
- ``googlenet``: global average pooling instead of the 7×7/1 average pool; identical at 224, and the
  network then takes other input sizes.
- ``googlenet_bn`` (torchvision's form): batch norm (ε = 0.001, no conv bias) after every convolution and
  no LRN; a 3×3 kernel in the "#5×5" branch (torchvision's known bug, kept for its weights); a 2×2/2
  max-pool before 5a; dropout 0.2; auxiliary heads with batch norm that pool adaptively to 4×4;
  weights N(0, 0.01).
- Figure gaps (the paper's figures our faithful build cannot reproduce; tests pin both):
  the 1.5 G budget: Table 1's ops column sums to 1.50 G, but its conv1 row (34 M ops, 2.7 K params)
  is not a 7×7×3×64 convolution at 112×112 (118 M, 9.2 K); with it, Table 1's network costs 1.58 G.
  MobileNet's Table 8 quotes GoogLeNet at 1550 M mult-adds (ours: 1583 M, 2.1 % more) and 6.8 M parameters
  (ours: 7.0 M): 6.8 M is Table 1's params column summed (6,798 K) read as thousands, while the column
  counts in units of 1024 weights.
  Table 1's params column also disagrees with its own module widths for 4a, 4c, 4d, 4e, 5a and 5b
  (e.g. 4c: 463 K printed, 497.5 K from its widths; 5a 1072 K vs 1018 K, and 5a's ops 54 M vs 51 M).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from ..base import ZooModel
from ..layers import TF_BATCH_NORM, ClassifierHead, ConvBNAct, krizhevsky_lrn
from ..meta import is_meta
from ..options import check_bool
from ..peers import register_peer_adapter
from ..registry import Paper, PaperFigure, register_model

__all__ = ["AUX_TAPS", "CFGS", "TABLE1", "GoogLeNet", "GoogLeNetCfg", "Inception", "InceptionAux",
           "InceptionRow"]

GOOGLENET = Paper("Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke & Rabinovich", 2014,
                  "Going Deeper with Convolutions", "arXiv:1409.4842 (CVPR 2015)")

ConvLayer = Callable[..., nn.Module]  # (in_chans, out_chans, kernel_size, ...) -> conv [+ bn] + ReLU


@dataclass(frozen=True)
class InceptionRow:
    """One Inception row of Table 1: the filters of each branch (#1×1, #3×3 reduce, #3×3, ...)."""

    c1x1: int
    c3x3_red: int
    c3x3: int
    c5x5_red: int
    c5x5: int
    pool_proj: int

    @property
    def out_chans(self) -> int:
        """The concatenation's width: #1×1 + #3×3 + #5×5 + pool proj."""
        return self.c1x1 + self.c3x3 + self.c5x5 + self.pool_proj


TABLE1: dict[str, InceptionRow] = {
    "inception3a": InceptionRow(c1x1=64, c3x3_red=96, c3x3=128, c5x5_red=16, c5x5=32, pool_proj=32),
    "inception3b": InceptionRow(c1x1=128, c3x3_red=128, c3x3=192, c5x5_red=32, c5x5=96, pool_proj=64),
    "inception4a": InceptionRow(c1x1=192, c3x3_red=96, c3x3=208, c5x5_red=16, c5x5=48, pool_proj=64),
    "inception4b": InceptionRow(c1x1=160, c3x3_red=112, c3x3=224, c5x5_red=24, c5x5=64, pool_proj=64),
    "inception4c": InceptionRow(c1x1=128, c3x3_red=128, c3x3=256, c5x5_red=24, c5x5=64, pool_proj=64),
    "inception4d": InceptionRow(c1x1=112, c3x3_red=144, c3x3=288, c5x5_red=32, c5x5=64, pool_proj=64),
    "inception4e": InceptionRow(c1x1=256, c3x3_red=160, c3x3=320, c5x5_red=32, c5x5=128, pool_proj=128),
    "inception5a": InceptionRow(c1x1=256, c3x3_red=160, c3x3=320, c5x5_red=32, c5x5=128, pool_proj=128),
    "inception5b": InceptionRow(c1x1=384, c3x3_red=192, c3x3=384, c5x5_red=48, c5x5=128, pool_proj=128),
}
POOL_BEFORE = {"inception4a": "pool3", "inception5a": "pool4"}  # Table 1's max pool 3×3/2 rows
AUX_TAPS = ("inception4a", "inception4d")  # §5: the auxiliary classifiers sit on 4a and 4d


@dataclass(frozen=True)
class GoogLeNetCfg:
    """What separates the paper's network from torchvision's (the Inception rows are Table 1's for both)."""

    batch_norm: bool  # BN after every conv, no LRN (torchvision) / LRN in the stem, conv biases (paper)
    k5: int  # kernel of the "#5×5" branch: 5 (paper) or 3 (torchvision's known bug)
    pool4: int  # kernel of the max-pool before 5a: 3 (Table 1) or 2 (torchvision)
    aux_adaptive: bool  # aux heads pool adaptively to 4×4 (torchvision) instead of 5×5/3 (§5)
    dropout: float  # before the classifier: 0.4 (§5) or 0.2 (torchvision)


CFGS: dict[str, GoogLeNetCfg] = {
    "googlenet": GoogLeNetCfg(batch_norm=False, k5=5, pool4=3, aux_adaptive=False, dropout=0.4),
    "googlenet_bn": GoogLeNetCfg(batch_norm=True, k5=3, pool4=2, aux_adaptive=True, dropout=0.2),
}


def _conv_layer(cfg: GoogLeNetCfg) -> ConvLayer:
    """Conv + ReLU with a bias (paper), or conv + BN(ε = 0.001) + ReLU without one (torchvision)."""
    if cfg.batch_norm:
        return partial(ConvBNAct, norm=TF_BATCH_NORM)
    return partial(ConvBNAct, norm=None)


class Inception(nn.Module):
    """Fig. 2(b): 1×1 | 1×1 → 3×3 | 1×1 → 5×5 | 3×3 max-pool → 1×1 projection, concatenated."""

    def __init__(self, in_chans: int, row: InceptionRow, conv: ConvLayer, k5: int = 5) -> None:
        super().__init__()
        self.branch1x1 = conv(in_chans, row.c1x1, 1)
        self.branch3x3 = nn.Sequential(conv(in_chans, row.c3x3_red, 1), conv(row.c3x3_red, row.c3x3, 3))
        self.branch5x5 = nn.Sequential(conv(in_chans, row.c5x5_red, 1), conv(row.c5x5_red, row.c5x5, k5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, padding=1, ceil_mode=True),
                                         conv(in_chans, row.pool_proj, 1))
        self.out_chans = row.out_chans

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)], 1)


class InceptionAux(nn.Sequential):
    """§5 auxiliary classifier: avg-pool 5×5/3 (to 4×4) → 1×1 conv 128 + ReLU → FC 1024 + ReLU → dropout 70 % →
    linear."""

    def __init__(self, in_chans: int, num_classes: int, conv: ConvLayer, adaptive: bool = False) -> None:
        super().__init__(OrderedDict(
            pool=nn.AdaptiveAvgPool2d(4) if adaptive else nn.AvgPool2d(5, 3, ceil_mode=True),
            conv=conv(in_chans, 128, 1),
            flatten=nn.Flatten(1),
            fc1=nn.Linear(128 * 4 * 4, 1024),
            act=nn.ReLU(),
            drop=nn.Dropout(0.7),
            fc2=nn.Linear(1024, num_classes),
        ))


def _stem(cfg: GoogLeNetCfg, in_chans: int, conv: ConvLayer) -> nn.Sequential:
    """Table 1's first rows: conv 7×7/2, max pool 3×3/2, conv 3×3 (after its 1×1 reduce), max pool 3×3/2;
    Fig. 3's LRN after pool1 and after the 3×3 (paper form only)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["conv1"] = conv(in_chans, 64, 7, 2)
    layers["pool1"] = nn.MaxPool2d(3, 2, ceil_mode=True)
    if not cfg.batch_norm:
        layers["norm1"] = krizhevsky_lrn()
    layers["conv2_reduce"] = conv(64, 64, 1)
    layers["conv2"] = conv(64, 192, 3)
    if not cfg.batch_norm:
        layers["norm2"] = krizhevsky_lrn()
    layers["pool2"] = nn.MaxPool2d(3, 2, ceil_mode=True)
    return nn.Sequential(layers)


class GoogLeNet(ZooModel):
    """Stem → Inception 3a–5b with max-pools between the groups → average pool → dropout → linear (Table 1)."""

    def __init__(self, cfg: GoogLeNetCfg, *, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float | None = None, aux_logits: bool = False) -> None:
        """Args:
            cfg: the paper's network or torchvision's (`CFGS`).
            dropout: before the classifier; None takes the configuration's (0.4 paper, 0.2 torchvision).
            aux_logits: build the two auxiliary classifiers (reached through `forward_train` only).
        """
        super().__init__(num_classes=num_classes, in_chans=in_chans,
                         dropout=cfg.dropout if dropout is None else dropout)
        self.cfg = cfg
        self.aux_logits = check_bool("GoogLeNet", "aux_logits", aux_logits,
                                     note="True adds §5's two auxiliary classifiers")
        conv = _conv_layer(cfg)
        self.stem = _stem(cfg, in_chans, conv)
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        widths: dict[str, int] = {}
        chans = 192
        for name, row in TABLE1.items():
            if name in POOL_BEFORE:
                kernel = cfg.pool4 if name == "inception5a" else 3
                stages[POOL_BEFORE[name]] = nn.MaxPool2d(kernel, 2, ceil_mode=True)
            stages[name] = Inception(chans, row, conv, cfg.k5)
            chans = widths[name] = row.out_chans
        self.stages = nn.Sequential(stages)
        # Registered between the stages and the head, where torchvision keeps aux1 and aux2.
        self.aux = nn.ModuleDict({tap: InceptionAux(widths[tap], num_classes, conv, cfg.aux_adaptive)
                                  for tap in AUX_TAPS} if aux_logits else {})
        self.num_features = chans
        self.head = ClassifierHead(chans, num_classes, self.drop_rate)
        if cfg.batch_norm:
            init_torchvision(self)
        else:
            init_bvlc(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 224, 224) -> (N, 1024, 7, 7)
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)

    def forward_train(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and the auxiliary logits [on 4a, on 4d] (empty without `aux_logits`); weight each auxiliary
        loss by ``model_info(name).aux_weight`` (0.3, §5)."""
        return self._forward_with_taps(x, self.aux)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, aux_logits={self.aux_logits}"


def init_bvlc(model: GoogLeNet) -> None:
    """The paper gives no initialisation; BVLC's Caffe reproduction uses Xavier weights (Caffe's: uniform
    ±√(3/fan_in)), biases 0.2, and biases 0 in the classifiers."""
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="linear")  # gain 1: bound √(3/fan_in)
            nn.init.constant_(m.bias, 0.2)
    classifiers = [model.head.fc] + [head.fc2 for head in model.aux.values()]
    for fc in classifiers:
        nn.init.zeros_(fc.bias)


def init_torchvision(model: GoogLeNet) -> None:
    """torchvision's: conv and linear weights N(0, 0.01) truncated at ±2, BN γ = 1, β = 0."""
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_peer_adapter("googlenet", "torchvision")
def _without_absent_aux(model: nn.Module, peer: dict[str, Tensor]) -> dict[str, Tensor]:
    """torchvision builds aux1/aux2 by default; their tensors are dropped when ours has no auxiliary heads."""
    if getattr(model, "aux_logits", False):
        return peer
    return {k: v for k, v in peer.items() if not k.startswith(("aux1.", "aux2."))}


_GAP_BUDGET = ("§1's budget of 1.5 G multiply-adds matches Table 1's ops column (1.50 G summed), whose conv1 row "
               "(34 M) is not a 7×7×3×64 convolution at 112×112 (118 M); Table 1's network costs 1.58 G")
_TV = ("batch norm (ε = 0.001) after every convolution, no LRN", "3×3 kernel in the '#5×5' branch",
       "2×2/2 max-pool before inception5a", "dropout 0.2 instead of 0.4",
       "auxiliary heads pool adaptively to 4×4 and use batch norm", "weights N(0, 0.01) (torchvision's)")


@register_model(paper=GOOGLENET, input_size=(3, 224, 224),
                macs=PaperFigure(1.5e9, 0.05e9 / 1.5e9, "§1 (budget of 1.5 billion multiply-adds)", _GAP_BUDGET),
                deviations=("global average pooling instead of the 7×7/1 average pool (identical at 224)",),
                config=CFGS["googlenet"], aux_weight=0.3)
def googlenet(**kwargs: Any) -> GoogLeNet:
    """GoogLeNet as in Table 1: true 5×5 branches, LRN in the stem, no batch norm."""
    return GoogLeNet(CFGS["googlenet"], **kwargs)


@register_model(paper=GOOGLENET, input_size=(3, 224, 224), deviations=_TV, peers={"torchvision": "googlenet"},
                config=CFGS["googlenet_bn"], aux_weight=0.3)
def googlenet_bn(**kwargs: Any) -> GoogLeNet:
    """torchvision's GoogLeNet: batch norm, 3×3 in the '#5×5' branch; loads torchvision's weights."""
    return GoogLeNet(CFGS["googlenet_bn"], **kwargs)
