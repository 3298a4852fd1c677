"""Where a Fashion-MNIST epoch's time goes: d2l's textbook loop (`d2l.torch.train_ch6`) against convzoo's trainer.

Both sides run in one process on the same CPU, on the same four Fashion-MNIST files (the ones convzoo finds;
d2l reads them through torchvision's raw layout in a temporary directory, so nothing is downloaded).

d2l (PyPI `d2l` 1.0.3, installed as benchmarks/README.md says):
- LeNet (§7.6): `d2l.LeNet().net` (the chapter's sigmoid/average-pool network), batch 256, lr 0.9, its
  `load_data_fashion_mnist(256)` DataLoader with its 4 workers, trained by the real `train_ch6` (Xavier init,
  plain SGD) with matplotlib's Agg backend. Thin wrappers around its Timer, `evaluate_accuracy_gpu`,
  `Animator.add` and DataLoader note timestamps only; the printed "examples/sec" is parsed from its output.
  Then the epoch is split by two instrumented loops over the same DataLoader and network: ``data_s`` iterates
  the DataLoader alone for one epoch; ``compute_s`` runs forward + loss + backward + SGD step on that epoch's
  batches, already loaded.
- AlexNet (§8.1): the chapter's network at 224 (its `Resize(224)` DataLoader), batch 128, lr 0.01; `train_ch6`
  on the DataLoader cut to --alexnet-warmup + --alexnet-steps batches (and one test batch).

convzoo:
- `lenet5` (the paper network) and `lenet5_modern` with ``recipe="d2l"`` at batch 256 (fp32, no augmentation:
  the loop is what differs from d2l's), and `lenet5_modern` with the default ``fast`` recipe, each by
  `convzoo.train` for --epochs epochs; the figures are its history's (``epoch_s``, ``data_s``, ...).
- `alexnet` with ``recipe="d2l"``, in_chans 1, input 227: `setup` + `loop.Trainer`, one `train_one_epoch` per
  step on a one-batch subset of the (shuffled) training split, so a fixed number of steps is measured.

Record keys are the same on both sides (None where a side has no such figure). ``wall_s`` is the training part
of an epoch (the steps, data loading and d2l's plotting; evaluation is ``eval_s``); ``run_s`` is the whole
user-visible call (d2l: load_data + network + train_ch6; convzoo: train(), with its checkpoints and plots).

Usage (see benchmarks/README.md for the install):
    .venv-bench/bin/python benchmarks/train_vs_d2l.py [--epochs 1] [--alexnet-steps 20] [--skip-alexnet] [--out DIR]
writes DIR/train_vs_d2l.json and DIR/train_vs_d2l.md (default benchmarks/results/).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import io
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import matplotlib

matplotlib.use("Agg")  # before d2l imports pyplot: no window, as on a server or in CI

import torch
import torchvision
from torch import nn

import convzoo
from convzoo.analysis import analyze
from convzoo.data import sources
from convzoo.fsio import write_bytes, write_json, write_text
from convzoo.render import md_table
from convzoo.training import train
from convzoo.training.loop import Trainer
from convzoo.training.schedule import Schedule
from convzoo.training.setup import make_optimizer, resolve_config, setup

OUT = Path(__file__).parent / "results"
INSTALL = ("d2l is not importable from this interpreter; install it as benchmarks/README.md says, e.g.\n"
           "  .venv/bin/python -m venv .venv-bench && echo '*' > .venv-bench/.gitignore\n"
           "  echo \"import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')\" "
           "> .venv-bench/lib/python3.11/site-packages/zz_convzoo_venv.pth\n"
           "  .venv-bench/bin/pip install -e '.[bench]' && .venv-bench/bin/pip install --no-deps d2l==1.0.3\n"
           "then run .venv-bench/bin/python benchmarks/train_vs_d2l.py")

# Every record has exactly these keys, on both sides (None where a side has no such figure).
KEYS = ("side", "network", "recipe", "batch_size", "lr", "input_size", "epoch", "steps", "images",
        "wall_s", "data_s", "compute_s", "eval_s", "img_per_s_wall", "img_per_s_compute",
        "printed_examples_per_s", "test_top1",
        "timer_s", "data_wait_s", "plot_s",  # d2l only: its Timer's sum, the in-loop DataLoader wait, the Animator
        "median_step_ms", "iqr_step_ms", "warmup_steps", "warmup_s",  # fixed-step (AlexNet) records
        "run_s", "macs_per_image", "gflop_per_s_compute",
        "device", "dtype", "memory_format", "compile", "loader_workers")


def record(**fields: Any) -> dict[str, Any]:
    unknown = set(fields) - set(KEYS)
    if unknown:
        raise KeyError(f"not record keys: {sorted(unknown)}")
    r = {k: fields.get(k) for k in KEYS}
    if r["images"] and r["compute_s"]:
        r["img_per_s_compute"] = r["images"] / r["compute_s"]
        if r["macs_per_image"]:
            r["gflop_per_s_compute"] = 2 * r["macs_per_image"] * r["img_per_s_compute"] / 1e9
    if r["images"] and r["wall_s"] and r["img_per_s_wall"] is None:
        r["img_per_s_wall"] = r["images"] / r["wall_s"]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- environment (as analyze_speed.py records it, plus the versions and settings this comparison depends on)

def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return ""


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def environment() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    dirty = [line for line in _git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "d2l": _version("d2l"), "convzoo": convzoo.__version__, "numpy": _version("numpy"),
            "matplotlib": matplotlib.__version__, "ipython": _version("ipython"),
            "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                           if k in os.environ},
            "mkldnn_bf16": bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            "git_revision": _git("rev-parse", "HEAD"), "git_dirty_tracked_files": len(dirty),
            "load_average_start": list(os.getloadavg())}


# --- d2l: import, offline data, the book's networks

def import_d2l() -> Any:
    os.environ.setdefault("IPYTHONDIR", str(Path(tempfile.gettempdir()) / "convzoo-bench-ipython"))
    try:
        from d2l import torch as d2l
    except ImportError as err:
        sys.exit(f"{INSTALL}\n({err})")
    return d2l


def torchvision_root(cache: Path) -> Path:
    """Decompress convzoo's Fashion-MNIST files into torchvision's layout `<cache>/data/FashionMNIST/raw/`
    and return `<cache>/cwd`: d2l's `load_data_fashion_mnist` reads root="../data", relative to the cwd."""
    found, roots = sources.find("fashion-mnist")
    if found is None:
        sys.exit(f"Fashion-MNIST not found (looked in {', '.join(map(str, roots))}); `convzoo data` says how to "
                 "get it")
    raw = cache / "data" / "FashionMNIST" / "raw"
    for name, path in found.files.items():
        dest = raw / name
        if not dest.exists():
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as f:
                write_bytes(dest, f.read())
    (cache / "cwd").mkdir(parents=True, exist_ok=True)
    return cache / "cwd"


