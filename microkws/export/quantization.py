"""The quantisation of the model's input: what one int8 (or uint8) step means in features.

The device's mapping (TFLM micro_speech, micro_features_generator.cc) turns the
frontend's uint16 output v into an int8 input

    q = clamp(((v * 256) + 333) // 666 - 128, -128, 127)      # round(v * 256 / 666) - 128

while the model trains on x = v * 10 / 256 (the original's scaling). Write
v = x * 25.6 and the device computes q + 128 = round(x * 25.6 * 256 / 666) = round(x / S) with

    S = (10 / 256) * (666 / 256) = 666 / 6553.6 = 0.10162353515625

so the device's input is TFLite quantisation with scale S and zero point -128:
x = (q + 128) * S. S is a dyadic fraction (6660 / 2**16), exact in float32, and
the rounding never ties (v * 256 is even, 333 is odd), so an int8 model with
these parameters sees exactly the values the training features round to.
The converter would pick the input scale from calibration (the largest
feature it saw), which is close to S but not S: export fixes it instead
(microkws.export.convert).

The older uint8 firmware used the same mapping without the -128: uint8 input,
scale S, zero point 0.

toco's `--mean_values` / `--std_values` describe the input the other way
round: real = (q - mean) / std, so scale = 1 / std and zero point = mean, with
q of the inference type (int8: -128..127, uint8: 0..255). The tutorial's
uint8 `--mean_values=0 --std_values=9.8077` maps 0..255 to 0..26.
"""

from dataclasses import dataclass

import numpy as np

from microkws.errors import UserError
from microkws.features.micro import INT8_INPUT_SCALE, snap_to_device_grid, to_int8, to_training_scale, to_uint8

DEVICE_SCALE = INT8_INPUT_SCALE
"""0.10162353515625: one step of the device's int8 feature, in training-scale units."""
INFERENCE_TYPES = {"int8": (-128, 127), "uint8": (0, 255)}
"""Input/output type of the integer model -> its (lowest, highest) value."""
TOCO_INFERENCE_TYPES = {"quantized_uint8": "uint8", "quantized_int8": "int8", "int8": "int8", "uint8": "uint8"}
"""toco's --inference_type spellings -> ours."""


@dataclass(frozen=True)
class InputQuantization:
    """How the integer model's input encodes a feature: real = (q - zero_point) * scale."""

    scale: float
    """Feature units per step."""
    zero_point: int
    """The integer that means 0.0, in the inference type's range."""
    inference_type: str = "int8"
    """"int8" or "uint8": the input tensor's type."""

    def __post_init__(self):
        if self.inference_type not in INFERENCE_TYPES:
            raise UserError(f"inference_type must be int8 or uint8, got {self.inference_type!r}")
        if not self.scale > 0 or not np.isfinite(self.scale):
            raise UserError(f"the input scale must be a positive number, got {self.scale}")
        low, high = INFERENCE_TYPES[self.inference_type]
        if self.zero_point != int(self.zero_point) or not low <= self.zero_point <= high:
            raise UserError(
                f"the input zero point (--mean_values) must be a whole number in {low}..{high} for "
                f"{self.inference_type} input, got {self.zero_point}"
            )

    @property
    def real_range(self):
        """(lowest, highest) feature value the input can hold."""
        low, high = INFERENCE_TYPES[self.inference_type]
        return ((low - self.zero_point) * self.scale, (high - self.zero_point) * self.scale)

    @property
    def int8_zero_point(self):
        """Zero point of the same encoding shifted to int8, as the converter's internal tensors hold it."""
        return self.zero_point - (128 if self.inference_type == "uint8" else 0)

    def quantize(self, features):
        """Float features -> integers of the inference type (round half to even, clamp), as TFLite does."""
        low, high = INFERENCE_TYPES[self.inference_type]
        values = np.round(np.asarray(features, dtype=np.float64) / self.scale) + self.zero_point
        return np.clip(values, low, high).astype(self.inference_type)

    def to_dict(self):
        return {"scale": self.scale, "zero_point": self.zero_point, "inference_type": self.inference_type}


def device_quantization(inference_type="int8"):
    """The micro frontend's device mapping: scale S, zero point -128 (int8) or 0 (uint8)."""
    return InputQuantization(
        scale=DEVICE_SCALE, zero_point=-128 if inference_type == "int8" else 0, inference_type=inference_type
    )


def from_mean_std(mean, std, inference_type="int8"):
    """toco's --mean_values / --std_values: real = (q - mean) / std."""
    if std is None or mean is None:
        raise UserError("give both --mean_values and --std_values, or neither")
    if not std > 0:
        raise UserError(f"--std_values must be positive, got {std}")
    if float(mean) != round(float(mean)):
        raise UserError(f"--mean_values must be a whole number (it is the zero point), got {mean}")
    return InputQuantization(scale=1.0 / float(std), zero_point=int(round(float(mean))),
                             inference_type=inference_type)


def normalize_inference_type(name):
    """"int8", "uint8" or toco's QUANTIZED_UINT8 -> "int8" / "uint8"."""
    try:
        return TOCO_INFERENCE_TYPES[str(name).strip().lower()]
    except KeyError:
        raise UserError(f"inference_type must be int8 or uint8 (toco: QUANTIZED_UINT8), got {name!r}") from None


def check_coverage(quantization, features, *, tolerance=0.01):
    """UserError when more than `tolerance` of the calibration features fall outside the input's range.

    Catches the classic mistake of toco's uint8 `--mean_values=0` given with an
    int8 input, which would clip every feature above 13 to 13.
    """
    low, high = quantization.real_range
    values = np.asarray(features)
    outside = float(np.mean((values < low - quantization.scale / 2) | (values > high + quantization.scale / 2)))
    if outside > tolerance:
        raise UserError(
            f"the {quantization.inference_type} input covers features {low:.4g}..{high:.4g} "
            f"(zero point {quantization.zero_point}, scale {quantization.scale:.6g}) but "
            f"{100 * outside:.1f}% of the training features ({values.min():.4g}..{values.max():.4g}) fall "
            "outside it; check --mean_values/--std_values (toco's uint8 mean 0 is int8 mean -128)"
        )


def encode_frontend(frames, dtype, *, device_grid=False):
    """Model inputs [n, frames * bins] from micro frontend output, uint16 [n, frames, bins].

    int8 models get the device's mapping (`to_int8`), uint8 models the same plus 128 (the older
    firmware), float models the training scale (on the device's grid when `device_grid`: a
    quantisation-aware run trained on it).
    """
    frames = np.asarray(frames)
    n = len(frames)
    if dtype == "int8":
        return to_int8(frames).reshape(n, -1)
    if dtype == "uint8":
        return to_uint8(frames).reshape(n, -1)
    return encode_features(to_training_scale(frames), dtype, device_grid=device_grid)


def encode_features(features, dtype, *, scale=None, zero_point=None, device_grid=False):
    """Model inputs [n, size] from training-scale float features [n, ...] (any preprocess mode).

    Integer models quantise them with the input's own scale and zero point, as tf.lite does (for
    micro features prefer `encode_frontend`, which is what the device computes); float models take
    them as they are, on the device's grid when `device_grid`.
    """
    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    if dtype in INFERENCE_TYPES:
        return InputQuantization(scale=scale, zero_point=zero_point, inference_type=dtype).quantize(features)
    return snap_to_device_grid(features) if device_grid else features
