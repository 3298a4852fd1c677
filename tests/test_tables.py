"""`convzoo.tables` and `convzoo table FAMILY`: the papers' own tables next to ours.

Every printed figure without a note must agree with ours within the printed precision, and every figure a
row lists as off must stay outside it, so a note cannot outlive its reason (nor a new gap go unexplained).
"""
from __future__ import annotations

import csv
import functools
import io
import json

import pytest

import convzoo
from convzoo import tables
from convzoo.cli import main
from convzoo.tables import Cell, Column, Comparison

ALL = [(family, t.key) for family, ts in tables.TABLES.items() for t in ts]


@functools.cache
def _compared(family: str) -> tuple[Comparison, ...]:
    return tuple(tables.compare_family(family))


def _table(family: str, key: str) -> Comparison:
    return next(c for c in _compared(family) if c.table.key == key)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("family", "key"), ALL, ids=[f"{f}-{k}" for f, k in ALL])
def test_rows_agree_within_the_printed_precision_or_carry_a_true_note(family: str, key: str) -> None:
    cmp = _table(family, key)
    for r in cmp.rows:
        printed = {c.column.key for c in r.cells if c.compared}
        assert set(r.row.off) <= printed, (r.row.label, "a row can only be off where the paper prints a figure")
        assert set(r.outside) == set(r.row.off), (r.row.label, [(c.column.key, c.paper, c.ours) for c in r.cells])
        assert bool(r.row.note) == bool(r.row.off), (r.row.label, "a note exactly where a figure is off")
        if r.row.note:
            assert len(r.row.note) > 30 and "\n" not in r.row.note, "one sentence that says why"


@pytest.mark.parametrize(("family", "key"), ALL, ids=[f"{f}-{k}" for f, k in ALL])
def test_tables_are_sourced_and_measured_on_registered_networks(family: str, key: str) -> None:
    cmp = _table(family, key)
    t = cmp.table
    assert t.family == family and t.source and t.title and str(t.paper).count('"') == 2
    assert len({r.row.label for r in cmp.rows}) == len(cmp.rows)
    for r in cmp.rows:
        assert convzoo.model_info(r.row.model).family == family
        assert any(c.compared for c in r.cells), r.row.label


def test_tables_and_registry_quote_the_same_figures_and_gaps() -> None:
    """Where a whole-network row at the registered input prints a figure the registry also holds (ModelInfo),
    the two transcriptions agree, and the row is off exactly where the registry records a gap."""
    checked = []
    for family in tables.TABLES:
        for cmp in _compared(family):
            for r in cmp.rows:
                info = convzoo.model_info(r.row.model)
                if r.row.layers not in ((), ("",)) or r.row.input_size != info.input_size:
                    continue
                for c in r.cells:
                    fig = getattr(info, c.column.key) if c.column.key in ("params", "macs") else None
                    if fig is None or not c.compared:
                        continue
                    assert float(c.paper) * c.column.unit == pytest.approx(fig.value, rel=1e-9), (r.row.label, fig)
                    assert (c.column.key in r.row.off) == (fig.gap is not None), (r.row.label, c.column.key)
                    checked.append((r.row.model, c.column.key))
    assert len(checked) >= 25 and ("googlenet", "macs") in checked and ("resnet50", "macs") in checked


def test_cell_arithmetic() -> None:
    madds = Column("macs", "Million Mult-Adds", unit=1e6)
    assert madds.tolerance == 0.5 and Column("p", "M", unit=1e6, digits=1).tolerance == 0.05
    cell = Cell(madds, 569, 568_740_352, madds.tolerance)
    assert cell.within and round(cell.diff, 6) == -0.259648 and round(cell.diff_pct, 4) == -0.0456
    assert not Cell(madds, 290, 290_675_200, 0.5).within  # Table 7 at 160: 0.68 M over
    assert Cell(madds, 290, 290_500_000, 0.5).within  # the boundary is inside
    shape = Column("output", "output size", sep="x")
    assert shape.tolerance == 0 and Cell(shape, (13, 13, 512), (13, 13, 512), 0).within
    assert Cell(shape, (13, 12, 512), (13, 13, 512), 0).within is False
    assert Cell(madds, None, 1, 0.5).within is None and Cell(madds, None, 1, 0.5).diff is None


