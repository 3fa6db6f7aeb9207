"""Draw a run's report.png: what a person looks at to judge a run.

  microkws report RUN_DIR [--out FILE]

One figure with the training loss and accuracy, every validation score against step (from logs/),
the test confusion matrices in the original's composition and with every unknown clip, per-class
recall, the DET curve of the streaming calibration with the chosen threshold (detection.json) and
flash and arena against their budgets (device_report.json). Training draws it at the end; this
command redraws it. A panel whose file is missing (a run with --export 0 or --summaries_dir
elsewhere) says so. Prints the path written.
"""

from microkws.cli._flags import add_flag


def add_arguments(parser):
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory (train's --train_dir)")
    add_flag(parser, "--out", metavar="FILE", help="where to write the PNG (default: RUN_DIR/report.png)")


def run(args):
    from microkws.report import write_report

    print(write_report(args.run_dir, out=args.out))
    return 0
