"""Inception-v4.

Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual Connections on
Learning", arXiv:1602.07261: Fig. 9 (the network: stem, 4 × Inception-A, Reduction-A, 7 × Inception-B,
Reduction-B, 3 × Inception-C, average pooling, dropout with keep 0.8, softmax), Fig. 3 (stem), Figs. 4–6
(Inception-A/B/C), Fig. 7 with Table 1 (Reduction-A, k = 192, l = 224, m = 256, n = 384), Fig. 8
(Reduction-B). Convolutions marked "V" in the figures are unpadded, all others 'same'-padded.

The network built here is the one Google released with its weights (TF-slim,
tensorflow/models research/slim/nets/inception_v4.py), which timm's ``inception_v4`` ports; timm's state
dicts load into it (``convzoo.load_peer_weights(model, sd, source="timm")``). The paper gives no parameter or
multiply-add counts; timm's figures are 42,679,816 parameters and 12.254 G multiply-adds at 299, ours too.

Grid arithmetic at 299 (Fig. 9's sizes): 299 → (299 − 3)/2 + 1 = 149 → 147 → 147 → mixed_3a
(147 − 3)/2 + 1 = 73 (64 + 96 = 160 channels) → mixed_4a 73 − 2 = 71 (96 + 96 = 192) → mixed_5a
(71 − 3)/2 + 1 = 35 (192 + 192 = 384) → Inception-A 35×35×(4 · 96 = 384) → Reduction-A (35 − 3)/2 + 1 = 17,
n + m + 384 = 384 + 256 + 384 = 1024 → Inception-B 17×17×(384 + 256 + 256 + 128 = 1024) → Reduction-B
(17 − 3)/2 + 1 = 8, 192 + 320 + 1024 = 1536 → Inception-C 8×8×(256 + 512 + 512 + 256 = 1536).

Deviations from the paper (all of them the TF release's, kept so that its weights load):
- Several 1×n / n×1 pairs come in the other order than the figures draw (tensorflow/models#3313): e.g.
  Inception-B's five-convolution tower is 1×1, 7×1, 1×7, 7×1, 1×7 where Fig. 5 draws 1×1, 1×7, 7×1, 1×7, 7×1.
  Fig. 5's three-convolution tower ends in a second 1×7 as printed; the release (and we) use 7×1
  (tensorflow/models#7041). The order changes neither parameters nor multiply-adds.
- Fig. 3 draws the stem's last 3×3 convolution (192) without a stride; it needs stride 2 to give 71 → 35
  (the release has it; tensorflow/models#7041).

Where the paper says nothing we follow the release:
- branches are concatenated in the release's order (a permutation of channels the weights depend on);
- the release's auxiliary head on Mixed_6h, which Fig. 9 does not have, is left out (timm leaves it out too);
- the average pools in Inception-A/B/C exclude the zero padding from the mean (TF's 'SAME' pooling, kept
  by timm);
- initialisation (`init_tf_slim`) is TF-slim's: convolutions He-scaled truncated normal (σ = √(1.3 · 2 /
  fan_in) cut at 2σ, so the variance is ≈ 2 / fan_in), BN γ = 1, β = 0, the linear layer Glorot-uniform with
  zero bias; timm keeps PyTorch's defaults. The paper states no scheme.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..base import ZooModel
from ..init import trunc_normal_2sigma
from ..layers import ClassifierHead, FilterConcat, tower
from ..layers import inception_conv as conv
from ..meta import is_meta
from ..registry import Paper, register_model

__all__ = ["CFGS", "InceptionA", "InceptionB", "InceptionC", "InceptionV4", "InceptionV4Cfg",
           "ReductionA", "ReductionB", "Stem"]

PAPER = Paper("Szegedy, Ioffe, Vanhoucke & Alemi", 2016,
              "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
              "arXiv:1602.07261 (AAAI 2017)")


@dataclass(frozen=True)
class InceptionV4Cfg:
    """Fig. 9's module counts and Table 1's Reduction-A filter counts (the Inception-v4 row)."""

    num_a: int = 4  # Inception-A modules at 35×35
    num_b: int = 7  # Inception-B modules at 17×17
    num_c: int = 3  # Inception-C modules at 8×8
    k: int = 192  # Reduction-A: 1×1 of the double-3×3 tower
    l: int = 224  # noqa: E741  (the paper's symbol) Reduction-A: its first 3×3
    m: int = 256  # Reduction-A: its stride-2 3×3
    n: int = 384  # Reduction-A: the lone stride-2 3×3


CFGS: dict[str, InceptionV4Cfg] = {"inception_v4": InceptionV4Cfg()}

def avg_pool() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)  # TF's 'SAME' average pooling


class Stem(nn.Sequential):
    """The stem (Fig. 3): three 3×3 convolutions, then three filter concats; 299×299×3 → 35×35×384."""

    def __init__(self, in_chans: int) -> None:
        super().__init__(OrderedDict(  # the release's layer names
            conv_1a=conv(in_chans, 32, 3, 2),  # 3×3/2 V: 299 → 149
            conv_2a=conv(32, 32, 3, padding=0),  # 3×3 V: → 147
            conv_2b=conv(32, 64, 3),  # 3×3: 147
            mixed_3a=FilterConcat(branch_pool=nn.MaxPool2d(3, 2), branch_3x3=conv(64, 96, 3, 2)),  # → 73
            mixed_4a=FilterConcat(  # → 71
                branch_3x3=tower(160, (64, 1), (96, 3, 1, 0)),
                branch_7x7=tower(160, (64, 1), (64, (1, 7)), (64, (7, 1)), (96, 3, 1, 0)),
            ),
            mixed_5a=FilterConcat(branch_3x3=conv(192, 192, 3, 2), branch_pool=nn.MaxPool2d(3, 2)),  # → 35
        ))
        self.out_chans = 192 + 192


class InceptionA(FilterConcat):
    """Inception-A, 35×35 (Fig. 4): 1×1 | 1×1 → 3×3 | 1×1 → 3×3 → 3×3 | avg-pool → 1×1; 384 → 384."""

    def __init__(self, cin: int) -> None:
        super().__init__(
            branch_1x1=conv(cin, 96, 1),
            branch_3x3=tower(cin, (64, 1), (96, 3)),
            branch_3x3dbl=tower(cin, (64, 1), (96, 3), (96, 3)),
            branch_pool=nn.Sequential(avg_pool(), conv(cin, 96, 1)),
        )
        self.out_chans = 4 * 96


class ReductionA(FilterConcat):
    """Reduction-A, 35×35 → 17×17 (Fig. 7): 3×3/2 (n) | 1×1 (k) → 3×3 (l) → 3×3/2 (m) | max-pool/2."""

    def __init__(self, cin: int, cfg: InceptionV4Cfg) -> None:
        super().__init__(
            branch_3x3=conv(cin, cfg.n, 3, 2),
            branch_3x3dbl=tower(cin, (cfg.k, 1), (cfg.l, 3), (cfg.m, 3, 2)),
            branch_pool=nn.MaxPool2d(3, 2),
        )
        self.out_chans = cfg.n + cfg.m + cin


class InceptionB(FilterConcat):
    """Inception-B, 17×17 (Fig. 5, release order): 1×1 | 1×1 → 1×7 → 7×1 | 1×1 → 7×1 → 1×7 → 7×1 → 1×7 |
    avg-pool → 1×1; 1024 → 1024."""

    def __init__(self, cin: int) -> None:
        super().__init__(
            branch_1x1=conv(cin, 384, 1),
            branch_7x7=tower(cin, (192, 1), (224, (1, 7)), (256, (7, 1))),
            branch_7x7dbl=tower(cin, (192, 1), (192, (7, 1)), (224, (1, 7)), (224, (7, 1)), (256, (1, 7))),
            branch_pool=nn.Sequential(avg_pool(), conv(cin, 128, 1)),
        )
        self.out_chans = 384 + 256 + 256 + 128


class ReductionB(FilterConcat):
    """Reduction-B, 17×17 → 8×8 (Fig. 8): 1×1 → 3×3/2 | 1×1 → 1×7 → 7×1 → 3×3/2 | max-pool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__(
            branch_3x3=tower(cin, (192, 1), (192, 3, 2)),
            branch_7x7x3=tower(cin, (256, 1), (256, (1, 7)), (320, (7, 1)), (320, 3, 2)),
            branch_pool=nn.MaxPool2d(3, 2),
        )
        self.out_chans = 192 + 320 + cin


