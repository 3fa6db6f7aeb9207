import numpy as np
import pytest

from microkws.dataset import AugmentConfig
from microkws.features import FeatureConfig
from microkws.train.batches import MAX_ECHO, MIN_VARIANTS, POOL_STEPS, TrainingBatches, echo_factor, warmup_frames

LABELS = ["_silence_", "_unknown_", "up", "down"]


def _batches(total_steps, *, clips=12, unknown=6, batch_size=8, augment_config=AugmentConfig(),
             feature_config=FeatureConfig(), device_grid=False):
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2, 3] * (clips // 4))
    return TrainingBatches(
        rng.integers(-8000, 8000, size=(clips, 16000)).astype(np.int16), labels, label_names=LABELS,
        unknown_clips=rng.integers(-8000, 8000, size=(unknown, 16000)).astype(np.int16),
        backgrounds=[rng.uniform(-0.5, 0.5, 48000).astype(np.float32)], feature_config=feature_config,
        augment_config=augment_config, batch_size=batch_size, seed=3, total_steps=total_steps, device_grid=device_grid)


def test_each_label_is_echoed_as_its_draws_allow():
    assert echo_factor(0) == 1 and echo_factor(MIN_VARIANTS * 2 - 1) == 1
    assert echo_factor(MIN_VARIANTS * 3) == 3 and echo_factor(1e9) == MAX_ECHO
    # 1,000 steps of 8 examples, a quarter of each label: each of 3 keyword clips is drawn 667 times,
    # each of 30 unknown clips 67 times.
    batches = _batches(1000, unknown=30)
    draws = batches.draws_per_clip(1000)
    assert draws[2] == pytest.approx(1000 * 8 / 4 / 3) and draws[1] == pytest.approx(1000 * 8 / 4 / 30)
    assert batches.echo_of_label[2] == MAX_ECHO and batches.echo_of_label[1] == 1 and batches.echo == MAX_ECHO
    assert _batches(None).echo == 1 and _batches(100).echo == 1


@pytest.mark.parametrize("total_steps", [100, 1000])  # fresh batches, then a pool
def test_batches_follow_from_the_step_alone_and_resume_mid_pool(total_steps):
    batches = _batches(total_steps, unknown=30)
    stop = POOL_STEPS + 30
    straight = list(batches.iterate(0, stop))
    resumed = list(_batches(total_steps, unknown=30).iterate(POOL_STEPS - 10, stop))
    for step in (0, 5, POOL_STEPS - 10, POOL_STEPS, stop - 1):
        features, labels = batches.batch(step)
        np.testing.assert_array_equal(features, straight[step][0])
        np.testing.assert_array_equal(labels, straight[step][1])
    for (a, la), (b, lb) in zip(straight[POOL_STEPS - 10:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert straight[0][0].shape == (8, 49 * 40) and not np.array_equal(straight[0][0], straight[1][0])


def test_a_pool_uses_each_example_its_labels_echo_times_and_the_next_pool_is_new():
    batches = _batches(1000, unknown=30)
    features, labels, slots = batches._pool(0)
    assert slots.shape == (POOL_STEPS, 8)
    uses = np.bincount(slots.ravel(), minlength=len(features))
    for label in (1, 2, 3):  # unknown: fresh; keywords: echoed
        echo = batches.echo_of_label[label]
        made = labels == label
        assert uses[made].max() == echo and uses[made].min() >= 1
        assert uses[made].sum() == np.sum(labels[slots] == label)
    assert np.all(uses[labels == 1] == 1)
    second = batches._pool(1)[0]
    # Fresh augmentations: no example of one pool reappears in the next.
    assert not (features[:, None, :] == second[None, :, :]).all(axis=-1).any()


def test_a_frontend_warm_up_settles_the_noise_estimate_as_a_listening_device_has():
    """frontend_warmup_ms: silence examples heard after up to a second of their own noise show the noise
    the frontend has learnt to subtract, lower than a fresh frontend shows it; the clip keeps 49 frames."""
    rng = np.random.default_rng(0)
    labels = np.zeros(64, dtype=int)  # silence only: noise at a random volume
    noise = [rng.normal(0, 0.2, 64000).astype(np.float32)]

    def batch(warmup_ms):
        return TrainingBatches(
            np.zeros((64, 16000), np.int16), labels, label_names=LABELS, unknown_clips=None, backgrounds=noise,
            feature_config=FeatureConfig(), augment_config=AugmentConfig(frontend_warmup_ms=warmup_ms),
            batch_size=64, seed=1).batch(0)[0]

    fresh, warm = batch(0), batch(1000)
    assert fresh.shape == warm.shape == (64, 49 * 40)
    # The same draws but the warm-up's: compare the batch means.
    assert warm.mean() < 0.8 * fresh.mean()
    assert warmup_frames(AugmentConfig(frontend_warmup_ms=1000), FeatureConfig()) == 50
    assert warmup_frames(AugmentConfig(frontend_warmup_ms=1000), FeatureConfig(preprocess="mfcc")) == 0


def test_frequency_warp_varies_each_example_and_stays_on_the_device_grid():
    from microkws.dataset import DataConfig
    from microkws.errors import UserError
    from microkws.features.micro import snap_to_device_grid
    from microkws.train.rundir import RunConfig

    plain = _batches(None, device_grid=True).batch(0)[0]
    warped = _batches(None, device_grid=True, augment_config=AugmentConfig(frequency_warp=0.1)).batch(0)[0]
    assert warped.shape == plain.shape
    np.testing.assert_array_equal(warped, snap_to_device_grid(warped))
    changed = (warped != plain).mean(axis=1)
    assert (changed > 0.05).mean() > 0.5, "most examples are stretched"
    # Refused where the feature and augmentation settings meet, before any data is loaded.
    with pytest.raises(UserError, match="frequency_warp.*preprocess"):
        RunConfig(data=DataConfig("unread", wanted_words=("up",)), features=FeatureConfig(preprocess="mfcc"),
                  augment=AugmentConfig(frequency_warp=0.1))
