"""--time-budget and --target-acc: the plan of epochs that fit, the lr schedule fitted to it, the stop at a target,
the time-to-accuracy record, and resuming such runs."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from convzoo.errors import UserError
from convzoo.training import loop as loop_module
from convzoo.training import resume, train
from convzoo.training.budget import plan_epochs, time_to_target
from convzoo.training.checkpoint import read_checkpoint
from helpers import interrupt_epoch

QUICK = {"batch_size": 128, "lr": 0.02, "quiet": True, "amp": "none", "channels_last": False, "device": "cpu"}


def _epoch(e: float, ev: float, top1: float = 0.5, n: int = 1, **more: float) -> dict[str, Any]:
    return {"epoch": n, "epoch_s": e, "eval_s": ev, "test_top1": top1, **more}


def test_the_plan_fits_the_rest_of_the_budget_at_the_recent_pace() -> None:
    assert plan_epochs([], 100, 60) == 60  # nothing measured: --epochs
    assert plan_epochs([], 100, 60, per_epoch=30) == 3  # the calibration's estimate
    assert plan_epochs([], 100, 60, per_epoch=500) == 1  # at least one epoch
    assert plan_epochs([], 100, 2, per_epoch=1) == 2  # at most --epochs
    # the first epoch (warm-up: 40 s) is left out of the pace once there are others: 9 + 1 s per epoch
    history = [_epoch(38, 2), _epoch(9, 1), _epoch(9, 1)]
    assert plan_epochs(history, 100, 60) == 3 + (100 - 60) // 10
    assert plan_epochs(history, 50, 60) == 3  # already over: the epochs done, no fewer
    assert plan_epochs([_epoch(18, 2)], 100, 60) == 5  # one epoch: its own pace


def test_time_to_target_counts_training_and_evaluation_up_to_the_first_epoch_that_reached_it() -> None:
    history = [_epoch(10, 1, 0.80, 1), _epoch(10, 1, 0.93, 2), _epoch(10, 1, 0.91, 3), _epoch(10, 1, 0.95, 4)]
    assert time_to_target(history, 0.93) == {"target": 0.93, "on": "test_top1", "epoch": 2, "train_s": 20,
                                              "wall_s": 22}
    assert time_to_target(history, 0.96) is None
    held_out = [_epoch(10, 1, 0.99, 1, val_top1=0.5), _epoch(10, 1, 0.5, 2, val_top1=0.9)]
    assert time_to_target(held_out, 0.9)["epoch"] == 2  # the validation figure decides where there is one


def _slow_steps(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make every training step take at least `seconds`, so that the run's pace is known whatever the machine."""
    original = loop_module.Trainer._update

    def slow(self: Any, loss: Any) -> None:
        time.sleep(seconds)
        original(self, loss)

    monkeypatch.setattr(loop_module.Trainer, "_update", slow)


def test_a_time_budget_plans_the_epochs_that_fit_and_ends_the_schedule_with_the_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_steps(monkeypatch, 0.05)  # 16 steps per epoch: 0.8 s of training per epoch at least
    budget, peak = 4.0, 0.02
    run = train("lenet5_modern", "synthetic", out=str(tmp_path / "r"), **QUICK, epochs=40, time_budget=budget,
                schedule="onecycle")
    s, h = run.summary, run.history
    assert s["stopped_by"] == "time budget" and 2 <= s["epochs"] <= 4, s
    assert s["wall_s"] <= budget * 1.15 and s["time_budget_s"] == budget
    # planned from a calibration within the first epoch: planned for 40 epochs, its lr would still be warming up
    # (1/40 of the way; the warm-up is the first 15 %); planned for the ~4 that fit, it is past the peak
    assert h[0]["lr"] > 0.5 * peak, h[0]["lr"]
    assert h[-1]["lr"] < 0.02 * peak  # the decay ended with the time, it was not cut short
    ckpt = read_checkpoint(run.run_dir / "last.safetensors")
    assert ckpt.meta["schedule"]["planned"] == s["epochs"]
    # a finished budget run resumes only with more time; then the plan grows from the epochs done
    with pytest.raises(UserError, match=r"already used its time budget \(.* of 4 s over \d epochs\); .*--time-budget"):
        resume(run.run_dir)
    more = resume(run.run_dir, time_budget=budget + 2.5)
    assert more.summary["epochs"] > s["epochs"] and more.summary["stopped_by"] == "time budget"
    assert more.history[: s["epochs"]] == h


def test_a_budget_run_killed_between_epochs_resumes_with_its_plan_and_its_spent_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_steps(monkeypatch, 0.05)
    interrupt_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train("lenet5_modern", "synthetic", out=str(tmp_path / "r"), **QUICK, epochs=40, time_budget=3.0)
    planned = read_checkpoint(tmp_path / "r" / "last.safetensors").meta["schedule"]["planned"]
    assert 2 <= planned <= 4
    monkeypatch.undo()
    _slow_steps(monkeypatch, 0.05)
    run = resume(tmp_path / "r")
    assert run.summary["stopped_by"] == "time budget" and run.summary["wall_s"] <= 3.0 * 1.15
    assert abs(run.summary["epochs"] - planned) <= 1  # the same pace, the same plan give or take an epoch


def test_target_accuracy_stops_the_run_and_records_the_time_to_it(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # chance on the synthetic data is 10 %: a target of 5 % is met by the first epoch; at lr 1e-7, 90 % by none
    met = train("lenet5_modern", "synthetic", out=str(tmp_path / "met"), **QUICK, epochs=5, target_acc=0.05)
    hit = met.summary["time_to_target"]
    assert met.summary["stopped_by"] == "target accuracy" and met.summary["epochs"] == 1
    assert hit["epoch"] == 1 and hit["on"] == "test_top1" and hit["target"] == 0.05
    assert hit["train_s"] == met.history[0]["epoch_s"] and hit["wall_s"] == met.summary["wall_s"]
    with pytest.raises(UserError, match=r"already reached its target accuracy 0.05 in epoch 1; .*--init"):
        resume(met.run_dir, epochs=9)
    missed = train("lenet5_modern", "synthetic", out=str(tmp_path / "missed"), **{**QUICK, "quiet": False, "lr": 1e-7},
                   epochs=2, target_acc=0.9, val_fraction=0.25)
    assert missed.summary["stopped_by"] == "epochs" and missed.summary["time_to_target"] is None
    out = capsys.readouterr().out
    assert "2 epochs, until top-1 90 %" in out and "target 90 % not reached" in out
