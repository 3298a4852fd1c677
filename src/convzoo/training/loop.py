"""The training loop: `train_one_epoch`, `evaluate`, and the step that both time.

Time is split three ways per epoch and reported: data (preparing batches on the device: indexing,
resizing, augmentation, normalisation), compute (forward, backward, optimizer step, EMA update) and
evaluation. On a GPU the split is measured with CUDA events, so the loop never synchronises per step.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.pipeline import batches, share
from ..errors import UserError
from .distributed import all_reduce_
from .schedule import Schedule
from .setup import Setup, frozen_modules

__all__ = ["Diverged", "EpochStats", "Evaluation", "Trainer", "evaluate"]


class Diverged(UserError):
    """The loss became NaN or infinite."""


class Timer:
    """Seconds spent in named segments: perf_counter on the CPU, CUDA events (summed at the end) on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.totals: dict[str, float] = {}
        self.events: list[tuple[str, Any, Any]] = []

    @contextlib.contextmanager
    def segment(self, name: str) -> Iterator[None]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.events.append((name, start, end))
        else:
            t = time.perf_counter()
            yield
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t

    def result(self) -> dict[str, float]:
        if self.events:
            torch.cuda.synchronize()
            for name, start, end in self.events:
                self.totals[name] = self.totals.get(name, 0.0) + start.elapsed_time(end) / 1000
            self.events.clear()
        return dict(self.totals)


class EMA(nn.Module):
    """An exponential moving average of the weights (and a copy of the buffers: BN statistics).

    The decay warms up as min(decay, (1 + n)/(10 + n)) after n updates, so that a short run is not
    dominated by its random initialisation; `module` is the averaged network, evaluated in its place.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        import copy

        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        n = int(self.updates) + 1
        self.updates.fill_(n)
        d = min(self.decay, (1 + n) / (10 + n))
        ours = [p for p in self.module.parameters()]
        theirs = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ours, theirs, 1 - d)
        for b, src in zip(self.module.buffers(), model.buffers()):
            b.copy_(src)


@dataclass
class EpochStats:
    """An epoch's figures for the whole job; `local` is this process's (images, data_s, compute_s)."""

    loss: float
    top1: float
    images: int
    seconds: float
    data_s: float
    compute_s: float
    local: tuple[int, float, float] = (0, 0.0, 0.0)


@dataclass
class Evaluation:
    loss: float
    top1: float
    top5: float
    confusion: Tensor  # (K, K) int64: rows true class, columns predicted
    seconds: float
    per_class: list[float] = field(default_factory=list)


def _autocast(s: Setup) -> Any:
    amp = s.cfg.amp
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(s.device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def evaluate(model: nn.Module, split: Any, s: Setup) -> Evaluation:
    """Loss, top-1, top-5 and the confusion matrix of `model` on `split` (eval mode, no auxiliary heads).

    On several processes each evaluates its share of every batch and the sums are all-reduced: every
    process returns the figures of the whole split.
    """
    t0 = time.perf_counter()
    k = len(s.data.classes)
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=s.device, dtype=torch.float64)
    hits1 = torch.zeros((), device=s.device, dtype=torch.int64)
    hits5 = torch.zeros((), device=s.device, dtype=torch.int64)
    confusion = torch.zeros(k * k, device=s.device, dtype=torch.int64)
    n = torch.zeros((), device=s.device, dtype=torch.int64)
    with torch.no_grad():
        for x, y in batches(split, s.spec, batch_size=s.cfg.eval_batch_size, device=s.device,
                            channels_last=s.cfg.channels_last, stored_size=s.data.size, workers=s.cfg.workers,
                            rank=s.world.rank, world=s.world.size):
            with _autocast(s):
                logits = model(x)
            logits = logits.float()
            loss += F.cross_entropy(logits, y, reduction="sum").double()
            top = logits.topk(min(5, k), dim=1).indices
            hits1 += (top[:, 0] == y).sum()
            hits5 += (top == y[:, None]).any(1).sum()
            confusion += torch.bincount(y * k + top[:, 0], minlength=k * k)
            n += len(y)
    model.train(was_training)
    if s.world.active:  # one all-reduce of every sum
        sums = torch.cat([loss.view(1), hits1.view(1).double(), hits5.view(1).double(), n.view(1).double(),
                          confusion.double()])
        all_reduce_(sums, s.world)
        loss, hits1, hits5, n = sums[0], sums[1].long(), sums[2].long(), sums[3].long()
        confusion = sums[4:].long()
    n = max(int(n), 1)
    confusion = confusion.view(k, k).cpu()
    per_class = (confusion.diag().double() / confusion.sum(1).clamp(min=1)).tolist()
    return Evaluation(loss.item() / n, hits1.item() / n, hits5.item() / n, confusion,
                      time.perf_counter() - t0, per_class)


class _TrainForward(nn.Module):
    """`forward_train` as a module's forward (main and auxiliary logits), so that DistributedDataParallel,
    which hooks `forward`, sees the auxiliary heads' gradients too."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Any:
        return self.model.forward_train(x)


