"""Quantization-aware training (`--quantize 1`): train the weights and inputs the int8 model will have.

Two things differ between the float model and the int8 model on the device:
- the input: the device feeds int8 features q = round(v * 256/666) - 128 of
  the frontend's uint16 output v, i.e. the training value x = v * 10/256
  snapped to a grid of step 10*666/256**2 = 0.1016 over [0, 25.9];
- the weights: int8, symmetric, per output channel or (weight_scales="per_tensor") one scale per tensor.

With `quantize`, training sees both: features are snapped to the device's
grid (validation and test too, so the best checkpoint is chosen on what the
device computes), and every step runs forward and backward with the kernels
rounded to int8, applying the gradient to the float kernels (the
straight-through estimator; microkws.train.steps). Activations are quantised by the exporter from
calibration data of the training split.

The converter folds a batch norm into the convolution before it, multiplying output channel c by
m_c = gamma_c / sqrt(moving variance_c + epsilon), and then rounds. Per channel, the scale follows m_c, so
rounding the unfolded kernel is the same rounding. Per tensor it is not: one scale, max |k m| / 127, serves
every channel, and a channel with a small m_c keeps few of its levels. So per tensor the step rounds the
folded kernel, k m, and divides m back out.
"""

from microkws._tensorflow import tf


def quantized_kernels(model):
    """The variables the exporter stores as int8 weights: every trainable kernel (2+ dimensions)."""
    return [v for v in model.trainable_variables if len(v.shape) >= 2]


def fake_quantize_kernel(kernel, *, depthwise=False, per_tensor=False, multiplier=None):
    """Round a kernel to symmetric int8 as the exporter will store it.

    Per output channel (the last axis; the last two for depthwise), or with `per_tensor` one scale for
    the kernel as folded with `multiplier` [output channels], the batch norm after it (None: none), and
    returned unfolded.
    """
    if not per_tensor:
        axes = list(range(len(kernel.shape) - (2 if depthwise else 1)))
        return _round(kernel, tf.reduce_max(tf.abs(kernel), axis=axes, keepdims=True) / 127.0)
    if multiplier is None:
        return _round(kernel, tf.reduce_max(tf.abs(kernel)) / 127.0)
    # A depthwise kernel's [inputs, multiplier] axes are its output channels in that order.
    multiplier = tf.reshape(multiplier, kernel.shape[-2:] if depthwise else [-1])
    folded = kernel * multiplier
    rounded = _round(folded, tf.reduce_max(tf.abs(folded)) / 127.0)
    return tf.where(multiplier != 0, rounded / tf.where(multiplier != 0, multiplier, 1.0), kernel)


def batch_norm_multiplier(layer):
    """m = gamma / sqrt(moving variance + epsilon) of a batch-norm layer: what folding multiplies the
    convolution before it by, per output channel."""
    gamma = layer.gamma if layer.scale else 1.0
    return gamma * tf.math.rsqrt(layer.moving_variance + layer.epsilon)


def _round(values, scale):
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    return tf.clip_by_value(tf.round(values / scale), -127.0, 127.0) * scale
