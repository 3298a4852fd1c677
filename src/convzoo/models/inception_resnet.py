"""Inception-ResNet v1 and v2.

Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual Connections on
Learning", arXiv:1602.07261: Fig. 15 (the schema of both networks: stem, 5 × A, Reduction-A, 10 × B,
Reduction-B, 5 × C, average pool, dropout keep 0.8), v1's blocks in Figs. 14, 10, 7, 11, 12, 13, v2's in
Figs. 3, 16, 7, 17, 18, 19, Table 1 (Reduction-A's k, l, m, n), §3.2 (batch norm on the convolutions only,
not on the summations), §3.3 and Fig. 20 (residuals scaled by 0.1–0.3 before the addition).

``inception_resnet_v1`` follows the figures; no library ships it. The paper leaves open, and we decide:
- the residual scaling factors (§3.3 gives only "between 0.1 and 0.3"): 0.17 / 0.10 / 0.20 for A / B / C,
  the factors of the authors' TF-slim release (its v2) and of FaceNet's v1;
- the 1×1 filter expansion ("Linear" in Figs. 10, 11, 13) carries a bias and no batch norm: its output is
  what is summed, and §3.2 keeps batch norm off the summations (TF-slim does the same);
- every block, the last C block included, ends in the ReLU the figures draw after the addition;
- Reduction-A concatenates (n, k→l→m, max-pool) and Reduction-B (its three towers, max-pool), left to right
  as the figures draw the towers (TF-slim's order; the order of a concatenation changes no figure);
- batch norm ε = 0.001 (TF-slim's; the paper gives none); the classifier is a linear layer (Fig. 15's softmax
  is applied by the loss).

``inception_resnet_v2`` is TF-slim's network (timm ``inception_resnet_v2``, weight-compatible), not the
paper's figures, which do not fit together:
- Fig. 15's caption gives v1's tensor shapes (35×35×256, 17×17×896, 8×8×1792) for both networks, yet v2's
  stem (Fig. 3) ends at 35×35×384;
- Reduction-A (Fig. 7 with Table 1's k=256, l=256, m=384, n=384) outputs 384 + 384 + 384 = 1152 channels,
  but Fig. 17's B block expands to 1154, so the residual addition cannot be formed;
- Reduction-B (Fig. 18) adds 384 + 288 + 320 = 992, giving 2144 (or 2146 from 1154), but Fig. 19's C block
  expands to 2048: again no addition is possible;
- Fig. 18's caption says it serves "the wider Inception-ResNet-v1" where v2 is meant (Fig. 15 lists it for v2).

Deviations from the paper:
- v2 (TF-slim): stem = Fig. 14's layers up to 71×71×192, a max-pool, and an Inception-v3-style block
  ("Mixed_5b": 96 | 48→5×5 64 | 64→96→96 | avg-pool→64) giving 35×35×320 instead of Fig. 3's 384;
  residual widths 320 / 1088 / 2080 instead of 384 / 1154 / 2048; branch widths as Figs. 16, 17, 19 and
  Table 1; 10 / 20 / 10 blocks instead of Fig. 15's 5 / 10 / 5; scales 0.17 / 0.10 / 0.20, except the last
  C block (scale 1, no ReLU); a 1×1 convolution to 1536 channels before the pool, which no figure has.
- v1: none beyond the choices listed above.
- Both: the paper states no initialisation; `init_glorot` uses TF-slim's defaults (see there).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..base import ZooModel
from ..init import init_glorot
from ..layers import TF_BATCH_NORM, ClassifierHead, ConvBNAct
from ..registry import Paper, register_model

__all__ = ["CFGS", "InceptionResNet", "InceptionResNetA", "InceptionResNetB", "InceptionResNetC",
           "InceptionResNetCfg", "ReductionA", "ReductionB"]

PAPER = Paper("Szegedy, Ioffe, Vanhoucke & Alemi", 2016,
              "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
              "arXiv:1602.07261 (AAAI 2017)")

Towers = tuple[tuple[int, ...], ...]  # the output widths of each tower's convolutions, first to last


@dataclass(frozen=True)
class RedA:
    """Table 1: the four filter-bank sizes of Fig. 7's Reduction-A."""

    k: int
    l: int  # noqa: E741  (Table 1's symbol)
    m: int
    n: int


