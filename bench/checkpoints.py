"""Which checkpoint to keep: the tutorial recipe with every checkpoint kept, scored on both speaker sets.

Trains the tutorial's command (tiny_conv, 18,000 steps, --quantize 1; --export 0) with a checkpoint every
400 steps and none pruned, then scores each checkpoint's float model:
- on the validation speakers (every clip; what a checkpoint metric may look at): accuracy, balanced
  accuracy, accuracy re-weighted to the original's composition, keyword recall at 5 % false accepts,
  other words taken for a keyword;
- on the test speakers: accuracy in the original's composition (the test partition as training builds
  it), over every clip, other words taken, recall at 5 % false accepts.
Then prints, for each rule (argmax of a validation figure, ties to the later step, alone or smoothed over
three validations; or the last step), the step it keeps and that step's test figures.

    python bench/checkpoints.py --seed 0 [--out /tmp/microkws-bench-checkpoints]
"""

import argparse
import glob
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT.parent / "shared" / "data" / "speech_commands_sample"
TUTORIAL = ["--model_architecture=tiny_conv", "--window_stride=20", "--preprocess=micro", "--wanted_words=up,down",
            "--silence_percentage=25", "--unknown_percentage=25", "--quantize=1"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/microkws-bench-checkpoints")
    parser.add_argument("--data_dir", default=str(DATA_DIR))
    args = parser.parse_args()
    run = Path(args.out) / f"tutorial-{args.seed}"
    if not (run / "metrics.json").exists():
        train_keeping_every_checkpoint(args, run)
    rows = score_checkpoints(run)
    for row in rows:
        print(row["step"], " ".join(f"val_{k}={v:.3f}" for k, v in row["val"].items()), "|",
              " ".join(f"test_{k}={v:.3f}" for k, v in row["test"].items()))
    print_picks(rows)
    return 0


def train_keeping_every_checkpoint(args, run):
    import microkws.train.loop as loop
    from microkws.cli import main as cli_main

    loop.prune_checkpoints = lambda directory: None  # keep them all
    code = cli_main(["train", *TUTORIAL, "--data_dir", args.data_dir, "--train_dir", str(run),
                     "--save_step_interval", "400", "--seed", str(args.seed), "--export", "0", "--no_progress"])
    if code:
        sys.exit(code)


def score_checkpoints(run):
    import numpy as np

    from microkws.metrics import (accuracy, balanced_accuracy, confusion_matrix, keyword_recall, softmax,
                                  unknown_false_accepts)
    from microkws.models import build_model
    from microkws.models.keras_model import model_outputs
    from microkws.train import rundir
    from microkws.train.checkpoint import load_checkpoint, read_meta
    from microkws.train.data import load_training_data

    config = rundir.read_run_config(run)
    data = load_training_data(config, progress=False)
    labels = list(config.labels)
    settings = config.train
    model = build_model(settings.model_architecture, input_shape=config.features.shape, label_count=len(labels),
                        dropout_rate=settings.dropout_rate, config=settings.model_settings())

    def figures(partition):
        features, truth = partition
        probabilities = softmax(model_outputs(model, features))
        confusion = confusion_matrix(truth, probabilities.argmax(-1), len(labels))
        recall = np.diag(confusion) / np.maximum(confusion.sum(1), 1)
        # The original's composition: N keyword clips, N/4 silence, N/4 unknown (labels: silence, unknown, words).
        composition = (recall[2:].sum() + 0.5 * recall[0] + 0.5 * recall[1]) / (len(labels) - 2 + 1)
        return {"acc": accuracy(confusion), "bal": balanced_accuracy(confusion), "comp": composition,
                "r5": keyword_recall(probabilities, truth, labels, rates=(0.05,))[0]["recall"],
                "fa": unknown_false_accepts(confusion, labels)["rate"]}

    rows = []
    for path in sorted(glob.glob(str(run / "checkpoints" / "*.npz")), key=lambda p: read_meta(p)["step"]):
        load_checkpoint(path, model=model)
        every = figures(data["testing_every_unknown"])
        rows.append({"step": read_meta(path)["step"], "val": figures(data["validation"]),
                     "test": {"composition": figures(data["testing"])["acc"], "every": every["acc"],
                              "fa": every["fa"], "r5": every["r5"]}})
    return rows


def print_picks(rows):
    import numpy as np

    def pick(name, index):
        row = rows[index]
        print(f"{name:20s} keeps step {row['step']:6d}: " + ", ".join(f"test {k} {v:.3f}" for k, v in row["test"].items()))

    for metric in ("acc", "bal", "comp", "r5"):
        values = np.array([row["val"][metric] for row in rows])
        pick(f"best val {metric}", len(values) - 1 - int(np.argmax(values[::-1])))
        smooth = np.convolve(np.pad(values, 1, mode="edge"), np.ones(3) / 3, mode="valid")
        pick(f"best val {metric} (3)", len(smooth) - 1 - int(np.argmax(smooth[::-1])))
    pick("last", len(rows) - 1)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
