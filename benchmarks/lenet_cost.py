"""The paper LeNet-5 (`lenet5`) against `lenet5_modern` on a CPU: cost per image, and where the time goes.

Three networks, each step timed on its own and the three interleaved step by step (A, B, C, A, B, C, …), so
a machine that drifts (clocks, a neighbour's load) drifts for all of them alike:
- ``lenet5``: convzoo's paper network as it is now;
- ``lenet5_before``: the same network with the same weights in the formulation convzoo used before (C3 as a
  gather of the input maps, three grouped convolutions and a concatenation; S2/S4's scale as a multiply
  and an add; the scaled tanh as three autograd ops). It lives in this script only, as the baseline;
- ``lenet5_modern``: ReLU, max-pooling, dense C3, linear output.

Two workloads at batch 256 (the issue's), 1×32×32 (Fashion-MNIST padded by 2, the first training images when
convzoo finds the data, random numbers otherwise): ``train`` = forward, cross-entropy, backward and an SGD
step with momentum 0.9 (gradients set to None first, as convzoo's trainer does); ``infer`` = forward under
`torch.inference_mode`. Per workload: median and p10/p90 ms per step, img/s, and the ratio of each paper
network's cost per image to lenet5_modern's (the goal: lenet5 within 1.5× in training).

The per-module breakdown times each layer of the networks alone (forward, then backward of a fixed random
gradient, on the input that layer sees in a real forward), interleaved in the same way. Their sum is close to a
step but not equal to it: alone, each layer pays its own allocations and autograd set-up, and a step adds the
loss and the optimizer. An op census counts the aten ops one training step runs, and those big enough to be
split across threads (on a shared machine each of them waits for a descheduled thread). The script also checks
that lenet5 and lenet5_before compute the same logits and gradients from the same weights.

Usage: ``python benchmarks/lenet_cost.py [--steps 60] [--threads N] [--out DIR]``; writes
``DIR/lenet_cost.json`` and ``DIR/lenet_cost.md`` (default DIR: benchmarks/results), with the machine, the
versions, the torch threads, the git revision and the load average. ``--quick`` is a smoke run of a few
seconds (few steps) that writes to a temporary folder unless ``--out`` is given.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import convzoo
from convzoo.bench.timing import Workload, step_stats, time_workloads
from convzoo.fsio import write_json, write_text
from convzoo.models.lenet import MapScale, ScaledTanh, TableConv

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
NETWORKS = ("lenet5", "lenet5_before", "lenet5_modern")
GOAL = 1.5  # the issue's: lenet5's training cost per image within 1.5× lenet5_modern's


# --- the formulation convzoo used before (the baseline; same parameter names, so state dicts load) -----------

class BeforeScaledTanh(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class BeforeMapScale(nn.Module):
    def __init__(self, chans: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.coefficient = nn.Parameter(torch.ones(chans))
        self.bias = nn.Parameter(torch.zeros(chans))

    def forward(self, x: Tensor) -> Tensor:
        scale = (self.coefficient * self.window).view(1, -1, 1, 1)
        return x * scale + self.bias.view(1, -1, 1, 1)


class BeforeTableConv(nn.Module):
    """Per run of output maps reading the same number of inputs: gather, grouped convolution; then cat."""

    def __init__(self, table: tuple[tuple[int, ...], ...], kernel_size: int) -> None:
        super().__init__()
        self.register_buffer("inputs", torch.tensor([i for row in table for i in row]), persistent=False)
        self.runs = nn.ModuleDict()
        self.slices: list[tuple[int, int]] = []
        first, offset = 0, 0
        while first < len(table):
            width, last = len(table[first]), first
            while last + 1 < len(table) and len(table[last + 1]) == width:
                last += 1
            n = last - first + 1
            self.runs[f"maps{first}_{last}" if last > first else f"map{first}"] = nn.Conv2d(n * width, n, kernel_size,
                                                                                          groups=n)
            self.slices.append((offset, offset + n * width))
            first, offset = last + 1, offset + n * width

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([conv(x[:, self.inputs[a:b]]) for (a, b), conv in zip(self.slices, self.runs.values())], 1)


def before_network(net: nn.Module) -> nn.Module:
    """A fresh lenet5 with its paper modules swapped for the `Before*` ones, holding `net`'s weights."""
    old = convzoo.create_model("lenet5")
    for name, m in list(old.named_modules()):
        parent, _, leaf = name.rpartition(".")
        if isinstance(m, ScaledTanh):
            new: nn.Module = BeforeScaledTanh()
        elif isinstance(m, MapScale):
            new = BeforeMapScale(m.coefficient.numel(), m.window)
        elif isinstance(m, TableConv):
            new = BeforeTableConv(m.table, m.runs[next(iter(m.runs))].kernel_size[0])
        else:
            continue
        setattr(old.get_submodule(parent), leaf, new)
    old.load_state_dict(net.state_dict())
    return old


