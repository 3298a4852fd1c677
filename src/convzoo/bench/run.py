"""What a benchmark times: its settings, the networks (ours and a peer's) and one `Workload` per network and mode.

A training step is SGD (momentum 0.9) on one fixed random batch and random labels, cross-entropy, under autocast
for bf16/fp16 (a GradScaler for fp16); an inference step is the eval-mode forward under `torch.inference_mode()`.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from ..peers import SOURCES, build_peer_network
from ..registry import create_model, model_info
from ..training.setup import check_input, resolve_device
from .timing import Workload

__all__ = ["MODES", "Settings", "Side", "build_ours", "build_peer", "make_inputs", "make_workload", "resolve"]

MODES = ("infer", "train")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Settings:
    """One benchmark's settings; `convzoo.bench.bench(name, **settings)` takes these as keywords."""

    mode: str = "infer"  # "infer": eval forward; "train": forward, backward and an SGD step
    batch: int = 32  # images per step (the TF Inception tutorial uses 32 at 299×299)
    input_size: int | Sequence[int] | None = None  # S, (H, W) or (C, H, W); default: the paper's input
    dtype: str = "fp32"  # "fp32", or autocast to "bf16" / "fp16"
    channels_last: bool = False  # the network and its input in channels_last memory format
    compile: bool = False  # torch.compile (its time is `compile_s`, inside the warm-up, never in step times)
    cuda_graphs: bool = False  # torch.compile(mode="reduce-overhead"): CUDA graphs; needs device "cuda"
    device: str = "auto"  # "cpu", "cuda" or "auto" (CUDA when there is one)
    steps: int = 30  # timed steps (per network and mode)
    warmup: int = 5  # untimed steps first (the classic report's burn-in); the first one compiles and allocates
    peak_tflops: float | None = None  # the device's peak TFLOP/s at this dtype, to report the fraction achieved
    classic: bool = False  # also time the other mode, for the TF tutorial's Forward / Forward-backward lines
    options: dict[str, Any] = field(default_factory=dict)  # builder options: in_chans, num_classes, aux_logits…
    seed: int = 0  # torch.manual_seed before each build and for the random batch
    block: int | None = None  # steps per interleaved block (default: steps // 5, between 1 and 10)

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes timed: the one asked for, then the other with `classic`."""
        return (self.mode, *(m for m in MODES if m != self.mode)) if self.classic else (self.mode,)

    @property
    def block_steps(self) -> int:
        return self.block or max(1, min(10, self.steps // 5))


def _positive_int(label: str, value: Any, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{label} must be an integer ≥ 1{why}, got {value!r}")


def resolve(settings: dict[str, Any]) -> tuple[Settings, torch.device]:
    """Check the settings (a bad one raises a one-line `UserError`) and resolve the device."""
    known = [f.name for f in dataclasses.fields(Settings)]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise UserError(f"unknown benchmark setting {unknown[0]!r}; the settings are: {', '.join(known)}")
    cfg = Settings(**{**settings, "options": dict(settings.get("options") or {})})
    if cfg.mode not in MODES:
        raise UserError(f"mode {cfg.mode!r} is not one of {', '.join(MODES)}")
    if cfg.dtype not in DTYPES:
        raise UserError(f"dtype {cfg.dtype!r} is not one of {', '.join(DTYPES)}")
    _positive_int("--batch", cfg.batch)
    _positive_int("--steps", cfg.steps)
    _positive_int("--warmup", cfg.warmup, " (the first step compiles, allocates and tunes; it is never timed)")
    if cfg.block is not None:
        _positive_int("block", cfg.block)
    if cfg.peak_tflops is not None and not (isinstance(cfg.peak_tflops, (int, float)) and cfg.peak_tflops > 0):
        raise UserError(f"--peak-tflops must be a positive number (the device's peak), got {cfg.peak_tflops!r}")
    if cfg.device not in ("cpu", "cuda", "auto"):
        raise UserError(f"device {cfg.device!r} is not one of cpu, cuda, auto")
    device = torch.device(resolve_device(cfg.device))
    if cfg.cuda_graphs and device.type != "cuda":
        raise UserError("--cuda-graphs captures GPU work and needs --device cuda; on the CPU leave it out")
    return cfg, device


def _size(name: str, cfg: Settings) -> tuple[int, int, int]:
    info = model_info(name)
    chans = cfg.options.get("in_chans") or info.input_size[0]
    s = cfg.input_size
    dims = [s] if isinstance(s, int) else list(s) if s is not None else list(info.input_size[1:])
    if not dims or len(dims) > 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise UserError(f"input size {s!r} is not a size; give S, (H, W) or (C, H, W), e.g. 224")
    return (chans, dims[0], dims[0]) if len(dims) == 1 else (chans, *dims) if len(dims) == 2 else tuple(dims)


@dataclass
class Side:
    """One network in a benchmark: where it comes from, the module, and how its training loss is formed."""

    name: str  # the name in its own library
    source: str  # "convzoo", "torchvision" or "timm"
    model: nn.Module
    options: dict[str, Any]  # what it was built with
    input_size: tuple[int, int, int]
    aux: bool = False  # train with its auxiliary heads
    aux_weight: float = 0.0
    compiled: dict[str, Callable[..., Any]] = field(default_factory=dict)


def build_ours(name: str, cfg: Settings) -> Side:
    """Our network, built with `cfg.options` and probed on meta at the benchmark's input (the network's
    own one-line error when the size cannot pass)."""
    info = model_info(name)
    size = _size(name, cfg)
    torch.manual_seed(cfg.seed)
    model = create_model(name, **cfg.options)
    aux = bool(getattr(model, "aux_logits", False))
    check_input(model, size, aux)
    return Side(name, "convzoo", model, dict(cfg.options), size, aux, (info.aux_weight or 0.0) if aux else 0.0)


def build_peer(ours: Side, source: str, cfg: Settings) -> Side:
    """The peer library's same network (`ModelInfo.peers[source]`), random-initialised with our settings."""
    if source not in SOURCES:
        raise UserError(f"--vs {source!r} is not a peer library; choose one of {', '.join(SOURCES)}")
    info = model_info(ours.name)
    if source not in info.peers:
        has = ", ".join(f"{s} ({n})" for s, n in info.peers.items())
        raise UserError(f"{ours.name} has no {source} peer; " + (f"its peers: {has}" if has else
                        "it has no peer in torchvision or timm (leave out --vs)"))
    other = sorted(set(cfg.options) - {"in_chans", "num_classes", "aux_logits"})
    if other:
        raise UserError(f"--vs builds {source}'s own {info.peers[source]}, which --set {other[0]} cannot change; "
                        "leave it out (only --in-chans, --num-classes and --set aux_logits apply to both)")
    kwargs: dict[str, Any] = {"num_classes": ours.model.num_classes}
    if hasattr(ours.model, "aux_logits"):  # torchvision builds googlenet/inception_v3 with them by default
        kwargs["aux_logits"] = ours.aux and (cfg.mode == "train" or cfg.classic)
    if source == "timm":
        kwargs["in_chans"] = ours.model.in_chans
    elif ours.model.in_chans != 3:
        raise UserError(f"torchvision's {info.peers[source]} takes 3 input channels; leave out --in-chans "
                        f"{ours.model.in_chans} for --vs torchvision")
    torch.manual_seed(cfg.seed)
    try:
        model = build_peer_network(source, info.peers[source], **kwargs)
    except ImportError:
        raise UserError(f"--vs {source} needs the {source} package: pip install {source}") from None
    return Side(info.peers[source], source, model, kwargs, ours.input_size, bool(kwargs.get("aux_logits")),
                ours.aux_weight)


