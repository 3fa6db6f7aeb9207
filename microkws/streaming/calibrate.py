"""Choosing a run's detection settings on a long stream of its validation speakers.

At the end of training the run's int8 model.tflite listens to a long stream made as `stream-test-wav`
makes one (testwav.build_stream), but of VALIDATION-split clips, seeded by the run's seed: a word every
3 s at a random offset, 30 % of them other words, over background noise. It runs as the device does
(stream.stream_windows: the continuous frontend, the model every 20 ms; on which kernels, see below); its
outputs are computed once. RecognizeCommands' settings are then swept: detection threshold x averaging
window x minimum count (suppression stays at the device's 1500 ms), each scored as stream-eval scores
it (det.det_point: false accepts per hour, the false-reject rate of the keywords), with the vectorised
recogniser (recognize_vectorized), which gives RecognizeCommands' commands exactly.

The choice: the lowest false-reject rate whose false accepts per hour are within the target; ties go
to the higher threshold, then to fewer false accepts, then to the device's default window and count.
A setting that finds no keyword at all meets any false-accept target and is never chosen. When no
setting meets the target, the best reachable one (fewest false accepts per hour) is named: a
UserError for `microkws calibrate`, a warning and "met": false at the end of training, which keeps
the finished run.

Why an hour, and on which kernels: the false-accept target must be measurable. On 20 minutes one false
accept is 3 per hour, so the default target of 2 per hour meant none at all, and the choice was a threshold
so high that it missed about half of the validation keywords (49 % for the recommended model, against 25 %
at 2 per hour on an hour). An hour is 180,000 windows; on TFLite Micro's reference kernels (the device's
arithmetic, bit for bit) the recommended model takes 5.4 ms a window on one core of a 2-core machine, 7-8
minutes an hour. So the windows run on tf.lite's optimised integer kernels (runtime "tflite_optimized",
without XNNPack), 0.3 ms a window for that model (tiny_conv 0.14 ms), and AGREEMENT_WINDOWS windows spread
over the stream run again on TFLM's kernels as a check, recorded in detection.json ("kernels"). Measured on
real stream windows the two agree on 91-99.9 % of windows and differ by at most 1-4 steps of 255 (tiny_conv
4, the recommended ds_cnn 2, bc_resnet 1, tc_resnet 4), under two steps of the sweep's 0.01 thresholds, and
averaging over 12-50 windows shrinks it further (on an hour of the recommended model, 97 of the 99
thresholds' figures were identical to TFLM's, the other two one keyword apart, and the same setting was
chosen). A model whose check finds more (MAX_KERNEL_DIFFERENCE, MAX_WINDOWS_DIFFERING) is run on TFLM's
kernels throughout, as is every model with `runtime="tflm"` (`microkws calibrate --runtime tflm`).

The validation split is small (a few hundred clips on the shared sample), so clips come back many times,
each at another offset and over other noise; building the stream takes seconds and the sweep (12
window/count pairs x 99 thresholds) about half a minute. detection.json's stream.seconds_taken says what
each part took.

Note on minimum_count: the device gates on it only until its queue holds that many results; at a
20 ms stride the queue holds window / 20 ms results, so a count up to that changes only the first
fraction of a second of a stream. It is swept because a slower stride makes it matter.

RUN_DIR/detection.json (rundir.DETECTION_FILE) holds the choice; thresholds there are PROBABILITIES
(0..1), with the device's 0..255 integer beside the chosen one (score_threshold). The chosen
settings also go into device_report.json under "detection".
"""

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass, replace

import numpy as np

from microkws.dataset.labels import keyword_indices
from microkws.device.report import update_device_report
from microkws.errors import UserError
from microkws.files import write_json
from microkws.inference import load_model
from microkws.streaming.det import DetPoint, det_point
from microkws.streaming.groundtruth import TIME_TOLERANCE_MS
from microkws.streaming.recognize import DEVICE_SETTINGS, DetectionSettings
from microkws.streaming.recognize_vectorized import average_stream
from microkws.streaming.stream import run_windows, stream_windows
from microkws.streaming.testwav import build_stream
from microkws.train import rundir

log = logging.getLogger(__name__)

