"""Shape-only twins of networks on the ``meta`` device: geometry and counts without memory or compute."""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["build_on_meta", "is_meta", "meta_twin"]


def meta_twin(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers live on ``meta`` (no data is copied).

    Used to probe an input size or count MACs for a network that already holds real weights; the
    original is untouched. Tied weights stay tied because the copy shares one memo.
    """
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def build_on_meta(builder: Callable[..., nn.Module], **kwargs: Any) -> nn.Module:
    """Call `builder` with every tensor it creates placed on ``meta``."""
    with torch.device("meta"):
        return builder(**kwargs)


def is_meta(model: nn.Module) -> bool:
    """True when the network's tensors live on ``meta``: initialisers skip it (values are meaningless there,
    and random fills on meta pull in torch's compiler stack, costing seconds)."""
    first = next(iter(model.parameters()), None)
    return first is not None and first.device.type == "meta"
