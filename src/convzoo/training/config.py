"""`TrainConfig`: everything a training run depends on, and the `convzoo train` flags made from it.

A run's settings come from three layers, later ones winning: the field defaults below, the chosen recipe
(`recipes.py`: `fast`, `paper` or `d2l`, each per network family), and the flags the user gave. The
resolved config is written to the run directory's ``config.json`` and is all a resumed run needs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import UserError

__all__ = ["OPTIMIZERS", "SCHEDULES", "TrainConfig", "add_arguments", "explicit_overrides"]

OPTIMIZERS = ("sgd", "adamw", "adam", "rmsprop")
SCHEDULES = ("none", "step", "piecewise", "plateau", "cosine", "onecycle", "linear", "exponential")


def _opt(help_text: str, *, choices: tuple[str, ...] | None = None, cli: bool = True,
         metavar: str | None = None) -> dict[str, Any]:
    return {"help": help_text, "choices": choices, "cli": cli, "metavar": metavar}


@dataclass
class TrainConfig:
    """One training run. Defaults are the library's; recipes override them; flags override recipes."""

    # what to train on what
    model: str = field(default="lenet5_modern", metadata=_opt("a registered network", cli=False))
    dataset: str = field(default="fashion-mnist", metadata=_opt("fashion-mnist, mnist, cifar10, cifar100, "
                                                                "imagefolder or synthetic"))
    data_dir: str | None = field(default=None, metadata=_opt("where the dataset's files are (or the ImageFolder "
                                                             "root)", metavar="DIR"))
    verify: bool = field(default=True, metadata=_opt("verify the official files' checksums (--no-verify: accept "
                                                     "your own files in the same format)"))
    recipe: str = field(default="fast", metadata=_opt("fast, paper or d2l (`convzoo recipes` lists them)"))
    # optimisation
    epochs: int = field(default=10, metadata=_opt("passes over the training data"))
    batch_size: int = field(default=256, metadata=_opt("images per step (on several processes: the global batch, "
                                                       "split between them)"))
    lr: float = field(default=0.1, metadata=_opt("peak learning rate"))
    optimizer: str = field(default="sgd", metadata=_opt("the optimizer", choices=OPTIMIZERS))
    momentum: float = field(default=0.9, metadata=_opt("SGD/RMSProp momentum"))
    nesterov: bool = field(default=False, metadata=_opt("Nesterov momentum (SGD)"))
    rms_decay: float = field(default=0.99, metadata=_opt("RMSProp's squared-gradient decay (the papers' 0.9)"))
    eps: float = field(default=1e-8, metadata=_opt("the optimizer's epsilon (Inception v3's RMSProp: 1.0)"))
    weight_decay: float = field(default=0.0, metadata=_opt("L2 weight decay (decoupled for adamw)"))
    wd_skip_bn_bias: bool = field(default=False, metadata=_opt("no weight decay on BN parameters and biases"))
    schedule: str = field(default="none", metadata=_opt("learning-rate schedule", choices=SCHEDULES))
    warmup: float = field(default=0.0, metadata=_opt("epochs of linear warm-up from lr/10 (not with onecycle)"))
    step_every: float = field(default=30.0, metadata=_opt("step: epochs between decays"))
    gamma: float = field(default=0.1, metadata=_opt("step/exponential/plateau: the decay factor"))
    milestones: tuple[float, ...] = field(default=(), metadata=_opt("piecewise: epochs where the factor changes",
                                                                    metavar="E1,E2,..."))
    factors: tuple[float, ...] = field(default=(), metadata=_opt("piecewise: the lr factor from each milestone on",
                                                                 metavar="F1,F2,..."))
    patience: int = field(default=3, metadata=_opt("plateau: epochs without improvement before a decay"))
    label_smoothing: float = field(default=0.0, metadata=_opt("label smoothing ε"))
    clip_grad: float | None = field(default=None, metadata=_opt("clip the gradient norm to this", metavar="NORM"))
    ema: float = field(default=0.0, metadata=_opt("decay of an exponential moving average of the weights, "
                                                  "evaluated instead of them (0: off)"))
    aux_weight: float | None = field(default=None, metadata=_opt("weight of auxiliary losses (default: the "
                                                                 "paper's, for networks that have them)"))
    # input
    input_size: int | None = field(default=None, metadata=_opt("square network input (default: the network's)"))
    in_chans: int | None = field(default=None, metadata=_opt("build the network for this many channels "
                                                             "(default: the dataset's)"))
    resize: str = field(default="auto", metadata=_opt("how images reach the input size", choices=("auto", "pad",
                                                                                                  "resize")))
    crop_padding: int = field(default=0, metadata=_opt("augmentation: random crop with this much zero padding"))
    hflip: bool = field(default=False, metadata=_opt("augmentation: random horizontal flips (where the dataset "
                                                     "allows)"))
    val_fraction: float = field(default=0.0, metadata=_opt("hold out this fraction of the training data; best is "
                                                           "chosen on it"))
    test_fraction: float = field(default=0.2, metadata=_opt("imagefolder with one tree: the test share"))
    # network
    init: str | None = field(default=None, metadata=_opt("start from these weights: a convzoo checkpoint or a "
                                                         "torchvision/timm state-dict file", metavar="PATH"))
    init_source: str = field(default="torchvision", metadata=_opt("where --init's state dict comes from",
                                                                  choices=("torchvision", "timm")))
    freeze: str = field(default="none", metadata=_opt("features: train only the classifier head",
                                                      choices=("none", "features")))
    xavier_init: bool = field(default=False, metadata=_opt("re-initialise conv/linear weights Xavier-uniform "
                                                           "(d2l)"))
    options: dict[str, Any] = field(default_factory=dict, metadata=_opt("builder options", cli=False))
    # execution
    seed: int = field(default=0, metadata=_opt("seed of the initialisation, data order and augmentation"))
    deterministic: bool = field(default=False, metadata=_opt("deterministic algorithms only (bitwise "
                                                             "repeatable on CPU)"))
    device: str = field(default="auto", metadata=_opt("where to train", choices=("auto", "cpu", "cuda")))
    amp: str = field(default="none", metadata=_opt("autocast precision (auto: bf16 where it is fast)",
                                                   choices=("none", "auto", "bf16", "fp16")))
    channels_last: bool = field(default=False, metadata=_opt("channels_last memory format"))
    compile: bool = field(default=False, metadata=_opt("torch.compile the network"))
    eval_batch_size: int = field(default=1000, metadata=_opt("images per evaluation step"))
    sync_bn: bool = field(default=False, metadata=_opt("several processes: BatchNorm statistics over the global "
                                                       "batch (SyncBatchNorm)"))
    dist_timeout: float = field(default=300.0, metadata=_opt("several processes: seconds to wait for the others "
                                                             "before giving up", metavar="SECONDS"))
    workers: int | None = field(default=None, metadata=_opt("DataLoader workers for streamed folders"))
    out: str | None = field(default=None, metadata=_opt("the run directory (default runs/<model>-<dataset>-<time>)",
                                                        metavar="RUN_DIR"))
    time_budget: float | None = field(default=None, metadata=_opt("seconds of training and evaluation the run may "
                                                                  "take: the lr schedule is planned for the epochs "
                                                                  "that fit, --epochs at most", metavar="SECONDS"))
    target_acc: float | None = field(default=None, metadata=_opt("stop after the first epoch whose test top-1 "
                                                                 "(validation, with --val-fraction) reaches this "
                                                                 "fraction; the summary says how long it took",
                                                                 metavar="FRACTION"))
    quiet: bool = field(default=False, metadata=_opt("no progress bar: one log line per epoch"))

    def validate(self) -> TrainConfig:
        """Refuse values no run can use, one `UserError` naming the flag."""
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size}
        for name, value in positive.items():
            if value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be 1 or more, got {value}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        for name in ("weight_decay", "label_smoothing", "momentum", "warmup", "crop_padding"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        for name in ("label_smoothing", "val_fraction", "ema", "momentum"):
            if not 0 <= getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")
        if not 0 < self.test_fraction < 1:
            raise UserError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")
        if not self.dist_timeout > 0:
            raise UserError(f"--dist-timeout must be positive, got {self.dist_timeout}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise UserError(f"--time-budget must be a positive number of seconds, got {self.time_budget}")
        if self.target_acc is not None and not 0 < self.target_acc <= 1:
            raise UserError(f"--target-acc is a fraction in (0, 1] (0.94 for 94 %), got {self.target_acc}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise UserError(f"--clip-grad must be positive, got {self.clip_grad}")
        if self.input_size is not None and self.input_size < 1:
            raise UserError(f"--input-size must be 1 or more, got {self.input_size}")
        if self.in_chans not in (None, 1, 3):
            raise UserError(f"--in-chans must be 1 or 3 (the datasets' images are grey or RGB), got {self.in_chans}")
        if self.schedule == "piecewise" and len(self.milestones) != len(self.factors):
            raise UserError("--milestones and --factors must have as many entries each")
        if self.schedule == "onecycle" and self.warmup:
            raise UserError("onecycle has its own warm-up; leave out --warmup")
        return self

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        d = {k: (tuple(v) if k in ("milestones", "factors") else v) for k, v in d.items() if k in known}
        return cls(**d)


def _parse_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per CLI field of `TrainConfig`; every default is None so that recipes can tell what was given."""
    for f in fields(TrainConfig):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"dest": f.name, "default": None, "help": meta["help"]}
        kind = str(f.type)
        if kind == "bool":  # --hflip / --no-hflip: a recipe's choice can be turned either way
            kw["action"] = argparse.BooleanOptionalAction
        elif "tuple" in kind:
            kw.update(type=_parse_list, metavar=meta.get("metavar"))
        else:
            scalar = float if "float" in kind else int if "int" in kind else str
            kw.update(type=scalar, choices=meta.get("choices"), metavar=meta.get("metavar"))
        parser.add_argument(flag, **kw)


def explicit_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The `TrainConfig` fields the user set on the command line."""
    names = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
