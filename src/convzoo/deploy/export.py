"""Export a network to ONNX, a `torch.export` program (``.pt2``) or safetensors weights, checked before it counts.

An export is done only once the file has been read back and run on the same inputs as the network it came
from: an ONNX file under onnxruntime's CPU provider, a ``.pt2`` program through `torch.export.load`, safetensors
weights loaded into a fresh build of the network. The check passes when the largest logit difference is at most
1e-4 of the largest logit and every image keeps its top-1 class. Otherwise `export` raises `UserError`, and since
the file is written and checked under a temporary name (`fsio.atomic_path`), nothing is left behind.

The check's inputs are random images (a fixed generator): a batch of 4 and a batch of 1 at the export size,
plus, where height and width are dynamic, a batch of 2 at a larger, non-square size (32 and 64 pixels more, the
total stride of most of these networks, so that the last feature map changes size too).

Dynamic sizes. The batch is always dynamic. Height and width are dynamic for networks that take any size from
their smallest on (a global pooling before the head: `convzoo.input_range` finds no upper bound); a network
with a fixed-size fully-connected head (LeNet, AlexNet, VGG) keeps the size it was exported at.

Exporters. ONNX goes through `torch.export` and torch's ONNX translator (``torch.onnx.export`` of the exported
program, the exporter torch develops) at opset 20. `torch.export` reasons about symbolic sizes and refuses a
range in which a branch of the computation could change: a feature map of 1 pixel (torch broadcasts size 1),
so the declared range starts at the smallest side where every map is 2 pixels or more (`dynamic_min_side`);
and the rounding of ceil-mode pooling (SqueezeNet, GoogLeNet), which it cannot prove always the same. Where it
refuses, torch's TorchScript-based exporter writes the graph instead, at the same opset and with the same
dynamic axes: it computes sizes with ONNX's own shape operators, without guards. The record and the file say
which exporter wrote it, and the record says why the first one refused. A ``.pt2`` program whose spatial sizes
`torch.export` refuses keeps its export size (dynamic batch only).

What the file carries: the network's registered name and builder options, the class names (for a network
that was not trained, "0" … "N-1"), the input specification (size, channels, the per-channel mean and std of
the stored images, how they are resized; ImageNet's mean and std for a network that was not trained here, which
is what torchvision's and timm's weights expect), the stored image size the network was trained from, the
dynamic axes and the smallest side they are declared for, the opset and the exporter. ONNX keeps each entry as a
JSON string in ``metadata_props``; a ``.pt2`` program as ``convzoo.json`` in its extra files; safetensors weights
as the ``convzoo`` entry of the header, as convzoo's checkpoints do.
"""
from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import __version__
from ..errors import UserError
from ..fsio import atomic_path
from .parity import TOLERANCE, Check, Refused, check_file, first_line, parity_inputs, quiet, reference
from .source import FORMAT, Exportable, default_stats, json_dict, load_exportable, safetensors_header

__all__ = ["FORMAT", "FORMATS", "OPSET", "TOLERANCE", "Check", "ExportRecord", "Exportable", "default_stats",
           "export", "load_exportable", "parity_inputs", "read_metadata"]

FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "safetensors": ".safetensors"}  # format -> the file suffix it takes
OPSET = 20  # ONNX opset of both exporters (onnxruntime ≥ 1.17 runs it)
_ONNX_DYNAMO = "torch.onnx from torch.export"
_ONNX_TORCHSCRIPT = "torch.onnx TorchScript-based"


@dataclass(frozen=True)
class ExportRecord:
    """What `export` wrote and how its check went."""

    path: Path
    format: str
    model: str
    origin: str
    input_size: tuple[int, int, int]  # (C, H, W) of the export
    dynamic: tuple[str, ...]  # "batch", and "height", "width" where the file takes any size
    opset: int | None
    exporter: str
    file_bytes: int
    check: Check
    export_s: float  # building the file (tracing, translating, writing)
    check_s: float  # reading it back and running the check
    metadata: dict[str, Any]
    refused: tuple[str, ...] = ()  # why the exporters tried before this one failed

    def describe(self) -> str:
        c, h, w = self.input_size
        spatial = "height" in self.dynamic
        size = f"N×{c}×H×W (H, W ≥ {self.metadata.get('dynamic_min_side')})" if spatial else f"N×{c}×{h}×{w}"
        label = {"onnx": f"ONNX opset {self.opset}", "pt2": "torch.export program",
                 "safetensors": "safetensors weights"}
        lines = [f"exported {self.model} ({self.origin}) to {self.path}: {label[self.format]} by {self.exporter}, "
                 f"{self.file_bytes / 1e6:.2f} MB, input {size}, {len(self.metadata['classes'])} classes "
                 f"[{self.export_s:.1f} s + check {self.check_s:.1f} s]"]
        lines += [f"note: {self.exporter} wrote it because {r}" for r in self.refused[:1]]
        return "\n".join([*lines, self.check.describe()])

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["check"]["passed"] = self.check.passed
        return d


