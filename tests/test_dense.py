"""Dense evaluation (Simonyan & Zisserman §3.2): `to_fully_conv` and `dense_predict`."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import Tensor, nn

import convzoo
from convzoo.base import ZooModel
from convzoo.dense import FullyConvNet, dense_predict, to_fully_conv

NATIVE = {"alexnet": 227, "alexnet_owt": 224} | {n: 224 for n in convzoo.list_models("vgg*")}


class Tiny(ZooModel):
    """An unpadded toy network: conv 3×3 / 2 → flatten → fc → ReLU → dropout → fc, on 7×7 inputs."""

    def __init__(self, *, num_classes: int = 5, in_chans: int = 2, dropout: float = 0.5,
                 extra: nn.Module | None = None) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.features = nn.Sequential(nn.Conv2d(in_chans, 4, 3, 2), nn.ReLU())  # 7×7 -> 3×3
        self.num_features = 4
        head: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten(1), fc1=nn.Linear(4 * 3 * 3, 8))
        if extra is not None:
            head["extra"] = extra
        head.update(relu=nn.ReLU(), drop=nn.Dropout(dropout), fc2=nn.Linear(8, num_classes))
        self.head = nn.Sequential(head)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def _real(name: str, **kwargs: int) -> nn.Module:
    torch.manual_seed(0)
    return convzoo.create_model(name, **kwargs).eval()


# Values end to end where the trunks differ in kind (groups + LRN, adaptive pool, plain, LRN, BN, 1×1 convs);
# every VGG has the same head, and all of them are checked for geometry on meta below.
@pytest.mark.parametrize("name", ["alexnet", "alexnet_owt", "vgg11", "vgg11_lrn", "vgg11_bn", "vgg16_c"])
def test_score_map_is_one_pixel_and_equals_the_logits_at_the_native_size(name: str) -> None:
    model = _real(name, num_classes=10)
    fc = to_fully_conv(model)
    x = torch.randn(1, 3, NATIVE[name], NATIVE[name])
    with torch.no_grad():
        scores = fc(x)
        logits = model(x)
    assert scores.shape == (1, 10, 1, 1)
    assert (scores.flatten(1) - logits).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ["lenet5_modern"])
def test_a_head_of_nested_sequentials_converts_laid_out_flat(name: str) -> None:
    model = _real(name, num_classes=10)  # f6 is a Sequential of fc and its activation inside the head
    assert any(isinstance(m, nn.Sequential) for m in model.head.children())
    fc = to_fully_conv(model)
    assert not any(isinstance(m, nn.Sequential) for m in fc.head.children())
    x = torch.randn(2, 1, 40, 40)
    with torch.no_grad():
        assert (fc(x[..., :32, :32]).flatten(1) - model(x[..., :32, :32])).abs().max().item() <= 1e-4
        assert fc(x).shape == (2, 10, 3, 3)  # 8 pixels more at a total stride of 4


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_every_network_converts(name: str) -> None:
    with torch.device("meta"):
        fc = to_fully_conv(convzoo.create_model(name).eval())
    native, window = NATIVE[name], 6 if name.startswith("alexnet") else 7
    assert [m.kernel_size for m in fc.head if isinstance(m, nn.Conv2d)] == [(window, window), (1, 1), (1, 1)]
    assert not any(isinstance(m, (nn.Linear, nn.Flatten, nn.AdaptiveAvgPool2d)) for m in fc.modules())
    for size, cells in ((native, 1), (native + 5 * 32, 6)):  # total stride 32
        assert fc(torch.empty(1, 3, size, size, device="meta")).shape == (1, 1000, cells, cells)


def test_vgg_at_384_gives_a_6x6_map_of_1000_scores() -> None:
    fc = to_fully_conv(_real("vgg11"))
    assert [type(m) for m in fc.head] == [nn.Conv2d, nn.ReLU, nn.Dropout, nn.Conv2d, nn.ReLU, nn.Dropout, nn.Conv2d]
    assert [m.kernel_size for m in fc.head if isinstance(m, nn.Conv2d)] == [(7, 7), (1, 1), (1, 1)]
    with torch.no_grad():
        assert fc(torch.randn(1, 3, 384, 384)).shape == (1, 1000, 6, 6)  # 384/32 = 12 cells, 12 − 7 + 1 = 6


def test_dense_macs_at_384_are_the_features_plus_36_head_positions() -> None:
    with torch.device("meta"):
        model = convzoo.create_model("vgg16")
    fc = to_fully_conv(model)
    head = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    features_224 = convzoo.count_macs("vgg16") - head
    assert features_224 * 144 % 49 == 0  # every map grows by 384/224 = 12/7 per side
    assert convzoo.count_macs(fc, (3, 384, 384)) == features_224 * 144 // 49 + 36 * head


def test_the_score_map_slides_the_classifier_over_the_image() -> None:
    torch.manual_seed(0)
    model = Tiny().eval()
    fc = to_fully_conv(model)
    x = torch.randn(1, 2, 11, 11)  # features 5×5 -> map 3×3; feature stride 2
    with torch.no_grad():
        scores = fc(x)
        assert scores.shape == (1, 5, 3, 3)
        for i in range(3):
            for j in range(3):
                crop = x[..., 2 * i:2 * i + 7, 2 * j:2 * j + 7]
                torch.testing.assert_close(scores[..., i, j], model(crop), rtol=1e-5, atol=1e-6)


def test_global_pool_heads_convert_and_their_average_is_the_logits() -> None:
    """ResNet: pool → flatten → dropout → fc. Without the pool, fc runs at every position as a 1×1 conv;
    mean(W·f + b) = W·mean(f) + b because fc (and dropout in eval) are affine, so averaging the map gives the
    original logits at every input size."""
    model = _real("resnet18", num_classes=10)
    fc = to_fully_conv(model)
    assert [type(m) for m in fc.head] == [nn.Dropout, nn.Conv2d] and fc.head.fc.kernel_size == (1, 1)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        scores, logits = fc(x), model(x)
    assert scores.shape == (2, 10, 3, 3)
    torch.testing.assert_close(scores.mean((2, 3)), logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dense_predict(fc, x), logits.softmax(1), rtol=1e-5, atol=1e-6)


def test_dense_predict_averages_posteriors_of_the_image_and_its_mirror() -> None:
    torch.manual_seed(0)
    model = Tiny().eval()
    fc = to_fully_conv(model)
    x = torch.randn(3, 2, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(dense_predict(fc, x), model(x).softmax(1))
        expected = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
        torch.testing.assert_close(dense_predict(fc, x, flip=True), expected)
        big = torch.randn(3, 2, 11, 11)
        torch.testing.assert_close(dense_predict(fc, big), fc(big).mean((2, 3)).softmax(1))
    with pytest.raises(convzoo.UserError, match="to_fully_conv"):
        dense_predict(model, x)  # logits, not a map


def test_weights_are_copied_and_the_original_is_untouched() -> None:
    torch.manual_seed(0)
    model = Tiny().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fc = to_fully_conv(model)
    assert fc.training and isinstance(model.head.fc1, nn.Linear) and isinstance(fc, FullyConvNet)
    assert fc.body.head.__class__ is nn.Identity and model.head.__class__ is nn.Sequential
    with torch.no_grad():
        for p in fc.parameters():
            p.add_(1.0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    torch.testing.assert_close(fc.head.fc1.weight, before["head.fc1.weight"].reshape(8, 4, 3, 3) + 1)


def test_heads_without_a_convolutional_form_are_refused() -> None:
    with pytest.raises(convzoo.UserError, match=r"head\.extra is a BatchNorm1d"):
        to_fully_conv(Tiny(extra=nn.BatchNorm1d(8)))
    with pytest.raises(convzoo.UserError, match="takes a convzoo network"):
        to_fully_conv(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    broken = Tiny()
    broken.head = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(convzoo.UserError, match="no Flatten precedes"):
        to_fully_conv(broken)
    odd = Tiny()
    odd.head.fc1 = nn.Linear(4 * 3 * 2, 8)  # not a square window
    with pytest.raises(convzoo.UserError, match="not a square window"):
        to_fully_conv(odd)


def test_too_small_inputs_say_which_sizes_work() -> None:
    with torch.device("meta"):
        fc = to_fully_conv(convzoo.create_model("vgg11"))
    with pytest.raises(convzoo.UserError, match=r"vgg11 \(fully convolutional\) cannot take a 3×100×100 input: "
                                                r"at head\.fc6 \(Conv2d\).*224 or more"):
        fc(torch.empty(1, 3, 100, 100, device="meta"))