DEFAULT_FALSE_ACCEPTS_PER_HOUR = 2.0
"""The false-accept target of `microkws train` and `microkws calibrate`."""
STREAM_SECONDS = 3600
"""Length of the validation stream: an hour, so that 2 false accepts per hour is measurable (see the module
docstring)."""
RUNTIME = "tflite_optimized"
"""The kernels the stream's windows run on (microkws.inference.RUNTIMES; see the module docstring)."""
AGREEMENT_WINDOWS = 2048
"""Windows, spread over the stream, that also run on TFLM's kernels when RUNTIME is not "tflm"."""
MAX_KERNEL_DIFFERENCE = 8
"""The largest difference (steps of the int8 output) from TFLM's kernels accepted on those windows: twice the
most measured on this package's architectures (4), about three of the sweep's thresholds."""
MAX_WINDOWS_DIFFERING = 0.2
"""The largest share of those windows allowed to differ at all (measured: 0.1-9 %). Beyond either bound,
every window runs on TFLM's kernels."""
STREAM_PARTITION = "validation"
CLIP_STRIDE_MS = 20
"""The model runs every 20 ms, as micro_speech does."""
THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(1, 100))
"""Detection thresholds swept, as probabilities (on the device: floor(256 x p) of 0..255)."""
AVERAGE_WINDOWS_MS = (250, 500, 750, 1000)
"""Averaging windows swept. None longer: at a 20 ms stride a longer window overflows micro_speech's queue of
50 results, and the device then drops new results and averages stale ones; a choice resting on that would
not carry over to firmware with another queue size."""
MINIMUM_COUNTS = (1, 3, 5)
"""Minimum counts swept (see the module docstring)."""
THRESHOLD_UNITS = ("detection_threshold and det[].threshold are probabilities (0..1); score_threshold is the same "
                   "threshold as the device compares it: an integer on its 0..255 scale of averaged int8 scores "
                   "(a command needs an average above it)")


@dataclass(frozen=True)
class SweptSetting:
    """One setting of the sweep and how it did on the stream."""

    settings: DetectionSettings
    point: DetPoint


@dataclass(frozen=True)
class Calibration:
    """The chosen detection settings of a run and what they were chosen on (detection.json)."""

    chosen: SweptSetting
    met: bool
    """Whether the chosen setting meets the target (else it is the best reachable)."""
    target_false_accepts_per_hour: float
    score_threshold: int
    """The chosen threshold on the device's 0..255 scale."""
    stream: dict
    """How the stream was made: partition, duration_s, keywords, words, seed, ..."""
    det: tuple
    """DetPoints at the chosen window and minimum count, over the thresholds."""
    model: dict
    """The model it was chosen for: {"path", "sha256"}."""

    def to_dict(self):
        settings, point = self.chosen.settings, self.chosen.point
        return {
            "chosen": {**settings.to_dict(), "score_threshold": self.score_threshold,
                       "false_accepts_per_hour": point.false_accepts_per_hour,
                       "false_reject_rate": point.false_reject_rate, "false_accepts": point.false_accepts,
                       "false_rejects": point.false_rejects},
            "met": self.met,
            "target_false_accepts_per_hour": self.target_false_accepts_per_hour,
            "threshold_units": THRESHOLD_UNITS,
            "stream": self.stream,
            "model": self.model,
            "det": [p.to_dict() for p in self.det],
        }

    def summary(self):
        """One line: the choice and its figures."""
        settings, point = self.chosen.settings, self.chosen.point
        verdict = "" if self.met else f" (target {self.target_false_accepts_per_hour:g} NOT met: best reachable)"
        return (f"detection: threshold {settings.detection_threshold:.2f}, window "
                f"{settings.average_window_duration_ms} ms, min count {settings.minimum_count} -> "
                f"{point.false_accepts_per_hour:.1f} false accepts/hour, {100 * point.false_reject_rate:.0f}% "
                f"keywords missed on {_length(self.stream['duration_s'])} of {self.stream['partition']} "
                f"speakers{verdict}")


