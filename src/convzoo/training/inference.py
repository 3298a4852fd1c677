"""A trained network back from its checkpoint: `load_trained`, `evaluate_run` and `predict`."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import load_dataset
from ..data.pipeline import Augment, InputSpec, prepare, to_device
from ..errors import UserError
from ..registry import create_model
from .checkpoint import read_checkpoint
from .config import TrainConfig

__all__ = ["Trained", "checkpoint_path", "evaluate_run", "evaluation_data", "load_trained", "predict"]


@dataclass(frozen=True)
class Trained:
    model: nn.Module
    meta: dict[str, Any]
    spec: InputSpec
    classes: tuple[str, ...]
    path: Path


def checkpoint_path(source: str | os.PathLike[str]) -> Path:
    """A run directory means its best.safetensors (else last.safetensors); a file is itself."""
    p = Path(source)
    if p.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            if (p / name).is_file():
                return p / name
        raise UserError(f"{str(p)!r} holds no checkpoint (best.safetensors or last.safetensors); give a run "
                        "directory of `convzoo train` or a checkpoint file")
    return p


def load_trained(source: str | os.PathLike[str], device: str = "cpu") -> Trained:
    """The network of a run directory or checkpoint, with its weights (the averaged ones where the run kept an
    EMA: those are what its test figures measured), in eval mode."""
    path = checkpoint_path(source)
    from ..deploy.compress import SUFFIX, is_compressed, load_compressed

    if path.suffix == SUFFIX or is_compressed(path):  # a `convzoo compress` file: decoded into the dense network
        dense, meta = load_compressed(path)
        return Trained(dense.to(device).eval(), meta, InputSpec.from_json(meta["input"]), tuple(meta["classes"]), path)
    ckpt = read_checkpoint(path)
    meta = ckpt.meta
    model = create_model(meta["model"], **meta["options"])
    # a last.safetensors of an EMA run: the averaged weights are the ones that were evaluated
    averaged = {k.removeprefix("module."): v for k, v in ckpt.part("ema").items() if k.startswith("module.")}
    weights = averaged or ckpt.part("model")
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise UserError(f"{str(path)!r} does not fit {meta['model']} as this convzoo builds it; it was written by "
                        "another version, or edited") from None
    return Trained(model.to(device).eval(), meta, InputSpec.from_json(meta["input"]), tuple(meta["classes"]), path)


def evaluation_data(t: Trained, dataset: str | None, data_dir: str | None, verify: bool, split: str,
                    device: torch.device) -> tuple[Any, Any, InputSpec]:
    """The dataset a trained network is evaluated on (its own unless `dataset`), the chosen split (on `device`
    when it fits in memory) and the input spec: the run's, with the other dataset's statistics if one is given."""
    name = dataset or t.meta["dataset"]
    stored = t.meta.get("stored_size")
    data = load_dataset(name, data_dir=data_dir, verify=verify, image_size=tuple(stored) if stored else t.spec.size)
    if tuple(data.classes) != t.classes:
        raise UserError(f"{name} has {len(data.classes)} classes ({', '.join(data.classes[:3])}, …) but the network "
                        f"was trained on {len(t.classes)} ({', '.join(t.classes[:3])}, …); evaluate it on its own "
                        f"dataset ({t.meta['dataset']})")
    chosen = data.test if split == "test" else data.train
    if data.in_memory:
        chosen = to_device(chosen, device)
    spec = replace(t.spec, mean=data.mean, std=data.std) if dataset else t.spec
    return data, chosen, spec


def evaluate_run(source: str | os.PathLike[str], *, dataset: str | None = None, data_dir: str | None = None,
                 verify: bool = True, split: str = "test", device: str = "cpu", batch_size: int = 1000,
                 amp: str | None = None) -> Any:
    """Top-1, top-5, per-class accuracy and the confusion matrix of a trained network on a dataset split.

    `amp` defaults to the precision the run evaluated in, so that the figures are the run's own.
    """
    from .loop import evaluate
    from .setup import Setup

    t = load_trained(source, device)
    data, chosen, spec = evaluation_data(t, dataset, data_dir, verify, split, torch.device(device))
    name = dataset or t.meta["dataset"]
    amp = amp or t.meta.get("amp", "none")
    cfg = TrainConfig(model=t.meta["model"], dataset=name, eval_batch_size=batch_size, device=device, amp=amp)
    s = Setup(cfg=cfg, device=torch.device(device), data=data, train=None, val=None, test=chosen, spec=spec,
              augment=Augment(), model=t.model, aux_weight=0.0, init_skipped=[])  # evaluation only
    return t, evaluate(t.model, chosen, s)


def _read_image(path: str, channels: int, size: tuple[int, int]) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms import v2

    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise UserError(f"image {path!r} does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"cannot read image {path!r}: not an image file, or a damaged one ({err})") from None
    resize = v2.Compose([v2.PILToTensor(), v2.Resize(min(size), antialias=True), v2.CenterCrop(size)])
    return resize(im)


def predict(source: str | os.PathLike[str], images: list[str], *, top: int = 5,
            device: str = "cpu") -> list[dict[str, Any]]:
    """The `top` classes and their probabilities for each image file (any size and mode)."""
    t = load_trained(source, device)
    stored = tuple(t.meta["stored_size"]) if t.meta.get("stored_size") else t.spec.size
    chans = len(t.spec.mean)  # the stored images' channels; `prepare` converts them to the network's
    batch = torch.stack([_read_image(p, chans, stored) for p in images]).to(device)
    with torch.no_grad():
        probs = t.model(prepare(batch, t.spec)).float().softmax(1)
    k = min(top, probs.shape[1])
    values, index = probs.topk(k, dim=1)
    return [{"image": p, "top": [{"class": t.classes[i], "index": i, "probability": v}
                                 for v, i in zip(vs.tolist(), ix.tolist())]}
            for p, vs, ix in zip(images, values, index)]
