"""The analysis report: frozen records, and its renderings (terminal table, markdown, CSV, JSON).

Every renderer is a pure function of the `Report`. Units: ``params`` is a count; ``macs`` are
multiply-accumulates of convolutions and fully-connected layers per image, bias excluded; ``flops`` is
defined as 2 × macs; shapes are per image (C, H, W), without the batch dimension; receptive fields and
jumps are in input pixels, (height, width).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..render import fmt_count, fmt_shape, fmt_si, md_table, text_table

__all__ = ["SCHEMA_VERSION", "Diagnostic", "LayerRecord", "Report", "Totals", "visible_rows"]

SCHEMA_VERSION = 1
Pair = tuple[int, int]


@dataclass(frozen=True)
class LayerRecord:
    """One module call (or a module holding parameters that the forward never called).

    Figures are the module's *own*: a container's `params` are the parameters it holds directly (most
    hold none), its `macs` those of functional ops in its own ``forward`` (a diagnostic says so).
    """

    index: int
    name: str  # qualified module name; "" is the network itself
    type: str
    depth: int  # dotted components in `name`
    parent: int | None  # index of the calling module's record
    leaf: bool
    called: bool
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    kernel: Pair | None = None  # sliding-window layers only (convolution, pooling)
    stride: Pair | None = None
    padding: Pair | None = None
    dilation: Pair | None = None
    groups: int | None = None
    ceil_mode: bool = False
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    macs_source: str = ""  # "rule" (rules.MAC_RULES), "macs()" (the module's own), "aten" (counted ops)
    neurons: int = 0  # output elements per image, as the AlexNet paper counts neurons
    rf: Pair | None = None  # receptive field of the output tensor
    jump: Pair | None = None  # effective stride of the output tensor
    rf_start: Pair | None = None  # input coordinate where position (0, 0)'s field begins
    rf_in: Pair | None = None
    jump_in: Pair | None = None
    weight_layers: int | None = None  # convolutions + matrix products on the longest path to this output
    ops: tuple[tuple[str, int], ...] = ()  # convolution / pooling aten ops attributed to this call


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    non_trainable_params: int
    buffers: int  # elements of buffers (batch-norm running statistics), not parameters
    macs: int
    flops: int  # defined as 2 × macs
    activations: int  # Σ output elements of the leaf layers, per image
    batch: int
    weight_bytes: tuple[tuple[str, int], ...]  # (("fp32", n), ("fp16", n), ("int8", n))
    activation_bytes: tuple[tuple[str, int], ...]  # at `batch`, every leaf output kept (training-style)
    receptive_field: Pair | None  # of the last map larger than 1×1 (the features the head pools)
    jump: Pair | None
    rf_layer: str | None  # the layer that map comes from
    weight_layers: int | None  # weight layers on the longest path from input to output
    input_range: tuple[int, int | None] | None  # square sizes that work (hi None: unbounded); None if unknown
    params_status: str = "complete"
    macs_status: str = "complete"  # "partial": some MACs come from the aten count, not a rule
    rf_status: str = "complete"  # "partial": an op changed the map without a receptive-field rule
    layers_status: str = "complete"  # "partial": convolution or pooling ran outside any layer (functional)


@dataclass(frozen=True)
class Diagnostic:
    kind: str  # "macs", "receptive_field", "census", "params"
    where: str  # qualified module name ("" is the network's own forward)
    message: str


@dataclass(frozen=True)
class Report:
    """What `convzoo.analyze` found: rows, totals, diagnostics, and how they were obtained."""

    model: str
    input_size: tuple[int, int, int]
    rows: tuple[LayerRecord, ...]
    totals: Totals
    diagnostics: tuple[Diagnostic, ...] = ()
    census: tuple[tuple[str, int, int], ...] = ()  # (kind, aten ops seen, ops inside leaf layers)
    env: tuple[tuple[str, str], ...] = ()
    schema_version: int = SCHEMA_VERSION

    @property
    def complete(self) -> bool:
        return not self.diagnostics

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        return _from_dict(d)

    def to_csv(self, depth: int | None = None) -> str:
        return to_csv(self, depth)

    def to_markdown(self, depth: int | None = None) -> str:
        return to_markdown(self, depth)

    def to_table(self, depth: int | None = None) -> str:
        return to_table(self, depth)

    def explain(self) -> str:
        """Each layer's arithmetic with its numbers (see `convzoo.analysis.explain`)."""
        from .explain import explain  # explain renders records of this module

        return explain(self)


