"""Plain-text rendering shared by the command line and the reports (no third-party dependency)."""
from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["fmt_count", "fmt_shape", "fmt_si", "fmt_stated", "md_table", "text_table"]


def fmt_count(n: float) -> str:
    """An exact count with thousands separators: 60965224 -> '60,965,224'."""
    return f"{int(n):,}"


def fmt_si(n: float, unit: str = "") -> str:
    """A rounded figure for reading: 724406816 -> '724.4M', 3.86e9 -> '3.86G'."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            value = n / scale
            digits = 2 if value < 10 else 1
            return f"{value:.{digits}f}{suffix}{unit}"
    return f"{n:g}{unit}"


def fmt_stated(value: float, rel_tol: float) -> str:
    """A paper's figure at the precision it was printed with (rel_tol = half a unit of its last digit):
    (4866e6, 0.5e6/4866e6) -> '4.866G', (60e6, 5e6/60e6) -> '60M', (60_000, 0) -> '60,000'."""
    if rel_tol == 0:
        return fmt_count(value)
    scale, suffix = next(((s, x) for s, x in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")) if value >= s),
                         (1.0, ""))
    unit = 2 * rel_tol * value / scale
    decimals = max(0, -math.floor(math.log10(unit) + 1e-9))
    return f"{value / scale:.{decimals}f}{suffix}"


def fmt_shape(shape: Sequence[int]) -> str:
    """(3, 227, 227) -> '3×227×227'."""
    return "×".join(str(d) for d in shape)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[bool] | None = None,
               ) -> str:
    """Columns padded to their widest cell; `right[i]` right-aligns column i (numbers)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    right = right or [False] * len(headers)
    lines = []
    for k, row in enumerate(cells):
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[bool] | None = None,
             ) -> list[str]:
    """A markdown table as lines; `right[i]` right-aligns column i; a '|' inside a cell is escaped."""
    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    right = right or [False] * len(headers)
    return [line(headers), "|" + "|".join("---:" if r else "---" for r in right) + "|", *map(line, rows)]
