"""Score a trained model on labelled clips: accuracy, per-class precision and recall, the confusion
matrix, how often unknown words are taken for a wanted word, and the keyword recall when a detection
threshold lets 2, 5, 10 or 20 % of the unknown-word clips fire (models compared at equal false accepts).

  microkws evaluate MODEL [--data_dir DIR] [--split testing|validation|training|all] [--json OUT] [--per_file]

MODEL is a run directory (its model.keras, or model.tflite with --tflite), a .keras file or a .tflite
file (float, int8 or uint8; run on TFLite Micro's kernels, or tf.lite's with --runtime tflite). A model
in a run directory takes the run's labels and features; a model on its own needs --labels (e.g. TFLM's
micro_speech model: --labels silence,unknown,yes,no) and, unless they are micro_speech's, feature flags.

--split testing (default), validation or training scores that partition as training made it (the run's
data settings; --data_dir points them at another copy of the folder). --split all scores every clip under
--data_dir, labelled by its folder: a wanted word is itself, _silence_ is silence, _background_noise_ is
skipped and any other folder is an unknown word: the layout of Speech Commands' test archive
(speech_commands_test_set_v0.02), which works as it is.
"""

from microkws.cli._flags import (
    add_flag,
    add_json_argument,
    add_model_arguments,
    check_output_folder,
    model_from_args,
    write_json_output,
)
from microkws.evaluate import SPLITS


def add_arguments(parser):
    add_model_arguments(parser)
    add_flag(parser, "--data_dir", metavar="DIR",
             help="data folder (default: the run's); required for a model outside a run directory")
    add_flag(parser, "--split", choices=SPLITS, default="testing",
             help="partition to score, or all: every clip under --data_dir labelled by folder (default: testing)")
    add_json_argument(parser, "the report")
    add_flag(parser, "--per_file", action="store_true",
             help="the prediction for each file: printed, and in the JSON (path, true, predicted, scores)")
    add_flag(parser, "--no_progress", action="store_true", help="no progress bars")


def run(args):
    from microkws.evaluate import evaluate, format_evaluation

    check_output_folder(args.json, "--json")
    model = model_from_args(args)
    report = evaluate(model, args.data_dir, split=args.split, per_file=args.per_file, progress=not args.no_progress)
    if args.json == "-":
        write_json_output("-", report)
        return 0
    print(format_evaluation(report))
    if args.per_file:
        print()
        for entry in report["files"]:
            mark = "  " if entry["true"] == entry["predicted"] else "X "
            print(f"{mark}{entry['path'] or '(silence example)'}: {entry['true']} -> {entry['predicted']} "
                  f"({entry['scores'][entry['predicted']]:.3f})")
    if args.json:
        write_json_output(args.json, report)
    return 0
