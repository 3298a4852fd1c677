"""Xception: Table 3's parameter count, Fig. 5's flows and grid sizes, the separable convolutions, the dropout
that drops (§4.3), and timm's legacy_xception figures and outputs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import convzoo
from convzoo.models.xception import EntryExitBlock, MiddleFlowBlock, SeparableConv2d
from helpers import assert_same_as_peer


def _meta(**kwargs) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model("xception", **kwargs)


def test_table3_parameter_count_exactly() -> None:
    """Table 3: 22,855,952 parameters (1000 classes, no fully-connected layers besides the classifier)."""
    assert convzoo.figures("xception")["params"] == 22_855_952
    fc = 2048 * 1000 + 1000
    assert convzoo.count_params(_meta(num_classes=1000)) - convzoo.count_params(_meta(num_classes=10)) == \
        fc - (2048 * 10 + 10)


def test_flow_shapes() -> None:
    """Fig. 5 at 299: conv 3×3/2 "valid": (299 − 3)/2 + 1 = 149; conv 3×3 "valid": 147; each entry-flow module's
    3×3/2 max-pool (pad 1): ⌊(147 + 2 − 3)/2⌋ + 1 = 74 → 37 → ⌊(37 − 1)/2⌋ + 1 = 19; the middle flow keeps
    19×19×728; the exit module pools to ⌊(19 − 1)/2⌋ + 1 = 10, and its separable convolutions keep 10×10."""
    assert (299 - 3) // 2 + 1 == 149 and 149 - 2 == 147
    assert [(147 + 2 - 3) // 2 + 1, (74 + 2 - 3) // 2 + 1, (37 + 2 - 3) // 2 + 1, (19 + 2 - 3) // 2 + 1] == \
        [74, 37, 19, 10]
    assert convzoo.figures("xception")["stages"] == {
        "stem": [64, 147, 147],
        "stages.entry_flow_block1": [128, 74, 74],
        "stages.entry_flow_block2": [256, 37, 37],
        "stages.entry_flow_block3": [728, 19, 19],
        "stages.middle_flow": [728, 19, 19],
        "stages.exit_flow_block": [1024, 10, 10],
        "stages.exit_flow_convs": [2048, 10, 10],
        "features": [2048, 10, 10],
    }


def test_36_convolution_layers_in_14_modules() -> None:
    """§3: 36 convolution layers (the 1×1 shortcuts not counted) in 14 modules, all but the first and last
    with a residual connection: 2 stem convs + 2·3 entry + 3·8 middle + 2 exit + 2 final separable convs."""
    model = _meta()
    separable = [m for m in model.modules() if isinstance(m, SeparableConv2d)]
    assert 2 + len(separable) == 2 + 2 * 3 + 3 * 8 + 2 + 2 == 36
    residual = [m for m in model.modules() if isinstance(m, (EntryExitBlock, MiddleFlowBlock))]
    assert len(residual) == 3 + 8 + 1 == 14 - 2
    assert len(model.stages.middle_flow) == 8


def test_separable_convolution_is_depthwise_then_pointwise() -> None:
    """Depthwise 3×3 with one filter per channel (depth multiplier 1), then 1×1, nothing between (§4.7);
    batch norm after each separable convolution (Fig. 5's caption)."""
    block = _meta().stages.middle_flow[0].residual[0]
    sep = block.conv
    assert [type(m) for m in sep] == [nn.Conv2d, nn.Conv2d]
    assert sep.depthwise.groups == sep.depthwise.in_channels == sep.depthwise.out_channels == 728
    assert sep.depthwise.kernel_size == (3, 3) and sep.pointwise.kernel_size == (1, 1)
    assert isinstance(block.bn, nn.BatchNorm2d)


def test_relu_placement() -> None:
    """Fig. 5: the stem ends in ReLU, so entry module 1 opens with its separable conv; all other residual modules
    open with ReLU ("ReLU, SeparableConv"); the last two separable convs are followed by ReLU."""
    model = _meta()
    first, second = model.stages.entry_flow_block1.residual[0], model.stages.entry_flow_block2.residual[0]
    assert "act" not in dict(first.named_children()) and isinstance(second.act, nn.ReLU)
    assert isinstance(model.stem[-1].act, nn.ReLU)
    assert [type(m) for m in model.stages.exit_flow_convs] == [SeparableConv2d, nn.BatchNorm2d, nn.ReLU] * 2


def test_default_dropout_is_the_imagenet_setting() -> None:
    """§4.3: "For the ImageNet experiments, both models include a dropout layer of rate 0.5 before the logistic
    regression layer"."""
    head = _meta().head
    assert isinstance(head.drop, nn.Dropout) and head.drop.p == 0.5
    assert list(dict(head.named_children())) == ["pool", "flatten", "drop", "fc"]


def test_dropout_really_drops() -> None:
    """Unlike timm's legacy_xception (which computes F.dropout and discards it), two train-mode passes differ
    with dropout 0.5 and agree with dropout 0 (batch norm uses the batch's statistics, the same both times)."""
    x = torch.randn(2, 3, 32, 32)
    for p, differ in ((0.5, True), (0.0, False)):
        torch.manual_seed(0)
        model = convzoo.create_model("xception", num_classes=10, dropout=p).train()
        with torch.no_grad():
            a, b = model(x), model(x)
        assert (not torch.equal(a, b)) is differ, p


def test_timm_figures() -> None:
    """timm 1.0.31 legacy_xception (papers.md): 22,855,952 parameters, 8.357 GMACs at 299."""
    figs = convzoo.figures("xception")
    assert figs["params"] == 22_855_952
    assert abs(figs["macs"] - 8.357e9) < 0.5e6


def test_same_outputs_as_timm_with_10_classes() -> None:
    pytest.importorskip("timm")
    assert_same_as_peer("xception", "timm", "legacy_xception", ours={"num_classes": 10},
                        peer={"num_classes": 10})
