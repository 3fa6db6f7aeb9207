"""The mfcc and average modes equal the original input_data.py, clip by clip."""

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from microkws.errors import UserError
from microkws.features.config import FeatureConfig
from microkws.features.spectral import average_features, mfcc_features, power_spectrogram

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

# (preprocess, sample_rate, window_size_ms, window_stride_ms, feature_bin_count) -> expected shape
CONFIGS = {
    ("mfcc", 16000, 30.0, 10.0, 40): (98, 40),  # the tutorial's conv model with mfcc
    ("mfcc", 16000, 40.0, 20.0, 10): (49, 10),  # the "Hello Edge" DS-CNN recipe
    ("mfcc", 8000, 30.0, 20.0, 13): (49, 13),
    ("average", 16000, 30.0, 10.0, 40): (98, 43),  # 257 bins in groups of 6
    ("average", 16000, 30.0, 20.0, 40): (49, 43),
    ("average", 16000, 20.0, 10.0, 13): (99, 14),  # 257 bins in groups of 19
    ("average", 8000, 32.0, 16.0, 32): (61, 33),  # 129 bins in groups of 4: odd SAME padding
}


def make_config(preprocess, sample_rate, window_size_ms, window_stride_ms, feature_bin_count):
    return FeatureConfig(
        preprocess=preprocess,
        sample_rate=sample_rate,
        window_size_ms=window_size_ms,
        window_stride_ms=window_stride_ms,
        feature_bin_count=feature_bin_count,
    )


def original_features(clip, config):
    """One clip's features computed the way the original input_data.py graph did.

    decode_wav(desired_samples) pads or trims to [desired_samples, 1], the clip
    is clamped to [-1, 1], then audio_spectrogram and mfcc (with the op's own
    defaults) or tf.nn.pool run on that single clip.
    """
    wanted = config.desired_samples
    audio = np.zeros((wanted, 1), np.float32)
    audio[: min(wanted, len(clip)), 0] = clip[:wanted]
    audio = tf.clip_by_value(audio, -1.0, 1.0)
    spectrogram = tf.raw_ops.AudioSpectrogram(
        input=audio,
        window_size=config.window_size_samples,
        stride=config.window_stride_samples,
        magnitude_squared=True,
    )
    if config.preprocess == "mfcc":
        output = tf.raw_ops.Mfcc(
            spectrogram=spectrogram,
            sample_rate=config.sample_rate,
            dct_coefficient_count=config.fingerprint_width,
        )
    else:
        output = tf.nn.pool(
            input=tf.expand_dims(spectrogram, -1),
            window_shape=[1, config.average_window_width],
            strides=[1, config.average_window_width],
            pooling_type="AVG",
            padding="SAME",
        )
    return np.asarray(output).reshape(config.shape)


def compute(config, audio):
    return mfcc_features(audio, config) if config.preprocess == "mfcc" else average_features(audio, config)


def real_clips(sample_dir, count=12):
    """A few Speech Commands clips as float32 in [-1, 1] (int16 / 32768)."""
    paths = []
    for word in WORDS:
        paths += sorted((sample_dir / word).glob("*.wav"))[:2]
    assert len(paths) >= count, f"too few clips under {sample_dir}"
    return [soundfile.read(path, dtype="float32")[0] for path in paths[:count]]


