"""The registry: names, uniqueness, lookup errors, and what every ModelInfo must carry."""
from __future__ import annotations

import importlib
import inspect
import re

import pytest
import torch

import convzoo
from convzoo.peers import SOURCES
from convzoo.registry import Paper, register_model

NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def test_names_are_lower_snake_case() -> None:
    bad = [n for n in convzoo.list_models() if not NAME.match(n)]
    assert not bad


def test_registering_a_name_twice_raises() -> None:
    def resnet18(**kwargs):  # same name as a registered builder
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="already registered"):
        register_model(paper=Paper("A", 2000, "T", "R"), input_size=(3, 32, 32))(resnet18)


def test_each_family_module_registers_exactly_its_public_builders() -> None:
    for family in convzoo.list_families():
        module = importlib.import_module(f"convzoo.models.{family}")
        builders = sorted(
            n for n, f in vars(module).items()
            if inspect.isfunction(f) and f.__module__ == module.__name__ and n in convzoo.list_models()
        )
        assert builders == convzoo.list_models(family=family)
        assert (module.__doc__ or "").count("Deviations") >= 1, f"{family}: docstring lists no deviations"


def test_list_models_pattern_and_family() -> None:
    assert convzoo.list_models("resnet1*") == ["resnet101", "resnet101_v1_5", "resnet152", "resnet152_v1_5",
                                               "resnet18"]
    assert convzoo.list_models(family="nonexistent") == []
    assert set(convzoo.list_models(family="resnet")) <= set(convzoo.list_models())


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(convzoo.UserError, match=r"unknown model 'resnet5'; did you mean resnet50"):
        convzoo.create_model("resnet5")
    with pytest.raises(convzoo.UserError, match="unknown model"):
        convzoo.model_info("no_such_net_at_all")


def test_unknown_option_names_the_options() -> None:
    with pytest.raises(convzoo.UserError, match=r"resnet18 has no option 'width'; it takes: .*dropout"):
        convzoo.create_model("resnet18", width=2)


def test_none_overrides_are_dropped() -> None:
    with torch.device("meta"):
        model = convzoo.create_model("resnet18", num_classes=None, dropout=None)
    assert model.num_classes == 1000 and model.name == "resnet18"


@pytest.mark.parametrize("name", convzoo.list_models())
def test_model_info_is_complete(name: str) -> None:
    info = convzoo.model_info(name)
    assert info.name == name and info.family
    assert info.paper.year >= 1989 and info.paper.title and info.paper.ref
    assert len(info.input_size) == 3 and all(isinstance(d, int) and d > 0 for d in info.input_size)
    assert set(info.peers) <= set(SOURCES)
    assert info.doc, f"{name}: builder has no docstring"
    for fig in (info.params, info.macs):
        if fig is not None:
            assert fig.value > 0 and 0 <= fig.rel_tol < 0.5 and fig.where
