"""MobileNet v1, its width multiplier α, and the two ablations of §4.1.

Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto & Adam, "MobileNets: Efficient Convolutional
Neural Networks for Mobile Vision Applications", arXiv:1704.04861: §3.1 (depthwise separable convolution,
cost ratio 1/N + 1/D_K²), §3.2, Table 1 (the body) and Fig. 3 (each convolution followed by batch norm and
a nonlinearity), Table 2 (resources per layer type), §3.3 (width multiplier α: M → αM), §3.4 (resolution
multiplier ρ, set through the input size), Table 3 (one 14×14×512 layer), Table 4 ("Conv MobileNet", full
3×3 convolutions), Table 5 (Shallow MobileNet: the five 14×14×512 separable layers removed), Tables 6–7
(α and ρ), Tables 8–9 (comparisons). tests/test_family_mobilenet_v1.py reproduces Tables 1–7 and 9.

Channel rounding: each width is int(α·c), the paper's αM and the rounding of the authors' TensorFlow
release (slim ``mobilenet_v1.py``). For α ∈ {1, 0.75, 0.5, 0.25} every width is a multiple of 8, so timm's
make-divisible-by-8 rounding gives the same networks; they part at other α (0.35: 11 vs 16 stem filters).
Both reproduce every α row of Table 6. Any input size works (ρ): global average pooling ends the body.

Training (§3.2): RMSprop with asynchronous gradient descent as for Inception v3, little regularisation and
augmentation, no label smoothing or side heads, little or no weight decay on the depthwise filters. The
paper gives no initialisation; `init_slim` uses the TensorFlow release's: truncated normal, σ = 0.09.

Deviations from the paper:
- The nonlinearity is ReLU6, as in the authors' TensorFlow release (whose checkpoints are the networks of
  Tables 6–7) and in timm, where §3.2 and Fig. 3 say ReLU; ``act=nn.ReLU`` gives the paper's text.
  Parameters and multiply-adds are the same either way.
- Batch norm ε = 1e-5 (PyTorch's and timm's default; the release uses 1e-3). Stride-2 convolutions pad
  one pixel on every side (PyTorch, timm), where TensorFlow's "SAME" pads only after on even inputs: same
  sizes and counts, but a TensorFlow checkpoint would see its windows shifted by one pixel.
- ``dropout`` defaults to 0: the paper names none (the release keeps 0.999 of the pooled features).
- Table 1 prints the second-to-last depthwise layer as "Conv dw / s2", but its input (7×7×1024, the
  "Input Size" column) equals the previous layer's output: it is stride 1, as in the release.
- Gaps (figures the paper prints that its own architecture does not give; the tests assert them):
  Table 4's Conv MobileNet has 4867.3 M mult-adds, not 4866 (4866.3 M without the 1.02 M of the
  fully-connected layer, which the other rows count). Table 7 prints 290 M at 160; the network has 290.7 M:
  Table 7 matches 569 M·ρ² (eq. 7; 290.2 M), but the fully-connected layer does not shrink with ρ. Table 9's
  0.50 MobileNet-160 likewise has 76.5 M, not 76 (149.5 M·ρ² = 76.3). Table 2 prints 1.19% of the
  mult-adds for the 3×3 convolution; it is 1.91% (the printed column sums to 99.29%). The paper's parameter
  counts leave out batch-norm γ/β (Table 9's 1.32 M for α = 0.5: we count 1.33 M with them).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..base import ZooModel
from ..errors import UserError
from ..layers import ActLayer, ClassifierHead, ConvBNAct
from ..meta import is_meta
from ..options import check_float, check_layer
from ..registry import Paper, PaperFigure, register_model

__all__ = ["CFGS", "TABLE1", "DepthwiseSeparableConv", "MobileNetV1", "MobileNetV1Cfg", "SeparableRow"]

MOBILENET = Paper("Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto & Adam", 2017,
                  "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
                  "arXiv:1704.04861")

STEM_FILTERS = 32  # Table 1, first row: "Conv / s2, 3 × 3 × 3 × 32"


@dataclass(frozen=True)
class SeparableRow:
    """A "Conv dw / s" row and the "Conv / s1, 1 × 1 × M × N" row after it (Table 1), at α = 1."""

    s: int  # stride of the 3×3 depthwise convolution
    n: int  # N, filters of the 1×1 pointwise convolution


TABLE1: tuple[SeparableRow, ...] = (  # layers 1–13, numbered as the release's Conv2d_1 … Conv2d_13
    SeparableRow(s=1, n=64),  # 112×112
    SeparableRow(s=2, n=128),
    SeparableRow(s=1, n=128),  # 56×56
    SeparableRow(s=2, n=256),
    SeparableRow(s=1, n=256),  # 28×28
    SeparableRow(s=2, n=512),
    *(SeparableRow(s=1, n=512),) * 5,  # "5×": 14×14×512, layers 7–11
    SeparableRow(s=2, n=1024),
    SeparableRow(s=1, n=1024),  # printed "Conv dw / s2": a typo, its input is 7×7 like the layer before
)


@dataclass(frozen=True)
class MobileNetV1Cfg:
    """A network of Tables 4–6: width multiplier, separable or full convolutions, which layers are kept."""

    width_mult: float = 1.0  # α (§3.3)
    separable: bool = True  # False: Table 4's "Conv MobileNet", each row pair one full 3×3 convolution
    removed: tuple[int, ...] = ()  # Table 1 layers left out: Table 5's Shallow MobileNet drops 7–11


CFGS: dict[str, MobileNetV1Cfg] = {
    "mobilenet_v1": MobileNetV1Cfg(),
    "mobilenet_v1_x0_75": MobileNetV1Cfg(width_mult=0.75),  # Table 6
    "mobilenet_v1_x0_5": MobileNetV1Cfg(width_mult=0.5),
    "mobilenet_v1_x0_25": MobileNetV1Cfg(width_mult=0.25),
    "mobilenet_v1_conv": MobileNetV1Cfg(separable=False),  # Table 4
    "mobilenet_v1_shallow": MobileNetV1Cfg(removed=(7, 8, 9, 10, 11)),  # Table 5
}


class DepthwiseSeparableConv(nn.Sequential):
    """3×3 depthwise conv → BN → act, then 1×1 pointwise conv → BN → act (Fig. 3 right; children ``dw``, ``pw``)."""

    def __init__(self, in_chans: int, out_chans: int, stride: int, act: ActLayer) -> None:
        super().__init__(OrderedDict(
            dw=ConvBNAct(in_chans, in_chans, 3, stride, groups=in_chans, act=act),  # one filter per channel
            pw=ConvBNAct(in_chans, out_chans, 1, act=act),  # combines the channels
        ))
        self.out_chans = out_chans


def scaled(filters: int, width_mult: float) -> int:
    """int(α·c) (§3.3; the release's depth()). Table 1's widths are powers of two, so α·c is exact."""
    return int(width_mult * filters)


def _check_width(width_mult: object) -> float:
    width_mult = check_float("MobileNetV1", "width_mult (α)", width_mult, minimum=0, min_open=True,
                             note="the paper's α are 1, 0.75, 0.5 and 0.25")
    if scaled(STEM_FILTERS, width_mult) < 1:
        raise UserError(f"MobileNetV1: width_mult={width_mult} leaves the first layer int(α·32) = 0 filters; "
                        f"use at least 1/32 (the paper's α are 1, 0.75, 0.5 and 0.25)")
    return float(width_mult)


class MobileNetV1(ZooModel):
    """Conv / s2 → 13 depthwise separable layers → average pool → FC (Table 1), thinned by α (§3.3)."""

    def __init__(self, cfg: MobileNetV1Cfg, *, width_mult: float | None = None, act: ActLayer = nn.ReLU6,
                 num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.0) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        self.width_mult = alpha = _check_width(cfg.width_mult if width_mult is None else width_mult)
        check_layer("MobileNetV1", "act", act, "nn.ReLU6 (the release) or nn.ReLU (the paper)")
        chans = scaled(STEM_FILTERS, alpha)
        self.stem = ConvBNAct(in_chans, chans, 3, 2, act=act)  # the full first layer, "Conv / s2"
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        for i, row in enumerate(TABLE1, 1):
            if i in cfg.removed:
                continue
            out = scaled(row.n, alpha)
            stages[f"conv{i}"] = (DepthwiseSeparableConv(chans, out, row.s, act) if cfg.separable
                                  else ConvBNAct(chans, out, 3, row.s, act=act))  # Fig. 3 left
            chans = out
        self.stages = nn.Sequential(stages)
        self.num_features = chans
        self.head = ClassifierHead(chans, num_classes, dropout)  # "Avg Pool / s1", "FC / s1" (no nonlinearity)
        init_slim(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 224ρ, 224ρ) -> (N, 1024α, 7ρ, 7ρ)
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def init_slim(model: nn.Module) -> None:
    """The TensorFlow release's initialisation (the paper states none): weights from a normal with σ = 0.09
    truncated at 2σ for every convolution and the classifier; biases 0; batch norm γ = 1, β = 0."""
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.09, a=-0.18, b=0.18)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _build(name: str, kwargs: dict[str, Any], fixed_width: bool = False) -> MobileNetV1:
    if fixed_width and kwargs.get("width_mult") is not None:
        _check_width(kwargs["width_mult"])  # an invalid value is refused as invalid first
        raise UserError(f"{name} is α = {CFGS[name].width_mult}; build mobilenet_v1 with width_mult=... for "
                        "another width")
    return MobileNetV1(CFGS[name], **kwargs)


def _mult_adds(millions: float, where: str, gap: str | None = None) -> PaperFigure:
    return PaperFigure(millions * 1e6, 0.5 / millions, where, gap)  # printed to 1 million


def _params(millions: float, where: str) -> PaperFigure:
    return PaperFigure(millions * 1e6, 0.05 / millions, where)  # printed to 0.1 million


_MB = dict(paper=MOBILENET, input_size=(3, 224, 224))
_ACT = "ReLU6 (the authors' TensorFlow release, timm) where the paper says ReLU; act=nn.ReLU gives the paper's"
_GAP_CONV = ("our Conv MobileNet has 4867.3 M mult-adds; the printed 4866 is our count without the "
             "fully-connected layer's 1.02 M, which the paper's other rows include")


@register_model(**_MB, params=_params(4.2, "Table 6 (also Tables 4, 7, 8)"), macs=_mult_adds(569, "Table 6"),
                deviations=(_ACT,), peers={"timm": "mobilenetv1_100"}, config=CFGS["mobilenet_v1"])
def mobilenet_v1(**kwargs: Any) -> MobileNetV1:
    """1.0 MobileNet-224 (Table 1); `width_mult` gives α, the input size gives ρ."""
    return _build("mobilenet_v1", kwargs)


@register_model(**_MB, params=_params(2.6, "Table 6 (also Table 5)"), macs=_mult_adds(325, "Table 6"),
                deviations=(_ACT,), config=CFGS["mobilenet_v1_x0_75"])
def mobilenet_v1_x0_75(**kwargs: Any) -> MobileNetV1:
    """0.75 MobileNet-224 (Table 6): every layer at α = 0.75 of its width."""
    return _build("mobilenet_v1_x0_75", kwargs, fixed_width=True)


@register_model(**_MB, params=_params(1.3, "Table 6"), macs=_mult_adds(149, "Table 6"),
                deviations=(_ACT,), config=CFGS["mobilenet_v1_x0_5"])
def mobilenet_v1_x0_5(**kwargs: Any) -> MobileNetV1:
    """0.5 MobileNet-224 (Table 6): every layer at α = 0.5 of its width."""
    return _build("mobilenet_v1_x0_5", kwargs, fixed_width=True)


@register_model(**_MB, params=_params(0.5, "Table 6"), macs=_mult_adds(41, "Table 6"),
                deviations=(_ACT,), config=CFGS["mobilenet_v1_x0_25"])
def mobilenet_v1_x0_25(**kwargs: Any) -> MobileNetV1:
    """0.25 MobileNet-224 (Table 6): every layer at α = 0.25 of its width."""
    return _build("mobilenet_v1_x0_25", kwargs, fixed_width=True)


@register_model(**_MB, params=_params(29.3, "Table 4"), macs=_mult_adds(4866, "Table 4", _GAP_CONV),
                deviations=(_ACT,), config=CFGS["mobilenet_v1_conv"])
def mobilenet_v1_conv(**kwargs: Any) -> MobileNetV1:
    """Conv MobileNet (Table 4): each depthwise separable pair replaced by one full 3×3 convolution."""
    return _build("mobilenet_v1_conv", kwargs)


@register_model(**_MB, params=_params(2.9, "Table 5"), macs=_mult_adds(307, "Table 5"),
                deviations=(_ACT,), config=CFGS["mobilenet_v1_shallow"])
def mobilenet_v1_shallow(**kwargs: Any) -> MobileNetV1:
    """Shallow MobileNet (Table 5): Table 1 without the five 14×14×512 separable layers (7–11)."""
    return _build("mobilenet_v1_shallow", kwargs)