def synthetic_clips(sample_rate):
    rng = np.random.default_rng(1234)
    t = np.arange(sample_rate) / sample_rate
    return [
        np.zeros(sample_rate, np.float32),  # silence
        (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        rng.uniform(-1, 1, sample_rate).astype(np.float32),  # full-scale noise
        (1.7 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32),  # beyond full scale: clamped
        rng.normal(0, 0.1, sample_rate // 3).astype(np.float32),  # short: zero-padded
        rng.normal(0, 0.1, sample_rate * 2).astype(np.float32),  # long: trimmed
    ]


def test_power_spectrogram_shape():
    config = make_config("average", 16000, 30.0, 10.0, 40)
    spectrogram = power_spectrogram(np.zeros(16000, np.float32), config)
    assert spectrogram.shape == (98, 257)
    assert spectrogram.dtype == np.float32


@pytest.mark.parametrize("key", list(CONFIGS), ids=lambda key: "-".join(map(str, key)))
def test_shapes_match_config(key):
    config = make_config(*key)
    assert config.shape == CONFIGS[key]
    clip = np.zeros(config.sample_rate, np.float32)
    single = compute(config, clip)
    assert single.shape == config.shape
    assert single.dtype == np.float32
    batch = compute(config, np.zeros((3, config.sample_rate), np.float32))
    assert batch.shape == (3, *config.shape)
    assert batch.dtype == np.float32
    assert compute(config, np.zeros((0, config.sample_rate), np.float32)).shape == (0, *config.shape)


@pytest.mark.parametrize("key", list(CONFIGS), ids=lambda key: "-".join(map(str, key)))
def test_synthetic_clips_equal_original(key):
    config = make_config(*key)
    clips = synthetic_clips(config.sample_rate)
    # Ragged clips cannot be stacked; each one goes through the API alone, and
    # the fixed-length ones also as one batch.
    for clip in clips:
        np.testing.assert_array_equal(compute(config, clip), original_features(clip, config))
    batch = np.stack([clip for clip in clips if len(clip) == config.sample_rate])
    expected = np.stack([original_features(clip, config) for clip in batch])
    np.testing.assert_array_equal(compute(config, batch), expected)


@pytest.mark.parametrize(
    "key",
    [("mfcc", 16000, 30.0, 10.0, 40), ("mfcc", 16000, 40.0, 20.0, 10), ("average", 16000, 30.0, 10.0, 40)],
    ids=lambda key: "-".join(map(str, key)),
)
def test_real_clips_batched_equal_original_one_at_a_time(key, sample_dir):
    config = make_config(*key)
    clips = np.stack(real_clips(sample_dir))
    expected = np.stack([original_features(clip, config) for clip in clips])
    actual = compute(config, clips)
    np.testing.assert_array_equal(actual, expected)
    # Not trivially equal: real speech gives varied, finite features.
    assert np.isfinite(actual).all()
    assert actual.std() > 0


def test_features_vary_with_the_audio(sample_dir):
    config = make_config("mfcc", 16000, 30.0, 10.0, 40)
    first, second = real_clips(sample_dir, 2)
    assert not np.allclose(mfcc_features(first, config), mfcc_features(second, config))


def test_average_equals_mean_of_bins(sample_dir):
    # 257 bins in groups of 6 under SAME padding: 42 full groups, then bins
    # 252..256 averaged over the 5 real bins only.
    config = make_config("average", 16000, 30.0, 10.0, 40)
    clip = real_clips(sample_dir, 1)[0]
    spectrogram = power_spectrogram(clip, config)
    pooled = average_features(clip, config)
    np.testing.assert_allclose(pooled[:, 0], spectrogram[:, 0:6].mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(pooled[:, 42], spectrogram[:, 252:257].mean(axis=1), rtol=1e-5)


def test_integer_audio_is_refused():
    config = make_config("mfcc", 16000, 30.0, 10.0, 40)
    with pytest.raises(TypeError, match="32768"):
        mfcc_features(np.zeros(16000, np.int16), config)


def test_bad_shape_is_refused():
    config = make_config("mfcc", 16000, 30.0, 10.0, 40)
    with pytest.raises(ValueError, match="shape"):
        mfcc_features(np.zeros((2, 2, 16000), np.float32), config)


def test_too_many_mfcc_coefficients_is_a_user_error():
    config = make_config("mfcc", 16000, 30.0, 10.0, 41)
    with pytest.raises(UserError, match="feature_bin_count 41"):
        mfcc_features(np.zeros(16000, np.float32), config)


def test_low_sample_rate_for_mfcc_is_a_user_error():
    config = make_config("mfcc", 4000, 30.0, 10.0, 13)
    with pytest.raises(UserError, match="8000 Hz"):
        mfcc_features(np.zeros(4000, np.float32), config)