@contextlib.contextmanager
def offline_in(cwd: Path) -> Iterator[None]:
    """Run with `cwd` as the working directory, and fail rather than let torchvision download anything."""
    original = torchvision.datasets.MNIST.download

    def download(self: Any) -> None:
        if not self._check_exists():
            raise RuntimeError(f"torchvision would download into {self.raw_folder}; the raw files are missing")
        original(self)

    before = os.getcwd()
    os.chdir(cwd)
    try:
        with mock.patch.object(torchvision.datasets.MNIST, "download", download):
            yield
    finally:
        os.chdir(before)


def d2l_lenet(d2l: Any) -> nn.Module:
    """`d2l.LeNet().net` (§7.6), its lazy layers materialised so that train_ch6's Xavier init reaches them."""
    net = d2l.LeNet(lr=0.9).net
    net(torch.zeros(1, 1, 28, 28))
    return net


def d2l_alexnet() -> nn.Module:
    """§8.1's AlexNet as the PyTorch edition writes it for train_ch6 (the library ships no AlexNet class)."""
    return nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 10))


def macs(net: nn.Module, size: tuple[int, int, int]) -> int:
    return int(analyze(net, size, find_input_range=False).totals.macs)


class Watched:
    """A DataLoader as train_ch6 uses it (len and iteration), optionally cut to `limit` batches; it notes when
    each batch was asked for and when it arrived."""

    def __init__(self, loader: Any, limit: int | None = None) -> None:
        self.loader, self.limit = loader, limit
        self.passes: list[list[tuple[float, float]]] = []

    def __len__(self) -> int:
        return min(self.limit, len(self.loader)) if self.limit else len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        waits: list[tuple[float, float]] = []
        self.passes.append(waits)
        it = iter(self.loader)
        for _ in range(len(self)):
            t0 = time.perf_counter()
            batch = next(it, None)
            if batch is None:
                return
            waits.append((t0, time.perf_counter()))
            yield batch
        del it  # a cut pass shuts its workers down here


