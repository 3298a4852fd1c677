"""AlexNet, and the single-tower "one weird trick" AlexNet that torchvision ships.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NeurIPS 2012:
§3.1 (ReLU), §3.2 (two GPUs: conv2, conv4 and conv5 see only the kernel maps on their own GPU, conv3 sees
all of them), §3.3 (local response normalisation, applied after the ReLU), §3.4 (overlapping max-pooling,
3×3 windows, stride 2), §3.5 and Fig. 2 (the layers), §4.2 (dropout 0.5 on the outputs of the first two
fully-connected layers), §5 (initialisation).
Krizhevsky, "One weird trick for parallelizing convolutional neural networks", arXiv:1404.5997 (the
single-tower network of its footnote on p. 5: 64, 192, 384, 384, 256 kernels).

Figures (tests/test_family_alexnet.py): 60,965,224 parameters ("60 million", abstract and §4) and 724.4 M
multiply-adds at 227×227 (MobileNet's Table 9 quotes 720 M for AlexNet). The paper counts "650,000
neurons" and lists them per layer as 253,440–186,624–64,896–64,896–43,264–4096–4096–1000; conv1's
96 maps of 55×55 hold 290,400, not 253,440, so our layers hold 659,272 neurons (the paper's own list sums to
622,312).

Deviations from the papers:
- ``alexnet``: Fig. 2 draws a 224×224 input, but conv1's 55×55 maps need 227 (⌊(227 − 11)/4⌋ + 1 = 55); the
  network takes 227, or 224 with ``conv1_padding=2``. The two GPUs are grouped convolutions (groups=2);
  response normalisation follows §3.3's formula over all kernels of the layer (`krizhevsky_lrn`).
- ``alexnet_owt`` is torchvision's ``alexnet``, kept weight-compatible with it: conv4 has 256 kernels where
  the 2014 footnote says 384 (torchvision took it from cuda-convnet2's single-GPU configuration,
  pytorch/vision#463 and #704); no response normalisation; conv1 padded by 2 so that 224 gives 55×55; an
  adaptive average pool to 6×6 before fc6 (the identity at 224); dropout on the inputs of fc6 and fc7
  rather than on the outputs of fc6 and fc7 (pytorch/vision#549). It is initialised like the 2012 network
  (§5), where torchvision keeps PyTorch's default initialisation.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..base import ZooModel
from ..layers import krizhevsky_lrn
from ..meta import is_meta
from ..options import check_int
from ..registry import Paper, PaperFigure, register_model

__all__ = ["CFGS", "AlexNet", "AlexNetCfg", "init_krizhevsky"]

ALEXNET = Paper("Krizhevsky, Sutskever & Hinton", 2012, "ImageNet Classification with Deep Convolutional Neural "
                "Networks", "NeurIPS 2012")
OWT = Paper("Krizhevsky", 2014, "One weird trick for parallelizing convolutional neural networks",
            "arXiv:1404.5997")


@dataclass(frozen=True)
class AlexNetCfg:
    """One AlexNet: its kernels per layer, and the choices that tell the 2012 network from torchvision's."""

    kernels: tuple[int, int, int, int, int]  # kernels in conv1 … conv5 (§3.5)
    groups: tuple[int, int, int, int, int]  # 2 where a layer sees only its own GPU's half of the maps (§3.2)
    lrn: bool  # response normalisation after the ReLUs of conv1 and conv2 (§3.3)
    conv1_padding: int  # 0 in the paper (227 input); torchvision pads 2 (224 input)
    pool_to: int | None = None  # torchvision's adaptive average pool before fc6; None: none (the paper)
    dropout_first: bool = False  # torchvision drops the inputs of fc6 and fc7; the paper their outputs (§4.2)


CFGS: dict[str, AlexNetCfg] = {
    "alexnet": AlexNetCfg(kernels=(96, 256, 384, 384, 256), groups=(1, 2, 1, 2, 2), lrn=True, conv1_padding=0),
    "alexnet_owt": AlexNetCfg(kernels=(64, 192, 384, 256, 256), groups=(1, 1, 1, 1, 1), lrn=False,
                              conv1_padding=2, pool_to=6, dropout_first=True),
}

# (kernel size, stride, padding, max-pool after) of conv1 … conv5 (§3.5, Fig. 2); conv1's padding is the cfg's.
_GEOMETRY = ((11, 4, 0, True), (5, 1, 2, True), (3, 1, 1, False), (3, 1, 1, False), (3, 1, 1, True))
_BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")  # §5: biases initialised to 1; all others to 0
# conv1_padding: at most half of conv1's 11×11 window (beyond, border windows would see only zeros)
_PAD1_MAX = _GEOMETRY[0][0] // 2


