"""The training recipe's pieces: gain, noise at a signal-to-noise ratio, SpecAugment masks, label
smoothing, AdamW with warm-up and cosine decay, and the checkpoint metric."""

import numpy as np
import pytest

from microkws.dataset.augment import AugmentConfig, augment, mask_features, warp_frequencies
from microkws.errors import UserError
from microkws.train.config import TrainConfig


def tone(count=4, length=16000, amplitude=0.1):
    t = np.arange(length) / 16000
    return np.tile(amplitude * np.sin(2 * np.pi * 440 * t), (count, 1)).astype(np.float32)


def plain(**fields):
    """No shift, no noise: only what the test turns on."""
    return AugmentConfig(time_shift_ms=0, background_frequency=0, **fields)


def test_gain_scales_each_clip_within_its_range():
    clips = tone(200)
    out = augment(clips, np.zeros(200, bool), [], plain(gain_db=6), sample_rate=16000,
                  rng=np.random.default_rng(0))
    gains_db = 20 * np.log10(np.abs(out).max(axis=1) / np.abs(clips).max(axis=1))
    assert gains_db.min() >= -6.01 and gains_db.max() <= 6.01
    assert gains_db.max() - gains_db.min() > 8, "gains should spread over most of the range"
    unchanged = augment(clips, np.zeros(200, bool), [], plain(), sample_rate=16000, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(unchanged, clips)


def test_overdrive_clips_a_share_of_the_words_by_the_drawn_amount():
    """overdrive_frequency: about that share of word clips is amplified until its peak is 0..overdrive_db
    past full scale, then clipped (the rows' flat tops); silence examples and the other clips are as before."""
    clips = tone(400, amplitude=0.1)
    is_silence = np.arange(400) % 4 == 0
    config = plain(overdrive_frequency=0.5, overdrive_db=12)
    out = augment(clips, is_silence, [], config, sample_rate=16000, rng=np.random.default_rng(0))
    clipped = (np.abs(out) >= 1.0).mean(axis=1)
    words = ~is_silence
    assert np.all(clipped[is_silence] == 0) and np.all(out[is_silence] == 0)
    driven = words & (clipped > 0)
    assert 0.4 < driven.sum() / words.sum() < 0.6
    np.testing.assert_array_equal(out[words & ~driven], clips[words & ~driven])
    # A sine whose peak is D dB past full scale spends 1 - (2 / pi) arcsin(10^(-D / 20)) of its time clipped.
    most = 1 - 2 / np.pi * np.arcsin(10 ** (-12 / 20))
    assert clipped[driven].max() <= most + 0.01 and clipped[driven].max() > 0.7 * most
    assert clipped[driven].std() > 0.05, "the amount past full scale is drawn, not fixed"
    silent = augment(clips, is_silence, [], plain(), sample_rate=16000, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(silent[words], clips[words])


def test_noise_at_a_signal_to_noise_ratio():
    clips = tone(50, amplitude=0.05)
    noise = [np.random.default_rng(1).normal(0, 0.3, 48000).astype(np.float32)]
    config = AugmentConfig(time_shift_ms=0, background_frequency=1, background_snr_db=(10, 10))
    out = augment(clips, np.zeros(50, bool), noise, config, sample_rate=16000, rng=np.random.default_rng(0))
    added = out - clips
    snr = 10 * np.log10(np.mean(clips ** 2, axis=1) / np.mean(added ** 2, axis=1))
    np.testing.assert_allclose(snr, 10, atol=0.2)
    # A quieter word gets quieter noise: the ratio, not the volume, is what is drawn.
    quiet = augment(clips / 10, np.zeros(50, bool), noise, config, sample_rate=16000, rng=np.random.default_rng(0))
    np.testing.assert_allclose(np.std(quiet - clips / 10), np.std(added) / 10, rtol=0.05)
    # Silence examples keep their volume draw (their "clip" is nothing).
    silence = augment(clips, np.ones(50, bool), noise, config, sample_rate=16000, rng=np.random.default_rng(0))
    assert np.std(silence) > 10 * np.std(added)


def test_masks_blank_bands_of_frames_and_channels():
    features = np.random.default_rng(0).uniform(1, 26, (300, 49, 40)).astype(np.float32)
    config = AugmentConfig(time_masks=2, time_mask_frames=5, frequency_masks=1, frequency_mask_bins=4)
    masked = mask_features(features, config, np.random.default_rng(0))
    assert masked.shape == features.shape and features.min() >= 1, "the input must not change"
    zero_frames = (masked == 0).all(axis=2).sum(axis=1)
    zero_channels = (masked == 0).all(axis=1).sum(axis=1)
    assert zero_frames.max() <= 10 and zero_channels.max() <= 4
    assert zero_frames.mean() > 2 and zero_channels.mean() > 1
    untouched = (masked != 0) == (features != 0)
    assert untouched.mean() > 0.75
    np.testing.assert_array_equal(masked[masked != 0], features[masked != 0])


def test_frequency_warp_moves_a_channel_to_where_the_stretched_frequency_lies():
    """A spectrum stretched by a factor: energy at channel c's centre frequency f shows up where f x factor
    lies on the filterbank's mel scale, between two channels in proportion; 1 changes nothing."""
    features = np.zeros((3, 2, 40), np.float32)
    features[:, :, 20] = 10
    warped = warp_frequencies(features, [1.0, 1.1, 0.9], lower_hz=125, upper_hz=7500)
    assert warped.shape == features.shape and features[0, 0, 20] == 10, "the input must not change"
    np.testing.assert_allclose(warped[0], features[0], atol=1e-5)
    mel = lambda hz: 1127 * np.log1p(hz / 700)
    spacing = (mel(7500) - mel(125)) / 41
    centre = 700 * np.expm1((mel(125) + 21 * spacing) / 1127)
    for row, factor in ((1, 1.1), (2, 0.9)):
        expected = (mel(centre * factor) - mel(125)) / spacing - 1
        found = (warped[row, 0] * np.arange(40)).sum() / warped[row, 0].sum()
        assert abs(found - expected) < 0.15 and (found > 20) == (factor > 1)
    # Past the band's edge the edge channel is held: a flat spectrum stays flat.
    flat = np.full((2, 3, 40), 7.0, np.float32)
    np.testing.assert_allclose(warp_frequencies(flat, [0.8, 1.2], lower_hz=125, upper_hz=7500), 7.0)


@pytest.mark.parametrize("fields, message", [
    (dict(gain_db=-1), "gain_db"),
    (dict(frequency_warp=0.5), "frequency_warp"),
    (dict(background_snr_db=(20, 5)), "background_snr_db"),
    (dict(time_masks=-1), "time_masks"),
    (dict(overdrive_frequency=1.5), "overdrive_frequency"),
    (dict(overdrive_db=50), "overdrive_db"),
])
def test_bad_augment_settings(fields, message):
    with pytest.raises(UserError, match=message):
        AugmentConfig(**fields)


def test_warmup_and_cosine_schedule():
    config = TrainConfig(how_many_training_steps=(1000,), learning_rate=(0.01,), learning_rate_schedule="cosine",
                         warmup_steps=100)
    rates = [config.learning_rate_at(step) for step in range(1000)]
    assert rates[0] == pytest.approx(0.0001) and rates[99] == pytest.approx(0.01)
    assert rates[550] == pytest.approx(0.005) and rates[-1] < 1e-6
    assert all(a <= b for a, b in zip(rates[:100], rates[1:100])) and all(a >= b for a, b in zip(rates[100:], rates[101:]))
    # The original's phases are unchanged.
    original = TrainConfig()
    assert original.learning_rate_at(14999) == 0.001 and original.learning_rate_at(15000) == 0.0001


@pytest.mark.parametrize("fields, message", [
    (dict(learning_rate_schedule="cosine"), "one --learning_rate"),
    (dict(warmup_steps=10), "cosine"),
    (dict(weight_decay=0.01), "adamw"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(checkpoint_metric="loss"), "checkpoint_metric"),
    (dict(weight_scales="per_layer"), "unknown weight_scales 'per_layer'; choose one of per_channel, per_tensor"),
])
def test_bad_recipe_settings(fields, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(**fields)


def test_label_smoothing_and_adamw_decay_reach_the_step():
    import keras

    from microkws.models import build_model
    from microkws.train.steps import make_optimizer, make_train_step

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(0, 26, (8, 1960)).astype(np.float32)
    labels = np.zeros(8, dtype=np.int64)
    losses = {}
    for smoothing in (0.0, 0.2):
        model = build_model("tiny_conv", input_shape=(49, 40), label_count=4, dropout_rate=0.0)
        model.get_layer("logits").bias.assign(np.array([20.0, 0, 0, 0], np.float32))  # sure of the right label
        config = TrainConfig(optimizer="adamw", weight_decay=0.1, learning_rate=(0.01, 0.001))
        optimizer = make_optimizer(config)
        optimizer.build(model.trainable_variables)
        step = make_train_step(model, optimizer, label_smoothing=smoothing)
        kernel = np.asarray(model.get_layer("logits").kernel).copy()
        losses[smoothing] = float(step(x, labels, np.float32(0.01))[0])
    # Smoothed targets make a confident right answer cost about smoothing * (K-1)/K * 20 nats.
    assert losses[0.0] < 0.01 and losses[0.2] == pytest.approx(0.2 * 3 / 4 * 20, rel=0.1)
    # Decoupled decay: with zero gradients Adam's own update is 0, so only the decay moves a weight,
    # and it moves kernels by rate x decay x weight, never biases.
    kernel, bias = model.get_layer("logits").kernel, model.get_layer("logits").bias
    before = [np.asarray(kernel).copy(), np.asarray(bias).copy()]
    optimizer = make_optimizer(config)  # fresh moments
    optimizer.build([kernel, bias])
    optimizer.apply_gradients([(np.zeros(kernel.shape, np.float32), kernel), (np.zeros(bias.shape, np.float32), bias)])
    np.testing.assert_allclose(np.asarray(kernel), before[0] * (1 - 0.01 * 0.1), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(bias), before[1])
