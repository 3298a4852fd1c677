"""Everything a run needs before its first step: the resolved config, device, data, network and optimizer."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import load_dataset
from ..data.pipeline import Augment, InputSpec, to_device
from ..data.types import Dataset, TensorSplit
from ..errors import UserError
from ..meta import meta_twin
from ..peers import load_peer_weights, read_state_dict
from ..registry import create_model, model_info
from .checkpoint import read_checkpoint
from .config import TrainConfig
from .distributed import World, convert_sync_bn
from .recipes import recipe_settings

__all__ = ["Setup", "build_model", "make_optimizer", "resolve_config", "setup"]


def resolve_config(overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the recipe for the network, then `overrides`; device and precision made concrete."""
    model = overrides.get("model", TrainConfig.model)
    model_info(model)  # an unknown name fails here, with suggestions
    recipe = recipe_settings(overrides.get("recipe", TrainConfig.recipe), model)
    cfg = TrainConfig(**{**recipe.settings, **overrides})
    cfg.options = {**recipe.options, **cfg.options}
    cfg.device = resolve_device(cfg.device)
    cfg.amp = resolve_amp(cfg.amp, cfg.device)
    return cfg.validate()


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: this torch sees no CUDA device; use --device cpu (or auto)")
    return name


def resolve_amp(amp: str, device: str) -> str:
    """"auto" → bf16 where the device computes it natively (CUDA with bf16, a CPU with AVX-512 BF16/AMX)."""
    if amp != "auto":
        return amp
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    return "bf16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "none"


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def xavier_init(model: nn.Module) -> None:
    """d2l's `init_weights`: Xavier-uniform weights in every conv and linear layer, biases as they are."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)


def build_model(cfg: TrainConfig, num_classes: int, in_chans: int) -> nn.Module:
    return create_model(cfg.model, **{**cfg.options, "num_classes": num_classes, "in_chans": in_chans})


def check_input(model: nn.Module, size: tuple[int, int, int], aux: bool) -> None:
    """Fail before training if the network cannot take `size` (the usual one-line input error)."""
    twin = meta_twin(model).eval()
    with torch.no_grad():
        x = torch.empty(2, *size, device="meta")
        twin(x)
        if aux:
            twin.train()
            twin.forward_train(x)


def load_init(model: nn.Module, cfg: TrainConfig) -> list[str]:
    """Weights from --init into `model`; returns the keys left as initialised (a new classifier)."""
    path = str(cfg.init)
    if path.endswith(".safetensors"):
        try:
            ckpt = read_checkpoint(path)
        except UserError as err:
            if "not a convzoo checkpoint" not in str(err):
                raise
        else:
            if ckpt.meta["model"] != cfg.model:
                raise UserError(f"--init {path!r} is a checkpoint of {ckpt.meta['model']}, not {cfg.model}; train "
                                f"{ckpt.meta['model']} or give a checkpoint of {cfg.model}")
            return _copy_matching(model, ckpt.part("model"), path)
    peer = read_state_dict(path)
    twin_classes = _peer_classes(peer)
    twin = create_model(cfg.model, **{**cfg.options, "num_classes": twin_classes, "in_chans": model.in_chans})
    load_peer_weights(twin, peer, source=cfg.init_source)
    return _copy_matching(model, twin.state_dict(), path)


def _peer_classes(peer: dict[str, torch.Tensor]) -> int:
    """The class count of a peer state dict: the rows of its last 2-D (or 4-D 1×1) weight."""
    weights = [v for k, v in peer.items() if k.endswith("weight") and v.ndim in (2, 4)]
    return int(weights[-1].shape[0]) if weights else 1000


def _copy_matching(model: nn.Module, state: dict[str, torch.Tensor], path: str) -> list[str]:
    ours = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in ours and v.shape == ours[k].shape}
    if not fitting:
        raise UserError(f"--init {path!r}: none of its tensors fits {getattr(model, 'name', 'the network')}")
    skipped = [k for k in ours if k not in fitting and not k.endswith("num_batches_tracked")]
    if any(not k.startswith("head.") for k in skipped):
        bad = next(k for k in skipped if not k.startswith("head."))
        raise UserError(f"--init {path!r} does not fit: {bad} {tuple(ours[bad].shape)} is missing or has another "
                        "shape; build the network with the options the weights were trained with")
    model.load_state_dict(fitting, strict=False)
    return skipped


def freeze(model: nn.Module, what: str) -> None:
    if what == "none":
        return
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("head."))
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError(f"--freeze {what}: {model.name} has no parameters in its head to train")


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """Modules with parameters, none of them trainable: they stay in eval mode (BN statistics frozen too)."""
    return [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))
            and not any(p.requires_grad for p in m.parameters(recurse=False))]


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.wd_skip_bn_bias:  # biases and BN γ/β are 1-D; every weight matrix or kernel has ≥ 2 dims
        groups = [{"params": [p for _, p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
                  {"params": [p for _, p in params if p.ndim <= 1], "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": [p for _, p in params], "weight_decay": cfg.weight_decay}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, eps=cfg.eps)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, eps=cfg.eps)
    return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=cfg.rms_decay, eps=cfg.eps, momentum=cfg.momentum)


@dataclass
class Setup:
    """A run's live objects."""

    cfg: TrainConfig
    device: torch.device
    data: Dataset
    train: Any  # TensorSplit on the device, or a FolderSplit
    val: Any | None
    test: Any
    spec: InputSpec
    augment: Augment
    model: nn.Module
    aux_weight: float
    init_skipped: list[str]
    world: World = field(default_factory=World)