def make_inputs(side: Side, cfg: Settings, device: torch.device) -> tuple[Tensor, Tensor]:
    """A fixed random batch (in channels_last when asked) and random labels, on `device`."""
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.batch, *side.input_size, generator=g)
    classes = getattr(side.model, "num_classes", None) or side.options["num_classes"]  # a peer: what it was built with
    y = torch.randint(0, classes, (cfg.batch,), generator=g)
    x = x.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
    return x, y.to(device)


def _loss(out: Any, y: Tensor, aux_weight: float) -> Tensor:
    """Cross-entropy of the logits plus `aux_weight` × that of each auxiliary head: `out` is a tensor, our
    `forward_train`'s (logits, [aux, …]) or a peer's (logits, aux, …) tuple."""
    if isinstance(out, Tensor):
        return F.cross_entropy(out, y)
    logits, *rest = out
    heads = [h for r in rest for h in (r if isinstance(r, (list, tuple)) else [r]) if h is not None]
    loss = F.cross_entropy(logits, y)
    for h in heads:
        loss = loss + aux_weight * F.cross_entropy(h, y)
    return loss


def _forward(side: Side, train: bool, cfg: Settings) -> Callable[[Tensor], Any]:
    """The callable a step runs: the module (or our `forward_train` with auxiliary heads), compiled once."""
    key = "train_aux" if train and side.aux and side.source == "convzoo" else "forward"
    if key not in side.compiled:
        fn = side.model.forward_train if key == "train_aux" else side.model
        if cfg.compile or cfg.cuda_graphs:
            fn = torch.compile(fn, mode="reduce-overhead" if cfg.cuda_graphs else None)
        side.compiled[key] = fn
    return side.compiled[key]


def _resident_bytes(*tensors: Tensor, model: nn.Module) -> int:
    held = [*model.parameters(), *model.buffers(), *tensors]
    return sum(t.numel() * t.element_size() for t in held)


def make_workload(side: Side, mode: str, cfg: Settings, device: torch.device,
                  inputs: tuple[Tensor, Tensor]) -> Workload:
    """One step of `side` in `mode` on the fixed batch `inputs` (its network moved to `device` first)."""
    model = side.model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    x, y = inputs
    dtype = DTYPES[cfg.dtype]

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device.type, dtype=dtype) if dtype is not torch.float32 else contextlib.nullcontext()

    def mark() -> None:  # a new iteration for CUDA graph trees: earlier outputs may be overwritten
        if cfg.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()

    resident = _resident_bytes(x, y, model=model)
    if mode == "infer":
        forward = _forward(side, False, cfg)

        def infer_step() -> None:
            mark()
            with torch.inference_mode(), autocast():
                forward(x)

        return Workload(infer_step, model.eval, resident)
    forward = _forward(side, True, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type) if cfg.dtype == "fp16" else None

    def train_step() -> None:
        mark()
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = _loss(forward(x), y, side.aux_weight)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    return Workload(train_step, model.train, resident)
