"""The file formats: idx (gzipped or not), CIFAR pickles and archives; exact round trips and broken files."""
from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from convzoo.data import load_dataset
from convzoo.errors import UserError
from data_writers import (
    CIFAR10_NAMES,
    IDX_FILES,
    idx_bytes,
    isolate,
    official_pickle,
    write_cifar10,
    write_cifar100,
    write_idx,
)

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def _np_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    x = images.astype(np.float64) / 255
    return list(x.mean(axis=(0, 2, 3))), list(x.std(axis=(0, 2, 3)))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    arrays = write_idx(tmp_path / "d", gz=gz)
    ds = load_dataset("mnist", data_dir=tmp_path / "d", verify=False)
    assert ds.train.images.dtype == torch.uint8 and ds.train.images.shape == (6, 1, 28, 28)
    assert ds.train.images.is_contiguous() and ds.train.labels.dtype == torch.int64
    assert np.array_equal(ds.train.images[:, 0].numpy(), arrays[IDX_FILES[0]])
    assert np.array_equal(ds.train.labels.numpy(), arrays[IDX_FILES[1]])
    assert np.array_equal(ds.test.images[:, 0].numpy(), arrays[IDX_FILES[2]])
    assert np.array_equal(ds.test.labels.numpy(), arrays[IDX_FILES[3]])
    assert ds.classes == tuple("0123456789") and not ds.hflip and ds.channels == 1 and ds.size == (28, 28)
    mean, std = _np_stats(ds.train.images.numpy())
    assert ds.mean == pytest.approx(mean, abs=1e-12) and ds.std == pytest.approx(std, abs=1e-12)
    assert ds.source == str(tmp_path / "d")


def test_fashion_mnist_classes_and_hflip(tmp_path: Path) -> None:
    write_idx(tmp_path)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path, verify=False)
    assert ds.classes == FMNIST_CLASSES and ds.hflip and ds.name == "fashion-mnist"


