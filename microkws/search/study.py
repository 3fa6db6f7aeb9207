"""`run_search`: an Optuna study for the best keyword model within a flash, arena and MACs budget.

The order, and why:

1. the storage and the study's settings: a re-run with other settings is refused before any work;
2. the data folder, and the smallest candidates of the space against the budget: a budget nothing in
   the space can meet is refused in seconds, not after a night of over-budget trials;
3. trials that workers killed on this machine left RUNNING are marked FAIL, so re-running the same
   command after `kill -9` finishes the search without losing or repeating a finished trial;
4. `workers` processes (or this one) optimize the study until --trials trials are counted;
5. trials.csv and pareto.png; then the best candidate is trained on the full schedule into
   SEARCH_DIR/best with microkws.pipeline, exported, verified on TFLM and checked against the budget.
   `microkws train --config SEARCH_DIR/best` trains it again.

The sampler is Optuna's TPE and the pruner its MedianPruner, as in Optuna's own examples.
"""

import dataclasses
import logging
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field

import numpy as np
import optuna

from microkws.dataset import DataConfig, index_dataset
from microkws.device import Targets
from microkws.device.budget import BUDGET_FIGURES, model_costs, over_budget
from microkws.errors import UserError
from microkws.features import FeatureConfig
from microkws.search import storage as stored
from microkws.search.objective import Objective, log_finished, validation_interval, with_schedule
from microkws.search.outputs import PARETO_FILE, TRIALS_FILE, state_of, write_pareto_png, write_trials_csv
from microkws.search.space import candidate_of, describe, smallest_candidates
from microkws.train.recipes import recommended_recipe

log = logging.getLogger(__name__)

BEST_DIR = "best"


