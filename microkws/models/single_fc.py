"""single_fc: one fully connected layer from the fingerprint to the logits.

The original's sanity-check model: no hidden layer, no nonlinearity and no
dropout. For 49x40 input and 4 labels it has 1960*4 + 4 = 7,844 parameters.
"""

from microkws._tensorflow import keras

from microkws.models.configs import SingleFcConfig
from microkws.models._common import check_config, fingerprint_input, original_init


def build(*, input_shape, label_count, dropout_rate=0.5, config=SingleFcConfig()):
    """Logits = fingerprint @ W + b. `dropout_rate` is checked but unused, as in the original."""
    check_config(config, SingleFcConfig)
    inputs, _ = fingerprint_input(input_shape=input_shape, label_count=label_count, dropout_rate=dropout_rate)
    # The original starts this layer's weights ten times smaller than elsewhere.
    logits = keras.layers.Dense(label_count, kernel_initializer=original_init(0.001), name="logits")(inputs)
    return keras.Model(inputs, logits, name="single_fc")
