"""Export a trained run for the microcontroller (the original freeze.py + toco, in one step).

`export_run(run_dir)` writes into the run directory:

    model.tflite         full-integer int8 model, batch 1, TFLM ops only: int8 features
                         [1, frames*bins] in, int8 probabilities out. For micro features the
                         input is quantised exactly as the device maps its frontend output
                         (scale 0.10162353515625, zero point -128; see export.quantization)
    model_float.tflite   the float model, batch 1, training-scale features in
    model_data.cc/.h     model.tflite as a C array for firmware (`--c_name`, default g_model)
    saved_model/         16 kHz audio in, label probabilities out, features included
                         (the original's frozen graph; see export.saved_model)

Keras and the converter load inside the functions that use them, so the light parts of this stage
(input quantisation, the flatbuffer reader, tf.lite interpreters) serve TFLM-only commands without
loading TensorFlow.

Post-training quantisation calibrates on a seeded draw of a few hundred TRAINING clips
(export.calibration); validation and test clips are never seen.
"""

import logging
import os

from microkws.export.c_source import HEADER_FILE, SOURCE_FILE, check_c_name, write_c_source
from microkws.export.quantization import (
    DEVICE_SCALE,
    InputQuantization,
    check_coverage,
    device_quantization,
    from_mean_std,
    normalize_inference_type,
)
from microkws.export.saved_model import SAVED_MODEL_DIR, load_saved_model, save_audio_model
from microkws.files import check_writable, write_bytes
from microkws.models import with_softmax
from microkws.train.rundir import FLOAT_TFLITE_FILE, TFLITE_FILE, read_run_config, trained_model_path

log = logging.getLogger(__name__)

__all__ = [
    "DEVICE_SCALE",
    "FLOAT_TFLITE_FILE",
    "HEADER_FILE",
    "InputQuantization",
    "SAVED_MODEL_DIR",
    "SOURCE_FILE",
    "TFLITE_FILE",
    "device_quantization",
    "export_run",
    "export_saved_model",
    "from_mean_std",
    "load_saved_model",
]


def export_run(run_dir, *, inference_type="int8", mean_values=None, std_values=None, c_name="g_model",
               weight_scales=None, progress=True):
    """Export the trained model of `run_dir` (see the module docstring for the files).

    inference_type: "int8", or "uint8" for older firmware (uint8 input and
    output around int8 kernels). mean_values / std_values: toco's input
    encoding, real = (q - mean) / std with q of the inference type; by
    default micro features get the device's mapping and mfcc/average
    features a calibrated range. weight_scales: "per_channel" or
    "per_tensor"; None takes the run's TrainConfig.weight_scales. Returns {"files": {name: path}}; verifying the
    model on TFLM is the device stage's (microkws.pipeline runs both).
    """
    from microkws.export.calibration import representative_features
    from microkws.export.convert import to_float_tflite, to_int8_tflite

    inference_type = normalize_inference_type(inference_type)
    check_c_name(c_name)
    config = read_run_config(run_dir)
    weight_scales = weight_scales or config.train.weight_scales
    check_writable(run_dir, what="export")
    probabilities = with_softmax(_load_run_model(run_dir, config.features))
    quantization = _input_quantization(config.features, inference_type, mean_values, std_values)

    log.info("calibrating on training clips of %s", config.data.data_dir)
    representative = representative_features(config.data, config.features, seed=config.train.seed,
                                             progress=progress)
    if mean_values is not None:
        check_coverage(quantization, representative)

    log.info("converting to %s TFLite", inference_type)
    int8_bytes = to_int8_tflite(probabilities, representative=representative, input_quantization=quantization,
                                inference_type=inference_type, weight_scales=weight_scales)
    float_bytes = to_float_tflite(probabilities)
    files = {
        TFLITE_FILE: write_bytes(os.path.join(run_dir, TFLITE_FILE), int8_bytes),
        FLOAT_TFLITE_FILE: write_bytes(os.path.join(run_dir, FLOAT_TFLITE_FILE), float_bytes),
    }
    comment = (f"{TFLITE_FILE} of {os.path.abspath(run_dir)}: {inference_type}, {weight_scales.replace('_', ' ')} "
               f"weight scales, {len(int8_bytes)} bytes; "
               f"labels {', '.join(config.labels)}")
    files[SOURCE_FILE], files[HEADER_FILE] = write_c_source(int8_bytes, run_dir, c_name=c_name, comment=comment)
    files[SAVED_MODEL_DIR] = _save_audio_model(run_dir, probabilities, config.features, config.labels)
    return {"files": files}


def export_saved_model(run_dir):
    """Write only saved_model/ (audio in, probabilities out): what `microkws freeze` does. Returns its path."""
    config = read_run_config(run_dir)
    check_writable(run_dir, what="write saved_model/")
    model = _load_run_model(run_dir, config.features)
    return _save_audio_model(run_dir, with_softmax(model), config.features, config.labels)


def _save_audio_model(run_dir, probabilities, feature_config, labels):
    log.info("saving the audio-to-probabilities SavedModel")
    return save_audio_model(probabilities, feature_config=feature_config, labels=labels,
                            path=os.path.join(run_dir, SAVED_MODEL_DIR))


def _load_run_model(run_dir, feature_config):
    from microkws.models.keras_model import load_keras_model

    path = trained_model_path(run_dir)
    model = load_keras_model(path)
    feature_config.check_model_input(model.inputs[0].shape[-1], source=path, hint="the run's features differ")
    return model


def _input_quantization(feature_config, inference_type, mean_values, std_values):
    if mean_values is not None or std_values is not None:
        return from_mean_std(mean_values, std_values, inference_type)
    if feature_config.preprocess == "micro":
        return device_quantization(inference_type)
    return None  # mfcc / average: no device mapping to match; calibration picks the range
