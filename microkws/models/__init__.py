"""Models: the original speech_commands architectures, MLPerf Tiny's DS-CNN and two small modern
families (BC-ResNet, TC-ResNet) as Keras 3 models.

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
    bc_resnet            broadcasted residual learning (Kim et al. 2021), sized for micro_speech's budget
    tc_resnet            temporal convolutions, frequency as channels (Choi et al. 2019)

The settings (configs.py: CONFIGS, ARCHITECTURES) load without Keras; the builders, MODELS and
count_macs load Keras on first use, so making or checking a TrainConfig does not start TensorFlow.
"""

from microkws.errors import UserError
from microkws.models.configs import ARCHITECTURES, CONFIGS

__all__ = ["ARCHITECTURES", "CONFIGS", "MODELS", "build_model", "count_macs", "default_config", "with_softmax"]


def build_model(name, *, input_shape, label_count, dropout_rate=None, config=None):
    """Build architecture `name` for features of `input_shape` = (frames, bins).

    dropout_rate: fraction of activations dropped while training (Keras
    Dropout; inactive at inference). None takes the architecture's default:
    0.5 for the original six (the original train.py's keep-probability 0.5),
    0.4 for ds_cnn (MLPerf's rate before pooling) and 0.1 for bc_resnet and tc_resnet. Each module's docstring
    says where its dropout sits.
    config: the architecture's config (`CONFIGS[name](...)`); None for the defaults.
    Returns an uncompiled keras.Model from (frames*bins,) float32 to logits.
    """
    check_architecture(name)
    from microkws.models.builders import MODELS

    kwargs = {"input_shape": input_shape, "label_count": label_count}
    if dropout_rate is not None:
        kwargs["dropout_rate"] = dropout_rate
    if config is not None:
        kwargs["config"] = config
    return MODELS[name](**kwargs)


def default_config(name):
    """The default config of architecture `name`."""
    check_architecture(name)
    return CONFIGS[name]()


def check_architecture(name):
    """`name` if it is an architecture, else a UserError listing them."""
    if not isinstance(name, str) or name not in CONFIGS:
        raise UserError(f"unknown model architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return name


def with_softmax(model):
    """`model` with a Softmax appended: logits in, probabilities out.

    The returned model shares `model`'s layers and weights (training one
    trains the other); convert this one to TFLite for the device.
    """
    from microkws._tensorflow import keras

    probabilities = keras.layers.Softmax(name="probabilities")(model.outputs[0])
    return keras.Model(model.input, probabilities, name=f"{model.name}_probabilities")


def __getattr__(name):
    if name == "MODELS":
        from microkws.models.builders import MODELS

        return MODELS
    if name == "count_macs":
        from microkws.models.macs import count_macs

        return count_macs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
