"""Training against the clock: ``--time-budget`` plans the epochs that fit, ``--target-acc`` stops at an accuracy.

A time budget counts what a run spends training and evaluating (the summary's ``train_s + eval_s``; building the
network, loading the data and writing checkpoints are outside it). `--epochs` stays the most a run may do; the
number of epochs it is *planned* for — what the lr schedule decays over, so a one-cycle or cosine run ends its
decay when the time ends rather than being cut off at a high rate — is set three times over:

1. before any step, to `--epochs`;
2. early in the first epoch, from the time of a few steps after the first ones (which pay for allocation,
   autotuning or compilation), with evaluation guessed at a third of the training cost per image;
3. after every epoch, from the time spent so far and the pace of the latest epochs (the mean of the last three,
   leaving out the first once there are others): the epochs still to come are as many as fit in what is left.

The schedule is a function of the step and the planned total, so each change of plan moves the lr smoothly
(the first one happens a few dozen steps in, when little of any schedule has passed). The plan is kept in the
checkpoint and a resumed run continues from it, counting the time of the epochs already done; the number of
epochs depends on how fast the machine runs, so two budget runs are repeatable only in what they plan.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["Calibration", "plan_epochs", "spent", "stop_reason", "time_to_target"]

EVAL_COST = 1 / 3  # an evaluation image against a training image: forward only


def spent(history: list[dict[str, Any]]) -> float:
    """Seconds of the budget used by the finished epochs: training and evaluation."""
    return sum(r["epoch_s"] + r["eval_s"] for r in history)


def plan_epochs(history: list[dict[str, Any]], budget: float, cap: int, *, per_epoch: float | None = None) -> int:
    """How many epochs the whole run is planned for: those done, plus as many more as fit in the rest of `budget`
    at the pace of the latest epochs (the mean of the last three but the first; or `per_epoch` seconds, an
    estimate, before the first has finished); at least one, at most `cap`."""
    done = len(history)
    if per_epoch is None:
        if not history:
            return cap
        recent = history[1:][-3:] or history  # the first epoch pays for warm-up: left out once there are others
        per_epoch = spent(recent) / len(recent)
    more = int((budget - spent(history)) // per_epoch) if per_epoch > 0 else cap
    return max(1, done, min(cap, done + max(0, more)))


def target_figure(record: dict[str, Any]) -> tuple[str, float]:
    """The accuracy a target is checked against: validation top-1 where the run holds data out, else test."""
    return ("val_top1", record["val_top1"]) if "val_top1" in record else ("test_top1", record["test_top1"])


def time_to_target(history: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The first epoch whose accuracy reached `target`, with the training and training + evaluation seconds up to
    the end of it; None when no epoch did."""
    train_s = wall_s = 0.0
    for r in history:
        train_s, wall_s = train_s + r["epoch_s"], wall_s + r["epoch_s"] + r["eval_s"]
        on, value = target_figure(r)
        if value >= target:
            return {"target": target, "on": on, "epoch": r["epoch"], "train_s": train_s, "wall_s": wall_s}
    return None


def stop_reason(history: list[dict[str, Any]], cfg: Any, planned: int) -> str | None:
    """Why the run stops after its latest epoch, or None while it goes on."""
    if cfg.target_acc is not None and history and target_figure(history[-1])[1] >= cfg.target_acc:
        return "target accuracy"
    if len(history) >= cfg.epochs:
        return "epochs"
    if cfg.time_budget is not None and len(history) >= planned:
        return "time budget"
    return None


class Calibration:
    """Times training steps `first` to `first + count` of a run's first epoch and hands the seconds per step to
    `done` once (synchronising the device at the two ends only)."""

    def __init__(self, device: torch.device, steps_per_epoch: int, done: Callable[[float], None]) -> None:
        self.device, self.done = device, done
        # skip the first steps (allocation, autotuning, compilation); time up to 10 % of the epoch, at most 50
        self.first = min(3, max(0, steps_per_epoch - 2))
        self.count = max(1, min(50, (steps_per_epoch - self.first) // 10))
        self.t0: float | None = None

    def __call__(self, steps: int) -> None:
        """Called before the first step with 0, then after each step with the steps done in this epoch."""
        if steps == self.first:
            self.t0 = self._now()
        elif self.t0 is not None and steps == self.first + self.count:
            seconds, self.t0 = (self._now() - self.t0) / self.count, None
            self.first = -1  # once
            self.done(seconds)

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()
