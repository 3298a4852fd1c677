"""Where the files of each dataset are found, their official checksums, and the download into the cache.

Search order for a dataset NAME (the first place holding all of its files wins):

1. ``data_dir`` when given, and only there: a ``data_dir`` without the files is an error, never a silent
   fall-through to another copy;
2. the user cache: ``$CONVZOO_CACHE``, else ``$XDG_CACHE_HOME/convzoo``, else ``~/.cache/convzoo``; each
   dataset in ``<cache>/<NAME>/``;
3. Debian's packaged copy (fashion-mnist only: ``apt-get install dataset-fashion-mnist`` puts the four
   ``.gz`` files in ``/usr/share/datasets/fashion-mnist``);
4. a download into ``<cache>/<NAME>/``, unless downloads are off (``download=False``, or ``CONVZOO_OFFLINE=1``).

Inside a root the files may lie directly, in ``<root>/<NAME>/``, or in torchvision's layout
(``<root>/FashionMNIST/raw/``, ``<root>/MNIST/raw/``, ``<root>/cifar-10-batches-py/``); the CIFAR sets may
also be their official ``.tar.gz``, read without extracting it. The checksum tables and mirrors are
torchvision's (read from its dataset classes, not copied).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..fsio import atomic_path

__all__ = ["SYSTEM_DIRS", "Found", "Spec", "cache_dir", "download", "downloads_allowed", "find", "hint", "spec"]

OFFICIAL = ("cifar10", "cifar100", "fashion-mnist", "mnist")
# Debian's packaged copies, searched after the user cache (module-level so tests can point it elsewhere).
SYSTEM_DIRS: dict[str, Path] = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}

# MD5 of the *uncompressed* idx files (torchvision <= 0.8 listed Fashion-MNIST's as `raw_data`). Debian
# recompresses the .gz files (same bytes inside, no file name in the gzip header), so their .gz MD5s differ
# from the official ones while the content is identical: either checksum identifies the official data.
_IDX_CONTENT_MD5 = {
    "fashion-mnist": {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                      "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
                      "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
                      "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"},
    "mnist": {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
              "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
              "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
              "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"},
}


@dataclass(frozen=True)
class Spec:
    """What an official dataset's files are.

    Attributes:
        name: the registered name.
        kind: "idx" (MNIST-style) or "cifar" (python-pickle batches).
        train, test: the files of each split (idx: images then labels, without ".gz"; CIFAR: the batches).
        md5: official MD5 per file as shipped (idx: of the ".gz"; CIFAR: of the extracted pickle).
        content_md5: idx only: MD5 of the uncompressed file.
        urls: idx: base URLs of the mirrors; CIFAR: the archive's URL.
        meta: CIFAR: the pickle holding the class names.
        layouts: sub-folders tried under a root, after the root itself.
        archive, archive_md5: CIFAR: the official ".tar.gz" and its MD5.
        folder: CIFAR: the folder holding the batches (inside the archive, or extracted).
    """

    name: str
    kind: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    md5: dict[str, str]
    urls: tuple[str, ...]
    layouts: tuple[str, ...]
    content_md5: dict[str, str] = field(default_factory=dict)
    meta: str = ""
    archive: str = ""
    archive_md5: str = ""
    folder: str = ""

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, *self.test, *((self.meta,) if self.meta else ()))


@dataclass(frozen=True)
class Found:
    """Where a dataset's files are: the directory, and the path of each file (or the one archive)."""

    where: Path
    files: dict[str, Path]
    archive: Path | None = None


def spec(name: str) -> Spec:
    """The file table of an official dataset, built from torchvision's dataset classes."""
    from torchvision import datasets as tv  # lazy: importing torchvision costs ~0.8 s

    if name in ("fashion-mnist", "mnist"):
        cls = tv.FashionMNIST if name == "fashion-mnist" else tv.MNIST
        md5 = {os.path.basename(f).removesuffix(".gz"): m for f, m in cls.resources}
        train, test = (tuple(f for f in md5 if f.startswith(p)) for p in ("train-", "t10k-"))
        return Spec(name, "idx", train, test, md5, tuple(cls.mirrors), (name, f"{cls.__name__}/raw"),
                    content_md5=_IDX_CONTENT_MD5[name])
    if name in ("cifar10", "cifar100"):
        cls = tv.CIFAR10 if name == "cifar10" else tv.CIFAR100
        md5 = {f: m for f, m in [*cls.train_list, *cls.test_list]} | {cls.meta["filename"]: cls.meta["md5"]}
        return Spec(name, "cifar", tuple(f for f, _ in cls.train_list), tuple(f for f, _ in cls.test_list), md5,
                    (cls.url,), (name,), meta=cls.meta["filename"], archive=cls.filename,
                    archive_md5=cls.tgz_md5, folder=cls.base_folder)
    raise KeyError(name)


