"""What the network sees under a test-time protocol (`tta`): crops of a rescaled image cut by one gather, the
papers' scales mapped to a small network's input, and, for dense evaluation, the network that runs over a whole
image (itself when a global pool lets it take any size, else its fully-convolutional form).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..dense import to_fully_conv
from ..errors import UserError
from ..inputs import input_range

__all__ = ["PAPER_CROP", "Views", "crop", "dense_net", "fmt_size", "googlenet_crops", "grid_crops", "grid_offsets",
           "paper_scale", "rescaled", "ten_crop_offsets", "ten_crops", "whole_image"]

PAPER_CROP = 224  # the crop side the papers' scales refer to

Views = Callable[[Tensor, tuple[int, int]], Tensor]  # (N, C, H, W) image, crop size -> (N, V, C, h, w) views


def crop(x: Tensor, offsets: Sequence[tuple[int, int]], size: tuple[int, int]) -> Tensor:
    """(N, C, H, W) -> (N, V, C, h, w): the h×w windows whose top-left corners are `offsets` (y, x), by one gather.

    Row and column indices broadcast to (V, h, w), so every image's every crop comes out of one indexing op.
    """
    h, w = size
    oy = torch.tensor([o[0] for o in offsets], device=x.device)
    ox = torch.tensor([o[1] for o in offsets], device=x.device)
    rows = oy[:, None] + torch.arange(h, device=x.device)  # (V, h)
    cols = ox[:, None] + torch.arange(w, device=x.device)  # (V, w)
    return x[:, :, rows[:, :, None], cols[:, None, :]].transpose(1, 2)  # (N, C, V, h, w) -> (N, V, C, h, w)


def ten_crop_offsets(height: int, width: int, size: tuple[int, int]) -> list[tuple[int, int]]:
    """AlexNet §4.1: top-left, top-right, bottom-left, bottom-right and centre crops of the central square."""
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    h, w = size
    top, bottom, left, right = y0, y0 + side - h, x0, x0 + side - w
    return [(top, left), (top, right), (bottom, left), (bottom, right), (y0 + (side - h) // 2, x0 + (side - w) // 2)]


def grid_offsets(height: int, width: int, size: tuple[int, int], n: int = 5) -> list[tuple[int, int]]:
    """VGG §3.2: an n×n regular grid of crops spanning the image, corners included (row-major)."""
    ys = [round(i * (height - size[0]) / (n - 1)) for i in range(n)]
    xs = [round(i * (width - size[1]) / (n - 1)) for i in range(n)]
    return [(y, x) for y in ys for x in xs]


def whole_image(x: Tensor, size: tuple[int, int]) -> Tensor:
    return x[:, None]


def ten_crops(x: Tensor, size: tuple[int, int]) -> Tensor:
    return crop(x, ten_crop_offsets(x.shape[-2], x.shape[-1], size), size)


def grid_crops(x: Tensor, size: tuple[int, int]) -> Tensor:
    return crop(x, grid_offsets(x.shape[-2], x.shape[-1], size), size)


def googlenet_crops(x: Tensor, size: tuple[int, int]) -> Tensor:
    """GoogLeNet §7 at one scale: 3 squares × (4 corners + centre + the square resized) -> (N, 18, C, h, w)."""
    n, c, height, width = x.shape
    side, long = min(height, width), max(height, width)
    along = [0, (long - side) // 2, long - side]  # left, centre, right (top, centre, bottom when portrait)
    offsets = [(0, a) for a in along] if width >= height else [(a, 0) for a in along]
    squares = crop(x, offsets, (side, side)).flatten(0, 1)  # (3N, C, side, side)
    five = crop(squares, ten_crop_offsets(side, side, size), size)  # (3N, 5, C, h, w)
    shrink = side > min(size)
    resized = F.interpolate(squares, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return torch.cat([five, resized[:, None]], 1).reshape(n, 18, c, *size)


def paper_scale(q: int, side: int) -> int:
    """A paper scale (for 224 crops) at a network trained at `side`: round(q·side/224)."""
    return round(q * side / PAPER_CROP)


def rescaled(size: tuple[int, int], q: int) -> tuple[int, int]:
    """(H, W) rescaled so that the shorter side is q, aspect kept."""
    short = min(size)
    return (q, round(size[1] * q / short)) if size[0] == short else (round(size[0] * q / short), q)


def fmt_size(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def _within(rng: tuple[int, int | None] | None, size: tuple[int, int]) -> bool:
    return rng is not None and min(size) >= rng[0] and (rng[1] is None or max(size) <= rng[1])


def _works(rng: tuple[int, int | None] | None) -> str:
    if rng is None:
        return "no square size"
    return f"square sizes {rng[0]} or more" if rng[1] is None else f"square sizes {rng[0]} to {rng[1]}"


def dense_net(model: nn.Module, side: int, sizes: Sequence[tuple[int, int]]) -> nn.Module:
    """The network dense evaluation runs: itself when a global pool lets it take any size, else
    `to_fully_conv(model)`; a UserError naming the sizes that work when a scale is outside them."""
    name = getattr(model, "name", type(model).__name__)
    native = input_range(model, side)
    if native is not None and native[1] is None:
        net, rng, form = model, native, name
    else:
        try:
            net = to_fully_conv(model)
        except UserError as err:
            if all(_within(native, s) for s in sizes):  # only the sizes its fixed head takes anyway
                return model
            raise UserError(f"dense evaluation of {name} runs its head as convolutions, but {err}; evaluate it "
                            "with 10crop or multicrop instead") from None
        rng, form = input_range(net, side), f"{name} as a fully-convolutional network"
    bad = [s for s in sizes if not _within(rng, s)]
    if bad:
        raise UserError(f"dense evaluation cannot run {name} on a {fmt_size(bad[0])} image (scale {min(bad[0])}): "
                        f"{form} takes {_works(rng)}; give --scales within that range")
    return net
