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
"""

import os

from microkws.cli._flags import add_flag
from microkws.cli.evaluate import add_model_arguments, model_from_args
from microkws.streaming.recognize import DEVICE_THRESHOLD


def add_arguments(parser):
    add_model_arguments(parser, default="tflite")
    parser.add_argument("wav", metavar="LONG.wav", help="the recording")
    parser.add_argument("ground_truth", metavar="LABELS.txt", help="its ground truth: word,time_ms per line")
    add_recognition_arguments(parser)
    add_flag(parser, "--time_tolerance_ms", type=int, default=1500, metavar="MS",
             help="how far a command may be from the word it matches (default: %(default)s)")
    add_flag(parser, "--det", metavar="OUT_PREFIX", help="write OUT_PREFIX.csv and OUT_PREFIX.png: the DET curve")
    add_flag(parser, "--json", metavar="OUT.json", help="also write the report, with every command, as JSON")
    add_flag(parser, "--show_commands", action="store_true", help="print every command and its outcome")
    add_flag(parser, "--no_progress", action="store_true", help="no progress bar")


def add_recognition_arguments(parser):
    """RecognizeCommands' settings (shared with listen)."""
    group = parser.add_argument_group("recognition (TFLM's RecognizeCommands)")
    add_flag(group, "--clip_stride_ms", type=float, default=20, metavar="MS",
             help="run the model every MS ms, a multiple of the feature stride (default: %(default)s)")
    add_flag(group, "--average_window_duration_ms", "--average_window_ms", "--average-window-ms", type=int,
             default=1000, metavar="MS", help="average the scores of the last MS ms (default: %(default)s)")
    add_flag(group, "--detection_threshold", type=float, default=DEVICE_THRESHOLD, metavar="P",
             help="report a command when its averaged probability exceeds P (default: %(default)s, the device's "
                  "200 of 255; the original streaming test used 0.7)")
    add_flag(group, "--suppression_ms", type=int, default=1500, metavar="MS",
             help="after a command, ignore the same label for MS ms (default: %(default)s)")
    add_flag(group, "--minimum_count", type=int, default=3, metavar="N",
             help="results needed in the averaging window before any command (default: %(default)s)")
    return group


def run(args):
    from microkws.streaming.accuracy import evaluate_stream, format_stream_report, write_det

    model = model_from_args(args)
    report = evaluate_stream(
        model, args.wav, args.ground_truth, clip_stride_ms=args.clip_stride_ms,
        average_window_duration_ms=args.average_window_duration_ms, detection_threshold=args.detection_threshold,
        suppression_ms=args.suppression_ms, minimum_count=args.minimum_count,
        time_tolerance_ms=args.time_tolerance_ms, progress=not args.no_progress,
    )
    print(format_stream_report(report, commands=args.show_commands))
    if args.det:
        from microkws.streaming.accuracy import DetPoint

        points = [DetPoint.from_dict(point) for point in report["det"]]
        title = f"{os.path.basename(model.path)} on {os.path.basename(args.wav)} ({report['duration_s']:.0f} s)"
        csv_path, png_path = write_det(args.det, points, title=title)
        print(f"DET curve: {png_path}, {csv_path}")
    if args.json:
        from microkws.files import write_json

        write_json(args.json, report)
    return 0
