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
    block_filters: tuple[int, ...] = ()
    """Output channels of each block's pointwise convolution, one per block; empty: `filters` for all."""
    block_strides: tuple[tuple[int, int], ...] = ()
    """Strides (frames, bins) of each block's depthwise convolution, one per block; empty: (1, 1) for all.
    A strided block shrinks the maps after it, where wider blocks then cost few multiply-accumulates."""
    first_dropout_rate: float = 0.2
    """Dropout after the first convolution; the builder's dropout_rate is the one before pooling."""
    weight_decay: float = 1e-4
    """L2 penalty on every convolution kernel (MLPerf's weight_decay); 0 for none."""

    def __post_init__(self):
        if not 0.0 <= self.first_dropout_rate < 1.0:
            raise UserError(f"DsCnnConfig.first_dropout_rate must be in [0, 1), got {self.first_dropout_rate!r}")
        if self.weight_decay < 0:
            raise UserError(f"DsCnnConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        for name in ("block_filters", "block_strides"):
            given = getattr(self, name)
            if given and len(given) != self.blocks:
                raise UserError(f"DsCnnConfig.{name} must give one entry per block ({self.blocks}), "
                                f"got {len(given)}; leave it empty for the default")
        if any(f < 1 for f in self.block_filters) or any(s < 1 for pair in self.block_strides for s in pair):
            raise UserError("DsCnnConfig.block_filters and block_strides must be whole numbers >= 1, got "
                            f"{list(self.block_filters)} and {[list(p) for p in self.block_strides]}")


@dataclass(frozen=True)
class BcResNetConfig:
    """Settings of bc_resnet; the defaults are BC-ResNet-1's widths and depths, adapted (see bc_resnet.py)."""

    first_filters: int = 16
    """Output channels of the first convolution."""
    first_kernel: tuple[int, int] = (5, 5)
    """First convolution kernel (frames, bins)."""
    first_strides: tuple[int, int] = (2, 2)
    """First convolution strides (frames, bins); the paper strides frequency only, time too halves the arena."""
    stage_filters: tuple[int, ...] = (8, 12, 16, 20)
    """Channels of each stage."""
    stage_blocks: tuple[int, ...] = (2, 2, 4, 4)
    """BC-ResBlocks of each stage."""
    stage_frequency_strides: tuple[int, ...] = (1, 2, 2, 1)
    """Frequency stride of each stage's first block."""
    stage_dilations: tuple[int, ...] = (1, 1, 1, 1)
    """Time dilation of each stage's temporal convolutions. The paper's (1, 2, 4, 8) widens the view in
    time, but TensorFlow's converter turns a dilated depthwise convolution into SPACE_TO_BATCH_ND and
    BATCH_TO_SPACE_ND around a plain one, with its batch norm left as MUL and ADD: ops without CMSIS-NN
    kernels, so the default has none."""
    head_filters: int = 32
    """Channels of the 1x1 convolution before the average over time."""

    def __post_init__(self):
        _same_lengths(self, "stage_filters", "stage_blocks", "stage_frequency_strides", "stage_dilations")


@dataclass(frozen=True)
class TcResNetConfig:
    """Settings of tc_resnet; the defaults are TC-ResNet8's (width multiplier 1)."""

    first_filters: int = 16
    """Output channels of the first temporal convolution."""
    first_kernel: int = 3
    """Frames the first convolution spans."""
    block_filters: tuple[int, ...] = (24, 32, 48)
    """Channels of each residual block; each block halves the frames (stride 2)."""
    kernel: int = 9
    """Frames each block's convolutions span."""
    separable: bool = False
    """Depthwise-separable temporal convolutions (a depthwise kx1 and a 1x1) instead of full ones:
    about kernel times fewer parameters, for flash budgets the full blocks overrun."""


def _same_lengths(config, *names):
    lengths = {name: len(getattr(config, name)) for name in names}
    if len(set(lengths.values())) != 1 or not lengths[names[0]]:
        listed = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        raise UserError(f"{type(config).__name__}: give one value per stage to each stage field ({listed})")


CONFIGS = {
    "single_fc": SingleFcConfig,
    "conv": ConvConfig,
    "low_latency_conv": LowLatencyConvConfig,
    "low_latency_svdf": LowLatencySvdfConfig,
    "tiny_conv": TinyConvConfig,
    "tiny_embedding_conv": TinyEmbeddingConvConfig,
    "ds_cnn": DsCnnConfig,
    "bc_resnet": BcResNetConfig,
    "tc_resnet": TcResNetConfig,
}
"""Architecture name -> its config dataclass (construct with no arguments for the defaults)."""
ARCHITECTURES = tuple(CONFIGS)
