"""AlexNet (Krizhevsky et al. 2012) and torchvision's "one weird trick" AlexNet: layers, figures, behaviour.

The arithmetic is written out: a layer of k×k kernels over c_in input maps (per group) has k·k·c_in + 1
parameters per kernel; an unpadded k×k window of stride s takes n to ⌊(n − k)/s⌋ + 1.
"""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import convzoo
from convzoo.models.alexnet import CFGS
from helpers import assert_same_as_peer

# name: (parameters, output (C, H, W)) of each learned layer of `alexnet` at 227×227 (§3.5, Fig. 2)
LAYERS = {
    "features.conv1.conv": (96 * (11 * 11 * 3) + 96, (96, 55, 55)),  # 34,944; 55 = ⌊(227 − 11)/4⌋ + 1
    "features.conv2.conv": (256 * (5 * 5 * 48) + 256, (256, 27, 27)),  # 307,456; 27 = ⌊(55 − 3)/2⌋ + 1, pad 2
    "features.conv3.conv": (384 * (3 * 3 * 256) + 384, (384, 13, 13)),  # 885,120; 13 = ⌊(27 − 3)/2⌋ + 1
    "features.conv4.conv": (384 * (3 * 3 * 192) + 384, (384, 13, 13)),  # 663,936
    "features.conv5.conv": (256 * (3 * 3 * 192) + 256, (256, 13, 13)),  # 442,624
    "head.fc6": (256 * 6 * 6 * 4096 + 4096, (4096,)),  # 37,752,832; 6 = ⌊(13 − 3)/2⌋ + 1
    "head.fc7": (4096 * 4096 + 4096, (4096,)),  # 16,781,312
    "head.fc8": (4096 * 1000 + 1000, (1000,)),  # 4,097,000
}
PAPER_NEURONS = (253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000)  # §3.5


@functools.cache
def _net(name: str = "alexnet", **kwargs: int) -> nn.Module:
    torch.manual_seed(0)
    return convzoo.create_model(name, **kwargs).eval()


def _outputs(net: nn.Module, size: int) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of every conv and fc layer, on the meta device."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda mod, a, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:])))
             for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            net(torch.empty(1, 3, size, size, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _meta(name: str, **kwargs: int) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs).eval()


def test_layer_parameters_and_output_sizes() -> None:
    net = _meta("alexnet")
    modules = dict(net.named_modules())
    assert {n: sum(p.numel() for p in modules[n].parameters()) for n in LAYERS} == {n: p for n, (p, _) in
                                                                                    LAYERS.items()}
    assert _outputs(net, 227) == {n: s for n, (_, s) in LAYERS.items()}
    assert convzoo.stage_shapes(net, (3, 227, 227)) == {
        "features.conv1": [96, 27, 27], "features.conv2": [256, 13, 13], "features.conv3": [384, 13, 13],
        "features.conv4": [384, 13, 13], "features.conv5": [256, 6, 6], "features": [256, 6, 6]}


def test_total_parameters_and_the_papers_60_million() -> None:
    total = sum(p for p, _ in LAYERS.values())
    assert total == 60_965_224 == convzoo.count_params(_meta("alexnet"))
    assert abs(total - 60e6) <= 5e6  # "60 million parameters": one significant figure


def test_multiply_adds_at_227() -> None:
    conv = (55 * 55 * 96 * 363 + 27 * 27 * 256 * 1200 + 13 * 13 * 384 * 2304 + 13 * 13 * 384 * 1728
            + 13 * 13 * 256 * 1728)  # output positions × kernels × weights per kernel
    fc = 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    assert convzoo.count_macs("alexnet") == conv + fc == 724_406_816
    assert abs(conv + fc - 720e6) <= 5e6  # MobileNet Table 9: 720 M ("720": two significant figures)


def test_neurons_and_the_papers_list() -> None:
    ours = [torch.Size(s).numel() for _, s in LAYERS.values()]
    assert sum(ours) == 659_272
    assert ours[1:] == list(PAPER_NEURONS[1:])  # every layer agrees except conv1 ...
    assert ours[0] == 55 * 55 * 96 == 290_400 != PAPER_NEURONS[0]  # ... whose 253,440 no 55×55×96 map holds
    assert sum(PAPER_NEURONS) == 622_312
    assert round(sum(ours), -4) == 660_000 and round(sum(PAPER_NEURONS), -4) == 620_000  # neither is "650,000"


def test_block_order_follows_the_paper() -> None:
    net = _meta("alexnet")
    order = {name: list(dict(block.named_children())) for name, block in net.features.named_children()}
    assert order == {"conv1": ["conv", "relu", "lrn", "pool"], "conv2": ["conv", "relu", "lrn", "pool"],
                     "conv3": ["conv", "relu"], "conv4": ["conv", "relu"], "conv5": ["conv", "relu", "pool"]}
    # §4.2: dropout zeroes the outputs of fc6 and fc7, so it follows their ReLUs
    assert list(dict(net.head.named_children())) == ["flatten", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7",
                                                      "fc8"]
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(3, 2)] * 3  # overlapping pooling (§3.4)


