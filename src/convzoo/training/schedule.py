"""Learning-rate schedules as functions of the step, so that a resumed run continues exactly.

Every schedule but ``plateau`` is a pure function of (step, steps per epoch, config); ``plateau`` adds
two numbers of state (the best validation figure and the epochs since it), kept in the checkpoint.
Optional linear warm-up (``--warmup E`` epochs, from lr/10) multiplies the first E epochs' factor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .config import TrainConfig

__all__ = ["Schedule"]


@dataclass
class Schedule:
    """lr(step) = cfg.lr × factor(step); `set_lr` writes it into the optimizer before each step."""

    cfg: TrainConfig
    steps_per_epoch: int
    plateau_factor: float = 1.0
    best: float | None = None
    bad_epochs: int = 0
    planned: int | None = None  # the epochs a --time-budget run is planned for (budget.py); None: --epochs

    @property
    def epochs(self) -> int:
        return self.planned if self.planned is not None else self.cfg.epochs

    @property
    def total(self) -> int:
        return self.epochs * self.steps_per_epoch

    def factor(self, step: int) -> float:
        c, e = self.cfg, step / self.steps_per_epoch  # e: epochs done, fractional
        t = min(step / max(1, self.total), 1.0)
        kind = c.schedule
        if kind == "onecycle":  # torch's OneCycleLR shape: cosine up from lr/25 over 15 %, down to lr/1e4
            up = 0.15
            if t < up:
                return _cos(1 / 25, 1.0, t / up)
            return _cos(1.0, 1 / 1e4, (t - up) / (1 - up))
        if kind == "cosine":
            f = _cos(1.0, 0.0, t)
        elif kind == "linear":
            f = 1.0 - t
        elif kind == "step":
            f = c.gamma ** math.floor(e / c.step_every + 1e-9)
        elif kind == "exponential":
            f = c.gamma ** math.floor(e + 1e-9)  # once per epoch, as the papers state it
        elif kind == "piecewise":
            f = 1.0
            for milestone, value in zip(c.milestones, c.factors):
                if e + 1e-9 >= milestone:
                    f = value
        elif kind == "plateau":
            f = self.plateau_factor
        else:
            f = 1.0
        if c.warmup and e < c.warmup:
            f *= 0.1 + 0.9 * e / c.warmup
        return f

    def lr(self, step: int) -> float:
        return self.cfg.lr * self.factor(step)

    def set_lr(self, optimizer: Any, step: int) -> float:
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def end_epoch(self, figure: float) -> None:
        """Plateau: `figure` is the validation error (or training loss) of the epoch just ended; lower is better."""
        if self.cfg.schedule != "plateau":
            return
        if self.best is None or figure < self.best - 1e-4 * abs(self.best):
            self.best, self.bad_epochs = figure, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.cfg.patience:
            self.plateau_factor *= self.cfg.gamma
            self.bad_epochs = 0

    def state(self) -> dict[str, Any]:
        return {"plateau_factor": self.plateau_factor, "best": self.best, "bad_epochs": self.bad_epochs,
                "planned": self.planned}

    def load(self, state: dict[str, Any]) -> None:
        self.plateau_factor = state["plateau_factor"]
        self.best = state["best"]
        self.bad_epochs = state["bad_epochs"]
        self.planned = state.get("planned")


def _cos(start: float, end: float, t: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0))) / 2
