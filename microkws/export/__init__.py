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
    device_report.json   `microkws.device.verify` of model.tflite: flash, arena, ops, MACs,
                         TFLM vs reference kernels, golden clips, int8 vs float accuracy

Post-training quantisation calibrates on a seeded draw of a few hundred TRAINING clips
(export.calibration); validation and test clips are never seen.
"""

import logging
import os

from microkws.errors import UserError
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

log = logging.getLogger(__name__)

TFLITE_FILE = "model.tflite"
FLOAT_TFLITE_FILE = "model_float.tflite"

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


def export_run(run_dir, *, inference_type="int8", mean_values=None, std_values=None, c_name="g_model", verify=True,
               progress=True):
    """Export the trained model of `run_dir` (see the module docstring for the files).

    inference_type: "int8", or "uint8" for older firmware (uint8 input and
    output around int8 kernels). mean_values / std_values: toco's input
    encoding, real = (q - mean) / std with q of the inference type; by
    default micro features get the device's mapping and mfcc/average
    features a calibrated range. verify: run `microkws.device.verify` and
    write device_report.json. Returns {"files": {name: path}, "report": dict or None}.
    """
    from microkws.export.calibration import representative_features
    from microkws.export.convert import to_float_tflite, to_int8_tflite
    from microkws.files import write_bytes
    from microkws.train.loop import load_run_config

    inference_type = normalize_inference_type(inference_type)
    check_c_name(c_name)
    data_config, feature_config, _, train_config, labels = load_run_config(run_dir)
    model = _load_run_model(run_dir, feature_config)
    quantization = _input_quantization(feature_config, inference_type, mean_values, std_values)

    log.info("calibrating on training clips of %s", data_config.data_dir)
    representative = representative_features(data_config, feature_config, seed=train_config.seed, progress=progress)
    if mean_values is not None:
        check_coverage(quantization, representative)

    from microkws.models import with_softmax

    probabilities = with_softmax(model)
    log.info("converting to %s TFLite", inference_type)
    int8_bytes = to_int8_tflite(probabilities, representative=representative, input_quantization=quantization,
                                inference_type=inference_type)
    float_bytes = to_float_tflite(probabilities)
    files = {
        TFLITE_FILE: write_bytes(os.path.join(run_dir, TFLITE_FILE), int8_bytes),
        FLOAT_TFLITE_FILE: write_bytes(os.path.join(run_dir, FLOAT_TFLITE_FILE), float_bytes),
    }
    comment = (f"{TFLITE_FILE} of {os.path.abspath(run_dir)}: {inference_type}, {len(int8_bytes)} bytes; "
               f"labels {', '.join(labels)}")
    files[SOURCE_FILE], files[HEADER_FILE] = write_c_source(int8_bytes, run_dir, c_name=c_name, comment=comment)
    files[SAVED_MODEL_DIR] = _save_audio_model(run_dir, probabilities, feature_config, labels)

    report = None
    if verify:
        from microkws.device import REPORT_FILE
        from microkws.device import verify as verify_model

        report = verify_model(files[TFLITE_FILE], train_dir=run_dir, progress=progress)
        files[REPORT_FILE] = report["report_path"]
    return {"files": files, "report": report}


def export_saved_model(run_dir):
    """Write only saved_model/ (audio in, probabilities out): what `microkws freeze` does. Returns its path."""
    from microkws.models import with_softmax
    from microkws.train.loop import load_run_config

    _, feature_config, _, _, labels = load_run_config(run_dir)
    model = _load_run_model(run_dir, feature_config)
    return _save_audio_model(run_dir, with_softmax(model), feature_config, labels)


def _save_audio_model(run_dir, probabilities, feature_config, labels):
    log.info("saving the audio-to-probabilities SavedModel")
    return save_audio_model(probabilities, feature_config=feature_config, labels=labels,
                            path=os.path.join(run_dir, SAVED_MODEL_DIR))


def _load_run_model(run_dir, feature_config):
    from microkws.device import load_keras_model
    from microkws.train.loop import MODEL_FILE

    path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{run_dir}: no {MODEL_FILE}, so no trained model to export; finish training first "
                        f"(re-run `microkws train --train_dir {run_dir}` to resume)")
    model = load_keras_model(path)
    size = model.inputs[0].shape[-1]
    if size != feature_config.fingerprint_size:
        raise UserError(f"{path}: the model takes {size} values but the run's features give "
                        f"{feature_config.fingerprint_size}")
    return model


def _input_quantization(feature_config, inference_type, mean_values, std_values):
    if mean_values is not None or std_values is not None:
        return from_mean_std(mean_values, std_values, inference_type)
    if feature_config.preprocess == "micro":
        return device_quantization(inference_type)
    return None  # mfcc / average: no device mapping to match; calibration picks the range
