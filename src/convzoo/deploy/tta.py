"""Test-time evaluation protocols: a trained network scored on several views of each test image.

The protocols, and where they come from:
- ``none`` (alias ``centre``): the image as the run itself evaluated it, one view; the baseline row.
- ``flip``: the image and its mirror, their logits averaged.
- ``10crop``: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural Networks",
  NIPS 2012, §4.1: the four corner patches and the centre patch of the 256×256 image, and their mirrors; the
  ten soft-max outputs averaged.
- ``dense``: Simonyan & Zisserman, arXiv:1409.1556, §3.2: the fully-connected layers become convolutions
  (`convzoo.to_fully_conv`), the network runs over the whole rescaled image, its class score map is spatially
  averaged ("sum-pooled"), and the soft-max posteriors of the image and its mirror, and of the scales Q
  (256, 384, 512 in §4.2), are averaged. Global-pool networks take any size as they are.
- ``multicrop``: the same paper, §3.2 and §4.3: 50 crops per scale, a regular 5×5 grid of crops and their
  mirrors, posteriors averaged over crops and scales.
- ``144crop``: Szegedy et al., "Going Deeper with Convolutions", arXiv:1409.4842, §7: shorter side rescaled to
  256, 288, 320 and 352; the left, centre and right squares (top, centre, bottom for portrait images); in each
  square the four corner crops, the centre crop and the square resized to the crop; all mirrored:
  4 × 3 × 6 × 2 = 144 soft-max outputs averaged.

Mapping to small images. The papers speak of 224-pixel crops of ImageNet images rescaled to 256…512. A run
trained at S×S (32 for lenet5_modern on Fashion-MNIST) takes S×S crops, and a paper scale q becomes
round(q·S/224): 10crop rescales to 37 at S = 32, dense and multicrop to 37, 55 and 73, 144crop to 37, 41, 46
and 50. `--scales` gives dense and multicrop other scales (the shorter side Q, in pixels; Q = S is the image
as the run saw it). The "image" is the run's own view of a stored image: when the run pads (Fashion-MNIST's
28×28 to 32×32) the padded image is what is rescaled, so that a scale magnifies the object and its frame
alike; when it resizes, the stored image is resized to Q directly. At Q = S both are the baseline input.

Averaging follows each paper: soft-max posteriors for 10crop, dense, multicrop and 144crop; logits for flip.
Dense averages the raw scores of its map over space first (VGG's sum-pooling), then takes the soft-max.
The reported loss is the negative log of the final averaged posterior of the true class, so it is the
cross-entropy of what the protocol predicts (for ``none`` it equals `convzoo.evaluate_run`'s loss).

Cost. Evaluations per image count network forwards per test image; MACs per image are `convzoo.analyze`'s
(conv + fc multiply-accumulates, DESIGN.md) at each evaluated input size, times its evaluations; seconds are
the wall-clock of the protocol over the split (rescaling, cropping and forwards; loading the data and the
cost analysis excluded). Crops are cut by one gather per batch and every forward takes at most about
`batch_size` inputs' worth of pixels, so memory stays bounded whatever the protocol.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..analysis import analyze
from ..data.pipeline import InputSpec, prepare, resize_mode
from ..data.types import FolderSplit, TensorSplit
from ..errors import UserError, closest
from ..training.inference import Trained, evaluation_data, load_trained
from .views import (
    Views,
    dense_net,
    fmt_size,
    googlenet_crops,
    grid_crops,
    paper_scale,
    rescaled,
    ten_crops,
    whole_image,
)

__all__ = ["ALIASES", "PROTOCOLS", "Plan", "Protocol", "ProtocolResult", "TTAReport", "evaluate_protocols",
           "log_posteriors", "parse_protocols", "parse_scales", "plan"]

@dataclass(frozen=True)
class Protocol:
    """One test-time protocol as data: which views of a rescaled image, at which paper scales, averaged how."""

    name: str
    source: str  # the paper and section
    views: Views | None  # None: the whole image through the fully-convolutional network (dense)
    crops: int  # views per scale, mirrors not counted
    paper_scales: tuple[int, ...]  # shorter sides for 224 crops (scaled by S/224); (): the network's own input
    mirror: bool  # each view also mirrored
    average: str  # "logits" or "softmax": what is averaged over the views
    takes_scales: bool  # a plain list of scales (`--scales`) replaces paper_scales


_VGG = "Simonyan & Zisserman, arXiv:1409.1556"
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol(name="none", source="the run's own evaluation", views=whole_image, crops=1, paper_scales=(), mirror=False,
             average="logits", takes_scales=False),
    Protocol(name="flip", source="the image and its mirror", views=whole_image, crops=1, paper_scales=(), mirror=True,
             average="logits", takes_scales=False),
    Protocol(name="10crop", source="Krizhevsky et al. 2012, §4.1", views=ten_crops, crops=5, paper_scales=(256,),
             mirror=True, average="softmax", takes_scales=False),
    Protocol(name="dense", source=f"{_VGG}, §3.2", views=None, crops=1, paper_scales=(256, 384, 512), mirror=True,
             average="softmax", takes_scales=True),
    Protocol(name="multicrop", source=f"{_VGG}, §3.2, §4.3", views=grid_crops, crops=25, paper_scales=(256, 384, 512),
             mirror=True, average="softmax", takes_scales=True),
    Protocol(name="144crop", source="Szegedy et al., arXiv:1409.4842, §7", views=googlenet_crops, crops=18,
             paper_scales=(256, 288, 320, 352), mirror=True, average="softmax", takes_scales=False),
)}
ALIASES = {"centre": "none", "center": "none"}


def _choices() -> str:
    return ", ".join(f"{n} (or centre)" if n == "none" else n for n in PROTOCOLS)


def parse_protocols(given: str | Sequence[str]) -> list[str]:
    """Protocol names from "a,b" strings or a list of them, aliases resolved, duplicates dropped, in order."""
    parts = [given] if isinstance(given, str) else list(given)
    names: list[str] = []
    for word in (w.strip().lower() for part in parts for w in part.split(",")):
        if not word:
            continue
        name = ALIASES.get(word, word)
        if name not in PROTOCOLS:
            near = closest(word, [*PROTOCOLS, *ALIASES])
            hint = f"; did you mean {near[0]}?" if near else ""
            raise UserError(f"unknown test-time protocol {word!r}{hint} (protocols: {_choices()})")
        if name not in names:
            names.append(name)
    if not names:
        raise UserError(f"no test-time protocol given; name one or more of {_choices()}")
    return names


def parse_scales(given: str | Sequence[int]) -> tuple[int, ...]:
    """Scales (shorter sides in pixels) from "32,40,48" or a sequence of ints."""
    words = given.split(",") if isinstance(given, str) else list(given)
    try:
        scales = tuple(int(str(w).strip()) for w in words if str(w).strip())
    except ValueError:
        raise UserError(f"scales must be whole numbers of pixels separated by commas, e.g. 32,40,48; got "
                        f"{given!r}") from None
    if not scales or min(scales) < 1:
        raise UserError(f"scales must be one or more positive sizes in pixels, e.g. 32,40,48; got {given!r}")
    return tuple(dict.fromkeys(scales))


@dataclass(frozen=True)
class Plan:
    """A protocol made concrete for one network: its scales, image sizes, views and the network that runs."""

    protocol: Protocol
    scales: tuple[int, ...]  # shorter sides Q (the network's own input side for none/flip)
    image_sizes: tuple[tuple[int, int], ...]  # (H, W) of the rescaled image, per scale
    input_sizes: tuple[tuple[int, int], ...]  # (H, W) the network takes, per scale (crop, or the whole image)
    views: tuple[int, ...]  # network evaluations per image, per scale (mirrors counted)
    net: nn.Module  # the trained network, or its fully-convolutional form (dense)
    spec: InputSpec

    @property
    def evaluations(self) -> int:
        return sum(self.views)

    def macs(self) -> int:
        """MACs per image: analysed MACs at each evaluated input size × its evaluations."""
        chans = self.spec.channels
        per_size: dict[tuple[int, int], int] = {}
        for size in self.input_sizes:
            if size not in per_size:
                per_size[size] = analyze(self.net, input_size=(chans, *size), find_input_range=False).totals.macs
        return sum(v * per_size[s] for v, s in zip(self.views, self.input_sizes))


def plan(model: nn.Module, spec: InputSpec, protocol: str | Protocol,
         scales: Sequence[int] | None = None) -> Plan:
    """The protocol for `model` at the run's input `spec`: scales resolved and checked, dense network built.

    Args:
        model: the trained network (eval mode).
        spec: the run's `InputSpec`; its size is the crop size S.
        protocol: a name of `PROTOCOLS` (or an alias), or a `Protocol`.
        scales: shorter sides Q (any protocol but none and flip); None: the paper's, scaled by S/224.

    Raises:
        UserError: an unknown protocol, a scale smaller than the crops, or one the network cannot take.
    """
    p = protocol if isinstance(protocol, Protocol) else PROTOCOLS[parse_protocols(protocol)[0]]
    side = min(spec.size)
    if not p.paper_scales:
        if scales is not None and tuple(parse_scales(scales)) != (side,):
            raise UserError(f"{p.name} looks at the network's own {fmt_size(spec.size)} input and takes no scales; "
                            "give scales to 10crop, dense, multicrop or 144crop")
        qs: tuple[int, ...] = (side,)
    elif scales is not None:
        qs = parse_scales(scales)
    else:
        qs = tuple(dict.fromkeys(paper_scale(q, side) for q in p.paper_scales))
    images = tuple(rescaled(spec.size, q) for q in qs)  # the run's own input at q = S
    if p.views is None:
        net, inputs = dense_net(model, side, images), images
    else:
        small = [(q, s) for q, s in zip(qs, images) if s[0] < spec.size[0] or s[1] < spec.size[1]]
        if small:
            raise UserError(f"{p.name} takes {fmt_size(spec.size)} crops (the network's input) from the image rescaled "
                            f"to each scale, so no scale can be below {side}; got {small[0][0]}: give scales of "
                            f"{side} or more")
        net, inputs = model, tuple(spec.size for _ in qs)
    per_scale = p.crops * (2 if p.mirror else 1)
    return Plan(p, qs, images, inputs, tuple(per_scale for _ in qs), net, spec)


def _rescale(images: Tensor, spec: InputSpec, size: tuple[int, int]) -> Tensor:
    """uint8 stored images -> the network-ready float image at `size` (module doc: padded runs rescale the
    padded image, resizing runs resize the stored one); at the run's own size, its own input."""
    if size == spec.size:
        return prepare(images, spec)
    if resize_mode(spec, tuple(images.shape[-2:])) == "pad":
        base = prepare(images, spec)  # normalising is affine per channel, so it commutes with interpolation
        shrink = size[0] < base.shape[-2] or size[1] < base.shape[-1]
        return F.interpolate(base, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return prepare(images, replace(spec, size=size, resize="resize"))


def _scores(net: nn.Module, x: Tensor) -> Tensor:
    """(B, classes) float scores; a class score map (B, classes, h, w) is averaged over space (VGG §3.2)."""
    out = net(x)
    return (out.mean((2, 3)) if out.ndim == 4 else out).float()


def log_posteriors(p: Plan, images: Tensor, amp: str = "none") -> Tensor:
    """(N, classes) log of the protocol's averaged posterior for uint8 stored images (N, C, H, W).

    Each scale's views go through the network in one batch (under `amp` autocast: "none", "bf16" or "fp16");
    callers bound N (see `evaluate_protocols`).
    """
    total: Tensor | None = None
    for size, inputs in zip(p.image_sizes, p.input_sizes):
        x = _rescale(images, p.spec, size)
        views = x[:, None] if p.protocol.views is None else p.protocol.views(x, inputs)
        if p.protocol.mirror:
            views = torch.cat([views, views.flip(-1)], 1)
        n, v = views.shape[:2]
        with torch.no_grad(), _autocast(amp, images.device):
            scores = _scores(p.net, views.flatten(0, 1)).view(n, v, -1)
        part = (scores.softmax(-1) if p.protocol.average == "softmax" else scores).sum(1)
        total = part if total is None else total + part
    assert total is not None
    mean = total / p.evaluations
    return mean.log_softmax(-1) if p.protocol.average == "logits" else mean.clamp_min(1e-30).log()


@dataclass(frozen=True)
class ProtocolResult:
    """What one protocol bought and cost on a split."""

    protocol: str
    source: str
    scales: tuple[int, ...]
    input_sizes: tuple[tuple[int, int], ...]  # what the network took, per scale
    evaluations: int  # network evaluations per image
    macs_per_image: int  # conv + fc multiply-accumulates (DESIGN.md), all evaluations of one image
    top1: float
    top5: float
    loss: float  # −log of the averaged posterior of the true class, mean over the split
    seconds: float  # wall-clock over the split (data loading and cost analysis excluded)
    images_per_s: float
    images: int
    average: str  # "logits" or "softmax"


@dataclass(frozen=True)
class TTAReport:
    checkpoint: str
    model: str
    dataset: str
    split: str
    amp: str
    device: str
    results: tuple[ProtocolResult, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _autocast(amp: str, device: torch.device) -> Any:
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _chunks(split: TensorSplit | FolderSplit, size: tuple[int, int], n: int,
            device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """The split as uint8 (images, labels) chunks of `n` on `device`, in order."""
    if isinstance(split, FolderSplit):
        from ..data.folder import stream_batches

        for images, labels in stream_batches(split, size=size, channels=3, batch_size=n, shuffle=False, seed=0):
            yield images.to(device), labels.to(device)
        return
    for start in range(0, len(split), n):
        yield split.images[start:start + n], split.labels[start:start + n]


def _chunk_size(p: Plan, batch_size: int) -> int:
    """Images per chunk such that a forward holds about `batch_size` network inputs' worth of pixels."""
    pixels = p.spec.size[0] * p.spec.size[1]
    cost = max(v * s[0] * s[1] / pixels for v, s in zip(p.views, p.input_sizes))
    return max(1, int(batch_size // max(cost, 1.0)))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run(p: Plan, split: TensorSplit | FolderSplit, stored: tuple[int, int], batch_size: int, amp: str,
         device: torch.device) -> ProtocolResult:
    hits1 = hits5 = torch.zeros((), device=device, dtype=torch.int64)
    loss = torch.zeros((), device=device, dtype=torch.float64)
    n = 0
    _sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        for images, labels in _chunks(split, stored, _chunk_size(p, batch_size), device):
            logp = log_posteriors(p, images, amp)
            top = logp.topk(min(5, logp.shape[1]), dim=1).indices
            hits1 = hits1 + (top[:, 0] == labels).sum()
            hits5 = hits5 + (top == labels[:, None]).any(1).sum()
            loss = loss + F.nll_loss(logp, labels, reduction="sum").double()
            n += len(labels)
    _sync(device)
    seconds = time.perf_counter() - t0
    n = max(n, 1)
    return ProtocolResult(p.protocol.name, p.protocol.source, p.scales, p.input_sizes, p.evaluations, p.macs(),
                          hits1.item() / n, hits5.item() / n, loss.item() / n, seconds, n / seconds, n,
                          p.protocol.average)


def _test_data(t: Trained, dataset: str | None, data_dir: str | None, verify: bool, split: str,
               device: torch.device) -> tuple[Any, TensorSplit | FolderSplit, InputSpec, tuple[int, int]]:
    """The dataset, the chosen split on `device`, the input spec and the stored size, as `evaluate_run` has them."""
    data, chosen, spec = evaluation_data(t, dataset, data_dir, verify, split, device)
    stored = tuple(t.meta["stored_size"]) if t.meta.get("stored_size") else t.spec.size
    return data, chosen, spec, (int(stored[0]), int(stored[1]))


def _scales_for(name: str, scales: Sequence[int] | Mapping[str, Sequence[int]] | None) -> Sequence[int] | None:
    """A mapping gives each protocol its own scales; a plain list goes to the protocols that take scales."""
    if isinstance(scales, Mapping):
        return scales.get(name)
    return scales if PROTOCOLS[name].takes_scales else None


def _check_scales(names: list[str], scales: str | Sequence[int] | Mapping[str, Sequence[int]] | None,
                  ) -> Sequence[int] | Mapping[str, Sequence[int]] | None:
    """Scales parsed, and refused when they would apply to none of the protocols asked for."""
    if isinstance(scales, Mapping):
        stray = [k for k in scales if ALIASES.get(k, k) not in names]
        if stray:
            raise UserError(f"scales are given for {stray[0]!r}, which is not among the protocols "
                            f"{', '.join(names)}; name it in the protocols or drop its scales")
        return {ALIASES.get(k, k): parse_scales(v) for k, v in scales.items()}
    if scales is None:
        return None
    if not any(PROTOCOLS[n].takes_scales for n in names):
        takers = ", ".join(n for n, p in PROTOCOLS.items() if p.takes_scales)
        raise UserError(f"scales apply to {takers}, none of which is among the protocols {', '.join(names)}; add one "
                        "or leave the scales out (the others use their papers' scales)")
    return parse_scales(scales)


def evaluate_protocols(source: str | os.PathLike[str], protocols: str | Sequence[str] = ("none",), *,
                       scales: str | Sequence[int] | Mapping[str, Sequence[int]] | None = None,
                       dataset: str | None = None, data_dir: str | None = None, verify: bool = True,
                       split: str = "test", device: str = "cpu", batch_size: int = 1000,
                       amp: str | None = None) -> TTAReport:
    """Top-1, top-5, loss and cost of a trained run under each test-time protocol, on one split.

    Args:
        source: a run directory of `convzoo train`, or a checkpoint.
        protocols: names of `PROTOCOLS` ("none", "flip", "10crop", "dense", "multicrop", "144crop"), as a list or
            a comma-separated string; "centre" is the baseline's other name.
        scales: shorter sides Q for the protocols that take scales (dense, multicrop), or a mapping from a
            protocol name to its scales (also 10crop and 144crop); None: the papers' scales × S/224.
        dataset, data_dir, verify, split, device, batch_size: as for `convzoo.evaluate_run`.
        amp: autocast precision; default the run's own.

    Raises:
        UserError: an unknown protocol, scales the network cannot take, or data that does not fit the run.
    """
    names = parse_protocols(protocols)
    scales = _check_scales(names, scales)
    if batch_size < 1:
        raise UserError(f"batch size must be 1 or more, got {batch_size}")
    dev = torch.device(device)
    t = load_trained(source, device)
    plans = [plan(t.model, t.spec, n, _scales_for(n, scales)) for n in names]  # every check before any work
    data, chosen, spec, stored = _test_data(t, dataset, data_dir, verify, split, dev)
    plans = [replace(p, spec=spec) for p in plans]
    precision = amp or t.meta.get("amp", "none")
    results = tuple(_run(p, chosen, stored, batch_size, precision, dev) for p in plans)
    notes = () if data.hflip or not any(p.protocol.mirror for p in plans) else (
        f"a mirror image does not keep the label on {data.name}; the protocols that average mirrors suffer",)
    return TTAReport(str(t.path), t.meta["model"], data.name, split, precision, str(dev), results, notes)
