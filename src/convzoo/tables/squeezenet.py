"""SqueezeNet (Iandola et al. 2016, arXiv:1602.07360): Table 1, output size and parameters (before pruning) of
every layer of SqueezeNet v1.0. Sources: the paper; tests/test_family_squeezenet.py, which pins every row."""
from __future__ import annotations

from collections.abc import Sequence

from .common import Column, PaperTable, Row, Value, layer_figures

__all__ = ["TABLES"]

OUTPUT = Column("output", "output size", sep="x")
PARAMS = Column("params", "#parameter before pruning")


def _measure(rows: Sequence[Row]) -> list[dict[str, Value]]:
    """Table 1 prints sizes as H×W×C; the analysis gives (C, H, W)."""
    out = layer_figures(rows)
    for figs in out:
        shape = figs["output"]
        figs["output"] = (*shape[1:], shape[0]) if isinstance(shape, tuple) and len(shape) == 3 else ()
    return out


def _row(label: str, size: tuple[int, int, int], params: int | None = None, *, off: tuple[str, ...] = (),
         note: str | None = None) -> Row:
    path = f"head.{label}" if label in ("conv10", "avgpool10") else f"features.{label}"
    paper: dict[str, Value] = {"output": size} | ({"params": params} if params is not None else {})
    return Row(label, paper, "squeezenet1_0", layers=(path,), off=off, note=note)


TABLE1 = PaperTable(
    "squeezenet", "table1", "Table 1", "SqueezeNet architectural dimensions", "layer", (OUTPUT, PARAMS), (
        _row("conv1", (111, 111, 96), 14_208),
        _row("maxpool1", (55, 55, 96)),
        _row("fire2", (55, 55, 128), 11_920),
        _row("fire3", (55, 55, 128), 12_432),
        _row("fire4", (55, 55, 256), 45_344),
        _row("maxpool4", (27, 27, 256)),
        _row("fire5", (27, 27, 256), 49_440),
        _row("fire6", (27, 27, 384), 104_880),
        _row("fire7", (27, 27, 384), 111_024),
        _row("fire8", (27, 27, 512), 188_992),
        _row("maxpool8", (13, 12, 512), off=("output",),
             note="\"13x12x512\" is a typo for 13x13x512: fire9, which keeps the map size, is printed at 13x13x512"),
        _row("fire9", (13, 13, 512), 197_184),
        _row("conv10", (13, 13, 1000), 513_000),
        _row("avgpool10", (1, 1, 1000)),
        Row("total", {"params": 1_248_424}, "squeezenet1_0", layers=("",)),
    ), _measure,
    ("Table 1 prints a 224×224 input, but conv1's 111×111 output needs 227 (224 gives ⌊(224 − 7)/2⌋ + 1 = 109): "
     "ours are measured at 227, the crop of the released model.",
     "The sparsity, #bits and #parameter after pruning columns describe Deep Compression of trained weights and "
     "are not reproduced."))

TABLES = (TABLE1,)
