"""8-bit post-training static quantisation for CPU inference (onnxruntime), with its measured cost and gain.

Why onnxruntime and not torch.ao: on torch 2.14 `torch.ao.quantization` (eager and FX) still runs but warns
that it is deprecated and due for removal, and the PT2E entry point (`torch.ao.quantization.quantize_pt2e`)
is gone from torch (it moved to the separate torchao package). onnxruntime's `quantize_static` is
maintained, runs every network the ONNX exporter takes, and its x86 kernels use VNNI/AMX int8 instructions.

What `quantize` does:

1. exports the trained network (a run, a checkpoint or a `.czc` file) to ONNX in float32, batch dimension
   dynamic (torch.export-based exporter);
2. calibrates on `calibration` training images, prepared exactly as in training without augmentation
   (a seeded random sample, never test images), and quantises in QDQ form: activations uint8 with
   min/max ranges from the calibration, weights int8 per output channel (the U8S8 layout onnxruntime
   recommends on x86);
3. measures test top-1 of the torch float32 network, the float32 ONNX model and the int8 one, and how
   often int8 and float32 predict the same class;
4. times float32 and int8 onnxruntime sessions (and torch eager float32) on the same batches,
   interleaved run by run so that a machine busy with other work slows all of them alike; it reports
   median and p10/p90 per batch size, and the speed-up as the ratio of medians.

The int8 model is written atomically to `out` (an `.onnx` file that onnxruntime runs as is).
"""
from __future__ import annotations

import contextlib
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..fsio import write_bytes

__all__ = ["QuantReport", "quantize"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class QuantReport:
    """Accuracy (test top-1 fractions), latency (ms per batch) and sizes (bytes) of float32 vs int8."""

    source: str
    out: str
    model: str
    method: str
    calibration: int
    threads: int
    accuracy: dict[str, float]  # torch_fp32, onnx_fp32, onnx_int8
    agreement: float  # fraction of test images where int8 and float32 ONNX predict the same class
    latency: tuple[dict[str, Any], ...]  # per batch size: median/p10/p90 ms of torch_fp32, onnx_fp32, onnx_int8
    sizes: dict[str, int]  # onnx_fp32, onnx_int8

    @property
    def points_lost(self) -> float:
        return 100 * (self.accuracy["onnx_fp32"] - self.accuracy["onnx_int8"])

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "points_lost": self.points_lost}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> QuantReport:
        """A report back from `to_json`, to render it again."""
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in d.items() if k in known}, "latency": tuple(d["latency"])})


