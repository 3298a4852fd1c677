"""Timing primitives: warm up, then time each step; summary statistics; peak memory; the classic report.

On a GPU each timed step is bracketed by a pair of CUDA events and the host synchronises once, at the end
(the GPU's own clock, no per-step stall); on the CPU `time.perf_counter` brackets each step. Several
workloads are timed *interleaved*, in alternating blocks of steps (A, B, A, B, …), so a machine that drifts
(clocks, thermals, a neighbour's load) drifts for both sides alike.
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["MemoryMeter", "Timed", "Workload", "classic_line", "classic_stats", "step_stats", "time_workloads"]


@dataclass
class Workload:
    """One thing to time: `step()` runs one step; `enter()` (untimed) runs before each block of steps
    (puts the network in train or eval mode); `resident_bytes` is what the workload keeps on the device
    besides its steps' own allocations (weights, buffers, inputs), added to the CUDA memory growth."""

    step: Callable[[], object]
    enter: Callable[[], object] = lambda: None
    resident_bytes: int = 0


@dataclass
class Timed:
    """What timing one workload gave: each timed step in ms (in order), the warm-up wall seconds, the first
    warm-up step's wall seconds (it compiles, allocates and tunes), and the peak memory in bytes (how it was
    measured in `peak_mem_kind`)."""

    step_ms: list[float] = field(default_factory=list)
    warmup_s: float = 0.0
    first_step_s: float = 0.0
    peak_mem_bytes: int = 0
    peak_mem_kind: str = ""


class MemoryMeter:
    """Peak memory over a stretch of steps. CUDA: `torch.cuda.max_memory_allocated` minus what was allocated
    when the stretch began. CPU: the growth of the process's peak RSS. On Linux the peak (VmHWM) is reset
    through /proc/self/clear_refs first, so each stretch has its own; elsewhere it is the growth of
    `resource.getrusage`'s ru_maxrss, which is 0 when an earlier peak of the process was higher."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.base = 0
        self.resettable = not self.cuda and self._reset_hwm()

    @property
    def kind(self) -> str:
        if self.cuda:
            return ("cuda max_memory_allocated during warm-up, less what was allocated before it, plus the "
                    "network's weights, buffers and inputs (MiB)")
        how = ("VmHWM after resetting it through /proc/self/clear_refs, less VmRSS before" if self.resettable else
               "resource.getrusage ru_maxrss growth; 0 when an earlier peak of the process was higher")
        return f"cpu peak RSS growth of the process during warm-up ({how}; weights built before it excluded) (MiB)"

    @staticmethod
    def _reset_hwm() -> bool:
        with contextlib.suppress(OSError, AttributeError):  # hand freed heap pages back first (glibc keeps
            ctypes.CDLL(None).malloc_trim(0)  # them), or a second workload would reuse them unseen
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # Linux ≥ 4.0: reset the peak resident set size to the current one
            return MemoryMeter._status("VmHWM") is not None
        except OSError:
            return False

    @staticmethod
    def _status(key: str) -> int | None:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024  # kB
        return None

    @staticmethod
    def _maxrss() -> int:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        elif self.resettable and self._reset_hwm():
            self.base = self._status("VmRSS") or 0
        else:
            self.base = self._maxrss()

    def stop(self) -> int:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - self.base
        peak = (self._status("VmHWM") or 0) if self.resettable else self._maxrss()
        return max(0, peak - self.base)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _warm_up(w: Workload, warmup: int, device: torch.device, meter: MemoryMeter, out: Timed) -> None:
    w.enter()
    meter.start()
    t0 = time.perf_counter()
    w.step()
    _sync(device)
    out.first_step_s = time.perf_counter() - t0
    for _ in range(warmup - 1):
        w.step()
    _sync(device)
    out.warmup_s = time.perf_counter() - t0
    out.peak_mem_bytes = meter.stop() + (w.resident_bytes if meter.cuda else 0)
    out.peak_mem_kind = meter.kind


def time_workloads(workloads: Mapping[str, Workload], *, steps: int, warmup: int, block: int,
                   device: torch.device) -> dict[str, Timed]:
    """Warm each workload up on its own (in order), then time `steps` steps of each in alternating blocks of
    `block` steps: w1 ×block, w2 ×block, w1 ×block, … Returns one `Timed` per workload name."""
    if steps < 1 or warmup < 1 or block < 1:
        raise ValueError(f"steps, warmup and block must be ≥ 1, got {steps}, {warmup}, {block}")
    meter = MemoryMeter(device)
    out = {name: Timed() for name in workloads}
    for name, w in workloads.items():
        _warm_up(w, warmup, device, meter, out[name])
    cuda = device.type == "cuda"
    events: dict[str, list[tuple[torch.cuda.Event, torch.cuda.Event]]] = {name: [] for name in workloads}
    done = dict.fromkeys(workloads, 0)
    while any(n < steps for n in done.values()):
        for name, w in workloads.items():
            todo = min(block, steps - done[name])
            if not todo:
                continue
            w.enter()
            for _ in range(todo):
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    w.step()
                    end.record()
                    events[name].append((start, end))
                else:
                    t = time.perf_counter()
                    w.step()
                    out[name].step_ms.append(1000 * (time.perf_counter() - t))
            done[name] += todo
    if cuda:
        torch.cuda.synchronize(device)
        for name, pairs in events.items():
            out[name].step_ms = [s.elapsed_time(e) for s, e in pairs]
    return out


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def step_stats(step_ms: Sequence[float]) -> dict[str, float]:
    """Median, p10, p25, p75, p90, mean and standard deviation of step times in ms."""
    ordered = sorted(step_ms)
    mean = sum(ordered) / len(ordered)
    sd = math.sqrt(sum((t - mean) ** 2 for t in ordered) / len(ordered))
    return {"median_step_ms": _quantile(ordered, 0.5), "p10_step_ms": _quantile(ordered, 0.1),
            "p25_step_ms": _quantile(ordered, 0.25), "p75_step_ms": _quantile(ordered, 0.75),
            "p90_step_ms": _quantile(ordered, 0.9), "mean_step_ms": mean, "sd_step_ms": sd}


def classic_stats(step_ms: Sequence[float]) -> dict[str, float]:
    """The TF Inception benchmark's figures: mean and sd (population: E[t²] − E[t]²) of the seconds per batch."""
    secs = [t / 1000 for t in step_ms]
    mean = sum(secs) / len(secs)
    var = sum(s * s for s in secs) / len(secs) - mean * mean
    return {"steps": len(secs), "mean_s": mean, "sd_s": math.sqrt(max(var, 0.0))}


def classic_line(info: str, stats: Mapping[str, float]) -> str:
    """'Forward across 100 steps, 0.123 +/- 0.004 sec / batch' (the TF tutorial's line, without its timestamp)."""
    return f"{info} across {stats['steps']} steps, {stats['mean_s']:.3f} +/- {stats['sd_s']:.3f} sec / batch"
