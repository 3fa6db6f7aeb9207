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

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from microkws.errors import UserError

log = logging.getLogger(__name__)

REPORT_FILE = "device_report.json"
GOLDEN_DIR = Path(__file__).resolve().parent / "export" / "golden_clips"
GOLDEN_CLIPS = {
    "yes_1000ms.wav": "yes",
    "no_1000ms.wav": "no",
    "silence_1000ms.wav": "silence",
    "noise_1000ms.wav": "silence",
}
"""TFLM micro_speech's test clips -> the label its tests expect."""
REFERENCE_LABELS = ("silence", "unknown", "yes", "no")
"""micro_speech's labels, assumed for a 4-output model that comes with none."""
GENEROUS_ARENA = 16 * 1024 * 1024
"""Arena for the first load: big enough for any keyword model, so a failure is not about memory."""
MAX_ARENA = 64 * 1024 * 1024


@dataclass(frozen=True)
class Targets:
    """The budget of the reference recipe (tiny_conv on micro features, TFLM's micro_speech)."""

    flash_bytes: int = 19_000
    """Largest model flatbuffer (micro_speech_quantized.tflite is 18,800 bytes)."""
    arena_bytes: int = 10 * 1024
    """Largest tensor arena (micro_speech reserves 10 KB)."""
    accuracy_drop_points: float = 0.5
    """Largest fall of test accuracy from float to int8, in percentage points."""


@dataclass(frozen=True)
class Run:
    """What verify takes from a run directory."""

    run_dir: str
    data_config: object
    feature_config: object
    labels: tuple
    seed: int


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
    from microkws.export.tflite_model import read_model_file
    from microkws.features import FeatureConfig

    model_path = os.fspath(model_path)
    model_bytes, info = read_model_file(model_path)
    _check_integer(info, model_path)
    run = _find_run(model_path, train_dir)
    if run is not None:
        feature_config = run.feature_config
        data_config = _with_data_dir(run.data_config, data_config)
        labels = run.labels
    elif labels is None and data_config is not None:
        labels = data_config.labels
    feature_config = feature_config or FeatureConfig()
    _check_fits(info, feature_config, model_path)
    labels, labels_source = _labels(labels, info, "the run's" if run is not None else "given")

    tflm = TflmModel(model_bytes, arena_size=GENEROUS_ARENA, source=model_path)
    arena = smallest_arena(model_bytes) if search_arena else None
    if arena is not None:
        tflm = TflmModel(model_bytes, arena_size=arena, source=model_path)

    keras_model = load_keras_model(os.path.join(run.run_dir, _model_file())) if run is not None else None
    golden_inputs, golden = _golden(tflm, info, feature_config, labels, golden_dir or GOLDEN_DIR)
    test, test_inputs = _test_split(tflm, info, feature_config, data_config, run, keras_model, model_path,
                                    progress=progress)
    all_inputs = np.concatenate([golden_inputs] + ([test_inputs] if test_inputs is not None else []))
    reference = _compare_reference(model_bytes, tflm, all_inputs)

    report = {
        "model": os.path.abspath(model_path),
        "run_dir": os.path.abspath(run.run_dir) if run else None,
        "model_bytes": info.size_bytes,
        "arena_bytes": arena,
        "ops": list(info.ops),
        "macs": _macs(keras_model, info),
        "input": {**info.inputs[0].to_dict(), "device_mapping": _device_mapping_note(info, feature_config)},
        "output": info.outputs[0].to_dict(),
        "labels": list(labels),
        "labels_source": labels_source,
        "features": feature_config.to_dict(),
        "reference_kernels": reference,
        "golden": golden,
        "test": test,
    }
    report["targets"] = _targets(report, targets)
    path = report_path or os.path.join(run.run_dir if run else os.path.dirname(os.path.abspath(model_path)),
                                       REPORT_FILE)
    _write_report(path, report)
    report["report_path"] = os.path.abspath(path)
    return report


class TflmModel:
    """A one-input, one-output model in the tflite-micro runtime (TFLM's C++ interpreter and kernels)."""

    def __init__(self, model_bytes, *, arena_size, source="model"):
        from tflite_micro.python.tflite_micro import runtime

        from microkws._quiet import native_stderr

        with native_stderr() as messages:
            try:
                self._interpreter = runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_size))
            except RuntimeError as error:
                detail = "; ".join(line for line in messages() if line) or str(error)
                raise UserError(f"{source}: TFLite Micro cannot run this model ({detail})") from None
        self.arena_size = int(arena_size)
        self._input = self._interpreter.get_input_details(0)
        self._output = self._interpreter.get_output_details(0)

    def run(self, inputs):
        """Outputs [n, outputs] for integer inputs [n, input values], one invoke each."""
        shape, dtype = self._input["shape"], self._input["dtype"]
        outputs = []
        for row in np.asarray(inputs):
            self._interpreter.set_input(row.reshape(shape).astype(dtype), 0)
            self._interpreter.invoke()
            outputs.append(np.asarray(self._interpreter.get_output(0)).reshape(-1).copy())
        return np.stack(outputs) if outputs else np.zeros((0, int(np.prod(self._output["shape"]))))


