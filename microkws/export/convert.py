"""Keras model -> TFLite flatbuffers for TFLM: full-integer int8 (or uint8 ends) and float.

Both conversions start from a clone of the model with the batch fixed to 1
(`keras.Input(batch_shape=(1, frames*bins))`): with a dynamic batch the
converter keeps SHAPE / STRIDED_SLICE / PACK ops to compute reshape targets
at run time, which TFLM's micro_speech resolver does not register and which
cost flash and arena for nothing.

The integer model's input encoding is not left to calibration: an input
layer of `tf.quantization.fake_quant_with_min_max_args` with the range of
the wanted encoding makes the converter use exactly that scale and zero
point (see microkws.export.quantization for why the device needs
S = 0.10162353515625, zero point -128). FakeQuant is the documented way to
hand the converter a range (quantization-aware training uses it); here it
also clamps, as the device's int8 cast does. Every other tensor is
calibrated on the representative features.

The converted flatbuffer is then slimmed (microkws.export.slim: tensor
names and a copying RESHAPE dropped). Only public converter API is used:
`TFLiteConverter.from_keras_model`, `optimizations`, `representative_dataset`,
`target_spec.supported_ops` and `inference_input_type` / `inference_output_type`.
"""

import functools

import numpy as np

from microkws.errors import UserError, first_line
from microkws.train.config import WEIGHT_SCALES


def to_int8_tflite(model, *, representative, input_quantization=None, inference_type="int8",
                   weight_scales="per_channel"):
    """Full-integer TFLite model of `model` (float features in, probabilities out).

    representative: float32 [n, frames*bins] training features for calibration.
    input_quantization: an InputQuantization to impose on the input, or None
    to let calibration choose (the mfcc and average modes have no device mapping).
    inference_type: "int8", or "uint8" for older firmware: the converter then
    adds a QUANTIZE op at each end (uint8 <-> int8, same scale, zero point
    +128), and every op in between stays int8, the only integer type TFLM's
    kernels support.
    weight_scales: "per_channel" (the converter's default) or "per_tensor", one
    scale per weight tensor. The converter offers the second only as
    `_experimental_disable_per_channel` (what its own tests use); TFLM's and
    CMSIS-NN's integer kernels take either, broadcasting a single scale.
    Returns the flatbuffer bytes.
    """
    from microkws._tensorflow import tf

    representative = np.asarray(representative, dtype=np.float32)
    if representative.ndim != 2 or not len(representative):
        raise ValueError(f"representative must be [n, features] with n > 0, got shape {representative.shape}")
    fixed = _fixed_batch(model, input_quantization)
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[np.newaxis]] for row in representative)
    # Integer kernels only: a layer without an int8 kernel fails here rather
    # than being left in float for the device to reject.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = {"int8": tf.int8, "uint8": tf.uint8}[inference_type]
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    if weight_scales not in WEIGHT_SCALES:
        raise ValueError(f"weight_scales must be one of {', '.join(WEIGHT_SCALES)}, got {weight_scales!r}")
    converter._experimental_disable_per_channel = weight_scales == "per_tensor"
    return _convert(converter)


def to_float_tflite(model):
    """Float32 TFLite model of `model` with the batch fixed to 1. Returns the flatbuffer bytes."""
    from microkws._tensorflow import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(_fixed_batch(model, None))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return _convert(converter)


def fake_quant_range(quantization):
    """(min, max) float32 FakeQuant bounds that encode `quantization` over 256 levels.

    FakeQuant's 256 levels run from min to max with scale (max - min) / 255 and
    zero point -min / scale; the converter turns them into the int8 tensor's
    scale and (zero point - 128). So min = (-128 - int8 zero point) * scale.
    For the device mapping: min 0, max 255 * S = 25.91400146484375, both exact.
    """
    low = np.float32((-128 - quantization.int8_zero_point) * quantization.scale)
    high = np.float32((127 - quantization.int8_zero_point) * quantization.scale)
    return float(low), float(high)


def _fixed_batch(model, input_quantization):
    from microkws._tensorflow import keras

    features = model.inputs[0].shape[-1]
    inputs = keras.Input(batch_shape=(1, features), dtype="float32", name="features")
    x = inputs
    if input_quantization is not None:
        low, high = fake_quant_range(input_quantization)
        x = _fake_quant_layer()(low, high, name="input_quantization")(x)
    outputs = model(x, training=False)
    return keras.Model(inputs, outputs, name=f"{model.name}_batch1")


def _convert(converter):
    import tempfile

    from microkws._quiet import quiet
    from microkws.export.slim import slim_model
    from microkws.files import low_disk_note

    try:
        with quiet("TFLite converter"):
            model_bytes = converter.convert()
    except Exception as error:  # the converter raises bare Exception subclasses with long MLIR dumps
        note = low_disk_note(tempfile.gettempdir())
        raise UserError(f"the TFLite converter failed: {first_line(error)}{note}") from error
    return slim_model(model_bytes)


@functools.cache
def _fake_quant_layer():
    """The Keras layer class applying FakeQuant (defined on first use: importing Keras is slow)."""
    from microkws._tensorflow import keras, tf

    class InputFakeQuant(keras.layers.Layer):
        """Clamp to [low, high] and round to its 256 levels; tells the converter the input's encoding."""

        def __init__(self, low, high, **kwargs):
            super().__init__(**kwargs)
            self.low = float(low)
            self.high = float(high)

        def call(self, inputs):
            return tf.quantization.fake_quant_with_min_max_args(inputs, min=self.low, max=self.high, num_bits=8)

        def get_config(self):
            return {**super().get_config(), "low": self.low, "high": self.high}

    return InputFakeQuant
