"""Every architecture's settings, as frozen dataclasses whose defaults are the reference's.

They live apart from the builders so that settings can be made, checked and saved (TrainConfig,
config.json, a search's candidates) without loading Keras; each builder module takes its own.
"""

from dataclasses import dataclass

from microkws.errors import UserError

@dataclass(frozen=True)
class SingleFcConfig:
    """single_fc has no settings; the class keeps every builder's signature alike."""


@dataclass(frozen=True)
class ConvConfig:
    """Settings of conv; the defaults are the original's."""

    first_kernel: tuple[int, int] = (20, 8)
    """First convolution kernel (frames, bins); stride 1, padding SAME."""
    first_filters: int = 64
    """Output channels of the first convolution."""
    pool: tuple[int, int] = (2, 2)
    """Max-pool window and stride (frames, bins) after the first convolution; padding SAME."""
    second_kernel: tuple[int, int] = (10, 4)
    """Second convolution kernel (frames, bins); stride 1, padding SAME."""
    second_filters: int = 64
    """Output channels of the second convolution."""


@dataclass(frozen=True)
class LowLatencyConvConfig:
    """Settings of low_latency_conv; the defaults are the original's."""

    kernel_bins: int = 8
    """Width of the convolution kernel in bins; its height is always every frame."""
    filters: int = 186
    """Output channels of the convolution."""
    hidden_units: tuple[int, ...] = (128, 128)
    """Units of each hidden (linear) dense layer."""


@dataclass(frozen=True)
class LowLatencySvdfConfig:
    """Settings of low_latency_svdf; the defaults are the original's."""

    units: int = 1280
    """SVDF output units (nodes)."""
    rank: int = 2
    """Separable filter pairs summed per unit."""
    hidden_units: tuple[int, ...] = (256, 256)
    """Units of each hidden (linear) dense layer."""


@dataclass(frozen=True)
class TinyConvConfig:
    """Settings of tiny_conv; the defaults are the original's."""

    kernel: tuple[int, int] = (10, 8)
    """Convolution kernel (frames, bins)."""
    filters: int = 8
    """Output channels of the convolution."""
    strides: tuple[int, int] = (2, 2)
    """Convolution strides (frames, bins); padding is SAME."""


@dataclass(frozen=True)
class TinyEmbeddingConvConfig:
    """Settings of tiny_embedding_conv; the defaults are the original's."""

    first_kernel: tuple[int, int] = (10, 8)
    """First convolution kernel (frames, bins)."""
    first_filters: int = 8
    """Output channels of the first convolution."""
    first_strides: tuple[int, int] = (2, 2)
    """First convolution strides (frames, bins); padding is SAME."""
    second_kernel: tuple[int, int] = (10, 8)
    """Second convolution kernel (frames, bins)."""
    second_filters: int = 8
    """Output channels of the second convolution."""
    second_strides: tuple[int, int] = (8, 8)
    """Second convolution strides (frames, bins); padding is SAME."""


@dataclass(frozen=True)
class DsCnnConfig:
    """Settings of ds_cnn; the defaults are MLPerf Tiny's."""

    filters: int = 64
    """Channels of every convolution."""
    first_kernel: tuple[int, int] = (10, 4)
    """First (standard) convolution kernel (frames, bins)."""
    first_strides: tuple[int, int] = (2, 2)
    """First convolution strides (frames, bins)."""
    blocks: int = 4
    """Depthwise-separable blocks."""
    depthwise_kernel: tuple[int, int] = (3, 3)
    """Kernel of each depthwise convolution (frames, bins)."""
    first_dropout_rate: float = 0.2
    """Dropout after the first convolution; the builder's dropout_rate is the one before pooling."""
    weight_decay: float = 1e-4
    """L2 penalty on every convolution kernel (MLPerf's weight_decay); 0 for none."""

    def __post_init__(self):
        if not 0.0 <= self.first_dropout_rate < 1.0:
            raise UserError(f"DsCnnConfig.first_dropout_rate must be in [0, 1), got {self.first_dropout_rate!r}")
        if self.weight_decay < 0:
            raise UserError(f"DsCnnConfig.weight_decay must be >= 0, got {self.weight_decay!r}")


CONFIGS = {
    "single_fc": SingleFcConfig,
    "conv": ConvConfig,
    "low_latency_conv": LowLatencyConvConfig,
    "low_latency_svdf": LowLatencySvdfConfig,
    "tiny_conv": TinyConvConfig,
    "tiny_embedding_conv": TinyEmbeddingConvConfig,
    "ds_cnn": DsCnnConfig,
}
"""Architecture name -> its config dataclass (construct with no arguments for the defaults)."""
ARCHITECTURES = tuple(CONFIGS)
