"""Multiply-accumulates of one inference, the usual measure of a KWS model's compute."""

import math

from microkws._tensorflow import keras

_COUNTED = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def count_macs(model):
    """Multiply-accumulates of one inference of `model` (batch of one).

    Counted: every Conv1D, Conv2D (grouped or not), DepthwiseConv2D and Dense
    layer, as output positions x kernel size: each output value of a
    convolution costs one MAC per kernel tap and input channel it reads,
    including taps that fall on SAME padding; a Dense layer costs
    inputs x units per position. Not counted: biases, batch normalization
    (folded into the convolutions at conversion), activations, pooling,
    dropout, reshapes and softmax. For tiny_conv on 49x40 with 4 labels this
    gives 25*20*8 * 10*8 + 4000*4 = 336,000.

    Nested models are walked into. Any other layer with weights (batch norm
    aside) raises TypeError, so a new layer type is not silently counted as free.
    """
    total = 0
    for layer in _layers(model):
        if isinstance(layer, _COUNTED):
            # Kernels are (taps..., inputs per group, outputs) for Conv and Dense,
            # (taps..., channels, multiplier) for DepthwiseConv: either way one
            # output position costs the kernel's size.
            positions = math.prod(layer.output.shape[1:-1])
            total += positions * math.prod(layer.kernel.shape)
        elif layer.weights and not isinstance(layer, keras.layers.BatchNormalization):
            raise TypeError(f"count_macs does not know how to count {type(layer).__name__} layer {layer.name!r}")
    return total


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer
