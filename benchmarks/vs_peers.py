"""convzoo against torchvision and timm: every architecture they share, side by side, in one run.

The networks are the registered names whose `ModelInfo.peers` names a torchvision or timm twin (the data that
`load_peer_weights`, `convzoo bench --vs` and tests/test_models_peers.py rely on), so the list cannot drift
from the registry. For each network and each of its peers the script calls `convzoo.bench.compare` once per
configuration; compare builds the peer's network with the same settings and times the two interleaved, in
alternating blocks of steps, so every ratio (convzoo img/s ÷ peer img/s) is taken at identical settings:

    train/fp32   train/bf16-cl   train/bf16-cl/compiled     a training step (SGD) at --batch
    infer/fp32   infer/bf16-cl   infer/bf16-cl/compiled     the eval forward at --batch
    b1/fp32      b1/fp32/compiled                           batch-1 latency; on cuda also
    b1/fp32/cuda-graphs          b1/bf16-cl/cuda-graphs     (torch.compile mode="reduce-overhead")
    large/bf16-cl                large/bf16-cl/compiled     the eval forward at --infer-batch

bf16-cl is bf16 autocast with the network and its input in channels_last; compiled is torch.compile, whose
compile time stays in the warm-up (the record's compile_s), never in the step times. Dynamo is reset before
every compiled row, so each row traces its own two networks afresh and no recompile limit is reached
(Inductor's kernel caches stay: the peer, compiled second, reuses the kernels the twins share).

The issue's goals, computed per network and peer from the rows of the same run:
- training: convzoo's fastest training configuration ≥ 1.25 × the peer's train/bf16-cl (eager) img/s;
- identical settings: no row's ratio below 0.97 (on the CPU too);
- batch-1 latency (stated for a GPU): convzoo's best b1 latency ≤ ¼ of the peer's b1/fp32 (eager) latency.
A missed goal says by how much; with --profile, torch.profiler then shows where the step's time goes on
each side (the ops with the most self time), which is what holds the goal back.

Writes <out>.json (rewritten atomically after every row, so a killed run keeps what it finished) and
<out>.md (a table per network, the goals, what was skipped), and <out>.png (a bar plot of the ratios)
after each network; <out> defaults to benchmarks/results/vs_peers_<device>. --budget-s stops cleanly before
the next row once the time is spent. Without --only the networks run one family at a time, round-robin,
cheapest first, so a short budget covers every family before it covers a second member of one.

    python benchmarks/vs_peers.py --device cpu --only resnet18 --steps 2 --warmup 1 --batch 2 --input-size 64 \
        --no-compile                                                         # a smoke run of a minute or two
    python benchmarks/vs_peers.py --device cuda --one-peer --modes goals --budget-s 216 --profile --resume
                                                                             # benchmarks/gpu_suite.sh's first pass
    python benchmarks/vs_peers.py --plan                                     # the rows, without running them
benchmarks/README.md has the flags, the CPU command that fits ≈ 15–20 minutes on 2 cores, and the GPU suite.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import resource
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import convzoo
from convzoo.bench import compare
from convzoo.bench.run import build_ours, build_peer, make_inputs, make_workload, resolve
from convzoo.counting import count_macs
from convzoo.errors import UserError
from convzoo.fsio import write_bytes, write_json, write_text
from convzoo.inputs import input_range
from convzoo.meta import build_on_meta
from convzoo.peers import SOURCES
from convzoo.registry import create_model
from convzoo.render import fmt_shape, md_table
from convzoo.training.rundir import environment
from convzoo.training.setup import resolve_device

RESULTS = Path(__file__).parent / "results"
IDENTICAL_MIN = 0.97  # the floor for convzoo ÷ peer at identical settings
TRAIN_GOAL = 1.25  # convzoo's fastest training ÷ the peer's eager bf16 + channels_last
LATENCY_GOAL = 0.25  # convzoo's best batch-1 latency ÷ the peer's eager fp32 one (on a GPU)
GROUPS = ("train", "infer", "latency", "throughput")
# Per device: what a run uses when the flag is not given. The CPU's are sized for a 2-core machine; the
# input side there is half the paper's (raised to the smallest size a network takes), and the results say so.
DEFAULTS = {"cpu": {"batch": 8, "infer_batch": 32, "steps": 10, "warmup": 2, "input_size": 0.5},
            "cuda": {"batch": 128, "infer_batch": 512, "steps": 30, "warmup": 5, "input_size": "paper"}}


@dataclass(frozen=True)
class Config:
    """One configuration both networks of a row are timed in."""

    name: str  # "train/bf16-cl/compiled"
    group: str  # one of GROUPS: what the --modes flag selects
    mode: str  # "train" or "infer" (convzoo.bench's mode)
    batch: str  # "batch", "one" or "large": --batch, 1 or --infer-batch
    dtype: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False  # torch.compile(mode="reduce-overhead"); only on cuda

    @property
    def compiled(self) -> bool:
        return self.compile or self.cuda_graphs

    def settings(self, args: argparse.Namespace, side: int) -> dict[str, Any]:
        """The keyword settings of `convzoo.bench.compare` for this configuration."""
        batch = {"batch": args.batch, "one": 1, "large": args.infer_batch}[self.batch]
        return {"mode": self.mode, "batch": batch, "input_size": side, "dtype": self.dtype,
                "channels_last": self.channels_last, "compile": self.compile, "cuda_graphs": self.cuda_graphs,
                "device": args.device, "steps": args.steps, "warmup": args.warmup}


def _configs() -> tuple[Config, ...]:
    rows = []
    for group, mode, batch in (("train", "train", "batch"), ("infer", "infer", "batch")):
        rows += [Config(f"{group}/fp32", group, mode, batch),
                 Config(f"{group}/bf16-cl", group, mode, batch, "bf16", True),
                 Config(f"{group}/bf16-cl/compiled", group, mode, batch, "bf16", True, compile=True)]
    rows += [Config("b1/fp32", "latency", "infer", "one"),
             Config("b1/fp32/compiled", "latency", "infer", "one", compile=True),
             Config("b1/fp32/cuda-graphs", "latency", "infer", "one", cuda_graphs=True),
             Config("b1/bf16-cl/cuda-graphs", "latency", "infer", "one", "bf16", True, cuda_graphs=True),
             Config("large/bf16-cl", "throughput", "infer", "large", "bf16", True),
             Config("large/bf16-cl/compiled", "throughput", "infer", "large", "bf16", True, compile=True)]
    return tuple(rows)


CONFIGS = _configs()
PEER_TRAIN = "train/bf16-cl"  # the peer's figure the training goal divides by
PEER_LATENCY = "b1/fp32"  # the peer's figure the latency goal divides by
# --modes goals: the rows the goals divide, convzoo's likely fastest beside each baseline (a short GPU lease)
GOAL_CONFIGS = {"cpu": (PEER_TRAIN, "train/bf16-cl/compiled", PEER_LATENCY, "b1/fp32/compiled"),
                "cuda": (PEER_TRAIN, "train/bf16-cl/compiled", PEER_LATENCY, "b1/fp32/cuda-graphs")}


class Stopped(BaseException):
    """SIGTERM (e.g. from `timeout`): stop where we are; the rows finished so far are already on disk."""


# --- what to run -----------------------------------------------------------------------------------------

def shared_networks(sources: Sequence[str]) -> list[str]:
    """Registered names with a twin in one of `sources`, read from the registry's `ModelInfo.peers`."""
    return [n for n in convzoo.list_models() if any(s in convzoo.model_info(n).peers for s in sources)]


