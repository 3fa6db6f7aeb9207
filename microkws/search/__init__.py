"""The search stage: the best keyword model for a board's flash, RAM and compute budget, found with Optuna.

boards.py     board presets (Board) and the budget each gives (Board.targets)
space.py      what is searched: architecture families, their settings, training and augmentation
storage.py    the study's database (SQLite by default, any Optuna RDB URL), settings, dead workers' trials
objective.py  one trial: cost on the device first, training only within budget, pruning
outputs.py    trials.csv and pareto.png
study.py      run_search: the study, its worker processes, and the best candidate trained in full

Only microkws.cli.search imports this package. `run_search` needs Optuna and TensorFlow, so it is
imported on first use: the board table stays light.
"""

from microkws.search.boards import BOARDS, Board, board_named

__all__ = ["BOARDS", "Board", "board_named", "run_search"]


def __getattr__(name):
    if name == "run_search":
        from microkws.search.study import run_search

        return run_search
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
