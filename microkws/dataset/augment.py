"""Training augmentation: the original's time shift, background noise and silence from noise, plus
random gain, noise at a sampled signal-to-noise ratio, speed perturbation, overdriven (clipped) words,
frequency warping and SpecAugment-style masks (all off by default).

Functions take arrays and a numpy Generator and return arrays, so a run is
reproduced by its seed. Clips are float32 in [-1, 1], shape [n, samples].
"""

from dataclasses import asdict, dataclass

import numpy as np

from microkws.dataset import _mix
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
    gain_db: float = 0.0
    """Each word clip's level changes by a uniform random gain in [-gain_db, gain_db] decibels."""
    background_snr_db: tuple[float, float] | None = None
    """(low, high): noise is mixed in at a signal-to-noise ratio drawn uniformly in [low, high] dB of
    the clip's own level, instead of at a volume that ignores how loud the word is. None: the volume."""
    time_masks: int = 0
    """SpecAugment: how many bands of frames are blanked in each training example's features."""
    time_mask_frames: int = 0
    """Widest time mask, in frames (each mask's width is uniform in [0, time_mask_frames])."""
    frequency_masks: int = 0
    """SpecAugment: how many bands of channels are blanked."""
    frequency_mask_bins: int = 0
    """Widest frequency mask, in channels."""
    frontend_warmup_ms: float = 0.0
    """Micro features only: each example's frontend first hears up to this much (uniform) of the example's
    own background noise, so its noise estimates are as settled as a listening device's, and only the
    clip's frames are kept. 0: every clip from a fresh frontend, as the original trained."""
    speed_perturbation: float = 0.0
    """Each word clip plays at a speed drawn uniformly in [1 - s, 1 + s], pitch and tempo together (speed
    perturbation, as speech recognition and kws_streaming's resampling use it to mimic other voices), about
    the clip's centre, cropped or zero-padded to its length. 0: as recorded."""
    overdrive_frequency: float = 0.0
    """Share of word clips recorded too hot: amplified until their peak is a uniform [0, overdrive_db] dB
    above full scale, so the word is clipped as a microphone with its gain set too high clips it. 0: off."""
    overdrive_db: float = 20.0
    """How far past full scale an overdriven clip's peak goes, at most, in decibels."""
    frequency_warp: float = 0.0
    """Micro features only: each example's spectrum is stretched in frequency by a factor drawn uniformly in
    [1 - w, 1 + w], as a longer or shorter vocal tract moves a voice's formants (vocal tract length
    perturbation, applied to the mel channels; pitch and tempo stay). 0: off."""

    def __post_init__(self):
        if self.time_shift_ms < 0:
            raise UserError(f"time_shift_ms must not be negative, got {self.time_shift_ms}")
        if self.background_volume < 0 or self.silence_volume < 0:
            raise UserError("background_volume must not be negative")
        if not 0 <= self.background_frequency <= 1:
            raise UserError(f"background_frequency must be between 0 and 1, got {self.background_frequency}")
        if not 0 <= self.gain_db <= 40:
            raise UserError(f"gain_db must be from 0 to 40, got {self.gain_db}")
        if self.background_snr_db is not None and (len(self.background_snr_db) != 2
                                                   or self.background_snr_db[0] > self.background_snr_db[1]):
            raise UserError(f"background_snr_db must be (low, high) with low <= high, got {self.background_snr_db}")
        if not 0 <= self.speed_perturbation <= 0.5:
            raise UserError(f"speed_perturbation must be from 0 to 0.5, got {self.speed_perturbation}")
        if not 0 <= self.overdrive_frequency <= 1:
            raise UserError(f"overdrive_frequency must be between 0 and 1, got {self.overdrive_frequency}")
        if not 0 <= self.overdrive_db <= 40:
            raise UserError(f"overdrive_db must be from 0 to 40, got {self.overdrive_db}")
        if not 0 <= self.frequency_warp <= 0.3:
            raise UserError(f"frequency_warp must be from 0 to 0.3, got {self.frequency_warp}")
        if not 0 <= self.frontend_warmup_ms <= 10000:
            raise UserError(f"frontend_warmup_ms must be from 0 to 10000, got {self.frontend_warmup_ms}")
        for name in ("time_masks", "time_mask_frames", "frequency_masks", "frequency_mask_bins"):
            if not 0 <= getattr(self, name) <= 100:
                raise UserError(f"{name} must be from 0 to 100, got {getattr(self, name)}")

    def to_dict(self):
        return asdict(self)