@dataclass(frozen=True)
class InceptionResNetCfg:
    """One network of Fig. 15: its stem, its blocks' tower widths, repeats and residual scales."""

    stem: Literal["fig14", "tf_slim"]  # Fig. 14 (35×35×256), or TF-slim's stem ending in Mixed_5b (35×35×320)
    block_a: Towers  # 35×35 block (Fig. 10 / 16): 1×1 | 1×1 → 3×3 | 1×1 → 3×3 → 3×3
    reduction_a: RedA  # Fig. 7, Table 1
    block_b: Towers  # 17×17 block (Fig. 11 / 17): 1×1 | 1×1 → 1×7 → 7×1
    reduction_b: Towers  # Fig. 12 / 18: three 1×1-reduced towers ending in a 3×3/2 "V", plus a max-pool
    block_c: Towers  # 8×8 block (Fig. 13 / 19): 1×1 | 1×1 → 1×3 → 3×1
    repeats: tuple[int, int, int]  # A, B, C blocks (Fig. 15: 5, 10, 5)
    scales: tuple[float, float, float]  # residual scaling of A, B, C (§3.3)
    last_c: tuple[float, bool] | None = None  # TF-slim: the last C block's (scale, ReLU); None: like the others
    final_conv: int | None = None  # TF-slim's 1×1 convolution before the pool (1536); none in the paper


CFGS: dict[str, InceptionResNetCfg] = {
    "inception_resnet_v1": InceptionResNetCfg(
        stem="fig14", block_a=((32,), (32, 32), (32, 32, 32)), reduction_a=RedA(k=192, l=192, m=256, n=384),
        block_b=((128,), (128, 128, 128)), reduction_b=((256, 384), (256, 256), (256, 256, 256)),
        block_c=((192,), (192, 192, 192)), repeats=(5, 10, 5), scales=(0.17, 0.10, 0.20)),
    "inception_resnet_v2": InceptionResNetCfg(
        stem="tf_slim", block_a=((32,), (32, 32), (32, 48, 64)), reduction_a=RedA(k=256, l=256, m=384, n=384),
        block_b=((192,), (128, 160, 192)), reduction_b=((256, 384), (256, 288), (256, 288, 320)),
        block_c=((192,), (192, 224, 256)), repeats=(10, 20, 10), scales=(0.17, 0.10, 0.20),
        last_c=(1.0, False), final_conv=1536),
}

def _conv(c_in: int, c_out: int, kernel: int | tuple[int, int], stride: int = 1, valid: bool = False) -> ConvBNAct:
    """Convolution → BN → ReLU; `valid` is the figures' "V" (no padding), otherwise same-padded (§3.1)."""
    return ConvBNAct(c_in, c_out, kernel, stride, padding=0 if valid else None, norm=TF_BATCH_NORM)


def _tower(c_in: int, widths: tuple[int, ...], kernels: tuple[int | tuple[int, int], ...],
           reduce: bool = False) -> nn.Sequential:
    """Convolutions of `widths` with `kernels`; with `reduce`, the last is a 3×3/2 "V" (the grid reductions)."""
    layers = []
    for i, width in enumerate(widths):
        last = reduce and i == len(widths) - 1
        layers.append(_conv(c_in, width, 3 if last else kernels[i], 2 if last else 1, valid=last))
        c_in = width
    return nn.Sequential(*layers)


