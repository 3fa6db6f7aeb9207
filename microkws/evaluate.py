"""Scoring a model: accuracy and the confusion matrix; loading a trained model to score audio with.

`load_model` finds a model (run directory, .keras or .tflite), its labels and its feature settings;
`evaluate` scores a data folder with it; `label_files` gives the top labels of audio files.
"""

import logging
import os
from dataclasses import dataclass

import numpy as np

from microkws.errors import UserError

log = logging.getLogger(__name__)


def confusion_matrix(labels, predictions, label_count):
    """[true label, predicted label] counts."""
    matrix = np.zeros((label_count, label_count), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def accuracy(confusion):
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else 0.0


def balanced_accuracy(confusion):
    """Mean recall over the classes that have examples: every class counts the same."""
    support = confusion.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(confusion)[present] / support[present])) if present.any() else 0.0


def per_class(confusion, labels):
    """{label: {"precision", "recall", "support"}} from a confusion matrix."""
    result = {}
    for i, label in enumerate(labels):
        predicted = confusion[:, i].sum()
        actual = confusion[i].sum()
        result[label] = {
            "precision": float(confusion[i, i] / predicted) if predicted else 0.0,
            "recall": float(confusion[i, i] / actual) if actual else 0.0,
            "support": int(actual),
        }
    return result


def format_confusion(confusion, labels):
    width = max(8, *(len(label) + 1 for label in labels))
    lines = ["true \\ predicted".ljust(width + 2) + "".join(label.rjust(width) for label in labels)]
    for label, row in zip(labels, confusion):
        lines.append(label.ljust(width + 2) + "".join(str(int(n)).rjust(width) for n in row))
    return "\n".join(lines)


# --- loading a trained model ----------------------------------------------------------------------------------------

SPLITS = ("testing", "validation", "training", "all")
"""What `evaluate` scores: a partition as training defined it, or every clip of a folder ("all")."""
RUNTIMES = ("tflm", "tflite")
"""How a .tflite runs: TFLite Micro's kernels (the device's) or tf.lite's (reference kernels for integer models)."""
MODEL_KINDS = ("keras", "tflite")
"""Which model of a run directory to load: model.keras or model.tflite."""
SILENCE_FOLDER = "_silence_"
"""The folder of silence clips in Speech Commands' test archive (speech_commands_test_set_v0.02)."""
_KERAS_BATCH = 512


def label_role(label):
    """The dataset label a model output stands for: "silence" and "_silence_" are `_silence_`,
    "unknown" and "_unknown_" are `_unknown_`, any other name is the (lower-case) word itself.

    TFLM's reference model names its outputs silence, unknown, yes, no; microkws runs name them
    _silence_, _unknown_, yes, no.
    """
    from microkws.dataset import SILENCE_LABEL, UNKNOWN_LABEL

    name = str(label).strip()
    plain = name.strip("_").lower()
    if plain == "silence":
        return SILENCE_LABEL
    if plain == "unknown":
        return UNKNOWN_LABEL
    return name.lower()


def keyword_indices(labels):
    """Indices of the outputs that are words to spot (not silence, not unknown)."""
    from microkws.dataset import SILENCE_LABEL, UNKNOWN_LABEL

    return [i for i, label in enumerate(labels) if label_role(label) not in (SILENCE_LABEL, UNKNOWN_LABEL)]


def unknown_false_accepts(confusion, labels):
    """How often a clip of an unknown word is taken for a wanted word.

    {"rate": accepted / unknown clips (None without unknown clips), "accepted", "unknown_clips"}.
    The original recipe's known weakness: unknown words are few in training, so many fire a keyword.
    """
    from microkws.dataset import UNKNOWN_LABEL

    roles = [label_role(label) for label in labels]
    if UNKNOWN_LABEL not in roles:
        return {"rate": None, "accepted": 0, "unknown_clips": 0}
    row = np.asarray(confusion)[roles.index(UNKNOWN_LABEL)]
    accepted = int(sum(row[i] for i in keyword_indices(labels)))
    total = int(row.sum())
    return {"rate": accepted / total if total else None, "accepted": accepted, "unknown_clips": total}


