"""Inception-v4: Fig. 9's grid and channel arithmetic, Reduction-A's k/l/m/n, timm's figures and weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import convzoo
from convzoo.models.inception_v4 import InceptionV4, ReductionA
from helpers import assert_same_as_peer

TIMM_PARAMS, TIMM_MACS = 42_679_816, 12.254e9  # timm 1.0.31 (papers.md); the paper gives no counts


def _meta(**kwargs: object) -> InceptionV4:
    with torch.device("meta"):
        return convzoo.create_model("inception_v4", **kwargs)  # type: ignore[return-value]


def test_stem_arithmetic() -> None:
    """Fig. 3: 299 → 149 → 147 → 147 → 73 (64 + 96) → 71 (96 + 96) → 35 (192 + 192)."""
    assert (299 - 3) // 2 + 1 == 149 and 149 - 2 == 147 and (147 - 3) // 2 + 1 == 73
    assert 73 - 2 == 71 and (71 - 3) // 2 + 1 == 35
    shapes: dict[str, list[int]] = {}
    stem = _meta().stem
    for name, part in stem.named_children():
        part.register_forward_hook(lambda m, a, out, name=name: shapes.update({name: list(out.shape[1:])}))
    with torch.no_grad():
        stem(torch.empty(1, 3, 299, 299, device="meta"))
    assert shapes == {"conv_1a": [32, 149, 149], "conv_2a": [32, 147, 147], "conv_2b": [64, 147, 147],
                      "mixed_3a": [64 + 96, 73, 73], "mixed_4a": [96 + 96, 71, 71], "mixed_5a": [192 + 192, 35, 35]}


def test_block_output_shapes() -> None:
    """Fig. 9: 35×35×384 after the stem and Inception-A, 17×17×1024 after Reduction-A and Inception-B,
    8×8×1536 after Reduction-B and Inception-C."""
    stages = convzoo.figures("inception_v4")["stages"]
    assert stages["stem"] == [384, 35, 35]
    assert [stages[f"stages.inception_a{i}"] for i in range(1, 5)] == [[4 * 96, 35, 35]] * 4
    assert (35 - 3) // 2 + 1 == 17 and stages["stages.reduction_a"] == [384 + 256 + 384, 17, 17] == [1024, 17, 17]
    assert [stages[f"stages.inception_b{i}"] for i in range(1, 8)] == [[384 + 256 + 256 + 128, 17, 17]] * 7
    assert (17 - 3) // 2 + 1 == 8 and stages["stages.reduction_b"] == [192 + 320 + 1024, 8, 8] == [1536, 8, 8]
    assert [stages[f"stages.inception_c{i}"] for i in range(1, 4)] == [[256 + 512 + 512 + 256, 8, 8]] * 3
    assert stages["features"] == [1536, 8, 8]
    assert len(stages) == 1 + 4 + 1 + 7 + 1 + 3 + 1


def test_reduction_a_klmn() -> None:
    """Table 1, Inception-v4 row: k = 192, l = 224, m = 256, n = 384 (Fig. 7)."""
    block = _meta().stages.reduction_a
    assert isinstance(block, ReductionA)
    k, l, m = (c.conv for c in block.branch_3x3dbl)  # noqa: E741  (the paper's symbols)
    n = block.branch_3x3.conv
    assert (k.out_channels, l.out_channels, m.out_channels, n.out_channels) == (192, 224, 256, 384)
    assert k.kernel_size == (1, 1) and l.kernel_size == m.kernel_size == n.kernel_size == (3, 3)
    assert m.stride == n.stride == (2, 2) and m.padding == n.padding == (0, 0)  # "V"
    assert isinstance(block.branch_pool, nn.MaxPool2d)
    assert block.out_chans == 384 + 256 + 384 == 1024


def test_factorised_convolutions_and_pools() -> None:
    model = _meta()
    b = model.stages.inception_b1
    assert [c.conv.kernel_size for c in b.branch_7x7dbl] == [(1, 1), (7, 1), (1, 7), (7, 1), (1, 7)]  # release order
    assert [c.conv.kernel_size for c in b.branch_7x7] == [(1, 1), (1, 7), (7, 1)]
    pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 4 + 7 + 3 and not any(p.count_include_pad for p in pools)  # TF 'SAME' averaging


def test_timm_figures() -> None:
    figs = convzoo.figures("inception_v4")
    assert figs["params"] == TIMM_PARAMS and abs(figs["macs"] - TIMM_MACS) < 0.5e6
    assert figs["macs"] == 12_253_974_624


def test_defaults() -> None:
    model = _meta()
    assert model.drop_rate == 0.2  # Fig. 9: dropout, keep 0.8
    assert all(bn.eps == 1e-3 for bn in model.modules() if isinstance(bn, nn.BatchNorm2d))


def test_same_outputs_as_timm_with_10_classes() -> None:
    """At 139 the 8×8 grid is 3×3 (139 → 69 → 67 → 67 → 33 → 31 → 15 → 7 → 3), so the Inception-C 1×3/3×1
    kernels see more than their centre tap: a swapped orientation would show (at 75 the grid is 1×1)."""
    pytest.importorskip("timm")
    assert (139 - 3) // 2 + 1 == 69 and (67 - 3) // 2 + 1 == 33 and (31 - 3) // 2 + 1 == 15
    assert (15 - 3) // 2 + 1 == 7 and (7 - 3) // 2 + 1 == 3
    diff = assert_same_as_peer("inception_v4", "timm", "inception_v4", ours={"num_classes": 10},
                               peer={"num_classes": 10}, input_size=(3, 139, 139))
    assert diff == 0.0