def test_two_gpu_layers_are_groups_of_two() -> None:
    net = _net()
    assert [b.conv.groups for b in net.features.children()] == [1, 2, 1, 2, 2]
    conv2, conv3 = net.features.conv2.conv, net.features.conv3.conv
    x = torch.randn(1, 96, 27, 27)
    y = x.clone()
    y[:, 48:] = torch.randn(1, 48, 27, 27)  # change only the maps of the second GPU
    with torch.no_grad():
        a, b = conv2(x), conv2(y)
    torch.testing.assert_close(a[:, :128], b[:, :128], rtol=0, atol=0)  # GPU 1's kernels never see them
    assert not torch.allclose(a[:, 128:], b[:, 128:])
    x3 = torch.randn(1, 256, 13, 13)
    y3 = x3.clone()
    y3[:, 128:] += 1.0
    with torch.no_grad():  # conv3 crosses GPUs: every kernel sees both halves
        assert not torch.allclose(conv3(x3)[:, :192], conv3(y3)[:, :192])


def test_response_normalisation_computes_the_papers_formula() -> None:
    lrn = _net().features.conv1.lrn
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75  # §3.3
    a = torch.relu(torch.randn(2, 96, 4, 4, dtype=torch.float64)) * 40  # large enough for α Σ a² to matter
    channels = a.shape[1]
    b = torch.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        b[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(1)) ** beta
    torch.testing.assert_close(lrn(a), b, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(b, a / k**beta)  # the neighbours do matter at this scale


def test_initialisation_follows_section_5() -> None:
    net = _net()
    biases = {n: m.bias for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    ones = {"features.conv2.conv", "features.conv4.conv", "features.conv5.conv", "head.fc6", "head.fc7"}
    for name, bias in biases.items():
        assert torch.all(bias == (1.0 if name in ones else 0.0)), name
    w = net.head.fc6.weight  # 37.7 M draws of N(0, 0.01²)
    assert abs(w.mean().item()) < 1e-4 and abs(w.std().item() - 0.01) < 1e-4
    assert abs(net.features.conv1.conv.weight.std().item() - 0.01) < 5e-4


def test_224_input_names_the_layer_and_227() -> None:
    net = _net("alexnet", num_classes=10)
    with pytest.raises(convzoo.UserError) as info:
        net(torch.randn(1, 3, 224, 224))
    msg = str(info.value)
    for part in ("alexnet", "3×224×224", "head.fc6", "256×5×5", "227", "conv1_padding=2"):
        assert part in msg, (part, msg)
    assert convzoo.input_range(_meta("alexnet")) == (227, 258)  # conv1 maps of 55 … 62 all pool down to 6×6


def test_conv1_padding_2_takes_224() -> None:
    net = _net("alexnet", num_classes=10, conv1_padding=2)
    with torch.no_grad():
        assert net(torch.randn(2, 3, 224, 224)).shape == (2, 10)
    meta = _meta("alexnet", conv1_padding=2)
    assert _outputs(meta, 224)["features.conv1.conv"] == (96, 55, 55)  # ⌊(224 + 2·2 − 11)/4⌋ + 1 = 55
    assert convzoo.count_macs(meta, (3, 224, 224)) == convzoo.count_macs("alexnet")
    assert convzoo.count_params(meta) == 60_965_224


def test_alexnet_owt_is_torchvisions_network() -> None:
    torchvision = pytest.importorskip("torchvision")
    ours = _meta("alexnet_owt")
    with torch.device("meta"):
        theirs = torchvision.models.alexnet()
    assert convzoo.count_params(ours) == convzoo.count_params(theirs) == 61_100_840
    assert convzoo.count_macs(ours, (3, 224, 224)) == convzoo.count_macs(theirs, (3, 224, 224)) == 714_188_480
    assert CFGS["alexnet_owt"].kernels == (64, 192, 384, 256, 256)  # the 2014 footnote: conv4 has 384
    assert list(dict(ours.head.named_children())) == ["pool", "flatten", "drop6", "fc6", "relu6", "drop7", "fc7",
                                                       "relu7", "fc8"]  # torchvision's avgpool + classifier
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in ours.modules())


@pytest.mark.parametrize(("ours", "peer", "size"), [
    ({"num_classes": 10}, {"num_classes": 10}, (3, 224, 224)),
    ({"dropout": 0.2}, {"dropout": 0.2}, (3, 100, 100)),
])
def test_alexnet_owt_matches_torchvision_with_options(ours: dict, peer: dict, size: tuple[int, int, int]) -> None:
    assert_same_as_peer("alexnet_owt", "torchvision", "alexnet", ours=ours, peer=peer, input_size=size)

