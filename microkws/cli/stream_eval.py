"""Streaming accuracy of a model on a long recording (the original test_streaming_accuracy).

  microkws stream-eval MODEL LONG.wav LABELS.txt [--clip_stride_ms 20] [--det OUT_PREFIX] [--json OUT]

The model runs every --clip_stride_ms on the last second of audio, with the frontend running
continuously as on the device (one frontend whose state carries from frame to frame, a rolling buffer
of the last 49 frames); its outputs go through RecognizeCommands (TFLM micro_speech's averaging,
threshold and suppression). Commands are matched to the ground truth (LABELS.txt: "word,time_ms" per
line, as `microkws stream-test-wav` writes) within --time_tolerance_ms and reported as the original
did: matched, correct, wrong and false-positive percentages. It also reports false accepts per hour and
the false-reject rate of the keywords, and --det writes them over a sweep of detection thresholds as
OUT_PREFIX.csv and a DET curve OUT_PREFIX.png.

MODEL: a run directory (its int8 model.tflite, run on TFLite Micro's kernels; --keras for model.keras),
a .tflite or a .keras file, loaded as by `microkws evaluate`. Thresholds are probabilities; for int8
models they become the device's 0-255 integer threshold (0.78125 is the device's default of 200).
A run calibrated at the end of training (or by `microkws calibrate`) has its chosen threshold, window
and minimum count in RUN_DIR/detection.json: they are the defaults here, and a flag given overrides
its setting. The settings used and where each came from are printed first (to stderr).
"""

import os

from microkws.cli._flags import (
    add_flag,
    add_json_argument,
    add_model_arguments,
    add_recognition_arguments,
    check_output_folder,
    detection_from_args,
    model_from_args,
    number,
    write_json_output,
)
from microkws.streaming.groundtruth import TIME_TOLERANCE_MS


def add_arguments(parser):
    add_model_arguments(parser, default="tflite")
    parser.add_argument("wav", metavar="LONG.wav", help="the recording")
    parser.add_argument("ground_truth", metavar="LABELS.txt", help="its ground truth: word,time_ms per line")
    add_recognition_arguments(parser)
    add_flag(parser, "--time_tolerance_ms", type=number(0, 60_000, whole=True), default=TIME_TOLERANCE_MS,
             metavar="MS", help="how far a command may be from the start of the word it matches (default: "
                                "%(default)s, the original's)")
    add_flag(parser, "--det", metavar="OUT_PREFIX", help="write OUT_PREFIX.csv and OUT_PREFIX.png: the DET curve")
    add_json_argument(parser, "the report, with every command,")
    add_flag(parser, "--show_commands", action="store_true", help="print every command and its outcome")
    add_flag(parser, "--no_progress", action="store_true", help="no progress bar")


def run(args):
    import sys

    from microkws.streaming.accuracy import evaluate_stream, format_stream_report
    from microkws.streaming.det import DetPoint, write_det

    check_output_folder(args.json, "--json")
    check_output_folder(args.det, "--det")
    model = model_from_args(args)
    detection, origin = detection_from_args(args, model)
    report = evaluate_stream(
        model, args.wav, args.ground_truth, clip_stride_ms=args.clip_stride_ms,
        average_window_duration_ms=detection.average_window_duration_ms,
        detection_threshold=detection.detection_threshold, suppression_ms=detection.suppression_ms,
        minimum_count=detection.minimum_count, time_tolerance_ms=args.time_tolerance_ms,
        progress=not args.no_progress,
    )
    print(origin, file=sys.stderr)  # once the recording was read: bad input stays a one-line error
    report["settings_origin"] = origin
    if args.json != "-":  # --json alone prints the report instead of the table
        print(format_stream_report(report, commands=args.show_commands))
    if args.det:
        points = [DetPoint.from_dict(point) for point in report["det"]]
        title = f"{os.path.basename(model.path)} on {os.path.basename(args.wav)} ({report['duration_s']:.0f} s)"
        csv_path, png_path = write_det(args.det, points, title=title)
        if args.json != "-":
            print(f"DET curve: {png_path}, {csv_path}")
    if args.json:
        write_json_output(args.json, report)
    return 0
