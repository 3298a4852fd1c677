"""Inception v3.

Szegedy, Vanhoucke, Ioffe, Shlens & Wojna, "Rethinking the Inception Architecture for Computer Vision",
arXiv:1512.00567: Table 1 (the network), Fig. 5 (35×35 modules: the 5×5 convolution becomes two 3×3),
Fig. 6 (17×17 modules: n×n becomes 1×n then n×1, n = 7), Fig. 7 (8×8 modules with expanded filter banks),
Fig. 10 (grid reduction: stride-2 convolutions beside a stride-2 pool), Fig. 8 and §4/§7 (the auxiliary
classifier on the last 17×17 grid, batch-normalised: "BN-auxiliary"), §8 (training).

The network built here is the one Google released with its weights (TF-slim,
tensorflow/models research/slim/nets/inception_v3.py), which torchvision's and timm's ``inception_v3``
port module for module; their state dicts load into it (``convzoo.load_peer_weights``). Grid sizes at 299
(every stride-2 layer and every stem layer but conv_2b is unpadded): 299 → (299 − 3)/2 + 1 = 149 → 147 →
147 → pool (147 − 3)/2 + 1 = 73 → 73 → 71 → pool (71 − 3)/2 + 1 = 35 → mixed_6a (35 − 3)/2 + 1 = 17 →
mixed_7a (17 − 3)/2 + 1 = 8.

Deviations from the paper (all of them the TF release's, kept so that its weights load):
- Stem: Table 1 ends the stem with conv 3×3/1 (80), conv 3×3/2 (192), conv 3×3/1 (288); the release has
  conv 1×1 (80), conv 3×3 (192) and a 3×3/2 max-pool, so the first 35×35 module sees 192 channels, not 288
  (smichalowski/google_inception_v3_for_caffe#8 noticed the same).
- Module counts: Table 1 lists 3 Fig. 5, 5 Fig. 6 and 2 Fig. 7 modules; the release has mixed_5b–5d (Fig. 5),
  the mixed_6a grid reduction, mixed_6b–6e (4 × Fig. 6), the mixed_7a grid reduction and mixed_7b–7c
  (Fig. 7). The widths per module are the release's; the paper prints none.
- Fig. 5 modules keep a 1×1 → 5×5 branch (48 → 64) where the figure has 1×1 → 3×3.
- The auxiliary head is the release's: 5×5/3 average pool → 1×1 conv (128) → 5×5 conv (768, the fully
  connected layer, batch-normalised) → linear. Its 5×5 convolution needs the 17×17 grid, so a network built
  with ``aux_logits=True`` trains only at inputs of at least 299×299 (TF-slim shrinks the kernel instead).
- The average pools in the modules count the zero padding at the border (torchvision's
  ``F.avg_pool2d`` default); TF's 'SAME' pooling excludes it (pytorch/pytorch#8644). We follow torchvision,
  whose outputs ours equal; timm's port does the same.
- ``dropout`` defaults to 0.2: the paper states no rate; TF-slim keeps 0.8 (torchvision defaults to 0.5).
- Initialisation (`init_trunc_normal`) is TF-slim's original one as torchvision ports it: convolution and
  linear weights N(0, 0.1²) truncated at 2σ, the auxiliary head's 5×5 convolution 0.01 and its linear layer
  0.001, biases 0, BN γ = 1, β = 0. (torchvision truncates at ±2 absolute, i.e. 20σ: effectively untruncated.)

Figures: 23,834,568 parameters (27,161,264 with the auxiliary head, which is discarded at inference) and
5.713 G multiply-adds at 299, torchvision's own figures. The paper's abstract gives "a computational cost of
5 billion multiply-adds" and "less than 25 million parameters", Table 3 4.8 Bn ops; the parameter bound
holds for the inference network; neither cost can be reproduced from the release (see the gaps below).

Training (§7–§8, for the recipe): RMSProp with decay 0.9 and ε = 1.0, learning rate 0.045 decayed by 0.94
every 2 epochs, gradient clipping at 2.0, label smoothing ε = 0.1; the auxiliary loss weighs 0.4 (the
paper states no weight: TF-slim's train_image_classifier.py uses ``weights=0.4`` for 'AuxLogits').
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..base import ZooModel
from ..init import trunc_normal_2sigma
from ..layers import ClassifierHead, FilterConcat, tower
from ..layers import inception_conv as conv
from ..meta import is_meta
from ..options import check_bool
from ..peers import register_peer_adapter
from ..registry import Paper, PaperFigure, register_model

__all__ = ["CFGS", "AuxHead", "Inception8", "Inception17", "Inception35", "InceptionV3",
           "InceptionV3Cfg", "Reduction17", "Reduction35"]

PAPER = Paper("Szegedy, Vanhoucke, Ioffe, Shlens & Wojna", 2015,
              "Rethinking the Inception Architecture for Computer Vision", "arXiv:1512.00567 (CVPR 2016)")

AUX_MIN_INPUT = 299  # the auxiliary head's 5×5 convolution needs the 17×17 grid: (17 − 5)/3 + 1 = 5


@dataclass(frozen=True)
class InceptionV3Cfg:
    """The widths that differ between modules of one figure (the TF release's; Table 1 prints none)."""

    pool_proj: tuple[int, ...] = (32, 64, 64)  # mixed_5b–5d (Fig. 5): the pool branch's 1×1 projection
    c7: tuple[int, ...] = (128, 160, 160, 192)  # mixed_6b–6e (Fig. 6): width inside the 1×7/7×1 towers
    num_8x8: int = 2  # mixed_7b, 7c (Fig. 7)


CFGS: dict[str, InceptionV3Cfg] = {"inception_v3": InceptionV3Cfg()}

def avg_pool() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1)  # counts the padding, as torchvision does (see Deviations)


