"""The listener: the recommended recipe against the tutorial recipe, on unseen (test) speakers.

Trains both with `microkws train` on ../shared/data/speech_commands_sample (wall time from start to
exported, verified model), then scores each int8 model.tflite:

- on TFLM's kernels, accuracy over every test-speaker clip (all their clips of other words as unknown) and in
  the original's composition (the test partition as training builds it);
- keyword recall when the threshold lets 5 % of the other words fire;
- streaming: an hour of test-speaker words over noise (`microkws stream-test-wav`), run as the device runs
  it with the run's own detection settings (detection.json, chosen on validation speakers): keywords missed
  and false accepts per hour; and the DET sweep's best miss rate at <= 5 false accepts per hour;
- the budget: flash, arena and MACs from device_report.json.

Why an hour and several seeds: on 20 minutes (this bench's stream until 2026-12-07) a false accept is 3 per
hour and a keyword 0.4 points, and the two seeds' 20-minute streams went against a change that five seeds
on an hour favoured (bench/RESULTS.md, "The warp on the int8 model"); one seed of the recipe against
another moves the stream by up to 19 points. `--seeds 0,1,2,3,4` trains and scores each seed and prints
their mean beside them. The hour runs on tf.lite's optimised integer kernels, as the calibration's does
(`--stream_runtime tflm` for TFLM's throughout: 7-8 minutes an hour for the recommended model); on this
package's models they give the same commands within a threshold step or two
(microkws.streaming.calibrate's docstring).

Targets (issue 10) are printed beside the figures. The baseline is the tutorial's command, run in
the same invocation (or an existing run given with --baseline_run).

    python bench/listener.py [--seeds 0] [--baseline_steps 15000,3000] [--stream_seconds 3600]
    python bench/listener.py --recommended_runs RUN0,RUN1,... --baseline_run RUN   # score existing runs
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
    parser.add_argument("--seeds", "--seed", default="0", help="seeds of the recommended recipe, e.g. 0,1,2 "
                        "(default: %(default)s); the tutorial runs with the first")
    parser.add_argument("--baseline_steps", default="15000,3000", help="the tutorial's steps (default: %(default)s)")
    parser.add_argument("--baseline_run", help="an existing tutorial run to use instead of training one")
    parser.add_argument("--recommended_runs", "--recommended_run",
                        help="existing recommended runs (comma-separated) to score instead of training")
    parser.add_argument("--stream_seconds", type=int, default=3600, help="test stream length (default: %(default)s)")
    parser.add_argument("--stream_runtime", default="tflite_optimized", choices=("tflite_optimized", "tflm"),
                        help="kernels the stream runs on (default: %(default)s, as the calibration's)")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    stream = make_stream(args, out)
    if args.recommended_runs:
        paths = [Path(run) for run in args.recommended_runs.split(",")]
        names = [path.name for path in paths]
        names = names if len(set(names)) == len(names) else [str(path) for path in paths]
        runs = {name: (path, None) for name, path in zip(names, paths)}
    else:
        runs = {f"seed {seed}": train(args, out / f"recommended-{seed}", [], seed) for seed in seeds}
    if args.baseline_run:
        tutorial = (Path(args.baseline_run), None)
    else:
        tutorial = train(args, out / f"tutorial-{seeds[0]}", TUTORIAL + ["--how_many_training_steps",
                                                                        args.baseline_steps], seeds[0])
    rows = {name: score(run_dir, seconds, stream, args.stream_runtime) for name, (run_dir, seconds) in runs.items()}
    if len(rows) > 1:
        rows[f"mean of {len(rows)}"] = mean_row(list(rows.values()))
    rows["tutorial"] = score(*tutorial, stream, args.stream_runtime)
    print_table(rows)
    return 0


def mean_row(rows):
    """The figures of several runs of the recipe, averaged (a figure some run lacks stays None)."""
    return {key: None if any(row[key] is None for row in rows) else sum(row[key] for row in rows) / len(rows)
            for key in rows[0]}


def train(args, run_dir, flags, seed):
    command = [sys.executable, "-m", "microkws", "train", "--data_dir", args.data_dir, *WORDS, *flags,
               "--seed", str(seed), "--train_dir", str(run_dir), "--no_progress"]
    print("$", " ".join(command[2:]), flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return run_dir, time.monotonic() - started


def make_stream(args, out):
    name = f"test_stream_{args.stream_seconds}s"
    wav, labels = out / f"{name}.wav", out / f"{name}.txt"
    if not wav.exists():
        subprocess.run([sys.executable, "-m", "microkws", "stream-test-wav", "--data_dir", args.data_dir,
                        "--wanted_words", "up,down", "--out", str(wav), "--output_labels_file", str(labels),
                        "--test_duration_seconds", str(args.stream_seconds), "--seed", "1234", "--no_progress"],
                       check=True)
    return wav, labels


def score(run_dir, seconds, stream, runtime):
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
    streamed = stream_eval(run_dir, stream, runtime)
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


def stream_eval(run_dir, stream, runtime):
    result = subprocess.run([sys.executable, "-m", "microkws", "stream-eval", str(run_dir), str(stream[0]),
                             str(stream[1]), "--runtime", runtime, "--json", "--no_progress"],
                            check=True, capture_output=True, text=True)
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
