"""Model zoo: shapes, parameter and MAC counts against hand arithmetic, int8 conversion.

Expected counts are worked out by hand from the layer definitions of the
original tensorflow/examples/speech_commands/models.py (and MLPerf Tiny's
keras_model.py for ds_cnn), not read back from Keras.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from microkws.errors import UserError
from microkws.models import CONFIGS, MODELS, build_model, count_macs, default_config, with_softmax
from microkws.models.ds_cnn import DsCnnConfig
from microkws.models.low_latency_svdf import LowLatencySvdfConfig
from microkws.models.tiny_conv import TinyConvConfig

MICRO = (49, 40)  # micro_speech features: 30 ms window, 20 ms stride, 40 channels
ORIGINAL = (98, 40)  # the original train.py defaults: mfcc, 30 ms window, 10 ms stride
ORIGINAL_LABELS = 12  # 10 words + silence + unknown

# Parameters for 49x40 input and 4 labels. SAME padding with stride s gives ceil(n/s).
MICRO_PARAMS = {
    # dense 1960 -> 4
    "single_fc": 49 * 40 * 4 + 4,
    # conv 20x8x1x64 SAME; max-pool 2x2 SAME -> 25x20; conv 10x4x64x64 SAME; dense 25*20*64 -> 4
    "conv": (20 * 8 * 1 * 64 + 64) + (10 * 4 * 64 * 64 + 64) + (25 * 20 * 64 * 4 + 4),
    # conv 49x8x1x186 VALID -> 1x33x186; dense 6138 -> 128 -> 128 -> 4
    "low_latency_conv": (49 * 8 * 186 + 186) + (1 * 33 * 186 * 128 + 128) + (128 * 128 + 128) + (128 * 4 + 4),
    # SVDF: feature filters 40 x (1280*2), time filters (1280*2) x 49, bias 1280; dense 1280 -> 256 -> 256 -> 4
    "low_latency_svdf": (40 * 2560 + 2560 * 49 + 1280) + (1280 * 256 + 256) + (256 * 256 + 256) + (256 * 4 + 4),
    # conv 10x8x1x8 SAME stride 2 -> 25x20x8; dense 4000 -> 4
    "tiny_conv": (10 * 8 * 1 * 8 + 8) + (25 * 20 * 8 * 4 + 4),
    # conv 10x8x1x8 stride 2 -> 25x20x8; conv 10x8x8x8 stride 8 -> 4x3x8; dense 96 -> 4
    "tiny_embedding_conv": (10 * 8 * 1 * 8 + 8) + (10 * 8 * 8 * 8 + 8) + (4 * 3 * 8 * 4 + 4),
}

# Parameters for the original's default settings: 98x40 MFCC input and 12 labels.
ORIGINAL_PARAMS = {
    "single_fc": 98 * 40 * 12 + 12,
    # max-pool -> 49x20
    "conv": (20 * 8 * 1 * 64 + 64) + (10 * 4 * 64 * 64 + 64) + (49 * 20 * 64 * 12 + 12),
    "low_latency_conv": (98 * 8 * 186 + 186) + (1 * 33 * 186 * 128 + 128) + (128 * 128 + 128) + (128 * 12 + 12),
    "low_latency_svdf": (40 * 2560 + 2560 * 98 + 1280) + (1280 * 256 + 256) + (256 * 256 + 256) + (256 * 12 + 12),
    # stride 2 -> 49x20x8
    "tiny_conv": (10 * 8 * 1 * 8 + 8) + (49 * 20 * 8 * 12 + 12),
    # stride 2 -> 49x20x8; stride 8 -> 7x3x8
    "tiny_embedding_conv": (10 * 8 * 1 * 8 + 8) + (10 * 8 * 8 * 8 + 8) + (7 * 3 * 8 * 12 + 12),
}

# DS-CNN, independent of the input size (the pool covers the whole map):
# conv 10x4x1x64 + bias, BN; 4 x (depthwise 3x3x64 + bias, BN, pointwise 64x64 + bias, BN); dense 64 -> labels.
# Each BN holds 4*64 values, 2*64 of them the non-trainable moving mean and variance.
DS_CNN_BN = 4 * 64
DS_CNN_BLOCK = (3 * 3 * 64 + 64) + DS_CNN_BN + (64 * 64 + 64) + DS_CNN_BN
DS_CNN_PARAMS = (10 * 4 * 64 + 64) + DS_CNN_BN + 4 * DS_CNN_BLOCK + (64 * 4 + 4)
DS_CNN_NON_TRAINABLE = 9 * 2 * 64

# Multiply-accumulates for 49x40 input and 4 labels: output positions x kernel size, no biases.
MICRO_MACS = {
    "single_fc": 1960 * 4,
    "conv": 49 * 40 * 64 * (20 * 8 * 1) + 25 * 20 * 64 * (10 * 4 * 64) + 32000 * 4,
    "low_latency_conv": 33 * 186 * (49 * 8) + 6138 * 128 + 128 * 128 + 128 * 4,
    # feature filters per frame, time filters per (unit, rank), dense layers
    "low_latency_svdf": 49 * 2560 * 40 + 1280 * 2 * 49 + 1280 * 256 + 256 * 256 + 256 * 4,
    "tiny_conv": 25 * 20 * 8 * (10 * 8) + 4000 * 4,
    "tiny_embedding_conv": 25 * 20 * 8 * (10 * 8) + 4 * 3 * 8 * (10 * 8 * 8) + 96 * 4,
    # conv 25x20x64 x 10*4; 4 x (depthwise 25x20x64 x 9 + pointwise 25x20x64 x 64); dense 64 -> 4
    "ds_cnn": 25 * 20 * 64 * 40 + 4 * (25 * 20 * 64 * 9 + 25 * 20 * 64 * 64) + 64 * 4,
}

# What TFLM's micro_speech-style int8 models may contain.
ALLOWED_INT8_OPS = {
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "RESHAPE",
    "SOFTMAX",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "ADD",
    "MUL",
    "QUANTIZE",
    "DEQUANTIZE",
}


@pytest.fixture(autouse=True)
def seeded():
    """Deterministic weights: initializers draw from Keras's global seed."""
    keras.utils.set_random_seed(0)