FALSE_ACCEPT_RATES = (0.02, 0.05, 0.10, 0.20)
"""The shares of unknown clips allowed to fire a keyword at which `keyword_recall` is reported."""


def keyword_recall(probabilities, truth, labels, rates=FALSE_ACCEPT_RATES):
    """Keyword recall at fixed false-accept rates: the threshold sweep a device's detector makes.

    A clip fires when its best keyword score reaches the threshold t; a keyword clip counts as
    detected when it fires with its own word. For each rate r, t is the lowest score at which at
    most r of the unknown-word clips fire. Two models compared at equal false accepts, unlike
    argmax accuracy, do not reward one for merely leaning towards "unknown".

    probabilities: [n, labels] scores; truth: [n] label indices. Returns a list of
    {"false_accept_rate": r, "threshold", "measured_false_accepts", "recall"}, empty without
    unknown or keyword clips.
    """
    from microkws.dataset import UNKNOWN_LABEL

    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(truth)
    keywords = keyword_indices(labels)
    roles = [label_role(label) for label in labels]
    if not keywords or UNKNOWN_LABEL not in roles or not len(truth):
        return []
    scores = probabilities[:, keywords].max(axis=1)
    fired_word = np.asarray(keywords)[probabilities[:, keywords].argmax(axis=1)]
    unknown = scores[truth == roles.index(UNKNOWN_LABEL)]
    is_keyword = np.isin(truth, keywords)
    if not len(unknown) or not is_keyword.any():
        return []
    candidates = np.unique(scores)
    candidates = np.append(candidates, candidates[-1] + 1e-6)  # above every score: nothing fires
    # How many unknown clips score >= t, for every candidate t at once.
    fire_counts = len(unknown) - np.searchsorted(np.sort(unknown), candidates, side="left")
    report = []
    for rate in rates:
        # Counts fall as t rises, so the first candidate within the rate is the lowest threshold.
        first = np.argmax(fire_counts <= rate * len(unknown) + 1e-9)
        threshold = candidates[first]
        detected = (scores >= threshold) & (fired_word == truth) & is_keyword
        report.append({
            "false_accept_rate": rate,
            "threshold": float(threshold),
            "measured_false_accepts": float(fire_counts[first] / len(unknown)),
            "recall": float(detected.sum() / is_keyword.sum()),
        })
    return report


def format_keyword_recall(rows):
    """One line: "keyword recall at a false-accept rate of 2%: 66.7%, 5%: 76.0%, ..."."""
    return "keyword recall at a false-accept rate of " + ", ".join(
        f"{100 * row['false_accept_rate']:g}%: {100 * row['recall']:.1f}%" for row in rows)


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
        """"keras", "tflm" or "tflite"."""
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
        """Model inputs [n, frames * bins] from micro frontend output, uint16 [n, frames, bins].

        int8 models get the device's mapping (`to_int8`), uint8 models the same plus 128 (the older
        firmware), float models the training scale.
        """
        from microkws.features.micro import to_int8, to_training_scale, to_uint8

        frames = np.asarray(frames)
        n = len(frames)
        if self.input_dtype == "int8":
            return to_int8(frames).reshape(n, -1)
        if self.input_dtype == "uint8":
            return to_uint8(frames).reshape(n, -1)
        return self._float_inputs(to_training_scale(frames).reshape(n, -1))

    def encode_features(self, features):
        """Model inputs [n, size] from training-scale float features [n, frames, bins] (any preprocess mode).

        Integer models quantise them with the input's own scale and zero point, as tf.lite does;
        for micro features prefer `encode_frontend`, which is what the device computes.
        """
        features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
        if not self.is_quantized:
            return self._float_inputs(features)
        from microkws.export.quantization import InputQuantization

        scale, zero_point = self._backend.input_quantization
        return InputQuantization(scale=scale, zero_point=zero_point, inference_type=self.input_dtype).quantize(features)

    def encode_clips(self, clips):
        """Model inputs [n, size] of int16 clips [n, desired_samples], features computed in one batch."""
        clips = np.asarray(clips)
        if self.feature_config.preprocess == "micro":
            from microkws.features.micro import micro_features

            return self.encode_frontend(micro_features(clips, self.feature_config))
        from microkws.features import compute_features

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

    def _float_inputs(self, features):
        if self._device_grid:  # a quantisation-aware run saw features on the device's grid, in training too
            from microkws.train.quantize import snap_to_device_grid

            features = snap_to_device_grid(features)
        return features.astype(np.float32)


