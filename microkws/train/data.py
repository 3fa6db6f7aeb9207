"""What training reads: the validation and test features held in memory, and the training batches.

Loading (`load_examples`) is split from the batches (`training_data`) so that a search, whose trials differ
in model and augmentation but not in data, reads its clips once per worker (`DataCache`).
"""

import dataclasses

from microkws.dataset import (
    UNKNOWN_LABEL,
    clips_by_path,
    index_dataset,
    load_backgrounds,
    load_clips,
    load_partition,
)
from microkws.errors import UserError
from microkws.features import compute_features
from microkws.train.batches import TrainingBatches


@dataclasses.dataclass(frozen=True)
class LoadedExamples:
    """Everything a run reads from its data folder: evaluation sets as features, training clips as int16."""

    evaluation: dict
    """{"validation" / "testing" / "testing_every_unknown": (features [n, frames*bins] or None, labels [n])}"""
    clips: object
    labels: object
    unknown_clips: object
    backgrounds: list


def load_training_data(config, *, progress, cache=None):
    """{"training": TrainingBatches, "validation" / "testing" / "testing_every_unknown": (features, labels)}
    for a RunConfig. Features are [n, frames*bins] float32 (None for an empty partition), labels [n] ints.
    `cache` (a DataCache): reuse examples a run of the same data settings loaded before.
    """
    loaded = cache.get(config, progress=progress) if cache is not None else load_examples(config, progress=progress)
    return training_data(loaded, config)


def training_data(loaded, config):
    """load_training_data's dict from examples already loaded for `config`'s data settings."""
    return {**loaded.evaluation, "training": TrainingBatches(
        loaded.clips, loaded.labels, label_names=list(config.labels), unknown_clips=loaded.unknown_clips,
        backgrounds=loaded.backgrounds, feature_config=config.features, augment_config=config.augment,
        batch_size=config.train.batch_size, seed=config.train.seed, device_grid=config.device_grid,
        balanced=config.train.balanced_batches, total_steps=config.train.total_steps,
    )}


class DataCache:
    """The last LoadedExamples, for runs in one process that share their data settings (a search's trials):
    the data folder, features, seed (it draws the silence examples), the device grid and fresh unknowns.
    A run with other settings replaces it. The folder is not watched: a cache lives as long as one search."""

    def __init__(self):
        self._key, self._loaded = None, None

    @staticmethod
    def key(config):
        return (config.data, config.features, config.train.seed, config.device_grid, config.train.fresh_unknowns)

    def get(self, config, *, progress=False):
        if self._key != self.key(config):
            self._key, self._loaded = None, None  # the old examples go before the new ones load
            self._loaded = load_examples(config, progress=progress)
            self._key = self.key(config)
        return self._loaded


def load_examples(config, *, progress):
    """LoadedExamples of a RunConfig's data folder.

    Validation and the wide test set hold every unknown clip of their speakers, not the original's
    small draw: choosing the best checkpoint on a handful of unknown clips picked early models that
    took 40 % of other words for keywords.
    """
    index = index_dataset(config.data)
    features_config = config.features
    backgrounds = load_backgrounds(index.background_paths, sample_rate=features_config.sample_rate,
                                   min_length=features_config.desired_samples)

    def features_of(part_index, partition, *, loaded=None):
        """((features, labels), clips) of one evaluation set."""
        clips, labels = load_partition(part_index, partition, features_config, backgrounds=backgrounds,
                                       seed=config.train.seed, progress=progress, loaded=loaded)
        if not len(clips):
            return (None, labels), clips
        features = compute_features(clips, features_config, device_grid=config.device_grid)
        return (features.reshape(len(clips), -1), labels), clips

    # Each file is read once: the test partition's clips are all among those of its every-unknown set,
    # and the training partition's unknown clips among the pool of other words (read after it, so the
    # pool's 2 GB and a partition being loaded never meet).
    validation, _ = features_of(with_every_unknown(index, "validation"), "validation")
    wide_index = with_every_unknown(index, "testing")
    every_unknown, wide_clips = features_of(wide_index, "testing")
    testing, _ = features_of(index, "testing", loaded=clips_by_path(wide_index.partitions["testing"], wide_clips))
    del wide_clips  # 0.5 GB on a full-size tree, no longer needed
    evaluation = {"validation": validation, "testing": testing, "testing_every_unknown": every_unknown}
    clips, labels = load_partition(index, "training", features_config, backgrounds=backgrounds, progress=progress)
    if not len(clips):
        raise UserError(f"{config.data.data_dir}: the training partition is empty")
    unknown_clips = None
    if config.train.fresh_unknowns and index.unknown_pool["training"]:
        unknown_clips = load_clips([e.path for e in index.unknown_pool["training"]],
                                   sample_rate=features_config.sample_rate, length=features_config.desired_samples,
                                   progress=progress, description="loading unknown words",
                                   loaded=clips_by_path(index.partitions["training"], clips))
    return LoadedExamples(evaluation=evaluation, clips=clips, labels=labels, unknown_clips=unknown_clips,
                          backgrounds=backgrounds)


def with_every_unknown(index, partition):
    """`index` with `partition`'s unknown examples replaced by every unknown clip of its speakers."""
    examples = [e for e in index.partitions[partition] if e.label != UNKNOWN_LABEL] + index.unknown_pool[partition]
    return dataclasses.replace(index, partitions={**index.partitions, partition: examples})
