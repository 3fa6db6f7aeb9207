"""Benchmark: micro features of 1 s clips, microkws vs TensorFlow's op called per clip.

The original pipeline calls TensorFlow's audio_microfrontend op once per clip.
This times that (eagerly, and inside a tf.function), then microkws's batched C
frontend on one thread and on every core, checks that everything timed is
bit-for-bit equal to the op, and compares the speedup with the target.

Run from the repository root:
    python bench/features.py [--clips 2000] [--rounds 3]
"""

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import soundfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402
from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op  # noqa: E402

from microkws.features import FeatureConfig, micro_features  # noqa: E402
from microkws.features.micro import _available_cores, _plan  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = Path(os.environ.get("MICROKWS_SHARED", ROOT.parent / "shared")) / "data" / "speech_commands_sample"
CLIP_SAMPLES = 16000
TARGET_SPEEDUP = 5.0  # ours on all cores vs the op per clip
CONFIG = FeatureConfig()  # micro_speech: 30 ms window, 20 ms stride, 40 channels -> 49x40


def load_clips(count):
    """`count` real one-second clips (the sample cycled if smaller), int16 [count, 16000]."""
    paths = sorted(p for p in SAMPLE_DIR.glob("*/*.wav") if not p.parent.name.startswith("_"))
    if not paths:
        raise SystemExit(f"no clips under {SAMPLE_DIR}")
    clips = []
    for path in paths[:count]:
        audio, _ = soundfile.read(path, dtype="int16")
        clips.append(np.pad(audio, (0, max(0, CLIP_SAMPLES - len(audio))))[:CLIP_SAMPLES])
    return np.stack([clips[i % len(clips)] for i in range(count)])


def op_kwargs(config):
    return dict(
        sample_rate=config.sample_rate, window_size=int(config.window_size_ms),
        window_step=int(config.window_stride_ms), num_channels=config.feature_bin_count,
        upper_band_limit=config.upper_band_limit, lower_band_limit=config.lower_band_limit,
        smoothing_bits=config.smoothing_bits, even_smoothing=config.even_smoothing,
        odd_smoothing=config.odd_smoothing, min_signal_remaining=config.min_signal_remaining,
        enable_pcan=config.enable_pcan, pcan_strength=config.pcan_strength, pcan_offset=config.pcan_offset,
        gain_bits=config.gain_bits, enable_log=config.enable_log, scale_shift=config.scale_shift,
        out_scale=1, out_type=tf.uint16,
    )


def op_per_clip(call):
    """Run the op once per clip, as the original pipeline does."""
    return lambda clips: np.stack([call(clip) for clip in clips])


def ours(threads):
    return lambda clips: micro_features(clips, CONFIG, threads=threads)


def best_times(methods, clips, rounds):
    """Best wall seconds of each method over `rounds` interleaved rounds, and its first outputs.

    Other programs sharing the CPUs slow some rounds down; interleaving spreads
    that over all methods, and keeping the best round removes most of it.
    """
    for run in methods.values():
        run(clips[:64])  # warm-up: tables, traces, thread pool
    best = {name: float("inf") for name in methods}
    outputs = {}
    for _ in range(rounds):
        for name, run in methods.items():
            start = time.perf_counter()
            out = run(clips)
            best[name] = min(best[name], time.perf_counter() - start)
            outputs.setdefault(name, out)
    return best, outputs


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000, help="one-second clips to process (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds, best kept (default 3)")
    args = parser.parse_args()

    # ---- setup
    clips = load_clips(args.clips)
    cores = _available_cores()
    print(f"{cpu_name()}, {cores} cores usable; TensorFlow {tf.__version__}; "
          f"microkws frontend path: {_plan(CONFIG).simd}")
    print(f"{len(clips)} clips of {CLIP_SAMPLES} samples -> {CONFIG.shape} uint16 features each")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"load average before the run: {load:.2f}" + ("  (other programs running: figures may be low)" if load > 0.5 else ""))
    print()

    # ---- the four ways, timed in interleaved rounds
    kwargs = op_kwargs(CONFIG)
    graph_op = tf.function(lambda audio: audio_microfrontend_op.audio_microfrontend(audio, **kwargs))
    eager_name, graph_name = "TF op, per clip, eager (the original's way)", "TF op, per clip, in tf.function"
    one_name, all_name = "microkws, batched, 1 thread", f"microkws, batched, {cores} threads"
    methods = {
        eager_name: op_per_clip(lambda c: audio_microfrontend_op.audio_microfrontend(tf.constant(c), **kwargs).numpy()),
        graph_name: op_per_clip(lambda c: graph_op(tf.constant(c)).numpy()),
        one_name: ours(1),
        all_name: ours(cores),
    }
    seconds, outputs = best_times(methods, clips, args.rounds)

    # ---- bit-exactness of everything timed
    reference = outputs[eager_name]
    for name, out in outputs.items():
        differing = int((out != reference).sum()) if out.shape == reference.shape else out.size
        if differing:
            raise SystemExit(f"{name}: {differing} values differ from the op called eagerly")
    print(f"bit-exact: all {reference.size:,} uint16 values equal across the four ways\n")

    # ---- report
    print(f"{'':48s} {'clips/s':>10s} {'us/clip':>9s} {'vs eager op':>12s}")
    for name, best in seconds.items():
        print(f"{name:48s} {len(clips) / best:10,.0f} {best / len(clips) * 1e6:9.1f} {seconds[eager_name] / best:11.1f}x")
    speedup = seconds[eager_name] / seconds[all_name]
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "MISSES"
    print(f"\nspeedup on all cores vs the op per clip: {speedup:.1f}x "
          f"({seconds[graph_name] / seconds[all_name]:.1f}x vs tf.function); "
          f"target >= {TARGET_SPEEDUP:.0f}x: {verdict}")
    return 0 if speedup >= TARGET_SPEEDUP else 1


if __name__ == "__main__":
    raise SystemExit(main())