def fingerprints(batch, shape, seed=0):
    """Random features in the micro frontend's 0..26 range, flattened like the model input."""
    return np.random.default_rng(seed).uniform(0, 26, (batch, math.prod(shape))).astype(np.float32)


def test_expected_counts_match_the_documented_figures():
    # Guards the hand arithmetic above against typos, with the figures the docstrings quote.
    assert MICRO_PARAMS["tiny_conv"] == 16_652
    assert MICRO_MACS["tiny_conv"] == 336_000
    assert MICRO_PARAMS["low_latency_svdf"] == 623_876
    assert DS_CNN_PARAMS == 24_388
    assert MICRO_MACS["ds_cnn"] == 10_624_256


def test_registry_lists_every_architecture_once():
    assert list(MODELS) == [
        "single_fc",
        "conv",
        "low_latency_conv",
        "low_latency_svdf",
        "tiny_conv",
        "tiny_embedding_conv",
        "ds_cnn",
        "bc_resnet",
        "tc_resnet",
    ]
    assert CONFIGS.keys() == MODELS.keys()


@pytest.mark.parametrize("name", sorted(MICRO_PARAMS))
def test_original_parameter_counts_for_micro_features(name):
    model = build_model(name, input_shape=MICRO, label_count=4)
    assert model.count_params() == MICRO_PARAMS[name]
    # All of them trainable: the originals have no batch norm.
    assert sum(math.prod(w.shape) for w in model.trainable_weights) == MICRO_PARAMS[name]


@pytest.mark.parametrize("name", sorted(ORIGINAL_PARAMS))
def test_original_parameter_counts_for_original_defaults(name):
    model = build_model(name, input_shape=ORIGINAL, label_count=ORIGINAL_LABELS)
    assert model.count_params() == ORIGINAL_PARAMS[name]


def test_ds_cnn_parameter_count():
    model = build_model("ds_cnn", input_shape=MICRO, label_count=4)
    assert model.count_params() == DS_CNN_PARAMS
    assert sum(math.prod(w.shape) for w in model.non_trainable_weights) == DS_CNN_NON_TRAINABLE
    # MLPerf's own input (49 frames x 10 MFCCs, 12 labels) gives the same body.
    mlperf = build_model("ds_cnn", input_shape=(49, 10), label_count=12)
    assert mlperf.count_params() == DS_CNN_PARAMS - (64 * 4 + 4) + (64 * 12 + 12)


@pytest.mark.parametrize("name", sorted(MICRO_MACS))
def test_count_macs(name):
    assert count_macs(build_model(name, input_shape=MICRO, label_count=4)) == MICRO_MACS[name]


def test_count_macs_refuses_layers_it_cannot_count():
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.SeparableConv2D(2, 3)(inputs))
    with pytest.raises(TypeError, match="SeparableConv2D"):
        count_macs(model)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape, labels", [(MICRO, 4), (ORIGINAL, ORIGINAL_LABELS)])
