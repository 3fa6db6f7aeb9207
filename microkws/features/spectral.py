"""The original tutorial's other feature modes: `mfcc` and `average`.

Both start from TensorFlow's `AudioSpectrogram` op (Hann window, FFT of the
next power of two, power spectrum), exactly as the original `input_data.py`
did, and then either take `Mfcc` of it or average-pool neighbouring bins.

The TF ops are called once per batch, not once per clip: `AudioSpectrogram`
treats the columns of its [samples, channels] input as independent signals,
so a batch of n clips becomes one [samples, n] tensor and comes out as
[n, frames, bins], with every clip's features bit-identical to what the op
gives for that clip alone (tests/test_spectral_features.py checks this).
"""

import numpy as np

from microkws.errors import UserError

# Settings of the original's `audio_ops.mfcc` call, which left them at the op's
# defaults. They are fixed here so that features stay comparable with models
# trained by the original scripts.
MFCC_LOWER_FREQUENCY_LIMIT = 20.0
"""Lowest edge of the mel filterbank in Hz."""
MFCC_UPPER_FREQUENCY_LIMIT = 4000.0
"""Highest edge of the mel filterbank in Hz."""
MFCC_FILTERBANK_CHANNEL_COUNT = 40
"""Mel bands; the DCT keeps at most this many coefficients."""


def power_spectrogram(audio_float, config):
    """Power spectrogram of one clip [samples] or a batch [n, samples].

    `audio_float` holds samples in [-1, 1] at `config.sample_rate` (int16
    samples divided by 32768). Clips are zero-padded or trimmed to
    `config.desired_samples`. Returns float32 [..., frames, fft_bin_count].
    """
    clips, single = _as_batch(audio_float, config)
    spectrogram = _spectrogram_op(clips, config).numpy()
    return spectrogram[0] if single else spectrogram


def mfcc_features(audio_float, config):
    """MFCCs of one clip [samples] or a batch [n, samples], as the original's mfcc mode.

    `audio_float` holds samples in [-1, 1] at `config.sample_rate`; clips are
    zero-padded or trimmed to `config.desired_samples`. Returns float32
    [..., config.spectrogram_length, config.feature_bin_count].
    """
    from microkws._tensorflow import tf

    _check_mfcc_config(config)
    clips, single = _as_batch(audio_float, config)
    spectrogram = _spectrogram_op(clips, config)
    mfcc = tf.raw_ops.Mfcc(
        spectrogram=spectrogram,
        sample_rate=np.int32(config.sample_rate),
        upper_frequency_limit=MFCC_UPPER_FREQUENCY_LIMIT,
        lower_frequency_limit=MFCC_LOWER_FREQUENCY_LIMIT,
        filterbank_channel_count=MFCC_FILTERBANK_CHANNEL_COUNT,
        dct_coefficient_count=config.feature_bin_count,
    ).numpy()
    return mfcc[0] if single else mfcc


def average_features(audio_float, config):
    """Bin-averaged power spectrogram of one clip [samples] or a batch [n, samples].

    The original's average mode: groups of `config.average_window_width`
    neighbouring FFT bins are averaged. When the bins do not divide evenly,
    the pooling pads as TensorFlow's "SAME" padding does and averages only
    the real bins, so the last group (and, for odd padding, the first) is
    narrower. Returns float32 [..., config.spectrogram_length, bins], where
    bins is `config.fingerprint_width` for a config whose preprocess is
    "average".
    """
    from microkws._tensorflow import tf

    clips, single = _as_batch(audio_float, config)
    spectrogram = _spectrogram_op(clips, config)
    width = config.average_window_width
    pooled = tf.nn.avg_pool2d(
        spectrogram[..., np.newaxis],
        ksize=(1, width),
        strides=(1, width),
        padding="SAME",
    )[..., 0].numpy()
    return pooled[0] if single else pooled


def _as_batch(audio_float, config):
    """Return float32 [n, desired_samples] clipped to [-1, 1], and whether the input was one clip."""
    audio = np.asarray(audio_float)
    if not np.issubdtype(audio.dtype, np.floating):
        # Integer PCM passed by mistake would give features 32768x too large
        # in amplitude, silently; refuse it instead.
        raise TypeError(f"expected float samples in [-1, 1], got dtype {audio.dtype}; divide int16 audio by 32768")
    if audio.ndim not in (1, 2):
        raise ValueError(f"expected one clip [samples] or a batch [n, samples], got shape {audio.shape}")
    single = audio.ndim == 1
    clips = audio[np.newaxis] if single else audio
    clips = clips.astype(np.float32, copy=False)
    wanted = config.desired_samples
    if clips.shape[1] < wanted:
        clips = np.pad(clips, ((0, 0), (0, wanted - clips.shape[1])))
    else:
        clips = clips[:, :wanted]
    # The original clamps to [-1, 1] right before the spectrogram (after
    # mixing in background noise), so louder-than-full-scale input is clipped
    # here too rather than passed through.
    return np.clip(clips, -1.0, 1.0), single


def _spectrogram_op(clips, config):
    """[n, samples] -> float32 tf.Tensor [n, frames, fft_bin_count], in one op call."""
    from microkws._tensorflow import tf

    # AudioSpectrogram wants [samples, channels] and returns [channels, frames, bins].
    return tf.raw_ops.AudioSpectrogram(
        input=np.ascontiguousarray(clips.T),
        window_size=config.window_size_samples,
        stride=config.window_stride_samples,
        magnitude_squared=True,
    )


def _check_mfcc_config(config):
    # Both limits come from the Mfcc op: past them it either fails with an
    # opaque error or logs and returns meaningless values.
    if config.feature_bin_count > MFCC_FILTERBANK_CHANNEL_COUNT:
        raise UserError(
            f"feature_bin_count {config.feature_bin_count} is more MFCC coefficients than the "
            f"{MFCC_FILTERBANK_CHANNEL_COUNT} mel bands they come from; use at most {MFCC_FILTERBANK_CHANNEL_COUNT}"
        )
    if config.sample_rate < 2 * MFCC_UPPER_FREQUENCY_LIMIT:
        raise UserError(
            f"the mfcc mode needs sample_rate of at least {int(2 * MFCC_UPPER_FREQUENCY_LIMIT)} Hz "
            f"(its filterbank reaches {int(MFCC_UPPER_FREQUENCY_LIMIT)} Hz), got {config.sample_rate}"
        )
