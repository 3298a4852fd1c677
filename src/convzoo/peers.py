"""Load torchvision or timm weights into the convzoo network that is the same architecture.

The correspondence is structural: convzoo builds each peer-compatible network so that its state dict
lists the same tensors in the same order as the peer's. The peer's weights are first put in the peer's
module order (a build of the peer on the meta device gives it; a safetensors file stores keys sorted by
name), then the two lists are paired in order. Loading refuses, naming the first disagreement, unless
every pair has the same shape and the same kind (``weight``, ``bias``, ``running_mean`` ...). A family
whose order cannot follow the peer's registers an adapter (`register_peer_adapter`) that reorders or
filters the peer's tensors first.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .errors import UserError
from .registry import _REGISTRY

__all__ = ["SOURCES", "build_peer_network", "load_peer_weights", "read_state_dict", "register_peer_adapter"]

SOURCES = ("torchvision", "timm")
Adapter = Callable[[nn.Module, dict[str, Tensor]], dict[str, Tensor]]
_ADAPTERS: dict[tuple[str, str], Adapter] = {}


def register_peer_adapter(family: str, source: str) -> Callable[[Adapter], Adapter]:
    """Register `fn(model, peer_state_dict) -> peer_state_dict` reordered/filtered to our order."""

    def wrap(fn: Adapter) -> Adapter:
        key = (family, source)
        if key in _ADAPTERS:
            raise ValueError(f"a peer adapter for {key} is already registered")
        _ADAPTERS[key] = fn
        return fn

    return wrap


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a state dict from a ``.safetensors`` or torch file without executing code from it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {str(path)!r} does not exist; give the path of a .pth, .pt or "
                        ".safetensors file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError as err:
        raise UserError(f"reading {path.name} needs the safetensors package: pip install safetensors") from err
    except Exception as err:  # truncated, corrupt or not a checkpoint at all: all the same to the user
        raise UserError(f"cannot read weights from {str(path)!r}: the file is truncated, corrupt or not a "
                        f"weights file ({type(err).__name__}); download or save it again") from err
    for key in ("state_dict", "model", "model_state_dict"):  # common checkpoint wrappers
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise UserError(f"{str(path)!r} holds no state dict of tensors; save one with "
                        "torch.save(model.state_dict(), path)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def build_peer_network(source: str, peer_name: str, **options: Any) -> nn.Module:
    """The peer library's network `peer_name`, random-initialised (no weights are fetched); ImportError when
    the library is missing. Build it under ``torch.device("meta")`` for its structure alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's googlenet and inception_v3 warn about init_weights
        if source == "torchvision":
            import torchvision

            return torchvision.models.get_model(peer_name, weights=None, **options)
        import timm

        return timm.create_model(peer_name, pretrained=False, **options)


def _peer_order(source: str, peer_name: str, aux: bool) -> list[str] | None:
    """The peer network's own key order (its module order), from a build on meta (with its auxiliary heads
    when ours has them: timm builds inception_v3 without them by default); None when the library is missing."""
    try:
        with torch.device("meta"):
            net = build_peer_network(source, peer_name, **({"aux_logits": True} if aux else {}))
    except ImportError:
        return None
    return list(net.state_dict())


def _in_module_order(peer: dict[str, Tensor], order: list[str], label: str) -> dict[str, Tensor]:
    """`peer` sorted the way the peer's modules are (files such as safetensors store keys sorted by name)."""
    rank = {k: i for i, k in enumerate(order)}
    foreign = [k for k in peer if k not in rank]
    if foreign:
        raise UserError(f"{label} are not that network's: {len(foreign)} keys such as {foreign[0]!r} do not "
                        "occur in it; check the file and the model name")
    return dict(sorted(peer.items(), key=lambda kv: rank[kv[0]]))


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def load_peer_weights(
    model: nn.Module,
    state_dict_or_path: Mapping[str, Tensor] | str | os.PathLike[str],
    source: str = "torchvision",
) -> nn.Module:
    """Copy a torchvision or timm state dict into `model` (in place) and return `model`.

    Args:
        model: a convzoo network built with the same num_classes/in_chans as the peer's weights.
        state_dict_or_path: the peer's ``state_dict()`` or a file holding it.
        source: ``"torchvision"`` or ``"timm"``.

    Raises:
        UserError: unknown source, a network with no counterpart there, unreadable file, or weights
            that do not correspond (the first disagreeing tensor is named).
    """
    if source not in SOURCES:
        raise UserError(f"unknown weights source {source!r}; choose one of {', '.join(SOURCES)}")
    name = getattr(model, "name", type(model).__name__)
    info = _REGISTRY.get(name)
    if info is not None and source not in info.peers:
        where = ", ".join(f"{s} {n!r}" for s, n in info.peers.items()) or "no peer library"
        raise UserError(f"{name} has no {source} counterpart (it corresponds to {where}); its weights "
                        f"cannot be loaded from {source}")
    peer = (read_state_dict(state_dict_or_path) if isinstance(state_dict_or_path, (str, os.PathLike))
            else dict(state_dict_or_path))
    label = f"{source} weights" + (f" for {info.peers[source]!r}" if info else "")
    aux = bool(getattr(model, "aux_logits", False))
    order = _peer_order(source, info.peers[source], aux) if info is not None else None
    if order is not None:
        peer = _in_module_order(peer, order, label)
    if info is not None and (info.family, source) in _ADAPTERS:
        peer = _ADAPTERS[info.family, source](model, peer)
    ours = model.state_dict()
    skip = "num_batches_tracked"  # a counter, not a weight: older checkpoints lack it
    our_keys = [k for k in ours if _kind(k) != skip]
    peer_items = [(k, v) for k, v in peer.items() if _kind(k) != skip]
    if len(our_keys) != len(peer_items):
        raise UserError(f"{label} hold {len(peer_items)} tensors but {name} has {len(our_keys)}; they are "
                        f"not the same network (check the model name and its aux_logits/width options)")
    for ours_key, (peer_key, tensor) in zip(our_keys, peer_items):
        if tuple(tensor.shape) != tuple(ours[ours_key].shape) or _kind(ours_key) != _kind(peer_key):
            raise UserError(f"{label} do not fit {name}: {source} {peer_key} {tuple(tensor.shape)} meets "
                            f"convzoo {ours_key} {tuple(ours[ours_key].shape)}; build {name} with the "
                            "num_classes and options the weights were trained with")
    mapped = {k: t for k, (_, t) in zip(our_keys, peer_items)}
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    assert not unexpected and all(_kind(k) == skip for k in missing), (missing, unexpected)
    return model
