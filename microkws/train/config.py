"""Training settings: the original train.py's, as one frozen object."""

import math
from dataclasses import asdict, dataclass

from microkws._config import finite_number, settings_from_dict, whole_number
from microkws.errors import UserError
from microkws.models import CONFIGS, check_architecture

OPTIMIZERS = ("gradient_descent", "momentum", "adam", "adamw")
SCHEDULES = ("phases", "cosine")
WEIGHT_SCALES = ("per_channel", "per_tensor")
CHECKPOINT_METRICS = ("keyword_recall_at_5", "keyword_recall_at_1", "balanced_accuracy", "accuracy")


@dataclass(frozen=True)
class TrainConfig:
    """How the model is trained. Defaults are the original's, but tiny_conv for microcontrollers."""

    model_architecture: str = "tiny_conv"
    """A name in microkws.models.MODELS."""
    model_config: dict | None = None
    """The architecture's settings, as fields of its config class (e.g. {"filters": 32} for ds_cnn's
    DsCnnConfig); None or missing fields take the architecture's defaults."""
    how_many_training_steps: tuple[int, ...] = (15000, 3000)
    """Steps of each learning-rate phase."""
    learning_rate: tuple[float, ...] = (0.001, 0.0001)
    """Learning rate of each phase; as many as how_many_training_steps."""
    batch_size: int = 100
    eval_step_interval: int = 400
    """Validate every this many steps (and at the end)."""
    save_step_interval: int = 100
    """Write a checkpoint every this many steps (and at the end)."""
    optimizer: str = "gradient_descent"
    """gradient_descent (the original's default), momentum (0.9, Nesterov), adam or adamw."""
    weight_decay: float = 0.0
    """adamw's decoupled weight decay on kernels (not biases or batch norms); 0 for none."""
    learning_rate_schedule: str = "phases"
    """phases: each phase's learning rate held constant (the original); cosine: a linear warm-up over
    warmup_steps to the first learning rate, then a cosine decay to 0 at the last step."""
    warmup_steps: int = 0
    """Steps of linear warm-up (cosine schedule only)."""
    label_smoothing: float = 0.0
    """Share of each target spread evenly over the labels (0: the original's one-hot targets)."""
    checkpoint_metric: str = "keyword_recall_at_5"
    """Validation score that picks the best checkpoint: keyword_recall_at_5 (keyword clips detected
    when the threshold lets 5 % of the other words fire: a missed keyword and a false accept weigh by
    the threshold, as on a device), keyword_recall_at_1 (the same at 1 %, nearer the false-accept rates
    a device is calibrated for, but set by the two or three hardest other-word clips), balanced_accuracy (mean recall over the labels)
    or accuracy (every clip alike, which favours "unknown", the most common label on the validation
    speakers)."""
    keep_best: bool = True
    """Keep the checkpoint with the best checkpoint_metric (the original); False: keep the last step's
    weights, where a cosine schedule has decayed to 0, and let validation only report. On a validation set
    of a few dozen keyword clips the best score is partly luck, and the luck can fall on an early,
    still-hot checkpoint that calls unseen speakers' keywords "unknown"."""
    dropout_rate: float | None = None
    """Dropout while training; None takes the architecture's default (0.5 for the original six)."""
    quantize: bool = False
    """Train for int8 deployment (see microkws.train.quantize)."""
    weight_scales: str = "per_channel"
    """How the int8 model's weights are scaled: per_channel (one scale per output channel, the converter's
    default) or per_tensor (one scale per weight tensor: each channel's scale and zero point take about
    16 bytes of flatbuffer, a third of a 20 KB model with 600 channels). The export and the budget
    check read it, and so does quantisation-aware training, which rounds as the export will
    (microkws.train.quantize)."""
    check_nans: bool = False
    """The original's flag, kept so its commands run: a loss that becomes NaN or infinite always stops
    training with an error naming the step, whatever this says."""
    fresh_unknowns: bool = True
    """Draw each step's unknown examples from every clip of the other words, not only the fixed
    draw the original made once (which leaves most unknown words unseen)."""
    balanced_batches: bool = False
    """Draw each training example's label uniformly (silence, unknown and each keyword alike), then a clip
    of it, instead of drawing clips uniformly over the partition (the original, where keywords outnumber
    unknown words 4 to 1 at 25 %). Validation and test keep the partition's composition."""
    seed: int = 0
    """Seeds weights, batches, augmentation and dropout: a run is reproducible."""

    def __post_init__(self):
        object.__setattr__(self, "how_many_training_steps",
                           tuple(whole_number(s, "how_many_training_steps") for s in self.how_many_training_steps))
        object.__setattr__(self, "learning_rate", tuple(finite_number(r, "learning_rate") for r in self.learning_rate))
        if len(self.how_many_training_steps) != len(self.learning_rate):
            raise UserError(
                f"how_many_training_steps has {len(self.how_many_training_steps)} entries but learning_rate has "
                f"{len(self.learning_rate)}; give one learning rate per phase, e.g. 15000,3000 and 0.001,0.0001"
            )
        if not self.how_many_training_steps or any(s <= 0 for s in self.how_many_training_steps):
            raise UserError("how_many_training_steps must be positive step counts, e.g. 15000,3000")
        if any(r <= 0 for r in self.learning_rate):
            raise UserError("learning_rate values must be positive")
        for name in ("batch_size", "eval_step_interval", "save_step_interval"):
            if whole_number(getattr(self, name), name) <= 0:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if whole_number(self.seed, "seed") < 0:
            raise UserError(f"seed must be 0 or more, got {self.seed}")
        if self.dropout_rate is not None and not 0 <= finite_number(self.dropout_rate, "dropout_rate") < 1:
            raise UserError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        _choice(self.optimizer, OPTIMIZERS, "optimizer")
        _choice(self.learning_rate_schedule, SCHEDULES, "learning_rate_schedule")
        _choice(self.checkpoint_metric, CHECKPOINT_METRICS, "checkpoint_metric")
        _choice(self.weight_scales, WEIGHT_SCALES, "weight_scales")
        self._check_recipe()
        check_architecture(self.model_architecture)
        self.model_settings()  # a bad field is an error now, not when training starts

    def _check_recipe(self):
        if not 0 <= finite_number(self.weight_decay, "weight_decay") < 1:
            raise UserError(f"weight_decay must be in [0, 1), got {self.weight_decay}")
        if self.weight_decay and self.optimizer != "adamw":
            raise UserError("weight_decay is adamw's decoupled decay: use it with --optimizer adamw")
        if not 0 <= finite_number(self.label_smoothing, "label_smoothing") < 1:
            raise UserError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= whole_number(self.warmup_steps, "warmup_steps") < self.total_steps:
            raise UserError(f"warmup_steps must be from 0 to fewer than the {self.total_steps} training steps, "
                            f"got {self.warmup_steps}")
        if self.learning_rate_schedule == "cosine" and len(self.learning_rate) != 1:
            raise UserError("the cosine schedule takes one --learning_rate, its peak; the phases' steps are summed")
        if self.warmup_steps and self.learning_rate_schedule != "cosine":
            raise UserError("warmup_steps needs --learning_rate_schedule cosine")

    def model_settings(self):
        """The architecture's config object (microkws.models.CONFIGS), from `model_config`."""
        return settings_from_dict(CONFIGS[self.model_architecture], self.model_config or {},
                                  source="model_config", kind=self.model_architecture)

    @property
    def total_steps(self):
        return sum(self.how_many_training_steps)

    def learning_rate_at(self, step):
        """Learning rate of (0-based) `step`: piecewise constant over the phases, or warm-up and cosine."""
        if self.learning_rate_schedule == "cosine":
            peak = self.learning_rate[0]
            if step < self.warmup_steps:
                return peak * (step + 1) / self.warmup_steps
            progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
            return peak * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        boundary = 0
        for steps, rate in zip(self.how_many_training_steps, self.learning_rate):
            boundary += steps
            if step < boundary:
                return rate
        return self.learning_rate[-1]

    def to_dict(self):
        data = asdict(self)
        data["how_many_training_steps"] = list(self.how_many_training_steps)
        data["learning_rate"] = list(self.learning_rate)
        return data



def _choice(value, choices, name):
    if value not in choices:
        raise UserError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
