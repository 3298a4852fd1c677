"""`convzoo train / eval / predict / recipes` from the command line: outputs, one-line errors, kill -9 and resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from convzoo.cli import main

FAST_CPU = ["--quiet", "--amp", "none", "--device", "cpu", "--lr", "0.02", "--batch-size", "128"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "lenet5_modern", "--dataset", "synthetic", "--epochs", "1", "--out", str(out), *FAST_CPU]
    assert main(argv) == 0
    return out


def test_train_prints_epochs_and_the_summary(trained_run: Path) -> None:
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["epochs"] == 1 and 0 <= summary["last_test_top1"] <= 1 and summary["plots"]
    assert (trained_run / "curves.png").stat().st_size > 1000


def test_eval_reports_top1_top5_per_class_and_confusion(capsys: pytest.CaptureFixture[str], trained_run: Path,
                                                        tmp_path: Path) -> None:
    code, out, _ = run(capsys, "eval", str(trained_run), "--confusion", str(tmp_path / "c.png"))
    assert code == 0 and "top-1" in out and "top-5" in out and "class9" in out and "confusion (rows" in out
    assert (tmp_path / "c.png").is_file()
    code, out, _ = run(capsys, "eval", str(trained_run / "last.safetensors"), "--json")
    record = json.loads(out)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert record["top1"] == summary["last_test_top1"]  # the EMA weights, as evaluated in training
    assert sum(map(sum, record["confusion"])) == 512 and len(record["per_class"]) == 10


def test_predict_takes_images_of_any_size_and_mode(capsys: pytest.CaptureFixture[str], trained_run: Path,
                                                   tmp_path: Path) -> None:
    paths = []
    for mode, size in (("L", (17, 40)), ("RGBA", (64, 64)), ("P", (33, 21)), ("RGB", (300, 200))):
        p = tmp_path / f"{mode}.png"
        Image.new(mode, size, color=7 if mode in ("L", "P") else (200, 10, 10, 128)[: len(mode)]).save(p)
        paths.append(str(p))
    code, out, _ = run(capsys, "predict", str(trained_run), *paths, "--json", "--top", "3")
    results = json.loads(out)
    assert code == 0 and [r["image"] for r in results] == paths
    for r in results:
        probs = [t["probability"] for t in r["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_recipes_lists_every_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "recipes")
    assert code == 0 and "fast [all]" in out and "d2l [all others]" in out and "d2l [lenet]" in out
    assert "paper [inception_v3]" in out
    assert "guess:" in out and "optimizer=rmsprop" in out
    code, out, _ = run(capsys, "recipes", "--family", "alexnet", "--json")
    (row,) = json.loads(out)
    assert row["settings"]["weight_decay"] == 5e-4 and row["recipe"] == "paper"


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "lenet9"], "unknown model 'lenet9'"),
    (["train", "--dataset", "fashion-mnst"], "fashion-mnist"),
    (["train", "--lr", "-1"], "--lr must be positive"),
    (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["train", "--recipe", "slow"], "unknown recipe 'slow'"),
    (["train", "alexnet", "--dataset", "synthetic", "--input-size", "64"], "alexnet cannot take a 3×64×64 input"),
    (["train", "--resume", "/nonexistent/run"], "is not a run directory"),
    (["train", "--resume", "/nonexistent/run", "--lr", "0.1"], "leave out lr"),
    (["train", "--resume", __file__], "is not a run directory"),
    (["train", "--epochs", "abc"], "invalid int value: 'abc'"),
    (["train", "--dataset", "synthetic", "--target-acc", "94"], "--target-acc is a fraction in (0, 1] (0.94"),
    (["train", "--dataset", "synthetic", "--time-budget", "0"], "--time-budget must be a positive number"),
    (["train", "--dataset", "imagefolder"], "imagefolder needs --data-dir"),
    (["train", "lenet5", "--set", "output=cosine", "--dataset", "synthetic"], "output"),
    (["eval", "/nonexistent/run"], "does not exist"),
    (["predict", "/nonexistent/ckpt.safetensors", "x.png"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
                                          message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a default run directory would go to ./runs
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(argv))
    _, err = capsys.readouterr()
    assert exited.value.code == 2, err
    assert err.count("\n") == 1 and message in err and err.startswith("convzoo"), err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_predict_refuses_unreadable_images(capsys: pytest.CaptureFixture[str], trained_run: Path,
                                           tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, _, err = run(capsys, "predict", str(trained_run), str(bad))
    assert code == 2 and "cannot read image" in err and err.count("\n") == 1


def _metrics(run_dir: Path) -> list[dict]:
    keep = ("epoch", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "lr")
    return [{k: r[k] for k in keep} for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]


def test_kill_9_then_resume_ends_with_the_metrics_of_an_uninterrupted_run(tmp_path: Path) -> None:
    """A real `convzoo train` process killed with SIGKILL mid-run, resumed with `--resume` alone."""
    args = ["train", "lenet5_modern", "--dataset", "synthetic", "--epochs", "4", "--deterministic",
            "--crop-padding", "2", "--hflip", *FAST_CPU]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "convzoo", *args]
    whole = tmp_path / "whole"
    subprocess.run([*cmd, "--out", str(whole)], check=True, env=env, capture_output=True, timeout=600)
    cut = tmp_path / "cut"
    proc = subprocess.Popen([*cmd, "--out", str(cut)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:  # kill it once an epoch is saved
        if (cut / "metrics.jsonl").exists() and (cut / "metrics.jsonl").read_text().strip():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(_metrics(cut))
    assert 1 <= done < 4, "the run should have been killed between its first and its last epoch"
    resumed = subprocess.run([sys.executable, "-m", "convzoo", "train", "--resume", str(cut), "--quiet"], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {cut} after epoch" not in resumed.stdout  # --quiet
    assert _metrics(cut) == _metrics(whole)
    assert torch.equal(*(torch.tensor(json.loads((d / "summary.json").read_text())["per_class_test_top1"])
                         for d in (cut, whole)))


def test_the_tutorial_cifar10_experiment_runs_on_files_in_the_real_format(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AlexNet at 227 with only the classifier trained (Adam, lr 1e-4, batch 32) on the official CIFAR-10 archive
    format: 5 × 4 training images and 4 test images, so one step."""
    import data_writers

    data_writers.isolate(monkeypatch, tmp_path)
    data_writers.write_cifar10(tmp_path / "cifar", tar=True, n=4)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "alexnet", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"),
                            "--no-verify", "--freeze", "features", "--optimizer", "adam", "--lr", "1e-4",
                            "--batch-size", "32", "--input-size", "227", "--epochs", "1", "--out", str(out),
                            "--quiet", "--amp", "none")
    assert code == 0, err
    meta = json.loads((out / "config.json").read_text())
    assert (meta["optimizer"], meta["lr"], meta["batch_size"], meta["freeze"]) == ("adam", 1e-4, 32, "features")
    from convzoo.training.checkpoint import read_checkpoint

    ckpt = read_checkpoint(out / "last.safetensors")
    assert ckpt.meta["classes"][:2] == ["airplane", "automobile"] and ckpt.meta["input"]["size"] == [227, 227]
    code, _, err = run(capsys, "train", "alexnet", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"),
                       "--out", str(tmp_path / "verified"))
    assert code == 2 and "--no-verify" in err  # the test files are not the official ones


