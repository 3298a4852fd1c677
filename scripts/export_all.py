"""Export every registered network to ONNX, check each file, and time onnxruntime against torch at batch 1.

For each network: its initial weights (seed 0), the paper's 1000 classes and the paper's input size (``--size
small``: the smallest square size it takes, at least 32 where that works, for machines too slow for the paper's).
`convzoo.deploy.export.export(name, "onnx", ...)` writes the file to a temporary directory and runs the check it
runs for every export: onnxruntime's CPU provider against torch on 4 + 1 random images at the export size (plus 2
at a larger, non-square size where height and width are dynamic), max |Δ| ≤ 1e-4 of the largest logit and the
same top-1 class. Then the latency of one image: onnxruntime (CPU provider, its default threads) and torch eager
(``torch.no_grad``, torch's threads), timed interleaved in blocks (`convzoo.bench.timing.time_workloads`) so that
a drifting machine slows both alike; the median of ``--steps`` steps after ``--warmup``. The file is deleted
after its row is written (VGG's are half a gigabyte).

A network that fails is a row with its error, and the run goes on. Rows are written as they come, so an
interrupted run keeps what it measured; ``--keep`` reuses the rows of an earlier run for the networks it already
has (at the same --size) and measures the rest.

Usage: ``python scripts/export_all.py [--pattern 'resnet*'] [--size paper|small] [--steps 10] [--warmup 2]
[--threads N] [--keep] [--render]``; writes ``benchmarks/results/export_all.json`` (records and the machine: CPU,
threads, versions, git revision, load average) and ``export_all.md`` (the table; ``--render`` rewrites it alone).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import torch

import convzoo
from convzoo.bench.timing import Workload, step_stats, time_workloads
from convzoo.deploy.export import TOLERANCE, export
from convzoo.fsio import write_json, write_text
from convzoo.meta import build_on_meta
from convzoo.render import md_table

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def smallest_size(name: str) -> tuple[int, int, int]:
    """The smallest square input the network takes, at least 32 where that works (tests/helpers.small_input)."""
    info = convzoo.model_info(name)
    rng = convzoo.input_range(build_on_meta(convzoo.create_model, name=name), info.input_size[1])
    assert rng is not None, name
    lo, hi = rng
    side = max(lo, 32) if hi is None else max(lo, min(32, hi))
    return (info.input_size[0], side, side)


def _git_revision() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
                              cwd=Path(__file__).parent)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=False,
                               cwd=Path(__file__).parent).stdout.strip()
        return done.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return ""


def environment() -> dict[str, Any]:
    cpu = ""
    if Path("/proc/cpuinfo").exists():
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    import onnxscript

    return {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": ort.__version__, "onnxscript": onnxscript.__version__, "convzoo": convzoo.__version__,
            "platform": platform.platform(), "cpu": cpu or platform.processor(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "git_revision": _git_revision(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_average_start": list(os.getloadavg())}


def latency(path: Path, model: torch.nn.Module, size: tuple[int, int, int], steps: int, warmup: int,
            threads: int) -> dict[str, float]:
    """Median (and p10/p90) ms of one image: onnxruntime CPU and torch eager, interleaved."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default (one per core)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = torch.randn(1, *size)
    feed = {session.get_inputs()[0].name: x.numpy()}

    def torch_step() -> None:
        with torch.no_grad():
            model(x)

    timed = time_workloads({"onnxruntime": Workload(lambda: session.run(None, feed)), "torch": Workload(torch_step)},
                           steps=steps, warmup=warmup, block=max(1, steps // 4), device=torch.device("cpu"))
    out: dict[str, float] = {}
    for side, t in timed.items():
        stats = step_stats(t.step_ms)
        out |= {f"{side}_ms": stats["median_step_ms"], f"{side}_p10_ms": stats["p10_step_ms"],
                f"{side}_p90_ms": stats["p90_step_ms"]}
    out["ort_over_torch"] = out["onnxruntime_ms"] / out["torch_ms"]
    return out


def measure(name: str, size_kind: str, steps: int, warmup: int, threads: int, workdir: Path) -> dict[str, Any]:
    info = convzoo.model_info(name)
    size = info.input_size if size_kind == "paper" else smallest_size(name)
    row: dict[str, Any] = {"name": name, "family": info.family, "input": list(size),
                           "input_kind": "paper" if size == info.input_size else "smallest"}
    path = workdir / f"{name}.onnx"
    t0 = time.perf_counter()
    try:
        record = export(name, "onnx", path, seed=0, input_size=size)
    except Exception as err:  # a failure is a row of the table, and the run goes on
        row |= {"passed": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                "wall_s": time.perf_counter() - t0}
        return row
    c = record.check
    with torch.random.fork_rng(devices=[]):  # the same initial weights (seed 0) for the latency
        torch.manual_seed(0)
        model = convzoo.create_model(name).eval()
    row |= {"params": sum(p.numel() for p in model.parameters()), "file_mb": record.file_bytes / 1e6,
            "opset": record.opset, "exporter": record.exporter, "dynamic": list(record.dynamic),
            "dynamic_min_side": record.metadata.get("dynamic_min_side"), "max_abs_diff": c.max_abs_diff,
            "max_logit": c.max_logit, "rel_diff": c.rel_diff, "top1_same": c.top1_same, "images": c.images,
            "check_batches": [list(b) for b in c.batches], "passed": c.passed, "export_s": record.export_s,
            "check_s": record.check_s, "refused": list(record.refused)}
    row |= latency(path, model, size, steps, warmup, threads)
    path.unlink(missing_ok=True)
    row["wall_s"] = time.perf_counter() - t0
    return row


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def markdown(doc: dict[str, Any]) -> str:
    env, rows = doc["environment"], doc["records"]
    passed = sum(bool(r.get("passed")) for r in rows)
    small = [r["name"] for r in rows if r.get("input_kind") == "smallest"]
    by_exporter: dict[str, int] = {}
    for r in rows:
        if r.get("exporter"):
            by_exporter[r["exporter"]] = by_exporter.get(r["exporter"], 0) + 1
    lines = [
        "# Every registered network exported to ONNX and checked",
        "",
        f"`python scripts/export_all.py {doc['argv']}`: {len(rows)} networks, **{passed} exported and passed** the "
        f"onnxruntime check (max |Δ| ≤ {TOLERANCE:g} × the largest logit and the same top-1 on every image), in "
        f"{doc['wall_s'] / 60:.1f} min.",
        "",
        f"Machine: {env['cpu']}, {env['cpu_count']} cores (shared: load average {env['load_average_start'][0]:.1f} at "
        f"the start, {env.get('load_average_end', [0])[0]:.1f} at the end), torch {env['torch']} "
        f"(threads: {env['torch_threads']}), onnxruntime {env['onnxruntime']} (CPU provider, threads: "
        f"{env['onnxruntime_threads']}), onnx "
        f"{env['onnx']}, onnxscript {env['onnxscript']}; git {env['git_revision'] or '?'}; {env['date']}.",
        "",
        "Random initial weights give logits anywhere from 1e-16 (the MobileNets) to 1e10 (ResNet-152, Inception v3), "
        "so the criterion is the difference relative to the largest logit (max |Δ| / max |logit|), not max |Δ|.",
        "",
        "Each network: initial weights (seed 0), 1000 classes, " + (
            "the paper's input size." if not small else
            f"the paper's input size except {len(small)} at their smallest size ({', '.join(small)}).") +
        " Check inputs: 4 + 1 random images at the export size, plus 2 at (H + 32) × (W + 64) where height and width "
        "are dynamic. Latency: one image, median of the timed steps, onnxruntime and torch eager interleaved; on a "
        "shared machine both are slowed alike, the ratio less so than the times.",
        "",
        "Exporters: " + ", ".join(f"{k}: {v}" for k, v in sorted(by_exporter.items())) +
        ". `torch.export` refuses symbolic height and width where ceil-mode pooling rounds (or a map is 1 pixel at "
        "the export size): those went through torch's TorchScript-based exporter, same opset and dynamic axes. Where "
        "no file with dynamic height and width passes the check (at the larger size too), the export keeps its size "
        "with the batch alone dynamic. Dynamic: B batch, HW height and width (from the side in parentheses).",
        "",
    ]
    head = ["network", "input", "params", "file MB", "opset", "exporter", "dynamic", "max |logit|", "max |Δ|",
            "max |Δ| / max |logit|", "top-1", "ORT ms", "torch ms", "ORT/torch"]
    cells = []
    for r in rows:
        if "error" in r:
            cells.append([r["name"], "×".join(map(str, r["input"])), "", "", "", "FAILED", "", "", "", "", "", "", "",
                          r["error"][:80]])
            continue
        dyn = "B" + (f", HW (≥ {r['dynamic_min_side']})" if "height" in r["dynamic"] else "")
        exporter = "torch.export" if "torch.export" in r["exporter"] else "TorchScript"
        cells.append([r["name"], "×".join(map(str, r["input"])) + ("" if r["input_kind"] == "paper" else " *"),
                      f"{r['params'] / 1e6:.1f}M", _fmt(r["file_mb"], ".1f"), str(r["opset"]), exporter, dyn,
                      _fmt(r["max_logit"], ".1e"), _fmt(r["max_abs_diff"], ".1e"), _fmt(r["rel_diff"], ".1e"),
                      f"{r['top1_same']}/{r['images']}",
                      _fmt(r["onnxruntime_ms"], ".1f"), _fmt(r["torch_ms"], ".1f"), _fmt(r["ort_over_torch"], ".2f")])
    lines += md_table(head, cells, [False, False, True, True, True, False, False] + [True] * 7)
    if small:
        lines += ["", "\\* at its smallest input size, not the paper's."]
    fallbacks = [f"- {r['name']}: {'; '.join(r['refused'])}" for r in rows if r.get("refused")]
    if fallbacks:
        lines += ["", "Why an exporter was passed over:", "", *fallbacks]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", default="*", help="fnmatch pattern of the registered names (default all)")
    parser.add_argument("--size", choices=("paper", "small"), default="paper")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side (default 10)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0,
                        help="threads of both sides for the latency (default 0: each library's own default)")
    parser.add_argument("--keep", action="store_true", help="reuse the rows of the last run for names it has")
    parser.add_argument("--out", type=Path, default=RESULTS / "export_all.json")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json (no measuring)")
    args = parser.parse_args()
    if args.render:
        write_text(args.out.with_suffix(".md"), markdown(json.loads(args.out.read_text())))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    names = convzoo.list_models(args.pattern)
    kept: dict[str, dict[str, Any]] = {}
    if args.keep and args.out.exists():
        old = json.loads(args.out.read_text())
        kept = {r["name"]: r for r in old["records"] if "error" not in r and old.get("size") == args.size}
    env = environment()
    t0 = time.perf_counter()
    env["onnxruntime_threads"] = args.threads or "default (intra_op_num_threads=0: one per core)"
    doc: dict[str, Any] = {"environment": env, "size": args.size, "argv": " ".join(sys.argv[1:]), "records": []}
    with tempfile.TemporaryDirectory(prefix="export_all.") as tmp:
        for i, name in enumerate(names, 1):
            row = kept.get(name) or measure(name, args.size, args.steps, args.warmup, args.threads, Path(tmp))
            doc["records"].append(row)
            gc.collect()
            verdict = "passed" if row.get("passed") else f"FAILED: {row.get('error', 'check')}"
            figures = (f", rel Δ {row['rel_diff']:.1e}, ORT {row['onnxruntime_ms']:.1f} ms vs torch "
                       f"{row['torch_ms']:.1f} ms" if "torch_ms" in row else "")
            print(f"[{i}/{len(names)}] {name} {'×'.join(map(str, row['input']))}: {verdict}{figures} "
                  f"({row.get('wall_s', 0):.0f} s{', kept' if name in kept else ''})", flush=True)
            env["load_average_end"] = list(os.getloadavg())
            doc["wall_s"] = time.perf_counter() - t0
            write_json(args.out, doc)
            write_text(args.out.with_suffix(".md"), markdown(doc))
    failed = [r["name"] for r in doc["records"] if not r.get("passed")]
    print(f"{len(names) - len(failed)}/{len(names)} passed in {doc['wall_s'] / 60:.1f} min; {args.out} and "
          f"{args.out.with_suffix('.md')} written" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