# --- inputs, networks, equivalence --------------------------------------------------------------------------

def batch(n: int, real: bool) -> tuple[Tensor, Tensor, str]:
    """n Fashion-MNIST training images (normalised, padded to 32×32) and labels; random ones when `real` is False
    or convzoo finds no data (the timings do not depend on the pixel values; reading the files takes seconds)."""
    try:
        if not real:
            raise convzoo.UserError("not asked for")
        ds = convzoo.data.load_dataset("fashion-mnist", download=False)
    except convzoo.UserError:
        g = torch.Generator().manual_seed(0)
        return torch.randn(n, 1, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g), "random normal"
    x = (ds.train.images[:n].float() / 255 - ds.mean[0]) / ds.std[0]
    background = (0 - ds.mean[0]) / ds.std[0]
    return F.pad(x, (2, 2, 2, 2), value=background), ds.train.labels[:n].long(), f"fashion-mnist ({ds.source})"


def networks() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    nets = {"lenet5": convzoo.create_model("lenet5"), "lenet5_modern": convzoo.create_model("lenet5_modern")}
    nets["lenet5_before"] = before_network(nets["lenet5"])
    return {k: nets[k] for k in NETWORKS}


def equivalence(new: nn.Module, old: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """Largest differences between the two formulations: logits, and each parameter's gradient (relative)."""
    grads = []
    for net in (new, old):
        net.train().zero_grad(set_to_none=True)
        logits = net(x)
        F.cross_entropy(logits, y).backward()
        grads.append((logits.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}))
    (a, ga), (b, gb) = grads
    rel = max(float((ga[n] - gb[n]).abs().max() / gb[n].abs().max().clamp_min(1e-30)) for n in ga)
    return {"max_abs_logit_diff": float((a - b).abs().max()), "max_logit": float(b.abs().max()),
            "max_rel_grad_diff": rel}


# --- whole steps --------------------------------------------------------------------------------------------