class Inception35(FilterConcat):
    """35×35 module (Fig. 5 as released): 1×1 | 1×1 → 5×5 | 1×1 → 3×3 → 3×3 | avg-pool → 1×1."""

    def __init__(self, cin: int, pool_proj: int) -> None:
        super().__init__(
            branch_1x1=conv(cin, 64, 1),
            branch_5x5=tower(cin, (48, 1), (64, 5)),
            branch_3x3dbl=tower(cin, (64, 1), (96, 3), (96, 3)),
            branch_pool=nn.Sequential(avg_pool(), conv(cin, pool_proj, 1)),
        )
        self.out_chans = 64 + 64 + 96 + pool_proj


class Reduction35(FilterConcat):
    """35×35 → 17×17 grid reduction (mixed_6a, Fig. 10's pattern): 3×3/2 | 1×1 → 3×3 → 3×3/2 | max-pool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__(
            branch_3x3=conv(cin, 384, 3, 2),
            branch_3x3dbl=tower(cin, (64, 1), (96, 3), (96, 3, 2)),
            branch_pool=nn.MaxPool2d(3, 2),
        )
        self.out_chans = 384 + 96 + cin


class Inception17(FilterConcat):
    """17×17 module (Fig. 6, n = 7): 1×1 | 1×7 → 7×1 | 7×1 → 1×7 → 7×1 → 1×7 | avg-pool → 1×1."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__(
            branch_1x1=conv(cin, 192, 1),
            branch_7x7=tower(cin, (c7, 1), (c7, (1, 7)), (192, (7, 1))),
            branch_7x7dbl=tower(cin, (c7, 1), (c7, (7, 1)), (c7, (1, 7)), (c7, (7, 1)), (192, (1, 7))),
            branch_pool=nn.Sequential(avg_pool(), conv(cin, 192, 1)),
        )
        self.out_chans = 4 * 192


class Reduction17(FilterConcat):
    """17×17 → 8×8 grid reduction (mixed_7a): 1×1 → 3×3/2 | 1×1 → 1×7 → 7×1 → 3×3/2 | max-pool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__(
            branch_3x3=tower(cin, (192, 1), (320, 3, 2)),
            branch_7x7x3=tower(cin, (192, 1), (192, (1, 7)), (192, (7, 1)), (192, 3, 2)),
            branch_pool=nn.MaxPool2d(3, 2),
        )
        self.out_chans = 320 + 192 + cin


def _split_1x3_3x1(cin: int) -> FilterConcat:
    """Fig. 7's expanded filter bank: a 1×3 and a 3×1 convolution side by side on the same input."""
    return FilterConcat(conv_1x3=conv(cin, 384, (1, 3)), conv_3x1=conv(cin, 384, (3, 1)))


