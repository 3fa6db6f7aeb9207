"""The small architectures for micro_speech's budget: bc_resnet and tc_resnet.

Counts are worked out by hand from the layer definitions (the module docstrings), not read back
from Keras; conversion is checked on TFLite and on TFLM's own kernels.
"""

import keras
import numpy as np
import pytest

from microkws.errors import UserError
from microkws.models import build_model, count_macs, with_softmax
from microkws.models.configs import BcResNetConfig, DsCnnConfig, TcResNetConfig
from tests.test_models import (
    ALLOWED_INT8_OPS,
    MICRO,
    calibrate_batch_norms,
    convert_to_int8,
    fingerprints,
    op_names,
)

BN = 4  # a batch norm holds 4 values per channel (2 of them moving statistics)
ONE_BLOCK_PER_STAGE = BcResNetConfig(stage_blocks=(1, 1, 1, 1))


def bc_resnet_stage(inputs, filters, frames, columns):
    """Parameters and MACs of a transition block: 1x1 conv, frequency depthwise 1x3, temporal depthwise 3x1,
    1x1 conv, batch norms after the first three; the map is frames x columns after the transition."""
    params = (inputs * filters + BN * filters) + (3 * filters + BN * filters) + (3 * filters + BN * filters) \
        + filters * filters
    positions = frames * columns
    macs = positions * inputs * filters + positions * 3 * filters + frames * 3 * filters + frames * filters * filters
    return params, macs


def expected_bc_resnet_one_block_per_stage():
    # First conv 5x5x1x16 stride 2 on 49x40 -> 25x20, then stages 8 (20 bins), 12 (10), 16 (5), 20 (5).
    params, macs = 5 * 5 * 16 + BN * 16, 25 * 20 * 5 * 5 * 16
    for inputs, filters, columns in ((16, 8, 20), (8, 12, 10), (12, 16, 5), (16, 20, 5)):
        p, m = bc_resnet_stage(inputs, filters, 25, columns)
        params, macs = params + p, macs + m
    # Head: depthwise 1x5 over the last 5 bins, 1x1 to 32, average over time, dense 32 -> 4.
    params += (5 * 20 + BN * 20) + (20 * 32 + BN * 32) + (32 * 4 + 4)
    macs += 25 * 5 * 20 + 25 * 20 * 32 + 32 * 4
    return params, macs


def tc_resnet8():
    # 49 frames of 40 channels: conv 3x1 40->16, then blocks 24, 32, 48 (two 9x1 convs, a strided 1x1
    # shortcut), frames 49 -> 25 -> 13 -> 7; dense 48 -> 4.
    params, macs = 3 * 40 * 16 + BN * 16, 49 * 3 * 40 * 16
    for inputs, filters, frames in ((16, 24, 25), (24, 32, 13), (32, 48, 7)):
        params += 9 * inputs * filters + 9 * filters * filters + inputs * filters + 3 * BN * filters
        macs += frames * (9 * inputs * filters + 9 * filters * filters + inputs * filters)
    return params + 48 * 4 + 4, macs + 48 * 4


STRIDED_DS_CNN = DsCnnConfig(filters=40, blocks=4, first_strides=(2, 4), block_filters=(40, 40, 64, 64),
                             block_strides=((1, 1), (1, 1), (2, 2), (1, 1)))


def expected_strided_ds_cnn():
    # Conv 10x4 stride 2x4 on 49x40 -> 25x10x40 (every conv has a bias, then BN), two blocks 40 -> 40 at
    # 25x10, block 3's depthwise strides 2x2 -> 13x5 and its pointwise widens to 64, block 4 64 -> 64; dense 64 -> 4.
    params, macs = 10 * 4 * 40 + 40 + BN * 40, 250 * 10 * 4 * 40
    for inputs, filters, positions in ((40, 40, 250), (40, 40, 250), (40, 64, 65), (64, 64, 65)):
        params += (9 * inputs + inputs + BN * inputs) + (inputs * filters + filters + BN * filters)
        macs += positions * 9 * inputs + positions * inputs * filters
    return params + 64 * 4 + 4, macs + 64 * 4


