"""Choose a run's detection settings on a long stream of its validation speakers (what `train` does last).

  microkws calibrate RUN_DIR [--false_accepts_per_hour 2] [--stream_seconds 3600] [--runtime tflm]
                     [--data_dir DIR]

Builds a stream of validation-split words over background noise (as `stream-test-wav` does, seeded
by the run's seed), runs the run's int8 model.tflite over it as the device does (every 20 ms, the
continuous frontend; on tf.lite's optimised integer kernels, checked against TFLite Micro's on 2,048 of
the windows, or on TFLite Micro's throughout with --runtime tflm), and sweeps RecognizeCommands'
detection threshold, averaging window and minimum count. It keeps the setting that misses the fewest
keywords within --false_accepts_per_hour, writes it to RUN_DIR/detection.json (thresholds as
probabilities) and device_report.json, and logs it. `stream-eval RUN_DIR` and `listen RUN_DIR` then use it.

For a run trained before calibration existed, or with `train --calibrate 0`. When no setting meets
the target, the error names the best reachable false accepts per hour and nothing is written.
The default hour of stream (so that 2 false accepts per hour is measurable) takes about a minute for
tiny_conv and two for the recommended model; on TFLite Micro's kernels throughout, 3-4 and 7-8.
"""

from microkws.cli._flags import add_flag, number
from microkws.streaming.calibrate import DEFAULT_FALSE_ACCEPTS_PER_HOUR, RUNTIME, STREAM_SECONDS


def add_arguments(parser):
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a trained and exported run directory")
    add_flag(parser, "--false_accepts_per_hour", type=number(above=0), default=DEFAULT_FALSE_ACCEPTS_PER_HOUR,
             metavar="N", help="the target: at most N false accepts per hour (default: %(default)g)")
    add_flag(parser, "--stream_seconds", type=number(above=0), default=STREAM_SECONDS, metavar="S",
             help="length of the validation stream (default: %(default)s, so that 2 per hour is measurable)")
    add_flag(parser, "--runtime", choices=("tflite_optimized", "tflm"), default=RUNTIME,
             help="the kernels the stream runs on: tf.lite's optimised ones, checked against TFLite Micro's "
                  "(default), or TFLite Micro's throughout (the device's arithmetic exactly, 10-15x slower)")
    add_flag(parser, "--data_dir", metavar="DIR", help="the run's data folder, if it has moved since training")
    add_flag(parser, "--no_progress", action="store_true", help="no progress bar")


def run(args):
    import os

    from microkws.report import write_report_or_warn
    from microkws.streaming.calibrate import calibrate_run
    from microkws.train.rundir import DETECTION_FILE, REPORT_PNG_FILE

    calibrate_run(args.run_dir, false_accepts_per_hour=args.false_accepts_per_hour,
                  stream_seconds=args.stream_seconds, runtime=args.runtime, data_dir=args.data_dir,
                  progress=not args.no_progress)
    print(os.path.join(args.run_dir, DETECTION_FILE))  # the choice itself is logged by calibrate_run
    if os.path.isfile(os.path.join(args.run_dir, REPORT_PNG_FILE)):  # its DET panel shows the old choice
        write_report_or_warn(args.run_dir)
    return 0
