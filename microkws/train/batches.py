"""Training batches made on the fly: every step gets freshly augmented clips.

The original spent most of each step computing features one clip per
session call. Here a batch is augmented with numpy and featurised by the
batched frontend in a background thread while the model trains on the
previous one. Batch `step` depends only on (seed, step), so a resumed run
sees exactly the batches an uninterrupted one would.
"""

import collections
import concurrent.futures
import itertools

import numpy as np

from microkws.audio import to_int16
from microkws.dataset.augment import augment, mask_features
from microkws.dataset.labels import SILENCE_LABEL, UNKNOWN_LABEL
from microkws.features import compute_features
from microkws.features.micro import snap_to_device_grid

PRODUCER_THREADS = 2
"""Threads making batches ahead of the step. With one, the step waited on it: its numpy
augmentation and the frontend (both free of the GIL in their inner loops) run in turn, and a batch
took longer than tiny_conv's step (bench/RESULTS.md, Training)."""


class TrainingBatches:
    """Makes the batch of any step from the training clips held in memory.

    clips: int16 [n, samples] of the training partition (silence rows unused);
    labels: int [n]; device_grid: snap features to the device's int8 input
    grid (quantization-aware training); balanced: every label equally often (TrainConfig.balanced_batches);
    unknown_clips: int16 [m, samples], the pool that unknown
    examples are drawn from on every step (None keeps the partition's own).
    """

    def __init__(self, clips, labels, *, label_names, unknown_clips, backgrounds, feature_config,
                 augment_config, batch_size, seed, device_grid=False, balanced=False):
        self.clips = clips
        self.labels = np.asarray(labels)
        self.unknown_clips = unknown_clips
        self.backgrounds = backgrounds
        self.feature_config = feature_config
        self.augment_config = augment_config
        self.batch_size = batch_size
        self.seed = seed
        self.device_grid = device_grid
        self.silence_id = label_names.index(SILENCE_LABEL)
        self.unknown_id = label_names.index(UNKNOWN_LABEL)
        # balanced: each label's rows, so that a batch draws a label first, then one of its rows.
        self.rows_of_label = None
        if balanced:
            groups = (np.flatnonzero(self.labels == i) for i in range(len(label_names)))
            self.rows_of_label = [rows for rows in groups if len(rows)]

    def batch(self, step):
        """(features float32 [batch, frames*bins], labels int64 [batch]) of training step `step`."""
        rng = np.random.default_rng([self.seed, step])
        rows = self._rows(rng)
        labels = self.labels[rows]
        clips = self.clips[rows]
        unknown = labels == self.unknown_id
        if self.unknown_clips is not None and unknown.any():
            clips[unknown] = self.unknown_clips[rng.integers(len(self.unknown_clips), size=int(unknown.sum()))]
        audio = augment(
            clips,
            labels == self.silence_id,
            self.backgrounds,
            self.augment_config,
            sample_rate=self.feature_config.sample_rate,
            rng=rng,
        )
        features = compute_features(to_int16(audio), self.feature_config)
        if self.augment_config.time_masks or self.augment_config.frequency_masks:
            features = mask_features(features, self.augment_config, rng)
        features = features.reshape(self.batch_size, -1)
        if self.device_grid:
            features = snap_to_device_grid(features)
        return features, labels

    def _rows(self, rng):
        if self.rows_of_label is None:
            # Sampling with replacement, uniformly over the partition's examples, as the original.
            return rng.integers(len(self.labels), size=self.batch_size)
        groups = rng.integers(len(self.rows_of_label), size=self.batch_size)
        return np.array([self.rows_of_label[g][rng.integers(len(self.rows_of_label[g]))] for g in groups])

    def iterate(self, start_step, stop_step, *, prefetch=4, workers=PRODUCER_THREADS):
        """Yield batches of steps start_step..stop_step-1, in order, made ahead by `workers` threads."""
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="microkws-batches") as pool:
            pending = collections.deque()
            steps = iter(range(start_step, stop_step))
            try:
                for step in itertools.islice(steps, prefetch):
                    pending.append(pool.submit(self.batch, step))
                while pending:
                    batch = pending.popleft().result()
                    for step in itertools.islice(steps, 1):
                        pending.append(pool.submit(self.batch, step))
                    yield batch
            finally:
                for future in pending:
                    future.cancel()
