"""The search's throughput: trials per hour with 1 and 2 workers, what rejecting before training saves,
and where a trial's time goes.

Runs the same `microkws search` command (micro_speech's budget, ../shared/data/speech_commands_sample,
the same seed and trials) twice, as a user runs it: with --workers 1 and --workers 2, each in a new
search folder, one after the other on the same machine. From each study file it reads every trial's
start and end and the figures the objective records (microkws.search.objective):

- trials per hour: trials counted over the span from the first trial's start to the last one's end
  (the best candidate's final training after the trials is timed on its own, the whole command too);
- rejected before training: the share of candidates over the budget, the seconds one costs (convert and
  run on TFLM) and the seconds they saved, each counted at the mean time of a trial that trained;
- a trial's time split: conversion and TFLM (cost), loading data, training steps, validation,
  checkpoints, the final scoring (finish) and the rest (Optuna, process start, model building).

Left to the sampler, the runs draw the same candidates only while it sees the same finished trials: with
two workers the order of results differs, so the candidates differ after the first few and the rates
compare different work. So by default each study is created first with the same --trials candidates
enqueued (Optuna's enqueue_trial; drawn once from the search space by a seeded random sampler): every run
trains the same candidates, and only the workers differ. The median pruner still decides per run.
--sampled leaves the candidates to the search's own sampler, as a user's search runs.

    python bench/search.py [--trials 12] [--steps_per_trial 300] [--sampled] [--out /tmp/microkws-bench-search]
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT.parent / "shared" / "data" / "speech_commands_sample"
WORDS = ["--wanted_words", "up,down", "--silence_percentage", "25", "--unknown_percentage", "25"]
PARTS = ("cost", "load_data", "steps", "validation", "checkpoints", "finish", "other")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/microkws-bench-search", help="work folder (default: %(default)s)")
    parser.add_argument("--data_dir", default=str(DATA_DIR))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--steps_per_trial", type=int, default=300)
    parser.add_argument("--final_steps", type=int, default=300, help="the best candidate's final run")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default: %(default)s)")
    parser.add_argument("--sampled", action="store_true",
                        help="let the search's sampler draw the candidates instead of enqueuing the same ones")
    args = parser.parse_args()
    candidates = None if args.sampled else fixed_candidates(args.trials)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores", flush=True)
    rows = {}
    for workers in (int(w) for w in args.workers.split(",")):
        search_dir = out / f"workers-{workers}"
        shutil.rmtree(search_dir, ignore_errors=True)
        if candidates:
            enqueue(search_dir, candidates)
        wall = run_search(args, search_dir, workers)
        rows[f"{workers} worker{'s' * (workers > 1)}"] = figures(search_dir, wall)
    print_table(rows)


def fixed_candidates(count, seed=0):
    """`count` candidates' Optuna params, drawn from the search space by a seeded random sampler."""
    import optuna

    from microkws.search.space import suggest
    from microkws.train.recipes import recommended_recipe

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    params = []
    for _ in range(count):
        trial = draw.ask()
        suggest(trial, *recommended_recipe())
        params.append(trial.params)
        draw.tell(trial, 0.0)
    return params


def enqueue(search_dir, candidates):
    """Create the search's study in `search_dir` with `candidates` waiting, as `microkws search` opens it."""
    from microkws.search.storage import default_storage_url, open_study

    search_dir.mkdir(parents=True)
    study = open_study(default_storage_url(str(search_dir)))
    for params in candidates:
        study.enqueue_trial(params)


def run_search(args, search_dir, workers):
    command = [sys.executable, "-m", "microkws", "search", "--data_dir", args.data_dir, *WORDS,
               "--trials", str(args.trials), "--steps_per_trial", str(args.steps_per_trial),
               "--final_steps", str(args.final_steps), "--workers", str(workers),
               "--search_dir", str(search_dir), "--calibrate", "0", "--no_progress"]
    print("$ " + " ".join(command), flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True)
    return time.monotonic() - started


def figures(search_dir, wall):
    import optuna

    from microkws.search.storage import STUDY_NAME

    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{search_dir / 'study.db'}")
    trials = [t for t in study.trials if t.datetime_complete is not None]
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    span = (last - first).total_seconds()
    rejected = [t for t in trials if "over_budget" in t.user_attrs]
    trained = [t for t in trials if "train_seconds" in t.user_attrs]
    seconds = {t.number: (t.datetime_complete - t.datetime_start).total_seconds() for t in trials}
    mean_trained = sum(seconds[t.number] for t in trained) / max(len(trained), 1)
    mean_rejected = sum(seconds[t.number] for t in rejected) / max(len(rejected), 1)
    split = time_split(trained, seconds)
    return {
        "whole_command_s": wall,
        "trials": len(trials),
        "trials_per_hour": 3600 * len(trials) / span,
        "trained_per_hour": 3600 * len(trained) / span,
        "pruned_early": sum(t.state == optuna.trial.TrialState.PRUNED and "over_budget" not in t.user_attrs
                            for t in trials),
        "rejected_share": len(rejected) / len(trials),
        "rejected_trial_s": mean_rejected,
        "trained_trial_s": mean_trained,
        "saved_by_rejecting_s": len(rejected) * (mean_trained - mean_rejected),
        "after_trials_s": wall - span,
        **{f"split_{part}": share for part, share in split.items()},
    }


def time_split(trained, seconds):
    """Each part's share of the trained trials' time (their whole duration, cost included)."""
    totals = dict.fromkeys(PARTS, 0.0)
    for trial in trained:
        attrs = trial.user_attrs
        parts = dict(attrs.get("train_split_seconds", {}))
        if "steps" not in parts:  # a pruned trial stops inside a validation: its steps are the rest
            parts["steps"] = attrs["train_seconds"] - sum(parts.values())
        parts["cost"] = attrs.get("cost_seconds", 0.0)
        for part in PARTS[:-1]:
            totals[part] += parts.get(part, 0.0)
        totals["other"] += seconds[trial.number] - sum(parts.get(part, 0.0) for part in PARTS[:-1])
    whole = sum(totals.values()) or 1.0
    return {part: value / whole for part, value in totals.items()}


def print_table(rows):
    names = list(rows)
    print(f"\n{'figure':24}" + "".join(f"{name:>14}" for name in names))
    for key in rows[names[0]]:
        print(f"{key:24}" + "".join(f"{format_value(key, rows[name][key]):>14}" for name in names))
    if len(names) == 2:
        a, b = (rows[name]["trials_per_hour"] for name in names)
        print(f"\n{names[1]} / {names[0]} trials per hour: {b / a:.2f}x")


def format_value(key, value):
    if key.endswith("_share") or key.startswith("split_"):
        return f"{100 * value:.1f}%"
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}"


if __name__ == "__main__":
    main()
