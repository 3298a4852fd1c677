"""The report's renderings: JSON (schema version, round trip), CSV, markdown and the terminal table."""
from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest
import torch.nn.functional as F
from torch import Tensor, nn

from convzoo.analysis import Report, analyze
from convzoo.analysis.report import SCHEMA_VERSION, visible_rows


@pytest.fixture(scope="module")
def resnet18() -> Report:
    return analyze("resnet18")


class Pooled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(self.conv(x), 2)


def test_json_has_a_schema_version_units_and_round_trips(resnet18: Report) -> None:
    d = json.loads(resnet18.to_json())
    assert d["schema_version"] == SCHEMA_VERSION == 1
    assert d["units"]["flops"] == "2 × macs" and d["model"] == "resnet18" and d["input_size"] == [3, 224, 224]
    assert d["totals"]["macs"] == 1_814_073_344 and d["totals"]["flops"] == 2 * 1_814_073_344
    assert d["totals"]["weight_bytes"] == {"fp32": 4 * 11_689_512, "fp16": 2 * 11_689_512, "int8": 11_689_512}
    assert d["totals"]["input_range"] == [1, None]
    assert {c["kind"]: c["seen"] for c in d["census"]} == {"convolution": 20, "pooling": 2}
    conv1 = next(r for r in d["rows"] if r["name"] == "stem.conv")
    assert conv1["kernel"] == [7, 7] and conv1["macs"] == 112 * 112 * 64 * 7 * 7 * 3 and conv1["rf"] == [7, 7]
    assert Report.from_dict(d) == resnet18
    with pytest.raises(ValueError, match="schema version 2"):
        Report.from_dict({**d, "schema_version": 2})


def test_report_is_frozen(resnet18: Report) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        resnet18.model = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        resnet18.rows[0].macs = 0  # type: ignore[misc]


def test_csv_has_one_line_per_leaf_and_folds_by_depth(resnet18: Report) -> None:
    leaves = list(csv.DictReader(io.StringIO(resnet18.to_csv())))
    assert len(leaves) == sum(r.leaf for r in resnet18.rows)
    assert sum(int(r["params"]) for r in leaves) == resnet18.totals.params
    assert leaves[0]["name"] == "stem.conv" and leaves[0]["output_shape"] == "64x112x112"
    top = list(csv.DictReader(io.StringIO(resnet18.to_csv(depth=1))))
    assert [r["name"] for r in top] == ["stem", "stages", "head"] and all(r["folded"] == "1" for r in top)
    assert sum(int(r["params"]) for r in top) == resnet18.totals.params
    assert sum(int(r["macs"]) for r in top) == resnet18.totals.macs


def test_depth_shows_containers_above_their_folded_children(resnet18: Report) -> None:
    shown = [(r.name, folded) for r, folded in visible_rows(resnet18, 2)]
    assert ("stages", False) in shown and ("stages.conv3_x", True) in shown
    assert not any(name.startswith("stages.conv3_x.") for name, _ in shown)
    table = resnet18.to_table(depth=2)
    assert "stages.conv3_x " in table and "stages.conv3_x.0" not in table


def test_markdown_and_table_carry_totals_and_labelled_units(resnet18: Report) -> None:
    md = resnet18.to_markdown()
    lines = md.splitlines()
    assert lines[2].startswith("| layer | type | window |") and set(lines[3]) <= set("|-:")
    assert "| stem.conv | Conv2d | 7×7 s2 p3 | 3×224×224 | 64×112×112 | 9,408 | 118,013,952 | 7 | 2 |" in md
    table = resnet18.to_table()
    assert table.splitlines()[0] == "resnet18 at 3×224×224 (MACs per image; FLOPs = 2 × MACs)"
    assert "FLOPs = 2 × MACs = 3,628,146,688" in table and "diagnostics: none" in table
    assert "435×435 pixels, jump 32, at the input of head.pool" in table


def test_diagnostics_are_rendered_everywhere() -> None:
    report = analyze(Pooled(), (3, 10, 10), find_input_range=False)
    assert not report.complete and report.totals.layers_status == "partial" and report.totals.rf_status == "complete"
    assert "[census] (forward): functional 1 pooling" in report.to_table()
    assert "- [census] (forward): functional 1 pooling" in report.to_markdown()
    assert json.loads(report.to_json())["diagnostics"][0]["kind"] == "census"
