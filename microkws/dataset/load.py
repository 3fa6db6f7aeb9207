"""Loading a partition's audio into memory, once, as int16 clips.

int16 halves the memory of float32 and is exactly what a PCM16 file and the
device's microphone hold; features are computed from int16 either way.
"""

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from microkws.audio import read_audio, read_clip, read_pcm16_clip, to_int16
from microkws.dataset.augment import silence_examples
from microkws.dataset.labels import SILENCE_LABEL

log = logging.getLogger(__name__)

PARTITION_SEEDS = {"training": 0, "validation": 1, "testing": 2}
LOAD_THREADS = 4
PROGRESS_EVERY = 256


def load_clips(paths, *, sample_rate, length, progress=False, description="loading clips", loaded=None):
    """Read, resample and fit each file to `length` samples: int16 [len(paths), length].

    `loaded` (path -> int16 clip, see `clips_by_path`) holds clips read already for another set of the
    same files: those are copied, not read again.
    """
    clips = np.zeros((len(paths), length), dtype=np.int16)
    _read_into(clips, range(len(paths)), paths, sample_rate=sample_rate, progress=progress, description=description,
               loaded=loaded)
    return clips


def _read_into(clips, rows, paths, *, sample_rate, progress, description, loaded):
    """clips[rows[i]] = the clip of paths[i]. In place: a partition's clips are never held twice."""
    length = clips.shape[1]
    others = []
    with tqdm(total=len(paths), desc=description, disable=not progress, unit="clip", leave=False) as bar:
        # One thread for plain PCM16 clips (Speech Commands'): reading one is mostly Python and page
        # faults, and threads contending for both made a 2-core machine slower, not faster.
        for n, (row, path) in enumerate(zip(rows, paths), 1):
            clip = loaded.get(path) if loaded else None
            if clip is None:
                clip = read_pcm16_clip(path, sample_rate=sample_rate, length=length)
            if clip is None:
                others.append((row, path))
            else:
                clips[row] = clip
            if n % PROGRESS_EVERY == 0 or n == len(paths):
                bar.update(n - bar.n - len(others))

        # Files that need libsndfile and resampling: both release the GIL, so threads overlap them.
        def load(other):
            row, path = other
            clips[row] = read_clip(path, sample_rate=sample_rate, length=length)

        with ThreadPoolExecutor(max_workers=LOAD_THREADS) as pool:
            for _ in pool.map(load, others):
                bar.update(1)


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


def load_partition(index, partition, feature_config, *, backgrounds=None, seed=0, progress=False, loaded=None):
    """The clips and labels of one partition: (int16 [n, samples], int64 [n]).

    Silence examples are background noise at a random volume, drawn from
    `seed` and the partition, so validation and test sets stay the same on
    every evaluation (the original redrew them each time). Training callers
    augment clips themselves and replace silence rows on every step.

    `loaded`: as for `load_clips`.
    """
    examples = index.partitions[partition]
    length = feature_config.desired_samples
    rows = [i for i, e in enumerate(examples) if e.label != SILENCE_LABEL]
    clips = np.zeros((len(examples), length), dtype=np.int16)
    _read_into(clips, rows, [examples[i].path for i in rows], sample_rate=feature_config.sample_rate,
               progress=progress, description=f"loading {partition}", loaded=loaded)
    silent = [i for i, e in enumerate(examples) if e.label == SILENCE_LABEL]
    if silent:
        if backgrounds is None:
            backgrounds = load_backgrounds(
                index.background_paths, sample_rate=feature_config.sample_rate, min_length=length
            )
        rng = np.random.default_rng([seed, PARTITION_SEEDS[partition]])
        clips[silent] = to_int16(silence_examples(backgrounds, len(silent), length, rng=rng))
    return clips, np.asarray(index.label_ids(partition), dtype=np.int64)


def clips_by_path(examples, clips):
    """path -> clip row of `clips` (loaded for `examples`; silence rows have no path), for `loaded`."""
    return {example.path: clip for example, clip in zip(examples, clips) if example.path is not None}
