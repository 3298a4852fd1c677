"""SqueezeNet: Table 1 layer by layer, the Fire rule, the bypass variants (§6), v1.1's saving, torchvision."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import convzoo
from convzoo.counting import count_macs, count_params
from convzoo.models.squeezenet import FIRES, Fire
from helpers import assert_same_as_peer

# Table 1 (arXiv:1602.07360): layer, output size (H, W, C), #parameter before pruning. maxpool8 is printed
# "13x12x512", a typo: fire9, which keeps the size, is listed at 13x13x512.
TABLE1 = [
    ("conv1", (111, 111, 96), 14_208),
    ("maxpool1", (55, 55, 96), 0),
    ("fire2", (55, 55, 128), 11_920),
    ("fire3", (55, 55, 128), 12_432),
    ("fire4", (55, 55, 256), 45_344),
    ("maxpool4", (27, 27, 256), 0),
    ("fire5", (27, 27, 256), 49_440),
    ("fire6", (27, 27, 384), 104_880),
    ("fire7", (27, 27, 384), 111_024),
    ("fire8", (27, 27, 512), 188_992),
    ("maxpool8", (13, 13, 512), 0),
    ("fire9", (13, 13, 512), 197_184),
    ("conv10", (13, 13, 1000), 513_000),
    ("avgpool10", (1, 1, 1000), 0),
]
TABLE1_TOTAL = 1_248_424


def _meta(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs).eval()


def _layer_outputs(model: nn.Module, size: int) -> dict[str, tuple[int, int, int]]:
    """(H, W, C) after each Table 1 layer: the children of `features`, and conv10 and avgpool10 in `head`."""
    layers = {**dict(model.features.named_children()), "conv10": model.head.conv10,
              "avgpool10": model.head.avgpool10}
    out: dict[str, tuple[int, int, int]] = {}

    def record(name: str):  # a forward hook must return None, or it replaces the output
        def hook(_m: nn.Module, _args: tuple, y: torch.Tensor) -> None:
            out[name] = (y.shape[2], y.shape[3], y.shape[1])
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in layers.items()]
    with torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    for h in hooks:
        h.remove()
    return out


def test_table1_layer_by_layer_at_227() -> None:
    model = _meta("squeezenet1_0")
    outputs = _layer_outputs(model, 227)
    params = {n: count_params(m) for n, m in model.features.named_children()}
    params.update(conv10=count_params(model.head.conv10), avgpool10=0)
    assert list(outputs) == [row[0] for row in TABLE1]
    for layer, size, n_params in TABLE1:
        assert outputs[layer] == size, layer
        assert params[layer] == n_params, layer
    assert sum(row[2] for row in TABLE1) == TABLE1_TOTAL == count_params(model)


def test_table1_fire_arithmetic() -> None:
    """fire2: squeeze 96·16 + 16, expand 16·64 + 64 and 16·64·9 + 64 = 1,552 + 1,088 + 9,280 = 11,920."""
    assert (96 * 16 + 16) + (16 * 64 + 64) + (16 * 64 * 9 + 64) == 11_920 == count_params(Fire(96, 16, 64, 64))
    # §5.1's metaparameters generate the rows: e_i = 128 + 128·⌊i/2⌋, half 3×3, SR = 0.125.
    for i, row in FIRES.items():
        e = 128 + 128 * ((i - 2) // 2)
        assert (row.e1x1, row.e3x3, row.s1x1) == (e // 2, e // 2, e // 8), i


def test_224_gives_109_not_111() -> None:
    """Table 1's 224 input: (224 − 7)/2 + 1 = 109.5, so conv1 gives 109×109; 227 is the size that gives 111."""
    assert _layer_outputs(_meta("squeezenet1_0"), 224)["conv1"] == (109, 109, 96)
    assert convzoo.model_info("squeezenet1_0").input_size == (3, 227, 227)


def test_pools_round_up_as_caffe() -> None:
    """At 224 the 54×54 map of fire4 pools to ⌈(54 − 3)/2⌉ + 1 = 27 (Caffe, torchvision), not ⌊⌋ + 1 = 26."""
    out = _layer_outputs(_meta("squeezenet1_0"), 224)
    assert out["fire4"][:2] == (54, 54) and out["maxpool4"][:2] == (27, 27) and out["maxpool8"][:2] == (13, 13)


@pytest.mark.parametrize(("args", "message"), [
    ((96, 128, 64, 64), r"s1x1=128 must be less than e1x1 \+ e3x3 = 64 \+ 64 = 128.*Strategy 2"),
    ((96, 200, 64, 64), r"s1x1=200 must be less than e1x1 \+ e3x3 = 64 \+ 64 = 128"),
    ((96, 0, 64, 64), r"s1x1 must be a positive integer, got 0"),
    ((96, 16, 64, 2.5), r"e3x3 must be a positive integer, got 2.5"),
])
def test_fire_refuses_a_squeeze_that_does_not_squeeze(args: tuple, message: str) -> None:
    with pytest.raises(convzoo.UserError, match=message):
        Fire(*args)


def test_fire_module_shape() -> None:
    fire = Fire(96, 16, 64, 64)
    assert fire.squeeze.kernel_size == (1, 1) and fire.expand1x1.kernel_size == (1, 1)
    assert fire.expand3x3.kernel_size == (3, 3) and fire.expand3x3.padding == (1, 1)
    assert fire(torch.randn(2, 96, 9, 9)).shape == (2, 128, 9, 9)


