"""Renderings of compared paper tables: terminal text, markdown, CSV and JSON (pure functions of the comparison).

Each printed figure is followed by ours and the difference ours − paper, in the paper's printed unit and in
percent. Tuples (shapes, channel lists) are equal or not. A row the paper's own figures cannot reproduce
carries a numbered note, listed under the table.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from ..render import md_table, text_table
from .common import Cell, Column, Comparison, Value

__all__ = ["fmt_diff", "fmt_ours", "fmt_paper", "to_csv", "to_dict", "to_json", "to_markdown", "to_text"]


def _join(col: Column, v: Sequence[int]) -> str:
    return (col.sep or "×").join(str(x) for x in v)


def _digits(col: Column) -> int:
    """Ours is shown two decimals finer than the paper prints, or exactly where the paper prints counts."""
    return 0 if col.unit == 1 else col.digits + 2


def fmt_paper(col: Column, v: Value | None) -> str:
    """The figure as transcribed: 4866, 4.2, 2.7 (a row may print more digits than its column)."""
    if v is None:
        return ""
    return _join(col, v) if isinstance(v, tuple) else f"{v:,}"


def fmt_ours(col: Column, v: Value) -> str:
    return _join(col, v) if isinstance(v, tuple) else f"{v / col.unit:,.{_digits(col)}f}"


def fmt_diff(cell: Cell) -> str:
    if not cell.compared:
        return ""
    if cell.diff is None:
        return "=" if cell.within else "≠"
    if cell.diff == 0:
        return "0"
    return f"{cell.diff:+,.{_digits(cell.column)}f} ({cell.diff_pct:+.2f}%)"


def _headers(cmp: Comparison) -> list[str]:
    heads = [cmp.table.row_header]
    for col in cmp.table.columns:
        heads += [f"{col.header}: paper", "ours", "Δ"]
    return [*heads, "measured on", "note"]


def _body(cmp: Comparison) -> tuple[list[list[str]], list[str]]:
    """Table cells, and the numbered notes they point to (rows sharing a note share its number)."""
    body, texts, labels = [], [], []
    for r in cmp.rows:
        cells = [r.row.label]
        for c in r.cells:
            cells += [fmt_paper(c.column, c.paper), fmt_ours(c.column, c.ours), fmt_diff(c)]
        mark = ""
        if r.row.note:
            if r.row.note not in texts:
                texts.append(r.row.note)
                labels.append([])
            k = texts.index(r.row.note)
            labels[k].append(r.row.label)
            mark = f"[{k + 1}]"
        body.append([*cells, r.row.measured_on, mark])
    return body, [f"{', '.join(who)}: {text}" for who, text in zip(labels, texts)]


def _caption(cmp: Comparison) -> tuple[str, str]:
    t = cmp.table
    return f"{t.source}: {t.title}", f"{t.paper}, {t.source}"


_UNITS = ("Multiply-adds (the papers' mult-adds, ops and FLOPs) are MACs: multiply-accumulates per image of the "
          "convolutions and fully-connected layers, bias excluded (elsewhere convzoo also shows FLOPs = 2 × MACs). "
          "Δ = ours − paper, in the printed unit and in % of the printed figure")


def to_text(comparisons: Sequence[Comparison]) -> str:
    blocks = []
    for cmp in comparisons:
        title, source = _caption(cmp)
        body, notes = _body(cmp)
        right = [False] + [True] * (3 * len(cmp.table.columns)) + [False, False]
        lines = [title, source, "", text_table(_headers(cmp), body, right=right)]
        lines += ["", *[f"[{i}] {n}" for i, n in enumerate(notes, 1)]] if notes else []
        lines += [f"- {n}" for n in cmp.table.notes]
        blocks.append("\n".join(lines))
    return "\n\n".join([*blocks, _UNITS])


def to_markdown(comparisons: Sequence[Comparison], level: int = 3) -> str:
    blocks = []
    for cmp in comparisons:
        title, source = _caption(cmp)
        body, notes = _body(cmp)
        heads = _headers(cmp)
        right = [False] + [True] * (3 * len(cmp.table.columns)) + [False, False]
        lines = [f"{'#' * level} {title}", "", f"{source}.", "", *md_table(heads, body, right)]
        lines += ["", *[f"{i}. {n}" for i, n in enumerate(notes, 1)]] if notes else []
        lines += ["", *[f"- {n}" for n in cmp.table.notes]] if cmp.table.notes else []
        blocks.append("\n".join(lines))
    return "\n\n".join([*blocks, f"{_UNITS}."])


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 9)


def _unit(u: float) -> float | int:
    return int(u) if u == int(u) else u


def _plain(v: Value | None) -> Any:
    return list(v) if isinstance(v, tuple) else v


def to_dict(comparisons: Sequence[Comparison]) -> dict[str, Any]:
    tables = []
    for cmp in comparisons:
        t = cmp.table
        rows = [{"label": r.row.label, "model": r.row.model, "input_size": list(r.row.input_size),
                 "layers": list(r.row.layers), "note": r.row.note,
                 "cells": [{"column": c.column.key, "header": c.column.header, "unit": _unit(c.column.unit),
                            "paper": _plain(c.paper), "ours": _plain(c.ours), "diff": _round(c.diff),
                            "diff_pct": _round(c.diff_pct), "tol": c.tol, "within": c.within} for c in r.cells]}
                for r in cmp.rows]
        tables.append({"family": t.family, "key": t.key, "source": t.source, "title": t.title,
                       "paper": str(t.paper), "notes": list(t.notes), "rows": rows})
    return {"units": {"paper": "as printed, in units of `unit` counts", "ours": "counts (not scaled by `unit`)",
                      "diff": "ours / unit − paper, in printed units", "diff_pct": "100 · diff / paper",
                      "macs": "multiply-accumulates per image, conv + fc, bias excluded (FLOPs = 2 × MACs)"},
            "tables": tables}


def to_json(comparisons: Sequence[Comparison]) -> str:
    return json.dumps(to_dict(comparisons), indent=1, ensure_ascii=False)


_CSV = ["family", "table", "row", "column", "unit", "paper", "ours", "ours_count", "diff", "diff_pct", "tol", "within",
        "note"]


def to_csv(comparisons: Sequence[Comparison]) -> str:
    """One line per printed figure (long format): `paper`, `ours` and `diff` in the printed unit, `ours_count`
    in counts."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_CSV)
    for cmp in comparisons:
        for r in cmp.rows:
            for c in r.cells:
                cells = [cmp.table.family, cmp.table.key, r.row.label, c.column.key, _unit(c.column.unit),
                         "" if c.paper is None else fmt_paper(c.column, c.paper).replace(",", ""),
                         *([_join(c.column, c.ours)] * 2 if isinstance(c.ours, tuple) else
                           [round(c.ours / c.column.unit, 6), c.ours]),
                         "" if c.diff is None else round(c.diff, 6),
                         "" if c.diff_pct is None else round(c.diff_pct, 4), c.tol,
                         "" if c.within is None else int(c.within), r.row.note or ""]
                writer.writerow(cells)
    return buf.getvalue()
