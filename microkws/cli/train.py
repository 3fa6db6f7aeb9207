"""Train a keyword-spotting model (the original speech_commands train.py, in minutes).

Takes the original's flags in both spellings (--wanted_words and --wanted-words),
so the micro_speech tutorial's command works as written:

  microkws train --model_architecture=tiny_conv --window_stride=20 --preprocess=micro
      --wanted_words="up,down" --silence_percentage=25 --unknown_percentage=25 --quantize=1
      --data_dir DIR

Re-running the same command on the same --train_dir resumes where it stopped.
The run directory ends up holding config.json, labels.txt, checkpoints, the
best model (model.keras), the test metrics (metrics.json) and, from the export
at the end, model.tflite, model_data.cc/.h, saved_model/ and device_report.json.

--config RUN_DIR_OR_JSON trains again with a saved run's settings (its config.json, or a JSON
file of the same form); flags given on the command line override them.

Without --model_architecture (and without --config) it trains the recommended recipe
(microkws.train.recipes): the model, schedule and augmentation that listen best inside
micro_speech's budget. Flags given still override any of its settings.
"""

import logging
import os

from microkws.cli._flags import (
    add_augment_arguments,
    add_data_arguments,
    add_feature_arguments,
    add_flag,
    add_training_arguments,
    data_config_from_args,
    feature_config_from_args,
    number,
    settings_from_args,
    str_to_bool,
)
from microkws.dataset import AugmentConfig
from microkws.errors import UserError
from microkws.streaming.calibrate import DEFAULT_FALSE_ACCEPTS_PER_HOUR
from microkws.train.config import TrainConfig

VERBOSITY = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
             "fatal": logging.CRITICAL}


def add_arguments(parser):
    add_flag(parser, "--config", metavar="RUN_DIR_OR_JSON",
             help="start from a saved run's settings (a run directory or its config.json); flags override them")
    # No defaults here: a flag not given takes --config's value, else the settings' default.
    add_data_arguments(parser, defaults=False)
    add_flag(parser, "--data_url", default="", metavar="URL",
             help="download the data set from URL into --data_dir if that folder is missing "
                  "(default: none; see `microkws download`)")
    add_feature_arguments(parser, defaults=False)
    add_augment_arguments(parser, defaults=False)
    add_training_arguments(parser, defaults=False)

    output = parser.add_argument_group("output")
    add_flag(output, "--train_dir", default="runs/train", metavar="DIR",
             help="run directory for checkpoints, model and metrics (default: %(default)s)")
    add_flag(output, "--summaries_dir", default=None, metavar="DIR",
             help="TensorBoard logs (default: TRAIN_DIR/logs)")
    add_flag(output, "--start_checkpoint", default="", metavar="FILE",
             help="initialise from this checkpoint (.npz) instead of from scratch")
    add_flag(output, "--export", type=str_to_bool, default=True, metavar="0|1",
             help="export model.tflite, model_data.cc and saved_model/ and verify on TFLM at the end (default: 1)")
    add_flag(output, "--calibrate", type=str_to_bool, default=True, metavar="0|1",
             help="after the export, choose the detection threshold, averaging window and minimum count on 20 "
                  "minutes of validation speakers (RUN_DIR/detection.json; 2 minutes for tiny_conv) (default: 1)")
    add_flag(output, "--false_accepts_per_hour", type=number(above=0), default=DEFAULT_FALSE_ACCEPTS_PER_HOUR,
             metavar="N", help="the calibration's target: at most N false accepts per hour (default: %(default)g)")
    add_flag(output, "--verbosity", choices=sorted(VERBOSITY), default="info", help="log level (default: info)")
    add_flag(output, "--no_progress", action="store_true", help="no progress bar")


def run_settings(args):
    """The RunConfig of the flags: --config's settings (if given) with the given flags on top."""
    from microkws.train.rundir import RunConfig, read_run_config, settings_file_config

    base = None
    if args.config:
        base = read_run_config(args.config) if os.path.isdir(args.config) else settings_file_config(args.config)
    elif args.model_architecture is None:
        from microkws.train.recipes import recommended_recipe

        augment, train = recommended_recipe()
        base = RunConfig(data=data_config_from_args(args), augment=augment, train=train)
    return RunConfig(
        data=data_config_from_args(args, base.data if base else None),
        features=feature_config_from_args(args, base.features if base else None),
        augment=settings_from_args(AugmentConfig, args, base.augment if base else None),
        train=settings_from_args(TrainConfig, args, base.train if base else None),
    )


def run(args):
    from microkws.pipeline import train_and_export

    logging.getLogger().setLevel(VERBOSITY[args.verbosity])
    config = run_settings(args)
    if args.data_url and not os.path.isdir(config.data.data_dir):
        from microkws.download import Archive, download_archive

        data_dir = os.path.abspath(config.data.data_dir)
        archive = Archive(url=args.data_url, folder=os.path.basename(data_dir))
        download_archive(archive, dest=os.path.dirname(data_dir), progress=not args.no_progress)
    if args.summaries_dir and os.path.exists(args.summaries_dir) and not os.path.isdir(args.summaries_dir):
        raise UserError(f"{args.summaries_dir}: --summaries_dir is a file; name a folder")
    metrics = train_and_export(
        args.train_dir, data_config=config.data, feature_config=config.features, augment_config=config.augment,
        train_config=config.train, start_checkpoint=args.start_checkpoint or None,
        summaries_dir=args.summaries_dir, export=args.export, calibrate=args.calibrate,
        false_accepts_per_hour=args.false_accepts_per_hour, progress=not args.no_progress,
        budget=_budget_to_check(args),
    )
    print_summary(metrics, args.train_dir)
    return 0


def _budget_to_check(args):
    """micro_speech's budget when the recommended recipe's model was changed (--model_config without an
    architecture): the recipe promises a model that fits, so a change that breaks that is refused before
    training. The recipe's own model is checked by the tests, not on every run."""
    if args.config or args.model_architecture is not None or args.model_config is None:
        return None
    from microkws.device import Targets

    return Targets()


def print_summary(metrics, train_dir):
    from microkws.metrics import format_keyword_recall

    print(f"test accuracy (float): {100 * metrics['test_accuracy']:.1f}% ({metrics['test_examples']} examples); "
          f"run in {train_dir}")
    accepts = metrics["test_every_unknown"]["unknown_false_accepts"]
    if accepts["unknown_clips"]:
        print(f"other words taken for a wanted word: {100 * accepts['rate']:.1f}% of the "
              f"{accepts['unknown_clips']} test clips of other words")
    recall = metrics["test_every_unknown"].get("keyword_recall")
    if recall:
        print(format_keyword_recall(recall))
    if metrics.get("export"):
        from microkws.device import format_report

        print(format_report(metrics["export"]["report"]))
    if metrics.get("detection"):
        print(metrics["detection"]["summary"])
    print(format_seconds(metrics["seconds"]))


def format_seconds(seconds):
    """One line: where the command's time went, e.g. "time: 95.2 s: load_data 4.1 s, steps 80.3 s, ..."."""
    order = ("load_data", "steps", "validation", "checkpoints", "finish", "export_verify", "calibrate")
    names = sorted(seconds, key=lambda name: order.index(name) if name in order else len(order))
    return f"time: {sum(seconds.values()):.1f} s: " + ", ".join(
        f"{name.replace('_', ' ')} {seconds[name]:.1f} s" for name in names)
