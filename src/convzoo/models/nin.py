"""Network In Network (NiN).

Lin, Chen & Yan, "Network In Network", arXiv:1312.4400 (ICLR 2014): §3.1 and Fig. 2 (the mlpconv layer: a
convolution followed by 1×1 convolutions, "cascaded cross channel parametric pooling", ReLU after each),
§3.2 (global average pooling: the last mlpconv layer has one map per class, averaged, no fully-connected
layer), §4.1 (a max-pooling layer that halves the size after each mlpconv layer but the last; dropout on
the outputs of all mlpconv layers but the last), §4.2 (the CIFAR-10 network).

Configurations, from the authors' released files:
- ``nin_cifar``: the paper's CIFAR-10 network as in its released cuda-convnet definition (NIN/cifar-10_def in
  github.com/mavenlin/cuda-convnet): mlpconv 192-160-96 (5×5, pad 2) → max-pool 3/2 → dropout 0.5;
  192-192-192 (5×5, pad 2) → max-pool 3/2 → dropout 0.5; 192-192-10 (3×3, pad 1) → global average pool.
  Weights N(0, 0.05²), biases 0. 32 → 16 → 8 maps.
- ``nin``: the ImageNet NiN of the Caffe model zoo (gist mavenlin/d802a5849de39225bcc6, "nin_imagenet"):
  mlpconv 96-96-96 (11×11/4) → max-pool 3/2; 256-256-256 (5×5, pad 2) → max-pool 3/2; 384-384-384 (3×3,
  pad 1) → max-pool 3/2 → dropout 0.5; 1024-1024-1000 (3×3, pad 1) → ReLU → average pool. 224 crops; weights
  N(0, σ²) with σ = 0.01 for conv1, conv3 and cccp8 and 0.05 elsewhere, biases 0. 224 → 54 → 27 → 13 → 6
  maps. Its 7,595,176 parameters in float32 are 30.4 MB = 29.0 MiB, the size of the released snapshot
  ("29 MB"). The paper itself gives no parameter or operation counts.
Both releases round pooled sizes up (Caffe's and cuda-convnet's pooling), so the pools here use
``ceil_mode=True``; rounding down would give 54 → 26 → 12 → 5, where the release's 6×6 pool4 does not fit.

The class maps come from the last 1×1 convolution; it sits in ``head`` with its ReLU, the global average
pool and the flatten, so ``num_features`` is the width before it (1024 / 192) and ``num_classes`` sets its
output channels.

Deviations from the paper:
- none in the layers. The global average pool is adaptive (the releases use fixed 6×6 and 8×8 average
  pools), so the same network takes any input from 39×39 (``nin``) or 4×4 (``nin_cifar``) up: a
  round-up pool turns a 2×2 or 3×3 map into 1×1, and each pool needs at least a 2×2 map.
- ``nin`` is the release, not a network of the paper (which reports no ImageNet experiment); as released,
  it drops out only after the third mlpconv layer's pool, where §4.1 drops out after every one but the last.
- The Caffe model zoo's CIFAR-10 model (gist mavenlin/e56253735ef32c3c296d, as ported by Lasagne's recipes)
  averages in its second pool; the paper (§4.1) and the authors' cuda-convnet definition max-pool, which
  ``nin_cifar`` follows.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..base import ZooModel
from ..meta import is_meta
from ..registry import Paper, register_model

__all__ = ["CFGS", "MlpConvCfg", "NiN", "NiNCfg", "mlpconv"]

NIN = Paper("Lin, Chen & Yan", 2013, "Network In Network", "arXiv:1312.4400 (ICLR 2014)")


@dataclass(frozen=True)
class MlpConvCfg:
    """One mlpconv layer (Fig. 2): a k×k convolution, then two 1×1 convolutions ("cccp"), ReLU after each."""

    widths: tuple[int, int, int]  # output channels of conv, cccp, cccp (the last block's last one: classes)
    kernel: int
    stride: int = 1
    padding: int = 0
    init_std: tuple[float, float, float] = (0.05, 0.05, 0.05)  # Gaussian σ of the three, as released
    pool: bool = True  # 3×3/2 max-pool after it (§4.1); the last block is followed by global pooling instead
    dropout: bool = False  # dropout after the pool (§4.1; the ImageNet release keeps only the last one)


@dataclass(frozen=True)
class NiNCfg:
    """A stack of mlpconv layers, then global average pooling (Fig. 2)."""

    blocks: tuple[MlpConvCfg, ...]


CFGS: dict[str, NiNCfg] = {
    "nin": NiNCfg((  # Caffe model zoo, nin_imagenet
        MlpConvCfg((96, 96, 96), 11, stride=4, init_std=(0.01, 0.05, 0.05)),
        MlpConvCfg((256, 256, 256), 5, padding=2),
        MlpConvCfg((384, 384, 384), 3, padding=1, init_std=(0.01, 0.05, 0.05), dropout=True),
        MlpConvCfg((1024, 1024, 1000), 3, padding=1, init_std=(0.05, 0.05, 0.01), pool=False),
    )),
    "nin_cifar": NiNCfg((  # §4.2; github.com/mavenlin/cuda-convnet NIN/cifar-10_def
        MlpConvCfg((192, 160, 96), 5, padding=2, dropout=True),
        MlpConvCfg((192, 192, 192), 5, padding=2, dropout=True),
        MlpConvCfg((192, 192, 10), 3, padding=1, pool=False),
    )),
}


def mlpconv(in_chans: int, cfg: MlpConvCfg, index: int, cccp_offset: int, stop: int = 3) -> nn.Sequential:
    """The first `stop` layers of mlpconv layer `index` (1-based), named as in the releases: conv{i},
    cccp{j}, cccp{j+1}, each followed by its ReLU (``*_relu``). `cccp_offset` is the number of cccp layers
    before it."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for k, width in enumerate(cfg.widths[:stop]):
        name = f"conv{index}" if k == 0 else f"cccp{cccp_offset + k}"
        size, stride, pad = (cfg.kernel, cfg.stride, cfg.padding) if k == 0 else (1, 1, 0)
        layers[name] = nn.Conv2d(in_chans, width, size, stride, pad)
        layers[f"{name}_relu"] = nn.ReLU()
        in_chans = width
    return nn.Sequential(layers)


