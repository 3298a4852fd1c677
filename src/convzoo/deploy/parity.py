"""The parity check of an exported file: read it back the way its users will, run it on random images, and
compare its logits with the network's (`TOLERANCE` of the largest logit, every top-1 class the same).

Exporters and runtimes warn, log and print at length (the TorchScript exporter prints its whole graph when it
fails); `quiet` mutes them, down to the file descriptors torch's C++ side writes to. What matters reaches the
user as a `UserError` or in the export record.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import UserError
from .source import FORMAT, from_export_weights, json_dict, safetensors_header

__all__ = ["TOLERANCE", "Check", "Refused", "check_file", "first_line", "parity_inputs", "quiet", "reference"]

TOLERANCE = 1e-4  # the check's bound on max |Δ logit|, relative to the largest |logit|


class Refused(Exception):
    """An exporter could not write the network, or a runtime could not run the file it wrote."""


@dataclass(frozen=True)
class Check:
    """The parity check of one exported file against the network it came from."""

    runtime: str  # what ran the file
    batches: tuple[tuple[int, ...], ...]  # the input shapes run
    max_abs_diff: float  # max |Δ logit| over every image
    max_logit: float  # the largest |logit| torch gave
    rel_diff: float  # max over batches of max |Δ| / largest |logit| of that batch
    top1_same: int  # images whose top-1 class agrees
    images: int
    tolerance: float = TOLERANCE

    @property
    def passed(self) -> bool:
        return self.rel_diff <= self.tolerance and self.top1_same == self.images

    def describe(self) -> str:
        sizes = ", ".join("×".join(map(str, s)) for s in self.batches)
        verdict = "passed" if self.passed else "FAILED"
        return (f"check {verdict}: {self.runtime} against torch on {self.images} random images ({sizes}): max |Δ| "
                f"{self.max_abs_diff:.2g} = {self.rel_diff:.2g} × the largest logit (limit {self.tolerance:g}), "
                f"top-1 identical on {self.top1_same}/{self.images}")


def parity_inputs(chans: int, size: tuple[int, int], spatial: bool, seed: int = 0) -> list[Tensor]:
    """The check's random images: 4 and 1 at the export size, and 2 at a larger non-square size if `spatial`."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    shapes = [(4, chans, h, w), (1, chans, h, w)] + ([(2, chans, h + 32, w + 64)] if spatial else [])
    return [torch.randn(s, generator=g) for s in shapes]


def compare(runtime: str, inputs: Sequence[Tensor], expected: Sequence[np.ndarray],
             got: Sequence[np.ndarray]) -> Check:
    worst = rel = biggest = 0.0
    same = images = 0
    for e, g in zip(expected, got):
        if g.shape != e.shape:
            raise Refused(f"{runtime} returned logits of shape {tuple(g.shape)} where torch gives {tuple(e.shape)}")
        diff = float(np.abs(g.astype(np.float64) - e).max())
        if not np.isfinite(diff):  # NaN would compare as passing
            diff = float("inf")
        scale = float(np.abs(e).max())
        worst, biggest = max(worst, diff), max(biggest, scale)
        rel = max(rel, diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf")))
        same += int((g.argmax(1) == e.argmax(1)).sum())
        images += e.shape[0]
    return Check(runtime, tuple(tuple(x.shape) for x in inputs), worst, biggest, rel, same, images)


def first_line(err: BaseException) -> str:
    """The gist of an exporter's error: its first line, and the first guard where `torch.export` lists them."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    gist = lines[0][:160] if lines else ""
    guard = next((line for line in lines[1:] if line.startswith("- Not all values")), None)
    return f"{type(err).__name__}: {gist}" + (f" {guard[:200]}" if guard else "")


def reference(model: nn.Module, inputs: Sequence[Tensor]) -> list[np.ndarray]:
    with torch.no_grad():
        outs = [model(x) for x in inputs]
    if not all(isinstance(o, Tensor) for o in outs):  # the contract: forward returns one Tensor in eval mode
        raise UserError(f"{getattr(model, 'name', type(model).__name__)} returns {type(outs[0]).__name__} in eval "
                        "mode, not one logits tensor; it cannot be exported")
    return [o.double().numpy() for o in outs]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Exporters warn (deprecations, guard solving), log at length and print (the TorchScript exporter prints
    its whole graph when it fails); what matters reaches the user as a `UserError` or in the record."""
    loggers = [logging.getLogger(n) for n in ("torch", "torch.export", "torch.fx", "torch.onnx", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        with warnings.catch_warnings(), _muted_fds():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _muted_fds() -> Iterator[None]:
    """stdout and stderr to /dev/null at the file-descriptor level (torch's C++ side prints there directly)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no such descriptors (an embedded interpreter): nothing to mute
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def run_file(fmt: str, tmp: Path, inputs: Sequence[Tensor]) -> tuple[str, list[np.ndarray]]:
    """The logits the written file gives for `inputs`, run the way its users will run it, and by what;
    `Refused` when the runtime cannot load or run it."""
    if fmt == "onnx":
        import onnxruntime as ort

        from .onnx_predict import metadata_of

        options = ort.SessionOptions()
        options.log_severity_level = 4  # a failure reaches the user as the record's reason, not as a log line
        try:
            session = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            got = [session.run(None, {name: x.numpy()})[0] for x in inputs]
        except Exception as err:  # onnxruntime's own error types: a graph that does not hold at some size
            raise Refused(f"onnxruntime cannot run it: {first_line(err)}") from err
        metadata_of(session, str(tmp))  # the metadata reads back as a deployment will read it
        return f"onnxruntime {ort.__version__} CPU", got
    if fmt == "pt2":
        extra = {"convzoo.json": ""}
        with quiet():
            program = torch.export.load(str(tmp), extra_files=extra)
        if (json_dict(extra["convzoo.json"]) or {}).get("format") != FORMAT:
            raise Refused("the .pt2 file lost its convzoo.json metadata")
        module = program.module()
        try:
            with torch.no_grad():
                got = [module(x).double().numpy() for x in inputs]
        except Exception as err:  # a guard of the program refused an input
            raise Refused(f"the program cannot run it: {first_line(err)}") from err
        return "torch.export.load", got
    reloaded = from_export_weights(tmp, json.loads((safetensors_header(tmp) or {})["convzoo"]), {})
    return "the weights reloaded into a fresh build", reference(reloaded.model, inputs)


def check_file(fmt: str, tmp: Path, inputs: Sequence[Tensor], expected: Sequence[np.ndarray]) -> Check:
    runtime, got = run_file(fmt, tmp, inputs)
    return compare(runtime, inputs, expected, got)
