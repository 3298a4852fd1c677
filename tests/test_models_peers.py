"""Equality with the peers: every declared peer's random weights, loaded into ours, give the same outputs.

The generic case below covers each (model, source) pair that a ModelInfo declares, with default options;
family test files add the cases with options (widths, auxiliary heads).
"""
from __future__ import annotations

import pytest

import convzoo
from helpers import assert_same_as_peer

CASES = [(name, source, peer) for name in convzoo.list_models()
         for source, peer in convzoo.model_info(name).peers.items()]


@pytest.mark.parametrize(("name", "source", "peer"), CASES, ids=[f"{n}-{s}" for n, s, _ in CASES])
def test_same_outputs_as_peer(name: str, source: str, peer: str) -> None:
    if source == "timm":
        pytest.importorskip("timm")
    assert_same_as_peer(name, source, peer)
