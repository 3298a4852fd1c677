"""Datasets: Fashion-MNIST (the default), MNIST, CIFAR-10/100, any ImageFolder tree, and synthetic data.

`load_dataset(name)` returns a `Dataset`: small datasets as uint8 tensors in memory, large ImageFolder
trees as `FolderSplit`s decoded by `stream_batches`. Files are looked for in `data_dir` (only there when
given), the user cache, Debian's packaged copy, then downloaded when allowed; official checksums are
verified. `data_status` says where each dataset is; `save_grid` draws a labelled sample grid.
"""
from __future__ import annotations

from .datasets import data_status, dataset_names, load_dataset, locate
from .folder import stream_batches
from .grid import save_grid
from .types import Dataset, FolderSplit, TensorSplit

__all__ = ["Dataset", "FolderSplit", "TensorSplit", "data_status", "dataset_names", "load_dataset", "locate",
           "save_grid", "stream_batches"]
