"""The run directory: what a run writes, every file atomically.

    config.json      the resolved TrainConfig: all a resumed or repeated run needs
    env.json         versions, device, threads, git revision, seed, start time
    metrics.jsonl    one JSON object per finished epoch (rewritten whole after each epoch)
    last.safetensors the last finished epoch: weights, optimizer, schedule, EMA, RNG (resumable)
    best.safetensors the epoch chosen on the validation split (the last epoch without one): weights only
    curves.png       loss and accuracy per epoch;  confusion.png  the test confusion matrix
    summary.json     the end-of-run figures the summary prints
    tb/              TensorBoard event files, when tensorboard is installed
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..fsio import write_json, write_text

__all__ = ["environment", "make_run_dir", "read_metrics", "run_dir_path", "write_metrics", "write_summary"]


def run_dir_path(out: str | None, model: str, dataset: str) -> Path:
    """`out`, or runs/<model>-<dataset>-<yyyymmdd-hhmmss>; an existing run there is not overwritten.
    Nothing is created yet: a run whose data or network fails leaves no directory behind."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{model}-{dataset}-{stamp}"
    else:
        path = Path(out)
    if (path / "config.json").exists():
        raise UserError(f"{str(path)!r} already holds a run; continue it with `convzoo train --resume {path}` "
                        "or choose another --out")
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {str(path)!r} is a file; give a directory")
    return path


def make_run_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the run directory {str(path)!r}: {err.strerror}") from None
    return path


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device, seed: int) -> dict[str, Any]:
    import torchvision

    from .. import __version__

    env: dict[str, Any] = {
        "convzoo": __version__, "git_revision": _git_revision(), "python": sys.version.split()[0],
        "torch": torch.__version__, "torchvision": torchvision.__version__, "platform": platform.platform(),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "device": str(device), "seed": seed, "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    return env


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    write_json(run_dir / "summary.json", summary)