def test_forward_pass_gives_one_logit_per_label(name, shape, labels):
    model = build_model(name, input_shape=shape, label_count=labels)
    assert model.input_shape == (None, shape[0] * shape[1])
    logits = model(fingerprints(3, shape), training=False)
    assert logits.shape == (3, labels)
    assert np.all(np.isfinite(logits))


def test_unknown_architecture_lists_the_valid_names():
    with pytest.raises(UserError) as error:
        build_model("resnet", input_shape=MICRO, label_count=4)
    for name in MODELS:
        assert name in str(error.value)
    with pytest.raises(UserError, match="tiny_conv"):
        default_config("resnet")


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="TinyConvConfig"):
        build_model("tiny_conv", input_shape=MICRO, label_count=4, config=LowLatencySvdfConfig())
    with pytest.raises(UserError, match="filters"):
        build_model("tiny_conv", input_shape=MICRO, label_count=4, config=TinyConvConfig(filters=0))
    with pytest.raises(UserError, match="input_shape"):
        build_model("tiny_conv", input_shape=(1960,), label_count=4)
    with pytest.raises(UserError, match="label_count"):
        build_model("tiny_conv", input_shape=MICRO, label_count=0)
    with pytest.raises(UserError, match="dropout_rate"):
        build_model("tiny_conv", input_shape=MICRO, label_count=4, dropout_rate=1.0)


def test_configs_default_to_the_reference_settings():
    assert default_config("tiny_conv") == TinyConvConfig(kernel=(10, 8), filters=8, strides=(2, 2))
    assert default_config("low_latency_svdf") == LowLatencySvdfConfig(units=1280, rank=2, hidden_units=(256, 256))
    ds = default_config("ds_cnn")
    assert (ds.filters, ds.first_kernel, ds.first_strides, ds.blocks) == (64, (10, 4), (2, 2), 4)
    assert (ds.first_dropout_rate, ds.weight_decay) == (0.2, 1e-4)


def test_zero_weight_decay_means_none():
    # A config read from JSON gives 0, an int; the docstring promises 0 turns the penalty off.
    model = build_model("ds_cnn", input_shape=MICRO, label_count=4, config=DsCnnConfig(weight_decay=0))
    assert model.losses == []
    assert len(build_model("ds_cnn", input_shape=MICRO, label_count=4).losses) == 9


def test_dropout_rates_and_placement():
    def rates(model):
        return [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]

    # The original applies its one dropout rate after every ReLU and hidden dense layer.
    assert rates(build_model("single_fc", input_shape=MICRO, label_count=4)) == []
    assert rates(build_model("tiny_conv", input_shape=MICRO, label_count=4)) == [0.5]
    assert rates(build_model("conv", input_shape=MICRO, label_count=4)) == [0.5, 0.5]
    assert rates(build_model("low_latency_conv", input_shape=MICRO, label_count=4, dropout_rate=0.3)) == [0.3] * 3
    assert rates(build_model("low_latency_svdf", input_shape=MICRO, label_count=4)) == [0.5] * 3
    assert rates(build_model("tiny_embedding_conv", input_shape=MICRO, label_count=4)) == [0.5, 0.5]
    # MLPerf: 0.2 after the first conv, 0.4 before pooling.
    assert rates(build_model("ds_cnn", input_shape=MICRO, label_count=4)) == [0.2, 0.4]


def test_dropout_acts_in_training_only():
    model = build_model("tiny_conv", input_shape=MICRO, label_count=4)
    x = fingerprints(4, MICRO)
    inference = model(x, training=False)
    np.testing.assert_array_equal(inference, model(x, training=False))
    assert not np.allclose(inference, model(x, training=True))


@pytest.mark.parametrize("rate", [0.5, 0.2, 0.1])
def test_packed_dropout_keeps_each_activation_with_probability_one_minus_rate(rate):
    """PackedDropout (8-bit fields for 0.5, 16-bit for 0.2 and 0.1): kept activations scaled by 1 / (1 - rate),
    the rest 0, a new mask each call, the gradient through the same mask, and none at inference."""
    from microkws.models._common import PackedDropout

    layer = PackedDropout(rate, seed=1)
    x = tf.ones((50, 49, 40, 5))  # 490,000 activations: the kept share within 0.005 of 1 - rate (> 10 sigma)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(y)
    gradient = tape.gradient(total, x).numpy()
    y = y.numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)
    assert abs(kept.mean() - (1 - rate)) < 0.005
    np.testing.assert_array_equal(gradient, y)  # d sum(x * mask) / dx = mask
    assert not np.array_equal(kept, layer(x, training=True).numpy() != 0)
    np.testing.assert_array_equal(layer(x, training=False), x)
    # Its seed draws as Keras's: the same seed gives the same masks.
    np.testing.assert_array_equal(PackedDropout(rate, seed=1)(x, training=True), y)
    # Every builder's dropout is one.
    drops = [layer for layer in build_model("ds_cnn", input_shape=MICRO, label_count=4).layers
             if isinstance(layer, keras.layers.Dropout)]
    assert drops and all(isinstance(layer, PackedDropout) for layer in drops)


