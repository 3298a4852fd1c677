"""`convzoo data list` and `convzoo data show` through the real entry point, and `save_grid`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from convzoo.cli import main
from convzoo.data import load_dataset, save_grid
from convzoo.errors import UserError
from data_writers import isolate, write_cifar10, write_idx, write_image, write_tree

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_table_and_json(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    write_idx(cache / "mnist")
    code, out, err = run(capsys, "data", "list")
    assert code == 0 and not err
    lines = out.splitlines()
    assert lines[0].split() == ["name", "classes", "train", "test", "where"]
    assert [line.split()[0] for line in lines[2:8]] == ["cifar10", "cifar100", "fashion-mnist", "imagefolder",
                                                        "mnist", "synthetic"]
    assert next(line for line in lines if line.startswith("mnist")).split() == ["mnist", "10", "60,000", "10,000",
                                                                             str(cache / "mnist")]
    assert "fashion-mnist: apt-get install dataset-fashion-mnist" in out
    code, out, _ = run(capsys, "data", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["mnist"]["where"] == str(cache / "mnist") and rows["synthetic"]["train"] == 2048


def test_list_with_data_dir_looks_only_there(capsys: pytest.CaptureFixture[str], tmp_path: Path, cache: Path) -> None:
    write_idx(cache / "mnist")
    write_cifar10(tmp_path / "mine")
    code, out, _ = run(capsys, "data", "list", "--data-dir", str(tmp_path / "mine"), "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and not rows["mnist"]["found"] and rows["cifar10"]["found"]


def test_show_writes_a_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_idx(tmp_path / "d")
    out_png = tmp_path / "out" / "grid.png"
    code, out, err = run(capsys, "data", "show", "mnist", "--data-dir", str(tmp_path / "d"), "--no-verify",
                         "--split", "test", "--n", "9", "--out", str(out_png))
    assert code == 0 and not err and out.count("\n") == 1
    assert out.startswith(f"wrote {out_png}: 4 test images of mnist")
    assert out_png.read_bytes()[:8] == PNG


def test_show_synthetic_and_imagefolder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "data", "show", "synthetic", "--n", "16", "--out", str(tmp_path / "s.png"))
    assert code == 0 and (tmp_path / "s.png").read_bytes()[:8] == PNG
    write_tree(tmp_path / "tree", {"a": 3, "b": 3})
    write_image(tmp_path / "tree" / "a" / "big.jpg", "RGB", (300, 200))
    code, out, _ = run(capsys, "data", "show", "imagefolder", "--data-dir", str(tmp_path / "tree"),
                       "--out", str(tmp_path / "f.png"))
    assert code == 0 and "images of imagefolder" in out and (tmp_path / "f.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize(("argv", "expect"), [
    (["imagefolder"], "imagefolder needs --data-dir"),
    (["mnist", "--n", "0"], "--n 0 is out of range; ask for 1 to 1024"),
    (["mnist", "--n", "1025"], "--n 1025 is out of range"),
    (["fashon"], "unknown dataset 'fashon'"),
    (["fashion-mnist"], "apt-get install dataset-fashion-mnist"),
])
def test_show_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
                                  expect: str) -> None:
    code, out, err = run(capsys, "data", "show", *argv, "--out", str(tmp_path / "g.png"))
    assert code == 2 and not out and err.startswith("convzoo: error: ") and expect in err and err.count("\n") == 1
    assert not list(tmp_path.glob("*.png"))


def test_nothing_half_written_when_an_image_is_broken(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_tree(tmp_path / "tree", {"a": 2, "b": 2})
    for p in (tmp_path / "tree" / "b").iterdir():
        p.write_bytes(b"broken")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "g.png").write_bytes(b"old")
    code, _, err = run(capsys, "data", "show", "imagefolder", "--data-dir", str(tmp_path / "tree"),
                       "--out", str(tmp_path / "out" / "g.png"))
    assert code == 2 and f"cannot decode image '{tmp_path / 'tree' / 'b'}" in err and err.count("\n") == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["g.png"]
    assert (tmp_path / "out" / "g.png").read_bytes() == b"old"


def test_nothing_half_written_when_the_disk_fills(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from matplotlib.figure import Figure

    def full_disk(self: Figure, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(PNG + b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    (tmp_path / "g.png").write_bytes(b"old")
    code, _, err = run(capsys, "data", "show", "synthetic", "--n", "4", "--out", str(tmp_path / "g.png"))
    assert code == 2 and "the disk is full" in err and err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["g.png"]
    assert (tmp_path / "g.png").read_bytes() == b"old"


def test_missing_usage_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data", "show", "mnist"])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err


def test_save_grid_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(UserError, match="pip install matplotlib"):
        save_grid(load_dataset("synthetic", image_size=(8, 8)), tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_save_grid_caps_n_at_the_split_and_checks_arguments(tmp_path: Path) -> None:
    write_tree(tmp_path / "t", {"a": 2, "b": 2})
    ds = load_dataset("imagefolder", data_dir=tmp_path / "t", in_memory=False, test_fraction=0.5)
    assert save_grid(ds, tmp_path / "g.png", split="test", n=64).read_bytes()[:8] == PNG
    with pytest.raises(UserError, match="split 'val' is not 'train' or 'test'"):
        save_grid(ds, tmp_path / "h.png", split="val")
    with pytest.raises(UserError, match="a grid of 0 images is empty"):
        save_grid(ds, tmp_path / "h.png", n=0)
