"""Proof that an integer model runs on TensorFlow Lite Micro's own kernels, and what it costs.

`verify(model_path, ...)` loads a .tflite model into the tflite-micro Python
runtime (the C++ interpreter and kernels that run on the microcontroller)
and reports:

    model_bytes       the flatbuffer's size: the flash it takes
    arena_bytes       the smallest tensor arena that works (binary search)
    ops, macs         the op list and multiply-accumulates of one inference
    reference         whether every output equals TFLite's reference kernels bit for bit
    golden            TFLM micro_speech's four test clips and the labels they should get
    test              int8 accuracy on the run's test split, next to the float model's
    targets           the reference recipe's budget, and whether each is met

Features are what the device computes: for the micro frontend, the uint16
output mapped to int8 by the device's `to_int8` (and +128 for uint8 models);
the mfcc and average modes, which have no device frontend, are quantised
with the model's own input parameters.

The arena is measured with the Python runtime's RecordingMicroAllocator,
which keeps a few hundred bytes of bookkeeping in the arena itself, so
firmware with the plain allocator needs at most this figure.
"""

import logging
import os
from dataclasses import replace

import numpy as np

from microkws.dataset import index_dataset, load_partition
from microkws.device.firmware import refresh_model_settings
from microkws.device.golden import GOLDEN_DIR, golden_clips, golden_results
from microkws.device.report import Targets, check_targets
from microkws.device.tflm import GENEROUS_ARENA, TflmModel, smallest_arena
from microkws.errors import UserError
from microkws.export.interpreters import float_interpreter, reference_interpreter, run_interpreter
from microkws.export.quantization import device_quantization, encode_features, encode_frontend
from microkws.export.tflite_model import read_model_file
from microkws.features import FeatureConfig, compute_features
from microkws.features.micro import micro_features, to_training_scale
from microkws.files import write_json
from microkws.metrics import accuracy, confusion_matrix, top_ties
from microkws.models import count_macs
from microkws.models.keras_model import load_keras_model, model_outputs
from microkws.train import rundir

log = logging.getLogger(__name__)

REFERENCE_LABELS = ("silence", "unknown", "yes", "no")
"""micro_speech's labels, assumed for a 4-output model that comes with none."""


def verify(model_path, *, train_dir=None, data_config=None, feature_config=None, labels=None, golden_dir=None,
           report_path=None, search_arena=True, targets=Targets(), progress=False):
    """Run the integer model `model_path` on TFLM and write device_report.json; returns the report dict.

    train_dir: the run the model came from (found automatically when the
    model sits in a run directory): gives the features, labels, test split
    and float model. Without one, `data_config` (a DataConfig) names a data
    folder whose test split to score, `feature_config` the features (default
    micro_speech's) and `labels` the outputs' names.
    report_path: where device_report.json goes (default: the run directory,
    else beside the model).
    """
    model_path = _model_in(os.fspath(model_path))
    model_bytes, info = read_model_file(model_path)
    _check_integer(info, model_path)
    run_dir = train_dir if train_dir is not None else rundir.run_dir_of(model_path)
    run = rundir.read_run_config(run_dir) if run_dir is not None else None
    keras_path = rundir.trained_model_path(run_dir) if run is not None else None
    keras_model = load_keras_model(keras_path) if keras_path else None
    if run is not None:
        feature_config, labels = run.features, run.labels
        data_config = run.data if data_config is None else replace(run.data, data_dir=data_config.data_dir)
    elif labels is None and data_config is not None:
        labels = data_config.labels
    feature_config = feature_config or FeatureConfig()
    feature_config.check_model_input(info.inputs[0].size, source=model_path,
                                     hint="pass the --train_dir it was trained in or matching feature flags")
    labels, labels_source = _labels(labels, info, "the run's" if run is not None else "given")

    tflm = TflmModel(model_bytes, arena_size=GENEROUS_ARENA, source=model_path)  # a clear error if it cannot run
    arena = smallest_arena(model_bytes) if search_arena else None
    if arena is not None:
        tflm = TflmModel(model_bytes, arena_size=arena, source=model_path, probed=True)
    golden_inputs, _ = _encode(golden_clips(feature_config, golden_dir or GOLDEN_DIR), info, feature_config)
    golden = golden_results(tflm.run(golden_inputs), labels)
    seed = run.train.seed if run is not None else 0
    test, test_inputs = _test_split(tflm, info, feature_config, data_config, seed=seed, float_model=(keras_model,
                                    keras_path), strict=run is None, model_path=model_path, progress=progress)
    all_inputs = np.concatenate([golden_inputs] + ([test_inputs] if test_inputs is not None else []))

    report = {
        "model": os.path.abspath(model_path),
        "run_dir": os.path.abspath(run_dir) if run else None,
        "model_bytes": info.size_bytes,
        "arena_bytes": arena,
        "ops": list(info.ops),
        "macs": _macs(keras_model, info),
        "input": {**info.inputs[0].to_dict(), "device_mapping": _device_mapping_note(info, feature_config)},
        "output": info.outputs[0].to_dict(),
        "labels": list(labels),
        "labels_source": labels_source,
        "features": feature_config.to_dict(),
        "reference_kernels": _compare_reference(model_bytes, tflm, all_inputs, source=model_path),
        "golden": golden,
        "test": test,
    }
    report["targets"] = check_targets(report, targets)
    path = report_path or os.path.join(run_dir if run else os.path.dirname(os.path.abspath(model_path)),
                                       rundir.REPORT_FILE)
    write_json(path, report)
    report["report_path"] = os.path.abspath(path)
    refresh_model_settings(report, os.path.dirname(os.path.abspath(path)))
    return report