def _check(calibration: int, batch_sizes: tuple[int, ...], repeats: int, threads: int) -> None:
    if calibration < 1:
        raise UserError(f"--calibration must be 1 or more images, got {calibration}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise UserError(f"--batch-sizes must be positive, got {','.join(map(str, batch_sizes))}")
    if repeats < 1:
        raise UserError(f"--repeats must be 1 or more, got {repeats}")
    if threads < 1:
        raise UserError(f"--threads must be 1 or more, got {threads}")


def _export(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter reports its steps on stdout
        torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, external_data=False,
                          verbose=False)


def _prepared(split: Any, ctx: Any, index: torch.Tensor) -> np.ndarray:
    from ..data.pipeline import prepare

    return prepare(split.images[index.to(split.images.device)], ctx.spec).cpu().numpy()


def _predicted(logits: torch.Tensor) -> np.ndarray:
    """The top class, ties broken as `convzoo eval` breaks them (ReLU-ended networks such as SqueezeNet tie at 0)."""
    return logits.float().topk(1, dim=1).indices[:, 0].cpu().numpy()


def _time(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t)


def _spread(ms: list[float]) -> dict[str, float]:
    q = np.percentile(ms, [10, 90])
    return {"median_ms": statistics.median(ms), "p10_ms": float(q[0]), "p90_ms": float(q[1])}


def _latency(model: torch.nn.Module, fp32: Any, int8: Any, xn: np.ndarray, repeats: int) -> dict[str, Any]:
    """ms per batch of the three engines on the same batch, run by run in alternating order."""
    xt = torch.from_numpy(xn)
    runs = {"torch_fp32": lambda: model(xt), "onnx_fp32": lambda: fp32.run(None, {"input": xn}),
            "onnx_int8": lambda: int8.run(None, {"input": xn})}
    ms: dict[str, list[float]] = {k: [] for k in runs}
    order = list(runs)
    with torch.no_grad():
        for fn in runs.values():  # warm-up
            for _ in range(3):
                fn()
        for r in range(repeats):
            for k in (order if r % 2 == 0 else order[::-1]):
                ms[k].append(_time(runs[k]))
    row: dict[str, Any] = {"batch": len(xn), **{k: _spread(v) for k, v in ms.items()}}
    row["speedup_vs_onnx_fp32"] = row["onnx_fp32"]["median_ms"] / row["onnx_int8"]["median_ms"]
    row["speedup_vs_torch_fp32"] = row["torch_fp32"]["median_ms"] / row["onnx_int8"]["median_ms"]
    return row


def quantize(source: str | os.PathLike[str], *, out: str | os.PathLike[str], calibration: int = 512,
             batch_sizes: tuple[int, ...] = (1, 64), repeats: int = 30, threads: int = 1,
             dataset: str | None = None, data_dir: str | None = None, verify: bool = True, seed: int = 0,
             log: Log | None = None) -> QuantReport:
    """Quantise the network of `source` to int8 for onnxruntime on the CPU; write it to `out`; measure it.

    `threads` is each session's (and torch's, while timing) thread count: 1 gives per-core latency,
    which is what a busy machine can measure reproducibly.
    """
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..training.inference import load_trained
    from .compress import _check_writable, _context

    batch_sizes = tuple(batch_sizes)
    _check(calibration, batch_sizes, repeats, threads)
    out = Path(out)
    _check_writable(out)
    say: Log = log or (lambda _: None)
    trained = load_trained(source, "cpu")
    model = trained.model.float().eval()
    ctx = _context(trained, dataset=dataset, data_dir=data_dir, verify=verify, device="cpu", batch_size=256,
                   seed=seed)
    if not hasattr(ctx.train, "images"):
        raise UserError(f"quantize calibrates on an in-memory dataset; {ctx.data.name} is streamed from files")
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(ctx.train), generator=g)[:calibration]
    calib = _prepared(ctx.train, ctx, pick)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([calib[i:i + 64] for i in range(0, len(calib), 64)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.batches, None)
            return None if x is None else {"input": x}

    method = (f"onnxruntime {ort.__version__} quantize_static: QDQ, activations uint8 (MinMax calibration on "
              f"{len(calib)} training images), weights int8 per channel")
    with tempfile.TemporaryDirectory(prefix="convzoo-quantize-") as tmp:
        fp32_path, prep_path, int8_path = (Path(tmp) / f"{n}.onnx" for n in ("fp32", "prep", "int8"))
        say("exporting float32 ONNX")
        try:
            _export(model, torch.from_numpy(calib[:2]), fp32_path)
        except Exception as err:  # the exporter's failures are many types; the network is what the user changes
            raise UserError(f"{trained.meta['model']} does not export to ONNX ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:200]}); it cannot be quantised this way") from None
        say(f"calibrating on {len(calib)} training images and quantising")
        # onnxruntime's recommended pre-processing: shape inference and graph optimisation (BN folded into
        # convolutions, for one), so that the quantiser sees the graph that will run
        quant_pre_process(str(fp32_path), str(prep_path))
        quantize_static(str(prep_path), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = threads
        fp32 = ort.InferenceSession(str(fp32_path), opts, providers=["CPUExecutionProvider"])
        int8 = ort.InferenceSession(str(int8_path), opts, providers=["CPUExecutionProvider"])
        sizes = {"onnx_fp32": fp32_path.stat().st_size, "onnx_int8": int8_path.stat().st_size}
        blob = int8_path.read_bytes()

        say("measuring test accuracy")
        hits = {"torch_fp32": 0, "onnx_fp32": 0, "onnx_int8": 0}
        same = n = 0
        with torch.no_grad():
            for x, y in ctx.batches(ctx.test, train=False):
                xn = x.cpu().numpy()
                p_torch = _predicted(model(x))
                p32 = _predicted(torch.from_numpy(fp32.run(None, {"input": xn})[0]))
                p8 = _predicted(torch.from_numpy(int8.run(None, {"input": xn})[0]))
                yn = y.cpu().numpy()
                hits["torch_fp32"] += int((p_torch == yn).sum())
                hits["onnx_fp32"] += int((p32 == yn).sum())
                hits["onnx_int8"] += int((p8 == yn).sum())
                same += int((p8 == p32).sum())
                n += len(yn)
        accuracy = {k: v / max(n, 1) for k, v in hits.items()}

        say(f"timing batch sizes {', '.join(map(str, batch_sizes))}, {repeats} interleaved runs each")
        latency = []
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for b in batch_sizes:
                xn = _prepared(ctx.test, ctx, torch.arange(b) % len(ctx.test))
                latency.append(_latency(model, fp32, int8, xn, repeats))
        finally:
            torch.set_num_threads(torch_threads)
    write_bytes(out, blob)
    return QuantReport(str(trained.path), str(out), trained.meta["model"], method, len(calib), threads, accuracy,
                       same / max(n, 1), tuple(latency), sizes)
