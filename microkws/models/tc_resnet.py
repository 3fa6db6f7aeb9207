"""tc_resnet: temporal convolutions with frequency as channels.

After Choi et al., "Temporal Convolution for Real-time Keyword Spotting on Mobile Devices"
(Interspeech 2019). The 49x40 map is read as 49 frames of 40 channels: every convolution is
(k x 1) along time, so a kernel sees the whole spectrum of each frame from the first layer on and
the activation maps stay small (at most frames x channels values). A first convolution, then
residual blocks of two temporal convolutions (the first strides 2) with batch norm and ReLU, a
1x1 strided shortcut where the width changes, an average over time and a dense layer.

`separable` swaps each full temporal convolution for a depthwise (k x 1) and a 1x1 convolution
(as MatchboxNet and MixedNet-style KWS models do), for flash budgets the full blocks overrun.
Every op is a TFLM builtin with a CMSIS-NN int8 kernel: CONV_2D, DEPTHWISE_CONV_2D, ADD,
AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED (batch norms fold into the convolutions).
"""

from microkws._tensorflow import keras

from microkws.models.configs import TcResNetConfig
from microkws.models._common import StaticReshape, batch_norm, check_config, dropout, fingerprint_input, flatten


def build(*, input_shape, label_count, dropout_rate=0.1, config=TcResNetConfig()):
    """First temporal conv, the residual blocks, dropout, average over time, dense logits."""
    check_config(config, TcResNetConfig)
    inputs, x = fingerprint_input(input_shape=input_shape, label_count=label_count, dropout_rate=dropout_rate)
    frames, bins = x.shape[1:3]
    x = StaticReshape((frames, 1, bins), name="frequency_as_channels")(x)
    x = _temporal(x, config.first_filters, config.first_kernel, 1, config.separable, "conv")
    x = keras.layers.ReLU(name="conv_relu")(x)
    for i, filters in enumerate(config.block_filters, start=1):
        x = _block(x, filters, config.kernel, config.separable, f"block_{i}")
    x = dropout(dropout_rate, name="dropout")(x)
    x = keras.layers.AveragePooling2D(pool_size=x.shape[1:3], name="average_pool")(x)
    x = flatten(x, name="flatten")
    logits = keras.layers.Dense(label_count, name="logits")(x)
    return keras.Model(inputs, logits, name="tc_resnet")


def _block(x, filters, kernel, separable, name):
    shortcut = x
    if x.shape[-1] != filters:  # the block halves the frames, so the shortcut strides too
        shortcut = keras.layers.Conv2D(filters, (1, 1), strides=(2, 1), use_bias=False, name=f"{name}_shortcut")(x)
        shortcut = batch_norm(f"{name}_shortcut_bn")(shortcut)
        shortcut = keras.layers.ReLU(name=f"{name}_shortcut_relu")(shortcut)
    else:
        shortcut = keras.layers.AveragePooling2D((2, 1), strides=(2, 1), padding="same", name=f"{name}_pool")(x)
    x = _temporal(x, filters, kernel, 2, separable, f"{name}_first")
    x = keras.layers.ReLU(name=f"{name}_first_relu")(x)
    x = _temporal(x, filters, kernel, 1, separable, f"{name}_second")
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _temporal(x, filters, kernel, stride, separable, name):
    """A (kernel x 1) convolution along time with batch norm; separable: depthwise then 1x1."""
    if separable:
        # The 1x1 strides, not the depthwise: TensorFlow's CPU depthwise kernel cannot train with unequal
        # strides. The result is the same; the depthwise computes the skipped frames too (a few hundred MACs).
        x = keras.layers.DepthwiseConv2D((kernel, 1), padding="same", use_bias=False, name=f"{name}_depthwise")(x)
        x = batch_norm(f"{name}_depthwise_bn")(x)
        x = keras.layers.Conv2D(filters, (1, 1), strides=(stride, 1), use_bias=False, name=f"{name}_pointwise")(x)
    else:
        x = keras.layers.Conv2D(filters, (kernel, 1), strides=(stride, 1), padding="same", use_bias=False,
                                name=name)(x)
    return batch_norm(f"{name}_bn")(x)
