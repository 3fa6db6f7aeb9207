"""bc_resnet: broadcasted residual learning, sized for micro_speech's budget.

After Kim et al., "Broadcasted Residual Learning for Efficient Keyword Spotting" (Interspeech
2021; Qualcomm's BC-ResNet). A block works on the (time, frequency) map in two parts:

- f2, frequency-depthwise: a depthwise (1 x 3) convolution along frequency and a batch norm;
- f1, temporal: f2 averaged over frequency (one value per frame and channel), a depthwise
  (3 x 1) convolution along time (dilated if the config says so), batch norm, ReLU, a 1x1 convolution
  and dropout.

The block's output is ReLU(x + f2 + f1), f1 broadcast over every frequency. A stage's first block
(a transition) changes the channel count (and strides along frequency) with a 1x1 convolution,
batch norm and ReLU first, and has no identity shortcut. After the stages, a depthwise convolution
across the whole remaining frequency axis, a 1x1 convolution, an average over time and a dense layer give the logits.

Changes from the paper, so that every op is a TFLM builtin with an optimised (CMSIS-NN) int8
kernel and the model fits micro_speech's memory: batch norm instead of SubSpectral Norm (a batch
norm folds into the convolution before it), ReLU instead of swish, the frequency average as an
AVERAGE_POOL_2D (not MEAN), and a first convolution that strides along time as well as frequency,
which halves every activation map (49x40 micro features -> 25x20). The int8 model holds only
CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, ADD, RESHAPE, FULLY_CONNECTED (and SOFTMAX at export).
"""

from microkws._tensorflow import keras

from microkws.models.configs import BcResNetConfig
from microkws.models._common import batch_norm, check_config, dropout, fingerprint_input, flatten


def build(*, input_shape, label_count, dropout_rate=0.1, config=BcResNetConfig()):
    """First conv, the stages of BC-ResBlocks, the head; `dropout_rate` is each block's (on f1)."""
    check_config(config, BcResNetConfig)
    inputs, x = fingerprint_input(input_shape=input_shape, label_count=label_count, dropout_rate=dropout_rate)
    x = _conv_bn_relu(x, config.first_filters, config.first_kernel, config.first_strides, "conv")
    for stage, (filters, blocks, stride, dilation) in enumerate(zip(
            config.stage_filters, config.stage_blocks, config.stage_frequency_strides, config.stage_dilations)):
        for block in range(blocks):
            name = f"stage_{stage + 1}_block_{block + 1}"
            transition = block == 0 and (filters != x.shape[-1] or stride != 1)
            x = _block(x, filters, stride if block == 0 else 1, dilation, dropout_rate, transition, name)
    # The head's depthwise kernel spans every remaining frequency bin: one column per frame.
    x = keras.layers.DepthwiseConv2D((1, x.shape[2]), padding="valid", use_bias=False, name="head_depthwise")(x)
    x = batch_norm("head_depthwise_bn")(x)
    x = _conv_bn_relu(x, config.head_filters, (1, 1), (1, 1), "head_pointwise")
    x = keras.layers.AveragePooling2D(pool_size=x.shape[1:3], name="average_pool")(x)
    x = flatten(x, name="flatten")
    logits = keras.layers.Dense(label_count, name="logits")(x)
    return keras.Model(inputs, logits, name="bc_resnet")


def _block(x, filters, stride, dilation, dropout_rate, transition, name):
    shortcut = None if transition else x
    if transition:
        # The stride sits here, not on the depthwise convolution as in the paper: TensorFlow's CPU
        # depthwise kernel cannot train with unequal strides.
        x = _conv_bn_relu(x, filters, (1, 1), (1, stride), f"{name}_transition")
    f2 = keras.layers.DepthwiseConv2D((1, 3), padding="same", use_bias=False, name=f"{name}_frequency")(x)
    f2 = batch_norm(f"{name}_frequency_bn")(f2)
    f1 = keras.layers.AveragePooling2D(pool_size=(1, f2.shape[2]), name=f"{name}_frequency_average")(f2)
    f1 = keras.layers.DepthwiseConv2D((3, 1), dilation_rate=(dilation, 1), padding="same", use_bias=False,
                                      name=f"{name}_temporal")(f1)
    f1 = batch_norm(f"{name}_temporal_bn")(f1)
    f1 = keras.layers.ReLU(name=f"{name}_temporal_relu")(f1)
    f1 = keras.layers.Conv2D(filters, (1, 1), use_bias=False, name=f"{name}_pointwise")(f1)
    f1 = dropout(dropout_rate, name=f"{name}_dropout")(f1)
    x = f2 if shortcut is None else keras.layers.Add(name=f"{name}_add_shortcut")([shortcut, f2])
    x = keras.layers.Add(name=f"{name}_add_broadcast")([x, f1])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _conv_bn_relu(x, filters, kernel, strides, name):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)
