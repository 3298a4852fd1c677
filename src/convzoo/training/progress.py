"""What a run shows while it trains and when it ends: a tqdm bar per epoch with live loss, accuracy and
images/s, one line per finished epoch, TensorBoard scalars when tensorboard is installed, and the
one-screen summary with the plots at the end. ``--quiet`` (for logs) prints the epoch lines and one
closing line, nothing else."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .plots import have_matplotlib, plot_confusion, plot_curves

__all__ = ["Progress", "Silent", "epoch_line"]


def epoch_line(r: dict[str, Any], epochs: int) -> str:
    val = f" val {100 * r['val_top1']:.2f}%" if "val_top1" in r else ""
    return (f"epoch {r['epoch']:>3}/{epochs}  loss {r['train_loss']:.4f}  train {100 * r['train_top1']:.2f}%{val}  "
            f"test {100 * r['test_top1']:.2f}% (top-5 {100 * r['test_top5']:.2f}%)  lr {r['lr']:.3g}  "
            f"{r['epoch_s']:.1f} s  {r['img_per_s_wall']:,.0f} img/s")


class Silent:
    """The progress of a process other than rank 0: it shows nothing (rank 0 speaks for the job)."""

    def bar(self, epoch: int) -> None:
        return None

    def epoch_done(self, record: dict[str, Any], test: Any) -> None:
        pass


class Progress:
    def __init__(self, cfg: TrainConfig, s: Any, run_dir: Path, schedule: Any, start_epoch: int) -> None:
        self.cfg, self.s, self.run_dir, self.schedule = cfg, s, run_dir, schedule
        self.steps = schedule.steps_per_epoch
        self._bar: Any = None
        self.tb = _tensorboard(run_dir, start_epoch)
        if not cfg.quiet:
            frozen = sum(p.numel() for p in s.model.parameters() if not p.requires_grad)
            head = (f"training {cfg.model} on {cfg.dataset} ({len(s.train):,} images"
                    f"{f', {len(s.val):,} held out for validation' if s.val is not None else ''}; "
                    f"test {len(s.test):,}) at {s.spec.channels}×{s.spec.size[0]}×{s.spec.size[1]}, recipe "
                    f"{cfg.recipe}: {cfg.optimizer} lr {cfg.lr:g}, {cfg.schedule}, batch {cfg.batch_size}, "
                    f"{_length_text(cfg)}, {cfg.device}{', ' + cfg.amp if cfg.amp != 'none' else ''}"
                    f"{_world_text(s.world, cfg)}"
                    f"{', frozen ' + format(frozen, ',') + ' parameters' if frozen else ''}")
            print(head, flush=True)
            if start_epoch:
                print(f"resuming {run_dir} after epoch {start_epoch}", flush=True)

    def bar(self, epoch: int) -> Callable[[int, float, float, float], None] | None:
        if self.cfg.quiet:
            return None
        from tqdm import tqdm

        self._bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.schedule.epochs}", leave=False,
                         file=sys.stderr, dynamic_ncols=True, unit="step", disable=None)

        def update(step: int, loss: float, top1: float, img_s: float) -> None:
            if self._bar.disable:  # not a terminal: the epoch lines say it all
                return
            self._bar.n = step
            self._bar.set_postfix_str(f"loss {loss:.4f} acc {100 * top1:.2f}% {img_s:,.0f} img/s", refresh=True)

        return update

    def epoch_done(self, record: dict[str, Any], test: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        print(epoch_line(record, self.schedule.epochs), flush=True)  # as planned (fewer under --time-budget)
        if "ranks" in record and not self.cfg.quiet:
            print("  per rank: " + "; ".join(f"{r['rank']}: {r['images']:,} img, data {r['data_s']:.1f} s, compute "
                                             f"{r['compute_s']:.1f} s, {r['img_per_s_wall']:,.0f} img/s"
                                             for r in record["ranks"]), flush=True)
        if self.tb is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):  # not the per-rank list
                    self.tb.add_scalar(key, value, record["epoch"])
            self.tb.flush()

    def finish(self, history: list[dict[str, Any]], test: Any, clock: dict[str, Any]) -> dict[str, Any]:
        """Plots, the summary record (with `clock`: why the run stopped, its time, its time to the target), and
        the summary screen."""
        d, cfg = self.run_dir, self.cfg
        plots = []
        if history and have_matplotlib():
            plots.append(plot_curves(history, d / "curves.png", f"{cfg.model} on {cfg.dataset}").name)
            plots.append(plot_confusion(test.confusion, self.s.data.classes, d / "confusion.png",
                                        f"{cfg.model} on {cfg.dataset} test: {100 * test.top1:.2f} %").name)
        last = history[-1] if history else {}
        chosen = max(history, key=lambda r: r["val_top1"]) if history and "val_top1" in last else last
        train_s = sum(r["epoch_s"] for r in history)
        images = sum(r["img_per_s_wall"] * r["epoch_s"] for r in history)
        compute_s = sum(r["compute_s"] for r in history)
        summary = {
            "model": cfg.model, "dataset": cfg.dataset, "epochs": len(history), "run_dir": str(d),
            "last_test_top1": last.get("test_top1"), "last_test_top5": last.get("test_top5"),
            "best_epoch": chosen.get("epoch"), "best_test_top1": chosen.get("test_top1"),
            "best_chosen_on": "validation" if "val_top1" in last else "last epoch",
            "train_s": train_s, "data_s": sum(r["data_s"] for r in history), "compute_s": compute_s,
            "eval_s": sum(r["eval_s"] for r in history), "img_per_s_wall": images / max(train_s, 1e-9),
            "img_per_s_compute": images / max(compute_s, 1e-9), "per_class_test_top1": test.per_class,
            "plots": plots, **clock,
        }
        if self.tb is not None:
            self.tb.close()
        if cfg.quiet:
            n = len(history)
            print(f"done: test top-1 {100 * summary['last_test_top1']:.2f} % after {n} epoch{'s' * (n != 1)} in "
                  f"{train_s:.1f} s; run directory {d}", flush=True)
        else:
            print(summary_text(summary, self.s.data.classes), flush=True)
        return summary


def _length_text(cfg: TrainConfig) -> str:
    text = f"{cfg.epochs} epochs" if cfg.time_budget is None else \
        f"a time budget of {cfg.time_budget:g} s (at most {cfg.epochs} epochs)"
    return text + (f", until top-1 {100 * cfg.target_acc:g} %" if cfg.target_acc is not None else "")


def _clock_text(m: dict[str, Any]) -> list[str]:
    """The summary's lines on a time budget and a target accuracy, when the run had them."""
    lines = []
    if m.get("time_budget_s") is not None:
        lines.append(f"  time budget: {m['wall_s']:.1f} s of {m['time_budget_s']:g} s used (training + evaluation); "
                     f"stopped by {m['stopped_by']}")
    hit = m.get("time_to_target")
    if hit:
        lines.append(f"  target {100 * hit['target']:g} % ({hit['on'].removesuffix('_top1')}) reached in epoch "
                     f"{hit['epoch']}: {hit['train_s']:.1f} s training, {hit['wall_s']:.1f} s with evaluation")
    elif m.get("target_acc") is not None:
        lines.append(f"  target {100 * m['target_acc']:g} % not reached")
    return lines


