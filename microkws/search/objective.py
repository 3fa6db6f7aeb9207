"""One trial of a search: suggest a candidate, measure what it costs on the device, and train it only if it fits.

Flash, arena and MACs do not depend on trained values (microkws.device.budget), so an over-budget
candidate is recorded in seconds (user attribute `over_budget`, state PRUNED) and never trained. A
candidate that fits is trained for the trial's short schedule into SEARCH_DIR/trials/trial-NNNN; each
validation is reported to Optuna, whose pruner stops one that trails the others. The trial's value is
its best validation score, by the recipe's checkpoint metric (keyword recall at 5 % false accepts by default;
the test speakers are kept for the end).
"""

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import socket
import time

import optuna

from microkws.device.budget import BUDGET_FIGURES, model_costs, over_budget
from microkws.errors import UserError, first_line
from microkws.search.space import suggest
from microkws.train.data import DataCache
from microkws.train.recipes import recommended_recipe

log = logging.getLogger(__name__)

TRIALS_DIR = "trials"
VALIDATIONS_PER_TRIAL = 5
"""Validations (reports to the pruner) in one trial's schedule."""


def trial_dir(search_dir, number):
    return os.path.join(search_dir, TRIALS_DIR, f"trial-{number:04d}")


def validation_interval(steps):
    return max(1, steps // VALIDATIONS_PER_TRIAL)


def with_schedule(train_config, steps, **intervals):
    """`train_config` trained for `steps` steps, its warm-up scaled with it (the recipe warms up for 5 % of
    its steps: a fixed 100 would not fit a 30-step trial)."""
    warmup = round(train_config.warmup_steps * steps / train_config.total_steps)
    return dataclasses.replace(train_config, how_many_training_steps=(steps,), warmup_steps=min(warmup, steps - 1),
                               **intervals)


class Objective:
    """Optuna's objective for a search (a SearchConfig): one call is one trial."""

    def __init__(self, config):
        self.config = config
        self.recipe = recommended_recipe(seed=config.seed)
        # Trials differ in model and augmentation, never in data: this worker reads the clips once.
        self.data_cache = DataCache()

    def __call__(self, trial):
        from microkws._tensorflow import keras

        # First, so that a kill at any later point leaves a trial this machine can tell is dead.
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        augment, candidate = suggest(trial, *self.recipe)
        trial.set_user_attr("model_config", candidate.model_config)
        try:
            costs = self._measure(trial, candidate)
            over = over_budget(costs, self.config.targets)
            if over:
                trial.set_user_attr("over_budget", over)
                raise optuna.TrialPruned(f"over budget: {format_over(over)}")
            return self._train(trial, augment, candidate)
        finally:
            keras.utils.clear_session()  # each trial builds new models: keep Keras' global state from growing

    def _measure(self, trial, candidate):
        started = time.monotonic()
        costs = model_costs(candidate, self.config.features, len(self.config.data.labels))
        trial.set_user_attr("cost_seconds", round(time.monotonic() - started, 2))
        for name in BUDGET_FIGURES:
            trial.set_user_attr(name, costs[name])
            # Above 0 is infeasible: TPE then ranks over-budget candidates by how far over they are and
            # steers away from them, instead of taking them as merely pruned.
            trial.set_constraint(name, costs[name] / getattr(self.config.targets, name) - 1)
        return costs

    def _train(self, trial, augment, candidate):
        from microkws.train import train

        run_dir = trial_dir(self.config.search_dir, trial.number)
        if os.path.isdir(run_dir):  # a study never reuses a number: this is left from a deleted study
            shutil.rmtree(run_dir)
        trial.set_user_attr("run_dir", os.path.relpath(run_dir, self.config.search_dir))
        steps = self.config.steps_per_trial
        settings = with_schedule(candidate, steps, eval_step_interval=validation_interval(steps),
                                 save_step_interval=steps)
        started, timings = time.monotonic(), {}
        try:
            with _training_logs_quiet():
                metrics = train(run_dir, data_config=self.config.data, feature_config=self.config.features,
                                augment_config=augment, train_config=settings, progress=False,
                                on_validation=_Reporter(trial, settings.checkpoint_metric), timings=timings,
                                data_cache=self.data_cache)
        except UserError as error:  # e.g. a learning rate this model diverges at: the search goes on
            trial.set_user_attr("error", first_line(error))
            return float("nan")  # Optuna records a NaN value as FAIL
        finally:
            trial.set_user_attr("train_seconds", round(time.monotonic() - started, 2))
            # Where the trial's time went (load_data, validation, checkpoints, and for a finished trial
            # steps and finish): what bench/search.py splits trial time by.
            trial.set_user_attr("train_split_seconds", {name: round(value, 2) for name, value in timings.items()})
        return metrics["validation_score"]


class _Reporter:
    """train()'s on_validation: reports each validation score to Optuna and stops a trial it prunes."""

    def __init__(self, trial, metric):
        self.trial, self.metric = trial, metric

    def __call__(self, step, scores):
        self.trial.report(scores[self.metric], step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")


@contextlib.contextmanager
def _training_logs_quiet():
    """Training's INFO lines (validation scores and confusion matrices) would bury the one line per trial;
    they stay visible with -v (DEBUG)."""
    logger = logging.getLogger("microkws.train")
    level = logger.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def format_over(over):
    return "; ".join(f"{name.replace('_bytes', '')} {cost:,} > {limit:,}" for name, (cost, limit) in over.items())


def log_finished(study, trial):
    """Optuna callback: one line per finished trial."""
    attrs = trial.user_attrs
    figures = (f"flash {attrs['flash_bytes']:,} B, arena {attrs['arena_bytes']:,} B, {attrs['macs']:,} MACs"
               if "macs" in attrs else "not measured")
    if "over_budget" in attrs:
        outcome = f"over budget ({format_over(attrs['over_budget'])}), not trained"
    elif trial.state == optuna.trial.TrialState.COMPLETE:
        outcome = f"score {trial.value:.4f}"
    elif trial.state == optuna.trial.TrialState.PRUNED:
        step = trial.last_step
        outcome = f"pruned at step {step} (score {trial.intermediate_values[step]:.4f})" if step else "pruned"
    else:
        outcome = f"failed ({attrs.get('error', 'see the error above')})"
    seconds = attrs.get("cost_seconds", 0) + attrs.get("train_seconds", 0)
    model = f"{trial.params.get('architecture', '?')} {json.dumps(attrs.get('model_config'))}"
    log.info("trial %d: %s: %s: %s (%.0f s)", trial.number, model, figures, outcome, seconds)
