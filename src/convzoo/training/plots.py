"""curves.png (loss and accuracy per epoch) and confusion.png (the confusion matrix), through matplotlib.

matplotlib is optional (the ``[plot]`` extra): without it the run still finishes and says how to get the
pictures. Figures are drawn with the Agg backend and written atomically.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..fsio import atomic_path

__all__ = ["have_matplotlib", "plot_confusion", "plot_curves"]


def have_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_curves(history: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Loss (left) and top-1 accuracy (right) per epoch: train, validation (when held out) and test."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("train", "-"), ("val", "--"), ("test", ":")):
        if f"{split}_loss" in history[0]:
            ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], style, label=split)
            ax_acc.plot(epochs, [100 * r[f"{split}_top1"] for r in history], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    best = max(100 * r["test_top1"] for r in history)
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title=f"accuracy (test max {best:.2f} %)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(confusion: Tensor, classes: Sequence[str], path: Path, title: str) -> Path:
    """Rows: the true class; columns: the predicted one; each row normalised, counts written in the cells."""
    plt = _pyplot()
    k = len(classes)
    counts = confusion.double()
    rows = counts / counts.sum(1, keepdim=True).clamp(min=1)
    size = max(5.0, 0.5 * k + 2) if k <= 30 else 12.0
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        ax.set_xticks(range(k), labels=list(classes), rotation=45, ha="right")
        ax.set_yticks(range(k), labels=list(classes))
        for i in range(k):
            for j in range(k):
                if confusion[i, j]:
                    ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if rows[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    return _save(fig, path)
