"""One way to run a trained keyword model, whatever it is: a run directory, a .keras or a .tflite
(float, int8 or uint8) on Keras, tf.lite's kernels or TFLite Micro's (the device's).

`load_model` finds the model, its labels and its feature settings and returns a `KeywordModel`:
int16 clips of `feature_config.desired_samples` samples at `feature_config.sample_rate` in, label
probabilities out. Evaluation, labelling, streaming and listening all go through it.

Each backend imports what it runs on when it is made, so a .tflite on TFLM's kernels starts without
loading TensorFlow.
"""

import os

import numpy as np

from microkws.dataset.labels import label_role
from microkws.device.tflm import GENEROUS_ARENA, TflmModel
from microkws.errors import UserError
from microkws.export.quantization import encode_features, encode_frontend
from microkws.export.tflite_model import read_model_file
from microkws.features import FeatureConfig, compute_features
from microkws.features.micro import micro_features
from microkws.metrics import softmax
from microkws.train import rundir

RUNTIMES = ("tflm", "tflite", "tflite_optimized")
"""How a .tflite runs: TFLite Micro's kernels (the device's), tf.lite's (reference kernels for integer models),
or tf.lite's optimised kernels (10-15x faster than TFLM's, within a few steps of 255 of them: see
microkws.export.interpreters)."""


MODEL_KINDS = ("keras", "tflite")
"""Which model of a run directory to load: model.keras or model.tflite."""


