"""Pieces every builder shares: the fingerprint input, a TFLite-friendly
reshape, the original's initializers, and argument checks."""

import math
from dataclasses import fields

from microkws._tensorflow import keras

from microkws.errors import UserError

ORIGINAL_STDDEV = 0.01
"""Std-dev of the original's truncated-normal kernel initializer (single_fc uses 0.001)."""


@keras.saving.register_keras_serializable(package="microkws")
class StaticReshape(keras.layers.Reshape):
    """`keras.layers.Reshape` that writes the batch dimension as -1.

    Keras 3's Reshape (and Flatten) build the new shape from the runtime batch
    size, which the TFLite converter turns into SHAPE + STRIDED_SLICE + PACK
    ahead of every RESHAPE. With -1 the shape is a constant and the converted
    model has one RESHAPE op, as the device expects. The target shape must be
    fully known.
    """

    def call(self, inputs):
        return keras.ops.reshape(inputs, (-1, *self.target_shape))


def fingerprint_input(*, input_shape, label_count, dropout_rate):
    """Check the common builder arguments; return the flat input and the
    fingerprint reshaped to [batch, frames, bins, 1].

    The model input is the flattened fingerprint, frames*bins float32 values
    with each frame's bins contiguous, oldest frame first (the original's
    fingerprint_input and TFLM micro_speech's [1, 1960] input).
    """
    frames, bins = check_input_shape(input_shape)
    if not isinstance(label_count, int) or isinstance(label_count, bool) or label_count < 1:
        raise UserError(f"label_count must be a positive integer, got {label_count!r}")
    if not 0.0 <= dropout_rate < 1.0:
        raise UserError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
    inputs = keras.Input(shape=(frames * bins,), dtype="float32", name="fingerprint")
    spectrogram = StaticReshape((frames, bins, 1), name="spectrogram")(inputs)
    return inputs, spectrogram


def check_input_shape(input_shape):
    """(frames, bins) as two positive ints, or a UserError."""
    try:
        frames, bins = (int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise UserError(f"input_shape must be (frames, bins), got {input_shape!r}") from None
    if frames < 1 or bins < 1:
        raise UserError(f"input_shape must be (frames, bins) of positive sizes, got {input_shape!r}")
    return frames, bins


def flatten(x, name):
    """Flatten all but the batch dimension with a single constant-shape RESHAPE."""
    return StaticReshape((math.prod(x.shape[1:]),), name=name)(x)


def original_init(stddev=ORIGINAL_STDDEV):
    """A fresh truncated-normal initializer, as the original uses for every kernel."""
    return keras.initializers.TruncatedNormal(stddev=stddev)


def check_config(config, config_class):
    """Reject a config of another architecture, and non-positive sizes (the int and tuple-of-int fields)."""
    if not isinstance(config, config_class):
        raise UserError(f"expected a {config_class.__name__}, got {type(config).__name__}")
    for field in fields(config):
        if field.type is float:  # rates and penalties check their own ranges; 0 may mean "none"
            continue
        for value in _ints(getattr(config, field.name)):
            if value < 1:
                raise UserError(
                    f"{config_class.__name__}.{field.name} must be positive, got {getattr(config, field.name)!r}"
                )


def _ints(value):
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, tuple):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []
