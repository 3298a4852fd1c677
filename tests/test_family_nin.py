"""Network In Network (Lin et al. 2013): block shapes and counts written out, the GAP head, the released init."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import convzoo
from convzoo.counting import count_macs, count_params, stage_shapes
from convzoo.meta import build_on_meta


def _ceil_pool(n: int) -> int:
    """3×3/2 max-pool rounding up, as Caffe and cuda-convnet size it."""
    return math.ceil((n - 3) / 2) + 1


def test_imagenet_block_shapes() -> None:
    conv1 = (224 - 11) // 4 + 1  # 54
    pool1 = _ceil_pool(conv1)  # ⌈51/2⌉ + 1 = 27
    conv2 = pool1 + 2 * 2 - 5 + 1  # 27
    pool2 = _ceil_pool(conv2)  # ⌈24/2⌉ + 1 = 13
    pool3 = _ceil_pool(pool2)  # 3×3 pad 1 keeps 13; ⌈10/2⌉ + 1 = 6
    assert (conv1, pool1, conv2, pool2, pool3) == (54, 27, 27, 13, 6)
    shapes = stage_shapes(build_on_meta(convzoo.create_model, name="nin"), (3, 224, 224))
    assert shapes == {
        "features.mlpconv1": [96, 54, 54], "features.pool1": [96, 27, 27],
        "features.mlpconv2": [256, 27, 27], "features.pool2": [256, 13, 13],
        "features.mlpconv3": [384, 13, 13], "features.pool3": [384, 6, 6], "features.drop3": [384, 6, 6],
        "features.mlpconv4": [1024, 6, 6], "features": [1024, 6, 6],  # the release's 6×6 average pool fits
    }


def test_cifar_block_shapes() -> None:
    assert (_ceil_pool(32), _ceil_pool(16)) == (16, 8)  # 5×5 pad 2 and 3×3 pad 1 keep the size
    shapes = stage_shapes(build_on_meta(convzoo.create_model, name="nin_cifar"), (3, 32, 32))
    assert shapes == {
        "features.mlpconv1": [96, 32, 32], "features.pool1": [96, 16, 16], "features.drop1": [96, 16, 16],
        "features.mlpconv2": [192, 16, 16], "features.pool2": [192, 8, 8], "features.drop2": [192, 8, 8],
        "features.mlpconv3": [192, 8, 8], "features": [192, 8, 8],  # the paper's 8×8 global average pool
    }


def test_imagenet_parameters() -> None:
    layers = [
        96 * (3 * 11 * 11 + 1), 96 * (96 + 1), 96 * (96 + 1),  # conv1, cccp1, cccp2
        256 * (96 * 5 * 5 + 1), 256 * (256 + 1), 256 * (256 + 1),  # conv2, cccp3, cccp4
        384 * (256 * 3 * 3 + 1), 384 * (384 + 1), 384 * (384 + 1),  # conv3, cccp5, cccp6
        1024 * (384 * 3 * 3 + 1), 1024 * (1024 + 1), 1000 * (1024 + 1),  # conv4, cccp7, cccp8
    ]
    assert sum(layers) == 7_595_176
    net = build_on_meta(convzoo.create_model, name="nin")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [count_params(c) for c in convs] == layers
    assert count_params(net) == 7_595_176
    # the released snapshot is "29 MB": 7,595,176 float32 values are 30.4 MB = 29.0 MiB
    assert round(7_595_176 * 4 / 2**20) == 29


def test_cifar_parameters() -> None:
    layers = [
        192 * (3 * 25 + 1), 160 * (192 + 1), 96 * (160 + 1),  # 192-160-96, 5×5
        192 * (96 * 25 + 1), 192 * (192 + 1), 192 * (192 + 1),  # 192-192-192, 5×5
        192 * (192 * 9 + 1), 192 * (192 + 1), 10 * (192 + 1),  # 192-192-10, 3×3
    ]
    assert sum(layers) == 966_986
    assert count_params(build_on_meta(convzoo.create_model, name="nin_cifar")) == 966_986


def test_macs() -> None:
    # output positions × output channels × (input channels × k × k), per convolution
    imagenet = (54**2 * 96 * 3 * 121 + 2 * 54**2 * 96 * 96 + 27**2 * 256 * 96 * 25 + 2 * 27**2 * 256 * 256
                + 13**2 * 384 * 256 * 9 + 2 * 13**2 * 384 * 384 + 6**2 * 1024 * 384 * 9 + 6**2 * 1024 * 1024
                + 6**2 * 1000 * 1024)
    cifar = (32**2 * 192 * 75 + 32**2 * 160 * 192 + 32**2 * 96 * 160 + 16**2 * 192 * 96 * 25
             + 2 * 16**2 * 192 * 192 + 8**2 * 192 * 192 * 9 + 8**2 * 192 * 192 + 8**2 * 10 * 192)
    assert (imagenet, cifar) == (1_100_188_800, 222_486_528)
    assert count_macs("nin") == imagenet
    assert count_macs("nin_cifar") == cifar


@pytest.mark.parametrize(("name", "smallest", "sizes"), [("nin", 39, (39, 64, 224, 257)),
                                                         ("nin_cifar", 4, (4, 17, 32, 96))])
def test_global_average_pooling_takes_any_size_from_the_smallest(name: str, smallest: int, sizes) -> None:
    net = convzoo.create_model(name, num_classes=7).eval()
    assert convzoo.input_range(net) == (smallest, None)
    with torch.no_grad():
        for s in sizes:
            assert net(torch.randn(1, 3, s, s)).shape == (1, 7)
    with pytest.raises(convzoo.UserError, match=f"{smallest} or more"):
        net(torch.randn(1, 3, smallest - 1, smallest - 1))


@pytest.mark.parametrize(("name", "width", "cccp"), [("nin", 1024, "cccp8"), ("nin_cifar", 192, "cccp6")])
def test_num_classes_changes_only_the_head(name: str, width: int, cccp: str) -> None:
    with torch.device("meta"):
        a = convzoo.create_model(name, num_classes=10)
        b = convzoo.create_model(name, num_classes=1000)
    assert a.num_features == b.num_features == width
    assert {k: v.shape for k, v in a.features.state_dict().items()} == \
           {k: v.shape for k, v in b.features.state_dict().items()}
    assert getattr(a.head, cccp).out_channels == 10 and getattr(b.head, cccp).kernel_size == (1, 1)
    assert count_params(b) - count_params(a) == (1000 - 10) * (width + 1)
    assert [type(m) for m in a.head] == [nn.Conv2d, nn.ReLU, nn.AdaptiveAvgPool2d, nn.Flatten]


def test_default_class_counts() -> None:
    with torch.device("meta"):
        assert convzoo.create_model("nin").num_classes == 1000
        assert convzoo.create_model("nin_cifar").num_classes == 10


@pytest.mark.parametrize(("name", "drops", "pools"), [("nin", ["drop3"], 3), ("nin_cifar", ["drop1", "drop2"], 2)])
def test_pools_and_dropout_placement(name: str, drops: list[str], pools: int) -> None:
    with torch.device("meta"):
        net = convzoo.create_model(name)
    names = [n for n, _ in net.features.named_children()]
    assert [n for n in names if n.startswith("drop")] == drops
    assert all(names[names.index(d) - 1] == f"pool{d[-1]}" for d in drops)  # dropout right after its pool
    mp = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(mp) == pools and all((m.kernel_size, m.stride, m.ceil_mode) == (3, 2, True) for m in mp)
    assert all(m.p == 0.5 for m in net.modules() if isinstance(m, nn.Dropout))
    assert not [m for m in net.modules() if isinstance(m, (nn.Linear, nn.AvgPool2d))]  # no FC layer


@pytest.mark.parametrize(("name", "stds"), [
    ("nin", [0.01, 0.05, 0.05, 0.05, 0.05, 0.05, 0.01, 0.05, 0.05, 0.05, 0.05, 0.01]),
    ("nin_cifar", [0.05] * 9),
])
def test_released_initialisation(name: str, stds: list[float]) -> None:
    torch.manual_seed(0)
    convs = [m for m in convzoo.create_model(name).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == len(stds)
    for conv, std in zip(convs, stds):
        assert conv.weight.std().item() == pytest.approx(std, rel=0.1)
        assert torch.count_nonzero(conv.bias) == 0
