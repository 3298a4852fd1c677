"""convzoo: the classic convolutional networks of image classification, faithful to their papers.

    >>> import convzoo
    >>> net = convzoo.create_model("alexnet", num_classes=10, in_chans=1)
    >>> convzoo.model_info("alexnet").paper.year
    2012

Training: ``convzoo.train("lenet5_modern", "fashion-mnist", epochs=5)`` returns the run directory, the
per-epoch metrics and the summary; `resume`, `evaluate_run` and `predict` work on its run directory.
"""
from __future__ import annotations

from . import models  # registers every family
from .analysis import Report, analyze
from .counting import count_macs, count_params, figures, stage_shapes
from .dense import dense_predict, to_fully_conv
from .errors import UserError
from .inputs import input_range
from .peers import load_peer_weights, read_state_dict
from .registry import ModelInfo, Paper, PaperFigure, create_model, list_families, list_models, model_info
from .training import evaluate_run, predict, resume, train

__version__ = "0.1.0"

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