class Trainer:
    """One epoch at a time: the network, its optimizer, schedule, EMA and loss scaler."""

    def __init__(self, s: Setup, optimizer: torch.optim.Optimizer, schedule: Schedule) -> None:
        self.s, self.opt, self.schedule = s, optimizer, schedule
        cfg = s.cfg
        self.aux = bool(getattr(s.model, "aux_logits", False))
        net: nn.Module = _TrainForward(s.model) if self.aux else s.model
        if s.world.active:  # gradients averaged over the processes during the backward pass
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(net, device_ids=[s.device.index] if s.device.type == "cuda" else None)
        self.net = torch.compile(net) if cfg.compile else net
        self.ema = EMA(s.model, cfg.ema) if cfg.ema else None
        self.scaler = torch.amp.GradScaler(s.device.type) if cfg.amp == "fp16" else None
        self.params = [p for p in s.model.parameters() if p.requires_grad]
        self.frozen = frozen_modules(s.model)
        self.step = 0
        self.calibration: Callable[[int], None] | None = None  # told the steps done, before and after each step

    @property
    def eval_model(self) -> nn.Module:
        """What is evaluated and kept as `best`: the averaged weights when --ema is on."""
        return self.ema.module if self.ema is not None else self.s.model

    def _loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        ls = self.s.cfg.label_smoothing
        with _autocast(self.s):
            if self.aux:
                logits, aux = self.net(x)
            else:
                logits, aux = self.net(x), []
            loss = F.cross_entropy(logits, y, label_smoothing=ls)
            for a in aux:
                loss = loss + self.s.aux_weight * F.cross_entropy(a, y, label_smoothing=ls)
        return loss, logits

    def _update(self, loss: Tensor) -> None:
        """One optimizer step on `loss`, already scaled to this process's share of the global batch."""
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
        else:
            loss.backward()
        if self.s.cfg.clip_grad:
            nn.utils.clip_grad_norm_(self.params, self.s.cfg.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        if self.ema is not None:
            self.ema.update_parameters(self.s.model)

    def train_one_epoch(self, epoch: int, progress: Any = None) -> EpochStats:
        s, cfg = self.s, self.s.cfg
        s.model.train()
        for m in self.frozen:
            m.eval()
        timer, t0 = Timer(s.device), time.perf_counter()
        loss_sum = torch.zeros((), device=s.device, dtype=torch.float64)
        hits = torch.zeros((), device=s.device, dtype=torch.int64)
        seen, steps = 0, 0
        world, n = s.world, len(s.train)
        drop_last = n > cfg.batch_size
        stream = batches(s.train, s.spec, batch_size=cfg.batch_size, device=s.device, seed=cfg.seed, epoch=epoch,
                         shuffle=True, augment=s.augment, drop_last=drop_last, channels_last=cfg.channels_last,
                         stored_size=s.data.size, workers=cfg.workers, rank=world.rank, world=world.size)
        if self.calibration is not None:
            self.calibration(0)
        while True:
            with timer.segment("data"):
                batch = next(stream, None)
            if batch is None:
                break
            x, y = batch
            with timer.segment("compute"):
                self.schedule.set_lr(self.opt, self.step)
                loss, logits = self._loss(x, y)
                if world.active:  # DDP averages over processes: weigh each by its share of the global batch
                    m = min(cfg.batch_size, n - steps * cfg.batch_size) if not drop_last else cfg.batch_size
                    lo, hi = share(m, world.rank, world.size)
                    self._update(loss * (world.size * (hi - lo) / m))
                else:
                    self._update(loss)
                loss_sum += loss.detach().double() * len(y)
                hits += (logits.detach().argmax(1) == y).sum()
            seen, steps, self.step = seen + len(y), steps + 1, self.step + 1
            if self.calibration is not None:
                self.calibration(steps)
            if steps % 25 == 0 or steps == self.schedule.steps_per_epoch:
                self._check(loss_sum, seen, epoch, steps)
                if progress is not None:
                    progress(steps, loss_sum.item() / seen, hits.item() / seen, seen / (time.perf_counter() - t0))
        self._check(loss_sum, max(seen, 1), epoch, steps)
        times = timer.result()
        local = (seen, times.get("data", 0.0), times.get("compute", 0.0))
        if world.active:  # the job's figures: all images, all hits, the summed loss
            sums = all_reduce_(torch.stack([loss_sum, hits.double(), torch.tensor(float(seen), device=s.device,
                                                                                  dtype=torch.float64)]), world)
            loss_sum, hits, seen = sums[0], sums[1], int(sums[2])
        return EpochStats(loss_sum.item() / max(seen, 1), hits.item() / max(seen, 1), seen,
                          time.perf_counter() - t0, times.get("data", 0.0), times.get("compute", 0.0), local)

    def _check(self, loss_sum: Tensor, seen: int, epoch: int, step: int) -> None:
        if self.s.world.active:  # every process decides on the job's loss, so that all stop together
            both = all_reduce_(torch.stack([loss_sum, torch.tensor(float(seen), device=loss_sum.device,
                                                                   dtype=torch.float64)]), self.s.world)
            loss_sum, seen = both[0], int(both[1])
        value = loss_sum.item() / seen
        if not math.isfinite(value):
            raise Diverged(f"the training loss became {value} in epoch {epoch + 1} (step {step}); the last good "
                           f"epoch is kept in the run directory; lower --lr (it is {self.s.cfg.lr:g}) or add "
                           "--clip-grad 1.0, then train again")