def _conv_block(in_chans: int, out_chans: int, index: int, cfg: AlexNetCfg, padding: int) -> nn.Sequential:
    """convN → ReLU → [response normalisation] → [overlapping max-pool] (§3.3–§3.5)."""
    kernel, stride, _, pool = _GEOMETRY[index]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["conv"] = nn.Conv2d(in_chans, out_chans, kernel, stride, padding, groups=cfg.groups[index])
    layers["relu"] = nn.ReLU()
    if cfg.lrn and index < 2:
        layers["lrn"] = krizhevsky_lrn()
    if pool:
        layers["pool"] = nn.MaxPool2d(3, 2)
    return nn.Sequential(layers)


def _head(in_features: int, num_classes: int, dropout: float, cfg: AlexNetCfg) -> nn.Sequential:
    """fc6 → fc7 → fc8 with ReLU and dropout, after a flatten (and torchvision's adaptive pool)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if cfg.pool_to is not None:
        layers["pool"] = nn.AdaptiveAvgPool2d(cfg.pool_to)
    layers["flatten"] = nn.Flatten(1)
    for i, (n_in, n_out) in zip((6, 7), ((in_features, 4096), (4096, 4096))):
        if cfg.dropout_first:
            layers[f"drop{i}"] = nn.Dropout(dropout)
        layers[f"fc{i}"] = nn.Linear(n_in, n_out)
        layers[f"relu{i}"] = nn.ReLU()
        if not cfg.dropout_first:
            layers[f"drop{i}"] = nn.Dropout(dropout)
    layers["fc8"] = nn.Linear(4096, num_classes)
    return nn.Sequential(layers)


class AlexNet(ZooModel):
    """conv1 … conv5 (``features``) → fc6, fc7, fc8 (``head``): Fig. 2 with the two GPUs as groups=2."""

    def __init__(self, cfg: AlexNetCfg, *, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
                 conv1_padding: int | None = None) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        pad1 = check_int("AlexNet", "conv1_padding", cfg.conv1_padding if conv1_padding is None else conv1_padding,
                         minimum=0, maximum=_PAD1_MAX, note="the paper's is 0 (227 input), torchvision's 2 (224 input)")
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        chans = in_chans
        for i, out_chans in enumerate(cfg.kernels):
            padding = pad1 if i == 0 else _GEOMETRY[i][2]
            blocks[f"conv{i + 1}"] = _conv_block(chans, out_chans, i, cfg, padding)
            chans = out_chans
        self.features = nn.Sequential(blocks)
        self.num_features = chans
        self.head = _head(chans * 6 * 6, num_classes, dropout, cfg)  # fc6 reads 6×6 maps (Fig. 2)
        init_krizhevsky(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, 227, 227) -> (N, 256, 6, 6)
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def init_krizhevsky(model: AlexNet) -> None:
    """§5: every weight N(0, 0.01²); biases 1 in conv2, conv4, conv5, fc6 and fc7 (so that ReLUs start with
    positive inputs), 0 in conv1, conv3 and fc8."""
    if is_meta(model):
        return
    layers: dict[str, nn.Module] = {name: block.conv for name, block in model.features.named_children()}
    layers.update(fc6=model.head.fc6, fc7=model.head.fc7, fc8=model.head.fc8)
    for name, layer in layers.items():
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.constant_(layer.bias, 1.0 if name in _BIAS_ONE else 0.0)


_HINT = ("the paper's Fig. 2 says 224, but its 55×55 conv1 maps need 227 = 4·(55 − 1) + 11; "
         "use 227, or build with conv1_padding=2 for 224")


@register_model(
    paper=ALEXNET, input_size=(3, 227, 227),
    params=PaperFigure(60e6, 5e6 / 60e6, "abstract and §4 (\"60 million\": one significant figure, ±5 M)"),
    macs=PaperFigure(720e6, 5e6 / 720e6, "MobileNet (Howard et al. 2017, arXiv:1704.04861) Table 9; the AlexNet "
                     "paper gives none (\"720\": two significant figures, ±5 M)"),
    deviations=("input 227×227, where Fig. 2 says 224 (or conv1_padding=2 at 224)",),
    config=CFGS["alexnet"], input_hint=_HINT,
)
def alexnet(**kwargs: Any) -> AlexNet:
    """AlexNet as in the 2012 paper: two GPU towers as grouped convolutions, LRN after conv1 and conv2."""
    return AlexNet(CFGS["alexnet"], **kwargs)


@register_model(
    paper=OWT, input_size=(3, 224, 224),
    deviations=("conv4 has 256 kernels where the paper's footnote says 384 (torchvision's network)",
                "no response normalisation; adaptive average pool to 6×6 before fc6 (torchvision)",
                "dropout on the inputs of fc6 and fc7 instead of the outputs of fc6 and fc7 (torchvision)"),
    peers={"torchvision": "alexnet"}, config=CFGS["alexnet_owt"],
)
def alexnet_owt(**kwargs: Any) -> AlexNet:
    """torchvision's AlexNet: the single-tower "one weird trick" network, weight-compatible with torchvision."""
    return AlexNet(CFGS["alexnet_owt"], **kwargs)