def time_shift(clips, shifts):
    """Move each clip right by shifts[i] samples (left if negative), filling with zeros."""
    clips = np.asarray(clips)
    out = np.zeros_like(clips)
    for row, shift in enumerate(np.asarray(shifts)):
        _shift_into(out[row], clips[row], int(shift))
    return out


def _shift_into(out, clip, shift):
    length = len(clip)
    if shift >= 0:
        out[shift:] = clip[:length - shift]
    else:
        out[:length + shift] = clip[-shift:]


def change_speed(clip, speed):
    """`clip` played `speed` times as fast about its centre (sample i is the input at c + (i - c) x speed,
    linearly interpolated, zeros outside), the same length. Linear interpolation because speech sits well
    below the Nyquist rate of 16 kHz audio and this runs per example per step (about 0.1 ms a clip);
    1.0 returns the clip unchanged."""
    if speed == 1.0:
        return clip
    length = len(clip)
    centre = (length - 1) / 2
    positions = centre + (np.arange(length, dtype=np.float64) - centre) * speed
    return np.interp(positions, np.arange(length), clip, left=0.0, right=0.0).astype(clip.dtype, copy=False)


def _random_slice(backgrounds, length, rng):
    noise = backgrounds[rng.integers(len(backgrounds))]
    offset = rng.integers(0, len(noise) - length) if len(noise) > length else 0
    return noise[offset:offset + length]


def background_slices(backgrounds, count, length, rng):
    """`count` random `length`-sample slices of random background recordings, float32 [count, length]."""
    out = np.zeros((count, length), dtype=np.float32)
    if backgrounds:
        for row in range(count):
            piece = _random_slice(backgrounds, length, rng)
            out[row, :len(piece)] = piece
    return out


def augment(clips, is_silence, backgrounds, config, *, sample_rate, rng, lead_samples=0, int16=False):
    """Augment a training batch: shift, mix background, clip to [-1, 1].

    `clips` are float in [-1, 1] or int16 (scaled by 1/32768). `is_silence[i]`
    marks silence examples: their clip is ignored and they become background
    noise at a random volume in [0, silence_volume]. Other clips get noise
    with probability background_frequency.

    lead_samples: each row is that many samples longer, the clip at its end and the row's background
    noise (the same recording, level and stretch, or none) running back into the lead for a uniform
    0..lead_samples of it, zeros before: what a listening device heard before the window, from nothing
    (a fresh frontend) to the whole lead (AugmentConfig.frontend_warmup_ms). [n, lead + samples].

    int16: return int16 PCM, bit for bit `audio.to_int16` of the float result, for the frontend. The rows are
    then mixed in units of 1/32768: every step above is a product or sum, which scaling by a power of two
    leaves exact, and it saves to_int16's three passes over the batch (a batch is memory-bound here).
    """
    clips = np.asarray(clips)
    unit = np.float32(32768 if int16 else 1)
    scale = (np.float32(1 / 32768) if clips.dtype == np.int16 else np.float32(1)) * unit
    is_silence = np.asarray(is_silence, dtype=bool)
    count, length = clips.shape
    lead = int(lead_samples)
    max_shift = int(config.time_shift_ms * sample_rate / 1000)
    # The original draws from [-max_shift, max_shift): randint's upper bound is exclusive.
    shifts = rng.integers(-max_shift, max_shift, size=count) if max_shift > 0 else np.zeros(count, dtype=int)
    gains = _gains(config, count, rng)
    volumes = np.where(
        rng.random(count) < config.background_frequency,
        rng.uniform(0, config.background_volume, size=count),
        0.0,
    )
    volumes = np.where(is_silence, rng.uniform(0, config.silence_volume, size=count), volumes).astype(np.float32)
    snrs = None if config.background_snr_db is None else rng.uniform(*config.background_snr_db, size=count)
    # Heard before the window: a uniform share of the lead, so fresh and settled frontends both occur.
    heard = rng.integers(0, lead + 1, size=count) if lead else np.zeros(count, dtype=int)
    # Drawn last, and only when asked, so runs without it keep their random streams.
    speeds = (rng.uniform(1 - config.speed_perturbation, 1 + config.speed_perturbation, size=count)
              if config.speed_perturbation else np.ones(count))
    if config.overdrive_frequency:
        gains = gains * _overdrive(clips, is_silence, config, rng)
    draws = dict(shifts=shifts, gains=scale * gains, volumes=volumes, snrs=snrs, starts=lead - heard, speeds=speeds)
    if int16 and clips.dtype == np.int16 and snrs is None and not config.speed_perturbation:
        return _mix_in_c(clips, is_silence, backgrounds, draws, lead, unit, rng)
    out = _mix_in_numpy(clips, is_silence, backgrounds, draws, lead, unit, rng)
    if int16:  # clipping to the int16 range, then the cast's truncation: to_int16's trunc(x * 32768)
        return np.clip(out, -32768, 32767, out=out).astype(np.int16)
    return np.clip(out, -1.0, 1.0, out=out)


