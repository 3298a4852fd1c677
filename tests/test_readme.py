"""The README's two set-up commands are the ones CI and `make` run."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    setup = [b for b in blocks if b.startswith("python3 -m venv .venv")]
    assert len(setup) == 2, "the README must hold exactly two set-up commands"
    return setup


def test_ci_runs_the_readme_test_command() -> None:
    demo, test = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == test and "pytest" in test and "ruff check" in test
    assert "pytest" not in demo


def test_make_targets_are_the_readme_commands() -> None:
    demo, test = _readme_commands()
    make = (ROOT / "Makefile").read_text()
    assert f"\t{demo}\n" in make and f"\t{test}\n" in make


def test_python_example_runs() -> None:
    (block,) = re.findall(r"```python\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    exec(compile(block, "README.md", "exec"), {})


def test_tour_output_is_what_the_commands_print(capsys) -> None:
    """Every line the README shows under `$ convzoo …` is in what that command prints now."""
    import shlex

    from convzoo.cli import main

    (tour,) = re.findall(r"```text\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    for chunk in tour.split("$ convzoo ")[1:]:
        command, *shown = chunk.strip().splitlines()
        main(shlex.split(command))
        out, err = capsys.readouterr()
        printed = " ".join((out + err).split())
        for line in shown:
            if line.strip() and line.strip() != "…":
                assert " ".join(line.split()) in printed, f"convzoo {command}: {line!r} is not printed"