class Probe:
    """Timestamps from inside the real train_ch6: its Timer, `evaluate_accuracy_gpu` and `Animator.add` are
    replaced by subclasses/wrappers that note perf_counter and call the originals."""

    def __init__(self, d2l: Any) -> None:
        self.d2l = d2l
        self.timers: list[tuple[float, Any]] = []
        self.evals: list[tuple[float, float, float]] = []
        self.plots: list[tuple[float, float]] = []

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        d2l, probe = self.d2l, self

        class Timer(d2l.Timer):
            def __init__(self) -> None:
                probe.timers.append((time.perf_counter(), self))
                super().__init__()

        evaluate, add = d2l.evaluate_accuracy_gpu, d2l.Animator.add

        def timed_evaluate(net: nn.Module, data_iter: Any, device: Any = None) -> float:
            t0 = time.perf_counter()
            acc = evaluate(net, data_iter, device)
            probe.evals.append((t0, time.perf_counter(), acc))
            return acc

        def timed_add(animator: Any, x: Any, y: Any) -> None:
            t0 = time.perf_counter()
            add(animator, x, y)
            probe.plots.append((t0, time.perf_counter()))

        with mock.patch.object(d2l, "Timer", Timer), mock.patch.object(d2l, "evaluate_accuracy_gpu", timed_evaluate), \
                mock.patch.object(d2l.Animator, "add", timed_add):
            yield

    def epochs(self, steps_per_epoch: int) -> list[dict[str, float]]:
        """Per epoch: training wall (its start to its evaluation), evaluation, Animator time, d2l's timer sum."""
        start, timer = self.timers[0]
        out = []
        for e, (a, b, acc) in enumerate(self.evals):
            end = next((t1 for t0, t1 in self.plots if t0 >= b), b)  # the test-accuracy point after evaluation
            plot = sum(t1 - t0 for t0, t1 in self.plots if start <= t0 < end)
            timed = timer.times[e * steps_per_epoch:(e + 1) * steps_per_epoch]
            out.append({"start": start, "wall_s": a - start, "eval_s": b - a, "plot_s": plot, "end": end,
                        "timer_s": sum(timed), "test_top1": acc})
            start = end
        return out


def run_train_ch6(d2l: Any, net: nn.Module, train_iter: Watched, test_iter: Any, epochs: int,
                  lr: float) -> tuple[Probe, float | None, str]:
    probe, text = Probe(d2l), io.StringIO()
    try:
        with probe.patched(), contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            d2l.train_ch6(net, train_iter, test_iter, epochs, lr, torch.device("cpu"))
    except BaseException:
        log(text.getvalue()[-4000:])
        raise
    printed = text.getvalue()
    found = re.findall(r"([0-9.]+) examples/sec", printed)
    lines = [line.strip() for line in re.sub(r"\x1b\[2K|\r", "", printed).splitlines()
             if "examples/sec" in line or line.strip().startswith(("training on", "loss "))]
    return probe, float(found[-1]) if found else None, " / ".join(lines)


def sgd_steps(net: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], opt: torch.optim.Optimizer) -> float:
    """Forward, loss, backward and SGD step over `batches` (already in memory); seconds."""
    loss = nn.CrossEntropyLoss()
    net.train()
    t0 = time.perf_counter()
    for x, y in batches:
        opt.zero_grad()
        loss(net(x), y).backward()
        opt.step()
    return time.perf_counter() - t0


def load_pass(loader: Any, limit: int | None = None) -> tuple[list[float], list[Any]]:
    """Iterate `loader` alone (a fresh pass: worker start-up included): the seconds from the start until each
    batch arrived, and the batches."""
    t0 = time.perf_counter()
    arrived, out = [], []
    for batch in loader:
        arrived.append(time.perf_counter() - t0)
        out.append(batch)
        if limit and len(out) == limit:
            break
    return arrived, out


