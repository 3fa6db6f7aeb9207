"""Training batches made on the fly from freshly augmented clips, in background threads.

The original spent most of each step computing features one clip per session call. Here examples are
augmented (random draws in numpy, the mix in C: dataset.augment) and featurised by the batched frontend
in background threads while the model trains. Batch `step` depends only on (seed, step), so a resumed
run sees exactly the batches an uninterrupted one would.

Fresh draws every step, or a pool: featurising a 100-clip batch costs more CPU than tiny_conv's whole
step, yet on a small data set a long recipe draws each clip many times (the tutorial's 18,000 steps on
the shared sample: each keyword clip about 3,000 times, each clip of another word about 190). So each
label's examples are used `echo` times (data echoing, Choi et al. 2019), the label's own: as many as
still give each of its clips at least MIN_VARIANTS distinct augmentations over the run (the issue's bar
for a pre-augmented pool), at most MAX_ECHO. Every POOL_STEPS steps a pool is made for them, and those
steps draw from it in a random order. With one echo for all labels, the tutorial's other words got a third
of their variants and the model took more of them for keywords (bench/RESULTS.md, Training); per label,
on the sample the keywords and silence are echoed 4 times and the other words, drawn from 1,587 clips,
stay fresh. A large data set or a short run gets echo 1 everywhere: a fresh batch every step, as before.
"""

import collections
import concurrent.futures
import itertools
import threading

import numpy as np

from microkws.dataset.augment import augment, mask_features, warp_frequencies
from microkws.dataset.labels import SILENCE_LABEL, UNKNOWN_LABEL
from microkws.features import compute_features
from microkws.features.micro import snap_to_device_grid

PRODUCER_THREADS = 2
"""Threads making examples ahead of the step. With one, the step waited on it: its numpy
augmentation and the frontend (both free of the GIL in their inner loops) run in turn, and a batch
took longer than tiny_conv's step (bench/RESULTS.md, Training)."""

MIN_VARIANTS = 100
"""Distinct augmentations each clip of a label must get over a run before its examples are reused (the
issue asks 50 of a pool; twice that, since reuse is what cost the other words above)."""
MAX_ECHO = 4
"""Most uses of one example: data echoing's gains flatten and its cost to accuracy grows beyond a few."""
POOL_STEPS = 100
"""Steps that share one pool of examples (made ahead while the previous pool is used)."""


