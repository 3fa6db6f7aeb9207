"""ds_cnn: the depthwise-separable CNN of the MLPerf Tiny keyword-spotting benchmark.

After Zhang et al., "Hello Edge: Keyword Spotting on Microcontrollers" (2017),
as trained in MLPerf Tiny's reference (benchmark/training/keyword_spotting):
conv 10x4 stride 2 -> BN -> ReLU -> dropout 0.2, then four blocks of
depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU, then dropout,
average pooling over the whole feature map and a dense layer. Each block's
pointwise width and depthwise stride may differ (DsCnnConfig.block_filters,
block_strides): striding frequency in an early block and widening the later
ones buys capacity where the map is small. Every
convolution is SAME-padded, with L2 weight decay 1e-4 and (as in MLPerf) a
bias that the following batch norm makes redundant. Kernels start from Keras's
default initializer, as in MLPerf (the original six use the original's
truncated normal).

Adapted to any (frames, bins): MLPerf feeds 49x10 MFCCs and pools over
(frames//2, bins//2), which for odd frame counts skips the last row; here the
pool covers the whole [ceil(frames/2), ceil(bins/2)] map. An AveragePooling2D
of that size (rather than GlobalAveragePooling2D, which becomes MEAN) converts
to TFLite's AVERAGE_POOL_2D. The batch norms fold into the convolutions at
conversion, so the int8 model holds only CONV_2D, DEPTHWISE_CONV_2D,
AVERAGE_POOL_2D, RESHAPE and FULLY_CONNECTED.

The parameter count does not depend on the input size: for 4 labels it is
24,388 (1,152 of them batch-norm moving statistics); for 49x40 input it takes
10,624,256 multiply-accumulates.
"""

from microkws._tensorflow import keras

from microkws.models.configs import DsCnnConfig
from microkws.models._common import batch_norm, check_config, dropout, fingerprint_input, flatten


def build(*, input_shape, label_count, dropout_rate=0.4, config=DsCnnConfig()):
    """Conv block, `blocks` depthwise-separable blocks, dropout, average pool, dense logits.

    `dropout_rate` (MLPerf: 0.4) is applied before the pooling; the rate after
    the first convolution is `config.first_dropout_rate`.
    """
    check_config(config, DsCnnConfig)
    inputs, x = fingerprint_input(input_shape=input_shape, label_count=label_count, dropout_rate=dropout_rate)

    x = keras.layers.Conv2D(
        config.filters,
        config.first_kernel,
        strides=config.first_strides,
        padding="same",
        kernel_regularizer=_l2(config.weight_decay),
        name="conv",
    )(x)
    x = _bn_relu(x, "conv")
    x = dropout(config.first_dropout_rate, name="conv_dropout")(x)

    block_filters = config.block_filters or (config.filters,) * config.blocks
    block_strides = config.block_strides or ((1, 1),) * config.blocks
    for i, (filters, strides) in enumerate(zip(block_filters, block_strides), start=1):
        x = keras.layers.DepthwiseConv2D(
            config.depthwise_kernel,
            strides=strides,
            padding="same",
            depthwise_regularizer=_l2(config.weight_decay),
            name=f"block_{i}_depthwise",
        )(x)
        x = _bn_relu(x, f"block_{i}_depthwise")
        x = keras.layers.Conv2D(
            filters,
            (1, 1),
            padding="same",
            kernel_regularizer=_l2(config.weight_decay),
            name=f"block_{i}_pointwise",
        )(x)
        x = _bn_relu(x, f"block_{i}_pointwise")

    x = dropout(dropout_rate, name="dropout")(x)
    x = keras.layers.AveragePooling2D(pool_size=x.shape[1:3], name="average_pool")(x)
    x = flatten(x, name="flatten")
    logits = keras.layers.Dense(label_count, name="logits")(x)
    return keras.Model(inputs, logits, name="ds_cnn")


def _bn_relu(x, name):
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _l2(weight_decay):
    return keras.regularizers.L2(weight_decay) if weight_decay else None