def load_model(model, *, labels=None, feature_config=None, runtime="tflm", prefer="keras"):
    """A KeywordModel for `model`: a run directory, a .keras file or a .tflite file (float, int8 or uint8).

    A run directory gives its model.keras (`prefer="keras"`) or model.tflite (`prefer="tflite"`); a
    model file inside a run directory (config.json beside it) takes that run's labels and features.
    Otherwise `labels` (output names in order, e.g. ("silence", "unknown", "yes", "no")), else a
    labels.txt beside the model, name the outputs and `feature_config` (default: micro_speech's)
    describes the features. `labels` given with a run replace the run's.
    runtime: for .tflite files, "tflm" (TFLite Micro's kernels, as the device) or "tflite".
    """
    from microkws.export import TFLITE_FILE
    from microkws.features import FeatureConfig
    from microkws.train.loop import CONFIG_FILE, MODEL_FILE

    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if prefer not in MODEL_KINDS:
        raise ValueError(f"prefer must be one of {', '.join(MODEL_KINDS)}, got {prefer!r}")
    path = os.fspath(model)
    if os.path.isdir(path):
        run_dir = path
        if not os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
            raise UserError(f"{run_dir}: not a microkws run directory (no {CONFIG_FILE}); pass a run directory, "
                            "a .keras or a .tflite file")
        path = os.path.join(run_dir, MODEL_FILE if prefer == "keras" else TFLITE_FILE)
        if not os.path.isfile(path):
            hint = ("finish training first" if prefer == "keras"
                    else f"export it first (`microkws export --train_dir {run_dir}`) or use the Keras model")
            raise UserError(f"{run_dir}: no {os.path.basename(path)}; {hint}")
    elif not os.path.exists(path):
        raise UserError(f"{path}: no such file or directory")
    else:
        beside = os.path.dirname(os.path.abspath(path))
        run_dir = beside if os.path.isfile(os.path.join(beside, CONFIG_FILE)) else None

    kind = os.path.splitext(path)[1].lower()
    if kind not in (".keras", ".tflite"):
        raise UserError(f"{path}: not a model; pass a run directory, a .keras or a .tflite file")
    device_grid = False
    if run_dir is not None:
        from microkws.train.loop import load_run_config

        _, feature_config, _, train_config, run_labels = load_run_config(run_dir)
        labels = tuple(labels) if labels else run_labels
        labels_source = "given" if labels != run_labels else f"{run_dir}'s {CONFIG_FILE}"
        device_grid = bool(train_config.quantize) and feature_config.preprocess == "micro"
    else:
        feature_config = feature_config or FeatureConfig()
        labels, labels_source = _bare_model_labels(path, labels)

    backend = _KerasBackend(path) if kind == ".keras" else _TfliteBackend(path, runtime)
    runtime = "keras" if kind == ".keras" else runtime
    if backend.input_size != feature_config.fingerprint_size:
        frames, bins = feature_config.shape
        raise UserError(f"{path}: the model takes {backend.input_size} values but the feature settings give "
                        f"{frames} frames x {bins} bins = {feature_config.fingerprint_size}; pass the run directory "
                        "or matching feature flags (--preprocess, --window_stride_ms, ...)")
    if backend.output_size != len(labels):
        raise UserError(f"{path}: the model has {backend.output_size} outputs but {len(labels)} labels are "
                        f"{labels_source} ({', '.join(labels)})")
    roles = [label_role(label) for label in labels]
    duplicates = sorted({role for role in roles if roles.count(role) > 1})
    if duplicates:
        raise UserError(f"labels {', '.join(labels)} name {', '.join(duplicates)} more than once")
    return KeywordModel(path=path, labels=labels, feature_config=feature_config, runtime=runtime, run_dir=run_dir,
                        device_grid=device_grid, backend=backend)


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
    from microkws.train.loop import LABELS_FILE

    if labels:
        return tuple(labels), "given"
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), LABELS_FILE)
    if os.path.isfile(beside):
        return read_labels(beside), beside
    raise UserError(f"{path}: no labels; pass --labels with the outputs' names in order "
                    "(TFLM's micro_speech model: --labels silence,unknown,yes,no) or a run directory")