def test_with_softmax_gives_probabilities_and_shares_weights():
    model = build_model("ds_cnn", input_shape=MICRO, label_count=4)
    export = with_softmax(model)
    x = fingerprints(3, MICRO)
    probabilities = np.asarray(export(x, training=False))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probabilities, tf.nn.softmax(model(x, training=False)), rtol=1e-5, atol=1e-7)
    assert count_macs(export) == count_macs(model)
    model.get_layer("logits").bias.assign(np.array([50.0, 0, 0, 0], np.float32))
    assert np.all(np.argmax(export(x, training=False), axis=1) == 0)


def test_svdf_matches_the_original_formulation():
    # The original: activations[f, t] = x[t] . w_frequency[:, f]; unit u sums, over its rank
    # filters f and every frame t, w_time[f, t] * activations[f, t]; then bias and ReLU.
    frames, bins, units, rank = 5, 3, 4, 2
    config = LowLatencySvdfConfig(units=units, rank=rank, hidden_units=())
    model = build_model("low_latency_svdf", input_shape=(frames, bins), label_count=2, config=config)
    rng = np.random.default_rng(1)
    w_frequency = rng.normal(size=(bins, units * rank)).astype(np.float32)
    w_time = rng.normal(size=(units * rank, frames)).astype(np.float32)
    bias = rng.normal(size=units).astype(np.float32)
    # Our filter r*units + u is unit u's r-th filter (the original's filter u*rank + r).
    model.get_layer("svdf_feature").kernel.assign(w_frequency.reshape(1, bins, 1, units * rank))
    # DepthwiseConv2D kernel: [frames, rank, units, 1].
    model.get_layer("svdf_time").kernel.assign(w_time.reshape(rank, units, frames).transpose(2, 0, 1)[..., None])
    model.get_layer("svdf_time").bias.assign(bias)

    x = fingerprints(2, (frames, bins))
    activations = np.einsum("btk,kf->bft", x.reshape(2, frames, bins), w_frequency)
    per_filter = np.einsum("bft,ft->bf", activations, w_time)
    expected = np.maximum(per_filter.reshape(2, rank, units).sum(axis=1) + bias, 0.0)

    svdf = keras.Model(model.input, model.get_layer("flatten").output)
    np.testing.assert_allclose(svdf(x, training=False), expected, rtol=1e-4, atol=1e-3)


def test_fused_batch_norm_trains_as_keras_batch_norm_does():
    """FusedBatchNormalization: in training the same outputs, gradients and moving statistics as Keras'
    own layer (TensorFlow's fused kernel instead of separate moments), in inference Keras' own call."""
    from microkws.models._common import FusedBatchNormalization

    x = tf.constant(np.random.default_rng(0).normal(1.0, 3.0, size=(8, 5, 4, 3)), tf.float32)
    results = []
    for layer in (keras.layers.BatchNormalization(), FusedBatchNormalization()):
        layer.build(x.shape)
        layer.gamma.assign([1.5, 0.5, 2.0])
        layer.beta.assign([0.1, -0.2, 0.3])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * y * tf.range(3, dtype=tf.float32))
        gradients = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *gradients, layer.moving_mean, layer.moving_variance, layer(x, training=False)])
    for keras_value, fused_value in zip(*results):
        np.testing.assert_allclose(np.asarray(fused_value), np.asarray(keras_value), rtol=2e-5, atol=2e-5)
    assert not np.allclose(np.asarray(results[1][4]), 0.0)  # the moving statistics moved
    model = build_model("ds_cnn", input_shape=MICRO, label_count=4)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(isinstance(layer, FusedBatchNormalization) for layer in norms)


def test_saved_model_round_trip(tmp_path):
    # StaticReshape is a registered custom layer: a saved model loads with plain Keras.
    model = build_model("tiny_conv", input_shape=MICRO, label_count=4)
    model.save(tmp_path / "tiny_conv.keras")
    loaded = keras.models.load_model(tmp_path / "tiny_conv.keras")
    x = fingerprints(2, MICRO)
    np.testing.assert_array_equal(model(x, training=False), loaded(x, training=False))


