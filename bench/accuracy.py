"""Accuracy of trained runs on unseen speakers, with every unknown word of the test split.

The test partition as training defines it holds only a small fixed draw of
unknown clips. This scores each run's int8 model.tflite (TFLM kernels) and
float model.keras on the test speakers with ALL their clips of other words
as unknown examples, and prints the share of those unknown clips that the
model takes for a wanted word (the original recipe's weak spot), and the
keyword recall when the detection threshold lets 2, 5 or 10 % of them fire:
models compared at equal false accepts.

    python bench/accuracy.py RUN_DIR [RUN_DIR ...]
"""

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    args = parser.parse_args()

    from microkws.evaluate import evaluate
    from microkws.inference import load_model
    from microkws.dataset.index import MAX_EXTRA_PERCENTAGE
    from microkws.train import read_run_config

    print(f"{'run':24} {'model':14} {'split test':>11} {'all-unknown test':>17} {'unknown -> wanted':>18}  "
          f"keyword recall at 2 / 5 / 10 % false accepts")
    for run_dir in args.runs:
        data_config = read_run_config(run_dir).data
        every_unknown = dataclasses.replace(data_config, unknown_percentage=MAX_EXTRA_PERCENTAGE)
        for name, prefer in (("int8 (TFLM)", "tflite"), ("float (Keras)", "keras")):
            model = load_model(run_dir, prefer=prefer)
            split = evaluate(model, split="testing")
            wide = evaluate(model, split="testing", data_config=every_unknown)
            accepts = wide["unknown_false_accepts"]
            recall = {row["false_accept_rate"]: row["recall"] for row in wide["keyword_recall"]}
            print(f"{Path(run_dir).name:24} {name:14} {100 * split['accuracy']:10.1f}% "
                  f"{100 * wide['accuracy']:16.1f}% {100 * accepts['rate']:10.1f}% of {accepts['unknown_clips']}  "
                  + " / ".join(f"{100 * recall[rate]:.1f}%" for rate in (0.02, 0.05, 0.10)))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
