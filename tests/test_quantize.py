import numpy as np
import pytest

from microkws.features.micro import INT8_INPUT_SCALE, snap_to_device_grid, to_int8, to_training_scale
from microkws.train.quantize import fake_quantize_kernel


def test_input_scale_is_the_device_mapping():
    assert INT8_INPUT_SCALE == 10 / 256 * 666 / 256 == 0.10162353515625


def test_snapped_features_dequantise_the_device_int8_input_exactly():
    values = np.arange(0, 1024, dtype=np.uint16)  # past 663 the device saturates at 127
    device = (to_int8(values).astype(np.float64) + 128) * INT8_INPUT_SCALE
    np.testing.assert_array_equal(snap_to_device_grid(to_training_scale(values)), device.astype(np.float32))


def test_fake_quantized_kernels_have_255_levels_per_output_channel():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(10, 8, 1, 8)).astype(np.float32) * np.arange(1, 9, dtype=np.float32)
    rounded = np.asarray(fake_quantize_kernel(kernel))
    for channel in range(8):
        scale = np.abs(kernel[..., channel]).max() / 127
        levels = rounded[..., channel] / scale
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
        assert np.abs(levels).max() <= 127.001
        assert np.abs(rounded[..., channel] - kernel[..., channel]).max() <= scale / 2 + 1e-6
    depthwise = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)
    rounded = np.asarray(fake_quantize_kernel(depthwise, depthwise=True))
    for channel in range(4):
        scale = np.abs(depthwise[..., channel, 0]).max() / 127
        np.testing.assert_allclose(rounded[..., channel, 0] / scale, np.round(rounded[..., channel, 0] / scale),
                                   atol=1e-3)


@pytest.mark.parametrize("per_tensor", [True, False])
def test_training_rounds_the_kernels_the_converter_stores(per_tensor):
    """After quantisation-aware rounding, the converter (batch norms folded, `weight_scales` as trained) finds
    every weight already on its int8 grid: its int8 weights dequantise to the folded rounded kernels. Per
    tensor, rounding the unfolded kernel per channel (what training did before) is off the grid."""
    from microkws._tensorflow import keras, tf
    from microkws.export.convert import to_int8_tflite
    from microkws.models import build_model, with_softmax
    from microkws.models.configs import DsCnnConfig
    from microkws.train.quantize import batch_norm_multiplier
    from microkws.train.steps import _KernelRounding
    from tests.test_models import MICRO, calibrate_batch_norms, fingerprints

    keras.utils.set_random_seed(0)
    config = DsCnnConfig(filters=8, blocks=1, first_strides=(2, 4), block_filters=(12,))
    model = build_model("ds_cnn", input_shape=MICRO, label_count=4, config=config)
    calibrate_batch_norms(model, fingerprints(32, MICRO, seed=50))
    for layer in model.layers:  # trained gammas differ by channel; that is what makes per-tensor folding matter
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(np.random.default_rng(1).uniform(0.2, 3.0, layer.gamma.shape).astype(np.float32))
    rounding = _KernelRounding(model, per_tensor=per_tensor)
    floats = rounding.round()
    folded = {}
    for variable, batch_norm in zip(rounding.kernels, rounding.batch_norms):
        multiplier = 1.0 if batch_norm is None else np.asarray(batch_norm_multiplier(batch_norm))
        folded[int(np.prod(variable.shape))] = (variable.numpy().reshape(-1, multiplier.size if batch_norm else 1)
                                                * multiplier)
    flatbuffer = to_int8_tflite(with_softmax(model), representative=fingerprints(20, MICRO, seed=7),
                                weight_scales="per_tensor" if per_tensor else "per_channel")
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    stored = {}
    for tensor in interpreter.get_tensor_details():
        if tensor["dtype"] == np.int8 and tensor["index"] not in _activations(interpreter):
            quantization = tensor["quantization_parameters"]
            values = interpreter.get_tensor(tensor["index"]).astype(np.float64)
            axis = [1] * values.ndim
            axis[quantization["quantized_dimension"]] = -1
            stored[values.size] = values * quantization["scales"].reshape(axis)
    assert sorted(stored) == sorted(folded)
    for size, kernel in folded.items():
        np.testing.assert_allclose(np.sort(stored[size].ravel()), np.sort(kernel.ravel()), rtol=1e-4, atol=1e-6)
    if per_tensor:
        rounding.restore(floats)
        unfolded = _KernelRounding(model, per_tensor=False)
        unfolded.round()
        variable, batch_norm = unfolded.kernels[0], unfolded.batch_norms[0]
        kernel = variable.numpy().reshape(-1, 8) * np.asarray(batch_norm_multiplier(batch_norm))
        scale = np.abs(kernel).max() / 127
        assert np.abs(kernel / scale - np.round(kernel / scale)).max() > 0.1


def _activations(interpreter):
    """Indices of the tensors that ops write, and the input: everything but the weights."""
    written = {interpreter.get_input_details()[0]["index"]}
    for op in interpreter._get_ops_details():
        written.update(op["outputs"])
    return written