def _splits(cfg: TrainConfig, data: Dataset, device: torch.device) -> tuple[Any, Any, Any]:
    train, val = data.train, None
    if cfg.val_fraction:
        g = torch.Generator().manual_seed(cfg.seed)
        order = torch.randperm(len(train), generator=g)
        n_val = max(1, round(cfg.val_fraction * len(train)))
        train, val = data.train.subset(order[n_val:]), data.train.subset(order[:n_val])
    def place(split: Any) -> Any:
        return to_device(split, device) if isinstance(split, TensorSplit) else split

    return place(train), (place(val) if val is not None else None), place(data.test)


def setup(cfg: TrainConfig, world: World | None = None, device: torch.device | None = None) -> Setup:
    """The run's data and network; on several processes `world` and this process's `device` (see
    `distributed.init`)."""
    world = world or World()
    device = device or torch.device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)
    info = model_info(cfg.model)
    side = cfg.input_size or info.input_size[1]
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, verify=cfg.verify, image_size=(side, side),
                        test_fraction=cfg.test_fraction, seed=cfg.seed)
    in_chans = cfg.in_chans or data.channels
    model = build_model(cfg, len(data.classes), in_chans)
    aux = bool(getattr(model, "aux_logits", False))
    check_input(model, (in_chans, side, side), aux)
    if cfg.xavier_init:
        xavier_init(model)
    skipped = load_init(model, cfg) if cfg.init else []
    freeze(model, cfg.freeze)
    if world.active:
        if min(cfg.batch_size, len(data.train)) < world.size:
            raise UserError(f"--batch-size {cfg.batch_size} (the global batch) leaves some of the {world.size} "
                            f"processes without images; give at least {world.size}")
        if cfg.sync_bn:
            model = convert_sync_bn(model, device)
        # rank 0 draws what a single process would; the others their own dropout (the weights are rank 0's)
        if world.rank:
            torch.manual_seed(cfg.seed + 1_000_003 * world.rank)
    train, val, test = _splits(cfg, data, device)
    spec = InputSpec((side, side), in_chans, data.mean, data.std, cfg.resize)
    augment = Augment(cfg.crop_padding, cfg.hflip and data.hflip)
    aux_weight = cfg.aux_weight if cfg.aux_weight is not None else (info.aux_weight or 0.0)
    return Setup(cfg, device, data, train, val, test, spec, augment, model.to(device), aux_weight, skipped, world)
