"""The input pipeline on the training device: batches of uint8 images in, network-ready floats out.

A small dataset lives on the device as one uint8 tensor (`TensorSplit`); a streamed ImageFolder split
arrives as uint8 batches from a DataLoader. Either way every batch then goes through the same steps,
all batched tensor operations on the device, with no per-sample Python:

1. to float in [0, 1];
2. channels: 1 → 3 by repeating the grey channel, 3 → 1 by luminance (ITU-R 601 weights);
3. to the network's input size: zero padding when the network's input is at most 4 pixels larger
   (LeNet-5's 28 → 32, as the paper pads MNIST), else bilinear resizing (antialiased when shrinking);
4. augmentation, in training only: a random crop with zero padding (each sample its own offset) and a
   horizontal flip (each sample its own coin), both drawn from a generator seeded by (seed, epoch), so
   that an epoch resumed after a crash sees exactly the same batches;
5. normalisation by the training set's per-channel mean and std, and channels_last on request.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError
from .types import FolderSplit, TensorSplit

__all__ = ["Augment", "Draw", "InputSpec", "batches", "epoch_generator", "prepare", "resize_mode", "share", "to_device"]

_LUMA = (0.299, 0.587, 0.114)
PAD_LIMIT = 4  # a network input at most this much larger than the data is reached by padding, not resizing


@dataclass(frozen=True)
class InputSpec:
    """How stored images become the network's input.

    Attributes:
        size: the network's input (H, W).
        channels: the network's input channels (1 or 3).
        mean, std: per-channel statistics of the stored images ([0, 1] scale), before channel conversion.
        resize: "pad", "resize" or "auto" (pad when the input is at most 4 pixels larger, else resize).
    """

    size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "auto"

    def to_json(self) -> dict[str, object]:
        return {"size": list(self.size), "channels": self.channels, "mean": list(self.mean),
                "std": list(self.std), "resize": self.resize}

    @classmethod
    def from_json(cls, d: dict) -> InputSpec:
        return cls(tuple(d["size"]), int(d["channels"]), tuple(d["mean"]), tuple(d["std"]), d.get("resize", "auto"))


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation: random crop with `crop_padding` zero pixels per side, horizontal flip."""

    crop_padding: int = 0
    hflip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.hflip


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The generator of one epoch's order and augmentation: a function of (seed, epoch) alone."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + epoch * 7919 + 12345) % (2**63))
    return g


def _channels(x: Tensor, have: int, want: int) -> Tensor:
    if have == want:
        return x
    if have == 1 and want == 3:
        return x.expand(-1, 3, -1, -1)
    if have == 3 and want == 1:
        w = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise UserError(f"cannot turn {have}-channel images into the {want} channels the network takes; "
                    "build it with --in-chans 1 or 3")


def _stats(values: tuple[float, ...], have: int, want: int) -> tuple[float, ...]:
    if have == want:
        return values
    if want == 3:
        return values * 3
    return (sum(w * v for w, v in zip(_LUMA, values)),)


def resize_mode(spec: InputSpec, stored: tuple[int, int]) -> str:
    """"pad" or "resize": how `stored` (H, W) reaches `spec.size`."""
    if spec.resize != "auto":
        return spec.resize
    dh, dw = spec.size[0] - stored[0], spec.size[1] - stored[1]
    return "pad" if 0 <= dh <= PAD_LIMIT and 0 <= dw <= PAD_LIMIT else "resize"


def _to_size(x: Tensor, spec: InputSpec) -> Tensor:
    h, w = x.shape[-2:]
    if (h, w) == spec.size:
        return x
    if resize_mode(spec, (h, w)) == "pad":
        dh, dw = spec.size[0] - h, spec.size[1] - w
        if dh < 0 or dw < 0:
            raise UserError(f"cannot pad {h}×{w} images to {spec.size[0]}×{spec.size[1]}; use resize")
        return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
    shrink = spec.size[0] < h or spec.size[1] < w
    return F.interpolate(x, size=spec.size, mode="bilinear", align_corners=False, antialias=shrink)


@dataclass(frozen=True)
class Draw:
    """The random choices of one batch's augmentation: per sample a crop offset and a mirror coin.

    They are drawn for a whole global batch from the epoch's generator, then sliced per process, so a
    sample is augmented the same way whatever the number of processes that share its batch.
    """

    dy: Tensor | None = None
    dx: Tensor | None = None
    flip: Tensor | None = None

    @staticmethod
    def make(augment: Augment, n: int, g: torch.Generator, device: torch.device) -> Draw:
        dy = dx = flip = None
        if augment.crop_padding:
            span = 2 * augment.crop_padding + 1
            dy = torch.randint(0, span, (n,), generator=g, device=device)
            dx = torch.randint(0, span, (n,), generator=g, device=device)
        if augment.hflip:
            flip = torch.rand(n, generator=g, device=device) < 0.5
        return Draw(dy, dx, flip)

    def __getitem__(self, part: slice) -> Draw:
        return Draw(*(t[part] if t is not None else None for t in (self.dy, self.dx, self.flip)))


