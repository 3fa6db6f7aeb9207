"""Speech Commands data: partitions, labels, loading and augmentation."""

from microkws.dataset.augment import AugmentConfig, augment, silence_examples, time_shift
from microkws.dataset.index import (
    DataConfig,
    DataIndex,
    Example,
    index_dataset,
)
from microkws.dataset.labels import (
    BACKGROUND_NOISE_DIR,
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    keyword_indices,
    label_role,
)
from microkws.dataset.load import clips_by_path, load_backgrounds, load_clips, load_partition
from microkws.dataset.split import PARTITIONS, which_set

__all__ = [
    "AugmentConfig",
    "BACKGROUND_NOISE_DIR",
    "DataConfig",
    "DataIndex",
    "Example",
    "PARTITIONS",
    "SILENCE_LABEL",
    "UNKNOWN_LABEL",
    "augment",
    "clips_by_path",
    "index_dataset",
    "keyword_indices",
    "label_role",
    "load_backgrounds",
    "load_clips",
    "load_partition",
    "silence_examples",
    "time_shift",
    "which_set",
]