def smallest_arena(model_bytes, *, limit=MAX_ARENA):
    """The smallest arena_size (bytes) with which TFLM loads and invokes the model.

    Each size is tried in a worker process: the Python runtime can crash,
    not raise, when the arena is too small for its own bookkeeping, and the
    worker is restarted when it does.
    """
    with _ArenaProbe(model_bytes) as probe:
        high = 4096
        while not probe.works(high):
            if high >= limit:
                raise UserError(f"TFLite Micro cannot run the model with any arena up to {limit} bytes")
            high *= 2
        low = 0  # invariant: `low` fails, `high` works
        while high - low > 1:
            middle = (low + high) // 2
            if probe.works(middle):
                high = middle
            else:
                low = middle
    return high


class _ArenaProbe:
    """A worker process that answers "does arena size N work?" for one model."""

    def __init__(self, model_bytes):
        self._model_bytes = bytes(model_bytes)
        self._process = None

    def __enter__(self):
        file = tempfile.NamedTemporaryFile(prefix="microkws-arena-", suffix=".tflite", delete=False)
        with file:
            file.write(self._model_bytes)
        self._model_file = file.name
        return self

    def __exit__(self, *exc):
        self._stop()
        os.remove(self._model_file)

    def works(self, size):
        if self._process is None:
            self._start()
        self._process.stdin.write(f"{int(size)}\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline().strip()
        if not answer:  # the runtime crashed on this size: it does not work
            self._stop()
            return False
        return answer == "ok"

    def _start(self):
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from microkws.device import _arena_worker; _arena_worker()", self._model_file],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )

    def _stop(self):
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            self._process.wait()
            self._process = None


def _arena_worker():
    """Worker of `_ArenaProbe`: reads arena sizes from stdin, answers ok / no per line."""
    from tflite_micro.python.tflite_micro import runtime

    with open(sys.argv[1], "rb") as file:
        model_bytes = file.read()
    for line in sys.stdin:
        try:
            interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=int(line))
            detail = interpreter.get_input_details(0)
            interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
            interpreter.invoke()
            answer = "ok"
        except RuntimeError:
            answer = "no"
        print(answer, flush=True)


