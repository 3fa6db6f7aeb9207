"""The `microkws` command: a thin layer over the Python API.

Each command is a module in this package with two functions:
`add_arguments(parser)` declares its flags and `run(args)` calls the API.
They are registered in `COMMANDS`, the only place that knows them all.
"""

import argparse
import importlib
import logging
import sys

from microkws import __version__
from microkws.errors import UserError

# name -> (module under microkws.cli, one-line help)
COMMANDS = {
    "download": ("download", "download and extract the Speech Commands data set"),
    "features": ("features", "compute the features of one WAV file (the original wav_to_features)"),
    "dataset": ("dataset", "show the partitions and per-label example counts of a data folder"),
    "train": ("train", "train a model (the original train.py's flags); resumes an interrupted run"),
    "export": ("export", "export a run for the microcontroller: int8 .tflite, C array, SavedModel, device report"),
    "freeze": ("export", "write a run's audio-to-probabilities SavedModel (the original freeze.py)"),
    "verify": ("verify", "run an int8 .tflite on TFLite Micro's kernels: bytes, arena, ops, accuracy"),
    "evaluate": ("evaluate", "score a model on a data folder: accuracy, precision, recall, confusion, false accepts"),
    "label": ("label", "the top labels of audio files (the original label_wav)"),
    "stream-test-wav": ("stream_test_wav", "make a long test recording and its labels (generate_streaming_test_wav)"),
    "stream-eval": ("stream_eval", "streaming accuracy on a long recording, false accepts/rejects, DET curve"),
    "listen": ("listen", "spot keywords live from the microphone, or from a file at real-time pace"),
    "calibrate": ("calibrate", "choose a run's detection threshold on an hour of validation speakers"),
    "report": ("report", "draw a run's report.png: curves, confusion matrices, recall, DET curve, budget"),
    "search": ("search", "find the best model for a board's flash, RAM and compute budget (Optuna)"),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line ("microkws train: error: ...") like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser():
    parser = _Parser(
        prog="microkws",
        description="Train keyword-spotting models for TensorFlow Lite Micro.",
    )
    parser.add_argument("--version", action="version", version=f"microkws {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"microkws.cli.{module_name}")
        sub = subparsers.add_parser(name, help=help_text, description=module.__doc__)
        sub.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args) or 0
    except UserError as error:
        print(f"microkws {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"microkws {args.command}: interrupted", file=sys.stderr)
        return 130
