"""low_latency_conv: one full-height convolution and three dense layers ("cnn-one-fstride4").

Roughly the cnn-one-fstride4 network of Sainath & Parada (Interspeech 2015).
The convolution spans every frame and slides over bins only (VALID, stride 1).
For 49x40 input and 4 labels: conv 49x8x1x186 + 186 -> 1x33x186;
dense 6138x128 + 128, 128x128 + 128, 128x4 + 4;
875,918 parameters and 3,208,656 multiply-accumulates.

As in the original, the hidden dense layers have no activation: only the
convolution has a ReLU. Dropout follows the ReLU and each hidden dense layer.
"""

from microkws._tensorflow import keras

from microkws.models.configs import LowLatencyConvConfig
from microkws.models._common import check_config, dropout, fingerprint_input, flatten, original_init


def build(*, input_shape, label_count, dropout_rate=0.5, config=LowLatencyConvConfig()):
    """Conv -> ReLU -> dropout -> (dense -> dropout) per hidden layer -> dense logits."""
    check_config(config, LowLatencyConvConfig)
    inputs, x = fingerprint_input(input_shape=input_shape, label_count=label_count, dropout_rate=dropout_rate)
    frames = x.shape[1]
    x = keras.layers.Conv2D(
        config.filters,
        (frames, config.kernel_bins),
        padding="valid",
        activation="relu",
        kernel_initializer=original_init(),
        name="conv",
    )(x)
    x = dropout(dropout_rate, name="dropout")(x)
    x = flatten(x, name="flatten")
    for i, units in enumerate(config.hidden_units, start=1):
        # No activation here: the original stacks these dense layers linearly.
        x = keras.layers.Dense(units, kernel_initializer=original_init(), name=f"dense_{i}")(x)
        x = dropout(dropout_rate, name=f"dense_{i}_dropout")(x)
    logits = keras.layers.Dense(label_count, kernel_initializer=original_init(), name="logits")(x)
    return keras.Model(inputs, logits, name="low_latency_conv")
