"""tiny_conv: one strided convolution and a fully connected layer.

The original's microcontroller model (TFLM's micro_speech): designed for under
20 KB of working RAM and 32 KB of flash. For 49x40 input and 4 labels:
conv 10x8x1x8 + 8, SAME, stride 2 -> 25x20x8; dense 4000x4 + 4;
16,652 parameters and 336,000 multiply-accumulates.
"""

from microkws._tensorflow import keras

from microkws.models.configs import TinyConvConfig
from microkws.models._common import check_config, dropout, fingerprint_input, flatten, original_init


def build(*, input_shape, label_count, dropout_rate=0.5, config=TinyConvConfig()):
    """Conv -> ReLU -> dropout -> dense logits."""
    check_config(config, TinyConvConfig)
    inputs, x = fingerprint_input(input_shape=input_shape, label_count=label_count, dropout_rate=dropout_rate)
    x = keras.layers.Conv2D(
        config.filters,
        config.kernel,
        strides=config.strides,
        padding="same",
        activation="relu",
        kernel_initializer=original_init(),
        name="conv",
    )(x)
    x = dropout(dropout_rate, name="dropout")(x)
    x = flatten(x, name="flatten")
    logits = keras.layers.Dense(label_count, kernel_initializer=original_init(), name="logits")(x)
    return keras.Model(inputs, logits, name="tiny_conv")