def _random_crop(x: Tensor, pad: int, dy: Tensor, dx: Tensor) -> Tensor:
    """Each sample shifted by its own offset in [-pad, pad]², the uncovered border zero (padding + crop).

    One gather over the flattened padded maps: index = row·W_padded + column + the sample's offset.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    wp = w + 2 * pad
    window = (torch.arange(h, device=x.device)[:, None] * wp + torch.arange(w, device=x.device)).view(1, -1)
    index = (window + (dy * wp + dx)[:, None])[:, None, :].expand(n, c, h * w)
    return padded.view(n, c, -1).gather(2, index).view(n, c, h, w)


def prepare(images: Tensor, spec: InputSpec, *, augment: Augment | None = None, g: torch.Generator | None = None,
            channels_last: bool = False, draw: Draw | None = None) -> Tensor:
    """uint8 (N, C, H, W) on the device → the float batch the network takes (steps 1–5 of the module doc).

    Augmentation takes its random choices from `draw`, else draws them for these N images from `g`.
    """
    have = images.shape[1]
    x = images.float().div_(255)
    x = _to_size(_channels(x, have, spec.channels), spec)
    if augment is not None and augment.active:
        if draw is None:
            if g is None:
                raise ValueError("augmentation needs a generator")
            draw = Draw.make(augment, x.shape[0], g, x.device)
        if augment.crop_padding:
            x = _random_crop(x, augment.crop_padding, draw.dy, draw.dx)
        if augment.hflip:
            x = torch.where(draw.flip[:, None, None, None], x.flip(3), x)
    mean = torch.tensor(_stats(spec.mean, have, spec.channels), device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(_stats(spec.std, have, spec.channels), device=x.device).view(1, -1, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def share(n: int, rank: int, world: int) -> tuple[int, int]:
    """The [start, stop) of process `rank`'s part of n items split over `world` processes: parts differ by at
    most one item, the first n % world parts one larger (the split of `torch.tensor_split`)."""
    q, r = divmod(n, world)
    start = rank * q + min(rank, r)
    return start, start + q + (rank < r)


def batches(split: TensorSplit | FolderSplit, spec: InputSpec, *, batch_size: int, device: torch.device,
            seed: int = 0, epoch: int = 0, shuffle: bool = False, augment: Augment | None = None,
            drop_last: bool = False, channels_last: bool = False, stored_size: tuple[int, int] | None = None,
            workers: int | None = None, rank: int = 0, world: int = 1) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of network-ready (x, y) batches on `device`, in an order fixed by (seed, epoch).

    An in-memory split must already be on `device` (`to_device`); a folder split is decoded by a
    DataLoader at `stored_size` and each batch moved to the device before the same preparation.

    With `world` processes, `batch_size` is the global batch: every process walks the same order of
    global batches and takes its `share` of each (an empty share is skipped), and the augmentation
    of a global batch is drawn whole and sliced the same way. The samples of a global batch, and how
    each is augmented, are therefore the same on 1, 2 or N processes: a run resumes exactly on
    another number of processes, and no sample is seen twice in an epoch.
    """
    g = epoch_generator(seed, epoch, device)
    n = len(split)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    if isinstance(split, FolderSplit):
        from .folder import epoch_order, stream_batches

        order = epoch_order(n, seed, epoch) if shuffle else list(range(n))
        plan = [(min(batch_size, stop - a), a) for a in range(0, stop, batch_size)]
        mine = [order[a + lo:a + hi] for m, a in plan for lo, hi in [share(m, rank, world)] if hi > lo]
        size = stored_size or spec.size
        stream = iter(stream_batches(split, size=size, channels=3, batch_index=mine, seed=seed, epoch=epoch,
                                     workers=workers, pin_memory=device.type == "cuda"))
        for m, _ in plan:
            draw = Draw.make(augment, m, g, device) if augment is not None and augment.active else None
            lo, hi = share(m, rank, world)
            if hi == lo:
                continue
            images, labels = next(stream)
            images = images.to(device, non_blocking=True)
            yield prepare(images, spec, augment=augment, channels_last=channels_last,
                          draw=draw[lo:hi] if draw is not None else None), labels.to(device, non_blocking=True)
        return
    order = torch.randperm(n, generator=g, device=device) if shuffle else None
    for start in range(0, stop, batch_size):
        m = min(batch_size, stop - start)
        draw = Draw.make(augment, m, g, device) if augment is not None and augment.active else None
        lo, hi = share(m, rank, world)
        if hi == lo:
            continue
        if order is None:
            images, labels = split.images[start + lo:start + hi], split.labels[start + lo:start + hi]
        else:
            index = order[start + lo:start + hi]
            images, labels = split.images[index], split.labels[index]
        yield prepare(images, spec, augment=augment, channels_last=channels_last,
                      draw=draw[lo:hi] if draw is not None else None), labels


def to_device(split: TensorSplit, device: torch.device) -> TensorSplit:
    """The split's tensors on `device` (the whole dataset, uint8: Fashion-MNIST's 60,000 images are 47 MB)."""
    return TensorSplit(split.images.to(device).contiguous(), split.labels.to(device))