# --- the exporters ------------------------------------------------------------------------------------

def _forward_range(model: nn.Module, hint: int) -> tuple[int, int | None] | None:
    """The square sizes the eval-mode forward takes (`convzoo.input_range` without the auxiliary heads, whose
    fully-connected layers fix the size in training but are not part of the exported graph)."""
    from ..inputs import shape_twin, twin_range

    twin = shape_twin(model)
    if getattr(twin, "aux_logits", False):
        twin.aux_logits = False
    return twin_range(twin, int(getattr(model, "in_chans", 3)), hint)


ALL_AXES = ("batch", "height", "width")
BATCH_AXIS = ("batch",)


def _unit_free_floor(model: nn.Module, lo: int, side: int) -> int | None:
    """The smallest square side from `lo` on at which no feature map is one pixel high or wide; None when the
    export size `side` itself has one.

    `torch.export` treats a size of 1 as a special case (it broadcasts), so a symbolic height whose range
    reaches a 1-pixel map anywhere gets a guard and the export is refused; the dynamic range starts above it.
    The outputs of adaptive pooling are left out: their size is a constant, not a function of the input.
    """
    from ..inputs import shape_twin  # the shape-only meta copy the input-size search uses

    twin = shape_twin(model)
    smallest: list[int] = []

    def hook(module: nn.Module, args: tuple, out: object) -> None:
        if isinstance(out, Tensor) and out.dim() == 4 and not isinstance(module, _ADAPTIVE):
            smallest.append(min(out.shape[2:]))

    leaves = [m for m in twin.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    chans = int(getattr(model, "in_chans", 3))

    def unit_free(s: int) -> bool:
        smallest.clear()
        with torch.no_grad():
            twin(torch.empty(1, chans, s, s, device="meta"))
        return min(smallest, default=2) >= 2

    try:
        if not unit_free(side):
            return None
        bad, good = lo - 1, side  # binary search: map sizes grow with the input
        while good - bad > 1:
            mid = (good + bad) // 2
            good, bad = (mid, bad) if unit_free(mid) else (good, mid)
        return good
    finally:
        for h in handles:
            h.remove()


_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class _Attempt:
    exporter: str
    axes: tuple[str, ...]  # the dynamic axes
    min_side: int | None  # the smallest height and width they are declared for

    def __str__(self) -> str:
        return f"{self.exporter} with {'/'.join(self.axes) or 'no'} dynamic"


def _attempts(fmt: str, spatial: bool, lo: int, floor: int | None) -> list[_Attempt]:
    """The exporters to try, in order, until one writes a file that passes its check. `torch.export` with every
    axis dynamic first; where it refuses, or its file fails the check, the TorchScript exporter (its graph
    computes sizes with ONNX's shape operators, without guards); last, the batch alone dynamic."""
    if fmt == "safetensors":
        return [_Attempt("safetensors", (), None)]
    first = _ONNX_DYNAMO if fmt == "onnx" else f"torch.export {torch.__version__}"
    out = [_Attempt(first, ALL_AXES, floor)] if spatial and floor is not None else []
    if fmt == "onnx":
        out += [_Attempt(_ONNX_TORCHSCRIPT, ALL_AXES, lo)] if spatial else []
        return [*out, _Attempt(_ONNX_DYNAMO, BATCH_AXIS, None), _Attempt(_ONNX_TORCHSCRIPT, BATCH_AXIS, None)]
    return [*out, _Attempt(first, BATCH_AXIS, None)]


def _torch_export(model: nn.Module, x: Tensor, attempt: _Attempt) -> torch.export.ExportedProgram:
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1)}
    if "height" in attempt.axes:
        side = attempt.min_side
        dims[2], dims[3] = torch.export.Dim("height", min=side), torch.export.Dim("width", min=side)
    with quiet():
        return torch.export.export(model, (x,), dynamic_shapes=(dims,), strict=False)


