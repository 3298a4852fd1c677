"""MobileNet v2: Table 2's shapes, Table 1's block cost, channel rounding, widths, and torchvision equality."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.counting import count_params, stage_shapes
from convzoo.meta import build_on_meta
from convzoo.models.mobilenet_v2 import TABLE_2, InvertedResidual, MobileNetV2, make_divisible
from helpers import assert_same_as_peer

WIDTHS = (1.0, 0.75, 0.5, 0.35, 1.4)


def _macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module.eval()(torch.empty(shape, device="meta"))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("width", WIDTHS)
def test_same_as_torchvision_at_each_width(width: float) -> None:
    opts = {"width_mult": width, "num_classes": 10}
    diff = assert_same_as_peer("mobilenet_v2", "torchvision", "mobilenet_v2", ours=opts, peer=opts,
                               input_size=(3, 64, 64))
    assert diff <= 1e-5


def test_same_as_torchvision_through_a_safetensors_file() -> None:
    pytest.importorskip("safetensors")
    assert_same_as_peer("mobilenet_v2", "torchvision", "mobilenet_v2", input_size=(3, 64, 64),
                        via_file="safetensors")


def test_table2_output_shape_of_every_row() -> None:
    # 224 → conv2d /2 → 112; rows with s = 2 halve it: 112 (row 1, s=1), 56, 28, 14, 14 (s=1), 7, 7 (s=1).
    net = build_on_meta(MobileNetV2)
    expected = {
        "stem": [32, 224 // 2, 224 // 2],
        "stages.bottleneck1": [16, 112, 112],
        "stages.bottleneck2": [24, 112 // 2, 112 // 2],
        "stages.bottleneck3": [32, 56 // 2, 56 // 2],
        "stages.bottleneck4": [64, 28 // 2, 28 // 2],
        "stages.bottleneck5": [96, 14, 14],
        "stages.bottleneck6": [160, 14 // 2, 14 // 2],
        "stages.bottleneck7": [320, 7, 7],
        "stages.conv2d_1x1": [1280, 7, 7],
        "features": [1280, 7, 7],
    }
    assert stage_shapes(net, (3, 224, 224)) == expected
    assert [len(getattr(net.stages, f"bottleneck{i + 1}")) for i in range(7)] == [row.n for row in TABLE_2]


@pytest.mark.parametrize(("stride", "d_in", "d_out", "h"), [(1, 32, 32, 28), (2, 64, 96, 28), (1, 96, 96, 14)])
def test_table1_block_cost(stride: int, d_in: int, d_out: int, h: int) -> None:
    """Table 1: h·w·d'·t·d' (expand) + (h/s)·(w/s)·t·d'·k² (depthwise) + (h/s)·(w/s)·t·d'·d'' (project);
    at stride 1 this is the paper's h·w·d'·t(d' + k² + d''). E.g. (1, 32, 32, 28): 28·28·32·6·(32 + 9 + 32)
    = 10,988,544."""
    t, k, w = 6, 3, h
    with torch.device("meta"):
        block = InvertedResidual(d_in, d_out, stride, t)
    ho, wo = h // stride, w // stride
    formula = h * w * d_in * t * d_in + ho * wo * t * d_in * (k * k + d_out)
    if stride == 1:
        assert formula == h * w * d_in * t * (d_in + k * k + d_out)
    assert _macs(block, (1, d_in, h, w)) == formula
    if (stride, d_in, d_out, h) == (1, 32, 32, 28):
        assert formula == 10_988_544


def test_linear_bottleneck_and_shortcuts() -> None:
    net = build_on_meta(MobileNetV2)
    blocks = [b for stage in list(net.stages)[:7] for b in stage]
    for b in blocks:
        project = b.conv.project
        assert not hasattr(project, "act"), "the projection must stay linear (§3.2)"
        assert isinstance(b.conv.depthwise.act, nn.ReLU6)
        assert b.conv.depthwise.conv.groups == b.conv.depthwise.conv.in_channels
    # a shortcut wherever stride is 1 and widths agree: the n − 1 repeats of each row
    assert sum(b.use_shortcut for b in blocks) == sum(row.n - 1 for row in TABLE_2) == 10
    assert not hasattr(blocks[0].conv, "expand")  # t = 1: nothing to expand


def test_channel_rounding_matches_torchvision() -> None:
    from torchvision.models._utils import _make_divisible

    for value in [c * w for c in (16, 24, 32, 64, 96, 160, 320, 1280) for w in (0.25, 0.35, 0.5, 0.75, 1.3, 1.4)]:
        assert make_divisible(value) == _make_divisible(value, 8), value
    assert make_divisible(32 * 0.35) == 16  # 11.2 → 8 is below 90% of 11.2, so 16
    assert make_divisible(24 * 0.75) == 24  # 18 → 16 is below 90% of 18, so 24


@pytest.mark.parametrize(("name", "last"), [("mobilenet_v2", 1280), ("mobilenet_v2_x0_35", 1280),
                                            ("mobilenet_v2_x1_4", 1792)])
def test_last_conv_keeps_1280_below_width_one(name: str, last: int) -> None:
    assert build_on_meta(convzoo.create_model, name=name).num_features == last


@pytest.mark.parametrize(("name", "readme_m"), [("mobilenet_v2", 3.47), ("mobilenet_v2_x0_75", 2.61),
                                                ("mobilenet_v2_x0_5", 1.95), ("mobilenet_v2_x0_35", 1.66),
                                                ("mobilenet_v2_x1_4", 6.06)])
def test_release_params_count_no_batchnorm(name: str, readme_m: float) -> None:
    """The parameter gap: the release README (and Table 4's 3.4M, cut to one decimal) count no BN γ/β."""
    net = build_on_meta(convzoo.create_model, name=name)
    bn = sum(p.numel() for m in net.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert round((count_params(net) - bn) / 1e6, 2) == readme_m
    assert round(count_params(net) / 1e6, 2) != readme_m
    if name == "mobilenet_v2":
        assert (count_params(net), bn) == (3_504_872, 34_112)


# The release README's MACs (M) per width and resolution (224, 192, 160, 128, 96; only 224 for 1.4 and 1.3).
README_MACS = {1.4: (582,), 1.3: (509,), 1.0: (300, 221, 154, 99, 56), 0.75: (209, 153, 107, 69, 39),
               0.5: (97, 71, 50, 32, 18), 0.35: (59, 43, 30, 20, 11)}


@pytest.mark.parametrize("width", sorted(README_MACS))
def test_release_macs_are_truncated_millions(width: float) -> None:
    """Every README row is our count truncated to the million; rounding would miss 8 of the 22 rows."""
    net = build_on_meta(MobileNetV2, width_mult=width)
    for side, readme in zip((224, 192, 160, 128, 96), README_MACS[width]):
        assert convzoo.count_macs(net, (3, side, side)) // 10**6 == readme, (width, side)


def test_width_builders_and_overrides() -> None:
    with torch.device("meta"):
        a = convzoo.create_model("mobilenet_v2", width_mult=0.5)
        b = convzoo.create_model("mobilenet_v2_x0_5")
        assert count_params(a) == count_params(b)
        convzoo.create_model("mobilenet_v2_x0_5", width_mult=0.5)  # restating the width is fine
        with pytest.raises(convzoo.UserError, match=r"width_mult=0\.5"):
            convzoo.create_model("mobilenet_v2_x0_5", width_mult=0.75)
        with pytest.raises(convzoo.UserError, match="width_mult"):
            convzoo.create_model("mobilenet_v2", width_mult=0)