def test_an_imagefolder_streams_through_the_same_loop(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import data_writers

    data_writers.isolate(monkeypatch, tmp_path)
    root = tmp_path / "flowers"
    for split in ("train", "val"):
        data_writers.write_tree(root / split, {"daisy": 6, "rose": 6}, size=(40, 30))
    import convzoo.data.folder as folder

    monkeypatch.setattr(folder, "MEMORY_LIMIT", 0)  # stream, as a large tree would
    streamed = []
    real_stream = folder.stream_batches

    def counting(*args: object, **kwargs: object) -> object:
        streamed.append(kwargs["size"])
        return real_stream(*args, **kwargs)

    monkeypatch.setattr(folder, "stream_batches", counting)
    code, _, err = run(capsys, "train", "lenet5_modern", "--dataset", "imagefolder", "--data-dir", str(root),
                       "--epochs", "1", "--batch-size", "4", "--workers", "0", "--out", str(tmp_path / "run"),
                       *FAST_CPU[:5])
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 1
    assert streamed and streamed[0] == (32, 32)  # decoded at the network's input size, batch by batch


def test_flags_override_the_recipe_either_way(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--dataset", "synthetic", "--epochs", "1", "--no-hflip",
                 "--no-channels-last", "--nesterov", "--out", str(out), *FAST_CPU]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["hflip"], config["channels_last"], config["nesterov"]) == (False, False, True)
    assert (config["recipe"], config["schedule"], config["lr"], config["amp"]) == ("fast", "onecycle", 0.02, "none")


def test_ctrl_c_says_how_to_resume_and_exits_130(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from convzoo.training import loop

    original = loop.Trainer.train_one_epoch

    def interrupted_in_epoch_2(self: loop.Trainer, epoch: int, progress: object = None) -> loop.EpochStats:
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch, progress)

    monkeypatch.setattr(loop.Trainer, "train_one_epoch", interrupted_in_epoch_2)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "lenet5_modern", "--dataset", "synthetic", "--epochs", "3", "--out", str(out),
                       *FAST_CPU)
    assert code == 130 and err.count("\n") == 1
    assert f"interrupted in epoch 2; 1 finished epoch is saved in {out}; continue with: convzoo train --resume" in err
    monkeypatch.setattr(loop.Trainer, "train_one_epoch", original)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert [r["epoch"] for r in _metrics(out)] == [1, 2, 3]


def test_eval_reproduces_a_bf16_run_in_its_own_precision(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["train", "lenet5_modern", "--dataset", "synthetic", "--epochs", "1", "--out", str(out), *FAST_CPU]
    argv[argv.index("none")] = "bf16"
    assert main(argv) == 0
    capsys.readouterr()
    code, stdout, _ = run(capsys, "eval", str(out), "--json")
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0 and json.loads(stdout)["top1"] == summary["last_test_top1"]
    code, stdout, _ = run(capsys, "eval", str(out))
    assert "bf16 autocast" in stdout
