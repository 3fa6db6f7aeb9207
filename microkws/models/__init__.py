"""Models: the original speech_commands architectures and MLPerf Tiny's DS-CNN as Keras 3 models.

Every model takes the flattened fingerprint, shape (frames*bins,) float32,
and returns logits, shape (label_count,): train with
`keras.losses.SparseCategoricalCrossentropy(from_logits=True)`. For export,
`with_softmax(model)` appends a Softmax so the TFLite model outputs
probabilities, as TFLM's micro_speech does.

    model = build_model("tiny_conv", input_shape=(49, 40), label_count=4)
    count_macs(model)  # 336000

Architectures (one module each, each with a frozen config whose defaults are
the reference's):

    single_fc            one dense layer (original)
    conv                 cnn-trad-fpool3 (original)
    low_latency_conv     cnn-one-fstride4 (original)
    low_latency_svdf     rank-2 SVDF + dense layers (original; non-streaming)
    tiny_conv            micro_speech's model (original)
    tiny_embedding_conv  tiny_conv with a second strided conv (original)
    ds_cnn               MLPerf Tiny's depthwise-separable CNN
"""

from microkws._tensorflow import keras

from microkws.errors import UserError
from microkws.models import (
    conv,
    ds_cnn,
    low_latency_conv,
    low_latency_svdf,
    single_fc,
    tiny_conv,
    tiny_embedding_conv,
)
from microkws.models.macs import count_macs

MODELS = {
    "single_fc": single_fc.build,
    "conv": conv.build,
    "low_latency_conv": low_latency_conv.build,
    "low_latency_svdf": low_latency_svdf.build,
    "tiny_conv": tiny_conv.build,
    "tiny_embedding_conv": tiny_embedding_conv.build,
    "ds_cnn": ds_cnn.build,
}
"""Architecture name -> builder(*, input_shape, label_count, dropout_rate, config) -> keras.Model."""

CONFIGS = {
    "single_fc": single_fc.SingleFcConfig,
    "conv": conv.ConvConfig,
    "low_latency_conv": low_latency_conv.LowLatencyConvConfig,
    "low_latency_svdf": low_latency_svdf.LowLatencySvdfConfig,
    "tiny_conv": tiny_conv.TinyConvConfig,
    "tiny_embedding_conv": tiny_embedding_conv.TinyEmbeddingConvConfig,
    "ds_cnn": ds_cnn.DsCnnConfig,
}
"""Architecture name -> its config dataclass (construct with no arguments for the defaults)."""


def build_model(name, *, input_shape, label_count, dropout_rate=None, config=None):
    """Build architecture `name` for features of `input_shape` = (frames, bins).

    dropout_rate: fraction of activations dropped while training (Keras
    Dropout; inactive at inference). None takes the architecture's default:
    0.5 for the original six (the original train.py's keep-probability 0.5)
    and 0.4 for ds_cnn (MLPerf's rate before pooling). Each module's docstring
    says where its dropout sits.
    config: the architecture's config (`CONFIGS[name](...)`); None for the defaults.
    Returns an uncompiled keras.Model from (frames*bins,) float32 to logits.
    """
    builder = _builder(name)
    kwargs = {"input_shape": input_shape, "label_count": label_count}
    if dropout_rate is not None:
        kwargs["dropout_rate"] = dropout_rate
    if config is not None:
        kwargs["config"] = config
    return builder(**kwargs)


def default_config(name):
    """The default config of architecture `name`."""
    _builder(name)
    return CONFIGS[name]()


def with_softmax(model):
    """`model` with a Softmax appended: logits in, probabilities out.

    The returned model shares `model`'s layers and weights (training one
    trains the other); convert this one to TFLite for the device.
    """
    probabilities = keras.layers.Softmax(name="probabilities")(model.outputs[0])
    return keras.Model(model.input, probabilities, name=f"{model.name}_probabilities")


def _builder(name):
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown model architecture {name!r}; choose one of {', '.join(MODELS)}") from None


__all__ = ["CONFIGS", "MODELS", "build_model", "count_macs", "default_config", "with_softmax"]