def workloads(nets: dict[str, nn.Module], x: Tensor, y: Tensor, mode: str) -> dict[str, Workload]:
    out = {}
    for name, net in nets.items():
        if mode == "infer":
            def step(net: nn.Module = net) -> None:
                with torch.inference_mode():
                    net(x)
            out[name] = Workload(step, net.eval)
            continue
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

        def train_step(net: nn.Module = net, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
        out[name] = Workload(train_step, net.train)
    return out


def step_records(nets: dict[str, nn.Module], x: Tensor, y: Tensor, steps: int, warmup: int) -> list[dict[str, Any]]:
    records = []
    for mode in ("train", "infer"):
        timed = time_workloads(workloads(nets, x, y, mode), steps=steps, warmup=warmup, block=1, device=x.device)
        for name, t in timed.items():
            s = step_stats(t.step_ms)
            records.append({"network": name, "mode": mode, "batch_size": len(x), "steps": len(t.step_ms),
                            "median_step_ms": round(s["median_step_ms"], 3), "p10_step_ms": round(s["p10_step_ms"], 3),
                            "p90_step_ms": round(s["p90_step_ms"], 3), "img_per_s": round(len(x) * 1000 /
                                                                                           s["median_step_ms"], 1)})
    return records


def ratios(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Cost per image of each paper network ÷ lenet5_modern's, per mode (median step times, same batch)."""
    ms = {(r["network"], r["mode"]): r["median_step_ms"] for r in records}
    return {mode: {f"{n}/lenet5_modern": round(ms[(n, mode)] / ms[("lenet5_modern", mode)], 3)
                   for n in ("lenet5_before", "lenet5")} for mode in ("train", "infer")}


# --- op census: why a busy machine hurts one network more than another --------------------------------------

class _OpCensus(TorchDispatchMode):
    """Counts the aten ops of a step that compute (views and detaches left out), and those among them with an
    input or output of ≥ 32,768 elements (ATen's grain size: the ops that split the work across threads, each
    ending in a barrier that waits for every thread, so a thread the OS deschedules stalls them all)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = self.parallel = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            self.ops += 1
            tensors = [t for t in (*args, *(out if isinstance(out, (tuple, list)) else [out])) if isinstance(t, Tensor)]
            self.parallel += any(t.numel() >= 32_768 for t in tensors)
        return out


def op_census(nets: dict[str, nn.Module], x: Tensor, y: Tensor) -> dict[str, dict[str, int]]:
    """aten ops in one training step (forward, loss, backward, SGD step) of each network."""
    out = {}
    for name, net in nets.items():
        opt = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: the census leaves the weights as they are
        net.train().zero_grad(set_to_none=True)
        with _OpCensus() as census:
            F.cross_entropy(net(x), y).backward()
            opt.step()
        out[name] = {"aten_ops": census.ops, "ops_on_32768_or_more_elements": census.parallel}
    return out


# --- per-module breakdown -----------------------------------------------------------------------------------

def layers(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The modules a breakdown times: the leaves, with C3's table convolution (either form) as one layer."""
    children = list(module.named_children())
    if prefix and (not children or isinstance(module, (TableConv, BeforeTableConv))):
        return [(prefix, module)]
    return [row for name, child in children for row in layers(child, f"{prefix}.{name}" if prefix else name)]


def layer_inputs(net: nn.Module, x: Tensor, names: list[str]) -> dict[str, Tensor]:
    seen: dict[str, Tensor] = {}
    mods = dict(net.named_modules())
    handles = [mods[n].register_forward_pre_hook(lambda m, a, n=n: seen.setdefault(n, a[0].detach())) for n in names]
    try:
        with torch.no_grad():
            net.train()(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def breakdown(net: nn.Module, x: Tensor, reps: int) -> list[dict[str, Any]]:
    """Per layer: median forward and backward ms at this batch, each layer alone, interleaved over reps."""
    mods = layers(net)
    inputs = layer_inputs(net, x, [n for n, _ in mods])
    g = torch.Generator().manual_seed(0)
    grads = {n: torch.randn(m(inputs[n]).shape, generator=g).to(x.device) for n, m in mods}
    times: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n, _ in mods}
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(reps):
        for i, (n, m) in enumerate(mods):
            xin = inputs[n].clone().requires_grad_(i > 0)  # the image itself needs no gradient
            for p in m.parameters():
                p.grad = None
            sync()
            t0 = time.perf_counter()
            out = m(xin)
            sync()
            t1 = time.perf_counter()
            out.backward(grads[n])
            sync()
            t2 = time.perf_counter()
            times[n][0].append(1000 * (t1 - t0))
            times[n][1].append(1000 * (t2 - t1))
    return [{"layer": n, "type": type(m).__name__, "forward_ms": round(statistics.median(times[n][0]), 3),
             "backward_ms": round(statistics.median(times[n][1]), 3)} for n, m in mods]


# --- environment and rendering ------------------------------------------------------------------------------

def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False, cwd=ROOT).stdout.strip()
    except OSError:
        return ""


def environment(device: torch.device) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")), "") if cpuinfo.exists() else platform.processor()
    dirty = [line for line in _git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "convzoo": convzoo.__version__,
            "platform": platform.platform(), "git_revision": _git("rev-parse", "HEAD"),
            "git_dirty_tracked_files": len(dirty), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "load_average_start": [round(v, 2) for v in os.getloadavg()]}


def _table(heads: list[str], rows: list[list[Any]], text_columns: int) -> list[str]:
    rule = "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(heads))) + "|"
    return ["| " + " | ".join(heads) + " |", rule] + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def render(result: dict[str, Any]) -> str:
    env, eq = result["environment"], result["equivalence"]
    quick = " (--quick smoke run: too few steps to compare)" if result["quick"] else ""
    lines = [f"# LeNet-5 cost on {env['device']}: `lenet5` against `lenet5_modern`{quick}",
             "", f"`{result['command']}` — {env['cpu']}, {env['cpu_count']} cores, torch {env['torch']} with "
             f"{env['torch_threads']} threads, git {env['git_revision'][:12]}, load average "
             f"{env['load_average_start']} → {env['load_average_end']}, data: {result['data']}.", "",
             f"## Steps (batch {result['batch_size']}; median and p10–p90 ms per step)", ""]
    rows = [[f"`{r['network']}`", r["mode"], r["median_step_ms"], f"{r['p10_step_ms']}–{r['p90_step_ms']}",
             f"{r['img_per_s']:,.0f}"] for r in result["records"]]
    lines += _table(["network", "mode", "median ms", "p10–p90 ms", "img/s"], rows, 2)
    lines += ["", f"Cost per image ÷ lenet5_modern's (goal: `lenet5` train ≤ {GOAL}):", ""]
    lines += [f"- {mode}: " + ", ".join(f"{k} = {v:.2f}" for k, v in r.items())
              for mode, r in result["ratios"].items()]
    lines += ["", f"Same function: max |logit difference| {eq['max_abs_logit_diff']:.2e} (logits up to "
              f"{eq['max_logit']:.1f}), max relative gradient difference {eq['max_rel_grad_diff']:.2e}.", ""]
    lines += ["aten ops that compute in one training step (those on ≥ 32,768 elements split across threads, each "
              "then waits for all of them: a busy machine stalls every one):", ""]
    lines += [f"- `{n}`: {c['aten_ops']} ops, {c['ops_on_32768_or_more_elements']} of them on ≥ 32,768 elements"
              for n, c in result["ops_per_train_step"].items()]
    lines.append("")
    for name, rows_ in result["breakdown"].items():
        total = sum(r["forward_ms"] + r["backward_ms"] for r in rows_)
        lines += [f"## Per layer, alone: `{name}` (Σ forward + backward {total:.2f} ms)", ""]
        lines += _table(["layer", "type", "forward ms", "backward ms"],
                        [[r["layer"], r["type"], r["forward_ms"], r["backward_ms"]] for r in rows_], 2)
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per network and mode (default 60)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up steps per network and mode (default 5)")
    parser.add_argument("--reps", type=int, default=30, help="repetitions of the per-layer breakdown (default 30)")
    parser.add_argument("--batch", type=int, default=256, help="batch size (default 256, the issue's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds: 4 steps, 2 reps, "
                        "random data, results in a temporary folder unless --out")
    parser.add_argument("--device", default="cpu", help="cpu (default; the issue's goal is a CPU one) or cuda")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.device not in ("cpu", "cuda") or (args.device == "cuda" and not torch.cuda.is_available()):
        offered = "cpu, cuda" if torch.cuda.is_available() else "cpu"
        parser.error(f"--device {args.device}: this machine offers {offered}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.steps, args.warmup, args.reps = 4, 1, 2
    out = args.out or (Path(tempfile.gettempdir()) / "convzoo-lenet-cost" if args.quick else OUT)
    device = torch.device(args.device)
    env = environment(device)
    x, y, data = batch(args.batch, real=not args.quick)
    x, y = x.to(device), y.to(device)
    nets = {name: net.to(device) for name, net in networks().items()}
    result: dict[str, Any] = {
        "what": f"lenet5 (now), lenet5_before (the formulation before, same weights) and lenet5_modern on {device}",
        "command": "python benchmarks/lenet_cost.py" + "".join(
            f" --{k} {v}" for k, v in (("steps", args.steps), ("threads", args.threads), ("batch", args.batch),
                                      ("device", None if args.device == "cpu" else args.device)) if v is not None)
        + (" --quick" if args.quick else ""),
        "quick": args.quick, "batch_size": args.batch, "data": data, "environment": env,
        "equivalence": equivalence(nets["lenet5"], nets["lenet5_before"], x[:32], y[:32]),
    }
    result["records"] = step_records(nets, x, y, args.steps, args.warmup)
    result["ratios"] = ratios(result["records"])
    result["goal"] = {"lenet5/lenet5_modern train ≤": GOAL,
                      "met": result["ratios"]["train"]["lenet5/lenet5_modern"] <= GOAL}
    result["ops_per_train_step"] = op_census(nets, x, y)
    result["breakdown"] = {n: breakdown(nets[n], x, args.reps) for n in NETWORKS}
    env["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    text = render(result)
    write_json(out / "lenet_cost.json", result)
    write_text(out / "lenet_cost.md", text + "\n")
    print(text)
    print(f"\nwrote {out / 'lenet_cost.json'} and {out / 'lenet_cost.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