def test_hand_counts_match_the_documented_figures():
    assert expected_bc_resnet_one_block_per_stage() == (4_152, 430_928)
    assert tc_resnet8() == (65_444, 792_192)
    assert expected_strided_ds_cnn() == (15_532, 1_873_736)


def test_ds_cnn_block_widths_and_strides():
    model = build_model("ds_cnn", input_shape=MICRO, label_count=4, config=STRIDED_DS_CNN)
    assert (model.count_params(), count_macs(model)) == expected_strided_ds_cnn()
    assert model.get_layer("block_4_pointwise").output.shape[1:] == (13, 5, 64)


def test_bc_resnet_counts():
    model = build_model("bc_resnet", input_shape=MICRO, label_count=4, config=ONE_BLOCK_PER_STAGE)
    assert (model.count_params(), count_macs(model)) == expected_bc_resnet_one_block_per_stage()


def test_tc_resnet_counts():
    model = build_model("tc_resnet", input_shape=MICRO, label_count=4)
    assert (model.count_params(), count_macs(model)) == tc_resnet8()
    # Separable: each 9x1 conv becomes depthwise 9x1 (+BN) and 1x1; the first conv too.
    separable = build_model("tc_resnet", input_shape=MICRO, label_count=4, config=TcResNetConfig(separable=True))
    first = (3 * 40 + BN * 40) + (40 * 16 + BN * 16)
    blocks = sum((9 * i + BN * i) + (i * f + BN * f) + (9 * f + BN * f) + (f * f + BN * f) + (i * f + BN * f)
                 for i, f in ((16, 24), (24, 32), (32, 48)))
    assert separable.count_params() == first + blocks + 48 * 4 + 4


def test_widths_and_depths_are_config_fields():
    deeper = build_model("bc_resnet", input_shape=MICRO, label_count=4)  # BC-ResNet-1: 2, 2, 4, 4 blocks
    shallow = build_model("bc_resnet", input_shape=MICRO, label_count=4, config=ONE_BLOCK_PER_STAGE)
    assert deeper.count_params() > shallow.count_params()
    wide = BcResNetConfig(stage_blocks=(1, 1, 1, 1), stage_filters=(16, 24, 32, 40))
    assert build_model("bc_resnet", input_shape=MICRO, label_count=4, config=wide).count_params() > \
        shallow.count_params()
    narrow = build_model("tc_resnet", input_shape=MICRO, label_count=4, config=TcResNetConfig(block_filters=(8, 8)))
    assert narrow.output_shape == (None, 4) and narrow.count_params() < tc_resnet8()[0] // 10


@pytest.mark.parametrize("config, message", [
    (BcResNetConfig(stage_filters=(8, 0, 16, 20)), "stage_filters"),
    (TcResNetConfig(kernel=0), "kernel"),
])
def test_out_of_range_fields_are_user_errors(config, message):
    name = "bc_resnet" if isinstance(config, BcResNetConfig) else "tc_resnet"
    with pytest.raises(UserError, match=message):
        build_model(name, input_shape=MICRO, label_count=4, config=config)


def test_stage_fields_must_agree():
    with pytest.raises(UserError, match="one value per stage"):
        BcResNetConfig(stage_filters=(8, 12), stage_blocks=(1, 1, 1))
    with pytest.raises(UserError, match=r"block_filters must give one entry per block \(3\), got 2"):
        DsCnnConfig(blocks=3, block_filters=(40, 40))
    with pytest.raises(UserError, match="whole numbers >= 1"):
        DsCnnConfig(blocks=2, block_strides=((1, 1), (0, 2)))


