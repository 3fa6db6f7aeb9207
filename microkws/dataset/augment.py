"""Training augmentation, as the original: time shift, background noise, silence from noise.

Functions take arrays and a numpy Generator and return arrays, so a run is
reproduced by its seed. Clips are float32 in [-1, 1], shape [n, samples].
"""

from dataclasses import asdict, dataclass

import numpy as np

from microkws.errors import UserError


@dataclass(frozen=True)
class AugmentConfig:
    """How training clips are varied. Validation and test clips are never augmented."""

    time_shift_ms: float = 100.0
    """Clips move by a uniform random shift in [-time_shift_ms, time_shift_ms), zero-padded."""
    background_volume: float = 0.1
    """Background noise is mixed in at a uniform volume in [0, background_volume]."""
    background_frequency: float = 0.8
    """Share of training clips that get background noise."""
    silence_volume: float = 1.0
    """Silence examples are background noise at a uniform volume in [0, silence_volume]."""

    def __post_init__(self):
        if self.time_shift_ms < 0:
            raise UserError(f"time_shift_ms must not be negative, got {self.time_shift_ms}")
        if self.background_volume < 0 or self.silence_volume < 0:
            raise UserError("background_volume must not be negative")
        if not 0 <= self.background_frequency <= 1:
            raise UserError(f"background_frequency must be between 0 and 1, got {self.background_frequency}")

    def to_dict(self):
        return asdict(self)


def time_shift(clips, shifts):
    """Move each clip right by shifts[i] samples (left if negative), filling with zeros."""
    clips = np.asarray(clips)
    length = clips.shape[-1]
    source = np.arange(length)[None, :] - np.asarray(shifts)[:, None]
    inside = (source >= 0) & (source < length)
    shifted = np.take_along_axis(clips, np.clip(source, 0, length - 1), axis=-1)
    return np.where(inside, shifted, 0).astype(clips.dtype, copy=False)


def background_slices(backgrounds, count, length, rng):
    """`count` random `length`-sample slices of random background recordings, float32 [count, length]."""
    out = np.zeros((count, length), dtype=np.float32)
    if not backgrounds or count == 0:
        return out
    choices = rng.integers(len(backgrounds), size=count)
    for row, choice in enumerate(choices):
        noise = backgrounds[choice]
        offset = rng.integers(0, len(noise) - length) if len(noise) > length else 0
        piece = noise[offset:offset + length]
        out[row, :len(piece)] = piece
    return out


def augment(clips, is_silence, backgrounds, config, *, sample_rate, rng):
    """Augment a training batch: shift, mix background, clip to [-1, 1].

    `is_silence[i]` marks silence examples: their clip is ignored and they
    become background noise at a random volume in [0, silence_volume].
    Other clips get noise with probability background_frequency.
    """
    clips = np.asarray(clips, dtype=np.float32)
    is_silence = np.asarray(is_silence, dtype=bool)
    count, length = clips.shape
    max_shift = int(config.time_shift_ms * sample_rate / 1000)
    if max_shift > 0:
        # The original draws from [-max_shift, max_shift): randint's upper bound is exclusive.
        clips = time_shift(clips, rng.integers(-max_shift, max_shift, size=count))
    volumes = np.where(
        rng.random(count) < config.background_frequency,
        rng.uniform(0, config.background_volume, size=count),
        0.0,
    )
    volumes = np.where(is_silence, rng.uniform(0, config.silence_volume, size=count), volumes)
    noise = background_slices(backgrounds, count, length, rng)
    foreground = np.where(is_silence[:, None], 0.0, clips)
    mixed = foreground + volumes[:, None].astype(np.float32) * noise
    return np.clip(mixed, -1.0, 1.0).astype(np.float32)


def silence_examples(backgrounds, count, length, *, rng, volume=1.0):
    """Fixed silence examples for evaluation: noise at a random volume in [0, volume]."""
    volumes = rng.uniform(0, volume, size=count).astype(np.float32)
    return np.clip(volumes[:, None] * background_slices(backgrounds, count, length, rng), -1.0, 1.0)
