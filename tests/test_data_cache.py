"""A search's trials read their clips once: train.data.DataCache."""

import dataclasses

import numpy as np

from microkws.dataset import AugmentConfig, DataConfig
from microkws.train import rundir
from microkws.train.config import TrainConfig
from microkws.train.data import DataCache, load_training_data


def _config(root, **train):
    return rundir.RunConfig(DataConfig(str(root), wanted_words=("up", "down")), train=TrainConfig(**train))


def test_runs_of_the_same_data_settings_share_their_clips_and_others_reload(mini_dataset, monkeypatch):
    import microkws.train.data as data_module

    loads = []
    real = data_module.load_examples
    monkeypatch.setattr(data_module, "load_examples", lambda config, **kw: loads.append(config) or real(config, **kw))
    cache = DataCache()
    first = load_training_data(_config(mini_dataset), progress=False, cache=cache)
    # Another model, learning rate and augmentation: the same data settings, nothing read again.
    other = dataclasses.replace(_config(mini_dataset, learning_rate=(0.01, 0.001), dropout_rate=0.3),
                                augment=AugmentConfig(time_shift_ms=250))
    second = load_training_data(other, progress=False, cache=cache)
    assert len(loads) == 1
    assert second["validation"][0] is first["validation"][0]
    assert second["training"].augment_config.time_shift_ms == 250  # the batches are the run's own
    # And the same examples as a run without a cache reads (which loads them itself).
    plain = load_training_data(other, progress=False)
    assert len(loads) == 2
    for name in ("validation", "testing", "testing_every_unknown"):
        np.testing.assert_array_equal(plain[name][0], second[name][0])
        np.testing.assert_array_equal(plain[name][1], second[name][1])
    np.testing.assert_array_equal(plain["training"].batch(3)[0], second["training"].batch(3)[0])
    # A new seed draws other silence examples: loaded again.
    load_training_data(_config(mini_dataset, seed=7), progress=False, cache=cache)
    assert len(loads) == 3