def convert_to_int8(model, shape):
    """Full-integer conversion as the export stage does it: int8 in, int8 out."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative_dataset():
        for i in range(20):
            yield [fingerprints(1, shape, seed=i)]

    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def calibrate_batch_norms(model, x):
    """Set each batch norm's moving statistics to those of its input on `x`, in order.

    Freshly initialized, ds_cnn's activations shrink to ~1e-5 and its
    probabilities are uniform, which would make the float/int8 comparison
    vacuous; with calibrated batch norms they spread as in a trained model.
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            inputs = np.asarray(keras.Model(model.input, layer.input)(x, training=False))
            layer.moving_mean.assign(inputs.mean(axis=(0, 1, 2)))
            layer.moving_variance.assign(inputs.var(axis=(0, 1, 2)))


def op_names(flatbuffer):
    # Without the default XNNPACK delegate, so the ops listed are the model's own.
    # _get_ops_details is private; this test is what notices if it changes.
    interpreter = tf.lite.Interpreter(
        model_content=flatbuffer,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    return interpreter, [op["op_name"] for op in interpreter._get_ops_details()]


@pytest.mark.parametrize(
    "name, expected_ops",
    [
        ("tiny_conv", ["RESHAPE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]),
        pytest.param(
            "ds_cnn",
            ["RESHAPE", "CONV_2D"]
            + ["DEPTHWISE_CONV_2D", "CONV_2D"] * 4
            + ["AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"],
            marks=pytest.mark.slow,
        ),
    ],
)
def test_int8_conversion_uses_only_tflm_ops(name, expected_ops):
    model = with_softmax(build_model(name, input_shape=MICRO, label_count=4))
    calibrate_batch_norms(model, fingerprints(32, MICRO, seed=50))
    flatbuffer = convert_to_int8(model, MICRO)
    interpreter, ops = op_names(flatbuffer)
    assert set(ops) <= ALLOWED_INT8_OPS, ops
    # Batch norm folded away, one RESHAPE per reshape (no SHAPE/PACK for the batch size).
    assert ops == expected_ops

    (input_details,) = interpreter.get_input_details()
    (output_details,) = interpreter.get_output_details()
    assert list(input_details["shape"]) == [1, 1960] and input_details["dtype"] == np.int8
    assert list(output_details["shape"]) == [1, 4] and output_details["dtype"] == np.int8

    # The quantized probabilities follow the float ones (by about 0.003 at most here).
    interpreter.allocate_tensors()
    in_scale, in_zero = input_details["quantization"]
    out_scale, out_zero = output_details["quantization"]
    x = fingerprints(8, MICRO, seed=100)
    quantized = np.clip(np.round(x / in_scale + in_zero), -128, 127).astype(np.int8)
    spread = 0.0
    int8_outputs = []
    for row, q in zip(x, quantized):
        interpreter.set_tensor(input_details["index"], q[None])
        interpreter.invoke()
        int8_outputs.append(interpreter.get_tensor(output_details["index"]).copy())
        probabilities = (int8_outputs[-1].astype(np.float32) - out_zero) * out_scale
        expected = np.asarray(model(row[None], training=False))
        np.testing.assert_allclose(probabilities, expected, atol=0.03)
        spread = max(spread, float(expected.max() - expected.min()))
    assert spread > 0.05, "the float model's probabilities are too uniform for the comparison to mean anything"

    # And TFLM itself runs it, agreeing with TFLite to one step of the int8 output.
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    micro = runtime.Interpreter.from_bytes(flatbuffer)
    for q, expected in zip(quantized, int8_outputs):
        micro.set_input(q[None], 0)
        micro.invoke()
        output = micro.get_output(0)
        assert output.shape == (1, 4) and output.dtype == np.int8
        assert np.abs(output.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.slow
def test_ds_cnn_outgrows_tiny_conv_yet_fits_a_microcontroller():
    tiny = build_model("tiny_conv", input_shape=MICRO, label_count=4)
    ds_cnn = build_model("ds_cnn", input_shape=MICRO, label_count=4)
    assert ds_cnn.count_params() > tiny.count_params()
    assert count_macs(ds_cnn) > count_macs(tiny)
    # Int8 flatbuffer: under 64 KB of flash (about 49 KB; tiny_conv is about 19 KB). Calibrated
    # batch norms, since the untrained ones fold to repeated constants that the converter shares.
    calibrate_batch_norms(ds_cnn, fingerprints(32, MICRO, seed=50))
    size = len(convert_to_int8(with_softmax(ds_cnn), MICRO))
    assert size < 64 * 1024, size
