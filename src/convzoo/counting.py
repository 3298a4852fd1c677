"""Whole-network figures: parameters, MACs and per-stage shapes, computed on the ``meta`` device.

Conventions (the papers' "multiply-adds" and torchvision's ``_ops``):
- params = Σ p.numel() over parameters (BN γ/β included, running statistics excluded);
- MACs = multiply-accumulates of convolutions and matrix products (fully-connected layers), bias,
  normalisation, activations and pooling excluded; measured as ``FlopCounterMode`` FLOPs / 2;
- FLOPs = 2 × MACs, wherever shown.

`convzoo.analyze` (per layer) counts the same MACs independently, and the tests require both to agree.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .meta import build_on_meta, is_meta, meta_twin
from .registry import create_model, model_info

__all__ = ["count_macs", "count_params", "figures", "stage_shapes"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Σ numel over distinct parameters (shared tensors counted once)."""
    seen = {id(p): p for p in model.parameters() if p.requires_grad or not trainable_only}
    return sum(p.numel() for p in seen.values())


def _as_meta(model: nn.Module | str, **overrides: Any) -> nn.Module:
    if isinstance(model, str):
        return build_on_meta(create_model, name=model, **overrides)
    return model if is_meta(model) else meta_twin(model)


def count_macs(model: nn.Module | str, input_size: tuple[int, int, int] | None = None) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (``FlopCounterMode`` / 2), on ``meta``."""
    net = _as_meta(model)
    if input_size is None and not isinstance(model, str) and not hasattr(net, "name"):
        raise ValueError("count_macs needs input_size for a network that is not registered")
    size = input_size or model_info(net.name).input_size
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.eval()(torch.empty(1, *size, device="meta"))
    return counter.get_total_flops() // 2


def stage_shapes(model: nn.Module, input_size: tuple[int, int, int]) -> dict[str, list[int]]:
    """Output shape (C, H, W) of the stem and of each stage, in forward order, at batch 1.

    The stages are the children of ``model.stages`` (or ``model.features`` where the paper has no
    stages, as for LeNet, AlexNet and VGG); ``features`` is what `forward_features` returns.
    """
    net = _as_meta(model)
    watched: list[tuple[str, nn.Module]] = []
    if isinstance(getattr(net, "stem", None), nn.Module):
        watched.append(("stem", net.stem))
    body_name = "stages" if isinstance(getattr(net, "stages", None), nn.Module) else "features"
    body = getattr(net, body_name, None)
    if isinstance(body, nn.Module):
        watched += [(f"{body_name}.{n}", m) for n, m in body.named_children()]
    shapes: dict[str, list[int]] = {}

    def record(name: str):
        def hook(mod: nn.Module, args: tuple, out: Tensor) -> None:
            if isinstance(out, Tensor):
                shapes.setdefault(name, list(out.shape[1:]))
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in watched]
    try:
        with torch.no_grad():
            feats = net.eval().forward_features(torch.empty(1, *input_size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    shapes["features"] = list(feats.shape[1:])
    return shapes


def figures(name: str, **overrides: Any) -> dict[str, Any]:
    """The pinned figures of a registered network at its paper input (see tests/expected/)."""
    net = _as_meta(name, **overrides)
    size = model_info(name).input_size
    return {
        "input_size": list(size),
        "params": count_params(net),
        "trainable_params": count_params(net, trainable_only=True),
        "macs": count_macs(net, size),
        "stages": stage_shapes(net, size),
    }
