"""tiny_embedding_conv: tiny_conv with a second, widely strided convolution.

The second convolution shrinks the feature map to a small "embedding" before
the dense layer. For 49x40 input and 4 labels:
conv 10x8x1x8 + 8, SAME, stride 2 -> 25x20x8;
conv 10x8x8x8 + 8, SAME, stride 8 -> 4x3x8; dense 96x4 + 4;
6,164 parameters and 381,824 multiply-accumulates.
"""

from microkws._tensorflow import keras

from microkws.models.configs import TinyEmbeddingConvConfig
from microkws.models._common import check_config, dropout, fingerprint_input, flatten, original_init


def build(*, input_shape, label_count, dropout_rate=0.5, config=TinyEmbeddingConvConfig()):
    """Conv -> ReLU -> dropout -> conv -> ReLU -> dropout -> dense logits."""
    check_config(config, TinyEmbeddingConvConfig)
    inputs, x = fingerprint_input(input_shape=input_shape, label_count=label_count, dropout_rate=dropout_rate)
    for i, (filters, kernel, strides) in enumerate(
        [
            (config.first_filters, config.first_kernel, config.first_strides),
            (config.second_filters, config.second_kernel, config.second_strides),
        ],
        start=1,
    ):
        x = keras.layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            activation="relu",
            kernel_initializer=original_init(),
            name=f"conv_{i}",
        )(x)
        x = dropout(dropout_rate, name=f"dropout_{i}")(x)
    x = flatten(x, name="flatten")
    logits = keras.layers.Dense(label_count, kernel_initializer=original_init(), name="logits")(x)
    return keras.Model(inputs, logits, name="tiny_embedding_conv")
