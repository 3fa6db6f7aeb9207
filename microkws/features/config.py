"""Feature settings: the original `prepare_model_settings`, as one frozen object."""

import math
from dataclasses import asdict, dataclass

from microkws.errors import UserError
from microkws.features import _frontend

PREPROCESS_MODES = ("micro", "mfcc", "average")
# The C extension's keyword table is the one list of these: a new option is
# a line there plus a FeatureConfig field of the same name.
MICRO_FRONTEND_OPTIONS = tuple(name for name, _kind in _frontend.PLAN_OPTIONS)
"""The settings of TFLM's audio frontend beyond window, stride and channels, named as its options."""


@dataclass(frozen=True)
class FeatureConfig:
    """How a clip of audio becomes a [frames, bins] feature array.

    The defaults are the micro_speech recipe: TFLM's audio frontend, 30 ms
    window, 20 ms stride, 40 channels, giving 49x40 for a 1 s clip at 16 kHz.
    """

    preprocess: str = "micro"
    """"micro" (TFLM audio frontend), "mfcc" or "average" (the original's other modes)."""
    sample_rate: int = 16000
    """Samples per second that features are computed at; audio is resampled to it."""
    clip_duration_ms: int = 1000
    """Length of one example; shorter audio is zero-padded, longer is trimmed."""
    window_size_ms: float = 30.0
    """Analysis window length."""
    window_stride_ms: float = 20.0
    """Hop between windows."""
    feature_bin_count: int = 40
    """Frontend channels (micro), MFCC coefficients (mfcc) or target pooled bins (average)."""

    # Options of TFLM's audio frontend, used by the micro mode only.
    # Defaults are those of TensorFlow's audio_microfrontend op and the device.
    lower_band_limit: float = 125.0
    """Lowest filterbank frequency in Hz."""
    upper_band_limit: float = 7500.0
    """Highest filterbank frequency in Hz."""
    smoothing_bits: int = 10
    """Extra fractional bits of the noise estimate."""
    even_smoothing: float = 0.025
    """Noise-estimate smoothing coefficient of even channels."""
    odd_smoothing: float = 0.06
    """Noise-estimate smoothing coefficient of odd channels."""
    min_signal_remaining: float = 0.05
    """Fraction of the signal always kept after noise reduction."""
    enable_pcan: bool = True
    """Per-channel amplitude normalisation (automatic gain control)."""
    pcan_strength: float = 0.95
    """PCAN gain exponent."""
    pcan_offset: float = 80.0
    """PCAN offset added to the noise estimate."""
    gain_bits: int = 21
    """Fixed-point bits of the PCAN gain."""
    enable_log: bool = True
    """Take the log of the filterbank energies."""
    scale_shift: int = 6
    """Right shift applied after the log."""

    def __post_init__(self):
        if self.preprocess not in PREPROCESS_MODES:
            raise UserError(
                f"unknown preprocess mode {self.preprocess!r}; choose one of {', '.join(PREPROCESS_MODES)}"
            )
        for name in ("sample_rate", "clip_duration_ms", "window_size_ms", "window_stride_ms", "feature_bin_count"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        if self.window_size_samples < 1 or self.window_stride_samples < 1:
            raise UserError(f"window_size_ms {self.window_size_ms} and window_stride_ms {self.window_stride_ms} must "
                            f"each be at least one sample ({1000 / self.sample_rate:g} ms at {self.sample_rate} Hz)")
        if self.window_size_samples > self.desired_samples:
            raise UserError(
                f"window_size_ms {self.window_size_ms} is longer than clip_duration_ms {self.clip_duration_ms}"
            )
        if self.preprocess == "micro" and self.upper_band_limit > self.sample_rate / 2:
            raise UserError(
                f"upper_band_limit {self.upper_band_limit} Hz is above the Nyquist frequency "
                f"{self.sample_rate / 2:g} Hz (half the sample rate {self.sample_rate} Hz)"
            )

    @property
    def desired_samples(self):
        """Samples in one clip."""
        return int(self.sample_rate * self.clip_duration_ms / 1000)

    @property
    def window_size_samples(self):
        return int(self.sample_rate * self.window_size_ms / 1000)

    @property
    def window_stride_samples(self):
        return int(self.sample_rate * self.window_stride_ms / 1000)

    @property
    def spectrogram_length(self):
        """Frames per clip: 49 for the defaults."""
        return 1 + (self.desired_samples - self.window_size_samples) // self.window_stride_samples

    @property
    def fft_bin_count(self):
        """Bins of the spectrogram the mfcc and average modes start from."""
        return 1 + _next_power_of_two(self.window_size_samples) // 2

    @property
    def average_window_width(self):
        """Spectrogram bins pooled into one feature in the average mode."""
        return max(1, self.fft_bin_count // self.feature_bin_count)

    @property
    def fingerprint_width(self):
        """Bins per frame: 40 for the defaults."""
        if self.preprocess == "average":
            return int(math.ceil(self.fft_bin_count / self.average_window_width))
        return self.feature_bin_count

    @property
    def shape(self):
        """(frames, bins) of one clip's features."""
        return (self.spectrogram_length, self.fingerprint_width)

    @property
    def fingerprint_size(self):
        """Values per clip: 1960 for the defaults."""
        return self.spectrogram_length * self.fingerprint_width

    def check_model_input(self, size, *, source,
                          hint="pass the run directory or matching feature flags (--preprocess, --window_stride_ms, ...)"):
        """A UserError naming `source` unless a model whose input holds `size` values fits these features."""
        if size != self.fingerprint_size:
            frames, bins = self.shape
            raise UserError(f"{source}: the model's input holds {size} values but the feature settings give "
                            f"{frames} frames x {bins} bins = {self.fingerprint_size}; {hint}")

    def frontend_options(self):
        """The micro frontend's options as keyword arguments (TensorFlow's op and ours share the names)."""
        return {name: getattr(self, name) for name in MICRO_FRONTEND_OPTIONS}

    def to_dict(self):
        return asdict(self)


def _next_power_of_two(x):
    return 1 if x == 0 else 2 ** (int(x) - 1).bit_length()