# --- rows at a depth ---------------------------------------------------------------------------------

def _shows(r: LayerRecord) -> bool:
    return r.leaf or r.params > 0 or r.macs > 0 or not r.called


def visible_rows(report: Report, depth: int | None = None) -> list[tuple[LayerRecord, bool]]:
    """Rows to show, each with `folded`: True when it stands for its whole subtree (figures summed).

    depth None: the leaf layers (and any module holding parameters or doing work itself).
    depth N: modules down to depth N; a module at depth N carries the figures of everything inside it.
    """
    rows = [r for r in report.rows if r.depth > 0 or r.params or r.macs]
    if depth is None:
        return [(r, False) for r in rows if _shows(r)]
    return [(r, r.depth == depth and not r.leaf) for r in rows if r.depth <= depth]


def subtree_sums(report: Report, index: int) -> tuple[int, int]:
    """(params, MACs) of record `index` and of every record under it."""
    params = macs = 0
    for r in report.rows:
        i: int | None = r.index
        while i is not None and i != index:
            i = report.rows[i].parent
        if i == index:
            params, macs = params + r.params, macs + r.macs
    return params, macs


# --- cells -------------------------------------------------------------------------------------------

def fmt_pair(p: Pair | None) -> str:
    if p is None:
        return ""
    return str(p[0]) if p[0] == p[1] else f"{p[0]}×{p[1]}"


def fmt_window(r: LayerRecord) -> str:
    if r.kernel is None:
        return ""
    parts = [f"{r.kernel[0]}×{r.kernel[1]}", f"s{fmt_pair(r.stride)}", f"p{fmt_pair(r.padding)}"]
    if r.dilation and r.dilation != (1, 1):
        parts.append(f"d{fmt_pair(r.dilation)}")
    if r.groups and r.groups > 1:
        parts.append(f"g{r.groups}")
    if r.ceil_mode:
        parts.append("ceil")
    return " ".join(parts)


_HEADERS = ["layer", "type", "window", "input", "output", "params", "MACs", "RF", "jump"]
_RIGHT = [False, False, False, True, True, True, True, True, True]


def _cells(report: Report, r: LayerRecord, folded: bool) -> list[str]:
    params, macs = subtree_sums(report, r.index) if folded else (r.params, r.macs)
    blank = not folded and not r.leaf and not r.params and not r.macs  # a container shown above its layers
    name = r.name or f"({r.type}.forward)"
    return [
        name + ("" if r.called else " (not called)"), r.type, fmt_window(r),
        fmt_shape(r.input_shape) if r.input_shape else "", fmt_shape(r.output_shape) if r.output_shape else "",
        "" if blank else fmt_count(params), "" if blank else fmt_count(macs), fmt_pair(r.rf), fmt_pair(r.jump),
    ]


def _body(report: Report, depth: int | None) -> list[list[str]]:
    return [_cells(report, r, folded) for r, folded in visible_rows(report, depth)]


def fmt_bytes(n: float) -> str:
    """Binary units: 243,860,896 -> '232.6 MiB'."""
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{int(n)} B"


def totals_lines(report: Report) -> list[tuple[str, str]]:
    t = report.totals
    lo_hi = t.input_range
    sizes = "not searched" if lo_hi is None else (f"{lo_hi[0]} to {lo_hi[1]}" if lo_hi[1] else f"{lo_hi[0]} or more")
    wb, ab = dict(t.weight_bytes), dict(t.activation_bytes)
    rf = (f"{t.receptive_field[0]}×{t.receptive_field[1]} pixels, jump {fmt_pair(t.jump)}, at {t.rf_layer}"
          if t.receptive_field else "none (no spatial map)")
    lines = [
        ("params", f"{fmt_count(t.params)} ({fmt_si(t.params)}, trainable {fmt_count(t.trainable_params)}, "
                   f"non-trainable {fmt_count(t.non_trainable_params)}; buffers {fmt_count(t.buffers)})"),
        ("MACs", f"{fmt_count(t.macs)} ({fmt_si(t.macs)}) per image; FLOPs = 2 × MACs = {fmt_count(t.flops)}"),
        ("activations", f"{fmt_count(t.activations)} values per image (Σ layer outputs)"),
        ("weight memory", f"{fmt_bytes(wb['fp32'])} fp32, {fmt_bytes(wb['fp16'])} fp16, {fmt_bytes(wb['int8'])} int8"),
        ("activation memory", f"{fmt_bytes(ab['fp32'])} fp32, {fmt_bytes(ab['fp16'])} fp16 at batch {t.batch}"),
        ("receptive field", rf),
        ("weight layers", f"{t.weight_layers} on the longest path" if t.weight_layers is not None else "unknown"),
        ("input sizes", sizes if lo_hi is None else f"square {sizes}"),
    ]
    status = [k for k, v in (("params", t.params_status), ("MACs", t.macs_status),
                             ("receptive field", t.rf_status), ("layer rows", t.layers_status)) if v != "complete"]
    if status:
        lines.append(("status", "partial: " + ", ".join(status)))
    return lines


