"""The papers' tables as data, and their comparison with what convzoo computes.

A `PaperTable` holds a paper's printed figures row by row (`Row.paper`, in the units the paper prints them:
569 for "569" million mult-adds) and a `measure` function that computes ours for the same rows (on the
``meta`` device, at the table's input sizes). `compare` puts the two side by side: the difference in the
printed unit and in percent, and whether ours agrees within the printed precision (`Column.tol`).

A row whose printed figure our faithful build cannot reproduce names the columns concerned in `Row.off` and
says why in `Row.note`; the tests require every other figure to agree and every listed one to stay outside
the printed precision, so a note cannot outlive its reason. Units: MACs are conv + fc multiply-accumulates
per image, bias excluded (the papers' "mult-adds", "ops", "FLOPs" of ResNet and ShuffleNet).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..analysis import LayerRecord, Report, analyze
from ..counting import count_macs, count_params, stage_shapes
from ..meta import build_on_meta
from ..registry import Paper, create_model, model_info

__all__ = ["Cell", "Column", "Compared", "Comparison", "PaperTable", "Row", "Value", "compare", "layer_figures",
           "layer_record", "network_figures", "stage_channels"]

Value = float | tuple[int, ...]  # a count, or a shape / list of widths (compared exactly)


@dataclass(frozen=True)
class Column:
    """One figure a table prints for each row.

    Args:
        key: what `PaperTable.measure` returns for it ("params", "macs", "neurons", "output", "channels").
        header: the paper's heading, with its unit ("Million Mult-Adds").
        unit: the printed unit in counts (1e6 for millions; 1 for exact counts).
        digits: decimals the paper prints.
        tol: agreement allowed, in printed units; None: half the last printed digit.
        sep: for tuple values (shapes, widths): how the paper joins them ("×", "/"); they must be equal.
    """

    key: str
    header: str
    unit: float = 1.0
    digits: int = 0
    tol: float | None = None
    sep: str = ""

    @property
    def tolerance(self) -> float:
        """Agreement allowed, in printed units (0 for tuples, which must be equal)."""
        if self.sep:
            return 0.0
        return self.tol if self.tol is not None else 0.5 * 10.0 ** -self.digits


@dataclass(frozen=True)
class Row:
    """One row of a paper table: its printed figures, and the network (and layers) ours is measured on.

    Args:
        label: the row as the paper names it.
        paper: printed figures by column key, in printed units; a column left out is blank in the paper.
        model: the registered network measured.
        side: square input side; None: the registered input size.
        layers: module paths that make up the row in per-layer tables (their figures are summed).
        off: the columns whose printed figure ours does not reproduce within the printed precision.
        note: why, in one sentence (required when `off` is not empty).
        tol: per-column tolerances for this row only, in printed units (a total printed more coarsely).
    """

    label: str
    paper: Mapping[str, Value]
    model: str
    side: int | None = None
    layers: tuple[str, ...] = ()
    off: tuple[str, ...] = ()
    note: str | None = None
    tol: Mapping[str, float] = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, int, int]:
        size = model_info(self.model).input_size
        return size if self.side is None else (size[0], self.side, self.side)

    @property
    def measured_on(self) -> str:
        """What ours is: the layers of a per-layer row, or the network and its input side."""
        return " + ".join(p or "(all)" for p in self.layers) if self.layers else f"{self.model} @ {self.input_size[1]}"


@dataclass(frozen=True)
class PaperTable:
    """A table of one paper, the figures it prints, and how ours are measured."""

    family: str
    key: str  # "table6": a short handle, unique within the family
    source: str  # where the paper prints it: "Table 6", "§3.5"
    title: str
    row_header: str  # the heading of the label column ("network", "layer", "g")
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    measure: Callable[[Sequence[Row]], list[dict[str, Value]]] = field(repr=False)
    notes: tuple[str, ...] = ()  # remarks on the whole table (input size, columns left out)

    @property
    def paper(self) -> Paper:
        return model_info(self.rows[0].model).paper


@dataclass(frozen=True)
class Cell:
    """One printed figure next to ours."""

    column: Column
    paper: Value | None  # None: the paper leaves the cell blank
    ours: Value  # in counts (not printed units) for numbers
    tol: float

    @property
    def compared(self) -> bool:
        return self.paper is not None

    @property
    def diff(self) -> float | None:
        """ours − paper, in printed units (None for blank cells and tuples)."""
        if self.paper is None or isinstance(self.paper, tuple) or isinstance(self.ours, tuple):
            return None
        return self.ours / self.column.unit - self.paper

    @property
    def diff_pct(self) -> float | None:
        d = self.diff
        return None if d is None or not self.paper else 100.0 * d / float(self.paper)  # type: ignore[arg-type]

    @property
    def within(self) -> bool | None:
        if self.paper is None:
            return None
        if isinstance(self.paper, tuple) or isinstance(self.ours, tuple):
            return tuple(self.paper) == tuple(self.ours)  # type: ignore[arg-type]
        return abs(self.diff) <= self.tol * (1 + 1e-9)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Compared:
    row: Row
    cells: tuple[Cell, ...]

    @property
    def outside(self) -> tuple[str, ...]:
        """Keys of the columns whose printed figure ours does not reproduce."""
        return tuple(c.column.key for c in self.cells if c.within is False)


@dataclass(frozen=True)
class Comparison:
    table: PaperTable
    rows: tuple[Compared, ...]


def compare(table: PaperTable) -> Comparison:
    """Measure ours for every row of `table` and put each printed figure next to it."""
    measured = table.measure(table.rows)
    rows = []
    for row, ours in zip(table.rows, measured, strict=True):
        cells = tuple(Cell(col, row.paper.get(col.key), ours[col.key], row.tol.get(col.key, col.tolerance))
                      for col in table.columns)
        rows.append(Compared(row, cells))
    return Comparison(table, tuple(rows))


# --- measuring ------------------------------------------------------------------------------------------

def network_figures(rows: Sequence[Row], stages: Sequence[str] = ()) -> list[dict[str, Value]]:
    """Parameters and MACs of each row's whole network at the row's input (`count_params`, `count_macs`),
    and with `stages`, the output channels of those stages (`stage_shapes`) under "channels"."""
    out: list[dict[str, Value]] = []
    for row in rows:
        net = build_on_meta(create_model, name=row.model)
        figs: dict[str, Value] = {"params": count_params(net), "macs": count_macs(net, row.input_size)}
        if stages:
            shapes = stage_shapes(net, row.input_size)
            figs["channels"] = tuple(shapes[s][0] for s in stages)
        out.append(figs)
    return out


def stage_channels(rows: Sequence[Row], stages: Sequence[str]) -> list[dict[str, Value]]:
    """`network_figures` plus the output channels of the named stages."""
    return network_figures(rows, stages)


def _under(name: str, path: str) -> bool:
    return not path or name == path or name.startswith(path + ".")


def layer_record(report: Report, path: str) -> LayerRecord:
    """The first call of the module at `path` in `report`."""
    for r in report.rows:
        if r.name == path:
            return r
    raise KeyError(f"{report.model} has no layer {path!r}")


def layer_figures(rows: Sequence[Row]) -> list[dict[str, Value]]:
    """Per-layer figures from one `analyze` per network: params and MACs summed over each row's layers
    (everything under them), neurons (output elements) and output shape (C, H, W) of its last layer."""
    reports: dict[tuple[str, tuple[int, int, int]], Report] = {}
    out: list[dict[str, Value]] = []
    for row in rows:
        key = (row.model, row.input_size)
        if key not in reports:
            reports[key] = analyze(row.model, row.input_size, find_input_range=False)
        report = reports[key]
        inside = [r for r in report.rows if any(_under(r.name, p) for p in row.layers)]
        last = layer_record(report, row.layers[-1])
        out.append({"params": sum(r.params for r in inside), "macs": sum(r.macs for r in inside),
                    "neurons": last.neurons, "output": tuple(last.output_shape or ())})
    return out
