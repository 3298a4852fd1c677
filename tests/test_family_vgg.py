"""VGG (Simonyan & Zisserman 2014): Table 1's configurations, Table 2's parameters, torchvision's figures."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import convzoo
from convzoo.models.vgg import CFGS, TABLE1
from helpers import assert_same_as_peer

PAPER = ["vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19"]
BN = ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
WEIGHT_LAYERS = {"vgg11": 11, "vgg11_lrn": 11, "vgg13": 13, "vgg16_c": 16, "vgg16": 16, "vgg19": 19}  # Table 1
TABLE2 = {"vgg11": 133, "vgg11_lrn": 133, "vgg13": 133, "vgg16_c": 134, "vgg16": 138, "vgg19": 144}  # millions
# torchvision 0.29.1: parameters, and conv + fc multiply-adds at 224 (its "GFLOPS" 7.609 / 11.308 / 15.470 / 19.632)
TORCHVISION = {
    "vgg11": (132_863_336, 7_609_090_048), "vgg13": (133_047_848, 11_308_466_176),
    "vgg16": (138_357_544, 15_470_264_320), "vgg19": (143_667_240, 19_632_062_464),
    "vgg11_bn": (132_868_840, 7_609_090_048), "vgg13_bn": (133_053_736, 11_308_466_176),
    "vgg16_bn": (138_365_992, 15_470_264_320), "vgg19_bn": (143_678_248, 19_632_062_464),
}


def _meta(name: str, **kwargs: int) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs).eval()


def _convs(net: nn.Module) -> list[nn.Conv2d]:
    return [m for m in net.features.modules() if isinstance(m, nn.Conv2d)]


def test_the_table_and_the_builders_agree() -> None:
    assert sorted(CFGS) == convzoo.list_models(family="vgg")
    assert [c.column for c in TABLE1.values()] == ["A", "A-LRN", "B", "C", "D", "E"]


@pytest.mark.parametrize("name", PAPER)
def test_weight_layers_of_table1(name: str) -> None:
    net = _meta(name)
    linears = [m for m in net.head.modules() if isinstance(m, nn.Linear)]
    assert len(_convs(net)) + len(linears) == WEIGHT_LAYERS[name]
    assert [(m.in_features, m.out_features) for m in linears] == [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]
    assert all(m.stride == (1, 1) and m.padding == (m.kernel_size[0] // 2,) * 2 for m in _convs(net))  # §2.1
    pools = [m for m in net.features.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(2, 2)] * 5
    assert convzoo.stage_shapes(net, (3, 224, 224)) == {
        "features.conv1": [64, 112, 112], "features.conv2": [128, 56, 56], "features.conv3": [256, 28, 28],
        "features.conv4": [512, 14, 14], "features.conv5": [512, 7, 7], "features": [512, 7, 7]}


def test_configuration_c_ends_stages_3_to_5_with_a_1x1_convolution() -> None:
    net = _meta("vgg16_c")
    last = {name: [m for m in stage if isinstance(m, nn.Conv2d)][-1] for name, stage in net.features.named_children()}
    assert {n: c.kernel_size for n, c in last.items()} == {"conv1": (3, 3), "conv2": (3, 3), "conv3": (1, 1),
                                                           "conv4": (1, 1), "conv5": (1, 1)}
    # C is D with the last 3×3 layer of stages 3–5 made 1×1: 9 − 1 = 8 fewer weights per channel pair
    saved = 256 * 256 * 8 + 512 * 512 * 8 * 2
    assert convzoo.count_params(net) == TORCHVISION["vgg16"][0] - saved == 133_638_952


def test_a_lrn_normalises_after_the_first_convolution_only() -> None:
    names = list(dict(_meta("vgg11_lrn").features.conv1.named_children()))
    assert names == ["conv1_1", "relu1_1", "norm1", "pool1"]
    lrns = [m for m in _meta("vgg11_lrn").modules() if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrns) == 1
    assert (lrns[0].size, lrns[0].alpha, lrns[0].beta, lrns[0].k) == (5, 5e-4, 0.75, 2.0)  # AlexNet's, α·n
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in _meta("vgg11").modules())


@pytest.mark.parametrize("name", BN)
def test_bn_variants_normalise_every_convolution(name: str) -> None:
    net = _meta(name)
    layers = [m for m in net.features.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU))]
    triples = [tuple(type(m) for m in layers[i:i + 3]) for i in range(0, len(layers), 3)]
    assert set(triples) == {(nn.Conv2d, nn.BatchNorm2d, nn.ReLU)}  # torchvision's order
    assert convzoo.count_params(net) == convzoo.count_params(_meta(name[:-3])) + 2 * sum(
        c.out_channels for c in _convs(net))


def test_head_drops_the_outputs_of_fc6_and_fc7() -> None:
    names = list(dict(_meta("vgg16").head.named_children()))
    assert names == ["flatten", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]  # §3.1
    assert all(m.p == 0.5 for m in _meta("vgg16").head.modules() if isinstance(m, nn.Dropout))


@pytest.mark.parametrize("name", PAPER)
def test_table2_parameters(name: str) -> None:
    assert round(convzoo.count_params(_meta(name)) / 1e6) == TABLE2[name]


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_figures(name: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    params, macs = TORCHVISION[name]
    ours = _meta(name)
    with torch.device("meta"):
        theirs = torchvision.models.get_model(name, weights=None)
    assert convzoo.count_params(ours) == convzoo.count_params(theirs) == params
    assert convzoo.count_macs(ours, (3, 224, 224)) == convzoo.count_macs(theirs, (3, 224, 224)) == macs


def test_vgg16_macs_and_mobilenets_quote() -> None:
    macs = convzoo.count_macs("vgg16")
    assert round(macs / 1e9, 3) == 15.470
    assert round(macs, -8) == 15_500_000_000 != 15_300_000_000  # MobileNet Table 9 quotes 15,300 M


def test_glorot_initialisation() -> None:
    torch.manual_seed(0)
    net = convzoo.create_model("vgg11")
    for layer, fan_in, fan_out in ((net.features.conv1.conv1_1, 3 * 9, 64 * 9), (net.head.fc6, 25088, 4096)):
        bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot & Bengio 2010, eq. 16
        w = layer.weight
        assert w.abs().max().item() <= bound
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound
        assert torch.all(layer.bias == 0)


def test_other_sizes_point_to_dense_evaluation() -> None:
    net = _meta("vgg11", num_classes=10)
    with pytest.raises(convzoo.UserError) as info:
        net(torch.empty(1, 3, 256, 256, device="meta"))
    msg = str(info.value)
    for part in ("vgg11", "3×256×256", "head.fc6", "512×8×8", "224 to 255", "to_fully_conv"):
        assert part in msg, (part, msg)


@pytest.mark.parametrize(("name", "options"), [("vgg11_bn", {"num_classes": 10}), ("vgg13", {"dropout": 0.3})])
def test_matches_torchvision_with_options(name: str, options: dict) -> None:
    assert_same_as_peer(name, "torchvision", name, ours=options, peer=options)