class Inception8(FilterConcat):
    """8×8 module (Fig. 7): 1×1 | 1×1 → (1×3, 3×1) | 1×1 → 3×3 → (1×3, 3×1) | avg-pool → 1×1."""

    def __init__(self, cin: int) -> None:
        super().__init__(
            branch_1x1=conv(cin, 320, 1),
            branch_3x3=nn.Sequential(conv(cin, 384, 1), _split_1x3_3x1(384)),
            branch_3x3dbl=nn.Sequential(conv(cin, 448, 1), conv(448, 384, 3), _split_1x3_3x1(384)),
            branch_pool=nn.Sequential(avg_pool(), conv(cin, 192, 1)),
        )
        self.out_chans = 320 + 2 * 384 + 2 * 384 + 192


class AuxHead(nn.Sequential):
    """Auxiliary classifier on the last 17×17 grid (Fig. 8; BN-auxiliary, §7), in the release's form."""

    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__(OrderedDict(
            pool=nn.AvgPool2d(5, stride=3),  # 17×17 → 5×5
            conv0=conv(cin, 128, 1),
            conv1=conv(128, 768, 5, padding=0),  # 5×5 → 1×1: the fully connected layer, with BN
            gap=nn.AdaptiveAvgPool2d(1),  # only acts on inputs larger than 299, as in torchvision
            flatten=nn.Flatten(1),
            fc=nn.Linear(768, num_classes),
        ))


def _stages(cfg: InceptionV3Cfg) -> OrderedDict[str, nn.Module]:
    """mixed_5b … mixed_7c (the release's names), channel counts chained from block to block."""
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    chans = 192
    for i, proj in enumerate(cfg.pool_proj):
        blocks[f"mixed_5{'bcd'[i]}"] = block = Inception35(chans, proj)
        chans = block.out_chans
    blocks["mixed_6a"] = block = Reduction35(chans)
    chans = block.out_chans
    for i, c7 in enumerate(cfg.c7):
        blocks[f"mixed_6{'bcde'[i]}"] = block = Inception17(chans, c7)
        chans = block.out_chans
    blocks["mixed_7a"] = block = Reduction17(chans)
    chans = block.out_chans
    for i in range(cfg.num_8x8):
        blocks[f"mixed_7{'bc'[i]}"] = block = Inception8(chans)
        chans = block.out_chans
    return blocks