def _model_in(path):
    """`path`, or the int8 model of the run directory `path`."""
    if not os.path.isdir(path):
        return path
    inside = os.path.join(path, rundir.TFLITE_FILE)
    if rundir.is_run_dir(path) and os.path.isfile(inside):
        return inside
    raise UserError(f"{path}: a folder with no exported {rundir.TFLITE_FILE}; name the .tflite file, "
                    f"or run `microkws export {path}` first")


def _check_integer(info, path):
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise UserError(f"{path}: a keyword model has one input and one output; this one has "
                        f"{len(info.inputs)} and {len(info.outputs)}")
    if not info.is_integer:
        raise UserError(
            f"{path}: a {info.inputs[0].dtype} model; TFLite Micro's micro_speech runs full-integer models "
            "(int8 or uint8 input and output): pass model.tflite, not model_float.tflite"
        )


def _labels(labels, info, source):
    count = info.outputs[0].size
    if labels is not None:
        labels = tuple(labels)
        if len(labels) != count:
            raise UserError(f"{len(labels)} labels, {source} ({', '.join(labels)}), but the model has {count} outputs")
        return labels, source
    if count == len(REFERENCE_LABELS):
        log.warning("no labels given; assuming micro_speech's %s (pass --labels to name them)",
                    ",".join(REFERENCE_LABELS))
        return REFERENCE_LABELS, "assumed: micro_speech's"
    return tuple(str(i) for i in range(count)), "none given: output indices"


def _encode(clips, info, feature_config):
    """(integer model inputs [n, size], float training-scale features [n, size]) of int16 clips."""
    tensor = info.inputs[0]
    if feature_config.preprocess == "micro":
        frames = micro_features(clips, feature_config)
        return encode_frontend(frames, tensor.dtype), to_training_scale(frames).reshape(len(clips), -1)
    features = compute_features(clips, feature_config).reshape(len(clips), -1).astype(np.float32)
    return encode_features(features, tensor.dtype, scale=tensor.scale, zero_point=tensor.zero_point), features


def _device_mapping_note(info, feature_config):
    tensor = info.inputs[0]
    if feature_config.preprocess != "micro":
        return "no device frontend for this mode: inputs quantised with the model's own parameters"
    device = device_quantization(tensor.dtype)
    if tensor.scale == device.scale and tensor.zero_point == device.zero_point:
        return "exactly the device's int8 mapping"
    return (f"fed the device's mapping (scale {device.scale}, zero point {device.zero_point}); the model expects "
            f"scale {tensor.scale:.8g} ({100 * (tensor.scale / device.scale - 1):+.3f}%)")


