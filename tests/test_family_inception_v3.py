"""Inception v3: the grid arithmetic, the factorised convolutions, the auxiliary head, torchvision's weights
and figures, and the paper's figures."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import convzoo
from convzoo.models.inception_v3 import AUX_MIN_INPUT, Inception17, InceptionV3
from helpers import assert_same_as_peer, build_peer

TV_PARAMS, TV_PARAMS_AUX, TV_MACS = 23_834_568, 27_161_264, 5.713e9  # torchvision 0.29.1 (papers.md)


def _meta(**kwargs: object) -> InceptionV3:
    with torch.device("meta"):
        return convzoo.create_model("inception_v3", **kwargs)  # type: ignore[return-value]


def test_grid_sizes_35_17_8() -> None:
    """Unpadded stride-2 layers: 299 → 149 → 147 → 147 → 73 → 73 → 71 → 35, then 17 and 8 (Table 1's grids)."""
    assert (299 - 3) // 2 + 1 == 149 and 149 - 2 == 147 and (147 - 3) // 2 + 1 == 73
    assert 73 - 2 == 71 and (71 - 3) // 2 + 1 == 35 and (35 - 3) // 2 + 1 == 17 and (17 - 3) // 2 + 1 == 8
    stages = convzoo.figures("inception_v3")["stages"]
    assert stages["stem"] == [192, 35, 35]
    # 35×35: 64 + 64 + 96 + pool_proj (32, then 64, 64)
    assert [stages[f"stages.mixed_5{c}"] for c in "bcd"] == [[256, 35, 35], [288, 35, 35], [288, 35, 35]]
    assert stages["stages.mixed_6a"] == [384 + 96 + 288, 17, 17] == [768, 17, 17]
    assert all(stages[f"stages.mixed_6{c}"] == [4 * 192, 17, 17] for c in "bcde")
    assert stages["stages.mixed_7a"] == [320 + 192 + 768, 8, 8] == [1280, 8, 8]
    assert stages["stages.mixed_7b"] == stages["stages.mixed_7c"] == [320 + 768 + 768 + 192, 8, 8] == [2048, 8, 8]
    assert stages["features"] == [2048, 8, 8] and _meta().num_features == 2048


def test_factorised_1x7_and_7x1_convolutions() -> None:
    """Fig. 6 (n = 7): each 7×7 becomes a 1×7 then a 7×1, padded (0, 3) / (3, 0) to keep 17×17."""
    model = _meta()
    for name, c7 in zip(("mixed_6b", "mixed_6c", "mixed_6d", "mixed_6e"), (128, 160, 160, 192)):
        block = getattr(model.stages, name)
        assert isinstance(block, Inception17)
        one_by_seven, seven_by_one = block.branch_7x7[1].conv, block.branch_7x7[2].conv
        assert one_by_seven.weight.shape == (c7, c7, 1, 7) and one_by_seven.padding == (0, 3)
        assert seven_by_one.weight.shape == (192, c7, 7, 1) and seven_by_one.padding == (3, 0)
        kernels = [m.kernel_size for m in block.branch_7x7dbl.modules() if isinstance(m, nn.Conv2d)]
        assert kernels == [(1, 1), (7, 1), (1, 7), (7, 1), (1, 7)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    # 4 modules × (1 + 2) of each, plus mixed_7a's pair
    assert sum(c.kernel_size == (1, 7) for c in convs) == sum(c.kernel_size == (7, 1) for c in convs) == 13
    # Fig. 7: two 1×3 and two 3×1 per 8×8 module
    assert sum(c.kernel_size == (1, 3) for c in convs) == sum(c.kernel_size == (3, 1) for c in convs) == 4
    # §3.2's saving: 1×7 + 7×1 costs 14/49 of a 7×7 with the same widths
    c = 192
    assert (c * c * 7 + c * c * 7) / (c * c * 49) == pytest.approx(2 / 7)


def test_aux_head_shapes_and_params() -> None:
    model = _meta(aux_logits=True)
    head = model.aux_head
    assert head is not None and model.aux_after == "mixed_6e"
    assert head.conv0.conv.weight.shape == (128, 768, 1, 1) and head.conv1.conv.weight.shape == (768, 128, 5, 5)
    assert isinstance(head.conv1.bn, nn.BatchNorm2d)  # BN-auxiliary (§7)
    assert head.fc.weight.shape == (1000, 768)
    # 768·128 + 2·128 + 128·768·25 + 2·768 + 768·1000 + 1000
    extra = 98_304 + 256 + 2_457_600 + 1_536 + 769_000
    assert extra == TV_PARAMS_AUX - TV_PARAMS == 3_326_696
    assert convzoo.count_params(model) == TV_PARAMS_AUX and convzoo.count_params(_meta()) == TV_PARAMS
    assert (17 - 5) // 3 + 1 == 5 and 5 - 5 + 1 == 1  # 17×17 → 5×5 pool → 1×1 after the 5×5 conv


def test_forward_train_returns_aux_and_forward_never_runs_it() -> None:
    torch.manual_seed(0)
    model = convzoo.create_model("inception_v3", num_classes=10, aux_logits=True)
    calls: list[int] = []
    model.aux_head.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 3, AUX_MIN_INPUT, AUX_MIN_INPUT)
    with torch.no_grad():
        logits, aux = model.train().forward_train(x)
        assert logits.shape == (2, 10) and len(aux) == 1 and aux[0].shape == (2, 10) and calls == [1]
        out = model.eval()(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 10) and calls == [1]
    with torch.no_grad():
        logits, aux = convzoo.create_model("inception_v3", num_classes=10).forward_train(torch.randn(2, 3, 75, 75))
    assert logits.shape == (2, 10) and aux == []


def test_aux_head_needs_299() -> None:
    model = convzoo.create_model("inception_v3", num_classes=10, aux_logits=True).eval()
    x = torch.randn(1, 3, AUX_MIN_INPUT - 1, AUX_MIN_INPUT - 1)
    with torch.no_grad():
        assert model(x).shape == (1, 10)  # the main head takes it
        with pytest.raises(convzoo.UserError, match=r"cannot take a 3×298×298 input: at aux_head.* 299 or more"):
            model.forward_train(x)


@pytest.mark.parametrize("aux", [False, True])
def test_same_outputs_as_torchvision(aux: bool) -> None:
    """At 139 the 8×8 grid is 3×3 (139 → 69 → 67 → 33 → 31 → 15 → 7 → 3): Fig. 7's 1×3/3×1 kernels see more than
    their centre tap. In eval mode torchvision returns the main logits only, with or without its aux head."""
    diff = assert_same_as_peer("inception_v3", "torchvision", "inception_v3", ours={"aux_logits": aux},
                               peer={"aux_logits": aux, "init_weights": True}, input_size=(3, 139, 139))
    assert diff == 0.0


def test_torchvision_checkpoint_with_aux_loads_without_aux() -> None:
    """torchvision's ImageNet checkpoint always carries AuxLogits: a network without the head drops them."""
    assert_same_as_peer("inception_v3", "torchvision", "inception_v3", peer={"aux_logits": True, "init_weights": True})


def test_aux_head_equals_torchvision_in_training() -> None:
    """Train mode (batch statistics, no dropout): main and auxiliary logits equal torchvision's at 299."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = build_peer("torchvision", "inception_v3", aux_logits=True, init_weights=True, dropout=0.0,
                            num_classes=10).train()
    ours = convzoo.create_model("inception_v3", aux_logits=True, dropout=0.0, num_classes=10).train()
    convzoo.load_peer_weights(ours, theirs.state_dict(), source="torchvision")
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        expected, expected_aux = theirs(x)
        got, (got_aux,) = ours.forward_train(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(got_aux, expected_aux, rtol=0, atol=1e-5)


def test_torchvision_figures() -> None:
    figs = convzoo.figures("inception_v3")
    assert figs["params"] == TV_PARAMS and abs(figs["macs"] - TV_MACS) < 0.5e6
    assert figs["macs"] == 5_713_216_096
    with_aux = convzoo.figures("inception_v3", aux_logits=True)
    assert with_aux["params"] == TV_PARAMS_AUX
    assert with_aux["macs"] == figs["macs"]  # forward never runs the auxiliary head


def test_paper_figures_and_gaps() -> None:
    """Abstract: "5 billion multiply-adds", "less than 25 million parameters"; Table 3: 4.8 Bn ops."""
    figs = convzoo.figures("inception_v3")
    assert figs["params"] < 25e6 < TV_PARAMS_AUX  # the bound holds for the inference network only
    assert abs(figs["macs"] - 5e9) > 0.5e9  # 5.71 G is not "5 billion" to its printed precision
    assert abs(figs["macs"] - 4.8e9) > 0.05e9
    info = convzoo.model_info("inception_v3")
    assert info.params.gap and info.macs.gap and info.aux_weight == 0.4


def test_defaults() -> None:
    model = _meta()
    assert model.drop_rate == 0.2 and model.aux_head is None
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(bn.eps == 1e-3 for bn in bns)
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_timm_weights_with_aux_head() -> None:
    """timm builds inception_v3 without its aux head by default; its aux weights still load into ours."""
    pytest.importorskip("timm")
    assert_same_as_peer("inception_v3", "timm", "inception_v3", ours={"aux_logits": True, "num_classes": 10},
                        peer={"aux_logits": True, "num_classes": 10}, input_size=(3, 299, 299))
