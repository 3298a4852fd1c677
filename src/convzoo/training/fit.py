"""`train()` and `resume()`: a run from its config to its run directory, one finished epoch at a time.

After every epoch the run directory gets the epoch's metrics and a checkpoint (atomically), so a run
killed at any moment — SIGKILL included — resumes from its last finished epoch with `resume(run_dir)`.
The data order and augmentation of an epoch are functions of (seed, epoch), and the checkpoint holds
the weights, optimizer, schedule, EMA, loss scaler and the torch generators, so on the CPU with
``deterministic=True`` a resumed run ends with exactly the metrics of one that was never stopped.

Under torchrun the same functions run in every process (`distributed.py`): rank 0 alone writes the
run directory and prints; every rank trains its share of each global batch and evaluates its share.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..fsio import write_json
from . import distributed
from .budget import EVAL_COST, Calibration, plan_epochs, spent, stop_reason, time_to_target
from .checkpoint import optimizer_state, read_checkpoint, restore_optimizer, write_checkpoint
from .config import TrainConfig
from .distributed import World, all_gather_object, broadcast_buffers, broadcast_object
from .loop import Evaluation, Trainer, evaluate
from .progress import Progress, Silent
from .rundir import environment, make_run_dir, run_dir_path, write_metrics, write_summary
from .schedule import Schedule
from .setup import Setup, make_optimizer, resolve_config, setup

__all__ = ["Interrupted", "RunResult", "resume", "train"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: its message says what is saved and how to resume."""


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    history: list[dict[str, Any]]
    summary: dict[str, Any]


def train(model: str = TrainConfig.model, dataset: str = TrainConfig.dataset, **overrides: Any) -> RunResult:
    """Train `model` on `dataset`: recipe settings (``recipe=``, default "fast"), then `overrides`
    (any `TrainConfig` field). Returns the run directory, the per-epoch metrics and the summary."""
    cfg = resolve_config({"model": model, "dataset": dataset, **overrides})
    with _job(cfg) as job:
        world, device = job.world, job.device
        # rank 0's name for the run (a default one has the time in it), checked on every rank before any is written
        run_dir = broadcast_object(run_dir_path(cfg.out, cfg.model, cfg.dataset) if world.main else None, world)
        if not world.main:
            run_dir_path(str(run_dir), cfg.model, cfg.dataset)
        cfg.out, job.run_dir = str(run_dir), run_dir
        s = setup(cfg, world, device)  # data, network and input size checked before anything is written
        _barrier(world)
        if world.main:
            write_json(make_run_dir(run_dir) / "config.json", cfg.to_json())
        return _fit(s, run_dir, None)


def resume(run_dir: str | Path, *, epochs: int | None = None, time_budget: float | None = None,
           quiet: bool | None = None) -> RunResult:
    """Continue the run in `run_dir` from its last finished epoch (`epochs` or `time_budget` extends it)."""
    run_dir = Path(run_dir)
    try:
        cfg = TrainConfig.from_json(json.loads((run_dir / "config.json").read_text()))
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"{str(run_dir)!r} is not a run directory (it has no config.json); give the --out of a "
                        "`convzoo train` run") from None
    except (ValueError, TypeError) as err:
        raise UserError(f"{str(run_dir / 'config.json')!r} is damaged ({err}); start a new run") from None
    except OSError as err:
        raise UserError(f"cannot read {str(run_dir / 'config.json')!r}: {err.strerror}") from None
    if epochs is not None:
        cfg.epochs = epochs
    if time_budget is not None:
        cfg.time_budget = time_budget
    if quiet is not None:
        cfg.quiet = quiet
    cfg.validate()
    with _job(cfg, run_dir) as job:
        world, device = job.world, job.device
        if world.main:
            for stray in run_dir.glob(".*.tmp"):  # a write cut short by SIGKILL: never renamed, so never used
                stray.unlink()
        _barrier(world)
        last = run_dir / "last.safetensors"
        ckpt = read_checkpoint(last) if last.exists() else None
        if ckpt is not None and (run_dir / "summary.json").exists():
            _refuse_finished(run_dir, cfg, list(ckpt.meta["history"]))
        s = setup(cfg, world, device)
        _barrier(world)
        if world.main:
            write_json(run_dir / "config.json", cfg.to_json())
        return _fit(s, run_dir, ckpt)


