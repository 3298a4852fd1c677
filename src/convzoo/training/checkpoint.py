"""Checkpoints: one ``.safetensors`` file, tensors plus a JSON header; loading never executes code.

Tensors are stored under prefixes: ``model/`` (the network's state dict), ``ema/`` (the averaged
weights), ``optim/<param index>/<name>`` (the optimizer's per-parameter state) and ``rng/`` (the torch
generators' states). Everything else — the network's name and builder options, the classes, the input
specification, the epoch, the metrics so far, the resolved config, the optimizer's hyper-parameters,
the schedule's and the loss scaler's state — is JSON in the file's ``convzoo`` metadata entry. Files are
written to a temporary name and renamed (`fsio.atomic_path`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..fsio import atomic_path

__all__ = ["FORMAT", "Checkpoint", "optimizer_state", "read_checkpoint", "restore_optimizer", "write_checkpoint"]

FORMAT = "convzoo-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back: its JSON header and its tensors by prefix."""

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, Tensor]

    def part(self, prefix: str) -> dict[str, Tensor]:
        """The tensors stored under ``prefix/``, with the prefix removed."""
        p = prefix + "/"
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer's state dict split into tensors (for the file) and JSON (for the header)."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"optim/{index}/{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, ckpt: Checkpoint) -> None:
    info = ckpt.meta["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for key, value in ckpt.part("optim").items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in info["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def write_checkpoint(path: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any], *,
                     extra: dict[str, Tensor] | None = None) -> Path:
    """Write the network's weights, `extra` tensors (optimizer, EMA, RNG) and the JSON `meta`, atomically."""
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    tensors.update(extra or {})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {"convzoo": json.dumps({"format": FORMAT, **meta})}
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=header)
        except OSError:
            raise
        except Exception as err:  # safetensors reports a full disk as its own error type
            raise OSError(28, str(err)) from err
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a convzoo checkpoint; anything else (missing, truncated, another format) is one `UserError`."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{str(path)!r} is a directory; give a checkpoint file or a run directory")
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist; give a run directory or its last.safetensors")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except ImportError as err:
        raise UserError("reading checkpoints needs the safetensors package: pip install safetensors") from err
    except Exception as err:
        raise UserError(f"cannot read checkpoint {str(path)!r}: the file is truncated, corrupt or not a "
                        f"safetensors file ({type(err).__name__}); use the run's other checkpoint or train again"
                        ) from None
    try:
        meta = json.loads(header["convzoo"])
        assert meta.get("format") == FORMAT
    except (KeyError, ValueError, AssertionError):
        raise UserError(f"{str(path)!r} is a safetensors file but not a convzoo checkpoint; for a torchvision or "
                        "timm state dict use --init with --init-source") from None
    return Checkpoint(path, meta, tensors)
