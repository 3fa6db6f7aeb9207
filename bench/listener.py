"""The listener: the recommended recipe against the tutorial recipe, on unseen (test) speakers.

Trains both with `microkws train` on ../shared/data/speech_commands_sample (wall time from start to
exported, verified model), then scores each int8 model.tflite on TFLM's kernels:

- accuracy over every test-speaker clip (all their clips of other words as unknown) and in the
  original's composition (the test partition as training builds it);
- keyword recall when the threshold lets 5 % of the other words fire;
- streaming: a long recording of test-speaker words over noise (`microkws stream-test-wav`), run as
  the device runs it with the run's own detection settings (detection.json, chosen on validation
  speakers): keywords missed and false accepts per hour; and the DET sweep's best miss rate at
  <= 5 false accepts per hour;
- the budget: flash, arena and MACs from device_report.json.

Targets (issue 10) are printed beside the figures. The baseline is the tutorial's command, run in
the same invocation (or an existing run given with --baseline_run).

    python bench/listener.py [--seed 0] [--baseline_steps 15000,3000] [--stream_seconds 1200]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT.parent / "shared" / "data" / "speech_commands_sample"
WORDS = ["--wanted_words", "up,down", "--silence_percentage", "25", "--unknown_percentage", "25"]
TUTORIAL = ["--model_architecture=tiny_conv", "--window_stride=20", "--preprocess=micro", "--quantize=1"]
TARGETS = {"train_minutes": 10, "all_clips": 0.89, "original_composition": 0.87, "recall_at_5": 0.80,
           "stream_missed": 0.20, "stream_fa_per_hour": 5.0, "flash": 20480, "arena": 28672, "macs": 2_000_000}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/microkws-bench-listener", help="work folder (default: %(default)s)")
    parser.add_argument("--data_dir", default=str(DATA_DIR))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline_steps", default="15000,3000", help="the tutorial's steps (default: %(default)s)")
    parser.add_argument("--baseline_run", help="an existing tutorial run to use instead of training one")
    parser.add_argument("--recommended_run", help="an existing recommended run to score instead of training one")
    parser.add_argument("--stream_seconds", type=int, default=1200, help="test stream length (default: %(default)s)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    stream = make_stream(args, out)
    runs = {"recommended": (Path(args.recommended_run), None) if args.recommended_run else
            train(args, out / f"recommended-{args.seed}", [])}
    if args.baseline_run:
        runs["tutorial"] = (Path(args.baseline_run), None)
    else:
        runs["tutorial"] = train(args, out / f"tutorial-{args.seed}", TUTORIAL + ["--how_many_training_steps",
                                                                                  args.baseline_steps])
    rows = {name: score(run_dir, seconds, stream) for name, (run_dir, seconds) in runs.items()}
    print_table(rows)
    return 0


def train(args, run_dir, flags):
    command = [sys.executable, "-m", "microkws", "train", "--data_dir", args.data_dir, *WORDS, *flags,
               "--seed", str(args.seed), "--train_dir", str(run_dir), "--no_progress"]
    print("$", " ".join(command[2:]), flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return run_dir, time.monotonic() - started


def make_stream(args, out):
    wav, labels = out / "test_stream.wav", out / "test_stream.txt"
    if not wav.exists():
        subprocess.run([sys.executable, "-m", "microkws", "stream-test-wav", "--data_dir", args.data_dir,
                        "--wanted_words", "up,down", "--out", str(wav), "--output_labels_file", str(labels),
                        "--test_duration_seconds", str(args.stream_seconds), "--seed", "1234", "--no_progress"],
                       check=True)
    return wav, labels


def score(run_dir, seconds, stream):
    import dataclasses

    from microkws.evaluate import evaluate
    from microkws.inference import load_model
    from microkws.dataset.index import MAX_EXTRA_PERCENTAGE
    from microkws.train import read_run_config

    model = load_model(str(run_dir), prefer="tflite")
    every_unknown = dataclasses.replace(read_run_config(run_dir).data, unknown_percentage=MAX_EXTRA_PERCENTAGE)
    wide = evaluate(model, split="testing", data_config=every_unknown)
    recall = {row["false_accept_rate"]: row["recall"] for row in wide["keyword_recall"]}
    report = json.loads((run_dir / "device_report.json").read_text())
    streamed = stream_eval(run_dir, stream)
    reachable = [p["false_reject_rate"] for p in streamed["det"] if p["false_accepts_per_hour"] <= 5.0]
    return {
        "train_minutes": None if seconds is None else seconds / 60,
        "all_clips": wide["accuracy"],
        "original_composition": evaluate(model, split="testing")["accuracy"],
        "other_words_accepted": wide["unknown_false_accepts"]["rate"],
        "recall_at_5": recall.get(0.05),
        "stream_missed": streamed["false_reject_rate"],
        "stream_fa_per_hour": streamed["false_accepts_per_hour"],
        "stream_threshold": streamed["settings"]["detection_threshold"],
        "det_missed_at_5_per_hour": min(reachable) if reachable else None,
        **budget(report),
    }


def stream_eval(run_dir, stream):
    result = subprocess.run([sys.executable, "-m", "microkws", "stream-eval", str(run_dir), str(stream[0]),
                             str(stream[1]), "--json", "--no_progress"], check=True, capture_output=True, text=True)
    return json.loads(result.stdout[result.stdout.index("{"):])


def budget(report):
    """Flash, arena and MACs as device_report.json states them."""
    return {"flash": report["model_bytes"], "arena": report["arena_bytes"], "macs": report["macs"]["value"]}


def print_table(rows):
    names = list(rows)
    print(f"\n{'figure':28}" + "".join(f"{name:>14}" for name in names) + f"{'target':>14}")
    for key in rows[names[0]]:
        cells = "".join(f"{format_value(key, rows[name][key]):>14}" for name in names)
        target = TARGETS.get(key)
        print(f"{key:28}{cells}{'' if target is None else format_value(key, target):>14}")


def format_value(key, value):
    if value is None:
        return "-"
    if key in ("flash", "arena", "macs"):
        return f"{int(value):,}"
    if key in ("train_minutes", "stream_fa_per_hour", "stream_threshold"):
        return f"{value:.2f}"
    return f"{100 * value:.1f}%"


if __name__ == "__main__":
    sys.exit(main())