class _ResidualInception(nn.Module):
    """Fig. 20: x + scale · expand(concat(towers(x))), then ReLU; `expand` is the linear 1×1 filter expansion."""

    kernels: tuple[int | tuple[int, int], ...] = ()  # the kernel of each tower's 1st, 2nd, 3rd convolution

    def __init__(self, chans: int, towers: Towers, scale: float, relu: bool = True) -> None:
        super().__init__()
        self.towers = nn.ModuleList(_tower(chans, widths, self.kernels) for widths in towers)
        self.expand = nn.Conv2d(sum(w[-1] for w in towers), chans, 1)  # bias, no BN (§3.2)
        self.scale = scale
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        residual = self.expand(torch.cat([tower(x) for tower in self.towers], 1))
        return self.act(x + self.scale * residual)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class InceptionResNetA(_ResidualInception):
    """35×35 block (Fig. 10 for v1, Fig. 16 for v2)."""

    kernels = (1, 3, 3)


class InceptionResNetB(_ResidualInception):
    """17×17 block (Fig. 11 for v1, Fig. 17 for v2)."""

    kernels = (1, (1, 7), (7, 1))


class InceptionResNetC(_ResidualInception):
    """8×8 block (Fig. 13 for v1, Fig. 19 for v2)."""

    kernels = (1, (1, 3), (3, 1))