def _onnx_proto(model: nn.Module, x: Tensor, attempt: _Attempt, opset: int) -> Any:
    import onnx

    with quiet():
        if attempt.exporter == _ONNX_DYNAMO:
            program = torch.onnx.export(_torch_export(model, x, attempt), (x,), dynamo=True, verbose=False,
                                        opset_version=opset, input_names=["input"], output_names=["logits"],
                                        optimize=True)
            return _name_axes(program.model_proto)
        names = {0: "batch"} | ({2: "height", 3: "width"} if "height" in attempt.axes else {})
        buf = io.BytesIO()
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": names, "logits": {0: "batch"}})
        return onnx.load_from_string(buf.getvalue())


def _name_axes(proto: Any) -> Any:
    """Name the symbolic sizes "batch", "height" and "width" (an exported program calls them s0, s1, ...),
    in every shape of the graph that mentions them."""
    import re

    dims = proto.graph.input[0].type.tensor_type.shape.dim
    rename = {dims[i].dim_param: name for i, name in ((0, "batch"), (2, "height"), (3, "width"))
              if i < len(dims) and dims[i].dim_param}
    if not rename:
        return proto
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, rename)) + r")\b")
    for info in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for d in info.type.tensor_type.shape.dim:
            if d.dim_param:
                d.dim_param = pattern.sub(lambda m: rename[m.group(1)], d.dim_param)
    return proto


def _write(fmt: str, net: Exportable, x: Tensor, attempt: _Attempt, opset: int, meta: dict[str, Any],
           tmp: Path) -> None:
    """Write the file for one attempt (its metadata says which); `Refused` when the exporter fails."""
    meta.update(exporter=attempt.exporter, dynamic=list(attempt.axes), dynamic_min_side=attempt.min_side,
                opset=opset if fmt == "onnx" else None)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.model.state_dict().items()}
        try:
            save_file(tensors, str(tmp), metadata={"convzoo": json.dumps(meta)})
        except OSError:
            raise
        except Exception as err:  # safetensors reports a full disk as its own error type
            raise OSError(28, str(err)) from err
        return
    try:
        if fmt == "pt2":
            program = _torch_export(net.model, x, attempt)
        else:
            proto = _onnx_proto(net.model, x, attempt, opset)
    except Exception as err:  # each exporter fails in its own ways; the next attempt may work
        raise Refused(first_line(err)) from err
    if fmt == "pt2":
        with quiet():
            torch.export.save(program, str(tmp), extra_files={"convzoo.json": json.dumps(meta)})
        return
    import onnx

    onnx.helper.set_model_props(proto, {k: json.dumps(v) for k, v in meta.items()})
    proto.doc_string = f"{net.name} exported by convzoo {__version__}; metadata_props hold JSON values"
    onnx.save_model(proto, str(tmp))


# --- export ---------------------------------------------------------------------------------------

def _format_of(fmt: str | None, out: Path) -> str:
    by_suffix = {s: f for f, s in FORMATS.items()}
    if fmt is None:
        if out.suffix not in by_suffix:
            raise UserError(f"cannot tell the format of {str(out)!r} from its suffix; add --format "
                            f"{'|'.join(FORMATS)}")
        return by_suffix[out.suffix]
    if fmt not in FORMATS:
        from ..errors import closest

        hint = closest(fmt, FORMATS)
        raise UserError(f"unknown export format {fmt!r}{'; did you mean ' + hint[0] + '?' if hint else ''} "
                        f"(formats: {', '.join(FORMATS)})")
    if out.suffix in by_suffix and by_suffix[out.suffix] != fmt:
        raise UserError(f"--out {str(out)!r} names a {by_suffix[out.suffix]} file but the format is {fmt}; end it "
                        f"in {FORMATS[fmt]} or leave out --format")
    return fmt


