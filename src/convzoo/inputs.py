"""Which input sizes a network can take, and a clear error when it is given one it cannot.

A convolution network fails on a bad input deep inside torch ("mat1 and mat2 shapes cannot be
multiplied", "Kernel size can't be greater than actual input size"). `diagnose_input` replays the
failing input on a shape-only twin of the network (``meta`` device), finds the layer where it breaks,
searches the square sizes that work, and turns it all into one `UserError` line.
"""
from __future__ import annotations

import contextvars
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .errors import UserError
from .meta import is_meta, meta_twin

__all__ = ["diagnose_input", "input_range", "is_probing", "shape_twin", "twin_range"]

_PROBING = contextvars.ContextVar("convzoo_probing", default=False)
_LARGEST = 4096  # sizes above this are not searched; a network that still works there is "unbounded"
_SEEDS = (224, 227, 299, 32, 28, 512, 1024)  # sizes tried after the hint, for a first one that works
_NEAR = 64  # then sizes this close to the hint, one by one
# Modules that never change a tensor's shape. Probes replace them by nn.Identity: on meta they run
# through Python reference implementations and would make every probe about ten times slower.
_SHAPE_KEEPING = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LocalResponseNorm, nn.Dropout, nn.Dropout2d,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU,
)


def is_probing() -> bool:
    """True while a shape-only probe runs (the network's own error handler must stay out of the way)."""
    return _PROBING.get()


@dataclass(frozen=True)
class _Failure:
    layer: str  # qualified module name, "" for the network itself
    module: nn.Module
    layer_input: tuple[int, ...] | None
    features: tuple[int, ...] | None  # output shape of forward_features, when it got that far
    message: str


def _run(twin: nn.Module, x: Tensor, features: list[tuple[int, ...]]) -> None:
    """One shape-only pass: features, head, and the auxiliary heads (which may fix the size too)."""
    token = _PROBING.set(True)  # the network's own error handler must re-raise torch's error unchanged
    try:
        with torch.no_grad():
            if not hasattr(twin, "forward_features"):
                twin(x)
                return
            feats = twin.forward_features(x)
            features.append(tuple(feats.shape))
            twin.forward_head(feats)
            if getattr(twin, "aux_logits", False):
                twin.forward_train(x)
    finally:
        _PROBING.reset(token)


def _probe(twin: nn.Module, size: tuple[int, int, int, int]) -> _Failure | None:
    """Run `twin` (a `shape_twin`) at `size`; None when it works, else where and why it broke."""
    names = {m: n for n, m in twin.named_modules()}
    stack: list[tuple[nn.Module, tuple[int, ...] | None]] = []
    features: list[tuple[int, ...]] = []

    def enter(mod: nn.Module, args: tuple) -> None:
        first = args[0] if args and isinstance(args[0], Tensor) else None
        stack.append((mod, tuple(first.shape) if first is not None else None))

    def leave(mod: nn.Module, args: tuple, out: object) -> None:
        stack.pop()

    handles = [m.register_forward_pre_hook(enter) for m in names]
    handles += [m.register_forward_hook(leave) for m in names]
    try:
        _run(twin, torch.empty(size, device="meta"), features)
    except (RuntimeError, ValueError) as err:
        mod, shape = stack[-1] if stack else (twin, size)
        feat = features[0] if features else None
        return _Failure(names.get(mod, ""), mod, shape, feat, str(err).splitlines()[0])
    finally:
        for h in handles:
            h.remove()
    return None


def shape_twin(model: nn.Module, inplace: bool = False) -> nn.Module:
    """A meta network for geometry probes, in eval mode (train-mode batch norm is slow on meta, and
    geometry is the same), with its shape-keeping modules made identities. A private copy of `model`,
    unless `inplace` says `model` is a throwaway meta build that may be changed."""
    twin = (model if inplace and is_meta(model) else meta_twin(model)).eval()
    for parent in list(twin.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, _SHAPE_KEEPING):
                setattr(parent, child_name, nn.Identity())
    return twin


def _works(twin: nn.Module, chans: int, s: int) -> bool:
    try:
        _run(twin, torch.empty(2, chans, s, s, device="meta"), [])
    except (RuntimeError, ValueError):
        return False
    return True


def _search_range(twin: nn.Module, chans: int, start: int) -> tuple[int, int | None]:
    """Smallest and largest square size that work, searching outward from a working `start`."""
    bad, good = 0, start  # binary search for the smallest: sizes below it fail
    while good - bad > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if _works(twin, chans, mid) else (good, mid)
    lo = good
    if _works(twin, chans, _LARGEST):  # no fully-connected head fixes the size: unbounded above
        return lo, None
    good, bad = start, _LARGEST  # a fixed head takes a window of sizes: search its top
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if _works(twin, chans, mid) else (good, mid)
    return lo, good