def d2l_common(workers: int) -> dict[str, Any]:
    return {"side": "d2l", "recipe": "train_ch6", "device": "cpu", "dtype": "float32",
            "memory_format": "contiguous", "compile": False, "loader_workers": workers}


def d2l_lenet_records(d2l: Any, cwd: Path, epochs: int, seed: int) -> tuple[list[dict[str, Any]], str]:
    batch, lr = 256, 0.9
    torch.manual_seed(seed)
    t_run = time.perf_counter()
    with offline_in(cwd):
        train_iter, test_iter = d2l.load_data_fashion_mnist(batch)
    net = d2l_lenet(d2l)
    watched = Watched(train_iter)
    probe, printed, lines = run_train_ch6(d2l, net, watched, test_iter, epochs, lr)
    run_s = time.perf_counter() - t_run
    log(f"  d2l train_ch6 LeNet: {lines}")
    n, steps = len(train_iter.dataset), len(train_iter)
    per_epoch = probe.epochs(steps)
    # the split: the DataLoader alone, then the network alone on that epoch's batches (fresh Xavier-initialised net)
    torch.manual_seed(seed)
    split_net = d2l_lenet(d2l)
    split_net.apply(d2l.init_cnn)
    opt = torch.optim.SGD(split_net.parameters(), lr=lr)
    mac = macs(split_net, (1, 28, 28))
    records = []
    for e, ep in enumerate(per_epoch):
        arrived, batches = load_pass(train_iter)
        data_s = arrived[-1]
        compute_s = sgd_steps(split_net, batches, opt)
        del batches
        wait = sum(t1 - t0 for t0, t1 in watched.passes[e])
        records.append(record(**d2l_common(train_iter.num_workers), network="d2l.LeNet (§7.6)", batch_size=batch,
                              lr=lr, input_size=28, epoch=e + 1, steps=steps, images=n, wall_s=ep["wall_s"],
                              data_s=data_s, compute_s=compute_s, eval_s=ep["eval_s"],
                              printed_examples_per_s=printed, test_top1=ep["test_top1"], timer_s=ep["timer_s"],
                              data_wait_s=wait, plot_s=ep["plot_s"], run_s=run_s, macs_per_image=mac))
        log(f"  d2l LeNet epoch {e + 1}: wall {ep['wall_s']:.2f} s (timer {ep['timer_s']:.2f}, DataLoader wait "
            f"{wait:.2f}, plot {ep['plot_s']:.2f}); alone: data {data_s:.2f} s, compute {compute_s:.2f} s; "
            f"eval {ep['eval_s']:.2f} s; test {ep['test_top1']:.3f}")
    return records, lines


def step_stats(step_s: list[float]) -> tuple[float, float]:
    ms = sorted(1000 * s for s in step_s)
    if len(ms) < 4:
        return statistics.median(ms), 0.0
    q = statistics.quantiles(ms, n=4)
    return statistics.median(ms), q[2] - q[0]


def d2l_alexnet_record(d2l: Any, cwd: Path, steps: int, warmup: int, seed: int) -> tuple[dict[str, Any], str]:
    batch, lr, size = 128, 0.01, 224
    torch.manual_seed(seed)
    t_run = time.perf_counter()
    with offline_in(cwd):
        train_iter, test_iter = d2l.load_data_fashion_mnist(batch, resize=size)
    net = d2l_alexnet()
    watched = Watched(train_iter, limit=warmup + steps)
    probe, printed, lines = run_train_ch6(d2l, net, watched, Watched(test_iter, limit=1), 1, lr)
    run_s = time.perf_counter() - t_run
    log(f"  d2l train_ch6 AlexNet, {warmup} + {steps} steps: {lines}")
    asked = [t0 for t0, _ in watched.passes[0]]
    ends = [*asked[1:], probe.evals[0][0]]  # a step runs from asking for its batch to asking for the next
    step_s = [b - a for a, b in zip(asked, ends)][warmup:]
    wait = sum(t1 - t0 for t0, t1 in watched.passes[0][warmup:])
    timer = probe.timers[0][1].times[warmup:]
    plot = sum(t1 - t0 for t0, t1 in probe.plots if asked[warmup] <= t0 < ends[-1])
    # the split: the DataLoader alone, a fresh pass (worker start-up included, as every epoch pays it) until
    # `steps` batches arrived (a window after warm-up batches would hide the workers' prefetch); then the
    # network alone on the batches, warm-up steps untimed
    arrived, batches = load_pass(train_iter, limit=warmup + steps)
    data_s = arrived[steps - 1]
    torch.manual_seed(seed)
    split_net = d2l_alexnet()
    split_net.apply(d2l.init_cnn)
    opt = torch.optim.SGD(split_net.parameters(), lr=lr)
    sgd_steps(split_net, batches[:warmup], opt)
    compute_s = sgd_steps(split_net, batches[warmup:], opt)
    del batches
    median, iqr = step_stats(step_s)
    rec = record(**d2l_common(train_iter.num_workers), network="AlexNet (d2l §8.1)", batch_size=batch, lr=lr,
                 input_size=size, steps=steps, images=steps * batch, wall_s=sum(step_s), data_s=data_s,
                 compute_s=compute_s, printed_examples_per_s=printed, timer_s=sum(timer), data_wait_s=wait,
                 plot_s=plot, median_step_ms=median, iqr_step_ms=iqr, warmup_steps=warmup,
                 warmup_s=asked[warmup] - probe.timers[0][0], run_s=run_s,
                 macs_per_image=macs(split_net, (1, size, size)))
    log(f"  d2l AlexNet: {steps} steps in {sum(step_s):.2f} s (median {median:.0f} ms/step); alone: data "
        f"{data_s:.2f} s for {steps} batches from a fresh start, compute {compute_s:.2f} s")
    return rec, lines


