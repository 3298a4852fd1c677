"""ImageFolder trees (layouts, modes, sizes, errors), stream_batches, and the synthetic data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convzoo.data import FolderSplit, TensorSplit, load_dataset, stream_batches
from convzoo.data.folder import split_stratified
from convzoo.errors import UserError
from data_writers import isolate, write_image, write_tree


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def test_train_val_layout_round_trips_pixels(tmp_path: Path) -> None:
    colours = write_tree(tmp_path / "train", {"cat": 3, "dog": 2})
    write_tree(tmp_path / "val", {"cat": 1, "dog": 1})
    ds = load_dataset("imagefolder", data_dir=tmp_path, image_size=(8, 8))
    assert ds.in_memory and ds.classes == ("cat", "dog") and ds.channels == 3 and ds.size == (8, 8)
    assert isinstance(ds.train, TensorSplit) and ds.train.images.shape == (5, 3, 8, 8)
    assert ds.train.images.dtype == torch.uint8 and ds.train.labels.tolist() == [0, 0, 0, 1, 1]
    assert ds.test.labels.tolist() == [0, 1] and ds.hflip and ds.source == str(tmp_path)
    for img, label in zip(ds.train.images, ds.train.labels):
        assert img.reshape(3, -1).unique(dim=1).flatten().tolist() == list(colours[ds.classes[label]])
    assert ds.mean[1] == pytest.approx((3 * 255 + 2 * 235) / 5 / 255)


@pytest.mark.parametrize(("name", "mode", "colour", "rgb"), [
    ("grey.png", "L", 77, (77, 77, 77)),
    ("alpha.png", "RGBA", (10, 20, 30, 0), (255, 255, 255)),  # transparent: composited on white
    ("opaque.png", "RGBA", (10, 20, 30, 255), (10, 20, 30)),
    ("greya.png", "LA", (50, 255), (50, 50, 50)),
    ("palette.png", "P", (0, 128, 255), (0, 128, 255)),
    ("deep.png", "I;16", 257 * 40, (40, 40, 40)),  # 16-bit grey scaled to 8 bits, not clipped
    ("print.jpg", "CMYK", (0, 0, 0, 0), (255, 255, 255)),
    ("photo.jpg", "RGB", (120, 120, 120), (120, 120, 120)),
])
def test_any_mode_and_size_becomes_rgb_of_the_asked_size(tmp_path: Path, name: str, mode: str, colour: object,
                                                         rgb: tuple[int, int, int]) -> None:
    write_image(tmp_path / "a" / name, mode, (37, 13), colour)  # odd size, wide: resize + centre crop
    write_tree(tmp_path, {"b": 1})
    ds = load_dataset("imagefolder", data_dir=tmp_path, image_size=(16, 24), test_fraction=0.5)
    img = ds.train.images[0]
    assert img.shape == (3, 16, 24) and ds.train.labels[0] == 0
    assert (img.reshape(3, -1).float().mean(1) - torch.tensor(rgb, dtype=torch.float)).abs().max() <= 2


def test_split_is_stratified_and_seeded(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": 10, "b": 5, "c": 2})
    ds = load_dataset("imagefolder", data_dir=tmp_path, image_size=(4, 4), test_fraction=0.2, in_memory=False)
    assert isinstance(ds.train, FolderSplit) and ds.size is None
    assert torch.bincount(ds.test.labels).tolist() == [2, 1, 1]
    assert torch.bincount(ds.train.labels).tolist() == [8, 4, 1]
    assert not set(ds.train.samples) & set(ds.test.samples)
    again = load_dataset("imagefolder", data_dir=tmp_path, image_size=(4, 4), in_memory=False)
    other = load_dataset("imagefolder", data_dir=tmp_path, image_size=(4, 4), in_memory=False, seed=1)
    assert again.test.samples == ds.test.samples and other.test.samples != ds.test.samples
    samples = tuple((f"{i}", i % 2) for i in range(40))
    _, test = split_stratified(samples, 0.25, seed=3)
    assert len(test) == 10 and torch.bincount(test.labels).tolist() == [5, 5]
    with pytest.raises(UserError, match=r"test fraction 1\.0 is not between 0 and 1"):
        split_stratified(samples, 1.0, seed=0)


@pytest.mark.parametrize(("setup", "expect"), [
    (lambda d: (d / "a").mkdir(), "no images found in"),
    (lambda d: write_tree(d, {"only": 3}), r"has one class folder \('only'\); a classifier needs two or more"),
    (lambda d: (write_tree(d, {"a": 2}), (d / "b").mkdir()), r"class folder\(s\) b in .* hold no images"),
    (lambda d: (write_tree(d / "train", {"a": 2, "b": 2}), write_tree(d / "val", {"a": 1, "c": 1})),
     "differ \\(only in train: b; only in val: c\\)"),
    (lambda d: write_tree(d / "train", {"a": 2, "b": 2}), "has train/ but no val/ or test/"),
])
def test_bad_trees(tmp_path: Path, setup: object, expect: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    setup(root)  # type: ignore[operator]
    with pytest.raises(UserError, match=expect) as err:
        load_dataset("imagefolder", data_dir=root, image_size=(4, 4))
    assert "\n" not in str(err.value)


def test_no_images_names_the_extensions(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("hi")
    with pytest.raises(UserError, match=r"no images found in .* extensions .jpg .jpeg .png"):
        load_dataset("imagefolder", data_dir=tmp_path)


def test_data_dir_required(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="imagefolder needs --data-dir"):
        load_dataset("imagefolder")
    with pytest.raises(UserError, match="is not a directory"):
        load_dataset("imagefolder", data_dir=tmp_path / "nowhere")


def test_corrupt_image_is_named_when_loading(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": 2, "b": 2})
    bad = tmp_path / "b" / "zz_broken.png"
    bad.write_bytes((tmp_path / "a" / "000.png").read_bytes()[:30])
    with pytest.raises(UserError, match=f"cannot decode image '{bad}'.*delete or replace the file") as err:
        load_dataset("imagefolder", data_dir=tmp_path, image_size=(4, 4), test_fraction=0.01)
    assert "\n" not in str(err.value)


def test_stream_batches_order_per_seed_and_epoch(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": 5, "b": 6})
    split = load_dataset("imagefolder", data_dir=tmp_path, in_memory=False, test_fraction=0.1).train

    def labels(**kw: int) -> list[int]:
        got = []
        for images, lab in stream_batches(split, size=(6, 5), channels=1, batch_size=4, shuffle=True, workers=0,
                                          **kw):
            assert images.dtype == torch.uint8 and images.shape[1:] == (1, 6, 5) and lab.dtype == torch.int64
            got += lab.tolist()
        return got

    order = [s[1] for s in split.samples]
    orders = {(seed, epoch): labels(seed=seed, epoch=epoch) for seed in (0, 1) for epoch in (0, 1, 2)}
    assert all(sorted(o) == sorted(order) for o in orders.values())
    assert labels(seed=1, epoch=2) == orders[(1, 2)]  # a resumed epoch repeats its order
    assert len({tuple(o) for o in orders.values()}) > 3
    plain = [lab for _, lab in stream_batches(split, size=(6, 5), channels=3, batch_size=4, shuffle=False, seed=0,
                                              workers=0, drop_last=True)]
    assert [len(b) for b in plain] == [4, 4] and torch.cat(plain).tolist() == order[:8]


def test_stream_error_in_a_worker_surfaces_as_user_error(tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{i}.png") for i in range(5)]
    paths[3].write_bytes(b"not a png")
    split = FolderSplit(tuple((str(p), i % 2) for i, p in enumerate(paths)))
    with pytest.raises(UserError, match=r"^cannot decode image '.*3.png' \(cannot identify image file") as err:
        for _ in stream_batches(split, size=(4, 4), channels=3, batch_size=2, shuffle=True, seed=0, workers=2):
            pass
    assert "\n" not in str(err.value)


def test_synthetic_is_deterministic_and_learnable() -> None:
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert a.train.images.shape == (2048, 3, 32, 32) and a.test.images.shape == (512, 3, 32, 32)
    assert a.train.images.dtype == torch.uint8 and a.classes == tuple(f"class{k}" for k in range(10))
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert torch.bincount(a.train.labels).tolist() == [205] * 8 + [204] * 2 and a.hflip
    small = load_dataset("synthetic", image_size=(12, 8), seed=1)
    assert small.train.images.shape[-2:] == (12, 8) and not torch.equal(small.train.labels, a.train.labels)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 7 * 7, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = (a.train.images[:128].float() / 255 - 0.4) / 0.2, a.train.labels[:128]
    losses = []
    for _ in range(12):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