class TrainingBatches:
    """Makes the batch of any step from the training clips held in memory.

    clips: int16 [n, samples] of the training partition (silence rows unused);
    labels: int [n]; device_grid: snap features to the device's int8 input
    grid (quantization-aware training); balanced: every label equally often (TrainConfig.balanced_batches);
    unknown_clips: int16 [m, samples], the pool that unknown
    examples are drawn from on every step (None keeps the partition's own);
    total_steps: the run's length, which sets `echo` (None: 1, fresh batches every step).
    """

    def __init__(self, clips, labels, *, label_names, unknown_clips, backgrounds, feature_config,
                 augment_config, batch_size, seed, device_grid=False, balanced=False, total_steps=None):
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
        draws = {} if total_steps is None else self.draws_per_clip(total_steps)
        self.echo_of_label = {label: echo_factor(count) for label, count in draws.items()}
        self.echo = max(self.echo_of_label.values(), default=1)
        self.lead_frames = warmup_frames(augment_config, feature_config)
        self._pool_lock = threading.Lock()
        self._last_pool = (None, None)

    def draws_per_clip(self, total_steps):
        """{label: expected draws of one of its clips over `total_steps` steps}. Silence examples are
        noise alone, so their "clips" are the silence rows; unknown examples come from the unknown pool
        when there is one."""
        if self.rows_of_label is None:
            shares = {int(label): np.mean(self.labels == label) for label in np.unique(self.labels)}
        else:
            shares = {int(self.labels[rows[0]]): 1 / len(self.rows_of_label) for rows in self.rows_of_label}
        draws = {}
        for label, share in shares.items():
            clips = np.sum(self.labels == label)
            if label == self.unknown_id and self.unknown_clips is not None:
                clips = len(self.unknown_clips)
            draws[label] = total_steps * self.batch_size * share / max(clips, 1)
        return draws

    def batch(self, step):
        """(features float32 [batch, frames*bins], labels int64 [batch]) of training step `step`."""
        if self.echo == 1:
            rng = np.random.default_rng([self.seed, step])
            return self.examples(self._rows(rng, self.batch_size), rng)
        features, labels, slots = self._pool(step // POOL_STEPS)
        return features[slots[step % POOL_STEPS]], labels[slots[step % POOL_STEPS]]

    def examples(self, rows, rng, out=None):
        """Freshly augmented and featurised examples of training rows `rows`: (features, labels).
        `out`: a float32 [len(rows), frames * bins] array the features are written into."""
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
            lead_samples=self.lead_frames * self.feature_config.window_stride_samples,
            int16=True,
        )
        shape = (len(rows), *self.feature_config.shape)
        if out is None:
            out = np.empty((len(rows), self.feature_config.fingerprint_size), np.float32)
        # Masks set features to 0, which the device grid keeps, so masking after snapping is the same.
        features = compute_features(audio, self.feature_config, device_grid=self.device_grid,
                                    skip_frames=self.lead_frames, out=out.reshape(shape))
        if self.augment_config.frequency_warp:
            features[...] = self._warp(features, rng)
        if self.augment_config.time_masks or self.augment_config.frequency_masks:
            features[...] = mask_features(features, self.augment_config, rng)
        return out, labels

    def _warp(self, features, rng):
        """AugmentConfig.frequency_warp: each example stretched by its own drawn factor, back on the device
        grid when training for it (interpolated values fall between its steps)."""
        spread = self.augment_config.frequency_warp
        factors = rng.uniform(1 - spread, 1 + spread, size=len(features))
        warped = warp_frequencies(features, factors, lower_hz=self.feature_config.lower_band_limit,
                                  upper_hz=self.feature_config.upper_band_limit)
        return snap_to_device_grid(warped) if self.device_grid else warped

    def _rows(self, rng, count):
        if self.rows_of_label is None:
            # Sampling with replacement, uniformly over the partition's examples, as the original.
            return rng.integers(len(self.labels), size=count)
        groups = rng.integers(len(self.rows_of_label), size=count)
        return np.array([self.rows_of_label[g][rng.integers(len(self.rows_of_label[g]))] for g in groups])

    def _pool(self, pool, executor=None):
        """(features, labels, slots) of pool number `pool`: the examples made for its POOL_STEPS steps and,
        for each step, the [batch] rows of them it uses. The steps' rows are drawn as without echo; then
        each label's first 1/echo of them get a fresh example, which the label's slots use `echo` times in
        a random order. The last pool made is kept."""
        with self._pool_lock:
            if self._last_pool[0] == pool:
                return self._last_pool[1]
        rng = np.random.default_rng([self.seed, pool, 0])
        rows = self._rows(rng, POOL_STEPS * self.batch_size)
        made_rows, source = [], np.empty(len(rows), dtype=np.int64)
        for label in np.unique(self.labels[rows]):
            slots = np.flatnonzero(self.labels[rows] == label)
            echo = self.echo_of_label.get(int(label), 1)
            fresh = slots[:-(-len(slots) // echo)]
            uses = rng.permutation(np.tile(np.arange(len(fresh)), echo))[:len(slots)]
            source[slots] = len(made_rows) + uses
            made_rows.extend(rows[fresh])
        made_rows = np.asarray(made_rows)
        # Batch-sized parts, each from its own seed, so the threads can share them; each writes its
        # share of one array.
        features = np.empty((len(made_rows), self.feature_config.fingerprint_size), np.float32)
        parts = [(made_rows[start:start + self.batch_size], np.random.default_rng([self.seed, pool, part + 1]),
                  features[start:start + self.batch_size])
                 for part, start in enumerate(range(0, len(made_rows), self.batch_size))]
        made = list(executor.map(lambda part: self.examples(*part), parts) if executor else
                    (self.examples(*part) for part in parts))
        labels = np.concatenate([part_labels for _, part_labels in made])
        result = (features, labels, source.reshape(POOL_STEPS, self.batch_size))
        with self._pool_lock:
            self._last_pool = (pool, result)
        return result

    def iterate(self, start_step, stop_step, *, prefetch=4, workers=PRODUCER_THREADS):
        """Yield batches of steps start_step..stop_step-1, in order, made ahead by `workers` threads."""
        if start_step >= stop_step:
            return
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="microkws-batches") as executor:
            if self.echo == 1:
                yield from _in_order(executor, self.batch, range(start_step, stop_step), prefetch)
                return
            # A pool is made by all the threads while the previous one is used.
            pools = range(start_step // POOL_STEPS, (stop_step - 1) // POOL_STEPS + 1)
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="microkws-pools") as ahead:
                made = _in_order(ahead, lambda number: self._pool(number, executor), pools, 1)
                try:
                    for pool, (features, labels, slots) in zip(pools, made):
                        for step in range(max(start_step, pool * POOL_STEPS),
                                          min(stop_step, (pool + 1) * POOL_STEPS)):
                            rows = slots[step % POOL_STEPS]
                            yield features[rows], labels[rows]
                finally:
                    made.close()


def warmup_frames(augment_config, feature_config):
    """Frontend frames each example's warm-up lasts (AugmentConfig.frontend_warmup_ms in whole strides, so
    the clip's frames fall where a fresh frontend puts them). Only the micro frontend carries state from
    one window to the next; the other modes compute each window from its own audio, so they get none."""
    if feature_config.preprocess != "micro":
        return 0
    return int(round(augment_config.frontend_warmup_ms / feature_config.window_stride_ms))


def echo_factor(draws_per_clip):
    """How many times each made example is used: as many as keep MIN_VARIANTS distinct augmentations of
    every clip, at most MAX_ECHO, at least 1."""
    return int(max(1, min(MAX_ECHO, draws_per_clip // MIN_VARIANTS)))


def _in_order(executor, make, items, prefetch):
    """make(item) for each item, in order, at most `prefetch` ahead of the consumer."""
    pending = collections.deque()
    items = iter(items)
    try:
        for item in itertools.islice(items, prefetch):
            pending.append(executor.submit(make, item))
        while pending:
            result = pending.popleft().result()
            for item in itertools.islice(items, 1):
                pending.append(executor.submit(make, item))
            yield result
    finally:
        for future in pending:
            future.cancel()
