"""SqueezeNet v1.0, v1.1 and the bypass variants.

Iandola, Han, Moskewicz, Ashraf, Dally & Keutzer, "SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters and <0.5MB model size", arXiv:1602.07360: §3.1 (the three design strategies), §3.2 and Fig. 1
(the Fire module), §3.3 and Table 1 (the network: conv1, fire2–fire9, conv10, max-pools after conv1,
fire4 and fire8, 50% dropout after fire9, no fully-connected layer), §3.3.1 (details), §6, Fig. 2 and
Table 3 (simple and complex bypass). v1.1 comes from the authors' repository (github.com/forresti/
SqueezeNet, SqueezeNet_v1.1): conv1 has 64 3×3 filters and the max-pools follow conv1, fire3 and fire5,
"2.4x less computation" than v1.0 at the same accuracy.

Geometry. Table 1 prints a 224×224 input, but its conv1 output of 111×111 needs 227 ((227 − 7)/2 + 1 =
111; 224 gives 109.5); the released prototxt crops 227. `input_size` is therefore 227, where every output
size of Table 1 is reproduced (tests/test_family_squeezenet.py). The max-pools round up, as Caffe's do (and
torchvision's ``ceil_mode=True``); for v1.0 at 227 both roundings give the same sizes, at 224 they do not.
torchvision's figures (1,248,424 parameters and 818.9 M MACs for v1.0; 1,235,496 and 349.2 M for v1.1)
are at 224 and are tested there.

Training facts: §3.3.1 gives a learning rate of 0.04, decreased linearly through training, and defers the
rest to the released Caffe files. One revision of SqueezeNet_v1.0/solver.prototxt matches it (base_lr 0.04,
"poly" policy with power 1, batch 32 × iter_size 16 = 512, momentum 0.9, weight decay 2e-4, 170k
iterations); another uses base_lr 0.08, power 0.5, batch 1024, 85k iterations. The prototxt initialises
with Caffe's "xavier" (uniform in ±√(3/fan_in)), N(0, 0.01) for conv10, biases 0 (`init_caffe`).
Deep Compression (pruning to "33% sparsity", a third of the weights kept, plus 6-bit quantisation: the
"<0.5MB" of the title and the sparsity and #bits columns of Table 1) compresses trained weights; it is no
architecture and is out of scope: the networks here hold the dense "#parameter before pruning".

Deviations from the paper:
- ``input_size`` is 227, not Table 1's 224 (see Geometry). Table 1's "13x12x512" for maxpool8 is a typo
  for 13×13×512 (fire9, which keeps the size, is listed at 13×13).
- The released v1.0 prototxt gives conv10 a padding of 1 (a 15×15 class map instead of Table 1's 13×13);
  we follow Table 1 and torchvision. That padding is why the repository's "1.72 GFLOPS/image" (2 × 861.3 M
  multiply-adds at 227) is not our 832.7 M; MobileNet's Table 9 quotes it as "1700 million mult-adds".
- ``squeezenet1_1`` is the repository's revision, not a network of the paper. Its README prints
  0.72 GFLOPS (360 M multiply-adds), which no input size or pooling rounding we tried reproduces (387.7 M at
  227, 349.2 M at 224); the ratio to v1.0 is 2.35 at 224 (torchvision's count), not quite the printed 2.4.
- Complex bypass (Fig. 2 right): the 1×1 convolutions sit where a Fire module changes the channel count
  (fire2 96→128, fire4 128→256, fire6 256→384, fire8 384→512) and add 341,248 parameters (weights and
  biases; the paper does not say whether they have biases or a ReLU: they have Caffe's default bias and no
  ReLU). Table 3 lists this model at 7.7 MB against 4.8 MB for the others; at the 4 bytes per parameter that
  make 1,248,424 parameters 4.8 MB, our 1,589,672 are 6.1 MB. We found no reading of Fig. 2 that gives 7.7.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..base import ZooModel
from ..errors import UserError
from ..layers import ConvBNAct
from ..meta import is_meta
from ..registry import Paper, PaperFigure, register_model

__all__ = ["CFGS", "FIRES", "Fire", "FireRow", "SqueezeNet", "SqueezeNetCfg"]

SQUEEZENET = Paper("Iandola, Han, Moskewicz, Ashraf, Dally & Keutzer", 2016,
                   "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size",
                   "arXiv:1602.07360")


@dataclass(frozen=True)
class FireRow:
    """One Fire row of Table 1: filters of the squeeze layer and of the two halves of the expand layer."""

    s1x1: int  # #1x1 squeeze
    e1x1: int  # #1x1 expand
    e3x3: int  # #3x3 expand


FIRES: dict[int, FireRow] = {  # Table 1, fire2 … fire9 (v1.1 keeps them; only conv1 and the pools move)
    2: FireRow(s1x1=16, e1x1=64, e3x3=64),
    3: FireRow(s1x1=16, e1x1=64, e3x3=64),
    4: FireRow(s1x1=32, e1x1=128, e3x3=128),
    5: FireRow(s1x1=32, e1x1=128, e3x3=128),
    6: FireRow(s1x1=48, e1x1=192, e3x3=192),
    7: FireRow(s1x1=48, e1x1=192, e3x3=192),
    8: FireRow(s1x1=64, e1x1=256, e3x3=256),
    9: FireRow(s1x1=64, e1x1=256, e3x3=256),
}


@dataclass(frozen=True)
class SqueezeNetCfg:
    """conv1, where the 3×3/2 max-pools go, and which Fire modules have a bypass (§6)."""

    conv1_filters: int  # v1.0: 96; v1.1: 64
    conv1_kernel: int  # v1.0: 7×7; v1.1: 3×3 (stride 2 in both)
    pools_after: tuple[int, ...]  # layers followed by a max-pool: 1 is conv1, i is fire{i}
    bypass: tuple[int, ...] = ()  # Fire modules with a bypass: identity if the channels agree, else a 1×1 conv


CFGS: dict[str, SqueezeNetCfg] = {
    "squeezenet1_0": SqueezeNetCfg(conv1_filters=96, conv1_kernel=7, pools_after=(1, 4, 8)),
    "squeezenet1_1": SqueezeNetCfg(conv1_filters=64, conv1_kernel=3, pools_after=(1, 3, 5)),
    # §6: "simple bypass ... around Fire modules 3, 5, 7, and 9"; complex bypass adds 1×1 convolutions
    # around the remaining ones (2, 4, 6, 8), where the channel counts differ (Fig. 2, right).
    "squeezenet1_0_bypass": SqueezeNetCfg(conv1_filters=96, conv1_kernel=7, pools_after=(1, 4, 8),
                                          bypass=(3, 5, 7, 9)),
    "squeezenet1_0_complex_bypass": SqueezeNetCfg(conv1_filters=96, conv1_kernel=7, pools_after=(1, 4, 8),
                                                  bypass=(2, 3, 4, 5, 6, 7, 8, 9)),
}


class Fire(nn.Module):
    """Squeeze 1×1 → ReLU → (expand 1×1 ‖ expand 3×3) → ReLU, concatenated (§3.2, Fig. 1); optional bypass (§6).

    The bypass adds the module's input to its output: "just a wire" when the channel counts agree, else a
    1×1 convolution with as many filters as the output has channels (the complex bypass).
    """

    def __init__(self, in_chans: int, s1x1: int, e1x1: int, e3x3: int, bypass: bool = False) -> None:
        super().__init__()
        for name, value in (("s1x1", s1x1), ("e1x1", e1x1), ("e3x3", e3x3)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"Fire: {name} must be a positive integer, got {value!r}")
        if s1x1 >= e1x1 + e3x3:
            raise UserError(f"Fire: s1x1={s1x1} must be less than e1x1 + e3x3 = {e1x1} + {e3x3} = {e1x1 + e3x3}; "
                            "the squeeze layer exists to limit the input channels of the 3×3 filters (§3.2, "
                            "Strategy 2 of §3.1)")
        out_chans = e1x1 + e3x3
        self.squeeze = nn.Conv2d(in_chans, s1x1, 1)
        self.squeeze_act = nn.ReLU()
        self.expand1x1 = nn.Conv2d(s1x1, e1x1, 1)
        self.expand1x1_act = nn.ReLU()
        self.expand3x3 = nn.Conv2d(s1x1, e3x3, 3, padding=1)  # "a 1-pixel border of zero-padding" (§3.3.1)
        self.expand3x3_act = nn.ReLU()
        self.bypass: nn.Module | None = None
        if bypass:
            self.bypass = nn.Identity() if in_chans == out_chans else nn.Conv2d(in_chans, out_chans, 1)
        self.out_chans = out_chans

    def forward(self, x: Tensor) -> Tensor:
        s = self.squeeze_act(self.squeeze(x))
        out = torch.cat([self.expand1x1_act(self.expand1x1(s)), self.expand3x3_act(self.expand3x3(s))], 1)
        return out if self.bypass is None else out + self.bypass(x)


def _maxpool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2, ceil_mode=True)  # 3×3/2 (Table 1), rounding up as Caffe does


class SqueezeNet(ZooModel):
    """conv1 → fire2 … fire9 with three max-pools → dropout → conv10 → global average pool (Table 1)."""

    def __init__(self, cfg: SqueezeNetCfg, *, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv1"] = ConvBNAct(in_chans, cfg.conv1_filters, cfg.conv1_kernel, stride=2, padding=0, norm=None)
        if 1 in cfg.pools_after:
            layers["maxpool1"] = _maxpool()
        chans = cfg.conv1_filters
        for i, row in FIRES.items():
            fire = Fire(chans, row.s1x1, row.e1x1, row.e3x3, bypass=i in cfg.bypass)
            layers[f"fire{i}"] = fire
            chans = fire.out_chans
            if i in cfg.pools_after:
                layers[f"maxpool{i}"] = _maxpool()
        self.features = nn.Sequential(layers)
        self.num_features = chans
        self.head = nn.Sequential(OrderedDict(
            drop9=nn.Dropout(dropout),  # "Dropout with a ratio of 50% is applied after the fire9 module"
            conv10=nn.Conv2d(chans, num_classes, 1),  # no fully-connected layer (NiN)
            relu10=nn.ReLU(),
            avgpool10=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(1),
        ))
        init_caffe(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 227, 227) -> (N, 512, 13, 13)
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def init_caffe(model: SqueezeNet) -> None:
    """The released prototxt's fillers: Caffe "xavier" (uniform in ±√(3/fan_in), i.e. He-uniform with gain 1)
    for every convolution, N(0, 0.01) for conv10, biases 0."""
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if m is model.head.conv10:
                nn.init.normal_(m.weight, 0.0, 0.01)
            else:
                nn.init.kaiming_uniform_(m.weight, nonlinearity="linear")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


_SQ = dict(paper=SQUEEZENET, input_size=(3, 227, 227))
_INPUT = "input 227×227: Table 1 prints 224, but its 111×111 conv1 output needs 227 (the released crop)"
_TABLE1_PARAMS = PaperFigure(1_248_424, 0.0, "Table 1 (#parameter before pruning, total)")
_GAP_V10 = ("the repository's 1.72 GFLOPS/image is its prototxt, whose conv10 has pad 1 (15×15 instead of "
            "Table 1's 13×13): 2 × 861.3 M; the Table 1 network has 832.7 M multiply-adds at 227")
_GAP_V11 = ("the repository's 0.72 GFLOPS/image (360 M multiply-adds) is not reproduced: v1.1 has 387.7 M "
            "at the released 227 crop (its 3×3 conv1 gives 113×113, then 56, 28, 14) and 349.2 M at 224")


@register_model(**_SQ, params=_TABLE1_PARAMS, deviations=(_INPUT,),
                macs=PaperFigure(860e6, 2.5e6 / 860e6, "repository README: 1.72 GFLOPS/image = 2 × MACs",
                                 _GAP_V10),
                peers={"torchvision": "squeezenet1_0"}, config=CFGS["squeezenet1_0"])
def squeezenet1_0(**kwargs: Any) -> SqueezeNet:
    """SqueezeNet v1.0 (Table 1): conv1 96×7×7/2, max-pools after conv1, fire4 and fire8."""
    return SqueezeNet(CFGS["squeezenet1_0"], **kwargs)


@register_model(**_SQ, deviations=("the authors' repository revision (v1.1), not in the paper: conv1 64×3×3/2, "
                                   "max-pools after conv1, fire3 and fire5",),
                macs=PaperFigure(360e6, 2.5e6 / 360e6, "repository v1.1 README: 0.72 GFLOPS/image = 2 × MACs",
                                 _GAP_V11),
                peers={"torchvision": "squeezenet1_1"}, config=CFGS["squeezenet1_1"])
def squeezenet1_1(**kwargs: Any) -> SqueezeNet:
    """SqueezeNet v1.1 (official repository): 64 3×3 filters in conv1, earlier pools, 2.4× fewer MACs."""
    return SqueezeNet(CFGS["squeezenet1_1"], **kwargs)


@register_model(**_SQ, params=PaperFigure(1_248_424, 0.0, "Table 1 total; §6: a simple bypass adds none"),
                deviations=(_INPUT,), config=CFGS["squeezenet1_0_bypass"])
def squeezenet1_0_bypass(**kwargs: Any) -> SqueezeNet:
    """SqueezeNet v1.0 with simple bypass (Fig. 2 middle): identity around fire3, fire5, fire7, fire9."""
    return SqueezeNet(CFGS["squeezenet1_0_bypass"], **kwargs)


@register_model(**_SQ, deviations=(_INPUT, "the bypass 1×1 convolutions have a bias and no ReLU (unstated in "
                                           "the paper; Caffe's defaults)"),
                config=CFGS["squeezenet1_0_complex_bypass"])
def squeezenet1_0_complex_bypass(**kwargs: Any) -> SqueezeNet:
    """SqueezeNet v1.0 with complex bypass (Fig. 2 right): simple bypasses plus 1×1 convs around fire2/4/6/8."""
    return SqueezeNet(CFGS["squeezenet1_0_complex_bypass"], **kwargs)