class KeywordModel:
    """A trained keyword model with its labels and feature settings: int16 clips in, label scores out.

    Units: a clip is `feature_config.desired_samples` int16 samples at `feature_config.sample_rate`
    (16,000 samples of 16 kHz audio for the defaults). `run` returns the model's own outputs: int8
    (or uint8) for a quantised model, exactly as the device gets them, float32 probabilities otherwise;
    `probabilities` turns either into float32 probabilities. Build one with `load_model`.
    """

    def __init__(self, *, path, labels, feature_config, runtime, run_dir=None, device_grid=False, backend):
        self.path = path
        self.labels = tuple(labels)
        self.feature_config = feature_config
        self.runtime = runtime
        """"keras" or one of RUNTIMES."""
        self.run_dir = run_dir
        self._device_grid = device_grid
        self._backend = backend

    @property
    def input_dtype(self):
        """"int8", "uint8" or "float32"."""
        return self._backend.input_dtype

    @property
    def is_quantized(self):
        return self.input_dtype in ("int8", "uint8")

    @property
    def output_scale(self):
        """(scale, zero point) of a quantised output; (None, None) for float probabilities."""
        return self._backend.output_quantization

    @property
    def roles(self):
        """`label_role` of each output: the labels as the dataset names them."""
        return tuple(label_role(label) for label in self.labels)

    def encode_frontend(self, frames):
        """Model inputs [n, frames * bins] from micro frontend output, uint16 [n, frames, bins]: the
        device's int8 mapping, +128 for uint8 models, the training scale for float models."""
        return encode_frontend(frames, self.input_dtype, device_grid=self._device_grid)

    def encode_features(self, features):
        """Model inputs [n, size] from training-scale float features [n, frames, bins] (any preprocess mode).

        Integer models quantise them with the input's own scale and zero point, as tf.lite does;
        for micro features prefer `encode_frontend`, which is what the device computes.
        """
        scale, zero_point = self._backend.input_quantization
        return encode_features(features, self.input_dtype, scale=scale, zero_point=zero_point,
                               device_grid=self._device_grid)

    def encode_clips(self, clips):
        """Model inputs [n, size] of int16 clips [n, desired_samples], features computed in one batch."""
        clips = np.asarray(clips)
        if self.feature_config.preprocess == "micro":
            return self.encode_frontend(micro_features(clips, self.feature_config))
        return self.encode_features(compute_features(clips, self.feature_config))

    def run(self, inputs):
        """The model's outputs [n, labels] for inputs [n, size] (see the class docstring for their type)."""
        inputs = np.asarray(inputs)
        if not len(inputs):
            return np.zeros((0, len(self.labels)), np.int8 if self.is_quantized else np.float32)
        return self._backend.run(inputs)

    def probabilities(self, outputs):
        """float32 probabilities [n, labels] of `run`'s outputs."""
        scale, zero_point = self.output_scale
        outputs = np.asarray(outputs)
        if scale is None:
            return outputs.astype(np.float32)
        return ((outputs.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32)

    def predict(self, clips):
        """float32 probabilities [n, labels] of int16 clips [n, desired_samples]."""
        return self.probabilities(self.run(self.encode_clips(clips)))

    def score_threshold(self, probability):
        """A detection threshold given as a probability, in the units of `run`'s outputs.

        Quantised outputs (scale 1/256) average to integers 0..255 on the device, and "average above p"
        is "integer average above floor(p * 256)"; float outputs keep the probability.
        """
        scale, _ = self.output_scale
        if scale is None:
            return float(probability)
        return int(np.floor(float(probability) / scale + 1e-9))


def load_model(model, *, labels=None, feature_config=None, runtime="tflm", prefer="keras"):
    """A KeywordModel for `model`: a run directory, a .keras file or a .tflite file (float, int8 or uint8).

    A run directory gives its model.keras (`prefer="keras"`) or model.tflite (`prefer="tflite"`); a
    model file inside a run directory (config.json beside it) takes that run's labels and features.
    Otherwise `labels` (output names in order, e.g. ("silence", "unknown", "yes", "no")), else a
    labels.txt beside the model, name the outputs and `feature_config` (default: micro_speech's)
    describes the features. `labels` given with a run replace the run's.
    runtime: for .tflite files, "tflm" (TFLite Micro's kernels, as the device), "tflite" (tf.lite's reference
    kernels) or "tflite_optimized" (tf.lite's optimised kernels, for long streams).
    """
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if prefer not in MODEL_KINDS:
        raise ValueError(f"prefer must be one of {', '.join(MODEL_KINDS)}, got {prefer!r}")
    path, run_dir = _model_file(os.fspath(model), prefer)
    kind = os.path.splitext(path)[1].lower()
    if kind not in (".keras", ".tflite"):
        raise UserError(f"{path}: not a model; pass a run directory, a .keras or a .tflite file")
    device_grid = False
    if run_dir is not None:
        run = rundir.read_run_config(run_dir)
        feature_config, device_grid = run.features, run.device_grid
        labels = tuple(labels) if labels else run.labels
        labels_source = "given" if labels != run.labels else f"{run_dir}'s {rundir.CONFIG_FILE}"
    else:
        feature_config = feature_config or FeatureConfig()
        labels, labels_source = _bare_model_labels(path, labels)

    backend = _KerasBackend(path) if kind == ".keras" else _TfliteBackend(path, runtime)
    feature_config.check_model_input(backend.input_size, source=path)
    if backend.output_size != len(labels):
        raise UserError(f"{path}: the model has {backend.output_size} outputs but {len(labels)} labels are "
                        f"{labels_source} ({', '.join(labels)})")
    roles = [label_role(label) for label in labels]
    duplicates = sorted({role for role in roles if roles.count(role) > 1})
    if duplicates:
        raise UserError(f"labels {', '.join(labels)} name {', '.join(duplicates)} more than once")
    return KeywordModel(path=path, labels=labels, feature_config=feature_config, run_dir=run_dir,
                        runtime="keras" if kind == ".keras" else runtime, device_grid=device_grid, backend=backend)


def _model_file(path, prefer):
    """(model file, its run directory or None) of what the user named."""
    if not os.path.isdir(path):
        if not os.path.exists(path):
            raise UserError(f"{path}: no such file or directory")
        return path, rundir.run_dir_of(path)
    if not rundir.is_run_dir(path):
        raise UserError(f"{path}: not a microkws run directory (no {rundir.CONFIG_FILE}); pass a run directory, "
                        "a .keras or a .tflite file")
    model_path = os.path.join(path, rundir.MODEL_FILE if prefer == "keras" else rundir.TFLITE_FILE)
    if not os.path.isfile(model_path):
        hint = ("finish training first" if prefer == "keras"
                else f"export it first (`microkws export --train_dir {path}`) or use the Keras model")
        raise UserError(f"{path}: no {os.path.basename(model_path)}; {hint}")
    return model_path, path


def read_labels(text):
    """Labels from a comma-separated list ("silence,unknown,yes,no") or a labels file (one per line)."""
    if text is None:
        return None
    if os.path.isfile(text):
        try:
            with open(text, encoding="utf-8") as file:
                labels = tuple(line.strip() for line in file if line.strip())
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"{text}: cannot read the labels ({error})") from None
        if not labels:
            raise UserError(f"{text}: the labels file is empty")
        return labels
    labels = tuple(item.strip() for item in str(text).split(",") if item.strip())
    if not labels:
        raise UserError("--labels is empty; name the outputs in order, e.g. --labels silence,unknown,yes,no")
    return labels


