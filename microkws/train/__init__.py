"""Training: the original train.py's recipe, fast, resumable, keeping the best model."""

from microkws.train.config import OPTIMIZERS, TrainConfig
from microkws.train.loop import train
from microkws.train.rundir import RunConfig, read_run_config

__all__ = ["OPTIMIZERS", "RunConfig", "TrainConfig", "read_run_config", "train"]