def _mix_in_numpy(clips, is_silence, backgrounds, draws, lead, unit, rng):
    """The rows of augment() as float32 [n, lead + samples], before clipping."""
    count, length = clips.shape
    # Row by row: slices and in-place adds beat whole-batch fancy indexing by several times.
    out = np.zeros((count, lead + length), dtype=np.float32)
    for row in range(count):
        if not is_silence[row]:
            clip = change_speed(clips[row] * draws["gains"][row], float(draws["speeds"][row]))
            _shift_into(out[row, lead:], clip, int(draws["shifts"][row]))
        if backgrounds and draws["volumes"][row] > 0:
            piece = _random_slice(backgrounds, lead + length, rng)
            volume = (draws["volumes"][row] * unit if draws["snrs"] is None or is_silence[row]
                      else _snr_volume(out[row, lead:], piece[lead:], draws["snrs"][row]))
            quiet = draws["starts"][row]
            out[row, quiet:len(piece)] += volume * piece[quiet:]
    return out


def _mix_in_c(clips, is_silence, backgrounds, draws, lead, unit, rng):
    """augment()'s int16 rows, bit for bit those of _mix_in_numpy then the clip and cast, in one pass per row
    (microkws/dataset/_mix.c); the noise slices are drawn here, in the same order, so the random stream
    is the same."""
    count, length = clips.shape
    volumes = draws["volumes"]
    noises = [None] * count
    if backgrounds:
        for row in np.flatnonzero(volumes > 0):
            noises[row] = _random_slice(backgrounds, lead + length, rng)
    out = np.empty((count, lead + length), dtype=np.int16)
    _mix.mix_rows(out, np.ascontiguousarray(clips), np.ascontiguousarray(~is_silence, dtype=np.uint8),
                  np.asarray(draws["shifts"], dtype=np.int64), np.asarray(draws["gains"], dtype=np.float32),
                  noises, np.asarray(draws["starts"], dtype=np.int64), (volumes * unit).astype(np.float32), lead)
    return out


def _gains(config, count, rng):
    if not config.gain_db:
        return np.ones(count, dtype=np.float32)
    return (10.0 ** (rng.uniform(-config.gain_db, config.gain_db, size=count) / 20)).astype(np.float32)


