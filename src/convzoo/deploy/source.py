"""What `convzoo export` and `convzoo compress` start from: a network with its weights, classes and input
specification, read from a run directory, a checkpoint, a weights file (convzoo's own or a peer's, with the
network named), weights an earlier export wrote, or a registered name (its initial weights).

A network that was not trained here declares ImageNet's mean and std (what torchvision's and timm's weights
expect; their grey equivalent for one channel) and the class names "0" … "N-1".
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.pipeline import InputSpec
from ..errors import UserError
from ..registry import create_model, model_info

__all__ = ["FORMAT", "Exportable", "default_stats", "from_export_weights", "json_dict", "load_exportable",
           "safetensors_header"]

FORMAT = "convzoo-export/1"  # the `format` entry of an exported file's metadata
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the statistics torchvision's and timm's ImageNet weights expect
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as the data pipeline turns RGB into grey


@dataclass(frozen=True)
class Exportable:
    """A network ready to export, and what its file must say about it."""

    model: nn.Module  # in eval mode, on the CPU
    name: str  # the registered name
    options: dict[str, Any]  # builder options: create_model(name, **options) rebuilds it
    classes: tuple[str, ...]
    spec: InputSpec  # the input the network takes: size, channels, normalisation
    stored_size: tuple[int, int] | None  # the image size it was trained from (None: spec.size)
    origin: str  # where the weights came from, in words


def default_stats(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std declared for a network that was not trained here: ImageNet's for 3 channels (what the papers
    trained on, and what torchvision's and timm's weights expect), their grey equivalent for 1, else 0 and 1."""
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if channels == 1:
        return (sum(w * m for w, m in zip(_LUMA, IMAGENET_MEAN)),), (sum(w * s for w, s in zip(_LUMA, IMAGENET_STD)),)
    return (0.0,) * channels, (1.0,) * channels


def untrained_spec(model: nn.Module, name: str) -> InputSpec:
    chans = int(getattr(model, "in_chans", model_info(name).input_size[0]))
    mean, std = default_stats(chans)
    return InputSpec(tuple(model_info(name).input_size[1:]), chans, mean, std)  # type: ignore[arg-type]


def numbered(model: nn.Module) -> tuple[str, ...]:
    return tuple(str(i) for i in range(int(getattr(model, "num_classes", 0))))


