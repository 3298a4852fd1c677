"""Training: a few steps for one network of every family, run files, checkpoints, resume, the recipes."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import convzoo
from convzoo.data.stats import channel_stats
from convzoo.data.types import Dataset, TensorSplit
from convzoo.errors import UserError
from convzoo.training import Diverged, Interrupted, load_trained, resume, train
from convzoo.training import loop as loop_module
from convzoo.training import setup as train_setup
from convzoo.training.checkpoint import read_checkpoint
from convzoo.training.recipes import PAPER, recipe_settings
from helpers import interrupt_epoch, small_input

# The settings of a small, bitwise-repeatable CPU run on the built-in synthetic data.
QUICK = {"epochs": 2, "batch_size": 128, "lr": 0.02, "quiet": True, "amp": "none", "channels_last": False,
         "device": "cpu"}
METRICS = ("train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "lr")


def tiny_dataset(n: int, size: int, channels: int = 3, classes: int = 10) -> Dataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    split = TensorSplit(images, torch.arange(n) % classes)
    mean, std = channel_stats(images)
    return Dataset("tiny", tuple(f"c{i}" for i in range(classes)), split, split, channels, (size, size), mean, std,
                   True, "memory")


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make every run load `tiny_dataset(...)` at the network's input size instead of a real dataset."""
    def use(n: int = 8, channels: int = 3) -> None:
        def load(name: str, *, image_size: tuple[int, int], **_: Any) -> Dataset:
            return tiny_dataset(n, image_size[0], channels)
        monkeypatch.setattr(train_setup, "load_dataset", load)
    return use


# One network of every family, at a small input: each trains two steps (with its auxiliary heads where it has them).
FAMILY_NETS = ["lenet5", "alexnet", "vgg11_bn", "nin_cifar", "googlenet", "inception_bn", "inception_v3",
               "inception_v4", "inception_resnet_v1", "xception", "squeezenet1_1", "mobilenet_v1_x0_25",
               "mobilenet_v2_x0_35", "shufflenet_v1_g3_x0_25", "resnet18"]


def test_family_nets_cover_every_family() -> None:
    assert sorted({convzoo.model_info(n).family for n in FAMILY_NETS}) == sorted(convzoo.list_families())
    assert sorted(PAPER) == sorted(convzoo.list_families())  # every family has a paper recipe


@pytest.mark.parametrize("name", FAMILY_NETS)
def test_every_family_takes_training_steps(name: str, tiny: Any, tmp_path: Path) -> None:
    tiny(n=8)
    options = {"aux_logits": True} if name == "googlenet" else {}
    size = small_input(name, **options)[1]
    run = train(name, "tiny", out=str(tmp_path / "run"), **{**QUICK, "epochs": 1, "batch_size": 4, "lr": 1e-3},
                input_size=size, options=options)
    (record,) = run.history
    assert record["train_loss"] == record["train_loss"] and record["test_top1"] >= 0  # finite, evaluated
    before = convzoo.create_model(name, num_classes=10, in_chans=3, **options).state_dict()
    trained = load_trained(tmp_path / "run").model.state_dict()
    assert any(not torch.equal(before[k], trained[k]) for k in before)


def test_auxiliary_losses_are_weighted_by_the_paper_weight(tiny: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    tiny(n=4)
    checked: list[int] = []
    original = loop_module.Trainer._loss

    def spy(self: Any, x: torch.Tensor, y: torch.Tensor) -> Any:
        self.s.model.eval()  # no dropout: the loss can be recomputed from the same forward
        loss, logits = original(self, x, y)
        with torch.no_grad():
            main, aux = self.s.model.forward_train(x)
        def ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # the fast recipe smooths labels
            return torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1)

        expected = ce(main, y) + 0.3 * sum(ce(a, y) for a in aux)
        assert len(aux) == 2 and loss.item() == pytest.approx(expected.item(), rel=1e-5)
        assert expected.item() > ce(main, y).item() + 0.1
        checked.append(len(aux))
        self.s.model.train()
        return loss, logits

    monkeypatch.setattr(loop_module.Trainer, "_loss", spy)
    train("googlenet", "tiny", out=str(tmp_path / "r"), **{**QUICK, "epochs": 1, "batch_size": 4},
          input_size=small_input("googlenet", aux_logits=True)[1], options={"aux_logits": True})
    assert checked == [2]  # one step of four images


