"""Training: the original train.py's recipe, fast, resumable, keeping the best model.

`train` loads TensorFlow, so it is imported on first use: the settings (TrainConfig, RunConfig and
the run directory) stay light for the commands and stages that only read a run.
"""

from microkws.train.config import OPTIMIZERS, TrainConfig
from microkws.train.rundir import RunConfig, read_run_config

__all__ = ["OPTIMIZERS", "RunConfig", "TrainConfig", "read_run_config", "train"]


def __getattr__(name):
    if name == "train":
        from microkws.train.loop import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
