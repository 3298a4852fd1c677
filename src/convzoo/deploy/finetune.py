"""Weight sharing (1-D k-means with linear initialisation) and the fine-tuning loop of `convzoo compress`:
magnitude pruning with masks, centroids trained by the summed gradients of their weights."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError

Log = Callable[[str], None]  # where progress lines go


# --- weight sharing ---------------------------------------------------------------------------------------------

def kmeans_1d(values: Tensor, k: int, iters: int = 100) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means of 1-D `values` from k centroids spread linearly over [min, max].

    Returns (centroids sorted ascending, float64; label per value). In 1-D the nearest centroid is found
    by bucketing against the midpoints, so an iteration is a sort-free O(n log k).
    """
    v = values.double().reshape(-1)
    distinct = torch.unique(v)
    if len(distinct) <= k:  # nothing to share: every value is its own centroid
        return distinct, torch.bucketize(v, distinct)
    c = torch.linspace(float(v.min()), float(v.max()), k, dtype=torch.float64)
    labels = torch.zeros(len(v), dtype=torch.int64)
    for _ in range(iters):
        labels = torch.bucketize(v, (c[1:] + c[:-1]) / 2)
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, v)
        counts = torch.bincount(labels, minlength=k)
        new = torch.where(counts > 0, sums / counts.clamp(min=1), c).sort().values
        if torch.equal(new, c):
            break
        c = new
    return c, torch.bucketize(v, (c[1:] + c[:-1]) / 2)


def share_weights(weight: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """(codebook float32 of K+1 ≤ 2^bits entries, entry 0 = 0; index of the weight's shape, 0 where pruned)."""
    w = weight.detach().cpu()
    nonzero = w != 0
    index = torch.zeros(w.shape, dtype=torch.int64)
    if not nonzero.any():
        return torch.zeros(1), index
    centroids, labels = kmeans_1d(w[nonzero], (1 << bits) - 1)
    index[nonzero] = labels + 1
    return torch.cat([torch.zeros(1, dtype=torch.float64), centroids]).float(), index


# --- fine-tuning ------------------------------------------------------------------------------------------------

@dataclass
class _Ctx:
    """What the fine-tuning and evaluation need: the data on the device and how it is prepared."""

    data: Any
    train: Any
    test: Any
    spec: Any
    augment: Any
    device: torch.device
    batch_size: int
    seed: int
    amp: str

    def batches(self, split: Any, *, train: bool, epoch: int = 0) -> Any:
        from ..data.pipeline import batches

        return batches(split, self.spec, batch_size=self.batch_size if train else 1000, device=self.device,
                       seed=self.seed, epoch=epoch, shuffle=train, augment=self.augment if train else None,
                       drop_last=train and len(split) > self.batch_size, stored_size=self.data.size)


def _autocast(ctx: _Ctx) -> Any:
    import contextlib

    if ctx.amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(ctx.device.type, dtype=torch.bfloat16 if ctx.amp == "bf16" else torch.float16)


def top1(model: nn.Module, ctx: _Ctx) -> float:
    """Test top-1 in float32 and eval mode (the same measure at every stage, whatever the run trained in)."""
    model.eval()
    hits = n = 0
    with torch.no_grad():
        for x, y in ctx.batches(ctx.test, train=False):
            hits += int((model(x).float().topk(1, dim=1).indices[:, 0] == y).sum())  # as `convzoo eval` breaks ties
            n += len(y)
    return hits / max(n, 1)


def _cosine(lr: float, step: int, total: int) -> float:
    return 0.5 * lr * (1 + math.cos(math.pi * step / max(total, 1)))


def _fit(model: nn.Module, ctx: _Ctx, *, epochs: int, epoch0: int, groups: list[dict[str, Any]],
         on_grad: Callable[[], None], after_step: Callable[[int, int], None], log: Log, stage: str) -> None:
    """SGD with momentum 0.9 and a cosine-decayed lr over `epochs`; BN (where there is any) in train mode."""
    if epochs == 0:
        return
    steps = max(1, len(ctx.train) // ctx.batch_size)
    total, step = epochs * steps, 0
    opt = torch.optim.SGD(groups, momentum=0.9)
    base = [g["lr"] for g in groups]
    for epoch in range(epochs):
        model.train()
        t0, loss_sum, seen = time.perf_counter(), 0.0, 0
        for x, y in ctx.batches(ctx.train, train=True, epoch=epoch0 + epoch):
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = _cosine(lr, step, total)
            with _autocast(ctx):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            on_grad()
            opt.step()
            step += 1
            after_step(step, total)
            loss_sum, seen = loss_sum + float(loss.detach()) * len(y), seen + len(y)
        if not math.isfinite(loss_sum):
            raise UserError(f"the loss became {loss_sum} while fine-tuning ({stage}); lower --lr and run again")
        log(f"{stage}: epoch {epoch + 1}/{epochs}, train loss {loss_sum / max(seen, 1):.4f}, "
            f"{time.perf_counter() - t0:.0f} s")


def _prune_to(weight: Tensor, mask: Tensor, fraction: float) -> None:
    """Set `mask` to zero at the round(fraction · n) smallest |weight| (already pruned ones are the smallest)."""
    k = round(fraction * weight.numel())
    flat = mask.view(-1)
    flat.fill_(True)
    if k:
        flat[torch.argsort(weight.detach().abs().reshape(-1), stable=True)[:k]] = False


