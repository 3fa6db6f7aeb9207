"""Training settings: the original train.py's, as one frozen object."""

from dataclasses import asdict, dataclass

from microkws._config import finite_number, settings_from_dict, whole_number
from microkws.errors import UserError
from microkws.models import CONFIGS, check_architecture

OPTIMIZERS = ("gradient_descent", "momentum", "adam")


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
    """gradient_descent (the original's default), momentum (0.9, Nesterov) or adam."""
    dropout_rate: float | None = None
    """Dropout while training; None takes the architecture's default (0.5 for the original six)."""
    quantize: bool = False
    """Train for int8 deployment (see microkws.train.quantize)."""
    check_nans: bool = False
    """Stop with an error naming the step when the loss becomes NaN."""
    fresh_unknowns: bool = True
    """Draw each step's unknown examples from every clip of the other words, not only the fixed
    draw the original made once (which leaves most unknown words unseen)."""
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
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        check_architecture(self.model_architecture)
        self.model_settings()  # a bad field is an error now, not when training starts

    def model_settings(self):
        """The architecture's config object (microkws.models.CONFIGS), from `model_config`."""
        return settings_from_dict(CONFIGS[self.model_architecture], self.model_config or {},
                                  source="model_config", kind=self.model_architecture)

    @property
    def total_steps(self):
        return sum(self.how_many_training_steps)

    def learning_rate_at(self, step):
        """Learning rate of (0-based) `step`: piecewise constant over the phases."""
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