class InceptionV3(ZooModel):
    """Stem → 35×35 → 17×17 → 8×8 modules → average pool → dropout → linear (Table 1, as released)."""

    def __init__(self, cfg: InceptionV3Cfg = CFGS["inception_v3"], *, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.2, aux_logits: bool = False) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        aux_logits = check_bool("InceptionV3", "aux_logits", aux_logits,
                                note="True adds the auxiliary head on mixed_6e")
        self.stem = nn.Sequential(OrderedDict(  # the release's layer names
            conv_1a=conv(in_chans, 32, 3, 2),  # 299 → 149
            conv_2a=conv(32, 32, 3, padding=0),  # → 147
            conv_2b=conv(32, 64, 3),  # → 147 (padded)
            pool_3a=nn.MaxPool2d(3, 2),  # → 73
            conv_3b=conv(64, 80, 1),
            conv_4a=conv(80, 192, 3, padding=0),  # → 71
            pool_5a=nn.MaxPool2d(3, 2),  # → 35
        ))
        self.stages = nn.Sequential(_stages(cfg))
        self.aux_logits = aux_logits  # input probes run forward_train too when it is set
        self.aux_after = "mixed_6e"  # the last 17×17 module: the auxiliary head reads its output
        self.aux_head = AuxHead(768, num_classes) if aux_logits else None
        self.num_features = 2048
        self.head = ClassifierHead(self.num_features, num_classes, dropout)
        init_trunc_normal(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 299, 299) -> (N, 2048, 8, 8)
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)

    def forward_train(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Main logits and, when built with ``aux_logits=True``, the auxiliary head's logits (loss weight 0.4)."""
        if self.aux_head is None:
            return self(x), []
        return self._forward_with_taps(x, {self.aux_after: self.aux_head})

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, aux_logits={self.aux_logits}"


def init_trunc_normal(model: InceptionV3) -> None:
    """TF-slim's Inception v3 initialisation (torchvision's port): truncated normal, σ = 0.1 (see Deviations)."""
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            trunc_normal_2sigma(m.weight, 0.1)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if model.aux_head is not None:
        trunc_normal_2sigma(model.aux_head.conv1.conv.weight, 0.01)
        trunc_normal_2sigma(model.aux_head.fc.weight, 0.001)


@register_peer_adapter("inception_v3", "timm")
@register_peer_adapter("inception_v3", "torchvision")
def _aux_before_classifier(model: nn.Module, peer: dict[str, Tensor]) -> dict[str, Tensor]:
    """The peers register ``AuxLogits`` between Mixed_6e and Mixed_7a; ours follows the stages and precedes the
    classifier (``fc`` in both). A network built without the auxiliary head drops the peer's auxiliary
    tensors: torchvision's ImageNet checkpoint carries them whatever the network it is loaded into."""
    aux = [(k, v) for k, v in peer.items() if k.startswith("AuxLogits.")]
    body = [(k, v) for k, v in peer.items() if not k.startswith(("AuxLogits.", "fc."))]
    fc = [(k, v) for k, v in peer.items() if k.startswith("fc.")]
    return dict(body + (aux if getattr(model, "aux_logits", False) else []) + fc)


_DEVIATIONS = (
    "stem ends with conv 1×1 (80), conv 3×3 (192) and a 3×3/2 max-pool (the TF release), not Table 1's three "
    "3×3 convolutions; the first 35×35 module sees 192 channels, not 288",
    "the release's module counts and widths: 3 × Fig. 5, reduction, 4 × Fig. 6 (Table 1: 5), reduction, 2 × Fig. 7",
    "Fig. 5 modules keep a 1×1 → 5×5 branch (48 → 64) beside the double 3×3 branch",
    "module average pools count the zero padding (torchvision's port); TF's 'SAME' pooling excludes it",
    "auxiliary head as released (5×5/3 avg-pool, 1×1 conv 128, 5×5 conv 768 with BN, linear): needs inputs ≥ 299",
    "dropout 0.2 (TF-slim's keep 0.8; the paper states no rate, torchvision defaults to 0.5)",
)
_PARAMS_GAP = ("the abstract gives a bound ('less than 25 million parameters'), not a count: ours, 23.83 M without "
               "the auxiliary head, meets the bound but is not within rounding of 25 M")
_MACS_GAP = ("the released network costs 5.71 G conv + fc multiply-adds at 299 (torchvision's figure agrees); the "
             "paper gives no per-layer costs, and its Table 1 stem and module counts are not the release's")


@register_model(paper=PAPER, input_size=(3, 299, 299),
                params=PaperFigure(25e6, 0.5e6 / 25e6, "Abstract ('less than 25 million parameters')", _PARAMS_GAP),
                macs=PaperFigure(4.8e9, 0.05e9 / 4.8e9, "Table 3 (Inception-v3: 4.8 Bn ops)", _MACS_GAP),
                deviations=_DEVIATIONS, peers={"torchvision": "inception_v3", "timm": "inception_v3"},
                config=CFGS["inception_v3"], aux_weight=0.4,
                input_hint=f"299 as in the paper; with aux_logits=True at least {AUX_MIN_INPUT}")
def inception_v3(**kwargs: Any) -> InceptionV3:
    """Inception v3 as Google released it (TF-slim), the form torchvision and timm port."""
    return InceptionV3(CFGS["inception_v3"], **kwargs)
