"""Loading a partition's audio into memory, once, as int16 clips.

int16 halves the memory of float32 and is exactly what a PCM16 file and the
device's microphone hold; features are computed from int16 either way.
"""

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from microkws.audio import fit_to_length, read_audio, to_int16
from microkws.dataset.augment import silence_examples
from microkws.dataset.labels import SILENCE_LABEL

log = logging.getLogger(__name__)

PARTITION_SEEDS = {"training": 0, "validation": 1, "testing": 2}


def load_clips(paths, *, sample_rate, length, progress=False, description="loading clips"):
    """Read, resample and fit each file to `length` samples: int16 [len(paths), length]."""
    clips = np.zeros((len(paths), length), dtype=np.int16)

    def load(i):
        clips[i] = to_int16(fit_to_length(read_audio(paths[i], sample_rate=sample_rate), length))

    # libsndfile and scipy release the GIL, so threads overlap file reads and resampling.
    with ThreadPoolExecutor(max_workers=4) as pool:
        work = pool.map(load, range(len(paths)))
        for _ in tqdm(work, total=len(paths), desc=description, disable=not progress, unit="clip", leave=False):
            pass
    return clips


def load_backgrounds(paths, *, sample_rate, min_length):
    """Background recordings as float32 arrays; those shorter than one clip are skipped."""
    backgrounds = []
    for path in paths:
        noise = read_audio(path, sample_rate=sample_rate)
        if len(noise) <= min_length:
            log.warning("%s: background recording shorter than one clip; not used", path)
            continue
        backgrounds.append(noise)
    return backgrounds


def load_partition(index, partition, feature_config, *, backgrounds=None, seed=0, progress=False):
    """The clips and labels of one partition: (int16 [n, samples], int64 [n]).

    Silence examples are background noise at a random volume, drawn from
    `seed` and the partition, so validation and test sets stay the same on
    every evaluation (the original redrew them each time). Training callers
    augment clips themselves and replace silence rows on every step.
    """
    examples = index.partitions[partition]
    length = feature_config.desired_samples
    rows = [i for i, e in enumerate(examples) if e.label != SILENCE_LABEL]
    clips = np.zeros((len(examples), length), dtype=np.int16)
    clips[rows] = load_clips(
        [examples[i].path for i in rows],
        sample_rate=feature_config.sample_rate,
        length=length,
        progress=progress,
        description=f"loading {partition}",
    )
    silent = [i for i, e in enumerate(examples) if e.label == SILENCE_LABEL]
    if silent:
        if backgrounds is None:
            backgrounds = load_backgrounds(
                index.background_paths, sample_rate=feature_config.sample_rate, min_length=length
            )
        rng = np.random.default_rng([seed, PARTITION_SEEDS[partition]])
        clips[silent] = to_int16(silence_examples(backgrounds, len(silent), length, rng=rng))
    return clips, np.asarray(index.label_ids(partition), dtype=np.int64)