def calibrate_run(run_dir, *, false_accepts_per_hour=DEFAULT_FALSE_ACCEPTS_PER_HOUR, stream_seconds=STREAM_SECONDS,
                  runtime=RUNTIME, data_dir=None, require_target=True, progress=False, **sweep_options):
    """Choose the detection settings of a trained, exported run and write RUN_DIR/detection.json.

    Returns the Calibration. When no setting meets `false_accepts_per_hour`: a UserError naming the best
    reachable figure with `require_target`, else a warning and detection.json with "met": false.
    data_dir: where the run's data folder is now (default: config.json's). sweep_options: `sweep`'s grid.
    runtime: the kernels the windows run on (RUNTIME: tf.lite's optimised ones, checked against TFLM's).
    """
    if not (math.isfinite(false_accepts_per_hour) and false_accepts_per_hour > 0):
        raise UserError(f"--false_accepts_per_hour must be a positive number, got {false_accepts_per_hour}")
    model = load_model(run_dir, prefer="tflite", runtime=runtime)
    if not model.is_quantized:
        raise UserError(f"{model.path}: a {model.input_dtype} model; the calibration needs the device's int8 model")
    started = time.perf_counter()
    audio, truth, stream = validation_stream(run_dir, stream_seconds=stream_seconds, data_dir=data_dir,
                                             progress=progress)
    built = time.perf_counter()
    windows = stream_windows(model, audio, clip_stride_ms=CLIP_STRIDE_MS)
    outputs = run_windows(model, windows, progress=progress)
    listened = time.perf_counter()
    model, outputs, kernels = check_on_tflm(run_dir, model, windows, outputs, progress=progress)
    checked = time.perf_counter()
    times = windows.start_ms
    duration_ms = 1000 * len(audio) / model.feature_config.sample_rate
    del audio, windows  # an hour of audio is 115 MB; the sweep needs only the outputs
    swept = sweep(model, times, outputs, truth, duration_ms=duration_ms, progress=progress, **sweep_options)
    chosen, met = choose(swept, false_accepts_per_hour)
    cost = {"build_stream": built - started, "run_model": listened - built, "check_on_tflm": checked - listened,
            "sweep": time.perf_counter() - checked}
    stream = {**stream, "keywords": chosen.point.keywords, "clip_stride_ms": CLIP_STRIDE_MS, "kernels": kernels,
              "seconds_taken": {name: round(seconds, 2) for name, seconds in cost.items()}}
    calibration = Calibration(
        chosen=chosen, met=met, target_false_accepts_per_hour=float(false_accepts_per_hour),
        score_threshold=model.score_threshold(chosen.settings.detection_threshold), stream=stream,
        det=tuple(s.point for s in swept if _same_averaging(s.settings, chosen.settings)),
        model={"path": os.path.abspath(model.path), "sha256": file_sha256(model.path)})
    if not met:
        message = _not_met_message(calibration)
        if require_target:
            raise UserError(message)
        log.warning("%s; keeping the run and recording the best reachable setting", message)
    write_detection(run_dir, calibration)
    log.info("%s", calibration.summary())
    return calibration


def check_on_tflm(run_dir, model, windows, outputs, *, progress=False):
    """(model, outputs, kernels): `outputs` of `model` on the StreamWindows `windows`, checked on TFLM's kernels.

    A model already on TFLM's kernels passes through. Otherwise AGREEMENT_WINDOWS windows spread over the
    stream run again on TFLM's; if any output differs by more than MAX_KERNEL_DIFFERENCE steps, or more than
    MAX_WINDOWS_DIFFERING of the windows differ at all, every window runs on TFLM's and that model and its
    outputs come back. `kernels` says which kernels gave the outputs and what the check found
    (detection.json's stream.kernels).
    """
    if model.runtime == "tflm":
        return model, outputs, {"runtime": "tflm"}
    device = load_model(run_dir, prefer="tflite", runtime="tflm")
    rows = np.unique(np.linspace(0, len(windows) - 1, min(AGREEMENT_WINDOWS, len(windows))).astype(np.int64))
    difference = np.abs(run_windows(device, windows, rows=rows).astype(np.int32) - outputs[rows].astype(np.int32))
    worst = difference.max(axis=1)
    check = {"windows": int(len(rows)), "identical": round(float(np.mean(worst == 0)), 4),
             "max_difference": int(worst.max())}
    if check["max_difference"] <= MAX_KERNEL_DIFFERENCE and np.mean(worst > 0) <= MAX_WINDOWS_DIFFERING:
        return model, outputs, {"runtime": model.runtime, "checked_on_tflm": check}
    log.warning("%s's outputs on %s kernels differ from TFLite Micro's by up to %d steps on %d of %d windows; "
                "running every window on TFLite Micro's kernels", model.path, model.runtime, check["max_difference"],
                int(np.sum(worst > 0)), check["windows"])
    return device, run_windows(device, windows, progress=progress), {"runtime": "tflm", "checked_on_tflm": check}


def validation_stream(run_dir, *, stream_seconds=STREAM_SECONDS, data_dir=None, progress=False):
    """testwav.build_stream's (int16 audio, ground truth, summary) of the run's validation speakers,
    seeded by the run's seed: the stream the calibration listens to."""
    run = rundir.read_run_config(run_dir)
    data = run.data if data_dir is None else replace(run.data, data_dir=os.fspath(data_dir))
    audio, truth, summary = build_stream(data, duration_s=stream_seconds, seed=run.train.seed,
                                         sample_rate=run.features.sample_rate,
                                         clip_duration_ms=run.features.clip_duration_ms, partition=STREAM_PARTITION,
                                         progress=progress)
    return audio, truth, {**summary, "data_dir": os.path.abspath(data.data_dir)}