class NiN(ZooModel):
    """mlpconv → pool (→ dropout) … mlpconv → global average pool (Fig. 2)."""

    def __init__(self, cfg: NiNCfg, *, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        chans = in_chans
        last = len(cfg.blocks)
        for i, block in enumerate(cfg.blocks, start=1):
            # the last block's final 1×1 convolution makes the class maps: it goes to the head
            layers[f"mlpconv{i}"] = mlpconv(chans, block, i, 2 * (i - 1), stop=2 if i == last else 3)
            chans = block.widths[1] if i == last else block.widths[2]
            if block.pool:
                layers[f"pool{i}"] = nn.MaxPool2d(3, 2, ceil_mode=True)
            if block.dropout:
                layers[f"drop{i}"] = nn.Dropout(dropout)
        self.features = nn.Sequential(layers)
        self.num_features = chans
        cccp = f"cccp{2 * last}"
        self.head = nn.Sequential(OrderedDict([
            (cccp, nn.Conv2d(chans, num_classes, 1)),
            (f"{cccp}_relu", nn.ReLU()),
            ("pool", nn.AdaptiveAvgPool2d(1)),
            ("flatten", nn.Flatten(1)),
        ]))
        init_released(self)

    def forward_features(self, x: Tensor) -> Tensor:  # nin: (N, 3, 224, 224) -> (N, 1024, 6, 6)
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def init_released(model: NiN) -> None:
    """The released configurations' fillers: weights N(0, σ²) with σ per layer (`MlpConvCfg.init_std`),
    biases 0 (Caffe "gaussian"/"constant" fillers; cuda-convnet initW)."""
    if is_meta(model):
        return
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    stds = [s for block in model.cfg.blocks for s in block.init_std]
    for conv, std in zip(convs, stds, strict=True):
        nn.init.normal_(conv.weight, 0.0, std)
        nn.init.zeros_(conv.bias)


@register_model(paper=NIN, input_size=(3, 224, 224), config=CFGS["nin"],
                deviations=("the authors' Caffe model-zoo release; the paper reports no ImageNet network",
                            "dropout only after the third mlpconv layer's pool, as released (§4.1: after every "
                            "mlpconv layer but the last)",
                            "global average pool adaptive instead of a fixed 6×6 average pool"),
                input_hint="the release trains on 224×224 crops")
def nin(**kwargs: Any) -> NiN:
    """NiN for ImageNet: four mlpconv layers (Caffe model zoo)."""
    return NiN(CFGS["nin"], **kwargs)


@register_model(paper=NIN, input_size=(3, 32, 32), config=CFGS["nin_cifar"],
                deviations=("global average pool adaptive instead of a fixed 8×8 average pool",),
                input_hint="the paper uses 32×32 CIFAR-10 images")
def nin_cifar(**kwargs: Any) -> NiN:
    """NiN for CIFAR-10 (§4.2): three mlpconv layers, 192-160-96, 192-192-192, 192-192-10."""
    return NiN(CFGS["nin_cifar"], **{"num_classes": 10, **kwargs})
