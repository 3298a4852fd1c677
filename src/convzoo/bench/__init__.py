"""Speed: images per second, step-time spread, memory and achieved TFLOP/s of a network, alone or against its peer.

    >>> from convzoo.bench import bench, compare
    >>> bench("lenet5_modern", batch=4, input_size=32, steps=3, warmup=1)["img_per_s"]  # doctest: +SKIP
    >>> compare("resnet18", "torchvision", input_size=64, steps=2)["ratio"]  # doctest: +SKIP

Every record holds the settings, the environment (device name, driver and CUDA on a GPU, library versions,
threads) and the figures: ``median_step_ms``, ``p10_step_ms``/``p90_step_ms``, ``img_per_s`` (batch / median
step), ``peak_mem_mb``, ``tflops`` (achieved: FLOPs per image × img/s) and, given the device's peak, ``mfu``.
FLOPs are 2 × MACs (from `convzoo.analyze` at the same input); a training step counts 3 × the forward.
`compare` times both networks interleaved, in alternating blocks of steps, and gives ``ratio`` = ours ÷ peer.
"""
from __future__ import annotations

import subprocess
from typing import Any

import torch

from ..analysis import analyze
from ..errors import UserError
from ..render import fmt_shape, text_table
from ..training.rundir import environment
from .run import MODES, Settings, Side, build_ours, build_peer, make_inputs, make_workload, resolve
from .timing import Timed, classic_line, classic_stats, step_stats, time_workloads

__all__ = ["MODES", "Settings", "bench", "classic_lines", "compare", "render"]

FLOP_CONVENTION = ("FLOPs = 2 × MACs (convolution and linear multiply-accumulates of the eval forward, bias and "
                   "auxiliary heads excluded, from convzoo.analyze at this input); a training step counts 3 × "
                   "the forward (forward + backward ≈ 3 × forward)")


def bench(name: str, **settings: Any) -> dict[str, Any]:
    """Time `name` (a registered network) with `settings` (the fields of `Settings`) and return its record."""
    return _run(name, None, settings)["ours"]


def compare(name: str, source: str, **settings: Any) -> dict[str, Any]:
    """Time `name` and `source`'s same network (torchvision or timm) interleaved, with the same settings.

    Returns ``{"ours": record, "peer": record, "ratio": ours img/s ÷ peer img/s}``."""
    out = _run(name, source, settings)
    out["ratio"] = out["ours"]["img_per_s"] / out["peer"]["img_per_s"]
    return out


def _macs(side: Side, ours_macs: int | None) -> tuple[int, bool]:
    """MACs per image at the benchmark's input, and whether the analysis accounted for every layer."""
    try:
        if side.source == "convzoo":
            report = analyze(side.name, side.input_size, options=side.options, find_input_range=False)
        else:  # the peer is the same network; analysing its own module checks that
            report = analyze(side.model, side.input_size, find_input_range=False)
    except Exception:  # a peer module the analysis cannot trace: the same network has our count
        if ours_macs is None:
            raise
        return ours_macs, False
    return report.totals.macs, report.complete


def _driver() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.split()[0] if done.stdout.strip() else None


def _environment(device: torch.device, seed: int) -> dict[str, Any]:
    env = environment(device, seed)
    try:
        import timm

        timm_version: str | None = timm.__version__
    except ImportError:
        timm_version = None
    cuda = device.type == "cuda"
    return {"device": env["gpu"] if cuda else env["cpu"], "device_type": device.type,
            "driver": _driver() if cuda else None, "cuda": env.get("cuda"), "cudnn": env.get("cudnn"),
            "torch": env["torch"], "torchvision": env["torchvision"], "timm": timm_version,
            "convzoo": env["convzoo"], "git_revision": env["git_revision"], "python": env["python"],
            "platform": env["platform"], "cpu": env["cpu"], "threads": env["torch_threads"],
            "cudnn_benchmark": torch.backends.cudnn.benchmark if cuda else None,
            "seed": seed, "started": env["started"]}


