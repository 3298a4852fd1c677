"""Text formatting: a paper's figure is shown at the precision the paper printed it with."""
from __future__ import annotations

import pytest

from convzoo.render import fmt_count, fmt_shape, fmt_si, fmt_stated, md_table, text_table


@pytest.mark.parametrize(("value", "rel_tol", "text"), [
    (4866e6, 0.5e6 / 4866e6, "4.866G"),  # MobileNet Table 4's 4866M: not "4.87G", which would hide a 1M gap
    (60e6, 5e6 / 60e6, "60M"),  # AlexNet's "60 million", one significant figure
    (60_000, 0, "60,000"),  # LeNet-5's exact count
    (25.0e6, 0.05e6 / 25.0e6, "25.0M"),  # ResNeXt Table 1 prints the trailing zero
])
def test_fmt_stated(value: float, rel_tol: float, text: str) -> None:
    assert fmt_stated(value, rel_tol) == text


def test_other_formats() -> None:
    assert fmt_count(60965224) == "60,965,224" and fmt_si(724406816) == "724.4M" and fmt_si(3.86e9) == "3.86G"
    assert fmt_shape((3, 227, 227)) == "3×227×227"
    assert text_table(["a", "n"], [["x", 1], ["yy", 22]], right=[False, True]) == "a    n\n--  --\nx    1\nyy  22"


def test_md_table_aligns_and_escapes() -> None:
    assert md_table(["layer", "MACs"], [["a|b", 12]], right=[False, True]) == [
        "| layer | MACs |", "|---|---:|", "| a\\|b | 12 |"]
