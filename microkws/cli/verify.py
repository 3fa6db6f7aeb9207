"""Run an integer .tflite model on TensorFlow Lite Micro's own kernels and report what it costs.

  microkws verify MODEL.tflite [--train_dir DIR | --data_dir DIR --wanted_words W1,W2]

Loads the model into the tflite-micro runtime and reports: model bytes (flash),
the smallest tensor arena that works, the op list, multiply-accumulates,
whether every output equals TFLite's reference kernels bit for bit, TFLM
micro_speech's four golden clips, and int8 accuracy on the test split next
to the float model's. Prints a table and writes device_report.json (into
the run directory, else beside the model, or --report).

A model inside a run directory takes its features, labels, test split and
float model from the run. Otherwise --data_dir (with the data flags) names a
test split and the feature flags describe the features (default: micro_speech's).
The budget is printed as met or not: by default micro_speech's, at most
20K bytes of flash, a 28K arena, 2 M multiply-accumulates, and int8 within 0.5
points of float; --flash_budget, --arena_budget and --macs_budget set your
board's (ds_cnn needs about 42K, 71K and 10.6M).
"""

from microkws.cli._flags import (
    add_data_arguments,
    add_feature_arguments,
    add_flag,
    add_json_argument,
    add_labels_argument,
    byte_count,
    data_config_from_args,
    default_of,
    feature_config_from_args,
    number,
    write_json_output,
)
from microkws.device.report import Targets


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL.tflite", help="an int8 (or uint8) TFLite model")
    add_flag(parser, "--train_dir", metavar="DIR",
             help="the run the model came from (default: the model's folder when it is a run directory)")
    add_labels_argument(parser)
    add_flag(parser, "--report", metavar="FILE", help="where to write device_report.json")
    add_flag(parser, "--no_arena_search", action="store_true", help="skip measuring the smallest arena")
    add_flag(parser, "--no_progress", action="store_true", help="no progress bars")
    add_json_argument(parser, "the report")
    add_flag(parser, "--flash_budget", type=byte_count, default=default_of(Targets, "flash_bytes"), metavar="BYTES",
             help="largest model your board takes (default: micro_speech's %(default)s)")
    add_flag(parser, "--arena_budget", type=byte_count, default=default_of(Targets, "arena_bytes"), metavar="BYTES",
             help="largest tensor arena your board can give (default: micro_speech's %(default)s)")
    add_flag(parser, "--macs_budget", type=number(above=0, whole=True), default=default_of(Targets, "macs"),
             metavar="N", help="most multiply-accumulates per inference (default: %(default)s)")
    add_data_arguments(parser)
    add_feature_arguments(parser)


def run(args):
    from microkws.device import format_report, verify
    from microkws.inference import read_labels

    report = verify(
        args.model,
        train_dir=args.train_dir,
        data_config=data_config_from_args(args) if args.data_dir else None,
        feature_config=feature_config_from_args(args),
        labels=read_labels(args.labels),
        report_path=args.report,
        search_arena=not args.no_arena_search,
        targets=Targets(flash_bytes=args.flash_budget, arena_bytes=args.arena_budget, macs=args.macs_budget),
        progress=not args.no_progress,
    )
    if args.json:
        write_json_output(args.json, report)
    if args.json != "-":
        print(format_report(report))
    return 0
