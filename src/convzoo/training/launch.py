"""`convzoo train --nproc N`: torchrun on this machine, started from the command itself.

It is torch's own launcher (`torch.distributed.run`, a standalone c10d rendezvous on a free local port)
running `python -m convzoo train …` N times, each with RANK, LOCAL_RANK and WORLD_SIZE set; the
processes then join through `distributed.init`. Each process prints its own errors (rank 0 for the job);
this launcher adds one line only for a process that could not say why it ended (killed by a signal).
"""
from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from ..errors import UserError

__all__ = ["launch_local"]


def launch_local(nproc: int, argv: list[str]) -> None:
    """Run `convzoo <argv>` (a train command line without --nproc) on `nproc` local processes."""
    if nproc < 1:
        raise UserError(f"--nproc must be 1 or more, got {nproc}")
    import torch
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if _wants_cuda(argv):
        have = torch.cuda.device_count()
        if nproc > have:
            raise UserError(f"--nproc {nproc}: this machine has {have} GPU{'s' * (have != 1)}; start one process "
                            "per GPU at most")
    elif "OMP_NUM_THREADS" not in os.environ:  # torchrun would give each process one thread
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    args = get_args_parser().parse_args(["--standalone", "--nproc_per_node", str(nproc), "--max_restarts", "0",
                                         "-m", "convzoo", *argv])
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its report repeats our lines
    try:
        run(args)
    except ChildFailedError as err:
        codes = {rank: f.exitcode for rank, f in err.failures.items()}
        # a process killed by a signal could not say so itself (SIGTERM is torchrun stopping the others)
        killed = {rank: -code for rank, code in codes.items() if code < 0 and -code != signal.SIGTERM}
        if killed:
            names = ", ".join(f"rank {r} by {_signal_name(s)}" for r, s in sorted(killed.items()))
            run_dir = _flag(argv, "--resume") or _flag(argv, "--out") or "RUN_DIR"
            raise UserError(f"{len(killed)} of {nproc} processes {'was' if len(killed) == 1 else 'were'} killed "
                            f"({names}); the last finished epoch is kept: continue with convzoo train --resume "
                            f"{run_dir} --nproc {nproc}") from None
        if 130 in codes.values():
            raise SystemExit(130) from None
        raise SystemExit(2 if 2 in codes.values() else 1) from None


def _flag(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _wants_cuda(argv: list[str]) -> bool:
    """Whether the processes will train on GPUs: --device, else a resumed run's own, else auto."""
    device = _flag(argv, "--device")
    run_dir = _flag(argv, "--resume")
    if device is None and run_dir is not None:
        import json

        try:
            device = json.loads((Path(run_dir) / "config.json").read_text()).get("device")
        except (OSError, ValueError):
            device = None  # the processes say what is wrong with it
    if device in ("cpu", "cuda"):
        return device == "cuda"
    import torch

    return torch.cuda.is_available()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
