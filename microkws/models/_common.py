"""Pieces every builder shares: the fingerprint input, a TFLite-friendly
reshape, batch norm and dropout that train faster, the original's initializers, and argument checks."""

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


@keras.saving.register_keras_serializable(package="microkws")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training steps run TensorFlow's fused kernel.

    Why: Keras 3 computes a training batch's moments and its normalisation as separate ops, several
    passes over memory and as many in the gradient; TensorFlow's FusedBatchNormV3 (oneDNN on these CPUs)
    makes one pass and has a fused gradient. On 2 cores, batch norm + ReLU forward and backward on a
    [100, 25, 20, 64] batch (ds_cnn's blocks) took 15.4 ms unfused and 8.8 ms fused. The same statistics:
    the fused kernel's variance is the unbiased one, so it is scaled back to Keras's. Inference (and any
    case the fused kernel does not cover) is Keras's own call, so the model converts exactly as before.
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and mask is None and not self.renorm and self.scale and self.center
                and len(inputs.shape) == 4 and list(self._reduction_axes) == [0, 1, 2]
                and inputs.dtype == "float32" and keras.backend.backend() == "tensorflow"):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), variance.dtype)
        variance = variance * (count - 1) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs


@keras.saving.register_keras_serializable(package="microkws")
class PackedDropout(keras.layers.Dropout):
    """`keras.layers.Dropout` whose training mask reads each keep/drop draw from 8 or 16 bits of a random word.

    Why: TensorFlow's dropout draws one float per activation, and its random kernel costs about 4 ns a word
    on these CPUs: the tutorial's dropout (0.5 on tiny_conv's [100, 25, 20, 8]) took about 2.3 ms of a
    7 ms training step. Reading 8-bit fields of uint32 words (a bitcast, no copy) draws a quarter of the
    words. The mask has the same law: each activation kept with probability exactly 1 - rate when rate is
    a multiple of 1/256 (0.5, 0.25), else within 2**-17 of it (16-bit fields). Inference, and every case
    this does not cover, is Keras's own call, so the model converts exactly as before.
    """

    def call(self, inputs, training=False):
        if not (training and 0.0 < self.rate < 1.0 and self.noise_shape is None
                and keras.backend.backend() == "tensorflow" and inputs.dtype == "float32"):
            return super().call(inputs, training=training)
        import tensorflow as tf

        bits = 8 if float(self.rate * 256).is_integer() else 16
        field_type = tf.uint8 if bits == 8 else tf.uint16
        seed = self.seed_generator.next()
        if seed.dtype != tf.int32:  # as Keras's own dropout: the stateless kernels take int32 seeds
            seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        count = tf.size(inputs)
        per_word = 32 // bits
        words = tf.random.stateless_uniform([(count + per_word - 1) // per_word], seed, minval=None, maxval=None,
                                            dtype=tf.uint32)
        fields = tf.reshape(tf.bitcast(words, field_type), [-1])[:count]
        threshold = tf.constant(round(self.rate * 2 ** bits), field_type)
        mask = tf.cast(tf.reshape(fields >= threshold, tf.shape(inputs)), inputs.dtype) * (1.0 / (1.0 - self.rate))
        return inputs * mask


def dropout(rate, name):
    """The dropout every builder uses (PackedDropout; none in the converted model)."""
    return PackedDropout(rate, name=name)


def batch_norm(name):
    """The batch normalisation every builder uses (folded into the convolution before it at export)."""
    return FusedBatchNormalization(name=name)


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