def family_round_robin(names: Sequence[str], sides: dict[str, int]) -> list[str]:
    """`names` one family at a time: every family's cheapest network (MACs at its benchmark input) first,
    then every family's second, ...; families in the registry's order (oldest paper first)."""
    macs = {n: count_macs(n, (3, sides[n], sides[n])) for n in names}
    families = convzoo.list_families()
    by_family: dict[str, list[str]] = {}
    for n in sorted(names, key=lambda n: (macs[n], n)):
        by_family.setdefault(convzoo.model_info(n).family, []).append(n)
    rank = {n: (i, families.index(f)) for f, members in by_family.items() for i, n in enumerate(members)}
    return sorted(names, key=lambda n: rank[n])


def parse_size(text: str) -> str | int | float:
    """'paper', a side S ('112'), or a fraction of the paper's side ('0.5x')."""
    t = text.strip().lower()
    if t == "paper":
        return t
    try:
        value: int | float = float(t[:-1]) if t.endswith(("x", "×")) else int(t)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an input size; write a side S (112), a fraction of "
                                         "the paper's side (0.5x) or 'paper'")
    return value


def input_side(name: str, rule: str | int | float) -> tuple[int, str | None]:
    """The input side `name` runs at under `rule`, and a note when the network cannot take the size asked
    for (VGG's fixed classifier takes only 224-255): then it runs at the nearest size it takes."""
    paper = convzoo.model_info(name).input_size[1]
    want = paper if rule == "paper" else rule if isinstance(rule, int) else max(1, round(paper * rule))
    legal = input_range(build_on_meta(create_model, name=name), paper, inplace=True)
    if legal is None:
        return want, None
    lo, hi = legal
    side = min(max(want, lo), hi if hi is not None else want)
    if side == want:
        return side, None
    return side, f"{name} takes square inputs of {lo}–{hi or '∞'} only, so it runs at {side} instead of {want}"


def peers_of(name: str, sources: Sequence[str], one: bool) -> list[tuple[str, str]]:
    """(source, peer name) pairs of `name` among `sources`, in the order given; the first alone with `one`."""
    peers = convzoo.model_info(name).peers
    found = [(s, peers[s]) for s in sources if s in peers]
    return found[:1] if one else found


def select_configs(modes: str | None, device: str, compile_ok: bool) -> list[Config]:
    """The configurations --modes names (groups, 'goals' or configuration names) that the device can run."""
    usable = [c for c in CONFIGS if (device == "cuda" or not c.cuda_graphs) and (compile_ok or not c.compiled)]
    if not modes:
        return usable
    wanted = [w.strip() for w in modes.split(",") if w.strip()]
    if "goals" in wanted:
        wanted += GOAL_CONFIGS[device]
    known = {*GROUPS, "goals", *(c.name for c in CONFIGS)}
    bad = [w for w in wanted if w not in known]
    if bad:
        raise UserError(f"--modes {bad[0]!r} is neither a group ({', '.join(GROUPS)}, goals) nor a configuration "
                        f"({', '.join(c.name for c in CONFIGS)}); give a comma-separated list of those")
    chosen = [c for c in usable if c.group in wanted or c.name in wanted]
    if not chosen:
        raise UserError(f"--modes {modes!r} leaves no configuration to run on {device}"
                        + (" with --no-compile" if not compile_ok else "") + "; choose others")
    return chosen