def _world_text(world: Any, cfg: TrainConfig) -> str:
    if world is None or not world.active:
        return ""
    sync = ", SyncBatchNorm" if cfg.sync_bn else ""
    return (f"; {world.size} processes ({world.backend}{sync}), global batch {cfg.batch_size} = "
            f"{cfg.batch_size / world.size:g} per process")


def summary_text(m: dict[str, Any], classes: Any) -> str:
    worst = sorted(zip(m["per_class_test_top1"], classes))[:3]
    lines = [
        f"done: {m['model']} on {m['dataset']}, {m['epochs']} epoch{'s' * (m['epochs'] != 1)}",
        f"  test top-1 {100 * m['last_test_top1']:.2f} % (top-5 {100 * m['last_test_top5']:.2f} %) after the last "
        f"epoch; best.safetensors: epoch {m['best_epoch']} ({m['best_chosen_on']}), test top-1 "
        f"{100 * m['best_test_top1']:.2f} %",
        "  hardest classes: " + ", ".join(f"{c} {100 * a:.1f} %" for a, c in worst),
        f"  time: {m['train_s']:.1f} s training (data {m['data_s']:.1f} s, compute {m['compute_s']:.1f} s) + "
        f"{m['eval_s']:.1f} s evaluation",
        *_clock_text(m),
        f"  throughput: {m['img_per_s_wall']:,.0f} img/s wall-clock, {m['img_per_s_compute']:,.0f} img/s compute",
        f"  run directory: {m['run_dir']}/ (config.json, env.json, metrics.jsonl, last/best.safetensors"
        + (", " + ", ".join(m["plots"]) if m["plots"] else "; no plots: pip install matplotlib") + ")",
    ]
    return "\n".join(lines)


def _tensorboard(run_dir: Path, start_epoch: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tb"), purge_step=start_epoch + 1 if start_epoch else None)