def _bare_model_labels(path, labels):
    if labels:
        return tuple(labels), "given"
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), rundir.LABELS_FILE)
    if os.path.isfile(beside):
        return read_labels(beside), beside
    raise UserError(f"{path}: no labels; pass --labels with the outputs' names in order "
                    "(TFLM's micro_speech model: --labels silence,unknown,yes,no) or a run directory")


class _KerasBackend:
    input_dtype = "float32"
    input_quantization = (None, None)
    output_quantization = (None, None)

    def __init__(self, path):
        from microkws.models.keras_model import ends_in_softmax, load_keras_model

        self._model = load_keras_model(path)
        inputs, outputs = getattr(self._model, "inputs", None) or [], getattr(self._model, "outputs", None) or []
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError(f"{path}: a keyword model has one input and one output; this one has "
                            f"{len(inputs)} and {len(outputs)}")
        self.input_size = int(np.prod(self._model.inputs[0].shape[1:]))
        self.output_size = int(self._model.outputs[0].shape[-1])
        self._softmax = ends_in_softmax(self._model)

    def run(self, inputs):
        from microkws.models.keras_model import model_outputs

        outputs = model_outputs(self._model, inputs)
        # microkws runs save logits: training's loss applies the softmax
        return outputs if self._softmax else softmax(outputs)


class _TfliteBackend:
    def __init__(self, path, runtime):
        model_bytes, info = read_model_file(path)
        if len(info.inputs) != 1 or len(info.outputs) != 1:
            raise UserError(f"{path}: a keyword model has one input and one output; this one has "
                            f"{len(info.inputs)} and {len(info.outputs)}")
        tensor_in, tensor_out = info.inputs[0], info.outputs[0]
        if tensor_in.dtype not in ("int8", "uint8", "float32"):
            raise UserError(f"{path}: {tensor_in.dtype} input; expected int8, uint8 or float32")
        self.input_dtype = tensor_in.dtype
        self.input_quantization = (tensor_in.scale, tensor_in.zero_point)
        quantized_out = tensor_out.dtype in ("int8", "uint8") and tensor_out.scale is not None
        self.output_quantization = (tensor_out.scale, tensor_out.zero_point) if quantized_out else (None, None)
        self.input_size = tensor_in.size
        self.output_size = tensor_out.size
        if runtime == "tflm":
            self._run = TflmModel(model_bytes, arena_size=GENEROUS_ARENA, source=path, workers=os.cpu_count() or 1).run
        else:
            from microkws.export.interpreters import (float_interpreter, optimized_interpreter,
                                                      reference_interpreter, run_interpreter)

            make = reference_interpreter if runtime == "tflite" else optimized_interpreter
            make = float_interpreter if tensor_in.dtype == "float32" else make
            interpreter = make(model_bytes, source=path)
            self._run = lambda inputs: run_interpreter(interpreter, inputs)

    def run(self, inputs):
        return np.asarray(self._run(inputs.astype(self.input_dtype, copy=False)))