def safetensors_header(path: Path) -> dict[str, str] | None:
    """The header metadata of a safetensors file ({} when it has none); None when it is not one."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except Exception:  # truncated, another format: the caller's reader says which
        return None


def load_weights(model: nn.Module, path: Path, name: str, options: dict[str, Any]) -> None:
    """A convzoo state dict (``torch.save(model.state_dict())`` or safetensors) into `model`, all or nothing."""
    from ..peers import read_state_dict

    state = read_state_dict(path)
    ours = model.state_dict()
    built = f"{name} built with {', '.join(f'{k}={v!r}' for k, v in options.items())}" if options else name
    if state and all(k.startswith("model/") for k in state):
        raise UserError(f"{str(path)!r} is a convzoo checkpoint; export it without --model (its network and "
                        "classes come with it)")
    unexpected = [k for k in state if k not in ours]
    missing = [k for k in ours if k not in state and not k.endswith("num_batches_tracked")]
    shapes = [k for k in ours if k in state and tuple(state[k].shape) != tuple(ours[k].shape)]
    if unexpected or missing or shapes:
        if shapes:
            k = shapes[0]
            why = f"{k} is {tuple(state[k].shape)} in the file but {tuple(ours[k].shape)} in {built}"
        else:
            why = (f"{len(unexpected)} tensors such as {unexpected[0]!r} are not {built}'s" if unexpected
                   else f"it lacks {len(missing)} tensors of {built} such as {missing[0]!r}")
        raise UserError(f"the weights in {str(path)!r} do not fit: {why}; build it as they were saved (--num-classes, "
                        "--in-chans, --set), or name a peer's weights with --source torchvision|timm")
    model.load_state_dict(state, strict=False)


def load_exportable(source: str | os.PathLike[str], *, model: str | None = None, weights_source: str | None = None,
                    options: dict[str, Any] | None = None, seed: int = 0) -> Exportable:
    """The network a SOURCE names, as `convzoo export` reads it.

    - a run directory or a convzoo checkpoint: its network, weights (the averaged ones of an EMA run), classes
      and input specification;
    - a weights file with ``model=NAME``: NAME built with `options`, then the file's state dict loaded: convzoo's
      own (``torch.save(model.state_dict())`` or safetensors), or with ``weights_source="torchvision"|"timm"``
      a peer's, through `load_peer_weights`;
    - a ``.safetensors`` file written by ``export(..., "safetensors")``: the network its metadata names;
    - a registered name: its initial weights, drawn with `seed`.
    """
    options = dict(options or {})
    text = os.fspath(source)
    path = Path(text)
    if weights_source is not None and model is None:
        raise UserError(f"--source {weights_source} says whose weights a file holds; add --model NAME, the convzoo "
                        "network they are for")
    if model is not None:
        from ..peers import load_peer_weights

        if not path.is_file():
            raise UserError(f"weights file {text!r} does not exist; with --model, SOURCE is a .pth, .pt or "
                            ".safetensors file")
        net = create_model(model, **options).eval()
        if weights_source is None:
            load_weights(net, path, model, options)
        else:
            load_peer_weights(net, path, source=weights_source)
        who = f"{weights_source} weights" if weights_source else "weights"
        return Exportable(net, model, options, numbered(net), untrained_spec(net, model), None,
                          f"{who} {path.name}")
    if path.exists():
        header = safetensors_header(path) if path.is_file() else None
        meta = json_dict(header.get("convzoo")) if header else None
        if header is not None and (meta or {}).get("format") == FORMAT:
            return from_export_weights(path, meta, options)  # type: ignore[arg-type]
        if path.is_file() and (path.suffix in (".pth", ".pt", ".bin") or (header is not None and meta is None)):
            raise UserError(f"{text!r} is a state dict without convzoo's metadata; say which network it is for "
                            "with --model NAME (and --source torchvision|timm for a peer's weights)")
        if options:
            raise UserError(f"{text!r} is a run or checkpoint: it carries its network's builder options; leave out "
                            "--num-classes, --in-chans and --set")
        from ..training.inference import load_trained

        t = load_trained(path)
        stored = t.meta.get("stored_size")
        return Exportable(t.model.cpu().eval(), t.meta["model"], dict(t.meta["options"]), t.classes, t.spec,
                          tuple(stored) if stored else None, f"trained, {t.path}")
    if os.sep in text or (os.altsep and os.altsep in text) or path.suffix:
        raise UserError(f"{text!r} does not exist; SOURCE is a run directory, a checkpoint, a weights file (with "
                        "--model NAME) or a registered name")
    model_info(text)  # an unknown name: the registry's error, with its suggestions
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = create_model(text, **options).eval()
    return Exportable(net, text, options, numbered(net), untrained_spec(net, text), None,
                      f"initial weights, seed {seed}")


def json_dict(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def from_export_weights(path: Path, meta: dict[str, Any], options: dict[str, Any]) -> Exportable:
    from safetensors.torch import load_file

    if options:
        raise UserError(f"{str(path)!r} carries its network's builder options; leave out --num-classes, --in-chans "
                        "and --set")
    net = create_model(meta["model"], **meta["options"]).eval()
    try:
        net.load_state_dict(load_file(str(path)))
    except RuntimeError:
        raise UserError(f"{str(path)!r} does not fit {meta['model']} as this convzoo builds it; it was written by "
                        "another version, or edited") from None
    stored = meta.get("stored_size")
    return Exportable(net, meta["model"], dict(meta["options"]), tuple(meta["classes"]),
                      InputSpec.from_json(meta["input"]), tuple(stored) if stored else None,
                      f"exported weights {path.name}")