def plan(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[Config]]:
    """The networks (with their peers, input side and any note) and the configurations to run."""
    sources = [s.strip() for s in args.vs.split(",") if s.strip()]
    bad = [s for s in sources if s not in SOURCES]
    if bad or not sources:
        raise UserError(f"--vs {args.vs!r} is not a list of peer libraries; choose from {', '.join(SOURCES)}")
    shared = shared_networks(sources)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        for n in names:
            if n not in shared:
                convzoo.model_info(n)  # an unknown name: the registry's message, with suggestions
                raise UserError(f"--only {n}: {n} has no {' or '.join(sources)} twin, so there is nothing to "
                                f"compare; the shared networks are: {', '.join(shared)}")
    sides = {n: input_side(n, args.input_size) for n in (names if args.only else shared)}
    order = names if args.only else family_round_robin(shared, {n: s for n, (s, _) in sides.items()})
    networks = [{"network": n, "peers": peers_of(n, sources, args.one_peer), "input_side": sides[n][0],
                 "input_note": sides[n][1]} for n in order]
    return networks, select_configs(args.modes, args.device, not args.no_compile)


# --- running ---------------------------------------------------------------------------------------------

SIDE_KEYS = ("name", "source", "img_per_s", "median_step_ms", "p10_step_ms", "p25_step_ms", "p75_step_ms",
             "p90_step_ms", "mean_step_ms", "sd_step_ms", "peak_mem_mb", "compile_s", "first_step_s", "warmup_s",
             "macs_per_image", "macs_complete", "tflops", "dtype_native")


def run_row(net: dict[str, Any], source: str, cfg: Config, args: argparse.Namespace) -> dict[str, Any]:
    """One `compare` call: both sides' figures (the record keys convzoo.bench writes) and the ratio."""
    settings = cfg.settings(args, net["input_side"])
    if cfg.compiled:
        torch._dynamo.reset()  # a fresh compile per row: no recompile limit, no graph of an earlier network
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    try:
        out = compare(net["network"], source, **settings)
    finally:
        if cfg.compiled:
            torch._dynamo.reset()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    first = out["ours"]
    return {"network": net["network"], "peer_source": source, "peer_name": out["peer"]["name"],
            "config": cfg.name, "group": cfg.group, "mode": cfg.mode, "batch": settings["batch"],
            "input_size": first["input_size"], "dtype": cfg.dtype, "memory_format": first["memory_format"],
            "compile": first["compile"], "compile_mode": first["compile_mode"], "cuda_graphs": cfg.cuda_graphs,
            "steps": first["steps"], "warmup": first["warmup"], "block_steps": first["block_steps"],
            "ours": {k: first[k] for k in SIDE_KEYS}, "peer": {k: out["peer"][k] for k in SIDE_KEYS},
            "ratio": out["ratio"], "identical_settings": True, "below_min": out["ratio"] < IDENTICAL_MIN,
            "wall_s": time.perf_counter() - t0,
            "cpu_s": (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime),
            "load_1min_after": os.getloadavg()[0],
            "measured": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "device": first["device"],
            "_record": first}