class _job:
    """The process group around a run: joined on entry when torchrun started this process, left on exit. A
    failed collective, or the launcher's SIGTERM, becomes one `PeerFailed` line for this rank saying where the
    last finished epoch is."""

    def __init__(self, cfg: TrainConfig, run_dir: Path | None = None) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.world, self.device = World(), torch.device("cpu")

    def __enter__(self) -> _job:
        self.world, self.device = distributed.init(self.cfg.device, self.cfg.dist_timeout)
        return self

    def __exit__(self, kind: Any, err: BaseException | None, tb: Any) -> bool:
        w = self.world
        if not w.active:
            return False
        if isinstance(err, distributed.PeerFailed) or (isinstance(err, RuntimeError) and _collective_failed(err)):
            first = str(err) if isinstance(err, distributed.PeerFailed) else str(distributed.failure(w, err))
            where = (f"; the last finished epoch is saved in {self.run_dir}: continue with convzoo train --resume "
                     f"{self.run_dir} --nproc N" if self.run_dir is not None and
                     (self.run_dir / "last.safetensors").exists() else "")
            label = f"{w.label()}: "
            raise distributed.PeerFailed(f"{label}{first.removeprefix(label)}{where}") from None
        distributed.shutdown()  # the group is whole: leave it cleanly
        return False


def _refuse_finished(run_dir: Path, cfg: TrainConfig, history: list[dict[str, Any]]) -> None:
    """A finished run resumed with nothing that lets it go on: one line saying what would."""
    n = len(history)
    planned = plan_epochs(history, cfg.time_budget, cfg.epochs) if cfg.time_budget is not None else cfg.epochs
    reason = stop_reason(history, cfg, planned)
    if reason == "epochs":
        raise UserError(f"{run_dir} already finished its {n} epochs; to train longer, resume with --epochs N (more "
                        f"than {n})")
    if reason == "time budget":
        raise UserError(f"{run_dir} already used its time budget ({spent(history):.1f} s of {cfg.time_budget:g} s "
                        f"over {n} epochs); to train longer, resume with a larger --time-budget")
    if reason == "target accuracy":
        raise UserError(f"{run_dir} already reached its target accuracy {cfg.target_acc:g} in epoch {n}; to train "
                        f"further, start a new run from its weights with --init {run_dir / 'last.safetensors'}")


def _agree(value: Any, world: World) -> Any:
    """Rank 0's decision (from its clock) on every process."""
    return broadcast_object(value if world.main else None, world)


def _collective_failed(err: BaseException) -> bool:
    dist_error = getattr(torch.distributed, "DistError", ())
    text = str(err).lower()
    return isinstance(err, dist_error) or any(w in text for w in ("gloo", "nccl", "connection", "timed out",
                                                                  "timeout", "socket", "peer"))


def _barrier(world: World) -> None:
    if world.active:
        torch.distributed.barrier()


def _meta(s: Any, epoch: int, history: list[dict[str, Any]]) -> dict[str, Any]:
    m = s.model
    return {"model": s.cfg.model, "options": {**s.cfg.options, "num_classes": m.num_classes, "in_chans": m.in_chans},
            "classes": list(s.data.classes), "dataset": s.cfg.dataset, "input": s.spec.to_json(),
            "stored_size": list(s.data.size) if s.data.size else None, "epoch": epoch, "amp": s.cfg.amp,
            "metrics": history[-1] if history else None}


