"""Training speed of the reference recipe, against the bare training-step floor, in one run.

Recipe: tiny_conv, micro features (30 ms / 20 ms / 40), wanted words up,down,
silence 25 %, unknown 25 %, batch 100, the original's augmentation, on
../shared/data/speech_commands_sample.

Prints:
- the pipeline: `microkws.train.train` on the recipe's settings and length (so its batches are made as the
  recipe's are, echoed or fresh: microkws.train.batches), stopped after --steps steps; steps/s with
  validation and checkpoints included;
- the floor: the same model's compiled steps (20 to a call, as the loop runs them) on ready-made batches,
  and one step per call;
- the projection for the whole recipe and the pipeline / floor ratio (target, issue 12: at most 1.2x).

    python bench/train.py [--steps 1200]
    python bench/train.py --model_architecture ds_cnn --optimizer adam --recipe_steps 4000 --steps 100 --floor_steps 40

With --whole SEEDS (e.g. 0,1,2) it runs the tutorial's command verbatim instead, once per seed, as a user
would (`microkws train ... --quantize=1 --data_dir ../shared/data/speech_commands_sample`), and prints each
run's wall time, the command's own split of it ("time:" line: loading, steps, validation, checkpoints,
the final test, export and verify, calibration) and its test accuracy, then the seeds' mean. Targets
(issue 12): start to exported, verified model <= 130 s; validation, checkpoints, the final test and
export/verify together < 10 % of it.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT.parent / "shared" / "data" / "speech_commands_sample"
RECIPE_STEPS = 18000
TARGET_RATIO = 1.2


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1200, help="pipeline steps to time (default: %(default)s)")
    parser.add_argument("--recipe_steps", type=int, default=18000,
                        help="the length of the recipe whose first --steps are timed (default: %(default)s)")
    parser.add_argument("--floor_steps", type=int, default=500, help="floor steps to time (default: %(default)s)")
    parser.add_argument("--data_dir", default=str(DATA_DIR))
    parser.add_argument("--model_architecture", default="tiny_conv", help="(default: %(default)s)")
    parser.add_argument("--optimizer", default="gradient_descent", help="(default: %(default)s)")
    parser.add_argument("--whole", metavar="SEEDS", help="time the tutorial's whole command for these seeds")
    parser.add_argument("--out", default="/tmp/microkws-bench-train", help="run folders of --whole")
    args = parser.parse_args()
    if args.whole:
        return whole_command(args)

    from microkws._tensorflow import keras  # first: it sets up TensorFlow (oneDNN kernels) before import
    import numpy as np

    from microkws.dataset import DataConfig
    from microkws.features import FeatureConfig
    from microkws.models import build_model
    from microkws.train import TrainConfig, train
    from microkws.train.steps import make_optimizer, make_train_step

    from microkws.train.loop import STEPS_PER_CALL
    from microkws.train.steps import make_train_steps

    data = DataConfig(args.data_dir, wanted_words=("up", "down"), silence_percentage=25, unknown_percentage=25)
    # The recipe's own length and settings (so its batches echo as the recipe's do), stopped after
    # args.steps by the validation callback, as a search stops a trial.
    config = TrainConfig(
        model_architecture=args.model_architecture,
        optimizer=args.optimizer,
        how_many_training_steps=(args.recipe_steps,),
        learning_rate=(0.001,),
        batch_size=100,
        eval_step_interval=args.steps,
        save_step_interval=100,
        quantize=True,
    )
    features = FeatureConfig()

    class Stop(Exception):
        pass

    def stop(step, scores):
        raise Stop

    timings = {}
    with tempfile.TemporaryDirectory() as run_dir:
        try:
            train(run_dir, data_config=data, feature_config=features, train_config=config, progress=False,
                  on_validation=stop, timings=timings)
        except Stop:
            pass
    loop_seconds = timings["steps"] + timings.get("validation", 0.0) + timings.get("checkpoints", 0.0)
    pipeline_rate = args.steps / loop_seconds

    # The floor: the same model and steps, STEPS_PER_CALL to a compiled call as the loop runs them,
    # on batches already in memory.
    keras.utils.set_random_seed(0)
    model = build_model(args.model_architecture, input_shape=features.shape, label_count=4)
    optimizer = make_optimizer(config)
    single = make_train_step(model, optimizer, quantize=True)
    chunk = ready_batches(features.fingerprint_size)
    floor_rate = 1000 / compiled_floor_ms(make_train_steps(model, optimizer, quantize=True), chunk, args.floor_steps)
    for i in range(3):
        single(chunk[0][i], chunk[1][i], np.float32(0.001))
    started = time.monotonic()
    for i in range(args.floor_steps):
        loss, _ = single(chunk[0][i % STEPS_PER_CALL], chunk[1][i % STEPS_PER_CALL], np.float32(0.001))
    float(loss)
    single_rate = args.floor_steps / (time.monotonic() - started)
    ratio = floor_rate / pipeline_rate
    print(f"model: {args.model_architecture}, optimizer {args.optimizer}, quantize 1; machine: {os.cpu_count()} "
          f"cores, load average {os.getloadavg()[0]:.2f}")
    print(f"pipeline: the {args.recipe_steps}-step recipe's first {args.steps} steps in {loop_seconds:.1f} s "
          f"({pipeline_rate:.1f} steps/s; validation {timings.get('validation', 0):.2f} s and checkpoints "
          f"{timings.get('checkpoints', 0):.2f} s of it); loading the data {timings['load_data']:.1f} s")
    print(f"floor:    {floor_rate:.1f} steps/s ({STEPS_PER_CALL} steps per compiled call, ready-made batches); "
          f"one step per call {single_rate:.1f} steps/s")
    print(f"{args.recipe_steps}-step recipe: {args.recipe_steps / pipeline_rate:.0f} s; floor "
          f"{args.recipe_steps / floor_rate:.0f} s")
    print(f"pipeline / floor time: {ratio:.2f}x (target <= {TARGET_RATIO}x): "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    return 0 if ratio <= TARGET_RATIO else 1


def ready_batches(fingerprint_size):
    """(features, labels, learning rates) of STEPS_PER_CALL random batches of 100, already in memory."""
    import numpy as np

    from microkws.train.loop import STEPS_PER_CALL

    rng = np.random.default_rng(0)
    return (rng.uniform(0, 26, size=(STEPS_PER_CALL, 100, fingerprint_size)).astype(np.float32),
            rng.integers(4, size=(STEPS_PER_CALL, 100)).astype(np.int64),
            np.full(STEPS_PER_CALL, 0.001, np.float32))


def compiled_floor_ms(train_steps, chunk, steps):
    """ms per step of `train_steps` (make_train_steps) called on `chunk` over and over, after one warm-up
    call that compiles it: the training floor, STEPS_PER_CALL steps to a call as the loop runs them."""
    train_steps(*chunk)[0].numpy()
    calls = max(1, steps // len(chunk[0]))
    started = time.monotonic()
    for _ in range(calls):
        losses, _ = train_steps(*chunk)
    losses.numpy()
    return 1000 * (time.monotonic() - started) / (calls * len(chunk[0]))


TUTORIAL = ["--model_architecture=tiny_conv", "--window_stride=20", "--preprocess=micro", "--wanted_words=up,down",
            "--silence_percentage=25", "--unknown_percentage=25", "--quantize=1"]
WHOLE_TARGET_SECONDS = 130


def whole_command(args):
    import json
    import re
    import shutil
    import subprocess

    print(f"load average at start: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores", flush=True)
    rows = []
    for seed in args.whole.split(","):
        run_dir = Path(args.out) / f"tutorial-{seed}"
        shutil.rmtree(run_dir, ignore_errors=True)
        command = [sys.executable, "-m", "microkws", "train", *TUTORIAL, "--data_dir", args.data_dir,
                   "--train_dir", str(run_dir), "--seed", seed, "--no_progress"]
        started = time.monotonic()
        result = subprocess.run(command, check=True, capture_output=True, text=True)
        wall = time.monotonic() - started
        parts = {name.strip().replace(" ", "_"): float(value) for name, value in
                 re.findall(r"([a-z ]+) ([\d.]+) s", result.stdout[result.stdout.index("time: "):].split(": ", 2)[2])}
        metrics = json.loads((run_dir / "metrics.json").read_text())
        to_model = wall - parts.get("calibrate", 0.0)
        overhead = sum(parts.get(k, 0.0) for k in ("validation", "checkpoints", "finish", "export_verify"))
        rows.append((to_model, overhead / to_model, metrics))
        print(f"seed {seed}: {wall:.1f} s in all, {to_model:.1f} s to the exported, verified model "
              f"(target <= {WHOLE_TARGET_SECONDS} s); validation, checkpoints, final test and export/verify "
              f"{100 * overhead / to_model:.1f} % of that (target < 10 %); parts: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()), flush=True)
        print(f"    test accuracy (float) {100 * metrics['test_accuracy']:.1f} % in the original's composition, "
              f"{100 * metrics['test_every_unknown']['accuracy']:.1f} % over every clip, other words taken "
              f"{100 * metrics['test_every_unknown']['unknown_false_accepts']['rate']:.1f} %; best step "
              f"{metrics['best_step']}", flush=True)
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    print(f"mean of {len(rows)}: {mean([r[0] for r in rows]):.1f} s to the model, overhead "
          f"{100 * mean([r[1] for r in rows]):.1f} %, test accuracy {100 * mean([r[2]['test_accuracy'] for r in rows]):.1f} %, "
          f"every clip {100 * mean([r[2]['test_every_unknown']['accuracy'] for r in rows]):.1f} %")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