# --- convzoo

def convzoo_lenet_records(network: str, recipe: str, epochs: int, runs: Path, seed: int,
                          **extra: Any) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    result = train(network, "fashion-mnist", recipe=recipe, epochs=epochs, out=str(runs / f"{network}-{recipe}"),
                   quiet=True, seed=seed, **extra)
    run_s = time.perf_counter() - t0
    cfg = resolve_config({"model": network, "dataset": "fashion-mnist", "recipe": recipe, **extra})
    size = cfg.input_size or convzoo.model_info(network).input_size[1]
    mac = macs(convzoo.create_model(network, num_classes=10, in_chans=1), (1, size, size))
    steps = 60000 // cfg.batch_size  # drop_last
    out = []
    for h in result.history:
        out.append(record(side="convzoo", network=network, recipe=recipe, batch_size=cfg.batch_size, lr=cfg.lr,
                          input_size=size, epoch=h["epoch"], steps=steps, images=steps * cfg.batch_size,
                          wall_s=h["epoch_s"], data_s=h["data_s"], compute_s=h["compute_s"], eval_s=h["eval_s"],
                          img_per_s_wall=h["img_per_s_wall"], test_top1=h["test_top1"], run_s=run_s,
                          macs_per_image=mac, device=cfg.device, dtype="bf16 autocast" if cfg.amp == "bf16" else
                          ("fp16 autocast" if cfg.amp == "fp16" else "float32"),
                          memory_format="channels_last" if cfg.channels_last else "contiguous",
                          compile=cfg.compile, loader_workers=0))
        log(f"  convzoo {network} ({recipe}) epoch {h['epoch']}: wall {h['epoch_s']:.2f} s (data {h['data_s']:.2f}, "
            f"compute {h['compute_s']:.2f}), eval {h['eval_s']:.2f} s, test {h['test_top1']:.3f}")
    return out