class Suite:
    """The run's state: settings, environment, rows, skips; `save()` writes JSON and markdown atomically."""

    def __init__(self, args: argparse.Namespace, networks: list[dict[str, Any]], configs: list[Config],
                 argv: Sequence[str], started: float) -> None:
        self.args, self.networks, self.configs = args, networks, configs
        self.paths = {ext: args.out.with_name(args.out.name + ext) for ext in (".json", ".md", ".png")}
        self.t0 = started  # perf_counter at the script's start: --budget-s counts the planning too
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.profiles: list[dict[str, Any]] = []
        self.stopped: str | None = None
        self.finished = False
        self.result: dict[str, Any] = {
            "what": "convzoo against its torchvision/timm twins: convzoo.bench.compare per (network, peer, "
                    "configuration), both networks timed interleaved at identical settings; ratio = convzoo "
                    "img/s ÷ peer img/s",
            "command": "python benchmarks/vs_peers.py " + shlex.join(argv),
            "settings": self._settings(), "environment": self._environment(), "previous_sessions": []}
        if args.resume:
            self._resume()

    def _resume(self) -> None:
        """Take over the rows an earlier run wrote to the same --out, which are then not run again. They must
        have been measured as this run would measure them (device model, batches, steps, warm-up, each
        network's input side): a mismatch is refused rather than mixed in or thrown away. Earlier skips are
        run again."""
        path = self.paths[".json"]
        if not path.exists():
            return
        try:
            old = json.loads(path.read_text())
            rows, env, was = old["rows"], old["environment"], old["settings"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"--resume: {str(path)!r} is not a results file of vs_peers.py ({type(err).__name__}); "
                            "remove it or give another --out") from None
        now = self.result["settings"]
        here = self.result["environment"]["device_name"]
        diffs = [f"--{k.replace('_', '-')} {was.get(k)} (now {now[k]})"
                 for k in ("device", "batch", "infer_batch", "steps", "warmup") if was.get(k) != now[k]]
        diffs += [f"{n} at input {was['input_sides'][n]} (now {side})" for n, side in now["input_sides"].items()
                  if was.get("input_sides", {}).get(n, side) != side]
        diffs += [f"the device {env.get('device_name')!r} (now {here!r})"] if env.get("device_name") != here else []
        if diffs:
            raise UserError(f"--resume: {str(path)!r} was measured with {diffs[0]}; run with its settings, or "
                            "give another --out for these")
        self.rows = list(rows)
        self.result["settings"]["input_sides"] = {**was.get("input_sides", {}), **now["input_sides"]}
        self.result["previous_sessions"] = [*old.get("previous_sessions", []), {**env, "rows": len(rows)}]
        log(f"--resume: {len(rows)} rows taken over from {path}")

    def done(self, net: dict[str, Any], source: str, cfg: Config) -> bool:
        return any((r["network"], r["peer_source"], r["config"]) == (net["network"], source, cfg.name)
                   for r in self.rows)

    def _settings(self) -> dict[str, Any]:
        a = self.args
        notes = [n["input_note"] for n in self.networks if n["input_note"]]
        rule = a.input_size
        size_rule = ("the paper's input side (224; 227 for SqueezeNet; 299 for the Inception family and "
                     "Xception)" if rule == "paper" else f"{rule} for every network" if isinstance(rule, int)
                     else f"{rule}× the paper's input side (a reduced size: figures at the papers' inputs differ)")
        return {"device": a.device, "batch": a.batch, "infer_batch": a.infer_batch, "latency_batch": 1,
                "steps": a.steps, "warmup": a.warmup, "input_size_rule": size_rule, "input_size_notes": notes,
                "input_sides": {n["network"]: n["input_side"] for n in self.networks}, "threads": a.threads,
                "vs": a.vs, "one_peer": a.one_peer, "compile": not a.no_compile, "budget_s": a.budget_s,
                "profile": a.profile, "configs": [c.name for c in self.configs],
                "networks": [n["network"] for n in self.networks],
                "goals": {"identical_settings_min_ratio": IDENTICAL_MIN, "train_vs_peer_eager_bf16_cl": TRAIN_GOAL,
                          "b1_latency_vs_peer_eager_fp32_max": LATENCY_GOAL}}

    def _environment(self) -> dict[str, Any]:
        device = torch.device(self.args.device)
        env = environment(device, seed=0)
        try:
            import timm

            env["timm"] = timm.__version__
        except ImportError:
            env["timm"] = None
        env["device_name"] = env.get("gpu") or env["cpu"]
        env["cpus_usable"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        env["date"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        env["load_average_start"] = list(os.getloadavg())
        return env

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def add(self, row: dict[str, Any]) -> None:
        record = row.pop("_record")
        if not self.rows:  # what only a timed record knows: the GPU driver, cuDNN's autotuner
            self.result["environment"].update(driver=record.get("driver"), peak_mem_kind=record["peak_mem_kind"],
                                              flop_convention=record["flop_convention"], timer=record["timer"])
        self.rows.append(row)
        self.save()

    def save(self) -> None:
        self.result["environment"]["load_average_end"] = list(os.getloadavg())
        self.result.update(elapsed_s=self.elapsed(), finished=self.finished, stopped=self.stopped,
                           rows=self.rows, skipped=self.skipped, goals=goals(self.rows, self.args.device),
                           profiles=self.profiles)
        write_json(self.paths[".json"], self.result)
        write_text(self.paths[".md"], markdown(self.result))

    def plot(self) -> None:
        if self.rows:
            write_bytes(self.paths[".png"], plot_png(self.rows, self.result))


def rows_to_run(networks: Sequence[dict[str, Any]], configs: Sequence[Config],
                ) -> Iterator[tuple[dict[str, Any], str, Config]]:
    """Network-major: every configuration of a (network, peer) pair before the next pair, the eager ones
    first (a budget that ends inside a pair then leaves out its costly compiled rows, not its baselines)."""
    ordered = sorted(configs, key=lambda c: c.compiled)
    for net in networks:
        for source, _ in net["peers"]:
            for cfg in ordered:
                yield net, source, cfg


def run_all(suite: Suite) -> None:
    """Every row in order, saving after each; stops before a row once --budget-s is spent."""
    todo = [row for row in rows_to_run(suite.networks, suite.configs) if not suite.done(*row)]
    last_net = None
    for i, (net, source, cfg) in enumerate(todo):
        if last_net is not None and net is not last_net:
            suite.plot()
        last_net = net
        if suite.args.budget_s is not None and suite.elapsed() >= suite.args.budget_s:
            left = [f"{n['network']} vs {s}: {c.name}" for n, s, c in todo[i:]]
            suite.stopped = (f"the budget of {suite.args.budget_s:g} s was spent after {suite.elapsed():.0f} s; "
                             f"{len(left)} rows not run: " + "; ".join(left))
            log(f"budget spent: {len(left)} rows not run")
            return
        label = f"[{i + 1}/{len(todo)}] {net['network']} vs {source} {cfg.name}"
        try:
            row = run_row(net, source, cfg, suite.args)
        except Exception as err:
            # one row failing (out of memory, a compiler error in one network) must not cost the others
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            suite.skipped.append({"network": net["network"], "peer_source": source, "config": cfg.name,
                                  "error": f"{type(err).__name__}: {message}"})
            log(f"{label}: skipped ({type(err).__name__}: {message})")
            if not isinstance(err, UserError):
                traceback.print_exc(file=sys.stderr)
            suite.save()
            continue
        suite.add(row)
        log(f"{label}: convzoo {row['ours']['img_per_s']:,.1f} img/s, {row['peer_name']} "
            f"{row['peer']['img_per_s']:,.1f} img/s, ratio {row['ratio']:.3f} ({row['wall_s']:.1f} s)")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- goals -----------------------------------------------------------------------------------------------

def _short_by(value: float, goal: float, higher: bool) -> str:
    """How far `value` is from `goal`, in the figure's own terms."""
    if higher:
        return f"{value:.3f}× against ≥ {goal:g}×: convzoo needs {100 * (goal / value - 1):.0f}% more img/s"
    return f"{value:.3f}× against ≤ {goal:g}×: convzoo's latency must fall by {100 * (1 - goal / value):.0f}%"


def goals(rows: Sequence[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    """Per (network, peer): the training, identical-settings and latency goals, with how far each is off."""
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        pairs.setdefault((r["network"], r["peer_source"]), []).append(r)
    out = []
    for (network, source), rs in pairs.items():
        by = {r["config"]: r for r in rs}
        g: dict[str, Any] = {"network": network, "peer_source": source, "peer_name": rs[0]["peer_name"]}
        worst = min(rs, key=lambda r: r["ratio"])
        g.update(min_identical_ratio=worst["ratio"], min_identical_config=worst["config"],
                 identical_met=worst["ratio"] >= IDENTICAL_MIN,
                 identical_miss=None if worst["ratio"] >= IDENTICAL_MIN else
                 f"{worst['config']}: " + _short_by(worst["ratio"], IDENTICAL_MIN, True))
        train = [r for r in rs if r["group"] == "train"]
        g.update(_train_goal(train, by.get(PEER_TRAIN)))
        latency = [r for r in rs if r["group"] == "latency"]
        g.update(_latency_goal(latency, by.get(PEER_LATENCY), device))
        out.append(g)
    return out


def _train_goal(train: list[dict[str, Any]], peer_row: dict[str, Any] | None) -> dict[str, Any]:
    if not train or peer_row is None:
        return {"train_ratio": None, "train_met": None, "train_miss": f"not measured (needs {PEER_TRAIN})"}
    best = max(train, key=lambda r: r["ours"]["img_per_s"])
    ratio = best["ours"]["img_per_s"] / peer_row["peer"]["img_per_s"]
    return {"train_best_config": best["config"], "train_best_img_per_s": best["ours"]["img_per_s"],
            "train_peer_img_per_s": peer_row["peer"]["img_per_s"], "train_ratio": ratio,
            "train_met": ratio >= TRAIN_GOAL, "train_miss": None if ratio >= TRAIN_GOAL else
            f"{best['config']} vs the peer's {PEER_TRAIN}: " + _short_by(ratio, TRAIN_GOAL, True)}


def _latency_goal(latency: list[dict[str, Any]], peer_row: dict[str, Any] | None, device: str) -> dict[str, Any]:
    if not latency or peer_row is None:
        return {"latency_ratio": None, "latency_met": None, "latency_miss": f"not measured (needs {PEER_LATENCY})"}
    best = min(latency, key=lambda r: r["ours"]["median_step_ms"])
    ratio = best["ours"]["median_step_ms"] / peer_row["peer"]["median_step_ms"]
    met = ratio <= LATENCY_GOAL
    return {"latency_best_config": best["config"], "latency_best_ms": best["ours"]["median_step_ms"],
            "latency_peer_ms": peer_row["peer"]["median_step_ms"], "latency_ratio": ratio,
            "latency_applies": device == "cuda", "latency_met": met, "latency_miss": None if met else
            f"{best['config']} vs the peer's {PEER_LATENCY}: " + _short_by(ratio, LATENCY_GOAL, False)
            + ("" if device == "cuda" else " (the goal is stated for a GPU)")}


# --- profiling the misses --------------------------------------------------------------------------------

def _profile_side(side: Any, cfg: Any, device: torch.device, steps: int) -> dict[str, Any]:
    """Where one side's step spends its time: the ops with the most self time (device time on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    work = make_workload(side, cfg.mode, cfg, device, make_inputs(side, cfg, device))
    work.enter()
    for _ in range(cfg.warmup):
        work.step()
    if cuda:
        torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]) as prof:
        for _ in range(steps):
            work.step()
        if cuda:
            torch.cuda.synchronize(device)

    def self_us(e: Any) -> float:
        if not cuda:
            return e.self_cpu_time_total
        return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)

    events = [e for e in prof.key_averages() if self_us(e) > 0]
    total = sum(self_us(e) for e in events) or 1.0
    top = sorted(events, key=self_us, reverse=True)[:10]
    return {"side": f"{side.source} {side.name}", "clock": "GPU self time" if cuda else "CPU self time",
            "self_ms_per_step": total / 1000 / steps,
            "top": [{"op": e.key, "self_ms_per_step": self_us(e) / 1000 / steps, "share": self_us(e) / total,
                     "calls_per_step": e.count / steps} for e in top]}


def profile_pair(name: str, source: str, ours_cfg: Config, peer_cfg: Config, net: dict[str, Any],
                 args: argparse.Namespace, why: str) -> dict[str, Any]:
    """torch.profiler over a few steps of convzoo in `ours_cfg` and the peer in `peer_cfg`."""
    torch._dynamo.reset()
    sides = []
    try:
        for who, cfg in (("ours", ours_cfg), ("peer", peer_cfg)):
            settings, device = resolve(cfg.settings(args, net["input_side"]))
            ours = build_ours(name, settings)
            side = ours if who == "ours" else build_peer(ours, source, settings)
            sides.append(_profile_side(side, settings, device, args.profile_steps))
            del ours, side
            torch._dynamo.reset()
    finally:
        gc.collect()
    return {"network": name, "peer_source": source, "why": why, "ours_config": ours_cfg.name,
            "peer_config": peer_cfg.name, "steps": args.profile_steps, "ours": sides[0], "peer": sides[1]}


def profile_misses(suite: Suite) -> None:
    """Profile, for every missed goal, the configurations it compares (until --budget-s + --profile-s)."""
    by_name = {c.name: c for c in CONFIGS}
    for g in goals(suite.rows, suite.args.device):
        wanted = []
        if g["identical_met"] is False:
            wanted.append((g["min_identical_config"], g["min_identical_config"], g["identical_miss"]))
        if g["train_met"] is False:
            wanted.append((g["train_best_config"], PEER_TRAIN, g["train_miss"]))
        if g["latency_met"] is False and suite.args.device == "cuda":
            wanted.append((g["latency_best_config"], PEER_LATENCY, g["latency_miss"]))
        net = next((n for n in suite.networks if n["network"] == g["network"]), None)
        if net is None:  # a network whose rows --resume took over but that this run was not asked for
            continue
        for ours_cfg, peer_cfg, why in dict.fromkeys(wanted):
            if suite.args.budget_s is not None and suite.elapsed() >= suite.args.budget_s + suite.args.profile_s:
                suite.stopped = (suite.stopped or "") + " (profiles left out: budget spent)"
                return
            log(f"profiling {g['network']} ({ours_cfg}) vs {g['peer_source']} ({peer_cfg})")
            try:
                suite.profiles.append(profile_pair(g["network"], g["peer_source"], by_name[ours_cfg],
                                                   by_name[peer_cfg], net, suite.args, why))
            except (UserError, RuntimeError, torch.OutOfMemoryError) as err:
                log(f"profile skipped: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            suite.save()


# --- rendering -------------------------------------------------------------------------------------------

def _ms(side: dict[str, Any]) -> str:
    return f"{side['median_step_ms']:.2f} ({side['p10_step_ms']:.2f}–{side['p90_step_ms']:.2f})"


def _ratio_cell(value: float | None, met: bool | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}× {'✓' if met else '✗'}" if met is not None else f"{value:.3f}×"


def _header(result: dict[str, Any]) -> list[str]:
    env, s = result["environment"], result["settings"]
    device = f"{env['device_name']} ({s['device']}; {env['cpus_usable']} usable of {env['cpu_count']} CPU cores, " \
             f"{env['torch_threads']} torch threads)"
    state = ("finished" if result["finished"] else f"stopped: {result['stopped']}" if result["stopped"] else
             "in progress, or killed (the rows below are the ones that finished)")
    lines = [f"# convzoo against torchvision / timm on {s['device']}", "",
             f"Measured {env['date']} on {device}; torch {env['torch']}, torchvision {env['torchvision']}, "
             f"timm {env['timm']}, convzoo {env['convzoo']} at {env['git_revision']}"
             + (f", CUDA {env.get('cuda')}, driver {env.get('driver')}" if s["device"] == "cuda" else "") + ".",
             f"Load average {env['load_average_start'][0]:.2f} at the start, "
             f"{env['load_average_end'][0]:.2f} at the end (a busy machine slows both sides, not always alike).",
             f"Command: `{result['command']}` ({result['elapsed_s']:.0f} s; {state}).",
             *([f"Rows kept from {len(result['previous_sessions'])} earlier session(s) (--resume): "
                + ", ".join(f"{e['date']} ({e['rows']} rows)" for e in result["previous_sessions"])
                + "; each row's `measured` in the JSON says when."] if result["previous_sessions"] else []), "",
             f"Settings: batch {s['batch']} (train, infer), {s['infer_batch']} (large), 1 (b1); {s['steps']} timed "
             f"steps after {s['warmup']} warm-up steps per network and row; input: {s['input_size_rule']}.",
             *(f"- {n}" for n in s["input_size_notes"]), "",
             "Each row is one `convzoo.bench.compare` call: both networks built with the same settings and timed "
             "interleaved in blocks of steps. ratio = convzoo img/s ÷ peer img/s (above 1: convzoo is faster); "
             f"⚠ marks a ratio below {IDENTICAL_MIN} at identical settings. ms: median step (p10–p90). "
             "bf16-cl: bf16 autocast + channels_last; compiled: torch.compile (compile time excluded from the steps). "
             "compile s is each side's first step: convzoo's side compiles first and pays Inductor's start-up, and "
             "kernels that both networks share are compiled once, so the peer's figure is usually the smaller; "
             "it is no comparison of compile times.", ""]
    return lines


def _goal_lines(result: dict[str, Any]) -> list[str]:
    gs = result["goals"]
    if not gs:
        return []
    lines = ["## Goals", "",
             f"train: convzoo's fastest training row ÷ the peer's eager {PEER_TRAIN} (goal ≥ {TRAIN_GOAL}×); "
             f"identical: the lowest ratio at identical settings (goal ≥ {IDENTICAL_MIN}); b1 latency: convzoo's best "
             f"batch-1 latency ÷ the peer's eager {PEER_LATENCY} (goal ≤ {LATENCY_GOAL}, stated for a GPU).", ""]
    lines += md_table(
        ["network", "peer", "train: best convzoo row", "img/s", "peer eager bf16-cl img/s", "train goal",
         "identical: lowest (row)", "b1: best convzoo row", "ms", "peer eager fp32 ms", "latency"],
        [[g["network"], f"{g['peer_source']} {g['peer_name']}", g.get("train_best_config", "–"),
          f"{g['train_best_img_per_s']:,.1f}" if g["train_ratio"] is not None else "–",
          f"{g['train_peer_img_per_s']:,.1f}" if g["train_ratio"] is not None else "–",
          _ratio_cell(g["train_ratio"], g["train_met"]),
          f"{_ratio_cell(g['min_identical_ratio'], g['identical_met'])} ({g['min_identical_config']})",
          g.get("latency_best_config", "–"),
          f"{g['latency_best_ms']:.2f}" if g["latency_ratio"] is not None else "–",
          f"{g['latency_peer_ms']:.2f}" if g["latency_ratio"] is not None else "–",
          _ratio_cell(g["latency_ratio"], g["latency_met"] if g.get("latency_applies") else None)]
         for g in gs], [False, False, False, True, True, True, True, False, True, True, True])
    misses = [(g, k) for g in gs for k in ("train_miss", "identical_miss", "latency_miss") if g.get(k)]
    if misses:
        lines += ["", "Missed or not measured:", ""]
        lines += [f"- {g['network']} vs {g['peer_source']}: {g[k]}" for g, k in misses]
    return [*lines, ""]


def _network_lines(result: dict[str, Any]) -> list[str]:
    lines = ["## By network", ""]
    seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    order = {c.name: i for i, c in enumerate(CONFIGS)}
    for r in sorted(result["rows"], key=lambda r: order.get(r["config"], len(order))):
        seen.setdefault((r["network"], r["peer_source"]), []).append(r)
    for (network, source), rs in seen.items():
        lines += [f"### {network} vs {source} `{rs[0]['peer_name']}`, input {fmt_shape(rs[0]['input_size'])}", ""]
        lines += md_table(
            ["config", "batch", "convzoo img/s", "peer img/s", "ratio", f"< {IDENTICAL_MIN}", "convzoo ms",
             "peer ms", "convzoo MiB", "peer MiB", "compile s (convzoo / peer)"],
            [[r["config"], r["batch"], f"{r['ours']['img_per_s']:,.1f}", f"{r['peer']['img_per_s']:,.1f}",
              f"{r['ratio']:.3f}", "⚠" if r["below_min"] else "", _ms(r["ours"]), _ms(r["peer"]),
              f"{r['ours']['peak_mem_mb']:.0f}", f"{r['peer']['peak_mem_mb']:.0f}",
              f"{r['ours']['compile_s']:.1f} / {r['peer']['compile_s']:.1f}" if r["compile"] else ""] for r in rs],
            [False] + [True] * 4 + [False] + [True] * 5)
        lines.append("")
    return lines


def _profile_lines(result: dict[str, Any]) -> list[str]:
    if not result["profiles"]:
        return []
    lines = ["## Where the time goes (torch.profiler, per step)", ""]
    for p in result["profiles"]:
        lines += [f"### {p['network']} ({p['ours_config']}) vs {p['peer_source']} ({p['peer_config']})", "",
                  f"Why: {p['why']}.", ""]
        for who in ("ours", "peer"):
            s = p[who]
            lines += [f"{s['side']}: {s['self_ms_per_step']:.2f} ms {s['clock']} per step, its top ops:", ""]
            lines += md_table(["op", "self ms/step", "share", "calls/step"],
                              [[t["op"], f"{t['self_ms_per_step']:.3f}", f"{100 * t['share']:.1f}%",
                                f"{t['calls_per_step']:g}"] for t in s["top"]], [False, True, True, True])
            lines.append("")
    return lines


def markdown(result: dict[str, Any]) -> str:
    lines = _header(result) + _goal_lines(result) + _network_lines(result) + _profile_lines(result)
    if result["skipped"]:
        lines += ["## Skipped rows", ""] + [f"- {s['network']} vs {s['peer_source']} {s['config']}: {s['error']}"
                                            for s in result["skipped"]] + [""]
    if result["stopped"]:
        lines += ["## Stopped", "", result["stopped"], ""]
    return "\n".join(lines)


def plot_png(rows: Sequence[dict[str, Any]], result: dict[str, Any]) -> bytes:
    """One panel per group of configurations: a bar per (network, peer) and configuration, the ratio."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    pairs = list(dict.fromkeys((r["network"], r["peer_source"]) for r in rows))
    fig, axes = plt.subplots(len(groups), 1, figsize=(max(8.0, 0.9 * len(pairs) + 2), 3.2 * len(groups)),
                             squeeze=False)
    for ax, group in zip(axes[:, 0], groups):
        names = list(dict.fromkeys(r["config"] for r in rows if r["group"] == group))
        width = 0.8 / len(names)
        for k, cfg in enumerate(names):
            ratio = {(r["network"], r["peer_source"]): r["ratio"] for r in rows if r["config"] == cfg}
            xs = [i + (k - (len(names) - 1) / 2) * width for i, p in enumerate(pairs) if p in ratio]
            ax.bar(xs, [ratio[p] for p in pairs if p in ratio], width, label=cfg)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(IDENTICAL_MIN, color="red", lw=0.8, ls="--", label=f"{IDENTICAL_MIN}")
        ax.set_xticks(range(len(pairs)), [f"{n}\nvs {s}" for n, s in pairs], fontsize=7, rotation=45, ha="right")
        ax.set_ylabel("convzoo ÷ peer img/s")
        ax.set_title(f"{group}", fontsize=9, loc="left")
        ax.set_ylim(0, max(1.1, *(r["ratio"] for r in rows if r["group"] == group)) * 1.08)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"convzoo against its twins, same settings, interleaved ({result['environment']['device_name']}, "
                 f"{result['settings']['device']})", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


# --- command line ----------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vs_peers.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--only", metavar="NAME,...", help="these shared networks, in this order (default: all)")
    p.add_argument("--vs", default=",".join(SOURCES), metavar="LIB,...",
                   help=f"peer libraries, in order of preference (default {','.join(SOURCES)})")
    p.add_argument("--one-peer", action="store_true", help="each network against its first peer in --vs only")
    p.add_argument("--modes", metavar="GROUP|CONFIG,...",
                   help=f"groups ({', '.join(GROUPS)}; goals: the rows the goals divide) or configurations to run "
                        "(default: all)")
    p.add_argument("--batch", type=int, help="train/infer batch (default: cpu 8, cuda 128)")
    p.add_argument("--infer-batch", type=int, help="large-batch inference batch (default: cpu 32, cuda 512)")
    p.add_argument("--steps", type=int, help="timed steps per network and row (default: cpu 10, cuda 30)")
    p.add_argument("--warmup", type=int, help="untimed steps first, compile included (default: cpu 2, cuda 5)")
    p.add_argument("--input-size", type=parse_size, metavar="S|Fx|paper",
                   help="input side: S, a fraction of the paper's (0.5x) or 'paper' (default: cpu 0.5x, cuda paper)")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile and CUDA-graph rows")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--budget-s", type=float, metavar="S", help="stop before the next row once S seconds are spent")
    p.add_argument("--profile", action="store_true", help="profile the rows behind every missed goal at the end")
    p.add_argument("--profile-steps", type=int, default=3, help="profiled steps per side (default 3)")
    p.add_argument("--profile-s", type=float, default=120.0, metavar="S",
                   help="seconds the profiles may take after --budget-s (default 120)")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows an earlier run wrote to --out with the same settings; run only the others")
    p.add_argument("--plan", action="store_true", help="print the rows that would run, and stop")
    p.add_argument("--out", type=Path, metavar="PATH",
                   help="results PATH.json/.md/.png (default benchmarks/results/vs_peers_<device>)")
    args = p.parse_args(argv)
    for key, value in DEFAULTS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = RESULTS / f"vs_peers_{args.device}"
    elif args.out.suffix == ".json":
        args.out = args.out.with_suffix("")
    for flag in ("batch", "infer_batch", "steps", "warmup", "threads", "profile_steps"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be an integer ≥ 1, got {value}")
    if args.budget_s is not None and args.budget_s <= 0:
        raise UserError(f"--budget-s must be a positive number of seconds, got {args.budget_s:g}")
    return args


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Stopped(f"stopped by signal {signum} (e.g. `timeout`)")


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
        if not args.plan:  # --device cuda without a GPU: one line, before anything is built (a plan needs none)
            resolve_device(args.device)
        if args.threads:
            torch.set_num_threads(args.threads)
        networks, configs = plan(args)
        if args.plan:
            for net, source, cfg in rows_to_run(networks, configs):
                print(f"{net['network']:22s} vs {source:12s} {cfg.name:24s} input {net['input_side']}")
            return 0
        suite = Suite(args, networks, configs, argv, started)
    except UserError as err:
        print(f"vs_peers.py: error: {err}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    code = 0
    try:
        suite.save()
        run_all(suite)
        if args.profile:
            profile_misses(suite)
        suite.finished = suite.stopped is None
    except (Stopped, KeyboardInterrupt) as err:
        suite.stopped = str(err) or "interrupted"
        code = 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        suite.save()
        suite.plot()
    log(f"wrote {suite.paths['.json']}, .md" + (", .png" if suite.rows else "") + f" ({len(suite.rows)} rows, "
        f"{len(suite.skipped)} skipped, {suite.elapsed():.0f} s)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