def test_simple_bypass_adds_no_parameters_and_adds_the_input() -> None:
    """§6: identity around fire3, 5, 7 and 9 ("just a wire"), where input and output channels agree."""
    plain, bypass = _meta("squeezenet1_0"), _meta("squeezenet1_0_bypass")
    assert count_params(bypass) == count_params(plain) == TABLE1_TOTAL
    kinds = {n: type(m.bypass).__name__ for n, m in bypass.features.named_children() if isinstance(m, Fire)}
    assert kinds == {"fire2": "NoneType", "fire3": "Identity", "fire4": "NoneType", "fire5": "Identity",
                     "fire6": "NoneType", "fire7": "Identity", "fire8": "NoneType", "fire9": "Identity"}
    torch.manual_seed(0)
    a = convzoo.create_model("squeezenet1_0").eval()
    b = convzoo.create_model("squeezenet1_0_bypass").eval()
    b.load_state_dict(a.state_dict())  # same tensors: the bypass holds none
    x = torch.randn(1, 128, 15, 15)
    with torch.no_grad():
        torch.testing.assert_close(b.features.fire3(x), a.features.fire3(x) + x)


def test_complex_bypass_parameters() -> None:
    """Fig. 2 right: 1×1 convolutions (with bias) where the Fire module changes the channel count."""
    model = _meta("squeezenet1_0_complex_bypass")
    convs = {n: (m.bypass.in_channels, m.bypass.out_channels) for n, m in model.features.named_children()
             if isinstance(m, Fire) and isinstance(m.bypass, nn.Conv2d)}
    assert convs == {"fire2": (96, 128), "fire4": (128, 256), "fire6": (256, 384), "fire8": (384, 512)}
    added = (96 * 128 + 128) + (128 * 256 + 256) + (256 * 384 + 384) + (384 * 512 + 512)
    assert added == 12_416 + 33_024 + 98_688 + 197_120 == 341_248
    assert count_params(model) == TABLE1_TOTAL + added == 1_589_672
    assert sum(isinstance(m.bypass, nn.Identity) for m in model.features if isinstance(m, Fire)) == 4


def test_table3_model_sizes() -> None:
    """Table 3: 4.8 MB for vanilla and simple bypass (1,248,424 × 4 bytes = 4.76 MiB); 7.7 MB for complex
    bypass, which our 1,589,672 parameters (6.06 MiB) do not reach: the documented gap."""
    mib = 4 / 2**20
    assert round(TABLE1_TOTAL * mib, 1) == 4.8
    assert round(count_params(_meta("squeezenet1_0_complex_bypass")) * mib, 2) == 6.06


def test_v1_1_computation_ratio() -> None:
    """v1.1 "has 2.4x less computation" (repository README: 1.72 vs 0.72 GFLOPS/image = 2.39).

    At 224 (torchvision's count) the ratio is 818.9 M / 349.2 M = 2.35. At the released 227 crop it is
    2.15: v1.1's 3×3 conv1 gives 113×113 maps (pooled to 56, 28, 14) where v1.0's 7×7 gives 111 (55, 27, 13).
    """
    v10, v11 = _meta("squeezenet1_0"), _meta("squeezenet1_1")
    at224 = count_macs(v10, (3, 224, 224)), count_macs(v11, (3, 224, 224))
    at227 = count_macs(v10, (3, 227, 227)), count_macs(v11, (3, 227, 227))
    assert at224 == (818_924_576, 349_151_936) and at227 == (832_667_936, 387_747_520)
    assert at224[0] / at224[1] == pytest.approx(2.345, abs=5e-4)
    assert abs(at224[0] / at224[1] - 2.4) < 0.06 and abs(1.72 / 0.72 - 2.4) < 0.02
    assert at227[0] / at227[1] == pytest.approx(2.147, abs=5e-4)


def test_repository_gflops_is_the_prototxt_with_padded_conv10() -> None:
    """The README's 1.72 GFLOPS for v1.0 is 2 × the MACs of the released prototxt at 227, whose conv10 has
    pad 1 (a 15×15 class map): 2 × 861,339,936 = 1.7227e9. Table 1's network (13×13) has 832.7 M."""
    model = _meta("squeezenet1_0")
    model.head.conv10.padding = (1, 1)
    padded = count_macs(model, (3, 227, 227))
    assert padded == 832_667_936 + 1000 * 512 * (15 * 15 - 13 * 13) == 861_339_936
    assert round(2 * padded / 1e9, 2) == 1.72


@pytest.mark.parametrize(("name", "params", "macs"), [("squeezenet1_0", 1_248_424, 818_924_576),
                                                      ("squeezenet1_1", 1_235_496, 349_151_936)])
def test_torchvision_figures_at_224(name: str, params: int, macs: int) -> None:
    """papers.md: tv squeezenet1_0 1,248,424 params, 818.9 M MACs; squeezenet1_1 1,235,496, 349.2 M."""
    model = _meta(name)
    assert count_params(model) == params and count_macs(model, (3, 224, 224)) == macs


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_same_as_torchvision_with_10_classes_at_224(name: str) -> None:
    assert_same_as_peer(name, "torchvision", name, ours={"num_classes": 10}, peer={"num_classes": 10},
                        input_size=(3, 224, 224))


def test_init_follows_the_prototxt() -> None:
    torch.manual_seed(0)
    model = convzoo.create_model("squeezenet1_0")
    bound = (3 / (3 * 7 * 7)) ** 0.5  # Caffe xavier: uniform in ±√(3/fan_in)
    w = model.features.conv1.conv.weight
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert model.head.conv10.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert all(m.bias.abs().sum() == 0 for m in model.modules() if isinstance(m, nn.Conv2d))
