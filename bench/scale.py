"""Training on a tree the size of the full Speech Commands: time to the first step and peak memory.

Builds (once) a tree of --clips clips (default 105,000, about the full v0.02's 105,829) from hard links to
../shared/data/speech_commands_sample: every sample clip appears under --clips / 2,639 speaker names of its
own, and validation_list.txt / testing_list.txt list each copy of a listed clip, so the partitions keep
the sample's proportions. Then trains the reference recipe (tiny_conv, micro features, up/down, silence
and unknown 25 %) for one step in a child process, and prints:

- the seconds from the start to the first training step (loading and featurising the validation and
  test speakers, loading the training clips and the unknown-word pool, building the model, the step);
- the child's peak resident memory (getrusage of the finished child).

Targets (issue 12): first step within 60 s, peak memory under 6 GB. The sample itself (2,639 clips) is
run in the same invocation as the baseline.

    python bench/scale.py [--clips 105000] [--out /tmp/microkws-bench-scale]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT.parent / "shared" / "data" / "speech_commands_sample"
TARGETS = {"first_step_seconds": 60.0, "peak_gb": 6.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=105_000, help="clips in the tree (default: %(default)s)")
    parser.add_argument("--out", default="/tmp/microkws-bench-scale", help="work folder (default: %(default)s)")
    parser.add_argument("--data_dir", default=str(DATA_DIR))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, Path(args.out))
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores", flush=True)
    tree = build_tree(Path(args.data_dir), Path(args.out) / f"tree-{args.clips}", args.clips)
    rows = {"sample": measure(Path(args.data_dir), Path(args.out)), f"tree of {count_clips(tree):,} clips":
            measure(tree, Path(args.out))}
    for name, row in rows.items():
        verdict = ", ".join(f"{key} {'met' if row[key] <= target else 'NOT met'}" for key, target in TARGETS.items())
        print(f"{name}: first step after {row['first_step_seconds']:.1f} s (loading {row['load_data']:.1f} s), "
              f"peak memory {row['peak_gb']:.2f} GB; {verdict}")
    return 0


def measure(data_dir, out):
    """Run the child on `data_dir`; its figures plus its peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run([sys.executable, __file__, "--child", str(data_dir), "--out", str(out)],
                            check=True, capture_output=True, text=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:
        print("warning: the peak is not this child's own (an earlier child peaked higher)", file=sys.stderr)
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "peak_gb": peak_kb / 2**20}


def child(data_dir, out):
    """Train one step in this process; print the seconds to the first step as JSON."""
    import tempfile

    started = time.monotonic()
    from microkws.dataset import DataConfig
    from microkws.train import TrainConfig, train

    data = DataConfig(data_dir, wanted_words=("up", "down"), silence_percentage=25, unknown_percentage=25)
    config = TrainConfig(how_many_training_steps=(1,), learning_rate=(0.001,), quantize=True)
    timings = {}
    with tempfile.TemporaryDirectory(dir=out) as run_dir:
        train(run_dir, data_config=data, train_config=config, progress=False, timings=timings)
    print(json.dumps({"first_step_seconds": timings["load_data"] + timings["steps"] + (time.monotonic() - started)
                      - sum(timings.values()), "load_data": timings["load_data"]}))
    return 0


def build_tree(source, tree, clips):
    """A Speech Commands tree of about `clips` clips, hard links to `source`'s (made once)."""
    done = tree / ".complete"
    if done.exists():
        return tree
    wavs = sorted(p.relative_to(source) for p in source.glob("*/*.wav") if not p.parts[-2].startswith("_"))
    copies = max(1, round(clips / len(wavs)))
    print(f"building {tree}: {len(wavs)} clips x {copies} speaker copies", flush=True)
    lists = {name: set((source / name).read_text().split()) for name in ("validation_list.txt", "testing_list.txt")}
    listed = {name: [] for name in lists}
    (tree / "_background_noise_").mkdir(parents=True, exist_ok=True)
    for noise in (source / "_background_noise_").glob("*.wav"):
        target = tree / "_background_noise_" / noise.name
        if not target.exists():
            os.link(noise, target)
    for relative in wavs:
        speaker, rest = relative.name.split("_nohash_")
        (tree / relative.parent).mkdir(exist_ok=True)
        for copy in range(copies):
            name = f"{relative.parent}/{speaker}x{copy:03d}_nohash_{rest}"
            if not (tree / name).exists():
                os.link(source / relative, tree / name)
            for list_name, members in lists.items():
                if str(relative) in members:
                    listed[list_name].append(name)
    for list_name, names in listed.items():
        (tree / list_name).write_text("".join(name + "\n" for name in names))
    done.touch()
    return tree


def count_clips(tree):
    return sum(1 for _ in tree.glob("*/*.wav")) - sum(1 for _ in tree.glob("_background_noise_/*.wav"))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
