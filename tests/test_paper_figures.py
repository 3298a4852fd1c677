"""Every figure a paper states (ModelInfo.params / .macs) holds within the paper's printed precision,
or, where the paper's own figure cannot be reproduced, stays outside it as the documented gap says."""
from __future__ import annotations

import pytest

import convzoo

CASES = [(name, kind) for name in convzoo.list_models() for kind in ("params", "macs")
         if getattr(convzoo.model_info(name), kind) is not None]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_paper_figure(name: str, kind: str) -> None:
    info = convzoo.model_info(name)
    fig = getattr(info, kind)
    figs = convzoo.figures(name)
    ours = figs["trainable_params"] if kind == "params" else figs["macs"]
    within = abs(ours - fig.value) <= fig.rel_tol * fig.value
    if fig.gap is None:
        assert within, f"{name} {kind}: ours {ours:,} vs paper {fig.value:,.0f} ({fig.where}) ±{fig.rel_tol:.2%}"
    else:
        assert not within, f"{name} {kind}: the documented gap is gone ({ours:,}); update the note: {fig.gap}"
        assert len(fig.gap) > 20


def test_gaps_are_listed_in_the_family_docstring() -> None:
    """A reader of the family file sees every gap without running anything."""
    import importlib

    for name, kind in CASES:
        info = convzoo.model_info(name)
        fig = getattr(info, kind)
        if fig.gap is not None:
            doc = importlib.import_module(f"convzoo.models.{info.family}").__doc__ or ""
            assert "Deviations" in doc or "gap" in doc.lower(), info.family
