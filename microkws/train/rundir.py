"""The run directory: every file name in it, and its settings (config.json) written and read back.

A run directory holds everything about one run; training writes the first half, export the second:

    config.json          every setting: data, features, augmentation, training (RunConfig)
    labels.txt           one label per line, in output order (the original's format)
    checkpoints/         ckpt-NNNNNN.npz, the newest few; re-running resumes from the latest
    best.npz             weights with the best validation score so far
    model.keras          the best model, float, logits out
    metrics.json         test accuracy and confusion matrix of the best model
    logs/                TensorBoard scalars (or --summaries_dir)
    model.tflite         full-integer model for the device          (export)
    model_float.tflite   the float model                            (export)
    model_data.cc/.h     model.tflite as a C array                  (export)
    saved_model/         16 kHz audio in, probabilities out          (export)
    device_report.json   what the model costs on TFLM's kernels     (device.verify)
    detection.json       streaming DET sweep, chosen threshold      (streaming calibration)
    report.png           curves, confusion, recall, DET, budget     (report)

Every later stage (export, device, evaluate, streaming) finds these files through this module.
"""

import json
import os
from dataclasses import dataclass, field

from microkws._config import changed_keys, settings_from_dict
from microkws.dataset import AugmentConfig, DataConfig
from microkws.errors import UserError
from microkws.features import FeatureConfig
from microkws.files import check_writable, write_json, write_text
from microkws.train.config import TrainConfig

CONFIG_FILE = "config.json"
LABELS_FILE = "labels.txt"
CHECKPOINTS_DIR = "checkpoints"
BEST_FILE = "best.npz"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
LOGS_DIR = "logs"
TFLITE_FILE = "model.tflite"
FLOAT_TFLITE_FILE = "model_float.tflite"
REPORT_FILE = "device_report.json"
DETECTION_FILE = "detection.json"
REPORT_PNG_FILE = "report.png"

SECTIONS = {"data": DataConfig, "features": FeatureConfig, "augment": AugmentConfig, "train": TrainConfig}
"""config.json's sections and the settings class of each."""


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run: what config.json holds, and all a later command needs to redo it."""

    data: DataConfig
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        # The one augmentation that needs a feature mode, checked where the two sections meet, before
        # anything is loaded or written.
        if self.augment.frequency_warp and self.features.preprocess != "micro":
            raise UserError(f"frequency_warp stretches the micro frontend's mel channels; --preprocess "
                            f"{self.features.preprocess} has none: set --frequency_warp 0 or --preprocess micro")

    @property
    def labels(self):
        """The model's outputs in order: _silence_, _unknown_, then the wanted words."""
        return self.data.labels

    @property
    def device_grid(self):
        """Whether the model trained (and is validated) on the device's int8 input grid."""
        return bool(self.train.quantize) and self.features.preprocess == "micro"

    def to_dict(self):
        sections = {name: getattr(self, name).to_dict() for name in SECTIONS}
        sections["data"]["data_dir"] = os.path.abspath(sections["data"]["data_dir"])
        return {"labels": list(self.labels), **sections}

    @classmethod
    def from_dict(cls, settings, *, source="config"):
        """The RunConfig of a dict as `to_dict` wrote it (a missing section or key takes its default,
        except data); every value is checked, and an error names `source` and the key."""
        if not isinstance(settings, dict):
            raise UserError(f"{source}: expected an object with the sections {', '.join(SECTIONS)}")
        if "data" not in settings:
            raise UserError(f"{source}: no data section; it names the data folder and the wanted words")
        sections = {name: settings_from_dict(kind, settings[name], source=source, kind=name)
                    for name, kind in SECTIONS.items() if name in settings}
        config = cls(**sections)
        labels = settings.get("labels")
        if labels is not None and list(labels) != list(config.labels):
            raise UserError(f"{source}: labels {labels} do not match the data section's wanted words "
                            f"({', '.join(config.labels)})")
        return config


def read_run_config(run_dir):
    """The RunConfig of a run directory, or a UserError naming the file and what is wrong."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{run_dir}: no {CONFIG_FILE}; is it a microkws run directory (--train_dir)?")
    return settings_file_config(path)


def settings_file_config(path):
    """The RunConfig of a JSON file in config.json's form (e.g. a copy kept to train again)."""
    try:
        with open(path, encoding="utf-8") as file:
            settings = json.load(file)
    except FileNotFoundError:
        raise UserError(f"{path}: no such run directory or settings file") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read ({error})") from None
    return RunConfig.from_dict(settings, source=path)


def is_run_dir(path):
    """Whether `path` is a folder with a config.json."""
    return os.path.isfile(os.path.join(path, CONFIG_FILE))


def run_dir_of(model_path):
    """The run directory a model file sits in (config.json beside it), or None."""
    beside = os.path.dirname(os.path.abspath(model_path))
    return beside if is_run_dir(beside) else None


def trained_model_path(run_dir):
    """run_dir/model.keras, or a UserError saying to finish training."""
    path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{run_dir}: no {MODEL_FILE}, so no trained model; finish training first "
                        f"(re-run `microkws train --train_dir {run_dir}` to resume)")
    return path


def check_run_dir(run_dir, config):
    """Fail early if the run directory is not writable or holds a run with other settings."""
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as error:
        raise UserError(f"{run_dir}: cannot write to the train_dir ({error.strerror or error})") from None
    check_writable(run_dir, what="write to the train_dir")
    if not is_run_dir(run_dir):
        return
    changed = changed_keys(read_run_config(run_dir).to_dict(), config.to_dict())
    if changed:
        raise UserError(
            f"{run_dir} holds a run with other settings ({', '.join(changed)}); "
            "re-run with the same flags to resume, or pass a new --train_dir"
        )


def write_run_config(run_dir, config):
    """Write config.json and labels.txt, unless the run already has them."""
    if not is_run_dir(run_dir):
        write_json(os.path.join(run_dir, CONFIG_FILE), config.to_dict())
        write_text(os.path.join(run_dir, LABELS_FILE), "\n".join(config.labels) + "\n")


def write_metrics(run_dir, metrics):
    return write_json(os.path.join(run_dir, METRICS_FILE), metrics)
