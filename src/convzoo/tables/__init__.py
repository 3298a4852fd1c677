"""The papers' own tables, reproduced side by side with ours (``convzoo table FAMILY``).

One module per family holds its tables as data (`PaperTable`: the printed figures, their source, and a note on
every figure the paper's own architecture cannot reproduce); `compare` measures ours on the ``meta`` device;
`to_text`, `to_markdown`, `to_csv` and `to_json` render the comparison.

    >>> from convzoo import tables
    >>> [c.table.source for c in tables.compare_family("mobilenet_v1")]
    ['Table 4', 'Table 5', 'Table 6', 'Table 7']
"""
from __future__ import annotations

from ..errors import UserError, closest
from ..registry import list_families, list_models, model_info
from . import alexnet, googlenet, mobilenet_v1, resnet, shufflenet_v1, squeezenet, vgg
from .common import Cell, Column, Compared, Comparison, PaperTable, Row, compare
from .render import to_csv, to_dict, to_json, to_markdown, to_text

__all__ = ["TABLES", "Cell", "Column", "Compared", "Comparison", "PaperTable", "Row", "compare", "compare_family",
           "families", "paper_tables", "to_csv", "to_dict", "to_json", "to_markdown", "to_text"]

TABLES: dict[str, tuple[PaperTable, ...]] = {
    m.TABLES[0].family: m.TABLES for m in (alexnet, vgg, googlenet, squeezenet, mobilenet_v1, shufflenet_v1, resnet)
}


def families() -> list[str]:
    """Families with a paper table, oldest paper first."""
    return [f for f in list_families() if f in TABLES]


def paper_tables(family: str) -> tuple[PaperTable, ...]:
    """The paper tables of `family` (a registered model name stands for its family); `UserError` if none."""
    if family not in list_families() and family in list_models():
        family = model_info(family).family
    if family in TABLES:
        return TABLES[family]
    have = ", ".join(families())
    if family in list_families():
        raise UserError(f"{family} has no paper table in convzoo; families with one: {have}")
    hint = closest(family, families())
    did_you_mean = f"did you mean {', '.join(hint)}? " if hint else ""
    raise UserError(f"unknown family {family!r}; {did_you_mean}families with a paper table: {have}")


def compare_family(family: str) -> list[Comparison]:
    """Every paper table of `family`, compared with ours."""
    return [compare(t) for t in paper_tables(family)]
