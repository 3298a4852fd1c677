"""ResNet (He et al. 2015, arXiv:1512.03385): Table 1's FLOPs (multiply-adds) of the 18- to 152-layer networks."""
from __future__ import annotations

from .common import Column, PaperTable, Row, network_figures

__all__ = ["TABLES"]

FLOPS = Column("macs", "FLOPs (×10⁹ multiply-adds)", unit=1e9, digits=1)

TABLE1 = PaperTable(
    "resnet", "table1", "Table 1", "FLOPs of the ImageNet architectures (224 × 224 input)", "network", (FLOPS,), (
        Row("18-layer", {"macs": 1.8}, "resnet18"),
        Row("34-layer", {"macs": 3.6}, "resnet34", off=("macs",),
            note="the Table 1 network has 3.66 G multiply-adds (torchvision's count agrees), which rounds to 3.7"),
        Row("50-layer", {"macs": 3.8}, "resnet50", off=("macs",),
            note="the Table 1 network (stride on the first 1×1 of the bottleneck) has 3.86 G multiply-adds, which "
                 "rounds to 3.9; the printed 3.8 looks truncated"),
        Row("101-layer", {"macs": 7.6}, "resnet101"),
        Row("152-layer", {"macs": 11.3}, "resnet152"),
    ), network_figures,
    ("The paper's bottleneck strides in its first 1×1 convolution; torchvision's \"v1.5\" (`resnet50_v1_5`) "
     "strides in the 3×3 and costs more: 4.09 G at 50 layers.",))

TABLES = (TABLE1,)