@dataclass(frozen=True)
class SearchConfig:
    """Everything a search (and each of its worker processes) needs."""

    search_dir: str
    """Folder of the study file, the trials' run folders, trials.csv, pareto.png and best/."""
    data: DataConfig
    targets: Targets
    """The budget every candidate must fit."""
    trials: int
    """Trials to count (complete, pruned, over budget, failed), across every worker and run."""
    steps_per_trial: int
    """Training steps of one trial: enough to rank candidates, not to finish them."""
    final_steps: int
    """Training steps of the best candidate's final run."""
    storage: str
    """Optuna RDB storage URL."""
    seed: int = 0
    """Training seed of every trial and of the final run; the sampler's seed derives from it."""
    features: FeatureConfig = field(default_factory=FeatureConfig)
    """micro_speech's features, as the device's frontend computes them."""
    calibrate: bool = True
    """Choose best/'s detection threshold on an hour of validation-speaker stream, as `microkws train` does,
    so its model_settings.h carries it; False leaves the device's defaults (`microkws calibrate` later).
    Not a setting a re-run must repeat: it touches only best/."""

    def __post_init__(self):
        for name in ("trials", "steps_per_trial", "final_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UserError(f"{name} must be a whole number of at least 1, got {getattr(self, name)!r}")

    def settings(self):
        """What a re-run must repeat (trials and workers may change: a search can be extended). The data
        folder's path is left out: another machine of the same search may keep it elsewhere."""
        data = {k: v for k, v in self.data.to_dict().items() if k != "data_dir"}
        return {"data": data, "features": self.features.to_dict(), "budget": dataclasses.asdict(self.targets),
                "steps_per_trial": self.steps_per_trial, "final_steps": self.final_steps, "seed": self.seed}

    @property
    def where(self):
        return self.search_dir if self.storage == stored.default_storage_url(self.search_dir) else \
            f"--storage {stored.shown_url(self.storage)}"


def run_search(search_dir, *, data_config, targets, trials, steps_per_trial, final_steps=None, storage=None,
               workers=1, seed=0, calibrate=True, progress=True):
    """Search for the best model within `targets` (a device.Targets) and train it into SEARCH_DIR/best.

    `trials` counts every trial of the study (over-budget, pruned and failed ones too); `workers`
    processes run them in parallel; `storage` is an Optuna RDB URL (default: SEARCH_DIR/study.db).
    Re-running with the same settings resumes. With `workers` > 1 the workers are spawned processes, so a
    script calling this needs Python's `if __name__ == "__main__":` guard (the `microkws` command has it).
    Returns {"best": the best trial (an optuna FrozenTrial), "counts": {state: trials}, "files": {name: path},
    "metrics": the final run's, "report": its device report}.
    """
    search_dir = os.path.abspath(os.fspath(search_dir))
    final_steps = final_steps or recommended_recipe()[1].total_steps
    config = SearchConfig(search_dir=search_dir, data=data_config, targets=targets, trials=trials,
                          steps_per_trial=steps_per_trial, final_steps=final_steps,
                          storage=storage or stored.default_storage_url(search_dir), seed=seed, calibrate=calibrate)
    if not isinstance(workers, int) or workers < 1:
        raise UserError(f"workers must be a whole number of at least 1, got {workers!r}")
    _make_folder(search_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # log_finished writes the one line per trial
    study = stored.open_study(config.storage)
    stored.check_settings(study, config.settings(), where=config.where)
    index_dataset(config.data)  # a missing or empty data folder: an error now, not a failure per trial
    check_space_fits(config)
    stored.save_settings(study, config.settings())
    stored.fail_dead_trials(study)
    _run_workers(config, workers)
    return finish(config, study.get_trials(deepcopy=False), progress=progress)


def _make_folder(search_dir):
    try:
        os.makedirs(search_dir, exist_ok=True)
    except OSError as error:
        raise UserError(f"{search_dir}: cannot make the --search_dir ({error.strerror or error})") from None


def check_space_fits(config):
    """A UserError unless some family's smallest candidate fits the budget (measured smallest-family
    first, stopping at the first that fits: usually one conversion, a few seconds)."""
    measured = []
    for candidate in smallest_candidates(recommended_recipe()[1]):
        costs = model_costs(candidate, config.features, len(config.data.labels))
        if not over_budget(costs, config.targets):
            return candidate
        measured.append(f"{describe(candidate)}: flash {costs['flash_bytes']:,}, arena {costs['arena_bytes']:,}, "
                        f"MACs {costs['macs']:,}")
    budget = config.targets
    raise UserError(f"no candidate of the search space fits the budget (flash {budget.flash_bytes:,} bytes, arena "
                    f"{budget.arena_bytes:,} bytes, {budget.macs:,} MACs): the smallest of each family need "
                    f"{'; '.join(measured)}; give a larger --flash_budget, --arena_budget or --macs_budget, or "
                    "another --board")


# --- workers ------------------------------------------------------------------------------------------------------


def _run_workers(config, workers):
    """Optimize in this process (one worker), or in `workers` spawned processes sharing the study."""
    if workers == 1:
        optimize(config)
        return
    context = multiprocessing.get_context("spawn")  # a forked TensorFlow runtime can hang; spawn starts clean
    level = logging.getLogger().getEffectiveLevel()
    processes = [context.Process(target=worker_main, args=(config, index, level), name=f"microkws-search-{index}")
                 for index in range(workers)]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():  # this process was interrupted: stop the others, their trials are failed
                process.terminate()  # on the next run
    stopped = [f"{p.name} (exit status {p.exitcode})" for p in processes if p.exitcode != 0]
    if stopped:
        raise UserError(f"search worker(s) {', '.join(stopped)} stopped early, see their errors above; re-run the "
                        "same command to resume the search")


def worker_main(config, index, log_level):
    """A spawned worker: logging as in the parent, then optimize."""
    logging.basicConfig(level=log_level, format=f"%(levelname)s %(name)s [worker {index}]: %(message)s")
    try:
        optimize(config, worker=index)
    except UserError as error:
        logging.getLogger(__name__).error("%s", error)
        raise SystemExit(2) from None


def optimize(config, *, worker=0):
    """Run trials of the study until config.trials are counted (stopping with the other workers)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # log_finished writes the one line per trial
    study = stored.open_study(config.storage)
    remaining = config.trials - stored.counted_trials(study)
    if remaining <= 0:
        return
    study.sampler = _sampler(config, worker, len(study.get_trials(deepcopy=False)))
    study.pruner = optuna.pruners.MedianPruner(
        n_startup_trials=3,
        # The earliest a trial may be pruned is this step: the second validation, never the first.
        n_warmup_steps=validation_interval(config.steps_per_trial) + 1)
    study.optimize(Objective(config), n_trials=remaining, gc_after_trial=True,
                   callbacks=[optuna.study.MaxTrialsCallback(config.trials, states=stored.COUNTED_STATES),
                              log_finished])


def _sampler(config, worker, trials_so_far):
    """TPE seeded by the search's seed, the worker and the trials so far: workers, and a resumed run, draw
    other candidates than the first run's first ones. The constant liar keeps parallel workers apart."""
    seed = int(np.random.SeedSequence([config.seed, worker, trials_so_far]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True,
                                      n_startup_trials=max(3, min(10, config.trials // 3)))


# --- after the trials ---------------------------------------------------------------------------------------------


def finish(config, trials, *, progress):
    """trials.csv, pareto.png, then the best candidate trained in full into SEARCH_DIR/best."""
    best = best_trial(trials, config.targets)
    files = {TRIALS_FILE: os.path.join(config.search_dir, TRIALS_FILE),
             PARETO_FILE: os.path.join(config.search_dir, PARETO_FILE)}
    write_trials_csv(files[TRIALS_FILE], trials)
    write_pareto_png(files[PARETO_FILE], trials, config.targets, best=best)
    counts = {}
    for trial in trials:
        counts[state_of(trial)] = counts.get(state_of(trial), 0) + 1
    if best is None:
        raise UserError(f"no trial of the search completed ({', '.join(f'{n} {s}' for s, n in counts.items())}); "
                        f"see {files[TRIALS_FILE]}, and re-run with more --trials or a larger budget")
    metrics = train_best(config, best, progress=progress)
    files[BEST_DIR] = os.path.join(config.search_dir, BEST_DIR)
    return {"best": best, "counts": counts, "files": files, "metrics": metrics,
            "report": metrics["export"]["report"]}


def best_trial(trials, targets):
    """The complete trial of the highest score; of equal scores, the one using the least of the budget
    (the sum of its figures' shares), then the earliest. None if no trial completed."""
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]

    def rank(trial):
        used = sum(trial.user_attrs[name] / getattr(targets, name) for name in BUDGET_FIGURES)
        return trial.value, -used, -trial.number

    return max(complete, key=rank) if complete else None


def train_best(config, best, *, progress):
    """Train the candidate of trial `best` for config.final_steps into SEARCH_DIR/best, export it, verify it
    on TFLM, calibrate its detection (with config.calibrate) and check the device report against the budget."""
    from microkws.device.report import check_targets, update_device_report
    from microkws.pipeline import train_and_export
    from microkws.report import write_report_or_warn
    from microkws.train import RunConfig

    augment, candidate = candidate_of(best.params, *recommended_recipe(seed=config.seed))
    run = RunConfig(data=config.data, features=config.features, augment=augment,
                    train=with_schedule(candidate, config.final_steps))
    best_dir = os.path.join(config.search_dir, BEST_DIR)
    _clear_other_run(best_dir, run)
    log.info("training the best candidate, trial %d (%s), for %d steps into %s", best.number, describe(candidate),
             config.final_steps, best_dir)
    metrics = train_and_export(best_dir, data_config=run.data, feature_config=run.features, augment_config=run.augment,
                               train_config=run.train, export=True, calibrate=config.calibrate, budget=config.targets,
                               progress=progress)
    report = metrics["export"]["report"]
    report["targets"] = check_targets(report, config.targets)
    update_device_report(report["report_path"], targets=report["targets"])
    write_report_or_warn(best_dir)  # report.png again, with this budget rather than micro_speech's
    over = [f"{name} {entry['value']:,} (budget {entry['target']})" for name, entry in report["targets"].items()
            if name in ("flash_bytes", "arena_bytes", "macs") and entry["met"] is False]
    if over:
        raise UserError(f"{report['report_path']}: the trained best model does not fit the budget "
                        f"({'; '.join(over)}), though its untrained twin did; please report this")
    return metrics


def _clear_other_run(best_dir, run):
    """Remove SEARCH_DIR/best if it holds another candidate (the best changed since an earlier run): it
    is the search's output, made again from the study; the same candidate is kept and resumed."""
    from microkws.train import read_run_config
    from microkws.train.rundir import is_run_dir

    if is_run_dir(best_dir) and read_run_config(best_dir).to_dict() != run.to_dict():
        log.info("%s holds an earlier best candidate: replacing it", best_dir)
        shutil.rmtree(best_dir)
