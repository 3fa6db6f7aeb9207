"""Search for the best keyword model that fits a board's flash, RAM and compute budget (Optuna).

  microkws search --data_dir DIR --wanted_words up,down --board nano33ble --trials 40 --search_dir runs/search

Each trial suggests a model (tiny_conv, ds_cnn, bc_resnet or tc_resnet, with their sizes), a learning rate,
dropout and augmentation strength, measures the int8 model's flash, arena and MACs on TFLM (seconds),
and trains it for --steps_per_trial steps only if it fits; the Median pruner stops trials that trail.
Then the best candidate is trained on the full schedule into SEARCH_DIR/best, exported and verified
(`microkws train --config SEARCH_DIR/best` trains it again). SEARCH_DIR also gets trials.csv and
pareto.png. Re-running the same command resumes: after a kill, the killed trial is marked failed.

The budget: micro_speech's by default (20K flash, 28K arena, 2 M MACs), a --board preset, or the
explicit budgets, which override a board's figure. A board's MACs come from an ESTIMATED cycles per
multiply-accumulate for its core (see `--board`): measure your model on the board.

--workers N runs N processes on this machine; --storage postgresql://user:pass@host/db lets workers
on several machines share one study (run the same command on each).
"""

import dataclasses
import json

from microkws.cli._flags import (add_data_arguments, add_flag, byte_count, data_config_from_args, decimal_count, number,
                                 str_to_bool)
from microkws.search.boards import BOARDS, board_named
from microkws.train.recipes import RECOMMENDED_TRAIN


def add_arguments(parser):
    add_data_arguments(parser)
    add_budget_arguments(parser)
    search = parser.add_argument_group("search")
    add_flag(search, "--trials", type=number(1, 100_000, whole=True), default=20, metavar="N",
             help="trials in the whole search, over-budget, pruned and failed ones included (default: %(default)s)")
    add_flag(search, "--steps_per_trial", type=number(1, 10_000_000, whole=True), default=500, metavar="N",
             help="training steps of one trial (default: %(default)s)")
    add_flag(search, "--final_steps", type=number(1, 10_000_000, whole=True), default=None, metavar="N",
             help="training steps of the best candidate's final run (default: the recommended recipe's, "
                  f"{RECOMMENDED_TRAIN.total_steps})")
    add_flag(search, "--workers", type=number(1, 256, whole=True), default=1, metavar="N",
             help="trial processes on this machine (default: %(default)s: trials run in this process)")
    add_flag(search, "--storage", default=None, metavar="URL",
             help="Optuna storage URL shared by every worker, e.g. postgresql://user:pass@host/db "
                  "(default: sqlite:///SEARCH_DIR/study.db)")
    add_flag(search, "--search_dir", default="runs/search", metavar="DIR",
             help="trials, trials.csv, pareto.png and best/ (default: %(default)s)")
    add_flag(search, "--seed", type=number(0, 2**31 - 1, whole=True), default=0,
             help="training seed of every trial, and the sampler's (default: %(default)s)")
    add_flag(search, "--calibrate", type=str_to_bool, default=True, metavar="0|1",
             help="choose best/'s detection threshold on an hour of validation-speaker stream, as train does "
                  "(default: 1)")
    add_flag(search, "--no_progress", action="store_true", help="no progress bar in the final training")


def add_budget_arguments(parser):
    group = parser.add_argument_group("budget (default: micro_speech's)")
    boards = "; ".join(f"{b.name}: {_budget_text(b.targets())}" for b in BOARDS.values())
    add_flag(group, "--board", default=None, metavar="NAME",
             help=f"a board preset: the model gets half the board's flash, RAM and feature stride (micro_speech: "
                  f"its example's own budget), MACs from an ESTIMATED cycles per MAC of its core ({boards})")
    add_flag(group, "--flash_budget", type=byte_count, default=None, metavar="BYTES",
             help="largest model, e.g. 64K (overrides --board's)")
    add_flag(group, "--arena_budget", type=byte_count, default=None, metavar="BYTES",
             help="largest tensor arena, e.g. 128K (overrides --board's)")
    add_flag(group, "--macs_budget", type=decimal_count, default=None, metavar="N",
             help="most multiply-accumulates per inference, e.g. 2M (overrides --board's)")


def _budget_text(targets):
    return (f"{targets.flash_bytes // 1024}K flash, {targets.arena_bytes // 1024}K arena, "
            f"{targets.macs / 1e6:.2f} M MACs")


def targets_from_args(args):
    """The budget: --board's (else micro_speech's), with each budget flag given put over it."""
    from microkws.device import Targets
    from microkws.features import FeatureConfig

    base = board_named(args.board).targets(stride_ms=FeatureConfig().window_stride_ms) if args.board else Targets()
    given = {name: value for name, value in (("flash_bytes", args.flash_budget), ("arena_bytes", args.arena_budget),
                                             ("macs", args.macs_budget)) if value is not None}
    return dataclasses.replace(base, **given)


def run(args):
    from microkws.search import run_search

    summary = run_search(args.search_dir, data_config=data_config_from_args(args), targets=targets_from_args(args),
                         trials=args.trials, steps_per_trial=args.steps_per_trial, final_steps=args.final_steps,
                         storage=args.storage, workers=args.workers, seed=args.seed, calibrate=args.calibrate,
                         progress=not args.no_progress)
    print_summary(summary)
    return 0


def print_summary(summary):
    from microkws.device import format_report

    best = summary["best"]
    counts = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in summary["counts"].items())
    print(f"trials: {sum(summary['counts'].values())} ({counts}); see {summary['files']['trials.csv']} and "
          f"{summary['files']['pareto.png']}")
    print(f"best: trial {best.number}, {best.params['architecture']} {json.dumps(best.user_attrs['model_config'])}, "
          f"validation score {best.value:.4f} after the trial's steps")
    metrics = summary["metrics"]
    print(f"trained in full: test accuracy (float) {100 * metrics['test_accuracy']:.1f}% "
          f"({metrics['test_examples']} examples) in {summary['files']['best']}")
    print(format_report(summary["report"]))
    detection = metrics.get("detection")
    if detection:
        print(detection["summary"])
    print(f"train it again: microkws train --config {summary['files']['best']}"
          + ("" if detection else f"; choose its detection threshold: microkws calibrate {summary['files']['best']}"))
