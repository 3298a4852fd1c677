"""convzoo: the classic convolutional networks of image classification, faithful to their papers.

    >>> import convzoo
    >>> net = convzoo.create_model("alexnet", num_classes=10, in_chans=1)
    >>> convzoo.model_info("alexnet").paper.year
    2012

Training: ``convzoo.train("lenet5_modern", "fashion-mnist", epochs=5)`` returns the run directory, the
per-epoch metrics and the summary; `resume`, `evaluate_run` and `predict` work on its run directory.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import UserError

if TYPE_CHECKING:
    from . import models
    from .analysis import Report, analyze
    from .counting import count_macs, count_params, figures, stage_shapes
    from .dense import dense_predict, to_fully_conv
    from .inputs import input_range
    from .peers import load_peer_weights, read_state_dict
    from .registry import ModelInfo, Paper, PaperFigure, create_model, list_families, list_models, model_info
    from .training import evaluate_run, predict, resume, train

__version__ = "0.1.0"

# The public names, each imported from its module on first use (PEP 562): `import convzoo` itself stays free of
# torch, so that `convzoo predict FILE.onnx` runs with onnxruntime alone. The registry loads every family
# (`convzoo.models`) the first time it is asked for a name.
_LAZY = {
    "models": "", "Report": "analysis", "analyze": "analysis", "count_macs": "counting",
    "count_params": "counting", "figures": "counting", "stage_shapes": "counting", "dense_predict": "dense",
    "to_fully_conv": "dense", "input_range": "inputs", "load_peer_weights": "peers", "read_state_dict": "peers",
    "ModelInfo": "registry", "Paper": "registry", "PaperFigure": "registry", "create_model": "registry",
    "list_families": "registry", "list_models": "registry", "model_info": "registry", "evaluate_run": "training",
    "predict": "training", "resume": "training", "train": "training",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'convzoo' has no attribute {name!r}")
    value: Any = importlib.import_module(f".{_LAZY[name] or name}", __name__)
    if _LAZY[name]:
        value = getattr(value, name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

__all__ = [
    "ModelInfo",
    "Paper",
    "PaperFigure",
    "Report",
    "UserError",
    "__version__",
    "analyze",
    "count_macs",
    "count_params",
    "create_model",
    "dense_predict",
    "evaluate_run",
    "figures",
    "input_range",
    "list_families",
    "list_models",
    "load_peer_weights",
    "model_info",
    "models",
    "predict",
    "read_state_dict",
    "resume",
    "stage_shapes",
    "to_fully_conv",
    "train",
]
