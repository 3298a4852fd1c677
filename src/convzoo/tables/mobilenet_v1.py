"""MobileNet v1 (Howard et al. 2017, arXiv:1704.04861): Tables 4 and 5 (the ablations of §4.1), Table 6 (width
multiplier α) and Table 7 (resolution multiplier ρ). Figures as printed; sources: the paper, and
tests/test_family_mobilenet_v1.py, which pins every row."""
from __future__ import annotations

from .common import Column, PaperTable, Row, network_figures

__all__ = ["TABLES"]

MADDS = Column("macs", "Million Mult-Adds", unit=1e6)
PARAMS = Column("params", "Million Parameters", unit=1e6, digits=1)
_ACCURACY = "The ImageNet accuracy column needs trained weights and is not reproduced."


def _table(key: str, title: str, rows: tuple[Row, ...], *notes: str) -> PaperTable:
    return PaperTable("mobilenet_v1", key, f"Table {key[-1]}", title, "network", (MADDS, PARAMS), rows,
                      network_figures, (*notes, _ACCURACY))


TABLE4 = _table("table4", "depthwise separable versus full convolution MobileNet", (
    Row("Conv MobileNet", {"macs": 4866, "params": 29.3}, "mobilenet_v1_conv", off=("macs",),
        note="the printed 4866 is our count without the 1024 × 1000 fully-connected layer, which every other "
             "row of Tables 4–7 counts"),
    Row("MobileNet", {"macs": 569, "params": 4.2}, "mobilenet_v1"),
))

TABLE5 = _table("table5", "narrow versus shallow MobileNet", (
    Row("0.75 MobileNet", {"macs": 325, "params": 2.6}, "mobilenet_v1_x0_75"),
    Row("Shallow MobileNet", {"macs": 307, "params": 2.9}, "mobilenet_v1_shallow"),
), "Shallow MobileNet removes the five separable 14 × 14 × 512 layers of Table 1.")

TABLE6 = _table("table6", "width multiplier α (224 × 224 input)", (
    Row("1.0 MobileNet-224", {"macs": 569, "params": 4.2}, "mobilenet_v1"),
    Row("0.75 MobileNet-224", {"macs": 325, "params": 2.6}, "mobilenet_v1_x0_75"),
    Row("0.5 MobileNet-224", {"macs": 149, "params": 1.3}, "mobilenet_v1_x0_5"),
    Row("0.25 MobileNet-224", {"macs": 41, "params": 0.5}, "mobilenet_v1_x0_25"),
), "Channels are int(α·c) (the paper's αM); the printed parameter counts leave out batch-norm γ/β, which "
   "ours include (no row moves by 0.05 M for it).")

TABLE7 = _table("table7", "resolution multiplier ρ (α = 1)", (
    Row("1.0 MobileNet-224", {"macs": 569, "params": 4.2}, "mobilenet_v1", side=224),
    Row("1.0 MobileNet-192", {"macs": 418, "params": 4.2}, "mobilenet_v1", side=192),
    Row("1.0 MobileNet-160", {"macs": 290, "params": 4.2}, "mobilenet_v1", side=160, off=("macs",),
        note="the printed figures are the 224 count times ρ² (eq. 7), but the fully-connected layer does not "
             "shrink with ρ, and at 160 that puts the network's count outside the printed 290"),
    Row("1.0 MobileNet-128", {"macs": 186, "params": 4.2}, "mobilenet_v1", side=128),
), "ρ is set by the input size: the same network measured at 224, 192, 160 and 128.")

TABLES = (TABLE4, TABLE5, TABLE6, TABLE7)