def sweep(model, times_ms, outputs, truth, *, duration_ms, thresholds=THRESHOLDS, windows=AVERAGE_WINDOWS_MS,
          counts=MINIMUM_COUNTS, suppression_ms=DEVICE_SETTINGS.suppression_ms, time_tolerance_ms=TIME_TOLERANCE_MS,
          progress=False):
    """[SweptSetting] of every window x count x threshold (a probability) on a stream's outputs.

    model: the KeywordModel that gave `outputs` [n, labels] (int8) at `times_ms`; truth: GroundTruth
    entries of the stream, `duration_ms` long.
    """
    from tqdm.auto import tqdm

    keywords = np.asarray(keyword_indices(model.labels))
    scored = {}  # det points by keyword commands: thresholds that find the same commands score the same
    swept = []
    grid = [(window, count) for window in windows for count in counts]
    for window, count in tqdm(grid, desc="choosing detection settings", disable=not progress, leave=False):
        averages = average_stream(model.labels, times_ms, outputs, average_window_duration_ms=window,
                                  minimum_count=count)
        for threshold in thresholds:
            commands = averages.commands(model.score_threshold(threshold), suppression_ms=suppression_ms)
            spotted = np.isin(commands.labels, keywords)
            labels, times = commands.labels[spotted], commands.times_ms[spotted]
            key = (labels.tobytes(), times.tobytes())
            if key not in scored:
                scored[key] = det_point([(model.labels[i], int(t)) for i, t in zip(labels, times)], truth,
                                        model.labels, threshold=threshold, duration_ms=duration_ms,
                                        time_tolerance_ms=time_tolerance_ms)
            settings = DetectionSettings(average_window_duration_ms=window, detection_threshold=threshold,
                                         suppression_ms=suppression_ms, minimum_count=count)
            swept.append(SweptSetting(settings, replace(scored[key], threshold=float(threshold))))
    return swept


def choose(swept, false_accepts_per_hour):
    """(the chosen SweptSetting, whether it meets the target): see the module docstring."""
    hearing = [s for s in swept if s.point.false_rejects < s.point.keywords] or list(swept)
    meeting = [s for s in hearing if s.point.false_accepts_per_hour <= false_accepts_per_hour
               and s.point.false_rejects < s.point.keywords]
    if meeting:
        return min(meeting, key=_preference), True
    return min(hearing, key=lambda s: (s.point.false_accepts_per_hour, *_preference(s))), False


def _preference(swept):
    settings, point = swept.settings, swept.point
    return (point.false_reject_rate, -settings.detection_threshold, point.false_accepts,
            settings.average_window_duration_ms != DEVICE_SETTINGS.average_window_duration_ms,
            settings.minimum_count != DEVICE_SETTINGS.minimum_count, settings.average_window_duration_ms,
            settings.minimum_count)


def _length(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _same_averaging(a, b):
    return (a.average_window_duration_ms, a.minimum_count) == (b.average_window_duration_ms, b.minimum_count)


def _not_met_message(calibration):
    settings, point = calibration.chosen.settings, calibration.chosen.point
    return (f"no detection setting meets {calibration.target_false_accepts_per_hour:g} false accepts per hour on "
            f"{_length(calibration.stream['duration_s'])} of {calibration.stream['partition']} speakers: the "
            f"fewest reachable is {point.false_accepts_per_hour:.3g} per hour (threshold "
            f"{settings.detection_threshold:g}, window {settings.average_window_duration_ms} ms, min count "
            f"{settings.minimum_count}, {100 * point.false_reject_rate:.0f}% of keywords missed); "
            "pass a higher --false_accepts_per_hour")


# --- detection.json ---------------------------------------------------------------------------------------------------


def write_detection(run_dir, calibration):
    """Write RUN_DIR/detection.json and add the chosen settings to device_report.json (when there is one)."""
    path = write_json(os.path.join(run_dir, rundir.DETECTION_FILE), calibration.to_dict())
    report = os.path.join(run_dir, rundir.REPORT_FILE)
    if os.path.isfile(report):
        written = calibration.to_dict()
        update_device_report(report, detection={
            **written["chosen"], "met": written["met"], "target_false_accepts_per_hour": written[
                "target_false_accepts_per_hour"], "threshold_units": THRESHOLD_UNITS, "source": rundir.DETECTION_FILE})
    return path


def read_detection(run_dir):
    """(DetectionSettings, detection.json's dict, its path) of a run that has been calibrated, else None.

    A detection.json that cannot be read or whose chosen settings are not valid is a UserError naming it.
    """
    import json

    if run_dir is None:
        return None
    path = os.path.join(run_dir, rundir.DETECTION_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read ({error}); run `microkws calibrate {run_dir}` again") from None
    if not isinstance(data, dict) or not isinstance(data.get("chosen"), dict):
        raise UserError(f"{path}: no \"chosen\" settings; run `microkws calibrate {run_dir}` again")
    return DetectionSettings.from_dict(data["chosen"], source=path), data, path


def file_sha256(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()