def test_per_tensor_weights_run_on_tflm_like_the_float_model():
    """weight_scales="per_tensor": one scale per weight tensor, a smaller flatbuffer, the same answers on TFLM."""
    from microkws._tensorflow import tf
    from microkws.export.convert import to_int8_tflite

    keras.utils.set_random_seed(0)
    model = with_softmax(build_model("ds_cnn", input_shape=MICRO, label_count=4, config=STRIDED_DS_CNN))
    calibrate_batch_norms(model, fingerprints(32, MICRO, seed=50))
    representative = fingerprints(20, MICRO, seed=7)
    per_channel = to_int8_tflite(model, representative=representative)
    per_tensor = to_int8_tflite(model, representative=representative, weight_scales="per_tensor")

    def scale_counts(flatbuffer):  # scales per int8 tensor, weights and activations (the slim model has no names)
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
        return sorted({len(t["quantization_parameters"]["scales"]) for t in interpreter.get_tensor_details()
                       if t["dtype"] == np.int8})

    assert scale_counts(per_tensor) == [1] and scale_counts(per_channel) == [1, 4, 40, 64]
    assert len(per_tensor) < 0.7 * len(per_channel)

    assert_tflm_matches_float(model, per_tensor, tf.lite.Interpreter(model_content=per_tensor))


@pytest.mark.parametrize("name, config, expected_ops", [
    ("bc_resnet", ONE_BLOCK_PER_STAGE, {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "ADD", "RESHAPE",
                                        "FULLY_CONNECTED", "SOFTMAX"}),
    ("tc_resnet", TcResNetConfig(block_filters=(16, 24), separable=True),
     {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "ADD", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"}),
])
def test_int8_model_runs_on_tflm_like_the_float_one(name, config, expected_ops):
    keras.utils.set_random_seed(0)
    model = with_softmax(build_model(name, input_shape=MICRO, label_count=4, config=config))
    calibrate_batch_norms(model, fingerprints(32, MICRO, seed=50))
    flatbuffer = convert_to_int8(model, MICRO)
    interpreter, ops = op_names(flatbuffer)
    # Batch norms folded: no op of their own; only ops with CMSIS-NN kernels.
    assert set(ops) == expected_ops and set(ops) <= ALLOWED_INT8_OPS, ops
    assert_tflm_matches_float(model, flatbuffer, interpreter)


def assert_tflm_matches_float(model, flatbuffer, interpreter):
    """The int8 `flatbuffer` on TFLM's kernels gives the float `model`'s probabilities within 0.05 on random
    features; `interpreter` (tf.lite, the same flatbuffer) supplies the input and output quantisation."""
    (input_details,), (output_details,) = interpreter.get_input_details(), interpreter.get_output_details()
    in_scale, in_zero = input_details["quantization"]
    out_scale, out_zero = output_details["quantization"]
    x = fingerprints(6, MICRO, seed=100)
    quantized = np.clip(np.round(x / in_scale + in_zero), -128, 127).astype(np.int8)
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    micro = runtime.Interpreter.from_bytes(flatbuffer)
    expected = np.asarray(model(x, training=False))
    assert float(np.ptp(expected, axis=1).max()) > 0.05, "probabilities too uniform for the check to mean anything"
    for q, probabilities in zip(quantized, expected):
        micro.set_input(q[None], 0)
        micro.invoke()
        output = micro.get_output(0).astype(np.float32)
        np.testing.assert_allclose((output - out_zero) * out_scale, probabilities[None], atol=0.05)


@pytest.mark.slow
def test_the_recommended_model_fits_micro_speech():
    from microkws.device import Targets
    from microkws.device.budget import check_budget, model_costs
    from microkws.features import FeatureConfig
    from microkws.train.recipes import RECOMMENDED_TRAIN

    costs = model_costs(RECOMMENDED_TRAIN, FeatureConfig(), label_count=4)
    assert check_budget(costs, Targets(), what="the recommended model") == costs
    # Near the flash budget on purpose: a much smaller model would leave accuracy on the table.
    assert 16_000 < costs["flash_bytes"] <= 20_480 and costs["arena_bytes"] <= 28_672 and costs["macs"] <= 2_000_000


def test_over_budget_names_each_figure_and_by_how_much():
    from microkws.device import Targets
    from microkws.device.budget import check_budget

    with pytest.raises(UserError) as error:
        check_budget({"flash_bytes": 25_000, "arena_bytes": 1_000, "macs": 3_000_000}, Targets(), what="bc_resnet")
    message = str(error.value)
    assert "flash 25,000 is 4,520 over the 20,480 budget" in message and "macs 3,000,000 is 1,000,000 over" in message
    assert "arena" not in message and "\n" not in message
