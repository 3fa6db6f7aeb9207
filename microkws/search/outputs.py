"""What a search leaves beside its study: trials.csv (one row per trial) and pareto.png (score against cost).

Both are drawn from the study's trials alone, so re-running a finished search rewrites them as they were,
and a search spread over machines shows every machine's trials.
"""

import csv
import io
import json

from optuna.trial import TrialState

from microkws.device.budget import BUDGET_FIGURES
from microkws.files import write_bytes, write_text
from microkws.search.space import FAMILY_PARAM, SEARCHED_SETTINGS

TRIALS_FILE = "trials.csv"
PARETO_FILE = "pareto.png"

STATE_NAMES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "fail",
               TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}

COLUMNS = ("number", "state", "architecture", "model_config", *SEARCHED_SETTINGS, *BUDGET_FIGURES, "score",
           "cost_seconds", "train_seconds", "seconds", "run_dir", "note")


def state_of(trial):
    """complete, pruned, over_budget (pruned before training), fail, running or waiting."""
    if trial.state == TrialState.PRUNED and "over_budget" in trial.user_attrs:
        return "over_budget"
    return STATE_NAMES[trial.state]


def trial_row(trial):
    """trials.csv's row of one optuna FrozenTrial, as {column: value}."""
    attrs = trial.user_attrs
    seconds = None
    if trial.datetime_start and trial.datetime_complete:
        seconds = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 1)
    row = {
        "number": trial.number, "state": state_of(trial), "architecture": trial.params.get(FAMILY_PARAM),
        "model_config": json.dumps(attrs["model_config"]) if "model_config" in attrs else None,
        **{name: trial.params.get(name) for name in SEARCHED_SETTINGS},
        **{name: attrs.get(name) for name in BUDGET_FIGURES},
        "score": trial.value if trial.state == TrialState.COMPLETE else None,
        "cost_seconds": attrs.get("cost_seconds"), "train_seconds": attrs.get("train_seconds"), "seconds": seconds,
        "run_dir": attrs.get("run_dir"), "note": _note(trial),
    }
    return row


def _note(trial):
    attrs = trial.user_attrs
    if "over_budget" in attrs:
        return "over " + ", ".join(f"{name} {cost} > {limit}" for name, (cost, limit) in attrs["over_budget"].items())
    if trial.state == TrialState.PRUNED and trial.last_step is not None:
        return f"pruned at step {trial.last_step} (score {trial.intermediate_values[trial.last_step]:.4f})"
    return attrs.get("error")


def write_trials_csv(path, trials):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for trial in trials:
        writer.writerow({name: "" if value is None else value for name, value in trial_row(trial).items()})
    return write_text(path, buffer.getvalue())


def pareto_front(points):
    """The (cost, score) points no other point beats on both (no cheaper point scores as well), cheapest first."""
    front, best = [], float("-inf")
    for cost, score in sorted(points, key=lambda point: (point[0], -point[1])):
        if score > best:
            front.append((cost, score))
            best = score
    return front


PANELS = (("flash_bytes", "flash (bytes, int8 flatbuffer)"), ("arena_bytes", "tensor arena (bytes)"),
          ("macs", "multiply-accumulates per inference"))


def write_pareto_png(path, trials, targets, *, best=None):
    """Score against flash, arena and MACs, one panel each: trained candidates (the Pareto front joined),
    pruned ones at their last score, over-budget ones as crosses at 0, the budget as a dashed line."""
    # A bare Figure renders through Agg without pyplot: no display needed, the user's backend untouched.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(16, 5), layout="constrained")
    panels = figure.subplots(1, len(PANELS), sharey=True)
    for axes, (name, label) in zip(panels, PANELS):
        _draw_panel(axes, trials, name, getattr(targets, name), best)
        axes.set_xlabel(label)
    panels[0].set_ylabel("validation score (best of the trial)")
    panels[-1].legend(loc="best", fontsize="small")
    figure.suptitle(_title(trials, best))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return write_bytes(path, buffer.getvalue())


def _draw_panel(axes, trials, name, limit, best):
    measured = [t for t in trials if name in t.user_attrs]
    complete = [(t.user_attrs[name], t.value) for t in measured if t.state == TrialState.COMPLETE]
    pruned = [(t.user_attrs[name], t.intermediate_values[t.last_step]) for t in measured
              if state_of(t) == "pruned" and t.last_step is not None]
    over = [t.user_attrs[name] for t in measured if state_of(t) == "over_budget"]
    if complete:
        axes.scatter(*zip(*complete), color="C0", label="trained")
        front = pareto_front(complete)
        axes.plot(*zip(*front), color="C1", marker="o", markersize=9, fillstyle="none", drawstyle="steps-post",
                  label="Pareto front")
    if pruned:
        axes.scatter(*zip(*pruned), facecolors="none", edgecolors="C7", label="pruned (last score)")
    if over:
        axes.scatter(over, [0] * len(over), color="C3", marker="x", label="over budget (not trained)")
    if best is not None and name in best.user_attrs:
        axes.scatter([best.user_attrs[name]], [best.value], color="C2", marker="*", s=250, zorder=3, label="best")
    axes.axvline(limit, color="C3", linestyle="--", label="budget")
    axes.set_xscale("log")
    axes.grid(True, alpha=0.3)


def _title(trials, best):
    counts = {}
    for trial in trials:
        counts[state_of(trial)] = counts.get(state_of(trial), 0) + 1
    text = f"{len(trials)} trials: " + ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in counts.items())
    if best is not None:
        text += f"; best: trial {best.number}, {best.params[FAMILY_PARAM]}, score {best.value:.4f}"
    return text
