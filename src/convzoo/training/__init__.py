"""Training and evaluation on real data: `train`, `resume`, `evaluate_run`, `predict`, the recipes."""
from __future__ import annotations

from .config import TrainConfig
from .fit import Interrupted, RunResult, resume, train
from .inference import evaluate_run, load_trained, predict
from .loop import Diverged
from .recipes import RECIPES, recipe_settings

__all__ = ["RECIPES", "Diverged", "Interrupted", "RunResult", "TrainConfig", "evaluate_run", "load_trained",
           "predict", "recipe_settings", "resume", "train"]