def diagnostic_lines(report: Report) -> list[str]:
    return [f"[{d.kind}] {d.where or '(forward)'}: {d.message}" for d in report.diagnostics]


def _title(report: Report) -> str:
    return f"{report.model} at {fmt_shape(report.input_size)} (MACs per image; FLOPs = 2 × MACs)"


def to_table(report: Report, depth: int | None = None) -> str:
    lines = [_title(report), "", text_table(_HEADERS, _body(report, depth), right=_RIGHT), ""]
    width = max(len(k) for k, _ in totals_lines(report))
    lines += [f"{k.ljust(width)}  {v}" for k, v in totals_lines(report)]
    diags = diagnostic_lines(report)
    lines += ["", f"diagnostics ({len(diags)}):", *[f"  {d}" for d in diags]] if diags else ["diagnostics: none"]
    return "\n".join(lines)


def to_markdown(report: Report, depth: int | None = None) -> str:
    lines = [f"**{_title(report)}**", "", *md_table(_HEADERS, _body(report, depth), _RIGHT)]
    lines += ["", *[f"- **{k}**: {v}" for k, v in totals_lines(report)]]
    diags = diagnostic_lines(report)
    lines += ["", "Diagnostics:", *[f"- {d}" for d in diags]] if diags else ["- **diagnostics**: none"]
    return "\n".join(lines)


_CSV_FIELDS = [f.name for f in fields(LayerRecord) if f.name not in ("parent", "ops")]


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, tuple):
        return "x".join(str(x) for x in v)
    return v


def to_csv(report: Report, depth: int | None = None) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*_CSV_FIELDS, "folded"])
    for r, folded in visible_rows(report, depth):
        rec = asdict(r)
        if folded:
            rec["params"], rec["macs"] = subtree_sums(report, r.index)
        writer.writerow([_csv_cell(rec[k]) for k in _CSV_FIELDS] + [int(folded)])
    return buf.getvalue()


# --- JSON --------------------------------------------------------------------------------------------

def _to_dict(report: Report) -> dict[str, Any]:
    t = asdict(report.totals)
    t["weight_bytes"], t["activation_bytes"] = dict(report.totals.weight_bytes), dict(report.totals.activation_bytes)
    rows = []
    for r in report.rows:
        d = asdict(r)
        d["ops"] = dict(r.ops)
        rows.append(d)
    return {
        "schema_version": report.schema_version, "model": report.model, "input_size": list(report.input_size),
        "units": {"params": "count", "macs": "multiply-accumulates per image (conv + fc, bias excluded)",
                  "flops": "2 × macs", "rf": "input pixels (h, w)", "bytes": "bytes"},
        "env": dict(report.env), "totals": t,
        "census": [{"kind": k, "seen": s, "in_layers": n} for k, s, n in report.census],
        "diagnostics": [asdict(d) for d in report.diagnostics], "rows": rows,
    }


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _from_dict(d: dict[str, Any]) -> Report:
    if d.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"report schema version {d.get('schema_version')!r}; this convzoo reads {SCHEMA_VERSION}")
    t = {k: _tuples(v) for k, v in d["totals"].items()}
    t["weight_bytes"], t["activation_bytes"] = (tuple(d["totals"][k].items())
                                                for k in ("weight_bytes", "activation_bytes"))
    rows = []
    for r in d["rows"]:
        r = {k: _tuples(v) for k, v in r.items()}
        r["ops"] = tuple(d_ for d_ in r["ops"].items())
        rows.append(LayerRecord(**r))
    return Report(
        model=d["model"], input_size=tuple(d["input_size"]), rows=tuple(rows), totals=Totals(**t),
        diagnostics=tuple(Diagnostic(**x) for x in d["diagnostics"]),
        census=tuple((c["kind"], c["seen"], c["in_layers"]) for c in d["census"]),
        env=tuple(d["env"].items()), schema_version=d["schema_version"],
    )
