"""Where files are found (data_dir, cache, system copy, download), the messages when they are not, the status."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import urllib.error
from pathlib import Path

import pytest

from convzoo.data import data_status, dataset_names, load_dataset, locate, sources
from convzoo.errors import UserError
from data_writers import IDX_FILES, isolate, write_cifar10, write_idx


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    d = tmp_path / "system"
    monkeypatch.setitem(sources.SYSTEM_DIRS, "fashion-mnist", d)
    return d


def _first_label(**kwargs: object) -> int:
    return int(load_dataset("fashion-mnist", verify=False, **kwargs).train.labels[0])


def test_names() -> None:
    assert dataset_names() == ["cifar10", "cifar100", "fashion-mnist", "imagefolder", "mnist", "synthetic"]


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UserError, match=r"^unknown dataset 'fashon-mnist'; did you mean fashion-mnist or mnist\? "
                                        r"known: cifar10, cifar100, fashion-mnist, imagefolder, mnist, synthetic$"):
        load_dataset("fashon-mnist")
    assert len(load_dataset("Synthetic").train) == 2048  # case and "_" for "-" are forgiven


def test_search_order_data_dir_then_cache_then_system(tmp_path: Path, cache: Path, system: Path) -> None:
    write_idx(system, seed=1)
    assert locate("fashion-mnist") == system
    assert _first_label() == int(write_idx(tmp_path / "s1", seed=1)[IDX_FILES[1]][0])
    write_idx(cache / "fashion-mnist", seed=2)
    assert locate("fashion-mnist") == cache / "fashion-mnist"
    assert _first_label() == int(write_idx(tmp_path / "s2", seed=2)[IDX_FILES[1]][0])
    mine = tmp_path / "mine"
    labels = write_idx(mine, seed=3)[IDX_FILES[1]]
    assert locate("fashion-mnist", mine) == mine and _first_label(data_dir=mine) == int(labels[0])
    ds = load_dataset("fashion-mnist", data_dir=mine, verify=False)
    assert ds.source == str(mine) and ds.train.labels.tolist() == labels.tolist()


def test_data_dir_without_the_files_does_not_fall_through(tmp_path: Path, cache: Path) -> None:
    write_idx(cache / "fashion-mnist")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert locate("fashion-mnist", empty) is None
    with pytest.raises(UserError) as err:
        load_dataset("fashion-mnist", data_dir=empty, verify=False)
    msg = str(err.value)
    assert f"no fashion-mnist files in --data-dir {str(empty)!r}" in msg and "FashionMNIST/raw/" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "\n" not in msg


@pytest.mark.parametrize("sub", ["", "fashion-mnist", "FashionMNIST/raw"])
def test_layouts_inside_a_root(tmp_path: Path, sub: str) -> None:
    write_idx(tmp_path / "root" / sub, gz=False)
    assert locate("fashion-mnist", tmp_path / "root") == tmp_path / "root" / sub
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path / "root", verify=False).train) == 6


def test_cifar_layouts(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "tv")  # torchvision's: <dir>/cifar-10-batches-py/
    assert locate("cifar10", tmp_path / "tv") == tmp_path / "tv" / "cifar-10-batches-py"
    write_cifar10(tmp_path / "named" / "cifar10", tar=True)  # <dir>/cifar10/cifar-10-python.tar.gz
    assert locate("cifar10", tmp_path / "named") == tmp_path / "named" / "cifar10"
    assert len(load_dataset("cifar10", data_dir=tmp_path / "tv" / "cifar-10-batches-py", verify=False).test) == 3


def test_missing_offline_says_what_to_do(system: Path) -> None:
    with pytest.raises(UserError) as err:
        load_dataset("fashion-mnist")
    msg = str(err.value)
    assert "not found in" in msg and "CONVZOO_OFFLINE=1" in msg and str(system) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" in msg and "\n" not in msg
    with pytest.raises(UserError, match=r"download=False.*cifar-10-python.tar.gz"):
        load_dataset("cifar10", download=False)


def test_failed_download_is_one_line_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    def no_network(url: str, timeout: float) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(sources.urllib.request, "urlopen", no_network)
    with pytest.raises(UserError) as err:
        load_dataset("mnist", download=True)
    msg = str(err.value)
    assert msg.startswith("could not download mnist") and "Name or service not known" in msg
    assert "ossci-datasets" in msg and "yann.lecun.com" in msg and "train-images-idx3-ubyte.gz" in msg
    assert not any(p.is_file() for p in cache.rglob("*"))


class _Response(io.BytesIO):
    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_download_is_atomic_and_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    body = b"x" * 3_000_000
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda url, timeout: _Response(body))
    dest = tmp_path / "dl" / "file.gz"
    sources._fetch("http://example/file.gz", dest, hashlib.md5(body).hexdigest())
    assert dest.read_bytes() == body
    with pytest.raises(sources._FetchError, match="not the official"):
        sources._fetch("http://example/file.gz", tmp_path / "dl" / "bad.gz", "0" * 32)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["file.gz"]  # no temporary or half file


def test_download_lands_in_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: Path) -> None:
    server = tmp_path / "server"
    write_idx(server)
    md5s = {f: hashlib.md5((server / f"{f}.gz").read_bytes()).hexdigest() for f in IDX_FILES}
    official = sources.spec
    monkeypatch.setattr(sources, "spec", lambda name: dataclasses.replace(official(name), md5=md5s))
    monkeypatch.setattr(sources.urllib.request, "urlopen",
                        lambda url, timeout: _Response((server / url.rsplit("/", 1)[1]).read_bytes()))
    ds = load_dataset("mnist", download=True)
    assert ds.source == str(cache / "mnist") and len(ds.train) == 6
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(f"{f}.gz" for f in IDX_FILES)


def test_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert sources.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("CONVZOO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sources.cache_dir() == tmp_path / "xdg" / "convzoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sources.cache_dir() == tmp_path / "home" / ".cache" / "convzoo"


def test_downloads_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not sources.downloads_allowed(None) and sources.downloads_allowed(True)
    monkeypatch.delenv("CONVZOO_OFFLINE")
    assert sources.downloads_allowed(None) and not sources.downloads_allowed(False)


def test_status_finds_without_reading(tmp_path: Path, cache: Path) -> None:
    for f in IDX_FILES:  # unreadable garbage: the status only looks for the names
        (cache / "mnist").mkdir(parents=True, exist_ok=True)
        (cache / "mnist" / f"{f}.gz").write_bytes(b"garbage")
    rows = {r["name"]: r for r in data_status()}
    assert list(rows) == dataset_names()
    assert rows["mnist"]["found"] and rows["mnist"]["where"] == str(cache / "mnist")
    assert rows["mnist"]["train"] == 60_000 and rows["cifar100"]["classes"] == 100
    assert not rows["fashion-mnist"]["found"] and "apt-get install" in rows["fashion-mnist"]["hint"]
    assert rows["synthetic"]["where"] == "built in" and rows["imagefolder"]["where"] == "give --data-dir"
    rows = {r["name"]: r for r in data_status(tmp_path)}
    assert not rows["mnist"]["found"] and rows["imagefolder"]["where"] == str(tmp_path)