def twin_range(twin: nn.Module, chans: int, hint: int | None) -> tuple[int, int | None] | None:
    """The (smallest, largest or None) square side `twin` (a `shape_twin`) takes with `chans` channels, searched
    from `hint` first; None when no size works."""
    for s in ([hint] if hint else []) + list(_SEEDS):
        if _works(twin, chans, s):
            return _search_range(twin, chans, s)
    # A fixed head takes a window of sizes about as wide as the network's total stride; build options can
    # shift it off every usual size (AlexNet's conv1 padding moves it by two pixels per pixel of padding).
    for d in range(1, _NEAR + 1) if hint else ():
        for s in (hint - d, hint + d):  # type: ignore[operator]
            if 1 <= s <= _LARGEST and _works(twin, chans, s):
                return _search_range(twin, chans, s)
    return None


def input_range(model: nn.Module, hint: int | None = None, *, inplace: bool = False,
                ) -> tuple[int, int | None] | None:
    """The square input sizes (lo, hi) a network takes; hi is None when unbounded (≤ 4096 searched).

    Returns None when no size in 1..4096 works. `hint` is a size to try first (the paper's input).
    ``inplace=True`` lets the search strip a throwaway meta build instead of copying it (copying a network
    of a thousand modules costs about 0.3 s); the network is unusable afterwards.
    """
    return twin_range(shape_twin(model, inplace), int(getattr(model, "in_chans", 3)), hint)


def _fmt(shape: tuple[int, ...] | None) -> str:
    return "×".join(str(d) for d in shape) if shape else "?"


def _detail(f: _Failure) -> str:
    """Why the layer refused, in the user's terms."""
    mod, shape = f.module, f.layer_input
    where = f"at {f.layer or 'the network'} ({type(mod).__name__})"
    if isinstance(mod, nn.Linear) and shape is not None:
        got = shape[-1]
        expect = f"{mod.in_features}"
        if f.features and len(f.features) == 4 and mod.in_features % f.features[1] == 0:
            k = math.isqrt(mod.in_features // f.features[1])
            if k * k * f.features[1] == mod.in_features:
                expect += f" = {f.features[1]}×{k}×{k}"
        got_str = f"{got} = {_fmt(f.features[1:])}" if f.features and len(f.features) == 4 else f"{got}"
        return f"{where} the features hold {got_str} values but the layer expects {expect}"
    kernel = getattr(mod, "kernel_size", None)
    if kernel is not None and shape is not None and len(shape) == 4:
        k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
        return f"{where} the {_fmt(shape[2:])} map is too small for its {_fmt(k)} window"
    return f"{where}: {f.message}"


def diagnose_input(model: nn.Module, shape: tuple[int, ...], err: Exception, *,
                   built_with: Mapping[str, Any] | None = None) -> Exception:
    """A `UserError` explaining why `model` cannot take an input of `shape`, or `err` if it can.

    Called from a network's `forward` when torch raises; returns `err` unchanged when the failure is not
    about the input's geometry, so genuine bugs keep their own traceback. `built_with` names the options the
    network was built with from a user's request: when no size works at all, they are the cause, and the
    error says so instead of passing torch's on.
    """
    name = getattr(model, "name", type(model).__name__)
    chans = getattr(model, "in_chans", None)
    if len(shape) != 4:
        return UserError(f"{name} takes a 4-D batch (N, C, H, W) but got a tensor of shape "
                         f"{tuple(shape)}; add a batch dimension with x.unsqueeze(0)")
    if chans is not None and shape[1] != chans:
        return UserError(f"{name} was built for {chans} input channel(s) but got {shape[1]}; "
                         f"build it with in_chans={shape[1]}")
    twin = shape_twin(model)
    failure = _probe(twin, tuple(shape))  # type: ignore[arg-type]
    if failure is None:
        return err
    from .registry import _REGISTRY  # late: the registry imports models, which import this module

    info = _REGISTRY.get(name)
    paper_side = info.input_size[1] if info else None
    rng = twin_range(twin, chans or 3, paper_side)
    if rng is None:
        if not built_with:
            return err
        given = ", ".join(f"{k}={v!r}" for k, v in built_with.items())
        near = f"{paper_side - _NEAR} to {paper_side + _NEAR}, " if paper_side else ""
        return UserError(f"{name} cannot take a {_fmt(shape[1:])} input: {_detail(failure)}; built with {given} it "
                         f"takes no square size tried ({near}{', '.join(map(str, _SEEDS))}): change those options")
    lo, hi = rng
    works = f"{lo} to {hi}" if hi is not None else f"{lo} or more"
    hint = f" ({info.input_hint})" if info and info.input_hint else ""
    return UserError(f"{name} cannot take a {_fmt(shape[1:])} input: {_detail(failure)}; square sizes "
                     f"that work: {works}{hint}")