def _native(dtype: str, device: torch.device) -> bool:
    """Whether the device computes `dtype` natively (a CPU without AVX-512/AMX FP16 or BF16 emulates it)."""
    if dtype == "fp32":
        return True
    if device.type == "cuda":
        return dtype == "fp16" or torch.cuda.is_bf16_supported(including_emulation=False)
    try:
        ops = torch.ops.mkldnn
        return bool(ops._is_mkldnn_fp16_supported() if dtype == "fp16" else ops._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _record(side: Side, mode: str, cfg: Settings, device: torch.device, timed: Timed, macs: tuple[int, bool],
            env: dict[str, Any]) -> dict[str, Any]:
    stats = step_stats(timed.step_ms)
    img_per_s = cfg.batch * 1000 / stats["median_step_ms"]
    flops = 2 * macs[0] * (3 if mode == "train" else 1)
    tflops = flops * img_per_s / 1e12
    native = _native(cfg.dtype, device)
    compiled = cfg.compile or cfg.cuda_graphs
    return {
        "name": side.name, "source": side.source, "options": side.options, "mode": mode, "batch": cfg.batch,
        "input_size": list(side.input_size), "dtype": cfg.dtype, "dtype_native": native,
        "dtype_note": None if native else f"{cfg.dtype} is emulated on this {device.type} (no native {cfg.dtype} "
                                          "arithmetic): expect it slower than fp32",
        "memory_format": "channels_last" if cfg.channels_last else "contiguous", "compile": compiled,
        "compile_mode": ("reduce-overhead" if cfg.cuda_graphs else "default") if compiled else None,
        "cuda_graphs": cfg.cuda_graphs, "aux_heads": side.aux,
        "steps": cfg.steps, "warmup": cfg.warmup, "warmup_s": timed.warmup_s,
        "compile_s": timed.first_step_s if compiled else None, "first_step_s": timed.first_step_s,
        "img_per_s": img_per_s, **stats,
        "timer": "CUDA events, one pair per step" if device.type == "cuda" else "time.perf_counter per step",
        "peak_mem_mb": timed.peak_mem_bytes / 2**20, "peak_mem_kind": timed.peak_mem_kind,
        "macs_per_image": macs[0], "macs_complete": macs[1], "flops_per_image": flops,
        "flop_convention": FLOP_CONVENTION, "tflops": tflops, "peak_tflops": cfg.peak_tflops,
        "mfu": tflops / cfg.peak_tflops if cfg.peak_tflops else None, **env,
    }


def _run(name: str, source: str | None, settings: dict[str, Any]) -> dict[str, Any]:
    cfg, device = resolve(settings)
    sides = {"ours": build_ours(name, cfg)}
    if source is not None:
        sides["peer"] = build_peer(sides["ours"], source, cfg)
    ours_macs = _macs(sides["ours"], None)
    macs = {"ours": ours_macs, **({"peer": _macs(sides["peer"], ours_macs[0])} if source else {})}
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = benchmark or device.type == "cuda"  # let cuDNN pick its fastest kernels
    try:
        env = _environment(device, cfg.seed)
        inputs = make_inputs(sides["ours"], cfg, device)
        workloads = {f"{k}/{m}": make_workload(s, m, cfg, device, inputs) for m in cfg.modes for k, s in sides.items()}
        timed = time_workloads(workloads, steps=cfg.steps, warmup=cfg.warmup, block=cfg.block_steps, device=device)
    except torch.OutOfMemoryError:
        raise UserError(f"--batch {cfg.batch} at {fmt_shape(sides['ours'].input_size)} does not fit in the memory "
                        f"of {device}; give a smaller --batch or --input-size") from None
    finally:
        torch.backends.cudnn.benchmark = benchmark
    out: dict[str, Any] = {}
    for k, side in sides.items():
        rec = _record(side, cfg.mode, cfg, device, timed[f"{k}/{cfg.mode}"], macs[k], env)
        if cfg.classic:
            rec["classic"] = {"burn_in": cfg.warmup,
                              "forward": classic_stats(timed[f"{k}/infer"].step_ms),
                              "forward_backward": classic_stats(timed[f"{k}/train"].step_ms),
                              "forward_backward_is": "the training step: forward, loss, backward and SGD update"}
        if source is not None:
            other = sides["peer" if k == "ours" else "ours"]
            rec["interleaved_with"] = f"{other.source} {other.name}"
            rec["block_steps"] = cfg.block_steps
        out[k] = rec
    return out


def classic_lines(result: dict[str, Any]) -> list[str]:
    """The TF Inception tutorial's report of a record (or a comparison) timed with ``classic=True``."""
    records = [result["ours"], result["peer"]] if "ours" in result else [result]
    lines = []
    for r in records:
        if "classic" not in r:
            continue
        who = f"{r['source']} {r['name']}: " if len(records) > 1 else ""
        lines += [who + classic_line("Forward", r["classic"]["forward"]),
                  who + classic_line("Forward-backward", r["classic"]["forward_backward"])]
    return lines


def _row(r: dict[str, Any]) -> list[str]:
    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "–"
    return [r["name"], r["source"], r["mode"], r["dtype"], str(r["batch"]), fmt_shape(r["input_size"]),
            f"{r['median_step_ms']:.3f}", f"{r['p10_step_ms']:.3f}–{r['p90_step_ms']:.3f}", f"{r['img_per_s']:,.1f}",
            f"{r['tflops']:.4g}", mfu, f"{r['peak_mem_mb']:.1f}"]


def render(result: dict[str, Any]) -> str:
    """A compact table of a record, or of a comparison's two records and their ratio."""
    records = [result["ours"], result["peer"]] if "ours" in result else [result]
    first = records[0]
    headers = ["network", "source", "mode", "dtype", "batch", "input", "median ms", "p10–p90 ms", "img/s",
               "TFLOP/s", "of peak", "peak MiB"]
    lines = [text_table(headers, [_row(r) for r in records], right=[False] * 6 + [True] * 6), ""]
    if "ratio" in result:
        lines.append(f"ratio ours/peer: {result['ratio']:.3f}× img/s (interleaved in blocks of "
                     f"{first['block_steps']} steps)")
    compiled = f"compile ({first['compile_mode']})" if first["compile"] else "eager"
    lines.append(f"{first['device']} ({first['device_type']}, {first['threads']} threads), torch {first['torch']}; "
                 f"{first['memory_format']}, {compiled}; {first['steps']} steps after {first['warmup']} warm-up "
                 f"({first['warmup_s']:.2f} s)")
    lines += [f"note: {r['dtype_note']}" for r in records[:1] if r["dtype_note"]]
    memory = "CUDA max_memory_allocated" if first["device_type"] == "cuda" else "growth of the peak RSS"
    lines.append(f"TFLOP/s = 2 × MACs × img/s{' × 3 (training step)' if first['mode'] == 'train' else ''}; "
                 f"peak MiB: {memory} in warm-up (see peak_mem_kind in --json)")
    return "\n".join(lines + classic_lines(result))