def convzoo_alexnet_record(steps: int, warmup: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    cfg = resolve_config({"model": "alexnet", "dataset": "fashion-mnist", "recipe": "d2l", "in_chans": 1,
                          "input_size": 227, "quiet": True, "seed": seed})
    s = setup(cfg)
    full = s.train
    trainer = Trainer(s, make_optimizer(cfg, s.model), Schedule(cfg, len(full) // cfg.batch_size))
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
    stats = []
    try:
        for i in range(warmup + steps):  # one step per call: a one-batch "epoch" of the real loop
            s.train = full.subset(order[i * cfg.batch_size:(i + 1) * cfg.batch_size].to(full.labels.device))
            stats.append(trainer.train_one_epoch(i))
    finally:
        s.train = full
    run_s = time.perf_counter() - t0
    timed = stats[warmup:]
    median, iqr = step_stats([st.seconds for st in timed])
    rec = record(side="convzoo", network="alexnet", recipe="d2l", batch_size=cfg.batch_size, lr=cfg.lr,
                 input_size=227, steps=steps, images=sum(st.images for st in timed),
                 wall_s=sum(st.seconds for st in timed), data_s=sum(st.data_s for st in timed),
                 compute_s=sum(st.compute_s for st in timed), median_step_ms=median, iqr_step_ms=iqr,
                 warmup_steps=warmup, warmup_s=sum(st.seconds for st in stats[:warmup]), run_s=run_s,
                 macs_per_image=macs(s.model, (1, 227, 227)), device=cfg.device,
                 dtype="bf16 autocast" if cfg.amp == "bf16" else "float32",
                 memory_format="channels_last" if cfg.channels_last else "contiguous", compile=cfg.compile,
                 loader_workers=0)
    log(f"  convzoo alexnet: {steps} steps in {rec['wall_s']:.2f} s (median {median:.0f} ms/step; data "
        f"{rec['data_s']:.2f} s, compute {rec['compute_s']:.2f} s)")
    return rec


# --- report

PAIRS = (("lenet5", "d2l.LeNet (§7.6)"), ("lenet5_modern", "d2l.LeNet (§7.6)"), ("alexnet", "AlexNet (d2l §8.1)"))
RATIO_KEYS = ("wall_s", "data_s", "compute_s", "eval_s", "img_per_s_wall", "img_per_s_compute")


def _median(records: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in records if r[key] is not None]
    return statistics.median(values) if values else None


def ratios(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """convzoo / d2l for each pairing, on the median over epochs of each side."""
    out = []
    for ours, theirs in PAIRS:
        a = [r for r in records if r["side"] == "convzoo" and r["network"] == ours]
        b = [r for r in records if r["side"] == "d2l" and r["network"] == theirs]
        if not a or not b:
            continue
        row: dict[str, Any] = {"convzoo": f"{ours} ({a[0]['recipe']}, batch {a[0]['batch_size']})", "d2l": theirs}
        for key in RATIO_KEYS:
            x, y = _median(a, key), _median(b, key)
            row[key] = round(x / y, 3) if x is not None and y else None
        out.append(row)
    return out


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"
    return str(v)


def markdown(result: dict[str, Any]) -> str:
    env, recs = result["environment"], result["records"]
    lines = ["# Fashion-MNIST epochs: d2l's `train_ch6` against convzoo's trainer", "",
             f"Measured {env['date']} on {env['cpu']} ({env['cpus_usable']} usable of {env['cpu_count']} CPUs, "
             f"{env['torch_threads']} torch threads), load average {env['load_average_start'][0]:.2f} at the start "
             f"and {env['load_average_end'][0]:.2f} at the end; Python {env['python']}, torch {env['torch']}, "
             f"torchvision {env['torchvision']}, d2l {env['d2l']}, convzoo {env['convzoo']} at "
             f"{env['git_revision'][:12]}{' (+ uncommitted changes)' if env['git_dirty_tracked_files'] else ''}.",
             f"Command: `{result['command']}`.", "",
             "`wall` is the training part of an epoch (steps, data loading, d2l's plotting); `data` and `compute` "
             "are d2l's DataLoader alone and its network alone on pre-loaded batches (separate loops), convzoo's "
             "own in-loop split; `eval` is the test pass. `printed` is the examples/sec that train_ch6 prints (its "
             "Timer covers forward/backward/step and its accuracy bookkeeping only).", "",
             "## LeNet, per epoch", ""]
    epoch_recs = [r for r in recs if r["epoch"] is not None]
    lines += md_table(["side", "network", "recipe", "batch", "epoch", "wall s", "data s", "compute s", "eval s",
                       "img/s wall", "img/s compute", "printed ex/s", "test top-1"],
                      [[r["side"], r["network"], r["recipe"], r["batch_size"], r["epoch"], _fmt(r["wall_s"]),
                        _fmt(r["data_s"]), _fmt(r["compute_s"]), _fmt(r["eval_s"]), _fmt(r["img_per_s_wall"], 0),
                        _fmt(r["img_per_s_compute"], 0), _fmt(r["printed_examples_per_s"], 0),
                        _fmt(r["test_top1"], 3)]
                       for r in epoch_recs], [False] * 3 + [True] * 10)
    d2l_epochs = [r for r in epoch_recs if r["side"] == "d2l"]
    if d2l_epochs:
        lines += ["", "Inside d2l's wall-clock (its own loop, per epoch): d2l's Timer sum, the time its loop "
                  "waited for the DataLoader, and the Animator (matplotlib + IPython display), which a user pays:", ""]
        lines += md_table(["epoch", "wall s", "timer s", "DataLoader wait s", "Animator s", "rest s"],
                          [[r["epoch"], _fmt(r["wall_s"]), _fmt(r["timer_s"]), _fmt(r["data_wait_s"]),
                            _fmt(r["plot_s"]), _fmt(r["wall_s"] - r["timer_s"] - r["data_wait_s"] - r["plot_s"])]
                           for r in d2l_epochs], [True] * 6)
    step_recs = [r for r in recs if r["epoch"] is None]
    if step_recs:
        n, w = step_recs[0]["steps"], step_recs[0]["warmup_steps"]
        lines += ["", f"## AlexNet, {n} steps after {w} warm-up step{'s' * (w != 1)} (d2l at 224 through its "
                  "Resize DataLoader, convzoo's paper network at 227)", ""]
        lines += md_table(["side", "network", "batch", "input", "median ms/step", "IQR ms", "wall s", "data s",
                           "compute s", "img/s wall", "img/s compute", "GFLOP/s compute", "MMACs/img",
                           "printed ex/s"],
                          [[r["side"], r["network"], r["batch_size"], r["input_size"], _fmt(r["median_step_ms"], 0),
                            _fmt(r["iqr_step_ms"], 0), _fmt(r["wall_s"]), _fmt(r["data_s"]), _fmt(r["compute_s"]),
                            _fmt(r["img_per_s_wall"], 1), _fmt(r["img_per_s_compute"], 1),
                            _fmt(r["gflop_per_s_compute"], 1), _fmt(r["macs_per_image"] / 1e6, 1),
                            _fmt(r["printed_examples_per_s"], 1)] for r in step_recs], [False, False] + [True] * 12)
    if result["ratios"]:
        lines += ["", "## convzoo / d2l, measured in this run (median over epochs)", "",
                  "Above 1 means convzoo's figure is larger: for the seconds columns that is slower, for img/s "
                  "faster.", ""]
        lines += md_table(["convzoo", "d2l", *RATIO_KEYS],
                          [[r["convzoo"], r["d2l"], *(_fmt(r[k], 3) for k in RATIO_KEYS)] for r in result["ratios"]],
                          [False, False] + [True] * len(RATIO_KEYS))
    lines += ["", "## Notes", "", *(f"- {n}" for n in result["notes"]), ""]
    return "\n".join(lines)


NOTES = (
    "d2l's side is the real `d2l.torch.train_ch6` (d2l 1.0.3 from PyPI) on `d2l.load_data_fashion_mnist`'s "
    "DataLoader (ToTensor per PIL image, shuffle, 4 workers started anew each epoch), fed from torchvision's raw "
    "layout in a temporary directory: nothing is downloaded. Its Animator runs under matplotlib's Agg backend and "
    "IPython's display outside a notebook; in Jupyter it also ships an SVG per point.",
    "d2l's LeNet epoch is 60,000 images (235 batches, the last one partial); convzoo drops the partial batch "
    "(234 × 256 = 59,904). Throughputs are per image on each side.",
    "convzoo keeps the uint8 dataset in memory and prepares each batch with tensor ops (no DataLoader, no "
    "workers); its `data_s` is that preparation, timed inside its loop.",
    "convzoo's `lenet5` is the 1998 paper network (scaled tanh, trainable subsampling, Table I C3 connections, RBF "
    "output) at 32×32, the 28×28 images zero-padded (d2l pads in its first convolution); `lenet5_modern` (ReLU, "
    "max-pooling, dense C3) is closest to d2l's network. Both run the d2l recipe (SGD, Xavier init, fp32, no "
    "augmentation) at batch 256, d2l's LeNet batch, with the recipe's lr 0.1 (d2l 1.0's LeNet chapter; the "
    "train_ch6 edition measured here uses 0.9, at which lenet5 diverges), so test accuracies are not like for "
    "like: the comparison is of time. `lenet5_modern` also runs the `fast` recipe (bf16 autocast and "
    "channels_last where the CPU has native bf16, random crops and flips, EMA, one-cycle).",
    "AlexNet: the networks differ (d2l's single-tower 96-256-384-384-256 at 224 against the 2012 paper's two-tower "
    "grouped convolutions with response normalisation at 227), hence the MACs column and GFLOP/s = "
    "2 · MACs · img/s. d2l's steps include its Resize(224) of every PIL image in the workers; convzoo resizes "
    "each batch bilinearly on the tensors. Step times: d2l's from asking for one batch to asking for the next "
    "inside train_ch6; convzoo's from one-step `train_one_epoch` calls. d2l's `data_s` here is a fresh DataLoader "
    "pass until that many batches arrived (worker start-up included, as at every epoch start).",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="LeNet epochs on each side (default 1)")
    parser.add_argument("--alexnet-steps", type=int, default=20, help="timed AlexNet steps on each side")
    parser.add_argument("--alexnet-warmup", type=int, default=2, help="AlexNet steps before the timed ones")
    parser.add_argument("--skip-alexnet", action="store_true")
    parser.add_argument("--skip-lenet", action="store_true", help="only the AlexNet steps")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for both sides (default: torch's own, one per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT, help="where train_vs_d2l.json and .md go")
    args = parser.parse_args()
    if args.epochs < 1 or args.alexnet_steps < 1 or args.alexnet_warmup < 0:
        parser.error("--epochs and --alexnet-steps must be 1 or more, --alexnet-warmup 0 or more")
    if args.alexnet_warmup + args.alexnet_steps < 5:
        parser.error("train_ch6 plots every (batches // 5) steps: --alexnet-warmup + --alexnet-steps must be 5 or more")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be 1 or more")
        torch.set_num_threads(args.threads)
    d2l = import_d2l()
    env = environment()
    command = "python benchmarks/train_vs_d2l.py " + " ".join(sys.argv[1:])
    log(f"{env['cpu']}, {env['torch_threads']} threads, load {env['load_average_start'][0]:.2f}; torch "
        f"{env['torch']}, d2l {env['d2l']}, convzoo {env['convzoo']}")
    tmp = Path(tempfile.mkdtemp(prefix="convzoo-vs-d2l-"))
    records: list[dict[str, Any]] = []
    printed: dict[str, str] = {}
    try:
        cwd = torchvision_root(tmp)
        warm = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
        for _ in range(3):  # the process's one-time costs (thread pool, first kernels) are paid by neither side
            warm(torch.randn(64, 1, 28, 28)).sum().backward()
        if not args.skip_lenet:
            log("LeNet, d2l:")
            recs, printed["d2l LeNet"] = d2l_lenet_records(d2l, cwd, args.epochs, args.seed)
            records += recs
            log("LeNet, convzoo:")
            records += convzoo_lenet_records("lenet5", "d2l", args.epochs, tmp / "runs", args.seed, batch_size=256)
            records += convzoo_lenet_records("lenet5_modern", "d2l", args.epochs, tmp / "runs", args.seed,
                                             batch_size=256)  # fp32 and contiguous, as d2l: the loop alone differs
            records += convzoo_lenet_records("lenet5_modern", "fast", args.epochs, tmp / "runs", args.seed)
        if not args.skip_alexnet:
            log(f"AlexNet, {args.alexnet_warmup} + {args.alexnet_steps} steps:")
            rec, printed["d2l AlexNet"] = d2l_alexnet_record(d2l, cwd, args.alexnet_steps, args.alexnet_warmup,
                                                             args.seed)
            records.append(rec)
            records.append(convzoo_alexnet_record(args.alexnet_steps, args.alexnet_warmup, args.seed))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    env["load_average_end"] = list(os.getloadavg())
    result = {"what": "seconds and images per second of a Fashion-MNIST training epoch (LeNet) and of fixed AlexNet "
                      "steps: d2l's train_ch6 against convzoo's trainer, one process, one CPU",
              "command": command, "environment": env, "train_ch6_printed": printed, "records": records,
              "ratios": ratios(records), "notes": list(NOTES)}
    write_json(args.out / "train_vs_d2l.json", result)
    write_text(args.out / "train_vs_d2l.md", markdown(result))
    log(f"wrote {args.out / 'train_vs_d2l.json'} and {args.out / 'train_vs_d2l.md'}")


if __name__ == "__main__":
    main()