def test_run_directory_files_and_metrics(tmp_path: Path) -> None:
    run = train("lenet5_modern", "synthetic", out=str(tmp_path / "run"), **QUICK, val_fraction=0.25, ema=0.9)
    d = run.run_dir
    for name in ("config.json", "env.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "summary.json",
                 "curves.png", "confusion.png"):
        assert (d / name).is_file(), name
    assert not list(d.glob(".*tmp"))  # no temporary file left behind
    lines = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and lines == run.history
    need = {"epoch", "train_loss", "train_top1", "val_top1", "test_loss", "test_top1", "test_top5", "lr", "epoch_s",
            "img_per_s_compute", "img_per_s_wall", "data_s", "compute_s", "eval_s"}
    assert need <= set(lines[0])
    assert lines[1]["train_loss"] < lines[0]["train_loss"]  # it learns
    env = json.loads((d / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["seed"] == 0 and env["device"] == "cpu"
    config = json.loads((d / "config.json").read_text())
    assert config["model"] == "lenet5_modern" and config["recipe"] == "fast" and config["val_fraction"] == 0.25
    best = read_checkpoint(d / "best.safetensors").meta
    assert best["epoch"] == max(lines, key=lambda r: r["val_top1"])["epoch"]  # chosen on validation, not on test
    assert best["classes"] == [f"class{k}" for k in range(10)] and best["input"]["size"] == [32, 32]


def _without_timing(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: r[k] for k in (*METRICS, "val_top1") if k in r} for r in history]


def test_interrupted_and_resumed_run_ends_with_the_same_metrics(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {**QUICK, "epochs": 3, "deterministic": True, "val_fraction": 0.1, "ema": 0.9,
                "crop_padding": 2, "hflip": True, "schedule": "onecycle", "options": {"dropout": 0.3}}
    whole = train("lenet5_modern", "synthetic", out=str(tmp_path / "whole"), **settings)
    interrupt_epoch(monkeypatch, 2)
    with pytest.raises(Interrupted, match=r"interrupted in epoch 3; 2 finished epochs are saved in .*--resume"):
        train("lenet5_modern", "synthetic", out=str(tmp_path / "cut"), **settings)
    monkeypatch.undo()
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 2
    resumed = resume(tmp_path / "cut")
    assert _without_timing(resumed.history) == _without_timing(whole.history)
    a, b = (read_checkpoint(p / "last.safetensors").part("model") for p in (tmp_path / "whole", tmp_path / "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_finished_and_foreign_directories(tmp_path: Path) -> None:
    train("lenet5_modern", "synthetic", out=str(tmp_path / "r"), **{**QUICK, "epochs": 1})
    with pytest.raises(UserError, match=r"already finished its 1 epochs; .*--epochs"):
        resume(tmp_path / "r")
    longer = resume(tmp_path / "r", epochs=2)
    assert [r["epoch"] for r in longer.history] == [1, 2]
    with pytest.raises(UserError, match="not a run directory"):
        resume(tmp_path)
    with pytest.raises(UserError, match="already holds a run"):
        train("lenet5_modern", "synthetic", out=str(tmp_path / "r"), **QUICK)


def test_nan_loss_stops_and_keeps_the_last_good_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = loop_module.Trainer._loss

    def poisoned(self: Any, x: torch.Tensor, y: torch.Tensor) -> Any:
        loss, logits = original(self, x, y)
        return (loss * float("nan"), logits) if self.step >= 20 else (loss, logits)  # epoch 2 of 16 steps

    monkeypatch.setattr(loop_module.Trainer, "_loss", poisoned)
    with pytest.raises(Diverged, match=r"loss became nan in epoch 2 .* lower --lr"):
        train("lenet5_modern", "synthetic", out=str(tmp_path / "r"), **{**QUICK, "epochs": 3})
    ckpt = read_checkpoint(tmp_path / "r" / "last.safetensors")
    assert ckpt.meta["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt.part("model").values())


def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import safetensors.torch

    real_save = safetensors.torch.save_file
    calls = {"n": 0}

    def save(tensors: Any, path: str, metadata: Any = None) -> None:
        calls["n"] += 1
        if calls["n"] > 2:  # epoch 1 writes last and best; epoch 2's write meets a full disk
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save)
    with pytest.raises(UserError, match="disk is full"):
        train("lenet5_modern", "synthetic", out=str(tmp_path / "r"), **QUICK)
    assert read_checkpoint(tmp_path / "r" / "last.safetensors").meta["epoch"] == 1
    assert not list((tmp_path / "r").glob(".*tmp"))


def test_checkpoint_round_trip_gives_the_recorded_accuracy(tmp_path: Path) -> None:
    run = train("lenet5_modern", "synthetic", out=str(tmp_path / "r"), **QUICK)
    trained, ev = convzoo.evaluate_run(tmp_path / "r")
    assert ev.top1 == run.history[-1]["test_top1"] and trained.meta["model"] == "lenet5_modern"
    assert ev.confusion.sum().item() == 512 and len(ev.per_class) == 10


@pytest.mark.parametrize(("content", "message"), [
    (b"", "truncated, corrupt or not a safetensors file"),
    (b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}", "truncated, corrupt"),
])
def test_bad_checkpoints_are_user_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_trained(path)


def test_truncated_and_foreign_checkpoints(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    train("lenet5_modern", "synthetic", out=str(tmp_path / "r"), **{**QUICK, "epochs": 1})
    whole = (tmp_path / "r" / "last.safetensors").read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match="truncated, corrupt"):
        load_trained(cut)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(UserError, match="not a convzoo checkpoint"):
        load_trained(foreign)
    with pytest.raises(UserError, match="is a checkpoint of lenet5_modern, not lenet5"):
        train("lenet5", "synthetic", out=str(tmp_path / "other"), **QUICK,
              init=str(tmp_path / "r" / "last.safetensors"))


def test_freeze_features_trains_only_the_head(tmp_path: Path) -> None:
    base = tmp_path / "base"
    train("lenet5_modern", "synthetic", out=str(base), **{**QUICK, "epochs": 1})
    run = train("lenet5_modern", "synthetic", out=str(tmp_path / "ft"), **{**QUICK, "epochs": 1, "lr": 1e-3},
                init=str(base / "last.safetensors"), freeze="features", optimizer="adam")
    before = read_checkpoint(base / "last.safetensors").part("model")
    after = read_checkpoint(run.run_dir / "last.safetensors").part("model")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head.") for k in changed)


def test_init_from_a_torchvision_state_dict_replaces_the_classifier(tmp_path: Path, tiny: Any) -> None:
    torchvision = pytest.importorskip("torchvision")
    tiny(n=4)
    peer = torchvision.models.squeezenet1_1(weights=None)  # random weights stand in for the ImageNet ones
    path = tmp_path / "tv.pth"
    torch.save(peer.state_dict(), path)
    run = train("squeezenet1_1", "tiny", out=str(tmp_path / "r"), **{**QUICK, "epochs": 1, "batch_size": 4},
                input_size=small_input("squeezenet1_1")[1], init=str(path), freeze="features")
    ours = read_checkpoint(run.run_dir / "last.safetensors").part("model")
    assert torch.equal(ours["features.conv1.conv.weight"], peer.state_dict()["features.0.weight"])
    assert ours["head.conv10.weight"].shape[:2] == (10, 512)  # a new 10-class classifier, not ImageNet's 1000


def test_recipes_follow_their_sources() -> None:
    d2l = recipe_settings("d2l", "alexnet").settings
    assert (d2l["optimizer"], d2l["lr"], d2l["momentum"], d2l["batch_size"], d2l["epochs"], d2l["xavier_init"],
            d2l["crop_padding"], d2l["hflip"]) == ("sgd", 0.01, 0.0, 128, 10, True, 0, False)
    v3 = recipe_settings("paper", "inception_v3")
    assert (v3.settings["optimizer"], v3.settings["eps"], v3.settings["gamma"], v3.settings["step_every"],
            v3.settings["label_smoothing"], v3.settings["clip_grad"]) == ("rmsprop", 1.0, 0.94, 2, 0.1, 2.0)
    assert v3.options == {"aux_logits": True} and recipe_settings("paper", "googlenet").options == {"aux_logits": True}
    alex = recipe_settings("paper", "alexnet").settings
    assert (alex["momentum"], alex["weight_decay"], alex["schedule"], alex["gamma"]) == (0.9, 5e-4, "plateau", 0.1)
    lenet = recipe_settings("d2l", "lenet5").settings  # §7.6's LeNet run: lr 0.1, batch 128, padded to 32
    assert (lenet["lr"], lenet["batch_size"], lenet["resize"], lenet["xavier_init"]) == (0.1, 128, "auto", True)
    assert recipe_settings("paper", "squeezenet1_0").settings["schedule"] == "linear"
    assert all(r.guesses or r.source for r in PAPER.values())
    with pytest.raises(UserError, match="unknown recipe 'papr'; did you mean paper"):
        recipe_settings("papr", "alexnet")


def test_bad_settings_are_refused_before_training(tmp_path: Path) -> None:
    for kwargs, message in [({"lr": -1.0}, "--lr must be positive"), ({"epochs": 0}, "--epochs must be 1"),
                            ({"val_fraction": 1.5}, "--val-fraction"), ({"in_chans": 2}, "--in-chans must be 1 or 3"),
                            ({"label_smoothing": 1.0}, "--label-smoothing")]:
        with pytest.raises(UserError, match=message):
            train("lenet5_modern", "synthetic", out=str(tmp_path / "x"), **{**QUICK, **kwargs})
    with pytest.raises(UserError, match="unknown model 'lenet'"):
        train("lenet", "synthetic", out=str(tmp_path / "y"), **QUICK)
    with pytest.raises(UserError, match="alexnet cannot take a 3×32×32 input"):
        train("alexnet", "synthetic", out=str(tmp_path / "z"), **QUICK, input_size=32)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.parametrize("flags", [{"compile": True, "channels_last": True}, {"amp": "bf16", "channels_last": True},
                                   {"amp": "fp16"}])
def test_compile_channels_last_and_autocast_run_on_the_cpu(flags: dict[str, Any], tiny: Any, tmp_path: Path) -> None:
    tiny(n=8)
    run = train("lenet5_modern", "tiny", out=str(tmp_path / "r"), **{**QUICK, "epochs": 1, "batch_size": 4, **flags})
    assert torch.isfinite(torch.tensor(run.history[0]["train_loss"]))
    assert json.loads((run.run_dir / "config.json").read_text())["amp"] == flags.get("amp", "none")


def test_run_files_get_the_usual_permissions(tmp_path: Path) -> None:
    import os
    import stat

    run = train("lenet5_modern", "synthetic", out=str(tmp_path / "r"), **{**QUICK, "epochs": 1})
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("config.json", "metrics.jsonl", "last.safetensors", "curves.png"):
        assert stat.S_IMODE((run.run_dir / name).stat().st_mode) == 0o666 & ~mask, name


def test_tensorboard_events_when_tensorboard_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train("lenet5_modern", "synthetic", out=str(tmp_path / "r"), **QUICK)
    events = EventAccumulator(str(run.run_dir / "tb"))
    events.Reload()
    scalars = events.Scalars("test_top1")
    assert [(e.step, e.value) for e in scalars] == [(r["epoch"], pytest.approx(r["test_top1"])) for r in run.history]


def test_schedules_as_the_papers_state_them() -> None:
    from convzoo.training.config import TrainConfig
    from convzoo.training.schedule import Schedule

    def factors(steps_per_epoch: int = 10, **kw: Any) -> list[float]:
        sched = Schedule(TrainConfig(epochs=6, **kw), steps_per_epoch)
        return [round(sched.factor(step), 6) for step in range(0, 60, 10)]  # the first step of each epoch

    assert factors(schedule="step", step_every=2, gamma=0.94) == [1, 1, 0.94, 0.94, 0.8836, 0.8836]  # Inception v3
    assert factors(schedule="exponential", gamma=0.98) == [round(0.98 ** e, 6) for e in range(6)]  # MobileNet v2
    assert factors(schedule="linear") == [1, 0.833333, 0.666667, 0.5, 0.333333, 0.166667]  # SqueezeNet
    assert factors(schedule="piecewise", milestones=(2, 5), factors=(0.4, 0.02)) == [1, 1, 0.4, 0.4, 0.4, 0.02]
    assert factors(schedule="none", warmup=2) == [0.1, 0.55, 1, 1, 1, 1]
    onecycle = Schedule(TrainConfig(epochs=10, schedule="onecycle"), 100)
    peak = max(range(1000), key=onecycle.factor)
    assert peak == 150 and onecycle.factor(0) == pytest.approx(1 / 25) and onecycle.factor(1000) < 1e-3
    plateau = Schedule(TrainConfig(epochs=10, schedule="plateau", patience=1, gamma=0.1), 1)
    for error in (0.5, 0.4, 0.4, 0.4, 0.3, 0.3, 0.3):
        plateau.end_epoch(error)
    assert plateau.plateau_factor == pytest.approx(0.01)  # two plateaus of more than `patience` epochs


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "squeezenet1_1", "mobilenet_v2_x0_35", "inception_v3",
                                  "resnet18"])
def test_paper_recipes_train(name: str, tiny: Any, tmp_path: Path) -> None:
    tiny(n=8)
    options = {"aux_logits": False} if name == "inception_v3" else {}  # its aux head needs 299×299 inputs
    run = train(name, "tiny", recipe="paper", out=str(tmp_path / "r"), epochs=1, batch_size=4, quiet=True,
                amp="none", input_size=small_input(name)[1], options=options)
    config = json.loads((run.run_dir / "config.json").read_text())
    settings = recipe_settings("paper", name).settings
    given = {"epochs", "batch_size"}  # set above for a one-step run
    assert all(config[k] == (list(v) if isinstance(v, tuple) else v) for k, v in settings.items() if k not in given)
    assert math.isfinite(run.history[0]["train_loss"])


def test_the_fast_recipe_trains_the_paper_lenet5(tmp_path: Path) -> None:
    # at the recipe's general lr 0.1 the scaled tanh and RBF output saturate: 28.7 % after these 3 epochs (measured)
    run = train("lenet5", "synthetic", out=str(tmp_path / "r"), epochs=3, quiet=True, device="cpu")
    assert run.summary["last_test_top1"] >= 0.9, run.history
    assert recipe_settings("fast", "lenet5").settings["lr"] == 0.01
    squeeze = recipe_settings("fast", "squeezenet1_1").settings  # by family
    assert squeeze["optimizer"] == "adamw" and squeeze["xavier_init"] and squeeze["lr"] == 1.5e-3
    assert recipe_settings("fast", "lenet5_modern").settings["lr"] == 0.1
