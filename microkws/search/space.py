"""The search space: which models, training settings and augmentation a search tries, as Optuna suggestions.

A candidate is one architecture family with its own settings (Optuna's conditional search space: a
ds_cnn trial never suggests bc_resnet's fields), plus the training and augmentation settings every
family shares, all applied with `dataclasses.replace` on the recommended recipe, so what is not
searched stays the recipe's. Optuna stores only numbers and strings, so list-valued settings (strides,
blocks per stage) are suggested by key ("2x4") and looked up here.

Each family's ranges are written smallest-first, so the space's smallest candidates (`smallest_candidates`)
are read off the same table that `suggest` draws from: a budget that even those cannot meet is refused
before any training.
"""

import dataclasses
import json
from dataclasses import dataclass

import optuna


@dataclass(frozen=True)
class Whole:
    """Whole numbers from `low` to `high` in steps of `step`."""

    low: int
    high: int
    step: int = 1

    def suggest(self, trial, name):
        return trial.suggest_int(name, self.low, self.high, step=self.step)

    def smallest(self):
        return self.low


@dataclass(frozen=True)
class Choice:
    """One of `options` ({key Optuna stores: the setting's value}), the smallest model's first."""

    options: dict

    def suggest(self, trial, name):
        return self.options[trial.suggest_categorical(name, list(self.options))]

    def smallest(self):
        return next(iter(self.options.values()))


FAMILIES = {
    "tiny_conv": {"filters": Whole(4, 16, 2)},
    "ds_cnn": {
        "filters": Whole(16, 64, 8),
        "blocks": Whole(1, 4),
        # Striding frequency by 4 quarters every later activation map: the smaller arena comes first.
        "first_strides": Choice({"2x4": [2, 4], "2x2": [2, 2]}),
    },
    "bc_resnet": {
        "stage_blocks": Choice({"1-1-1-1": [1, 1, 1, 1], "1-1-2-2": [1, 1, 2, 2], "2-2-4-4": [2, 2, 4, 4]}),
        "head_filters": Whole(16, 48, 8),
    },
    "tc_resnet": {
        # Frequency as channels: three stride-2 residual blocks over time. Full kernel-9 convolutions at
        # TC-ResNet8's widths take about 66 K parameters, so the separable form comes first.
        "separable": Choice({"separable": True, "full": False}),
        "first_filters": Whole(8, 24, 8),
        "block_filters": Choice({"12-16-24": [12, 16, 24], "16-24-32": [16, 24, 32], "24-32-48": [24, 32, 48]}),
    },
}
"""Architecture -> {its config field (microkws.models.configs): the values tried}. Optuna's parameter
names are "ARCHITECTURE.FIELD": the same field name has other ranges in another family."""

FAMILY_PARAM = "architecture"


@dataclass(frozen=True)
class LogRange:
    """Numbers from `low` to `high`, drawn uniformly in their logarithm."""

    low: float
    high: float

    def suggest(self, trial, name):
        return trial.suggest_float(name, self.low, self.high, log=True)


@dataclass(frozen=True)
class Range:
    """Numbers from `low` to `high`, drawn uniformly."""

    low: float
    high: float

    def suggest(self, trial, name):
        return trial.suggest_float(name, self.low, self.high)


SNR_SPAN_DB = 15.0
"""Width of the signal-to-noise range a clip's noise is drawn from; the search moves its low end, so a
high low end means gentler noise."""

TRAINING = {
    # The recipe's schedule is cosine, which takes one peak learning rate.
    "learning_rate": LogRange(1e-3, 1e-2),
    "dropout_rate": Range(0.0, 0.3),
}
"""TrainConfig field -> the values tried, for every family."""

AUGMENTATION = {
    "time_shift_ms": Range(50.0, 300.0),
    "background_snr_low_db": Range(0.0, 10.0),
}
"""Augmentation settings tried for every family (background_snr_low_db sets AugmentConfig.background_snr_db
to (low, low + SNR_SPAN_DB))."""

SEARCHED_SETTINGS = (*TRAINING, *AUGMENTATION)
"""The shared settings' parameter names, in the order trials.csv lists them."""


def suggest(trial, base_augment, base_train):
    """(AugmentConfig, TrainConfig) of one candidate: `base_augment` and `base_train` (the recommended
    recipe's) with the family, its settings, the learning rate, dropout and augmentation `trial` suggests.

    `trial` is an optuna Trial, or an optuna.trial.FixedTrial of a finished trial's params to rebuild
    that trial's candidate exactly.
    """
    family = trial.suggest_categorical(FAMILY_PARAM, list(FAMILIES))
    model_config = {field: space.suggest(trial, f"{family}.{field}") for field, space in FAMILIES[family].items()}
    training = {name: space.suggest(trial, name) for name, space in TRAINING.items()}
    augmentation = {name: space.suggest(trial, name) for name, space in AUGMENTATION.items()}
    snr_low = augmentation["background_snr_low_db"]
    augment = dataclasses.replace(base_augment, time_shift_ms=augmentation["time_shift_ms"],
                                  background_snr_db=(snr_low, snr_low + SNR_SPAN_DB))
    train = dataclasses.replace(base_train, model_architecture=family, model_config=model_config,
                                learning_rate=(training["learning_rate"],), dropout_rate=training["dropout_rate"])
    return augment, train


def candidate_of(params, base_augment, base_train):
    """The (AugmentConfig, TrainConfig) of a finished trial's `params` (trial.params)."""
    return suggest(optuna.trial.FixedTrial(params), base_augment, base_train)


def smallest_candidates(base_train):
    """One TrainConfig per family with every searched field at its smallest: the least flash, arena and
    MACs of that family (no single candidate is smallest in all three: tiny_conv's dense layer takes more
    flash than the smallest ds_cnn, but less arena)."""
    return [dataclasses.replace(base_train, model_architecture=family,
                                model_config={field: space.smallest() for field, space in fields.items()})
            for family, fields in FAMILIES.items()]


def describe(train_config):
    """"ds_cnn {"filters": 16, ...}": a candidate's model, for logs and error messages."""
    return f"{train_config.model_architecture} {json.dumps(train_config.model_config)}"
