"""Builder options: a value out of range or of the wrong type is refused by the network itself, as one
`UserError` line naming the option and the value, and the command line turns it into exit status 2."""
from __future__ import annotations

import subprocess
import sys
from functools import partial

import pytest
import torch
from torch import nn

import convzoo
from convzoo import inputs
from convzoo.analysis import analyze
from convzoo.cli import main
from convzoo.errors import UserError
from convzoo.options import check_bool, check_choice, check_float, check_int, check_layer, check_probability
from convzoo.registry import _options, model_info

# Clearly invalid values for every option a registered builder takes: out of range, or of a type that
# `--set KEY=VALUE` can deliver (ast.literal_eval gives ints, floats, bools, or the text itself).
INVALID: dict[str, tuple[object, ...]] = {
    "num_classes": (0, -1, 2.5, "10", True),
    "in_chans": (0, -3, 1.0, "abc", False),
    "dropout": (-0.1, 1, 1.5, float("nan"), "0.5", True),
    "conv1_padding": (-3, -1, 6, 1000, 2.0, "abc", True),
    "aux_logits": ("yes", "True", 1, 0),
    "width_mult": (0, -0.5, float("nan"), float("inf"), "1.0", True),
    "groups": (0, -1, 5, 3.0, "3", True),
    "scale": (0, -1.0, 0.75, "1.0", True),
    "output": ("softmax", "", 0, True),
    "act": ("relu", 3, nn.ReLU()),
}
CASES = [(name, option) for name in convzoo.list_models() for option in _options(model_info(name))]


def test_every_option_has_invalid_values_here() -> None:
    """A new builder option must get its invalid values above (and a check in its network)."""
    assert {option for _, option in CASES} <= set(INVALID)


