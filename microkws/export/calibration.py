"""The representative data set for post-training quantisation.

Calibration sets the range of every tensor inside the integer model, so it
must look like what the device hears: a seeded draw of clips from the
TRAINING partition (wanted words, unknown words and background-noise
silence in the run's proportions), never validation or test clips, which
would leak into the accuracy that verify reports.
"""

import dataclasses

import numpy as np

from microkws.errors import UserError

CALIBRATION_CLIPS = 300
"""Clips drawn for calibration: past a few hundred the ranges no longer move."""


def representative_features(data_config, feature_config, *, count=CALIBRATION_CLIPS, seed=0, progress=False):
    """float32 [n, frames*bins] training-scale features of up to `count` training clips, drawn with `seed`."""
    from microkws.dataset import index_dataset, load_partition
    from microkws.features import compute_features

    index = index_dataset(data_config)
    training = index.partitions["training"]
    if not training:
        raise UserError(f"{data_config.data_dir}: the training partition is empty; calibration needs training clips")
    rng = np.random.default_rng([seed, 0xCA11B])
    picked = sorted(rng.choice(len(training), size=min(count, len(training)), replace=False))
    subset = dataclasses.replace(index, partitions={**index.partitions, "training": [training[i] for i in picked]})
    clips, _ = load_partition(subset, "training", feature_config, seed=seed, progress=progress)
    return compute_features(clips, feature_config).reshape(len(clips), -1).astype(np.float32)
