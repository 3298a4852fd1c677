"""Inception-ResNet v1 / v2: Fig. 15's grid sizes and channels, the residual scaling (§3.3), BN placement
(§3.2), the paper's inconsistent v2 figures, timm's figures and outputs, and v1's cost against Inception-v3."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import convzoo
from convzoo.layers import ConvBNAct
from convzoo.models.inception_resnet import (
    InceptionResNetA,
    InceptionResNetB,
    InceptionResNetC,
    RedA,
    ReductionA,
    ReductionB,
)
from helpers import assert_same_as_peer


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs)


def test_v1_stage_shapes_follow_fig15() -> None:
    """Fig. 15's shapes (which are v1's): 35×35×256, 17×17×896, 8×8×1792.

    Reduction-A (Fig. 7, Table 1: k=192, l=192, m=256, n=384) concatenates n + m + the pooled input:
    384 + 256 + 256 = 896; Reduction-B (Fig. 12) adds 384 + 256 + 256: 896 + 896 = 1792. Grids: 35 → (35 − 3)/2
    + 1 = 17 → (17 − 3)/2 + 1 = 8.
    """
    assert 384 + 256 + 256 == 896 and 896 + 384 + 256 + 256 == 1792
    assert convzoo.figures("inception_resnet_v1")["stages"] == {
        "stem": [256, 35, 35],
        "stages.inception_resnet_a": [256, 35, 35],
        "stages.reduction_a": [896, 17, 17],
        "stages.inception_resnet_b": [896, 17, 17],
        "stages.reduction_b": [1792, 8, 8],
        "stages.inception_resnet_c": [1792, 8, 8],
        "features": [1792, 8, 8],
    }


def test_v2_stage_shapes_are_tf_slims() -> None:
    """Mixed_5b: 96 + 64 + 96 + 64 = 320; Reduction-A (k=256, l=256, m=384, n=384): 320 + 384 + 384 = 1088;
    Reduction-B: 1088 + 384 + 288 + 320 = 2080; then the 1×1 convolution to 1536."""
    assert 96 + 64 + 96 + 64 == 320 and 320 + 384 + 384 == 1088 and 1088 + 384 + 288 + 320 == 2080
    assert convzoo.figures("inception_resnet_v2")["stages"] == {
        "stem": [320, 35, 35],
        "stages.inception_resnet_a": [320, 35, 35],
        "stages.reduction_a": [1088, 17, 17],
        "stages.inception_resnet_b": [1088, 17, 17],
        "stages.reduction_b": [2080, 8, 8],
        "stages.inception_resnet_c": [2080, 8, 8],
        "stages.conv2d_7b": [1536, 8, 8],
        "features": [1536, 8, 8],
    }


@pytest.mark.parametrize("name", ["inception_resnet_v1", "inception_resnet_v2"])
def test_stem_grid_arithmetic(name: str) -> None:
    """"V" convolutions and pools shrink the grid, the rest are same-padded (§3.1):
    299 → (299 − 3)/2 + 1 = 149 → 147 → 147 → (147 − 3)/2 + 1 = 73 → 73 → 71 → (71 − 3)/2 + 1 = 35."""
    x = torch.empty(1, 3, 299, 299, device="meta")
    sizes = []
    for layer in _meta(name).stem:
        x = layer(x)
        sizes.append(x.shape[-1])
    assert sizes == [149, 147, 147, 73, 73, 71, 35, *([35] if name.endswith("v2") else [])]


def test_v2_paper_figures_do_not_fit_together() -> None:
    """The inconsistency the module docstring lists: with Fig. 3's 384-channel stem and Table 1's v2 row,
    Reduction-A gives 1152 channels, which Fig. 17's 1154-channel expansion cannot be added to; Fig. 18 then
    gives 2146, which Fig. 19's 2048-channel expansion cannot be added to."""
    reduction_a = ReductionA(384, RedA(k=256, l=256, m=384, n=384))
    assert reduction_a.out_chans == 384 + 384 + 384 == 1152 != 1154
    reduction_b = ReductionB(1154, ((256, 384), (256, 288), (256, 288, 320)))
    assert reduction_b.out_chans == 1154 + 384 + 288 + 320 == 2146 != 2048