def _rng_states(s: Setup) -> dict[str, torch.Tensor]:
    """Every rank's generator states, gathered on rank 0: rng/cpu (rank 0, as one process saves it), rng/cpu.R."""
    mine = {"cpu": torch.get_rng_state()}
    if s.device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(s.device)
    out = {}
    for rank, states in enumerate(all_gather_object(mine, s.world)):
        out.update({f"rng/{k}{'' if rank == 0 else f'.{rank}'}": v for k, v in states.items()})
    return out


def _save(t: Trainer, run_dir: Path, epoch: int, history: list[dict[str, Any]], best: bool) -> None:
    s = t.s
    rng = _rng_states(s)  # a collective: every rank takes part, rank 0 writes
    if not s.world.main:
        return
    meta = _meta(s, epoch, history)
    tensors, opt_meta = optimizer_state(t.opt)
    tensors.update(rng)
    if t.ema is not None:
        tensors.update({f"ema/{k}": v for k, v in t.ema.state_dict().items()})
    full = {**meta, "history": history, "config": s.cfg.to_json(), "optimizer": opt_meta, "world_size": s.world.size,
            "schedule": t.schedule.state(), "step": t.step, "scaler": t.scaler.state_dict() if t.scaler else None}
    # best first, last after it: last.safetensors is what makes an epoch count, so a run killed between the two
    # repeats the epoch on resume and writes the same best again
    if best:  # weights only: the averaged ones when EMA is on, as evaluated
        write_checkpoint(run_dir / "best.safetensors", t.eval_model, meta)
    write_checkpoint(run_dir / "last.safetensors", s.model, full, extra=tensors)


def _restore(t: Trainer, ckpt: Any) -> tuple[int, list[dict[str, Any]]]:
    s = t.s
    s.model.load_state_dict(ckpt.part("model"))
    restore_optimizer(t.opt, ckpt)
    t.schedule.load(ckpt.meta["schedule"])
    t.step = ckpt.meta["step"]
    if t.ema is not None:
        t.ema.load_state_dict(ckpt.part("ema"))
    if t.scaler is not None and ckpt.meta.get("scaler"):
        t.scaler.load_state_dict(ckpt.meta["scaler"])
    suffix = "" if s.world.rank == 0 else f".{s.world.rank}"
    if f"rng/cpu{suffix}" in ckpt.tensors:  # a rank the saving job did not have keeps its fresh seed
        torch.set_rng_state(ckpt.tensors[f"rng/cpu{suffix}"])
    if s.device.type == "cuda" and f"rng/cuda{suffix}" in ckpt.tensors:
        torch.cuda.set_rng_state(ckpt.tensors[f"rng/cuda{suffix}"], s.device)
    return ckpt.meta["epoch"], list(ckpt.meta["history"])


def _record(epoch: int, lr: float, st: Any, val: Evaluation | None, test: Evaluation,
            ranks: list[Any] | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"epoch": epoch, "train_loss": st.loss, "train_top1": st.top1}
    if val is not None:
        r.update(val_loss=val.loss, val_top1=val.top1, val_top5=val.top5)
    r.update(test_loss=test.loss, test_top1=test.top1, test_top5=test.top5, lr=lr, epoch_s=st.seconds,
             data_s=st.data_s, compute_s=st.compute_s, eval_s=test.seconds + (val.seconds if val else 0.0),
             img_per_s_compute=st.images / max(st.compute_s, 1e-9), img_per_s_wall=st.images / max(st.seconds, 1e-9))
    if ranks is not None:  # several processes: the figures above are the job's (rank 0's clock), these each rank's
        r["ranks"] = [{"rank": i, "images": n, "data_s": d, "compute_s": c, "epoch_s": e,
                       "img_per_s_wall": n / max(e, 1e-9)} for i, (n, d, c, e) in enumerate(ranks)]
    return r