def format_report(report):
    """The short table `microkws verify` prints."""
    targets = report["targets"]
    rows = [("model", report["model"])]

    def target(name, text):
        entry = targets[name]
        if entry["value"] is None:
            return f"{text}   (target {entry['target']}: not measured)"
        return f"{text}   target {entry['target']}: {'met' if entry['met'] else 'NOT MET'}"

    rows.append(("flash", target("flash_bytes", f"{report['model_bytes']:,} bytes")))
    arena = report["arena_bytes"]
    rows.append(("arena", target("arena_bytes", f"{arena:,} bytes" if arena is not None else "not measured")))
    rows.append(("ops", ", ".join(report["ops"])))
    rows.append(("MACs", f"{report['macs']['value']:,} ({report['macs']['source']})"))
    tensor = report["input"]
    rows.append(("input", f"{tensor['dtype']} {tensor['shape']} scale {tensor['scale']!r} zero point "
                          f"{tensor['zero_point']}; {tensor['device_mapping']}"))
    reference = report["reference_kernels"]
    rows.append(("reference", f"{'identical to' if reference['identical'] else 'DIFFERS from'} TFLite's reference "
                              f"kernels on {reference['inputs']} inputs"
                              + ("" if reference["identical"] else f" ({reference['differing']} differ, by at most "
                                                                    f"{reference['largest_difference']})")))
    golden = report["golden"]
    checked = [g for g in golden.values() if g["expected"] is not None]
    rows.append(("golden clips", f"{sum(g['ok'] for g in checked)}/{len(checked)} as expected: "
                 + ", ".join(f"{name.split('_')[0]}->{g['predicted']}" for name, g in golden.items())))
    test = report["test"]
    if test.get("examples"):
        text = f"{report['input']['dtype']} {100 * test['int8_accuracy']:.2f}%"
        if test.get("float_accuracy") is not None:
            text += f", float {100 * test['float_accuracy']:.2f}% (N={test['examples']})"
            if test.get("int8_differs_from_float"):
                text += (f"; {test['int8_differs_from_float']} clip(s) labelled differently, "
                         f"{test['int8_top_ties']} int8 output(s) tied at the top")
            rows.append(("test accuracy", target("accuracy_drop_points", text)))
        else:
            rows.append(("test accuracy", f"{text} (N={test['examples']}); no float model to compare"))
    else:
        rows.append(("test accuracy", f"not measured: {test.get('skipped', 'no test split')}"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {text}" for name, text in rows)


# --- the pieces of verify -------------------------------------------------------------------------------------------


def _check_integer(info, path):
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise UserError(f"{path}: a keyword model has one input and one output; this one has "
                        f"{len(info.inputs)} and {len(info.outputs)}")
    if not info.is_integer:
        raise UserError(
            f"{path}: a {info.inputs[0].dtype} model; TFLite Micro's micro_speech runs full-integer models "
            "(int8 or uint8 input and output): pass model.tflite, not model_float.tflite"
        )


def _find_run(model_path, train_dir):
    from microkws.train.loop import CONFIG_FILE, MODEL_FILE, load_run_config

    if train_dir is None:
        beside = os.path.dirname(os.path.abspath(model_path))
        if not os.path.isfile(os.path.join(beside, CONFIG_FILE)):
            return None
        train_dir = beside
    data_config, feature_config, _, train_config, labels = load_run_config(train_dir)
    if not os.path.isfile(os.path.join(train_dir, MODEL_FILE)):
        raise UserError(f"{train_dir}: no {MODEL_FILE}, so no trained model; finish training first "
                        f"(re-run `microkws train --train_dir {train_dir}` to resume)")
    return Run(run_dir=train_dir, data_config=data_config, feature_config=feature_config, labels=labels,
               seed=train_config.seed)


def _with_data_dir(run_data_config, override):
    """The run's data settings, in another folder when --data_dir was given."""
    if override is None:
        return run_data_config
    from dataclasses import replace

    return replace(run_data_config, data_dir=override.data_dir)


def _check_fits(info, feature_config, path):
    size = info.inputs[0].size
    if size != feature_config.fingerprint_size:
        frames, bins = feature_config.shape
        raise UserError(
            f"{path}: the model's input holds {size} values but the feature settings give {frames} frames x "
            f"{bins} bins = {feature_config.fingerprint_size}; pass the --train_dir it was trained in "
            "or matching feature flags"
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
    n = len(clips)
    if feature_config.preprocess == "micro":
        from microkws.features.micro import micro_features, to_int8, to_training_scale, to_uint8

        raw = micro_features(clips, feature_config).reshape(n, -1)
        quantized = to_uint8(raw) if info.inputs[0].dtype == "uint8" else to_int8(raw)
        return quantized, to_training_scale(raw).astype(np.float32)
    from microkws.export.quantization import InputQuantization
    from microkws.features import compute_features

    features = compute_features(clips, feature_config).reshape(n, -1).astype(np.float32)
    tensor = info.inputs[0]
    encoding = InputQuantization(scale=tensor.scale, zero_point=tensor.zero_point, inference_type=tensor.dtype)
    return encoding.quantize(features), features


def _device_mapping_note(info, feature_config):
    from microkws.export.quantization import device_quantization

    tensor = info.inputs[0]
    if feature_config.preprocess != "micro":
        return "no device frontend for this mode: inputs quantised with the model's own parameters"
    device = device_quantization(tensor.dtype)
    if tensor.scale == device.scale and tensor.zero_point == device.zero_point:
        return "exactly the device's int8 mapping"
    return (f"fed the device's mapping (scale {device.scale}, zero point {device.zero_point}); the model expects "
            f"scale {tensor.scale:.8g} ({100 * (tensor.scale / device.scale - 1):+.3f}%)")


def _golden(tflm, info, feature_config, labels, golden_dir):
    from microkws.audio import fit_to_length, read_audio, to_int16

    names = list(GOLDEN_CLIPS)
    clips = np.stack([
        to_int16(fit_to_length(read_audio(os.path.join(golden_dir, name), sample_rate=feature_config.sample_rate),
                               feature_config.desired_samples))
        for name in names
    ])
    from microkws.evaluate import label_role

    inputs, _ = _encode(clips, info, feature_config)
    outputs = tflm.run(inputs)
    roles = [label_role(label) for label in labels]
    results = {}
    for name, output in zip(names, outputs):
        wanted = label_role(GOLDEN_CLIPS[name])
        expected = labels[roles.index(wanted)] if wanted in roles else None
        predicted = labels[int(np.argmax(output))]
        results[name] = {
            "expected": expected,
            "predicted": predicted,
            "ok": None if expected is None else predicted == expected,
            "output": output.tolist(),
        }
    return inputs, results


def _test_split(tflm, info, feature_config, data_config, run, keras_model, model_path, *, progress):
    """(test report, integer inputs or None)."""
    if data_config is None:
        return {"skipped": "no data: pass --train_dir or --data_dir"}, None
    from microkws.dataset import index_dataset, load_partition
    from microkws.evaluate import accuracy, confusion_matrix

    try:
        index = index_dataset(data_config)
    except UserError as error:
        if run is None:
            raise
        log.warning("test split skipped: %s", error)
        return {"skipped": str(error)}, None
    if len(index.labels) != info.outputs[0].size:
        raise UserError(f"the data settings give {len(index.labels)} labels ({', '.join(index.labels)}) but "
                        f"{model_path} has {info.outputs[0].size} outputs; pass the model's --wanted_words")
    clips, truth = load_partition(index, "testing", feature_config, seed=run.seed if run else 0, progress=progress)
    if not len(clips):
        return {"skipped": f"{data_config.data_dir}: the test partition is empty"}, None
    inputs, features = _encode(clips, info, feature_config)
    count = len(index.labels)
    outputs = tflm.run(inputs)
    int8_predictions = np.argmax(outputs, axis=-1)
    int8_confusion = confusion_matrix(truth, int8_predictions, count)
    float_predictions, float_source = _float_predictions(run, keras_model, model_path, features)
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


def top_ties(outputs):
    """How many rows of int8 scores share their top value between labels.

    The output's step is 1/256; a clip the float model scores 0.51/0.48 can
    come out as an exact tie, which argmax (here and on the device) gives to
    the first label.
    """
    outputs = np.asarray(outputs)
    if not len(outputs):
        return 0
    return int(np.sum(np.sum(outputs == outputs.max(axis=-1, keepdims=True), axis=-1) > 1))


def _float_predictions(run, keras_model, model_path, features):
    """Float model predictions and where the model came from: the run's model.keras, else model_float.tflite beside."""
    if keras_model is not None:
        logits = np.concatenate([np.asarray(keras_model(features[i:i + 500], training=False))
                                 for i in range(0, len(features), 500)])
        return np.argmax(logits, axis=-1), os.path.join(run.run_dir, _model_file())
    beside = os.path.join(os.path.dirname(os.path.abspath(model_path)), "model_float.tflite")
    if not os.path.isfile(beside):
        return None, None
    from microkws.export.interpreters import float_interpreter, run_interpreter

    with open(beside, "rb") as file:
        interpreter = float_interpreter(file.read())
    if int(np.prod(interpreter.get_input_details()[0]["shape"])) != features.shape[1]:
        log.warning("%s: input does not match %s; no float accuracy", beside, model_path)
        return None, None
    return np.argmax(run_interpreter(interpreter, features), axis=-1), beside


def load_keras_model(path):
    """The run's float Keras model (registering microkws's layers first)."""
    from microkws._tensorflow import keras

    import microkws.models  # noqa: F401 - registers StaticReshape and the other custom layers

    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot load the Keras model ({error})") from None


def _compare_reference(model_bytes, tflm, inputs):
    from microkws.export.interpreters import reference_interpreter, run_interpreter

    expected = run_interpreter(reference_interpreter(model_bytes), inputs)
    actual = tflm.run(inputs)
    differing = int(np.sum(np.any(expected != actual, axis=-1)))
    return {"identical": differing == 0, "inputs": int(len(inputs)), "differing": differing,
            "largest_difference": int(np.max(np.abs(expected.astype(np.int32) - actual.astype(np.int32))))
            if len(inputs) else 0}


def _model_file():
    from microkws.train.loop import MODEL_FILE

    return MODEL_FILE


def _macs(keras_model, info):
    if keras_model is not None:
        from microkws.models import count_macs

        try:
            return {"value": int(count_macs(keras_model)), "source": "Keras model"}
        except TypeError as error:  # a layer count_macs does not know: fall back to the flatbuffer
            log.debug("count_macs: %s", error)
    return {"value": int(info.macs), "source": "tflite conv/fc shapes"}


def _targets(report, targets):
    test = report["test"]
    drop = None
    if test.get("float_accuracy") is not None:
        drop = round(100 * (test["float_accuracy"] - test["int8_accuracy"]), 4)
    result = {}
    for name, value, limit in (
        ("flash_bytes", report["model_bytes"], targets.flash_bytes),
        ("arena_bytes", report["arena_bytes"], targets.arena_bytes),
        ("accuracy_drop_points", drop, targets.accuracy_drop_points),
    ):
        result[name] = {"value": value, "target": f"<= {limit:,}", "met": None if value is None else value <= limit}
    return result


def _write_report(path, report):
    from microkws.files import write_json

    write_json(path, report)