class _GridReduction(nn.Module):
    """Towers ending in a 3×3/2 "V" convolution, concatenated with a 3×3/2 max-pool of the input."""

    def __init__(self, c_in: int, towers: Towers) -> None:
        super().__init__()
        self.towers = nn.ModuleList(_tower(c_in, widths, (1, 3, 3), reduce=True) for widths in towers)
        self.pool = nn.MaxPool2d(3, 2)
        self.out_chans = c_in + sum(w[-1] for w in towers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([*(tower(x) for tower in self.towers), self.pool(x)], 1)


class ReductionA(_GridReduction):
    """Fig. 7, 35×35 → 17×17: a 3×3/2 of n filters | 1×1 k → 3×3 l → 3×3/2 m | max-pool (Table 1)."""

    def __init__(self, c_in: int, cfg: RedA) -> None:
        super().__init__(c_in, ((cfg.n,), (cfg.k, cfg.l, cfg.m)))


class ReductionB(_GridReduction):
    """17×17 → 8×8 (Fig. 12 for v1, Fig. 18 for v2)."""


class Mixed5b(nn.Module):
    """TF-slim's last stem block of v2 (an Inception-v3 35×35 block): 96 | 48→5×5 64 | 64→96→96 | pool→64."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch1x1 = _conv(c_in, 96, 1)
        self.branch5x5 = nn.Sequential(_conv(c_in, 48, 1), _conv(48, 64, 5))
        self.branch3x3dbl = nn.Sequential(_conv(c_in, 64, 1), _conv(64, 96, 3), _conv(96, 96, 3))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), _conv(c_in, 64, 1))
        self.out_chans = 96 + 64 + 96 + 64

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1x1, self.branch5x5, self.branch3x3dbl, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], 1)


def _stem(kind: str, in_chans: int) -> nn.Sequential:
    """Fig. 14 (v1), or its first six layers + max-pool + Mixed_5b (TF-slim's v2); 299 → 35 either way."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv2d_1a=_conv(in_chans, 32, 3, 2, valid=True),  # 299 → (299 − 3)/2 + 1 = 149
        conv2d_2a=_conv(32, 32, 3, valid=True),  # 147
        conv2d_2b=_conv(32, 64, 3),  # 147
        maxpool_3a=nn.MaxPool2d(3, 2),  # 73
        conv2d_3b=_conv(64, 80, 1),  # 73
        conv2d_4a=_conv(80, 192, 3, valid=True),  # 71
    )
    if kind == "fig14":
        layers["conv2d_4b"] = _conv(192, 256, 3, 2, valid=True)  # 35
    else:
        layers["maxpool_5a"] = nn.MaxPool2d(3, 2)  # 35
        layers["mixed_5b"] = Mixed5b(192)
    return nn.Sequential(layers)


def _blocks(block: type[_ResidualInception], chans: int, towers: Towers, repeats: int, scale: float,
            last: tuple[float, bool] | None = None) -> nn.Sequential:
    """`repeats` identical residual blocks; `last` overrides the final block's (scale, ReLU) (TF-slim)."""
    scales_relus = [(scale, True)] * repeats
    if last is not None:
        scales_relus[-1] = last
    return nn.Sequential(*(block(chans, towers, s, relu) for s, relu in scales_relus))


class InceptionResNet(ZooModel):
    """Stem → A blocks → Reduction-A → B blocks → Reduction-B → C blocks → pool → dropout → fc (Fig. 15)."""

    def __init__(self, cfg: InceptionResNetCfg, *, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.2) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        self.stem = _stem(cfg.stem, in_chans)
        chans = self.stem[-1].out_chans  # 256 (Fig. 14) or 320 (Mixed_5b)
        reduction_a = ReductionA(chans, cfg.reduction_a)
        reduction_b = ReductionB(reduction_a.out_chans, cfg.reduction_b)
        stages: OrderedDict[str, nn.Module] = OrderedDict(
            inception_resnet_a=_blocks(InceptionResNetA, chans, cfg.block_a, cfg.repeats[0], cfg.scales[0]),
            reduction_a=reduction_a,
            inception_resnet_b=_blocks(InceptionResNetB, reduction_a.out_chans, cfg.block_b, cfg.repeats[1],
                                       cfg.scales[1]),
            reduction_b=reduction_b,
            inception_resnet_c=_blocks(InceptionResNetC, reduction_b.out_chans, cfg.block_c, cfg.repeats[2],
                                       cfg.scales[2], cfg.last_c),
        )
        self.num_features = reduction_b.out_chans
        if cfg.final_conv is not None:
            stages["conv2d_7b"] = _conv(self.num_features, cfg.final_conv, 1)
            self.num_features = cfg.final_conv
        self.stages = nn.Sequential(stages)
        self.head = ClassifierHead(self.num_features, num_classes, dropout)
        init_glorot(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 299, 299) -> (N, 1792 | 1536, 8, 8)
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


_V1_CHOICES = (
    "residual scales 0.17/0.10/0.20 (A/B/C): §3.3 gives only 'between 0.1 and 0.3'; TF-slim's and FaceNet's",
    "the 1×1 filter expansion has a bias and no batch norm (§3.2: no BN on the summations)",
    "batch norm ε = 0.001 (TF-slim); the paper gives none",
)
_V2_DEVIATIONS = (
    "TF-slim's network, not the paper's figures (which are inconsistent: 1152 channels meet Fig. 17's 1154)",
    "stem ends in TF-slim's Mixed_5b at 35×35×320, not Fig. 3's 35×35×384",
    "residual widths 320/1088/2080 instead of 384/1154/2048; 10/20/10 blocks instead of 5/10/5",
    "the last C block has scale 1 and no ReLU; a 1×1 convolution to 1536 channels precedes the pool",
)


@register_model(paper=PAPER, input_size=(3, 299, 299), deviations=_V1_CHOICES, config=CFGS["inception_resnet_v1"])
def inception_resnet_v1(**kwargs: Any) -> InceptionResNet:
    """Inception-ResNet-v1 as the paper's figures draw it (Figs. 14, 10, 7, 11, 12, 13, 15)."""
    return InceptionResNet(CFGS["inception_resnet_v1"], **kwargs)


@register_model(paper=PAPER, input_size=(3, 299, 299), deviations=_V2_DEVIATIONS,
                peers={"timm": "inception_resnet_v2"}, config=CFGS["inception_resnet_v2"])
def inception_resnet_v2(**kwargs: Any) -> InceptionResNet:
    """Inception-ResNet-v2 as TF-slim released it (timm's inception_resnet_v2)."""
    return InceptionResNet(CFGS["inception_resnet_v2"], **kwargs)
