"""GoogLeNet (Szegedy et al. 2014, arXiv:1409.4842): Table 1's params and ops per layer and Inception module,
and §1's budget of 1.5 billion multiply-adds. Sources: the paper; tests/test_family_googlenet.py, which pins
every row and writes out the arithmetic of the rows that cannot be reproduced.

Table 1 prints params in K = 1024 weights (biases left out) and ops in millions of multiply-adds, to the unit
and sometimes truncated: a figure agrees when it is within one unit.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..meta import build_on_meta
from ..registry import create_model
from .common import Column, PaperTable, Row, Value, layer_figures

__all__ = ["TABLES"]

PARAMS = Column("weights", "params (K = 1024 weights)", unit=1024, tol=1)
OPS = Column("macs", "ops (M)", unit=1e6, tol=1)
_WIDTHS = "the params column disagrees with the row's own filter counts (#1×1 … pool proj), which give ours"


def _row(label: str, params: float, ops: float, *, off: tuple[str, ...] = (), note: str | None = None,
         layers: tuple[str, ...] | None = None) -> Row:
    return Row(label, {"weights": params, "macs": ops}, "googlenet", layers=layers or (f"stages.{label}",),
               off=off, note=note)


def _measure(rows: Sequence[Row]) -> list[dict[str, Value]]:
    """MACs from `analyze`; weights (Table 1 leaves biases out) counted on the network's modules."""
    out = layer_figures(rows)
    net = build_on_meta(create_model, name="googlenet")
    for row, figs in zip(rows, out):
        figs["weights"] = sum(p.numel() for path in row.layers
                              for n, p in net.get_submodule(path).named_parameters() if n.endswith("weight"))
    return out


TABLE1 = PaperTable(
    "googlenet", "table1", "Table 1", "GoogLeNet incarnation of the Inception architecture", "layer",
    (PARAMS, OPS), (
        _row("conv1", 2.7, 34, layers=("stem.conv1",), off=("weights", "macs"),
             note="the printed 2.7 K and 34 M agree with each other (2.7 K · 112²) but not with a 7×7/2 convolution "
                  "from 3 to 64 channels at 112×112, which has 9,408 weights and costs 118 M"),
        _row("conv2", 112, 360, layers=("stem.conv2_reduce", "stem.conv2")),
        _row("inception3a", 159, 128),
        _row("inception3b", 380, 304),
        _row("inception4a", 364, 73, off=("weights",), note=_WIDTHS),
        _row("inception4b", 437, 88),
        _row("inception4c", 463, 100, off=("weights",), note=_WIDTHS),
        _row("inception4d", 580, 119, off=("weights",), note=_WIDTHS),
        _row("inception4e", 840, 170, off=("weights",), note=_WIDTHS),
        _row("inception5a", 1072, 54, off=("weights", "macs"),
             note="the printed 1072 K and 54 M agree with each other (1072 K · 7²) but not with 5a's own filter "
                  "counts, which give ours"),
        _row("inception5b", 1388, 71, off=("weights",), note=_WIDTHS),
        _row("linear", 1000, 1, layers=("head.fc",)),
        Row("total (§1 budget)", {"macs": 1500}, "googlenet", layers=("",), tol={"macs": 50}, off=("macs",),
            note="\"1.5 billion multiply-adds\" is Table 1's ops column summed, whose conv1 row is 84 M short "
                 "of a 7×7×3×64 convolution at 112×112"),
    ), _measure,
    ("Rows between modules (max-pools, LRN, average pool, dropout) hold no weights and do no multiply-adds.",
     "The total is printed as 1.5 billion: agreement within 0.05 G."))

TABLES = (TABLE1,)