def _split_1x3_3x1(cin: int) -> FilterConcat:
    """A 1×3 and a 3×1 convolution side by side on the same input (256 each), as in Fig. 6."""
    return FilterConcat(conv_1x3=conv(cin, 256, (1, 3)), conv_3x1=conv(cin, 256, (3, 1)))


class InceptionC(FilterConcat):
    """Inception-C, 8×8 (Fig. 6, release order): 1×1 | 1×1 → (1×3, 3×1) | 1×1 → 3×1 → 1×3 → (1×3, 3×1) |
    avg-pool → 1×1; 1536 → 1536."""

    def __init__(self, cin: int) -> None:
        super().__init__(
            branch_1x1=conv(cin, 256, 1),
            branch_3x3=nn.Sequential(conv(cin, 384, 1), _split_1x3_3x1(384)),
            branch_3x3dbl=nn.Sequential(conv(cin, 384, 1), conv(384, 448, (3, 1)), conv(448, 512, (1, 3)),
                                        _split_1x3_3x1(512)),
            branch_pool=nn.Sequential(avg_pool(), conv(cin, 256, 1)),
        )
        self.out_chans = 256 + 2 * 256 + 2 * 256 + 256


def _stages(cfg: InceptionV4Cfg, chans: int) -> OrderedDict[str, nn.Module]:
    """inception_a1 … inception_c3 in Fig. 9's order, channel counts chained from block to block."""
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(cfg.num_a):
        blocks[f"inception_a{i + 1}"] = InceptionA(chans)
    blocks["reduction_a"] = block = ReductionA(chans, cfg)
    chans = block.out_chans
    for i in range(cfg.num_b):
        blocks[f"inception_b{i + 1}"] = InceptionB(chans)
    blocks["reduction_b"] = block = ReductionB(chans)
    chans = block.out_chans
    for i in range(cfg.num_c):
        blocks[f"inception_c{i + 1}"] = InceptionC(chans)
    return blocks