@pytest.mark.parametrize(("name", "option"), CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_invalid_values_are_refused_by_the_network(name: str, option: str) -> None:
    for bad in INVALID[option]:
        with torch.device("meta"), pytest.raises(UserError) as raised:
            convzoo.create_model(name, **{option: bad})
        message = str(raised.value)
        assert option in message and repr(bad) in message, (bad, message)
        assert "\n" not in message
        assert "cannot be built with" not in message, message  # the network's own check, not the safety net


@pytest.mark.parametrize(("name", "options"), [
    ("alexnet", {"conv1_padding": 0}), ("alexnet", {"conv1_padding": 5}), ("alexnet_owt", {"conv1_padding": 5}),
    ("googlenet", {"aux_logits": True}), ("googlenet_bn", {"aux_logits": False}),
    ("inception_v3", {"aux_logits": True}), ("mobilenet_v1", {"width_mult": 1}),
    ("mobilenet_v1", {"act": partial(nn.LeakyReLU, 0.1)}), ("mobilenet_v2_x0_5", {"width_mult": 0.5}),
    ("shufflenet_v1_g1", {"scale": 1}), ("shufflenet_v1_g3", {"groups": 3}), ("lenet5", {"output": "linear"}),
    ("resnet18", {"dropout": 0, "num_classes": 1, "in_chans": 1}),
])
def test_values_at_the_limits_are_taken(name: str, options: dict[str, object]) -> None:
    report = analyze(name, options=options)
    assert report.totals.params > 0 and report.totals.input_range is not None


def test_choices_keep_their_canonical_type() -> None:
    with torch.device("meta"):
        assert convzoo.create_model("shufflenet_v1_g1", scale=1).scale == 1.0
        assert isinstance(convzoo.create_model("shufflenet_v1_g1", scale=1).scale, float)
        assert convzoo.create_model("lenet5", output="linear").output == "linear"


@pytest.mark.parametrize(("name", "options", "message"), [
    ("shufflenet_v1_g3_x0_5", {"groups": 8}, "shufflenet_v1_g3_x0_5 has groups=3; build shufflenet_v1_g8_x0_5"),
    ("shufflenet_v1_g3_x0_5", {"groups": 2}, "build shufflenet_v1_g2 with scale=0.5 for groups=2"),
    ("shufflenet_v1_g3", {"groups": -1}, "ShuffleNetV1: groups must be one of 1, 2, 3, 4 or 8, got -1"),
    ("mobilenet_v2_x0_5", {"width_mult": -1}, "MobileNetV2: width_mult must be a positive number, got -1"),
    ("mobilenet_v1_x0_5", {"width_mult": 0}, "MobileNetV1: width_mult (α) must be a positive number, got 0"),
])
def test_fixed_forms_name_the_network_that_builds_a_valid_value(name: str, options: dict[str, object],
                                                                 message: str) -> None:
    """A registered form with a fixed width or group count refuses another one by naming the form to build;
    a value that no form takes is refused as invalid, not sent to a form that does not exist."""
    with torch.device("meta"), pytest.raises(UserError) as raised:
        convzoo.create_model(name, **options)
    assert message in str(raised.value)


def test_sizes_torch_cannot_hold_are_a_user_error() -> None:
    with torch.device("meta"), pytest.raises(UserError, match=r"^resnet18 cannot be built with num_classes=10{21}: "):
        convzoo.create_model("resnet18", num_classes=10**21)


# --- the validators -------------------------------------------------------------------------------

def test_validator_messages() -> None:
    def message(check, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
        with pytest.raises(UserError) as raised:
            check("Net", *args, **kwargs)
        return str(raised.value)

    assert message(check_int, "k", -3, minimum=0, maximum=5, note="3 in the paper") == \
        "Net: k must be an integer from 0 to 5, got -3; 3 in the paper"
    assert message(check_int, "k", 0, minimum=1) == "Net: k must be a positive integer, got 0"
    assert message(check_int, "k", True, minimum=0) == "Net: k must be a non-negative integer, got True"
    assert message(check_float, "w", 0, minimum=0, min_open=True) == "Net: w must be a positive number, got 0"
    assert message(check_float, "w", 1, minimum=0, maximum=1, max_open=True) == \
        "Net: w must be a number in [0, 1), got 1"
    assert message(check_probability, "dropout", 1.5) == "Net: dropout is a probability in [0, 1), got 1.5"
    assert message(check_bool, "aux", "yes") == "Net: aux must be True or False, got 'yes'"
    assert message(check_choice, "out", "x", ("a", "b")) == "Net: out must be 'a' or 'b', got 'x'"
    assert message(check_choice, "g", 3.0, (1, 2, 3)) == "Net: g must be one of 1, 2 or 3, got 3.0"
    assert "e.g. nn.ReLU" in message(check_layer, "act", nn.Conv2d, "nn.ReLU")  # needs arguments


def test_validators_return_the_value() -> None:
    assert check_int("Net", "k", 5, minimum=0, maximum=5) == 5
    assert check_float("Net", "w", 2, minimum=0, min_open=True) == 2.0
    assert check_probability("Net", "p", 0) == 0.0
    assert check_choice("Net", "s", 1, (0.5, 1.0)) == 1.0
    assert check_layer("Net", "act", nn.ReLU6, "nn.ReLU") is nn.ReLU6


# --- the analysis path ----------------------------------------------------------------------------

def test_default_input_follows_the_channels_built_for() -> None:
    assert analyze("resnet18", options={"in_chans": 1}, find_input_range=False).input_size == (1, 224, 224)


def test_search_steps_near_the_hint_when_no_usual_size_works() -> None:
    """A fixed head whose window of sizes misses 224, 227, 299, … is still found near the paper's size."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 241 * 241, 2))  # takes 243 only
    assert inputs.input_range(net, 240) == (243, 243)


def test_no_size_at_all_blames_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """If options leave a network no input size, analysis says so; without options it stays torch's error."""
    monkeypatch.setattr(inputs, "twin_range", lambda *args: None)
    with pytest.raises(UserError, match=r"alexnet cannot take a 3×100×100 input: at head.fc6 .*built with "
                                        r"conv1_padding=2 it takes no square size tried .*change those options"):
        analyze("alexnet", (3, 100, 100), options={"conv1_padding": 2}, find_input_range=False)
    with pytest.raises(RuntimeError):
        analyze("alexnet", (3, 100, 100), find_input_range=False)


# --- the command line -----------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "message"), [
    (["summary", "alexnet", "--set", "conv1_padding=-3"],
     "AlexNet: conv1_padding must be an integer from 0 to 5, got -3; the paper's is 0 (227 input), torchvision's "
     "2 (224 input)"),
    (["summary", "alexnet", "--set", "conv1_padding=abc"], "AlexNet: conv1_padding must be an integer from 0 to 5, "
                                                           "got 'abc'"),
    (["summary", "googlenet", "--set", "aux_logits=yes"], "GoogLeNet: aux_logits must be True or False, got 'yes'"),
    (["summary", "shufflenet_v1_g3", "--set", "groups=3.0"], "ShuffleNetV1: groups must be one of 1, 2, 3, 4 or 8, "
                                                             "got 3.0"),
    (["summary", "mobilenet_v2", "--set", "width_mult=0"], "MobileNetV2: width_mult must be a positive number, got 0"),
    (["summary", "mobilenet_v1", "--set", "act=relu"], "MobileNetV1: act must be a layer class"),
    (["summary", "lenet5", "--set", "output=softmax"], "LeNet5: output must be 'rbf' or 'linear', got 'softmax'"),
    (["summary", "resnet18", "--num-classes", "0"], "ResNet: num_classes must be a positive integer, got 0"),
    (["summary", "resnet18", "--set", "num_classes=1000000000000000000000"], "resnet18 cannot be built with"),
    (["compare", "alexnet", "alexnet_owt", "--set", "conv1_padding=9"], "conv1_padding must be an integer from 0 to 5"),
])
def test_bad_options_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                             message: str) -> None:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("convzoo: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err


def test_reported_command_exits_2_without_a_traceback() -> None:
    """The report: `convzoo summary alexnet --set conv1_padding=-3` ended in a meta-device traceback."""
    done = subprocess.run([sys.executable, "-m", "convzoo", "summary", "alexnet", "--set", "conv1_padding=-3"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("convzoo: error: AlexNet: conv1_padding must be an integer from 0 to 5, got -3")


def test_legal_options_summarise(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "alexnet", "--set", "conv1_padding=2", "--input", "224"]) == 0
    assert main(["summary", "resnet18", "--in-chans", "1"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "alexnet at 3×224×224" in out and "resnet18 at 1×224×224" in out
