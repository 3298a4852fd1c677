"""ResNet / ResNeXt: Table 1 of both papers, the stride placement, torchvision's figures."""
from __future__ import annotations

import pytest
import torch

import convzoo
from convzoo.models.resnet import Bottleneck

# torchvision 0.29.1, measured (papers.md): params and MACs at 224.
TORCHVISION = {
    "resnet18": (11_689_512, 1.814e9),
    "resnet34": (21_797_672, 3.664e9),
    "resnet50_v1_5": (25_557_032, 4.089e9),
    "resnet101_v1_5": (44_549_160, 7.801e9),
    "resnet152_v1_5": (60_192_808, 11.514e9),
    "resnext50_32x4d": (25_028_904, 4.230e9),
    "resnext101_32x8d": (88_791_336, 16.414e9),
}


@pytest.mark.parametrize(("name", "params", "macs"), [(n, p, m) for n, (p, m) in TORCHVISION.items()])
def test_torchvision_figures(name: str, params: int, macs: float) -> None:
    figs = convzoo.figures(name)
    assert figs["params"] == params
    assert abs(figs["macs"] - macs) < 0.5e6  # the figure is printed to 1 M


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_paper_and_v1_5_differ_only_in_stride_placement(depth: int) -> None:
    paper, v15 = convzoo.figures(f"resnet{depth}"), convzoo.figures(f"resnet{depth}_v1_5")
    assert paper["params"] == v15["params"] and paper["stages"] == v15["stages"]
    # The first bottleneck of conv3_x, conv4_x and conv5_x halves the map. Its 3×3 produces the halved map
    # in both forms (same MACs); its first 1×1 runs at stride 2 in the paper (output h×h) but at stride 1
    # in v1.5 (output 2h×2h): v1.5 pays 3·h²·C_in·planes more in each of the three blocks.
    extra = sum(3 * h * h * c_in * planes for c_in, planes, h in ((256, 128, 28), (512, 256, 14), (1024, 512, 7)))
    assert extra == 3 * 77_070_336 == 231_211_008  # 3·784·256·128 = 77,070,336 in each stage
    assert v15["macs"] - paper["macs"] == extra


def test_resnet50_paper_form_is_the_one_near_3_8_gmacs() -> None:
    paper, v15 = convzoo.figures("resnet50")["macs"], convzoo.figures("resnet50_v1_5")["macs"]
    assert paper == 3_857_973_248 and v15 == 4_089_184_256
    assert abs(paper - 3.8e9) < abs(v15 - 3.8e9) and abs(paper - 3.8e9) / 3.8e9 < 0.02


def test_bottleneck_stride_placement() -> None:
    for name, s1, s3 in (("resnet50", 2, 1), ("resnet50_v1_5", 1, 2), ("resnext50_32x4d", 1, 2)):
        with torch.device("meta"):
            block = convzoo.create_model(name).stages.conv3_x[0]
        assert isinstance(block, Bottleneck)
        assert block.conv1.conv.stride == (s1, s1) and block.conv2.conv.stride == (s3, s3), name


@pytest.mark.parametrize(("name", "groups", "width"), [("resnext50_32x4d", 32, 128), ("resnext101_32x8d", 32, 256),
                                                       ("resnext101_64x4d", 64, 256)])
def test_resnext_grouped_width(name: str, groups: int, width: int) -> None:
    """Xie et al. Table 1: conv2_x's grouped 3×3 is C·d wide (32·4 = 128), doubling per stage."""
    with torch.device("meta"):
        model = convzoo.create_model(name)
    conv = model.stages.conv2_x[0].conv2.conv
    assert conv.groups == groups and conv.in_channels == conv.out_channels == width
    assert model.stages.conv5_x[0].conv2.conv.out_channels == 8 * width


def test_table1_stage_shapes() -> None:
    """Table 1: 112 after conv1, 56 after the pool, then 56/28/14/7 for conv2_x … conv5_x."""
    stages = convzoo.figures("resnet50")["stages"]
    assert stages == {"stem": [64, 56, 56], "stages.conv2_x": [256, 56, 56], "stages.conv3_x": [512, 28, 28],
                      "stages.conv4_x": [1024, 14, 14], "stages.conv5_x": [2048, 7, 7], "features": [2048, 7, 7]}
    basic = convzoo.figures("resnet18")["stages"]
    assert [basic[f"stages.conv{i}_x"][0] for i in range(2, 6)] == [64, 128, 256, 512]


def test_projection_shortcut_only_where_the_shape_changes() -> None:
    """Option B (§3.3): identity shortcuts, 1×1 projections only at the first block of a stage."""
    with torch.device("meta"):
        model = convzoo.create_model("resnet34")
    projections = [n for n, m in model.named_modules() if n.endswith("shortcut") and not
                   isinstance(m, torch.nn.Identity)]
    assert projections == ["stages.conv3_x.0.shortcut", "stages.conv4_x.0.shortcut", "stages.conv5_x.0.shortcut"]


def test_he_initialisation_statistics() -> None:
    torch.manual_seed(0)
    model = convzoo.create_model("resnet18")
    w = model.stages.conv4_x[1].conv1.conv.weight  # 256 × 256 × 3 × 3, fan_in = 2304
    assert abs(w.std().item() - (2 / 2304) ** 0.5) < 0.002
    assert torch.equal(model.stem.bn.weight, torch.ones(64))
