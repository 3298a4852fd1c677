"""ShuffleNet v1 (Zhang et al. 2017, arXiv:1707.01083): Table 1, output channels of Stage2–4 and complexity per
group count g (scale 1×, 224 × 224 input). Sources: the paper; tests/test_family_shufflenet_v1.py."""
from __future__ import annotations

from collections.abc import Sequence

from .common import Column, PaperTable, Row, Value, stage_channels

__all__ = ["TABLES"]

CHANNELS = Column("channels", "Output channels Stage2/3/4", sep="/")
COMPLEXITY = Column("macs_no_fc", "Complexity (MFLOPs), no FC layer", unit=1e6)


def _measure(rows: Sequence[Row]) -> list[dict[str, Value]]:
    """Channels per stage, and MACs without the final fully-connected layer, as Table 1 counts them."""
    out = stage_channels(rows, ("stages.stage2", "stages.stage3", "stages.stage4"))
    for figs in out:  # the classifier reads Stage4's channels and has 1000 outputs at the paper's input
        figs["macs_no_fc"] = int(figs["macs"]) - int(figs["channels"][-1]) * 1000
    return out


TABLE1 = PaperTable(
    "shufflenet_v1", "table1", "Table 1", "ShuffleNet architecture: output channels and complexity per g", "g",
    (CHANNELS, COMPLEXITY), (
        Row("g = 1", {"channels": (144, 288, 576), "macs_no_fc": 143}, "shufflenet_v1_g1"),
        Row("g = 2", {"channels": (200, 400, 800), "macs_no_fc": 140}, "shufflenet_v1_g2"),
        Row("g = 3", {"channels": (240, 480, 960), "macs_no_fc": 137}, "shufflenet_v1_g3"),
        Row("g = 4", {"channels": (272, 544, 1088), "macs_no_fc": 133}, "shufflenet_v1_g4"),
        Row("g = 8", {"channels": (384, 768, 1536), "macs_no_fc": 137}, "shufflenet_v1_g8"),
    ), _measure,
    ("Complexity is the paper's \"MFLOPs\", which counts multiply-adds. Table 1 leaves out the 1000-way "
     "fully-connected layer (with it, g = 2, 4 and 8 would not round to the printed figures), so ours is "
     "shown the same way: the network's MACs minus C_stage4 × 1000. `convzoo info` gives the totals.",))

TABLES = (TABLE1,)