def test_unofficial_idx_fails_verification_and_names_the_way_out(tmp_path: Path) -> None:
    write_idx(tmp_path)
    with pytest.raises(UserError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    msg = str(err.value)
    assert "not the official fashion-mnist file" in msg and "train-images-idx3-ubyte.gz" in msg
    assert "--no-verify" in msg and "verify=False" in msg and "fetch it again from http" in msg
    assert "\n" not in msg


def test_unofficial_uncompressed_idx_fails_verification(tmp_path: Path) -> None:
    write_idx(tmp_path, gz=False)
    with pytest.raises(UserError, match="not the official mnist file"):
        load_dataset("mnist", data_dir=tmp_path)


def _break(tmp_path: Path, file: str, data: bytes) -> Path:
    write_idx(tmp_path)
    path = tmp_path / file
    path.write_bytes(data)
    return path


_IMAGES = idx_bytes(np.random.default_rng(1).integers(0, 256, (6, 28, 28), dtype=np.uint8))


@pytest.mark.parametrize(("data", "expect"), [
    (b"this is not a gzip stream at all", "not a complete gzip file"),
    (gzip.compress(_IMAGES)[:2000], "not a complete gzip file"),
    (gzip.compress(_IMAGES)[:-4], "not a complete gzip file"),
    (gzip.compress(b"\0\0\x08\x01" + _IMAGES[4:]), "magic number 00000801"),
    (gzip.compress(_IMAGES[:-5]), "header announces 6×28×28"),
    (gzip.compress(b"\0\0"), "magic number missing"),
], ids=["not-gzip", "cut-gzip", "no-trailer", "wrong-magic", "short-data", "no-header"])
def test_broken_idx_is_one_line_naming_the_file(tmp_path: Path, data: bytes, expect: str) -> None:
    path = _break(tmp_path, "train-images-idx3-ubyte.gz", data)
    with pytest.raises(UserError) as err:
        load_dataset("mnist", data_dir=tmp_path, verify=False)
    msg = str(err.value)
    assert expect in msg and str(path) in msg and "delete it and fetch it again" in msg and "\n" not in msg


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    _break(tmp_path, "t10k-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(np.zeros(3, np.uint8))))
    with pytest.raises(UserError, match=r"holds 4 images but .*t10k-labels-idx1-ubyte\.gz' 3 labels"):
        load_dataset("mnist", data_dir=tmp_path, verify=False)


def test_labels_out_of_range_are_refused(tmp_path: Path) -> None:
    _break(tmp_path, "train-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(np.full(6, 12, np.uint8))))
    with pytest.raises(UserError, match=r"labels of mnist .* fall outside 0\.\.9"):
        load_dataset("mnist", data_dir=tmp_path, verify=False)


@pytest.mark.parametrize("tar", [False, True])
def test_cifar10_round_trip(tmp_path: Path, tar: bool) -> None:
    want = write_cifar10(tmp_path, tar=tar)
    ds = load_dataset("cifar10", data_dir=tmp_path, verify=False)
    assert ds.train.images.shape == (15, 3, 32, 32) and ds.test.images.shape == (3, 3, 32, 32)
    assert ds.train.images.dtype == torch.uint8 and ds.train.images.is_contiguous()
    for split in ("train", "test"):
        got = getattr(ds, split)
        assert np.array_equal(got.images.numpy(), want[f"{split}_images"])
        assert np.array_equal(got.labels.numpy(), want[f"{split}_labels"]) and got.labels.dtype == torch.int64
    assert ds.classes == CIFAR10_NAMES and ds.hflip and ds.channels == 3
    mean, std = _np_stats(want["train_images"])
    assert ds.mean == pytest.approx(mean, abs=1e-12) and ds.std == pytest.approx(std, abs=1e-12)
    assert ds.source == str(tmp_path if tar else tmp_path / "cifar-10-batches-py")


@pytest.mark.parametrize(("tar", "protocol"), [(False, 2), (True, 2), (False, 4)])
def test_cifar100_fine_labels_and_names(tmp_path: Path, tar: bool, protocol: int) -> None:
    want = write_cifar100(tmp_path, tar=tar, protocol=protocol)
    ds = load_dataset("cifar100", data_dir=tmp_path, verify=False)
    assert np.array_equal(ds.train.images.numpy(), want["train_images"])
    assert np.array_equal(ds.test.labels.numpy(), want["test_labels"])
    assert len(ds.classes) == 100 and ds.classes[7] == "fine7"


@pytest.mark.parametrize("tar", [False, True])
def test_unofficial_cifar_fails_verification(tmp_path: Path, tar: bool) -> None:
    write_cifar10(tmp_path, tar=tar)
    with pytest.raises(UserError) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    msg = str(err.value)
    assert "not the official cifar10 file" in msg and "--no-verify" in msg
    assert ("cifar-10-python.tar.gz" if tar else "data_batch_1") in msg


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("tar", [False, True])
def test_hostile_pickle_is_refused_without_running(tmp_path: Path, tar: bool) -> None:
    marker = tmp_path / "pwned"
    write_cifar10(tmp_path / "src")
    src = tmp_path / "src" / "cifar-10-batches-py"
    (src / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=2))
    if tar:
        import tarfile

        with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as t:
            t.add(src, arcname="cifar-10-batches-py")
        root = tmp_path
    else:
        root = tmp_path / "src"
    with pytest.raises(UserError) as err:
        load_dataset("cifar10", data_dir=root, verify=False)
    assert "data_batch_3" in str(err.value) and "system" in str(err.value) and "refuses" in str(err.value)
    assert not marker.exists()


def test_codecs_global_is_limited_to_latin1(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    blob = official_pickle({b"label_names": [b"a"] * 10}).replace(b"latin1", b"zlib__")
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(blob)
    with pytest.raises(UserError, match=r"batches\.meta .* refuses"):
        load_dataset("cifar10", data_dir=tmp_path, verify=False)


@pytest.mark.parametrize(("data", "expect"), [
    (b"\x80\x02}q\x00(", "not a valid CIFAR pickle"),
    (pickle.dumps({b"data": [1, 2], b"labels": [0]}, protocol=2), "not a CIFAR batch"),
])
def test_broken_cifar_batch(tmp_path: Path, data: bytes, expect: str) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(data)
    with pytest.raises(UserError, match=f"test_batch in .*{expect}|{expect}"):
        load_dataset("cifar10", data_dir=tmp_path, verify=False)


def test_broken_and_incomplete_archives(tmp_path: Path) -> None:
    write_cifar10(tmp_path, tar=True)
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(UserError, match=r"not a complete \.tar\.gz archive"):
        load_dataset("cifar10", data_dir=tmp_path, verify=False)
    write_cifar100(tmp_path / "x")
    import tarfile

    with tarfile.open(tmp_path / "cifar-100-python.tar.gz", "w:gz") as t:
        t.add(tmp_path / "x" / "cifar-100-python" / "train", arcname="cifar-100-python/train")
    with pytest.raises(UserError, match="lacks test, meta"):
        load_dataset("cifar100", data_dir=tmp_path, verify=False)


@pytest.mark.skipif(not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    from convzoo.data import sources

    monkeypatch.setitem(sources.SYSTEM_DIRS, "fashion-mnist", DEBIAN)
    ds = load_dataset("fashion-mnist")  # verify=True: Debian recompressed the .gz, its content is official
    assert len(ds.train) == 60_000 and len(ds.test) == 10_000 and ds.classes == FMNIST_CLASSES
    assert ds.train.images.shape == (60_000, 1, 28, 28) and ds.source == str(DEBIAN)
    assert ds.mean[0] == pytest.approx(0.2860, abs=1e-4) and ds.std[0] == pytest.approx(0.3530, abs=1e-4)
    assert torch.bincount(ds.train.labels).tolist() == [6000] * 10