class _KerasBackend:
    input_dtype = "float32"
    output_quantization = (None, None)

    def __init__(self, path):
        from microkws.device import load_keras_model

        self._model = load_keras_model(path)
        self.input_size = int(np.prod(self._model.inputs[0].shape[1:]))
        self.output_size = int(self._model.outputs[0].shape[-1])
        self._softmax = _ends_in_softmax(self._model)

    def run(self, inputs):
        outputs = np.concatenate([np.asarray(self._model(inputs[i:i + _KERAS_BATCH], training=False))
                                  for i in range(0, len(inputs), _KERAS_BATCH)])
        if not self._softmax:  # microkws runs save logits: training's loss applies the softmax
            outputs = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
            outputs /= outputs.sum(axis=-1, keepdims=True)
        return outputs.astype(np.float32)


def _ends_in_softmax(model):
    from microkws._tensorflow import keras

    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


class _TfliteBackend:
    def __init__(self, path, runtime):
        from microkws.export.tflite_model import read_model_file

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
            from microkws.device import GENEROUS_ARENA, TflmModel

            self._run = TflmModel(model_bytes, arena_size=GENEROUS_ARENA, source=path).run
        else:
            from microkws.export.interpreters import float_interpreter, reference_interpreter, run_interpreter

            make = float_interpreter if tensor_in.dtype == "float32" else reference_interpreter
            interpreter = make(model_bytes)
            self._run = lambda inputs: run_interpreter(interpreter, inputs)

    def run(self, inputs):
        return np.asarray(self._run(inputs.astype(self.input_dtype, copy=False)))


# --- scoring a data folder ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledClips:
    """What `evaluate` scores: int16 clips [n, samples], their dataset labels and where they came from."""

    clips: np.ndarray
    roles: list
    """Dataset label of each clip (_silence_, _unknown_ or a word)."""
    paths: list
    """Source file of each clip; None for silence examples made of background noise."""
    description: str
    skipped: list
    """(path, reason) of files left out."""


