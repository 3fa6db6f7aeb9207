"""conv: two convolutions and a dense layer ("cnn-trad-fpool3").

Roughly the cnn-trad-fpool3 network of Sainath & Parada, "Convolutional Neural
Networks for Small-footprint Keyword Spotting" (Interspeech 2015). Accurate but
large: about 302 K parameters and 102 M multiply-accumulates for 49x40 input.

Layout, as in the original code (whose diagram shows a second max-pool that the
code does not have): conv 20x8, 64 filters, SAME -> ReLU -> dropout ->
max-pool 2x2 stride 2 SAME -> conv 10x4, 64 filters, SAME -> ReLU -> dropout
-> dense logits.
"""

from microkws._tensorflow import keras

from microkws.models.configs import ConvConfig
from microkws.models._common import check_config, dropout, fingerprint_input, flatten, original_init


def build(*, input_shape, label_count, dropout_rate=0.5, config=ConvConfig()):
    """Conv -> ReLU -> dropout -> max-pool -> conv -> ReLU -> dropout -> dense logits."""
    check_config(config, ConvConfig)
    inputs, x = fingerprint_input(input_shape=input_shape, label_count=label_count, dropout_rate=dropout_rate)
    x = keras.layers.Conv2D(
        config.first_filters,
        config.first_kernel,
        padding="same",
        activation="relu",
        kernel_initializer=original_init(),
        name="conv_1",
    )(x)
    x = dropout(dropout_rate, name="dropout_1")(x)
    x = keras.layers.MaxPooling2D(config.pool, strides=config.pool, padding="same", name="max_pool")(x)
    x = keras.layers.Conv2D(
        config.second_filters,
        config.second_kernel,
        padding="same",
        activation="relu",
        kernel_initializer=original_init(),
        name="conv_2",
    )(x)
    x = dropout(dropout_rate, name="dropout_2")(x)
    x = flatten(x, name="flatten")
    logits = keras.layers.Dense(label_count, kernel_initializer=original_init(), name="logits")(x)
    return keras.Model(inputs, logits, name="conv")