def test_mobilenet_v1_reproduces_tables_6_and_7(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "table", "mobilenet_v1")
    assert code == 0 and err == ""
    sections: dict[str, str] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith("Table "):
            current = line.split(":")[0]
        sections[current] = sections.get(current, "") + line + "\n"
    assert {"Table 6", "Table 7"} <= set(sections)
    expected = {
        "Table 6": [("1.0 MobileNet-224", "569", "568.74"), ("0.75 MobileNet-224", "325", "325.40"),
                    ("0.5 MobileNet-224", "149", "149.50"), ("0.25 MobileNet-224", "41", "41.03")],
        "Table 7": [("1.0 MobileNet-224", "569", "568.74"), ("1.0 MobileNet-192", "418", "418.12"),
                    ("1.0 MobileNet-160", "290", "290.68"), ("1.0 MobileNet-128", "186", "186.40")],
    }
    for table, rows in expected.items():
        lines = {line.split("  ")[0]: line.split() for line in sections[table].splitlines()}
        for label, paper, ours in rows:
            cells = lines[label][len(label.split()):]
            assert cells[:2] == [paper, ours], (table, label, cells)
    assert "[1] 1.0 MobileNet-160: " in sections["Table 7"] and "[1]" not in sections["Table 6"]


def test_googlenet_table_per_module(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "table", "googlenet")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("conv", "inception"))}
    assert list(rows) == ["conv1", "conv2", *convzoo.models.googlenet.TABLE1]
    assert rows["inception3a"][1:3] == ["159", "159.50"] and rows["conv1"][1:3] == ["2.7", "9.19"]
    assert rows["conv1"][-1] == "[1]" and rows["inception4c"][-1] == rows["inception5b"][-1] == "[2]"
    assert "5a's own filter counts" in out


@pytest.mark.parametrize("family", ["lenet", "xception"])
def test_family_without_a_table_is_one_line_listing_those_with_one(family: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "table", family)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{family} has no paper table" in err and all(f in err for f in tables.families())


def test_unknown_family_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "table", "mobilenet_v9")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "unknown family 'mobilenet_v9'" in err and "did you mean mobilenet_v1" in err


def test_a_model_name_stands_for_its_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "table", "resnet50")[1] == run(capsys, "table", "resnet")[1]


def test_markdown_parses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "table", "squeezenet", "--format", "md")
    assert code == 0 and out.startswith("### Table 1: ")
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in rows}) == 1  # every row has the header's cells
    assert rows[1].startswith("|---|---:") and len(rows) == 2 + 15
    assert "| maxpool8 | 13x12x512 | 13x13x512 | ≠ |" in out


def test_csv_parses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "table", "shufflenet_v1", "--format", "csv")
    assert code == 0
    records = list(csv.DictReader(io.StringIO(out)))
    assert len(records) == 5 * 2
    g2 = {r["column"]: r for r in records if r["row"] == "g = 2"}
    # Table 1 counts no FC layer: ours is the network's MACs minus the 800 × 1000 of its classifier.
    body = convzoo.figures("shufflenet_v1_g2")["macs"] - 800 * 1000
    assert g2["macs_no_fc"]["paper"] == "140" and g2["macs_no_fc"]["ours_count"] == str(body) == "140036512"
    assert g2["macs_no_fc"]["within"] == "1" and g2["channels"]["within"] == "1"


def test_json_parses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "table", "vgg", "--json")
    assert code == 0
    data = json.loads(out)
    (table,) = data["tables"]
    assert table["source"] == "Table 2" and [r["label"] for r in table["rows"]] == ["A", "A-LRN", "B", "C", "D", "E"]
    d = next(r for r in table["rows"] if r["label"] == "D")
    assert d["cells"][0]["paper"] == 138 and d["cells"][0]["ours"] == convzoo.figures("vgg16")["params"]
    assert all(c["within"] for r in table["rows"] for c in r["cells"])