def evaluate(model, data_dir=None, *, split="testing", data_config=None, per_file=False, progress=False):
    """Score `model` (a KeywordModel) on labelled clips; returns the report dict.

    split: "testing", "validation" or "training" take that partition as training defined it
    (`index_dataset` with the run's data settings, or `data_config`, in `data_dir`); "all" takes
    every clip under `data_dir`, labelled by its top folder: a wanted word is itself, `_silence_` is
    silence, `_background_noise_` is skipped and any other folder is an unknown word (the layout of
    speech_commands_test_set_v0.02).
    Report keys: accuracy (a fraction), labels, confusion ([true][predicted] counts), per_class,
    unknown_false_accepts, keyword_recall (at fixed false-accept rates), examples, and with
    `per_file` the "files" list of path, true and predicted label and scores.
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "all":
        if data_dir is None:
            raise UserError("--split all needs --data_dir")
        data = folder_clips(data_dir, model, progress=progress)
    else:
        data = partition_clips(model, split, data_dir=data_dir, data_config=data_config, progress=progress)
    truth = _truth_indices(data.roles, model)
    probabilities = model.predict(data.clips)
    predictions = np.argmax(probabilities, axis=-1)
    confusion = confusion_matrix(truth, predictions, len(model.labels))
    report = {
        "model": os.path.abspath(model.path),
        "runtime": model.runtime,
        "input_dtype": model.input_dtype,
        "split": split,
        "data": data.description,
        "examples": int(len(truth)),
        "accuracy": accuracy(confusion),
        "labels": list(model.labels),
        "confusion": confusion.tolist(),
        "per_class": per_class(confusion, model.labels),
        "unknown_false_accepts": unknown_false_accepts(confusion, model.labels),
        "keyword_recall": keyword_recall(probabilities, truth, model.labels),
        "skipped": [{"path": path, "reason": reason} for path, reason in data.skipped],
    }
    if per_file:
        report["files"] = [
            {"path": path, "true": model.labels[t], "predicted": model.labels[p],
             "scores": {label: round(float(s), 6) for label, s in zip(model.labels, row)}}
            for path, t, p, row in zip(data.paths, truth, predictions, probabilities)
        ]
    return report


def partition_clips(model, split, *, data_dir=None, data_config=None, progress=False):
    """LabelledClips of one partition, as training made it (silence examples included)."""
    from dataclasses import replace

    from microkws.dataset import DataConfig, index_dataset, load_partition

    seed = 0
    if data_config is None and model.run_dir is not None:
        from microkws.train.loop import load_run_config

        data_config, _, _, train_config, _ = load_run_config(model.run_dir)
        seed = train_config.seed  # the silence examples training scored
    if data_config is None:
        if data_dir is None:
            raise UserError(f"{model.path}: not in a run directory, so no data folder is known; pass --data_dir")
        data_config = DataConfig(data_dir, wanted_words=_wanted_words(model))
    if data_dir is not None:
        data_config = replace(data_config, data_dir=os.fspath(data_dir))
    index = index_dataset(data_config)
    clips, label_ids = load_partition(index, split, model.feature_config, seed=seed, progress=progress)
    if not len(clips):
        raise UserError(f"{data_config.data_dir}: the {split} partition is empty")
    examples = index.partitions[split]
    return LabelledClips(
        clips=clips,
        roles=[index.labels[i] for i in label_ids],
        paths=[example.path for example in examples],
        description=f"{os.path.abspath(data_config.data_dir)}, {split} partition ({index.split_source} split)",
        skipped=list(index.unreadable),
    )


def folder_clips(data_dir, model, *, progress=False):
    """LabelledClips of every audio file under `data_dir`, labelled by its top folder (see `evaluate`)."""
    from microkws.audio import AudioError, check_audio
    from microkws.dataset import BACKGROUND_NOISE_DIR, SILENCE_LABEL, UNKNOWN_LABEL, load_clips

    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise UserError(f"{data_dir}: no such folder")
    wanted = set(_wanted_words(model))
    paths, roles, skipped = [], [], []
    for entry in sorted(os.scandir(data_dir), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith(".") or entry.name == BACKGROUND_NOISE_DIR:
            continue
        folder = entry.name.lower()
        role = folder if folder in wanted else SILENCE_LABEL if folder == SILENCE_FOLDER else UNKNOWN_LABEL
        for path in _audio_under(entry.path):
            try:
                check_audio(path)
            except AudioError as error:
                skipped.append((path, str(error)))
                continue
            paths.append(path)
            roles.append(role)
    for path, reason in skipped:
        log.warning("skipped unreadable audio file: %s", reason)
    if not paths:
        raise UserError(f"{data_dir}: no audio clips in its folders; expected <word>/<clip>.wav "
                        "(Speech Commands layout)")
    clips = load_clips(paths, sample_rate=model.feature_config.sample_rate,
                       length=model.feature_config.desired_samples, progress=progress, description="loading clips")
    return LabelledClips(clips=clips, roles=roles, paths=paths, skipped=skipped,
                         description=f"{os.path.abspath(data_dir)}, every clip, labelled by folder")


def _audio_under(folder):
    from microkws.audio import is_audio_path

    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, name) for name in sorted(files)
                  if not name.startswith(".") and is_audio_path(name)]
    return found


def _wanted_words(model):
    return tuple(model.roles[i] for i in keyword_indices(model.labels))


def _truth_indices(roles, model):
    index = {role: i for i, role in enumerate(model.roles)}
    missing = sorted({role for role in roles if role not in index})
    if missing:
        raise UserError(f"the data has {', '.join(missing)} examples but {model.path} has no such output "
                        f"(its labels: {', '.join(model.labels)})")
    return np.asarray([index[role] for role in roles], dtype=np.int64)


def format_evaluation(report):
    """The text `microkws evaluate` prints: accuracy, false accepts, per-class table, confusion matrix."""
    confusion = np.asarray(report["confusion"])
    lines = [
        f"model: {report['model']} ({report['runtime']}, {report['input_dtype']} input)",
        f"data: {report['data']}: {report['examples']} examples",
        f"accuracy: {100 * report['accuracy']:.2f}% ({int(np.trace(confusion))} of {report['examples']})",
    ]
    accepts = report["unknown_false_accepts"]
    if accepts["rate"] is not None:
        lines.append(f"unknown words taken for a wanted word (false accepts): {100 * accepts['rate']:.2f}% "
                     f"({accepts['accepted']} of {accepts['unknown_clips']})")
    else:
        lines.append("unknown words taken for a wanted word: no unknown-word clips")
    if report.get("keyword_recall"):
        lines.append(format_keyword_recall(report["keyword_recall"]))
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} unreadable file(s); first: {report['skipped'][0]['reason']}")
    width = max(9, *(len(label) + 2 for label in report["labels"]))
    lines.append("")
    lines.append("label".ljust(width) + "precision".rjust(11) + "recall".rjust(9) + "support".rjust(9))
    for label, entry in report["per_class"].items():
        lines.append(label.ljust(width) + f"{100 * entry['precision']:10.1f}%" + f"{100 * entry['recall']:8.1f}%"
                     + str(entry["support"]).rjust(9))
    lines.append("")
    lines.append(format_confusion(confusion, report["labels"]))
    return "\n".join(lines)


# --- labelling files (the original label_wav) -----------------------------------------------------------------------


def audio_files(paths):
    """The audio files named by `paths`: files as given, folders searched recursively (sorted)."""
    from microkws.audio import is_audio_path

    found = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            inside = _audio_under(path)
            if not inside:
                raise UserError(f"{path}: no audio files in this folder (looked for "
                                ".wav, .flac, .ogg, .aiff, ...)")
            found += inside
        elif os.path.isfile(path):
            if not is_audio_path(path):
                log.warning("%s: no audio extension; reading it anyway", path)
            found.append(path)
        else:
            raise UserError(f"{path}: no such file or directory")
    return found


def label_files(model, paths, *, how_many_labels=3):
    """[(path, [(label, probability), ...best first])] for each audio file under `paths`.

    Each file is read as training reads clips (resampled, mono, padded or trimmed to one clip,
    keeping the loudest second of a longer recording); features are computed in one batch.
    """
    from microkws.dataset import load_clips

    if how_many_labels < 1:
        raise UserError(f"--how_many_labels must be at least 1, got {how_many_labels}")
    files = audio_files(paths)
    clips = load_clips(files, sample_rate=model.feature_config.sample_rate,
                       length=model.feature_config.desired_samples)
    probabilities = model.predict(clips)
    results = []
    for path, row in zip(files, probabilities):
        best = np.argsort(-row, kind="stable")[:how_many_labels]
        results.append((path, [(model.labels[i], float(row[i])) for i in best]))
    return results