def _test_split(tflm, info, feature_config, data_config, *, seed, float_model, strict, model_path, progress):
    """(test report, integer inputs or None). Without `strict` (a run's own data), a data folder that
    cannot be read is skipped with a warning rather than an error."""
    if data_config is None:
        return {"skipped": "no data: pass --train_dir or --data_dir"}, None
    try:
        index = index_dataset(data_config)
    except UserError as error:
        if strict:
            raise
        log.warning("test split skipped: %s", error)
        return {"skipped": str(error)}, None
    if len(index.labels) != info.outputs[0].size:
        raise UserError(f"the data settings give {len(index.labels)} labels ({', '.join(index.labels)}) but "
                        f"{model_path} has {info.outputs[0].size} outputs; pass the model's --wanted_words")
    clips, truth = load_partition(index, "testing", feature_config, seed=seed, progress=progress)
    if not len(clips):
        return {"skipped": f"{data_config.data_dir}: the test partition is empty"}, None
    inputs, features = _encode(clips, info, feature_config)
    count = len(index.labels)
    outputs = tflm.run(inputs)
    int8_predictions = np.argmax(outputs, axis=-1)
    int8_confusion = confusion_matrix(truth, int8_predictions, count)
    float_predictions, float_source = _float_predictions(*float_model, model_path, features)
    report = {
        "examples": int(len(truth)),
        "data_dir": os.path.abspath(data_config.data_dir),
        "int8_accuracy": accuracy(int8_confusion),
        "int8_confusion": int8_confusion.tolist(),
        "int8_top_ties": top_ties(outputs),
        "float_accuracy": None,
        "float_model": float_source,
    }
    if float_predictions is not None:
        float_confusion = confusion_matrix(truth, float_predictions, count)
        report["float_accuracy"] = accuracy(float_confusion)
        report["float_confusion"] = float_confusion.tolist()
        report["int8_agrees_with_float"] = float(np.mean(float_predictions == int8_predictions))
        report["int8_differs_from_float"] = int(np.sum(float_predictions != int8_predictions))
    return report, inputs


def _float_predictions(keras_model, keras_path, model_path, features):
    """Float model predictions and where the model came from: the run's model.keras, else model_float.tflite beside."""
    if keras_model is not None:
        return np.argmax(model_outputs(keras_model, features), axis=-1), keras_path
    beside = os.path.join(os.path.dirname(os.path.abspath(model_path)), rundir.FLOAT_TFLITE_FILE)
    if not os.path.isfile(beside):
        return None, None
    with open(beside, "rb") as file:
        interpreter = float_interpreter(file.read(), source=beside)
    if int(np.prod(interpreter.get_input_details()[0]["shape"])) != features.shape[1]:
        log.warning("%s: input does not match %s; no float accuracy", beside, model_path)
        return None, None
    return np.argmax(run_interpreter(interpreter, features), axis=-1), beside


def _compare_reference(model_bytes, tflm, inputs, *, source):
    expected = run_interpreter(reference_interpreter(model_bytes, source=source), inputs)
    actual = tflm.run(inputs)
    differing = int(np.sum(np.any(expected != actual, axis=-1)))
    return {"identical": differing == 0, "inputs": int(len(inputs)), "differing": differing,
            "largest_difference": int(np.max(np.abs(expected.astype(np.int32) - actual.astype(np.int32))))
            if len(inputs) else 0}


def _macs(keras_model, info):
    if keras_model is not None:
        try:
            return {"value": int(count_macs(keras_model)), "source": "Keras model"}
        except TypeError as error:  # a layer count_macs does not know: fall back to the flatbuffer
            log.debug("count_macs: %s", error)
    return {"value": int(info.macs), "source": "tflite conv/fc shapes"}
