"""`convzoo.fsio`: a path that cannot be written is one UserError, before anything is created."""
from __future__ import annotations

import pytest

from convzoo.cli import main
from convzoo.errors import UserError
from convzoo.fsio import write_text


def test_a_folder_that_cannot_be_made_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"cannot write '/proc/convzoo-nope/x\.txt'"):
        write_text("/proc/convzoo-nope/x.txt", "x")  # /proc takes no new folders, even from root


def test_export_to_such_a_folder_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "lenet5", "--out", "/proc/convzoo-nope/x.onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write '/proc/convzoo-nope/x.onnx'" in err
