"""Quantization-aware training (`--quantize 1`): train the weights and inputs the int8 model will have.

Two things differ between the float model and the int8 model on the device:
- the input: the device feeds int8 features q = round(v * 256/666) - 128 of
  the frontend's uint16 output v, i.e. the training value x = v * 10/256
  snapped to a grid of step 10*666/256**2 = 0.1016 over [0, 25.9];
- the weights: int8 per output channel, symmetric.

With `quantize`, training sees both: features are snapped to the device's
grid (validation and test too, so the best checkpoint is chosen on what the
device computes), and every step runs forward and backward with the kernels
rounded to int8, applying the gradient to the float kernels (the
straight-through estimator). Activations are quantised by the exporter from
calibration data of the training split.
"""

import numpy as np

from microkws.features.micro import INT8_INPUT_SCALE


def snap_to_device_grid(features):
    """Training-scale micro features as the device's int8 input dequantises them."""
    levels = np.clip(np.floor(np.asarray(features, dtype=np.float32) / INT8_INPUT_SCALE + 0.5), 0, 255)
    return (levels * INT8_INPUT_SCALE).astype(np.float32)


def quantized_kernels(model):
    """The variables the exporter stores as int8 weights: every trainable kernel (2+ dimensions)."""
    return [v for v in model.trainable_variables if len(v.shape) >= 2]


def fake_quantize_kernel(kernel, *, depthwise=False):
    """Round a kernel to symmetric int8 per output channel (the last axis; the last two for depthwise)."""
    from microkws._tensorflow import tf

    axes = list(range(len(kernel.shape) - (2 if depthwise else 1)))
    scale = tf.reduce_max(tf.abs(kernel), axis=axes, keepdims=True) / 127.0
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    return tf.clip_by_value(tf.round(kernel / scale), -127.0, 127.0) * scale


def make_qat_train_step(model, optimizer):
    """Like loop.make_train_step, with int8-rounded kernels in the forward and backward pass."""
    from microkws._tensorflow import keras, tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    kernels = quantized_kernels(model)
    depthwise = {id(layer.depthwise_kernel) for layer in model.layers if hasattr(layer, "depthwise_kernel")}
    flags = [id(v) in depthwise for v in kernels]

    @tf.function
    def train_step(features, labels, learning_rate):
        optimizer.learning_rate.assign(learning_rate)
        floats = [tf.identity(v.value) for v in kernels]
        for variable, is_depthwise in zip(kernels, flags):
            variable.assign(fake_quantize_kernel(variable.value, depthwise=is_depthwise))
        with tf.GradientTape() as tape:
            logits = model(features, training=True)
            loss = loss_fn(labels, logits)
        gradients = tape.gradient(loss, model.trainable_variables)
        # Straight-through: the gradient at the rounded kernel updates the float kernel.
        for variable, value in zip(kernels, floats):
            variable.assign(value)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        correct = tf.equal(tf.argmax(logits, axis=-1), labels)
        return loss, tf.reduce_mean(tf.cast(correct, tf.float32))

    return train_step
