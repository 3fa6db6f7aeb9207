"""TFLM's audio frontend ("micro" features): int16 audio in, uint16 [frames, channels] out.

Bit-exact with TensorFlow's `audio_microfrontend` op, and so with the
micro_speech device code, for every option in `FeatureConfig`. The work is done
by a C extension (`_frontend.c`) that processes many clips per call and lets
Python threads share a batch between cores.

Units: audio is int16 PCM at `config.sample_rate`; a clip of S samples gives
1 + (S - window) // stride frames (none if S < window), window and stride in
samples as `config.window_size_samples` / `config.window_stride_samples`.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from microkws.errors import UserError
from microkws.features import _frontend
from microkws.features.config import FeatureConfig

# The device maps uint16 frontend output v to int8 as
# ((v * 256) + 333) // 666 - 128: the training scale v * 10/256 spans about
# 0-26, and 666 = round(25.6 * 26) spreads that over int8's 256 steps.
INT8_SCALE = 256
INT8_DIVISOR = 666
TRAINING_SCALE = 10.0 / 256.0
# One step of that int8 input in the training scale: (10/256) * (666/256) = 0.10162353515625.
INT8_INPUT_SCALE = TRAINING_SCALE * INT8_DIVISOR / INT8_SCALE

# Fewer clips than this per thread do not pay for handing them to a thread.
_MIN_CLIPS_PER_THREAD = 16
_CHUNKS_PER_THREAD = 4


def micro_features(audio, config=FeatureConfig(), *, threads=None):
    """Frontend features of int16 clips: uint16 [frames, channels] for one clip [samples],
    [n, frames, channels] for a batch [n, samples].

    Every clip starts from a fresh frontend (noise estimates at zero), as one call
    of TF's op per clip does. `threads` is how many cores share a batch (default:
    all this process may use).
    """
    audio = _as_int16(audio, "audio")
    if audio.ndim not in (1, 2):
        raise ValueError(f"audio must be [samples] or [n, samples], got shape {audio.shape}")
    batch = np.ascontiguousarray(audio.reshape(-1, audio.shape[-1]))
    plan = _plan(config)
    estimates = np.zeros((len(batch), plan.num_channels), np.uint32)
    features = _run(plan, batch, estimates, threads)
    return features[0] if audio.ndim == 1 else features


class MicroFrontend:
    """A frontend that keeps its state between calls, like the device listening.

    `process` takes audio in chunks of any length and returns the frames they
    complete: feeding a recording in pieces gives exactly what one call of TF's op
    on the whole recording gives. Leftover samples wait for the next chunk.
    """

    def __init__(self, config=FeatureConfig()):
        self.config = config
        self._plan = _plan(config)
        self.reset()

    def reset(self):
        """Forget buffered samples and zero the noise estimates (a fresh device)."""
        self._pending = np.zeros(0, np.int16)
        self._estimate = np.zeros((1, self._plan.num_channels), np.uint32)

    @property
    def noise_estimate(self):
        """Per-channel noise estimates, uint32 [channels] (fixed point, `smoothing_bits` fraction bits)."""
        return self._estimate[0].copy()

    @noise_estimate.setter
    def noise_estimate(self, values):
        values = np.asarray(values)
        if values.shape != (self._plan.num_channels,):
            raise ValueError(f"noise_estimate must have shape ({self._plan.num_channels},), got {values.shape}")
        if not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() > 0xFFFFFFFF:
            raise ValueError("noise_estimate must be integers in [0, 2**32)")
        self._estimate[0] = values

    @property
    def pending_samples(self):
        """Samples received but not yet consumed by a window step."""
        return len(self._pending)

    def process(self, samples):
        """uint16 [new_frames, channels] for the next int16 samples [n] of the stream."""
        samples = _as_int16(samples, "samples")
        if samples.ndim != 1:
            raise ValueError(f"samples must be one-dimensional, got shape {samples.shape}")
        buffer = np.concatenate([self._pending, samples])[None]
        frames = self._plan.frames(buffer.shape[1])
        features = np.zeros((1, frames, self._plan.num_channels), np.uint16)
        self._plan.run(buffer, features, self._estimate)
        self._pending = buffer[0, frames * self._plan.window_step :].copy()
        return features[0]


def to_int8(features):
    """The device's int8 model input from uint16 frontend features (any shape):
    clamp(((v * 256) + 333) // 666 - 128, -128, 127)."""
    values = np.asarray(features)
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"to_int8 expects integer frontend output, got {values.dtype}")
    scaled = (values.astype(np.int64) * INT8_SCALE + INT8_DIVISOR // 2) // INT8_DIVISOR - 128
    return np.clip(scaled, -128, 127).astype(np.int8)


def to_uint8(features):
    """The uint8 input of older firmware from uint16 frontend features: the int8 mapping plus 128."""
    return (to_int8(features).astype(np.int16) + 128).astype(np.uint8)


def to_training_scale(features, *, out=None):
    """float32 features in the scale the original models trained on: uint16 v * 10/256 (0 to ~26).
    `out`: a float32 array of the same shape to write them into."""
    return np.multiply(np.asarray(features), np.float32(TRAINING_SCALE), out=out, dtype=np.float32)


def snap_to_device_grid(features):
    """Training-scale micro features as the device's int8 input dequantises them: the grid of
    step INT8_INPUT_SCALE over [0, 255 steps]. Quantisation-aware runs train and validate on these."""
    return _snap_in_place(np.array(features, dtype=np.float32))


def training_values(features, *, device_grid=False, out=None):
    """to_training_scale of uint16 frontend output (any shape), then snap_to_device_grid with
    `device_grid`, in one array (`out` when given), so a batch producer writes its share of a pool
    without the copies between them."""
    out = to_training_scale(features, out=out)
    return _snap_in_place(out) if device_grid else out


def _snap_in_place(values):
    """snap_to_device_grid of float32 `values`, written over them."""
    np.divide(values, INT8_INPUT_SCALE, out=values)
    np.add(values, 0.5, out=values)
    np.floor(values, out=values)
    np.clip(values, 0, 255, out=values)
    np.multiply(values, INT8_INPUT_SCALE, out=values)
    return values


@lru_cache(maxsize=16)
def _plan(config):
    """The C tables of a configuration, built once."""
    try:
        return _frontend.Plan(
            sample_rate=config.sample_rate,
            window_size=config.window_size_samples,
            window_step=config.window_stride_samples,
            num_channels=config.feature_bin_count,
            **config.frontend_options(),
        )
    except ValueError as error:
        raise UserError(f"micro frontend settings: {error}") from error


def _run(plan, batch, estimates, threads):
    """uint16 [n, frames, channels] of int16 [n, samples], splitting the clips over threads."""
    n = len(batch)
    features = np.zeros((n, plan.frames(batch.shape[1]), plan.num_channels), np.uint16)
    threads = _available_cores() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    workers = max(1, min(threads, n // _MIN_CLIPS_PER_THREAD))
    if workers == 1:
        plan.run(batch, features, estimates)
        return features
    # A few chunks per thread, so a core slowed by other work takes fewer.
    chunks = min(workers * _CHUNKS_PER_THREAD, n // _MIN_CLIPS_PER_THREAD)
    bounds = np.linspace(0, n, chunks + 1).astype(int)
    parts = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    # Plan.run releases the GIL, so the chunks run on separate cores.
    jobs = [_pool(workers).submit(plan.run, batch[s], features[s], estimates[s]) for s in parts]
    for job in jobs:
        job.result()
    return features


@lru_cache(maxsize=4)
def _pool(workers):
    # Kept for the process, deliberately: a pool per call measured 9.5-11.9 ms per 100-clip batch against
    # 8.5-8.9 ms with this one (training featurises a batch every step). concurrent.futures joins its
    # threads at interpreter exit, so nothing outlives the process.
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="microkws-frontend")


def _available_cores():
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _as_int16(audio, name):
    audio = np.asarray(audio)
    if audio.dtype != np.int16:
        raise TypeError(f"{name} must be int16 PCM, got {audio.dtype} (use audio_to_int16 for float audio)")
    return audio
