"""VGG (Simonyan & Zisserman 2014, arXiv:1409.1556): Table 2, parameters of configurations A–E in millions."""
from __future__ import annotations

from .common import Column, PaperTable, Row, network_figures

__all__ = ["TABLES"]

PARAMS = Column("params", "Number of parameters (in millions)", unit=1e6)

TABLE2 = PaperTable(
    "vgg", "table2", "Table 2", "number of parameters of configurations A–E", "configuration", (PARAMS,), (
        Row("A", {"params": 133}, "vgg11"),
        Row("A-LRN", {"params": 133}, "vgg11_lrn"),
        Row("B", {"params": 133}, "vgg13"),
        Row("C", {"params": 134}, "vgg16_c"),
        Row("D", {"params": 138}, "vgg16"),
        Row("E", {"params": 144}, "vgg19"),
    ), network_figures,
    ("Table 2 prints A and A-LRN in one cell; LRN layers hold no parameters.",))

TABLES = (TABLE2,)