def _overdrive(clips, is_silence, config, rng):
    """Each clip's extra gain: for a share overdrive_frequency of the word clips, the factor that puts
    its peak a uniform [0, overdrive_db] dB above full scale (gain and background then clip it), else 1."""
    chosen = (rng.random(len(clips)) < config.overdrive_frequency) & ~is_silence
    past_full_scale = 10.0 ** (rng.uniform(0, config.overdrive_db, size=len(clips)) / 20)
    # Peaks in units of 1/32768 whatever the clips' type (exact for float clips made from int16), so int16
    # and float batches of the same audio get the same factors, bit for bit.
    # (np.abs would wrap int16's -32768 to itself.)
    peaks = np.maximum(clips.max(axis=1).astype(np.float64), -clips.min(axis=1).astype(np.float64))
    peaks *= 1.0 if clips.dtype == np.int16 else 32768.0
    drive = np.where(peaks > 0, 32768.0 * past_full_scale / np.maximum(peaks, 1e-12), 1.0)
    return np.where(chosen, np.maximum(drive, 1.0), 1.0).astype(np.float32)


def _snr_volume(clip, noise, snr_db):
    """The factor that puts `noise` `snr_db` below `clip`'s power (0 for silent noise)."""
    noise_power = float(np.mean(np.square(noise, dtype=np.float32)))
    if noise_power <= 0:
        return 0.0
    clip_power = float(np.mean(np.square(clip, dtype=np.float32)))
    return float(np.sqrt(clip_power / noise_power) * 10.0 ** (-snr_db / 20))


def mask_features(features, config, rng):
    """SpecAugment's time and frequency masks: [n, frames, bins] features with random bands set to 0
    (the frontend's floor, what silence looks like). A new array; `features` is not changed."""
    out = np.array(features, dtype=np.float32, copy=True)
    count, frames, bins = out.shape
    for axis, masks, widest, size in ((1, config.time_masks, config.time_mask_frames, frames),
                                      (2, config.frequency_masks, config.frequency_mask_bins, bins)):
        if not masks or not widest:
            continue
        widths = rng.integers(0, min(widest, size) + 1, size=(count, masks))
        starts = rng.integers(0, size - widths + 1)
        for row in range(count):
            for start, width in zip(starts[row], widths[row]):
                if axis == 1:
                    out[row, start:start + width, :] = 0
                else:
                    out[row, :, start:start + width] = 0
    return out


def warp_frequencies(features, factors, *, lower_hz, upper_hz):
    """[n, frames, channels] mel-spaced features (the micro frontend's filterbank: channel centres evenly
    spaced in mel between lower_hz and upper_hz) with example i's spectrum stretched by factors[i]: each
    channel takes the value found at its centre frequency / factor, interpolated linearly between the two
    nearest channels in mel, the edge channels held past the band. A factor above 1 moves formants up, as a
    shorter vocal tract does. A new float32 array.

    Each example's interpolation is a [channels, channels] matrix with two weights a column, applied as one
    batched matrix product: seven times faster than gathering the two neighbours of every value."""
    features = np.asarray(features, dtype=np.float32)
    channels = features.shape[-1]
    low, high = _mel(lower_hz), _mel(upper_hz)
    spacing = (high - low) / (channels + 1)
    centres_hz = 700.0 * np.expm1((low + spacing * np.arange(1, channels + 1)) / 1127.0)
    source = (_mel(centres_hz[None, :] / np.asarray(factors, dtype=np.float64)[:, None]) - low) / spacing - 1
    source = np.clip(source, 0, channels - 1)
    left = np.minimum(np.floor(source).astype(np.intp), channels - 2)
    weight = (source - left).astype(np.float32)
    rows, columns = np.arange(len(source))[:, None], np.arange(channels)[None, :]
    interpolation = np.zeros((len(source), channels, channels), np.float32)
    interpolation[rows, left, columns] = 1 - weight
    interpolation[rows, left + 1, columns] += weight
    return np.matmul(features, interpolation)


def _mel(hz):
    """The micro frontend's mel scale (TFLM's FreqToMel)."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def silence_examples(backgrounds, count, length, *, rng, volume=1.0):
    """Fixed silence examples for evaluation: noise at a random volume in [0, volume]."""
    volumes = rng.uniform(0, volume, size=count).astype(np.float32)
    return np.clip(volumes[:, None] * background_slices(backgrounds, count, length, rng), -1.0, 1.0)
