"""low_latency_svdf: a rank-constrained SVDF layer and three dense layers.

After Nakkiran et al., "Compressing Deep Neural Networks using a
Rank-Constrained Topology" (Interspeech 2015). Each of the SVDF's `units`
outputs is a sum of `rank` separable filters: a feature filter over the bins
of every frame, then a time filter over the frames.

The original implements the SVDF with a custom conv1d/matmul and a runtime
memory of past frames for streaming. Here it is two standard layers with the
same parameters and arithmetic, non-streaming (the whole clip at once, as the
original does in training):

* feature filters: Conv2D with a (1, bins) kernel, rank*units filters, no
  bias, so every frame gives rank*units activations -> [frames, 1, rank*units],
  reshaped to [frames, rank, units] (filter r*units + u is unit u's r-th
  feature filter; the original orders them u*rank + r, a mere relabelling);
* time filters and rank sum: DepthwiseConv2D with a (frames, rank) kernel,
  VALID, so each unit's channel is weighted over every frame and rank and
  summed -> [1, 1, units]. Its bias is the SVDF's bias; the ReLU follows.

For 49x40 input and 4 labels: 40*2560 + 49*2*1280 + 1280 SVDF parameters,
then dense 1280x256 + 256, 256x256 + 256, 256x4 + 4; 623,876 parameters and
5,537,280 multiply-accumulates. The original's non-trainable runtime memory
(units*rank x frames floats) is streaming state, not a parameter, and has no
counterpart here. (A grouped Conv2D would express the same thing but trains
hundreds of times slower on CPU, through XLA.)
"""

from microkws._tensorflow import keras

from microkws.models.configs import LowLatencySvdfConfig
from microkws.models._common import StaticReshape, check_config, dropout, fingerprint_input, flatten, original_init


def build(*, input_shape, label_count, dropout_rate=0.5, config=LowLatencySvdfConfig()):
    """SVDF -> ReLU -> dropout -> (dense -> dropout) per hidden layer -> dense logits."""
    check_config(config, LowLatencySvdfConfig)
    inputs, x = fingerprint_input(input_shape=input_shape, label_count=label_count, dropout_rate=dropout_rate)
    frames, bins = x.shape[1], x.shape[2]
    # Feature filters: [frames, bins, 1] -> [frames, 1, rank*units] -> [frames, rank, units].
    x = keras.layers.Conv2D(
        config.rank * config.units,
        (1, bins),
        use_bias=False,
        kernel_initializer=original_init(),
        name="svdf_feature",
    )(x)
    x = StaticReshape((frames, config.rank, config.units), name="svdf_split_rank")(x)
    # Time filters: one (frames, rank) kernel per unit, summing its rank filters -> [1, 1, units].
    x = keras.layers.DepthwiseConv2D(
        (frames, config.rank),
        activation="relu",
        depthwise_initializer=original_init(),
        name="svdf_time",
    )(x)
    x = flatten(x, name="flatten")
    x = dropout(dropout_rate, name="dropout")(x)
    for i, units in enumerate(config.hidden_units, start=1):
        # No activation here: the original stacks these dense layers linearly.
        x = keras.layers.Dense(units, kernel_initializer=original_init(), name=f"dense_{i}")(x)
        x = dropout(dropout_rate, name=f"dense_{i}_dropout")(x)
    logits = keras.layers.Dense(label_count, kernel_initializer=original_init(), name="logits")(x)
    return keras.Model(inputs, logits, name="low_latency_svdf")
