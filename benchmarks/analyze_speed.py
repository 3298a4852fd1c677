"""How long `convzoo.analyze` takes per registered network at its paper input (meta device, CPU time).

Two figures per network, each the median of --repeats runs after one warm-up run of the whole process:
- ``analyze_s``: ``analyze(name)`` as `convzoo summary` calls it (build on meta, one traced forward, the
  report, and the search of the square input sizes the network takes);
- ``trace_s``: the same without the input-size search (``find_input_range=False``).

Usage: ``python benchmarks/analyze_speed.py [--pattern 'resnet*'] [--repeats 3]``; writes
``benchmarks/results/analyze_speed.json`` (with the machine, versions, git revision and load average,
since a shared machine slows every figure).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

import convzoo
from convzoo.analysis import analyze

OUT = Path(__file__).parent / "results" / "analyze_speed.json"


def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _env() -> dict[str, object]:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        rev = ""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"python": platform.python_version(), "torch": torch.__version__, "convzoo": convzoo.__version__,
            "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "git_revision": rev,
            "load_average_start": list(os.getloadavg())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", default="*")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    env = _env()
    names = convzoo.list_models(args.pattern)
    analyze(names[0])  # warm-up: imports and torch's lazily built meta kernels
    records = []
    for name in names:
        full, full_all = _median_time(lambda n=name: analyze(n), args.repeats)
        bare, bare_all = _median_time(lambda n=name: analyze(n, find_input_range=False), args.repeats)
        info = convzoo.model_info(name)
        records.append({"name": name, "input_size": list(info.input_size), "analyze_s": round(full, 4),
                        "trace_s": round(bare, 4), "analyze_runs_s": [round(t, 4) for t in full_all],
                        "trace_runs_s": [round(t, 4) for t in bare_all]})
        print(f"{name:32s} analyze {full:6.3f} s   without input-size search {bare:6.3f} s", flush=True)
    env["load_average_end"] = list(os.getloadavg())
    summary = {key: {"max_s": max(r[key] for r in records), "median_s": statistics.median(r[key] for r in records),
                     "slowest": max(records, key=lambda r: r[key])["name"],
                     "over_1s": [r["name"] for r in records if r[key] > 1.0]}
               for key in ("analyze_s", "trace_s")}
    result = {"what": "convzoo.analyze(name) at the paper input, device='meta', median of repeats (seconds)",
              "command": f"python benchmarks/analyze_speed.py --pattern '{args.pattern}' --repeats {args.repeats}",
              "env": env, "summary": summary, "records": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(args.out)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