class InceptionV4(ZooModel):
    """Stem → Inception-A/B/C modules with Reduction-A/B between → average pool → dropout → linear (Fig. 9)."""

    def __init__(self, cfg: InceptionV4Cfg = CFGS["inception_v4"], *, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.2) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        self.stem = Stem(in_chans)
        self.stages = nn.Sequential(_stages(cfg, self.stem.out_chans))
        self.num_features = 1536
        self.head = ClassifierHead(self.num_features, num_classes, dropout)  # dropout: Fig. 9's keep 0.8
        init_tf_slim(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 299, 299) -> (N, 1536, 8, 8)
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def init_tf_slim(model: nn.Module) -> None:
    """TF-slim's Inception initialisation (inception_utils.inception_arg_scope; see Deviations)."""
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            std = math.sqrt(1.3 * 2.0 / m.weight[0].numel())  # variance_scaling_initializer(2.0, 'FAN_IN')
            trunc_normal_2sigma(m.weight, std)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


_DEVIATIONS = (
    "several 1×n/n×1 pairs in the release's order, not the figures' (e.g. Inception-B's 7×1, 1×7, 7×1, 1×7 tower)",
    "Fig. 3's last stem convolution (192) has stride 2, as 71 → 35 requires and the release has",
)


@register_model(paper=PAPER, input_size=(3, 299, 299), deviations=_DEVIATIONS, peers={"timm": "inception_v4"},
                config=CFGS["inception_v4"])
def inception_v4(**kwargs: Any) -> InceptionV4:
    """Inception-v4 (Fig. 9) as Google released it (TF-slim), the form timm ports."""
    return InceptionV4(CFGS["inception_v4"], **kwargs)
