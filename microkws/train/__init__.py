"""Training: the original train.py's recipe, fast, resumable, keeping the best model."""

from microkws.train.config import OPTIMIZERS, TrainConfig
from microkws.train.loop import load_run_config, run_config, train

__all__ = ["OPTIMIZERS", "TrainConfig", "load_run_config", "run_config", "train"]
