"""Shared test set-up: deterministic seeds, and a small thread count when tests run in parallel."""
from __future__ import annotations

import os

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one thread each
        torch.set_num_threads(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/*.txt from the current output instead of comparing")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
