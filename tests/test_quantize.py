import numpy as np

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
