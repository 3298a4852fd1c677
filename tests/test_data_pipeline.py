"""The on-device input pipeline: shapes, per-sample augmentation, label alignment, seeding, conversions."""
from __future__ import annotations

import pytest
import torch

from convzoo.data.pipeline import Augment, InputSpec, batches, prepare, resize_mode
from convzoo.data.types import TensorSplit
from convzoo.errors import UserError

CPU = torch.device("cpu")


def _identified(n: int = 64, size: int = 8) -> TensorSplit:
    """Image i is filled with the value i (so a batch tells which samples it holds); label i % 10."""
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 1, size, size).contiguous()
    return TensorSplit(images, torch.arange(n) % 10)


def test_shapes_channels_and_normalisation() -> None:
    x = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    spec = InputSpec((32, 32), 1, (0.5,), (0.25,))
    out = prepare(x, spec)
    assert out.shape == (2, 1, 32, 32) and out.dtype == torch.float32
    assert out[0, 0, 16, 16].item() == pytest.approx((1 - 0.5) / 0.25)  # inside: a white pixel
    assert out[0, 0, 0, 0].item() == pytest.approx((0 - 0.5) / 0.25)  # the 2-pixel zero padding (LeNet's 28 → 32)
    rgb = prepare(x, InputSpec((227, 227), 3, (0.5,), (0.25,)))
    assert rgb.shape == (2, 3, 227, 227) and torch.equal(rgb[:, 0], rgb[:, 2])  # grey repeated, resized
    grey = prepare(torch.full((1, 3, 32, 32), 255, dtype=torch.uint8), InputSpec((32, 32), 1, (0.5,) * 3, (0.5,) * 3))
    assert grey.shape == (1, 1, 32, 32) and grey[0, 0, 5, 5].item() == pytest.approx(1.0, abs=1e-5)


def test_resize_mode_pads_small_gaps_and_resizes_large_ones() -> None:
    spec = InputSpec((32, 32), 1, (0.0,), (1.0,))
    assert resize_mode(spec, (28, 28)) == "pad" and resize_mode(spec, (16, 16)) == "resize"
    assert resize_mode(InputSpec((227, 227), 1, (0.0,), (1.0,)), (28, 28)) == "resize"
    assert resize_mode(InputSpec((32, 32), 1, (0.0,), (1.0,), "resize"), (28, 28)) == "resize"


def test_labels_stay_aligned_with_their_images_under_shuffling() -> None:
    split = _identified()
    spec = InputSpec((8, 8), 1, (0.0,), (1.0,))
    seen = []
    for x, y in batches(split, spec, batch_size=16, device=CPU, seed=3, epoch=1, shuffle=True,
                        augment=Augment(crop_padding=2, hflip=True)):
        ident = (x[:, 0, 4, 4] * 255).round().long()  # the centre survives a ±2 shift of an 8×8 image
        assert torch.equal(y, ident % 10)
        seen += ident.tolist()
    assert sorted(seen) == list(range(64)) and seen != list(range(64))  # a permutation, not the identity


def test_augmentation_is_per_sample_and_seeded_by_seed_and_epoch() -> None:
    images = torch.zeros(32, 1, 16, 16, dtype=torch.uint8)
    images[:, :, 6:10, 4:7] = 255  # an asymmetric blob: shifts and flips move it
    split = TensorSplit(images, torch.zeros(32, dtype=torch.int64))
    spec = InputSpec((16, 16), 1, (0.0,), (1.0,))
    aug = Augment(crop_padding=3, hflip=True)

    def epoch(seed: int, e: int) -> torch.Tensor:
        return torch.cat([x for x, _ in batches(split, spec, batch_size=8, device=CPU, seed=seed, epoch=e,
                                                 shuffle=True, augment=aug)])

    a = epoch(0, 0)
    assert len({tuple(img.flatten().tolist()) for img in a}) > 8  # samples of one batch get their own crop/flip
    assert torch.equal(a, epoch(0, 0))  # repeatable: a resumed epoch sees the same batches
    assert not torch.equal(a, epoch(0, 1)) and not torch.equal(a, epoch(1, 0))
    assert torch.equal(a.sum((1, 2, 3)), torch.full((32,), 12.0))  # a shift by ≤ 3 px keeps the whole blob


def test_no_augmentation_without_a_generator_and_drop_last() -> None:
    split = _identified(n=50)
    spec = InputSpec((8, 8), 1, (0.0,), (1.0,))
    sizes = [len(y) for _, y in batches(split, spec, batch_size=16, device=CPU, drop_last=True)]
    assert sizes == [16, 16, 16]
    assert [len(y) for _, y in batches(split, spec, batch_size=16, device=CPU)] == [16, 16, 16, 2]
    with pytest.raises(ValueError):
        prepare(split.images[:2], spec, augment=Augment(2, False))


def test_impossible_channel_conversion_is_a_user_error() -> None:
    with pytest.raises(UserError, match="--in-chans"):
        prepare(torch.zeros(1, 2, 8, 8, dtype=torch.uint8), InputSpec((8, 8), 3, (0.0,) * 2, (1.0,) * 2))


def test_channels_last_on_request() -> None:
    out = prepare(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), InputSpec((8, 8), 3, (0.0,) * 3, (1.0,) * 3),
                  channels_last=True)
    assert out.is_contiguous(memory_format=torch.channels_last)
