"""The command line: every registered name listed, one-line errors with exit status 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import convzoo
from convzoo.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_registered_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list")
    listed = [line.split()[0] for line in out.splitlines()[2:]]
    assert code == 0 and listed == convzoo.list_models()


def test_list_json_and_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "resnet18", "--json")
    rows = json.loads(out)
    assert code == 0 and rows == [{"name": "resnet18", "family": "resnet", "paper": "He et al. 2015",
                                   "input": [3, 224, 224], "params": 11_689_512}]


def test_info_states_paper_deviations_and_figures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", "resnet50_v1_5")
    assert code == 0
    assert "Deep Residual Learning" in out and "3×224×224" in out
    assert "25,557,032" in out and "4,089,184,256" in out
    assert "deviations from the paper:\n    - stride 2 on the bottleneck's 3×3" in out
    assert "torchvision 'resnet50'" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["info", "resnet5"], "unknown model 'resnet5'; did you mean resnet50"),
    (["list", "nothing*"], "no registered model matches 'nothing*'"),
    (["list", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                          message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(argv))
    _, err = capsys.readouterr()
    assert exited.value.code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("convzoo")


def test_module_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "convzoo", "info", "resnet5"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("convzoo: error: unknown model 'resnet5'")
