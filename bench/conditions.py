"""Recordings unlike the sample's: trained runs judged on their validation speakers made quiet, clipped and noisy.

The test speakers that every recipe misses are recordings, not voices: on `../shared`'s test split one
speaker's words are 3 dB above a loud noise floor, another's are clipped at full scale, and the validation
speakers have neither (no clipped speaker, one below 20 dB). A recipe tuned on the validation clips as
recorded cannot see what such recordings cost, and users' own data (other microphones, rooms and boards)
has more of them. So this bench degrades the VALIDATION speakers' clips (every clip of their keywords and
other words, the partition `microkws train` validates on) in fixed, seeded ways and scores each run's float
Keras model on them as the final report does: keyword recall at 2 % and 5 % false accepts and the share of
other words taken for a keyword.

Conditions: as recorded; 20 dB quieter; 20 dB louder and clipped to 16 bits; the data set's background
noise at 5 dB signal-to-noise ratio (of the clip's own level); both quiet and noisy. The noise segments and
their placement are the same for every run.

    python bench/conditions.py RUN_DIR [RUN_DIR ...]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NOISE_SEED = 123
SNR_DB = 5.0
LEVEL_DB = 20.0
CONDITIONS = ("as recorded", f"-{LEVEL_DB:g} dB", f"+{LEVEL_DB:g} dB clipped", f"noise {SNR_DB:g} dB SNR",
              f"-{LEVEL_DB:g} dB in noise {SNR_DB:g} dB")


def validation_clips(run_dir):
    """(int16 clips [n, samples], label indices [n], float32 noise [n, samples]) of a run's validation
    speakers with every clip of their other words, and one background segment per clip."""
    import numpy as np

    from microkws.dataset.index import index_dataset
    from microkws.dataset.load import load_backgrounds, load_partition
    from microkws.train import rundir
    from microkws.train.data import with_every_unknown

    run = rundir.read_run_config(run_dir)
    samples = run.features.desired_samples
    index = index_dataset(run.data)
    backgrounds = load_backgrounds(index.background_paths, sample_rate=run.features.sample_rate, min_length=samples)
    clips, labels = load_partition(with_every_unknown(index, "validation"), "validation", run.features,
                                   backgrounds=backgrounds, seed=0)
    rng = np.random.default_rng(NOISE_SEED)
    noise = np.empty((len(clips), samples), np.float32)
    for row in range(len(clips)):
        recording = backgrounds[rng.integers(len(backgrounds))]
        start = rng.integers(len(recording) - samples)
        noise[row] = recording[start:start + samples]
    return clips, np.asarray(labels), noise


def degraded(clips, noise):
    """{condition: int16 clips} of the CONDITIONS."""
    import numpy as np

    audio = clips.astype(np.float32) / 32768
    level = np.sqrt((audio ** 2).mean(axis=1, keepdims=True)) + 1e-6
    noise_level = np.sqrt((noise ** 2).mean(axis=1, keepdims=True)) + 1e-6
    noisy = audio + noise * (level / noise_level) * 10 ** (-SNR_DB / 20)
    quieter = 10 ** (-LEVEL_DB / 20)
    versions = dict(zip(CONDITIONS, (audio, audio * quieter, audio / quieter, noisy, noisy * quieter)))
    return {name: (np.clip(x, -1, 1) * 32767).astype(np.int16) for name, x in versions.items()}


def scores(model, clips, truth):
    """(recall at 2 % FA, recall at 5 % FA, other words taken), in %."""
    from microkws.metrics import confusion_matrix, keyword_recall, unknown_false_accepts

    probabilities = model.predict(clips)
    recall = {row["false_accept_rate"]: row["recall"] for row in keyword_recall(probabilities, truth, model.labels)}
    confusion = confusion_matrix(truth, probabilities.argmax(axis=1), len(model.labels))
    taken = unknown_false_accepts(confusion, model.labels)["rate"]
    return 100 * recall[0.02], 100 * recall[0.05], 100 * taken


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories trained on the same data and words")
    args = parser.parse_args()
    from microkws.inference import load_model

    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    print("recall at 2 % FA / recall at 5 % FA / other words taken (%), validation speakers, float model")
    print("| run | " + " | ".join(CONDITIONS) + " |")
    print("|---|" + "---|" * len(CONDITIONS))
    clips, truth, noise = validation_clips(args.runs[0])
    versions = degraded(clips, noise)
    for run_dir in args.runs:
        model = load_model(run_dir, prefer="keras")
        cells = ["%.0f / %.0f / %.0f" % scores(model, versions[name], truth) for name in CONDITIONS]
        print(f"| {run_dir} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