def _plan(t: Trainer, history: list[dict[str, Any]]) -> None:
    """--time-budget: the epochs the run is planned for, from the time of those done (budget.py); before the
    first has finished, from a calibration of a few of its steps."""
    s = t.s
    cfg, world = s.cfg, s.world
    if cfg.time_budget is None:
        return
    if history:
        t.schedule.planned = _agree(plan_epochs(history, cfg.time_budget, cfg.epochs), world)
    else:
        t.schedule.planned = cfg.epochs
        evaluated = len(s.test) + (len(s.val) if s.val is not None else 0)
        steps = t.schedule.steps_per_epoch

        def calibrated(step_s: float) -> None:
            per_epoch = step_s * steps * (1 + EVAL_COST * evaluated / max(len(s.train), 1))
            t.schedule.planned = _agree(plan_epochs([], cfg.time_budget, cfg.epochs, per_epoch=per_epoch), world)
            t.calibration = None

        t.calibration = Calibration(s.device, steps, calibrated)


def _fit(s: Setup, run_dir: Path, ckpt: Any) -> RunResult:
    cfg, world = s.cfg, s.world
    env = environment(s.device, cfg.seed)
    if world.active:
        env["distributed"] = distributed.layout(world)
    if ckpt is None and world.main:
        write_json(run_dir / "env.json", env)
    steps = max(1, len(s.train) // cfg.batch_size if len(s.train) > cfg.batch_size else 1)
    t = Trainer(s, make_optimizer(cfg, s.model), Schedule(cfg, steps))
    start, history = _restore(t, ckpt) if ckpt is not None else (0, [])
    if world.main:
        write_metrics(run_dir, history)
    progress = Progress(cfg, s, run_dir, t.schedule, start) if world.main else Silent()
    _plan(t, history)
    epoch, test = start, None
    reason = stop_reason(history, cfg, t.schedule.epochs) if history else None
    try:
        while reason is None:
            stats = t.train_one_epoch(epoch, progress.bar(epoch))
            if world.active:  # evaluate, and save, the BN statistics of rank 0 on every rank
                broadcast_buffers(s.model, world)
                if t.ema is not None:
                    broadcast_buffers(t.ema, world)
            val = evaluate(t.eval_model, s.val, s) if s.val is not None else None
            test = evaluate(t.eval_model, s.test, s)
            ranks = all_gather_object((*stats.local, stats.seconds), world) if world.active else None
            history.append(_record(epoch + 1, t.schedule.lr(t.step - 1), stats, val, test, ranks))
            t.schedule.end_epoch(1 - val.top1 if val is not None else stats.loss)
            _plan(t, history)
            reason = stop_reason(history, cfg, t.schedule.epochs)
            improved = val is None or val.top1 >= max(r["val_top1"] for r in history)
            _save(t, run_dir, epoch + 1, history, improved)
            if world.main:
                write_metrics(run_dir, history)
            progress.epoch_done(history[-1], test)
            epoch += 1
    except KeyboardInterrupt:
        done = len(history)
        resume_cmd = f"convzoo train --resume {run_dir}" + (f" --nproc {world.size}" if world.active else "")
        who = f"{world.label()}: " if world.active else ""
        raise Interrupted(f"{who}interrupted in epoch {epoch + 1}; {done} finished epoch{'s' * (done != 1)} "
                          f"{'are' if done != 1 else 'is'} saved in {run_dir}; continue with: {resume_cmd}") from None
    final = test if test is not None else evaluate(t.eval_model, s.test, s)
    clock = {"stopped_by": reason or "epochs", "wall_s": spent(history), "time_budget_s": cfg.time_budget,
             "target_acc": cfg.target_acc,
             "time_to_target": time_to_target(history, cfg.target_acc) if cfg.target_acc is not None else None}
    summary = progress.finish(history, final, clock) if world.main else {}
    if world.main:
        write_summary(run_dir, summary)
    return RunResult(run_dir, history, summary)
