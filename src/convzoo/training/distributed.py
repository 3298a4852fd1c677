"""Data-parallel training on PyTorch's own stack: `torchrun` starts the processes, `torch.distributed`
connects them (NCCL on GPUs, gloo on the CPU), `DistributedDataParallel` averages the gradients.

The same loop runs on 1 or N processes. What changes with N:
- `--batch-size` is the global batch. Every process walks the same (seed, epoch) order of global
  batches and takes its share of each (`data.pipeline.share`), augmented by choices drawn for the
  whole global batch: the images of a step, and what is done to each, do not depend on N. A process
  whose share is smaller than another's has its loss scaled by (N · share / global batch), so that
  the averaged gradient is the gradient of the global batch's mean loss, as on one process.
- Evaluation is sharded the same way and its sums (loss, hits, the confusion matrix) are all-reduced:
  the reported accuracy is the whole test set's, counted once.
- Only rank 0 prints and writes the run directory. A checkpoint holds the model, optimizer, schedule,
  EMA and every rank's random state, so a run resumes on any number of processes with the same
  global batch, and exactly on the same number.
- `--sync-bn`: BatchNorm statistics over the global batch. On GPUs this is torch's SyncBatchNorm; torch's
  refuses CPU tensors, so on the CPU (gloo) `GlooSyncBatchNorm` does the same with differentiable
  all-reduces.
- A process that dies (SIGKILL, out of memory) ends the job: the others fail their next collective
  (or are stopped by torchrun with SIGTERM) and each prints one line; `--dist-timeout` bounds any wait.

Every process of a job holds the whole uint8 dataset on its device (Fashion-MNIST: 47 MB) and
prepares only its share of each batch. Holding all of it is what makes the global batches independent
of the number of processes; a streamed ImageFolder split is decoded per share by each process's own
DataLoader workers.
"""
from __future__ import annotations

import datetime as _dt
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import PeerFailed, UserError

__all__ = ["GlooSyncBatchNorm", "PeerFailed", "World", "all_gather_object", "all_reduce_", "broadcast_buffers",
           "broadcast_object", "convert_sync_bn", "failure", "init", "launched", "layout", "shutdown"]


@dataclass(frozen=True)
class World:
    """This process's place in the job: 1 process of 1 unless started by torchrun."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def label(self) -> str:
        return f"rank {self.rank} of {self.size}"


def launched() -> bool:
    """Started by torchrun (or another launcher that sets its variables) as one of several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _on_sigterm(signum: int, frame: Any) -> None:  # torchrun stops the survivors of a failed process
    raise PeerFailed("stopped by the launcher (SIGTERM): another process of the job ended")


def init(device: str, timeout_s: float) -> tuple[World, torch.device]:
    """Join the job torchrun started (a no-op for a single process); returns the world and this process's
    device (cuda:LOCAL_RANK on GPUs)."""
    if not launched():
        return World(), torch.device(device)
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"process {local_rank} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                            "visible); start at most one process per GPU (--nproc / --nproc_per_node)")
        torch.cuda.set_device(local_rank)
        here = torch.device("cuda", local_rank)
    else:
        here = torch.device(device)
    backend = "nccl" if here.type == "cuda" else "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=_dt.timedelta(seconds=timeout_s),
                                    device_id=here if here.type == "cuda" else None)
        except (RuntimeError, ValueError) as err:
            raise PeerFailed(f"rank {rank} of {size} could not join the job ({_first_line(err)}); check the "
                             "rendezvous address and that every node started") from None
    signal.signal(signal.SIGTERM, _on_sigterm)
    return World(rank, size, local_rank, local_size, backend), here


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _first_line(err: BaseException) -> str:
    """The gist of a backend's message: its first sentence, without the source location gloo puts first."""
    import re

    lines = str(err).strip().splitlines()
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", lines[0] if lines else type(err).__name__)
    return text.split(". ")[0][:160]


def failure(world: World, err: BaseException) -> PeerFailed:
    """A collective that failed because a peer is gone: one line for this rank."""
    return PeerFailed(f"{world.label()}: another process of the job failed or stopped answering "
                      f"({_first_line(err)})")


def all_reduce_(t: Tensor, world: World) -> Tensor:
    """Sum `t` over the processes, in place (nothing on one process)."""
    if world.active:
        dist.all_reduce(t)
    return t


def all_gather_object(obj: Any, world: World) -> list[Any]:
    if not world.active:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, world: World) -> Any:
    """Rank 0's `obj` on every process."""
    if not world.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: nn.Module, world: World) -> None:
    """Rank 0's buffers (BN running statistics) everywhere: every process evaluates the network rank 0 saves."""
    if world.active:
        for b in module.buffers():
            dist.broadcast(b, src=0)


def layout(world: World) -> dict[str, Any]:
    """For env.json: the world size, the backend, and the ranks of each node (torchrun's GROUP_RANK) with its
    host name."""
    mine = (int(os.environ.get("GROUP_RANK", "0")), socket.gethostname())
    nodes: dict[int, dict[str, Any]] = {}
    for rank, (node, host) in enumerate(all_gather_object(mine, world)):
        nodes.setdefault(node, {"node_rank": node, "host": host, "ranks": []})["ranks"].append(rank)
    return {"world_size": world.size, "backend": world.backend or "none", "nodes": len(nodes),
            "layout": [nodes[k] for k in sorted(nodes)]}


class _AllReduceSum(torch.autograd.Function):
    """The sum over the processes, differentiable: the gradient of a sum that every process uses is the sum of
    their gradients, handed back to each."""

    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, for CPU tensors.

    Two differentiable all-reduces per forward (the sum and count, then the sum of squared deviations
    from the global mean: the two-pass variance, as one process computes it), so the backward pass
    carries every sample's share of the statistics' gradient to every process. In eval mode, or alone,
    it is plain BatchNorm. Parameter and buffer names are BatchNorm's: checkpoints load into either.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        all_reduce = _AllReduceSum.apply
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=xf.dtype, device=x.device)
        total = all_reduce(torch.cat([xf.sum(dims), count]))
        n = total[-1]
        mean = total[:-1] / n
        var = all_reduce((xf - mean.view(shape)).square().sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = var.detach() * (n / (n - 1).clamp(min=1))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        y = (xf - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_bn(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of `model` synchronised over the job: torch's SyncBatchNorm on GPUs, ours on the CPU."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert_cpu(model)


def _convert_cpu(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlooSyncBatchNorm):
        out = GlooSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats)
        with torch.no_grad():
            if module.affine:
                out.weight, out.bias = module.weight, module.bias
            if module.track_running_stats:
                out.running_mean, out.running_var = module.running_mean, module.running_var
                out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child))
    return out
