"""The model registry: one `ModelInfo` per registered builder.

Builders register themselves with `@register_model(...)`; the registered name is the function name and
registering a name twice raises. Numbers the papers state live here (`PaperFigure`); numbers we compute
do not: they are pinned in ``tests/expected/models/<family>.json``.
"""
from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .errors import UserError, closest

__all__ = [
    "ModelInfo",
    "Paper",
    "PaperFigure",
    "create_model",
    "list_families",
    "list_models",
    "model_info",
    "register_model",
]


@dataclass(frozen=True)
class Paper:
    """A citation: who, when, what, and where to find it."""

    authors: str  # "Krizhevsky, Sutskever & Hinton"
    year: int
    title: str
    ref: str  # "NeurIPS 2012" or "arXiv:1512.03385"

    @property
    def short(self) -> str:
        first = self.authors.split(",")[0].split("&")[0].strip()
        several = "," in self.authors or "&" in self.authors
        return f"{first}{' et al.' if several else ''} {self.year}"

    def __str__(self) -> str:
        return f'{self.authors}, "{self.title}", {self.ref}'


@dataclass(frozen=True)
class PaperFigure:
    """A figure a paper states (parameters or multiply-adds) and how exactly it states it.

    Args:
        value: the figure as printed, in units (60e6, not 60).
        rel_tol: the precision the paper prints it with (0.05 for "60 million", 0 for "60,000").
        where: where the paper says it ("Table 2", "§3.5").
        gap: why our faithful build cannot reproduce it, or None when it can. A figure with a gap is
            tested to stay outside `rel_tol`, so fixing the gap forces the note to be updated.
    """

    value: float
    rel_tol: float
    where: str
    gap: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What convzoo knows about a registered network without building it."""

    name: str
    family: str  # the module that defines it: "alexnet", "vgg", "resnet", ...
    builder: Callable[..., nn.Module] = field(repr=False)
    paper: Paper
    input_size: tuple[int, int, int]  # (C, H, W) the paper uses
    params: PaperFigure | None = None  # trainable parameters the paper reports
    macs: PaperFigure | None = None  # multiply-adds the paper reports, at `input_size`
    deviations: tuple[str, ...] = ()  # how this network differs from the paper ("none" if empty)
    peers: Mapping[str, str] = field(default_factory=dict)  # {"torchvision": "alexnet"}: same network
    config: Any = None  # the configuration row of the paper's table this builder uses
    input_hint: str | None = None  # said when an input size does not fit ("227, or 224 with ...")
    aux_weight: float | None = None  # loss weight of auxiliary heads, where the paper has them

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.builder) or ""


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    paper: Paper,
    input_size: tuple[int, int, int],
    params: PaperFigure | None = None,
    macs: PaperFigure | None = None,
    deviations: tuple[str, ...] = (),
    peers: Mapping[str, str] | None = None,
    config: Any = None,
    input_hint: str | None = None,
    aux_weight: float | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register the decorated builder under its function name; a second registration raises."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered by {_REGISTRY[name].family}")
        family = builder.__module__.rsplit(".", 1)[-1]
        _REGISTRY[name] = ModelInfo(
            name=name, family=family, builder=builder, paper=paper, input_size=input_size,
            params=params, macs=macs, deviations=tuple(deviations), peers=dict(peers or {}),
            config=config, input_hint=input_hint, aux_weight=aux_weight,
        )
        return builder

    return wrap


def _load_families() -> None:
    from . import models  # noqa: F401  (importing the package registers every family)


def list_models(pattern: str = "*", *, family: str | None = None) -> list[str]:
    """Registered names matching the fnmatch `pattern` (and `family`, if given), sorted."""
    _load_families()
    return sorted(
        name for name, info in _REGISTRY.items()
        if fnmatch.fnmatchcase(name, pattern) and (family is None or info.family == family)
    )


def list_families() -> list[str]:
    """Family names (model modules), oldest paper first."""
    _load_families()
    first_year: dict[str, int] = {}
    for info in _REGISTRY.values():
        first_year[info.family] = min(info.paper.year, first_year.get(info.family, info.paper.year))
    return sorted(first_year, key=lambda f: (first_year[f], f))


def model_info(name: str) -> ModelInfo:
    """The `ModelInfo` of a registered name; an unknown name raises `UserError` with suggestions."""
    _load_families()
    if not isinstance(name, str) or name not in _REGISTRY:
        hint = closest(str(name), _REGISTRY)
        did_you_mean = f"; did you mean {', '.join(hint)}?" if hint else ""
        raise UserError(f"unknown model {name!r}{did_you_mean} (`convzoo list` shows all "
                        f"{len(_REGISTRY)} names)")
    return _REGISTRY[name]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered network; `None` overrides are dropped so CLI flags can pass straight through.

    Example: ``create_model("alexnet", num_classes=10, in_chans=1)``.
    """
    info = model_info(name)
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    options = _options(info)
    unknown = [k for k in kwargs if k not in options]
    if unknown:
        raise UserError(f"{name} has no option {unknown[0]!r}; it takes: {', '.join(sorted(options))}")
    try:
        model = info.builder(**kwargs)
    except (RuntimeError, TypeError, OverflowError, MemoryError) as err:
        if not kwargs:  # the registered network itself fails to build: a bug, with its traceback
            raise
        # The builders check their options' types and ranges; what still fails is a size torch cannot hold
        # (num_classes=10**21, or the memory of a real device): the values given are the cause.
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise UserError(f"{name} cannot be built with {given}: {str(err).splitlines()[0]}") from err
    model.name = name  # errors and reports speak of the registered name
    return model


def _options(info: ModelInfo) -> list[str]:
    """Keyword options a builder accepts: its own, plus those of the network class it returns."""
    names = [p.name for p in inspect.signature(info.builder).parameters.values()
             if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD]
    cls = inspect.signature(info.builder).return_annotation
    if isinstance(cls, str):
        cls = info.builder.__globals__.get(cls)
    if isinstance(cls, type):
        names += [p.name for p in inspect.signature(cls).parameters.values()
                  if p.kind is p.KEYWORD_ONLY and p.name not in ("cfg",)]
    return sorted(set(names))
