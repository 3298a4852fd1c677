"""Fashion-MNIST under a fixed time budget: the test accuracy each network reaches, and its time to accuracy.

Each network trains with ``convzoo train NAME --time-budget SECONDS`` (one process per network, one after the
other, so that no two share the cores), with the ``fast`` recipe unless ``--recipe`` says otherwise; the budget
counts training and evaluation (the run plans its one-cycle schedule for the epochs that fit, README). From the
run's ``metrics.jsonl`` the script takes the test top-1 after each epoch against the training + evaluation
seconds spent until then, and reports per network:

- the test top-1 after the last epoch and the best of any epoch, the epochs that fit, the seconds used;
- the time to each accuracy in ``--targets`` (training + evaluation seconds until the end of the first epoch
  whose test top-1 reached it; ``—`` where none did). Time-to-accuracy is read off the same runs, so a run
  planned for a budget is also what reached each target; a run aiming at one target only would plan otherwise;
- training images per second of wall-clock.

Networks are ``NAME`` or ``NAME@SIDE`` (trained at SIDE×SIDE: Fashion-MNIST's 28×28 images are padded or
resized to it by the pipeline). The test set chooses nothing: the figures after the last epoch are the ones
compared, the best epoch is shown beside them for reference.

Usage: ``python benchmarks/fm_budget.py [--budget 150] [--networks lenet5,lenet5_modern,resnet18@32,…]
[--targets 0.85,0.9,0.92] [--device cpu|cuda] [--out DIR] [-- EXTRA TRAIN FLAGS]``; writes
``DIR/fm_budget_<device>.json``, ``.md`` and ``.png`` (accuracy against seconds, every network; DIR defaults to
benchmarks/results). ``--quick`` is a smoke run on the synthetic data that writes to a temporary folder.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
# small enough for a few epochs each in 150 s on 2 cores (nin_cifar's first epoch alone takes about 180 s)
CPU_NETWORKS = ("lenet5", "lenet5_modern", "shufflenet_v1_g3_x0_25@32", "squeezenet1_1@32", "mobilenet_v2_x0_35@32",
                "resnet18@32")


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=150.0, help="seconds of training + evaluation per network")
    p.add_argument("--networks", default=",".join(CPU_NETWORKS), help="NAME or NAME@SIDE, comma-separated")
    p.add_argument("--targets", default="0.85,0.9,0.92", help="test top-1 fractions to time, comma-separated")
    p.add_argument("--recipe", default="fast")
    p.add_argument("--epochs", type=int, default=200, help="the most epochs a run may plan")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--quick", action="store_true", help="a smoke run: synthetic data, 5 s per network")
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.quick:
        args.dataset, args.budget = "synthetic", min(args.budget, 5.0)
        args.networks = args.networks if "--networks" in argv else "lenet5_modern"
    return args, extra


def run_one(spec: str, args: argparse.Namespace, extra: list[str], runs: Path) -> dict[str, Any]:
    name, _, side = spec.partition("@")
    run_dir = runs / spec.replace("@", "-")
    cmd = [sys.executable, "-m", "convzoo", "train", name, "--dataset", args.dataset, "--recipe", args.recipe,
           "--time-budget", str(args.budget), "--epochs", str(args.epochs), "--device", args.device, "--quiet",
           "--out", str(run_dir), *(["--input-size", side] if side else []), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    row: dict[str, Any] = {"network": name, "input_side": int(side) if side else None, "command": cmd[2:],
                           "process_s": elapsed}
    if done.returncode != 0:
        row["error"] = (done.stderr.strip().splitlines() or ["exit code " + str(done.returncode)])[-1]
        return row
    summary = json.loads((run_dir / "summary.json").read_text())
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    from convzoo.training.budget import spent, time_to_target

    curve = [[wall, r["test_top1"]] for wall, r in zip(itertools.accumulate(spent([r]) for r in history), history)]
    on_test = [{k: v for k, v in r.items() if k != "val_top1"} for r in history]  # the test figure decides here
    targets = {}
    for t in args.targets_list:
        hit = time_to_target(on_test, t)
        targets[f"{t:g}"] = None if hit is None else {"epoch": hit["epoch"], "wall_s": hit["wall_s"]}
    row.update(epochs=len(history), wall_s=spent(history), stopped_by=summary["stopped_by"],
               last_test_top1=summary["last_test_top1"], best_epoch_test_top1=max(a for _, a in curve),
               img_per_s_wall=summary["img_per_s_wall"], time_to=targets, curve=curve)
    return row


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from convzoo.training.rundir import environment as run_environment

    return {**run_environment(torch.device(args.device), 0), "load_average_start": list(os.getloadavg())}


def markdown(result: dict[str, Any]) -> str:
    a, env = result["settings"], result["environment"]
    targets = a["targets"]
    head = ["network", "input", "epochs", "seconds used", "test top-1 (last)", "best of any epoch",
            *[f"time to {100 * t:g} %" for t in targets], "img/s"]
    lines = [f"# Fashion-MNIST in {a['budget']:g} s of training + evaluation per network", "",
             f"`{' '.join(result['command'])}` — recipe `{a['recipe']}`, device {env.get('gpu') or a['device']}, "
             f"{env['cpu']} ({env['cpu_count']} cores), torch {env['torch']}, convzoo {env['convzoo']}, git "
             f"{env['git_revision']}, {env['started']}, load average {env['load_average_start'][0]:.2f} at the "
             f"start and {env['load_average_end'][0]:.2f} at the end.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        side = f"{r['input_side']}×{r['input_side']}" if r["input_side"] else "own"
        if "error" in r:
            lines.append(f"| {r['network']} | {side} | failed: {r['error']} |" + " |" * (len(head) - 3))
            continue
        times = [f"{v['wall_s']:.1f} s (epoch {v['epoch']})" if v else "—" for v in r["time_to"].values()]
        lines.append(f"| {r['network']} | {side} | {r['epochs']} | {r['wall_s']:.1f} | "
                     f"{100 * r['last_test_top1']:.2f} % | {100 * r['best_epoch_test_top1']:.2f} % | "
                     + " | ".join(times) + f" | {r['img_per_s_wall']:,.0f} |")
    lines += ["", "Seconds are training + evaluation, as the budget counts them (building the network and loading "
              "the data are outside it); time to accuracy is at the end of the first epoch whose test top-1 "
              "reached it."]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in result["rows"]:
        if "curve" in r:
            xs, ys = zip(*r["curve"])
            label = r["network"] + (f"@{r['input_side']}" if r["input_side"] else "")
            ax.plot(xs, [100 * y for y in ys], marker="o", markersize=3, label=label)
    ax.set_xlabel("seconds of training + evaluation")
    ax.set_ylabel("test top-1 (%)")
    low = min((100 * y for r in result["rows"] for _, y in r.get("curve", [])), default=0)
    ax.set_ylim(max(low, 70), 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Fashion-MNIST, {result['settings']['budget']:g} s per network ({result['settings']['device']})")
    fig.tight_layout()
    from convzoo.fsio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    args, extra = parse(argv)
    args.targets_list = [float(t) for t in args.targets.split(",") if t]
    out = args.out or (Path(tempfile.mkdtemp(prefix="fm_budget_")) if args.quick else OUT)
    env = environment(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fm_budget_runs_") as runs:
        for spec in [s for s in args.networks.split(",") if s]:
            row = run_one(spec, args, extra, Path(runs))
            rows.append(row)
            shown = row.get("error") or f"{100 * row['last_test_top1']:.2f} % after {row['epochs']} epochs"
            print(f"{spec}: {shown}", flush=True)
    env["load_average_end"] = list(os.getloadavg())
    result = {"command": ["python", "benchmarks/fm_budget.py", *(sys.argv[1:] if argv is None else argv)],
              "settings": {"budget": args.budget, "targets": args.targets_list, "recipe": args.recipe,
                           "device": args.device, "dataset": args.dataset, "epochs_cap": args.epochs,
                           "extra_train_flags": extra},
              "environment": env, "rows": rows}
    from convzoo.fsio import write_json, write_text

    stem = out / f"fm_budget_{args.device}"
    write_json(stem.with_suffix(".json"), result)
    write_text(stem.with_suffix(".md"), markdown(result))
    plot(result, stem.with_suffix(".png"))
    print(f"wrote {stem}.json, .md, .png", flush=True)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