def _writable(out: Path) -> None:
    """Refuse before any work an output that cannot be written (a directory, a read-only folder)."""
    if out.is_dir():
        raise UserError(f"--out {str(out)!r} is a directory; give a file name such as {str(out / 'model.onnx')!r}")
    parent = next((p for p in [out.parent, *out.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {str(out)!r}: {str(parent)!r} is not a writable directory")


def _export_size(net: Exportable, input_size: Sequence[int] | None) -> tuple[int, int, int]:
    chans = int(getattr(net.model, "in_chans", net.spec.channels))
    if input_size is None:
        return (chans, *net.spec.size)  # type: ignore[return-value]
    dims = tuple(int(d) for d in input_size)
    if len(dims) == 1:
        dims = (dims[0], dims[0])
    if len(dims) == 3 and dims[0] != chans:
        raise UserError(f"{net.name} takes {chans} input channel(s), not {dims[0]}; give HxW or {chans}xHxW")
    if len(dims) not in (2, 3) or min(dims) < 1:
        raise UserError(f"input size {input_size!r} is not HxW or CxHxW")
    return (chans, *dims[-2:])  # type: ignore[return-value]


def _metadata(net: Exportable, size: tuple[int, int, int], rng: tuple[int, int | None] | None) -> dict[str, Any]:
    """The metadata every exported file carries (the exporter's own entries are added when it is known)."""
    spec = replace(net.spec, size=tuple(size[1:]), channels=size[0])
    stored = list(net.stored_size) if net.stored_size else list(spec.size)
    return {"format": FORMAT, "model": net.name, "options": net.options, "classes": list(net.classes),
            "input": spec.to_json(), "stored_size": stored, "input_range": list(rng) if rng else None,
            "origin": net.origin, "convzoo": __version__, "torch": torch.__version__}


def export(source: str | os.PathLike[str] | Exportable, fmt: str | None, out: str | os.PathLike[str], *,
           model: str | None = None, weights_source: str | None = None, options: dict[str, Any] | None = None,
           seed: int = 0, input_size: Sequence[int] | None = None, opset: int = OPSET) -> ExportRecord:
    """Export SOURCE (see `load_exportable`) to `out` as `fmt` ("onnx", "pt2" or "safetensors"; None: from the
    suffix), check the file and return the record; a failed check raises `UserError` and writes nothing.

    `input_size` is (H, W) or (C, H, W) (default: the run's input, else the paper's).
    """
    out = Path(out)
    _writable(out)
    fmt = _format_of(fmt, out)
    net = source if isinstance(source, Exportable) else load_exportable(
        source, model=model, weights_source=weights_source, options=options, seed=seed)
    size = _export_size(net, input_size)
    rng = _forward_range(net.model, size[1])
    spatial = rng is not None and rng[1] is None and fmt != "safetensors"  # no fully-connected head fixes the size
    inputs = parity_inputs(size[0], size[1:], spatial)  # type: ignore[arg-type]
    expected = reference(net.model, inputs)  # also the network's own error for a size it cannot take
    lo = rng[0] if rng else 1
    floor = _unit_free_floor(net.model, lo, min(size[1:])) if spatial else None
    meta = _metadata(net, size, rng)
    refused: list[str] = []
    check: Check | None = None
    with atomic_path(out) as tmp:
        for attempt in _attempts(fmt, spatial, lo, floor):
            keep = [i for i, x in enumerate(inputs) if "height" in attempt.axes or tuple(x.shape[2:]) == size[1:]]
            t0 = time.perf_counter()
            try:
                _write(fmt, net, inputs[0], attempt, opset, meta, tmp)
                t1 = time.perf_counter()
                check = check_file(fmt, tmp, [inputs[i] for i in keep], [expected[i] for i in keep])
            except Refused as err:
                refused.append(f"{attempt} failed: {err}")
                continue
            if check.passed:
                break
            refused.append(f"{attempt} wrote a file that failed its check ({check.rel_diff:.2g} of the largest logit, "
                           f"top-1 {check.top1_same}/{check.images})")
        else:
            if check is None:
                raise UserError(f"{net.name} cannot be exported to {fmt}: {'; '.join(refused)}")
            raise UserError(f"the {fmt} export of {net.name} does not match torch, so it was not written: "
                            f"{check.describe()}; please report it with the network, --input and the versions")
        t2 = time.perf_counter()
        file_bytes = tmp.stat().st_size
    return ExportRecord(out, fmt, net.name, net.origin, size, attempt.axes, meta["opset"], attempt.exporter,
                        file_bytes, check, t1 - t0, t2 - t1, meta, tuple(refused))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The convzoo metadata of an exported file (ONNX, .pt2 or safetensors)."""
    path = Path(path)
    if path.suffix == ".onnx":
        from .onnx_predict import read_onnx_metadata

        return read_onnx_metadata(str(path))
    if path.suffix == ".pt2":
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                name = next(n for n in z.namelist() if n.endswith("extra/convzoo.json"))
                found = json_dict(z.read(name).decode())
        except (OSError, zipfile.BadZipFile, StopIteration):
            found = None
    else:
        found = json_dict((safetensors_header(path) or {}).get("convzoo"))
    if not found or found.get("format") != FORMAT:
        raise UserError(f"{str(path)!r} is not a file written by convzoo export (no {FORMAT} metadata)")
    return found