@pytest.mark.parametrize(("name", "expected"), [
    ("inception_resnet_v1", {"inception_resnet_a": [(0.17, True)] * 5, "inception_resnet_b": [(0.10, True)] * 10,
                             "inception_resnet_c": [(0.20, True)] * 5}),
    ("inception_resnet_v2", {"inception_resnet_a": [(0.17, True)] * 10, "inception_resnet_b": [(0.10, True)] * 20,
                             "inception_resnet_c": [(0.20, True)] * 9 + [(1.0, False)]}),
])
def test_residual_scaling_factors(name: str, expected: dict[str, list[tuple[float, bool]]]) -> None:
    """§3.3: residuals scaled by 0.1–0.3 before the addition; TF-slim's v2 ends in an unscaled block without ReLU."""
    model = _meta(name)
    for stage, blocks in expected.items():
        got = [(b.scale, isinstance(b.act, nn.ReLU)) for b in getattr(model.stages, stage)]
        assert got == blocks, stage


@pytest.mark.parametrize("block", [InceptionResNetA, InceptionResNetB, InceptionResNetC])
def test_block_computes_relu_of_x_plus_scaled_residual(block: type) -> None:
    """Fig. 20: out = ReLU(x + s · expand(concat(towers(x)))), the expansion linear (no activation)."""
    torch.manual_seed(0)
    net = block(16, ((4,), (4, 6)), scale=0.25).eval()
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        residual = net.expand(torch.cat([tower(x) for tower in net.towers], 1))
        torch.testing.assert_close(net(x), torch.relu(x + 0.25 * residual), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["inception_resnet_v1", "inception_resnet_v2"])
def test_batch_norm_only_on_convolutions(name: str) -> None:
    """§3.2: BN on top of the traditional layers, not on the summations: every BN sits in a conv→BN→ReLU unit
    (ε = 0.001), and the 1×1 filter expansions that feed the sums have a bias and no BN."""
    model = _meta(name)
    units = [m for m in model.modules() if isinstance(m, ConvBNAct)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == len(units)
    assert all(u.bn.eps == 1e-3 for u in units)
    blocks = [m for m in model.modules() if isinstance(m, (InceptionResNetA, InceptionResNetB, InceptionResNetC))]
    assert len(blocks) == (20 if name.endswith("v1") else 40)
    assert all(b.expand.bias is not None and b.expand.kernel_size == (1, 1) for b in blocks)


def test_dropout_keeps_0_8() -> None:
    """Fig. 15: "Dropout (keep 0.8)" after the average pool, for both networks."""
    for name in ("inception_resnet_v1", "inception_resnet_v2"):
        assert _meta(name).head.drop.p == pytest.approx(0.2)


def test_timm_figures() -> None:
    """timm 1.0.31 inception_resnet_v2 (papers.md): 55,843,464 parameters, 13.156 GMACs at 299."""
    figs = convzoo.figures("inception_resnet_v2")
    assert figs["params"] == 55_843_464
    assert abs(figs["macs"] - 13.156e9) < 0.5e6


def test_v1_figures() -> None:
    figs = convzoo.figures("inception_resnet_v1")
    assert figs["params"] == 22_756_328 and figs["macs"] == 6_206_361_696


def test_same_outputs_as_timm_with_10_classes() -> None:
    pytest.importorskip("timm")
    assert_same_as_peer("inception_resnet_v2", "timm", "inception_resnet_v2", ours={"num_classes": 10},
                        peer={"num_classes": 10})


def _macs_of(module: nn.Module) -> int:
    return convzoo.count_macs(module, (3, 299, 299))


def test_v1_costs_roughly_inception_v3() -> None:
    """§3.2: v1 has "roughly the computational cost of Inception-v3". torchvision's inception_v3 costs 5.713 G
    MACs at 299; v1 costs 6.206 G, 8.6 % more. "Roughly" is taken as within 10 %."""
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        v3 = _macs_of(torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False))
    assert abs(v3 - 5.713e9) < 0.5e6
    v1 = convzoo.figures("inception_resnet_v1")["macs"]
    assert 1.0 < v1 / v3 < 1.10


def test_v2_costs_roughly_inception_v4() -> None:
    """§3.2: v2 "matches the raw cost" of Inception-v4; timm's inception_v4 costs 12.254 G, v2 13.156 G (+7.4 %)."""
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        v4 = _macs_of(timm.create_model("inception_v4"))
    assert abs(v4 - 12.254e9) < 0.5e6
    assert 1.0 < convzoo.figures("inception_resnet_v2")["macs"] / v4 < 1.10