def cache_dir() -> Path:
    """The user cache: ``$CONVZOO_CACHE``, else ``$XDG_CACHE_HOME/convzoo``, else ``~/.cache/convzoo``."""
    if os.environ.get("CONVZOO_CACHE"):
        return Path(os.environ["CONVZOO_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "convzoo"


def downloads_allowed(download: bool | None) -> bool:
    """`download=None` means allowed unless the environment sets ``CONVZOO_OFFLINE=1``."""
    return os.environ.get("CONVZOO_OFFLINE", "") not in ("1", "true", "yes") if download is None else download


def _idx_files(d: Path, s: Spec) -> dict[str, Path] | None:
    found = {}
    for f in s.files:
        path = next((p for p in (d / f"{f}.gz", d / f) if p.is_file()), None)
        if path is None:
            return None
        found[f] = path
    return found


def _find_in(d: Path, s: Spec) -> Found | None:
    if s.kind == "idx":
        files = _idx_files(d, s)
        return Found(d, files) if files else None
    for folder in (d / s.folder, d):  # extracted batches first (no decompression), then the archive
        if all((folder / f).is_file() for f in s.files):
            return Found(folder, {f: folder / f for f in s.files})
    return Found(d, {}, d / s.archive) if (d / s.archive).is_file() else None


def find_under(root: Path, s: Spec) -> Found | None:
    """The files of `s` in `root`, `root/<name>/` or torchvision's layout under `root`, or None."""
    for d in (root, *(root / sub for sub in s.layouts)):
        if d.is_dir() and (got := _find_in(d, s)):
            return got
    return None


def find(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[Found | None, list[Path]]:
    """Search `data_dir` alone when given, else the cache then the system copy; also the places looked in."""
    s = spec(name)
    roots = [Path(data_dir).expanduser()] if data_dir is not None else [cache_dir() / name]
    if data_dir is None and name in SYSTEM_DIRS:
        roots.append(SYSTEM_DIRS[name])
    for root in roots:
        if got := find_under(root, s):
            return got, roots
    return None, roots


def file_list(s: Spec) -> str:
    """The files a user should fetch, for messages."""
    return s.archive if s.kind == "cifar" else ", ".join(f"{f}.gz" for f in s.files)


def source_url(s: Spec, file: str = "") -> str:
    """Where the official files are fetched from (the first mirror)."""
    return s.urls[0] if s.kind == "cifar" else s.urls[0] + file


def hint(name: str) -> str:
    """One clause saying how to get the files of `name`."""
    s = spec(name)
    if s.kind == "cifar":
        return (f"fetch {source_url(s)} and pass --data-dir DIR holding {s.archive} "
                f"(or its extracted {s.folder}/)")
    where = f"pass --data-dir DIR holding the four files {file_list(s)}, fetched from {source_url(s)}"
    return f"apt-get install dataset-fashion-mnist, or {where}" if name == "fashion-mnist" else where


class _FetchError(Exception):
    """A network failure (kept apart from OSError, which `atomic_path` reports as a write failure)."""


def _chunks(url: str) -> Iterator[bytes]:
    """The body of `url` in 1 MiB chunks; any network failure is a `_FetchError` with its reason."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                yield chunk
    except (OSError, http.client.HTTPException) as err:  # URLError, timeouts and resets are OSErrors
        raise _FetchError(str(getattr(err, "reason", None) or err)) from None


def _fetch(url: str, dest: Path, md5: str) -> None:
    """Download `url` to `dest` atomically (nothing is left on failure); the MD5 is checked before the rename."""
    with atomic_path(dest) as tmp:
        digest = hashlib.md5(usedforsecurity=False)
        with open(tmp, "wb") as out:
            for chunk in _chunks(url):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise _FetchError(f"the download's MD5 is {digest.hexdigest()}, not the official {md5}")


def download(name: str) -> Found:
    """Fetch the official files of `name` into ``<cache>/<name>/``; a failure is one `UserError` line."""
    s = spec(name)
    dest = cache_dir() / name
    wanted = [(s.archive, s.archive_md5, [s.urls[0]])] if s.kind == "cifar" else \
        [(f"{f}.gz", s.md5[f], [base + f"{f}.gz" for base in s.urls]) for f in s.files]
    for file, md5, urls in wanted:
        if (dest / file).is_file():
            continue
        errors = []
        for url in urls:
            try:
                _fetch(url, dest / file, md5)
                break
            except _FetchError as err:
                errors.append(f"{url}: {err}")
        else:
            raise UserError(f"could not download {name} ({'; '.join(errors)}); {hint(name)}")
    found = find_under(dest, s)
    assert found is not None, dest  # every file was just written there
    return found
