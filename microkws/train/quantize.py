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
straight-through estimator; microkws.train.steps). Activations are quantised by the exporter from
calibration data of the training split.
"""

from microkws._tensorflow import tf


def quantized_kernels(model):
    """The variables the exporter stores as int8 weights: every trainable kernel (2+ dimensions)."""
    return [v for v in model.trainable_variables if len(v.shape) >= 2]


def fake_quantize_kernel(kernel, *, depthwise=False):
    """Round a kernel to symmetric int8 per output channel (the last axis; the last two for depthwise)."""
    axes = list(range(len(kernel.shape) - (2 if depthwise else 1)))
    scale = tf.reduce_max(tf.abs(kernel), axis=axes, keepdims=True) / 127.0
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    return tf.clip_by_value(tf.round(kernel / scale), -127.0, 127.0) * scale
