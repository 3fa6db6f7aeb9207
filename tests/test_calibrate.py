"""Streaming calibration: the vectorised recogniser against RecognizeCommands, the choice of the detection
settings on a validation stream, detection.json and its use by stream-eval and listen.

The run directory is a real one in layout: the shared sample's yes/no data, and TFLM's micro_speech model
(which has the same input and outputs) as its model.tflite, run on TFLite Micro's kernels. The streams are
short (a few seconds of model time each); the cost of the default hour is in microkws/streaming/calibrate.py.
"""

import json
import re
import shutil

import numpy as np
import pytest
from test_streaming import REFERENCE_MODEL

from microkws.cli import main
from microkws.errors import UserError
from microkws.streaming.det import det_point
from microkws.streaming.recognize import RecognizeCommands, recognize_stream
from microkws.streaming.recognize_vectorized import average_stream

STREAM_SECONDS = 30
LABELS = ("_silence_", "_unknown_", "yes", "no")


def make_run(root, sample_dir, testvectors, *, seed=3):
    """A run directory as training and export leave it, with TFLM's reference model as model.tflite."""
    from microkws.dataset import DataConfig
    from microkws.train import RunConfig
    from microkws.train.config import TrainConfig

    root.mkdir(parents=True, exist_ok=True)
    config = RunConfig(DataConfig(sample_dir, wanted_words=("yes", "no")), train=TrainConfig(seed=seed))
    (root / "config.json").write_text(json.dumps(config.to_dict()))
    (root / "labels.txt").write_text("\n".join(config.labels) + "\n")
    shutil.copy(testvectors / REFERENCE_MODEL, root / "model.tflite")
    (root / "device_report.json").write_text(json.dumps({"model_bytes": 18712, "ops": ["CONV_2D"]}))
    return root


@pytest.fixture(scope="module")
def run_dir(sample_dir, testvectors, tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("calibrate") / "run", sample_dir, testvectors)


@pytest.fixture(scope="module")
def stream(run_dir):
    """The calibration's stream of the run (validation speakers, the run's seed) and the model's outputs."""
    from microkws.inference import load_model
    from microkws.streaming.calibrate import RUNTIME, validation_stream
    from microkws.streaming.stream import stream_outputs

    model = load_model(run_dir, prefer="tflite", runtime=RUNTIME)  # the kernels the calibration runs on
    audio, truth, summary = validation_stream(run_dir, stream_seconds=STREAM_SECONDS)
    times, outputs = stream_outputs(model, audio)
    return model, truth, times, outputs, 1000 * len(audio) / 16000


@pytest.fixture(scope="module")
def calibration(run_dir):
    from microkws.streaming.calibrate import calibrate_run

    return calibrate_run(run_dir, false_accepts_per_hour=500, stream_seconds=STREAM_SECONDS)


# --- the vectorised recogniser ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("window, count, suppression", [(1000, 3, 1500), (250, 1, 300), (500, 20, 0),
                                                        (1500, 3, 1500), (750, 100, 1500)])
def test_vectorised_recognizer_gives_recognize_commands_commands_on_real_outputs(stream, window, count, suppression):
    """Every command, silence included, at thresholds over the whole range; 1500 ms overflows the device's
    queue of 50 results, a count of 100 is never reached."""
    model, _, times, outputs, _ = stream
    thresholds = [0, 60, 128, 180, 200, 230, 250, 255]
    expected = recognize_stream(model.labels, times, outputs, thresholds=thresholds,
                                average_window_duration_ms=window, minimum_count=count, suppression_ms=suppression)
    averages = average_stream(model.labels, times, outputs, average_window_duration_ms=window, minimum_count=count)
    for threshold in thresholds:
        found = averages.commands(threshold, suppression_ms=suppression, include_silence=True)
        got = [(model.labels[label], int(time), int(score))
               for label, time, score in zip(found.labels, found.times_ms, found.scores)]
        assert got == [(r.label, r.time_ms, r.score) for r in expected[threshold]], threshold
    assert len(expected[200]) > 0 or count == 100


def test_vectorised_recognizer_on_uint8_scores_irregular_times_and_no_queue_limit():
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.integers(0, 60, 400))  # repeated times too
    scores = rng.integers(0, 256, (400, 4)).astype(np.uint8)
    scores[100:160, 2] = 255  # a word
    for max_results in (None, 7):
        averages = average_stream(LABELS, times, scores, average_window_duration_ms=300, minimum_count=2,
                                  max_results=max_results)
        for threshold in (90, 140, 200):
            recognizer = RecognizeCommands(LABELS, average_window_duration_ms=300, minimum_count=2,
                                           detection_threshold=threshold, suppression_ms=500, max_results=max_results)
            results = [recognizer.process(row, int(time)) for row, time in zip(scores, times)]
            expected = [(r.label, r.time_ms, r.score) for r in results if r.is_new_command]
            found = averages.commands(threshold, suppression_ms=500, include_silence=True)
            assert [(LABELS[i], int(t), int(s)) for i, t, s in zip(found.labels, found.times_ms, found.scores)] \
                == expected


def test_vectorised_recognizer_takes_only_device_scores():
    with pytest.raises(ValueError, match="int8/uint8"):
        average_stream(LABELS, [0, 20], np.zeros((2, 4), np.float32), average_window_duration_ms=1000,
                       minimum_count=3)
    with pytest.raises(ValueError, match="increasing time order"):
        average_stream(LABELS, [20, 0], np.zeros((2, 4), np.int8), average_window_duration_ms=1000, minimum_count=3)


# --- the choice ------------------------------------------------------------------------------------------------------


def test_the_chosen_setting_meets_the_target_on_its_stream(calibration, stream, run_dir):
    """RecognizeCommands itself, with the chosen settings, on the same stream: the same figures, within target."""
    model, truth, times, outputs, duration_ms = stream
    settings = calibration.chosen.settings
    assert calibration.met and calibration.score_threshold == model.score_threshold(settings.detection_threshold)
    recognizer = settings.recognizer(model.labels, calibration.score_threshold)
    results = [recognizer.process(row, int(time)) for row, time in zip(outputs, times)]
    commands = [(r.label, r.time_ms) for r in results if r.is_new_command and r.label != "_silence_"]
    point = det_point(commands, truth, model.labels, threshold=settings.detection_threshold,
                      duration_ms=duration_ms)
    assert point == calibration.chosen.point
    assert point.false_accepts_per_hour <= 500 and point.false_rejects < point.keywords
    # Nothing else within the target misses fewer keywords (and ties went to a higher threshold).
    det = {p.threshold: p for p in calibration.det}
    assert det[settings.detection_threshold] == point
    better = [p for p in det.values() if p.false_accepts_per_hour <= 500
              and (p.false_reject_rate, -p.threshold) < (point.false_reject_rate, -point.threshold)]
    assert not better


def test_detection_json_and_the_device_report(calibration, run_dir):
    from microkws.streaming.calibrate import read_detection

    written = json.loads((run_dir / "detection.json").read_text())
    settings, point = calibration.chosen.settings, calibration.chosen.point
    assert written["chosen"] == {**settings.to_dict(), "score_threshold": calibration.score_threshold,
                                 "false_accepts_per_hour": point.false_accepts_per_hour,
                                 "false_reject_rate": point.false_reject_rate, "false_accepts": point.false_accepts,
                                 "false_rejects": point.false_rejects}
    assert 0 < written["chosen"]["detection_threshold"] < 1 and "probabilities" in written["threshold_units"]
    assert written["met"] is True and written["target_false_accepts_per_hour"] == 500
    assert written["stream"]["partition"] == "validation" and written["stream"]["duration_s"] == STREAM_SECONDS
    assert written["stream"]["keywords"] == point.keywords > 0 and written["stream"]["seed"] == 3
    assert [row["threshold"] for row in written["det"]] == [round(0.01 * i, 2) for i in range(1, 100)]
    assert {"false_accepts_per_hour", "false_reject_rate", "keywords"} <= set(written["det"][0])
    report = json.loads((run_dir / "device_report.json").read_text())
    assert report["model_bytes"] == 18712 and report["detection"]["detection_threshold"] == settings.detection_threshold
    assert report["detection"]["met"] is True
    assert read_detection(run_dir)[0] == settings


def test_the_stream_runs_on_fast_kernels_checked_against_tflm(calibration, stream, run_dir):
    """detection.json says which kernels gave the outputs and how they compared with TFLM's on spread windows."""
    from microkws.inference import load_model
    from microkws.streaming.calibrate import AGREEMENT_WINDOWS, MAX_KERNEL_DIFFERENCE, validation_stream
    from microkws.streaming.stream import run_windows, stream_windows

    model, _, times, outputs, _ = stream
    kernels = json.loads((run_dir / "detection.json").read_text())["stream"]["kernels"]
    assert kernels["runtime"] == "tflite_optimized" == model.runtime
    check = kernels["checked_on_tflm"]
    assert check["windows"] == min(AGREEMENT_WINDOWS, len(times))
    assert check["max_difference"] <= MAX_KERNEL_DIFFERENCE
    rows = np.unique(np.linspace(0, len(times) - 1, check["windows"]).astype(int))
    device = load_model(run_dir, prefer="tflite", runtime="tflm")
    audio, _, _ = validation_stream(run_dir, stream_seconds=STREAM_SECONDS)
    on_device = run_windows(device, stream_windows(device, audio), rows=rows)
    worst = np.abs(on_device.astype(int) - outputs[rows].astype(int)).max(axis=1)
    assert check == {"windows": len(rows), "identical": round(float(np.mean(worst == 0)), 4),
                     "max_difference": int(worst.max())}


def test_kernels_that_differ_too_much_give_way_to_tflm(run_dir, tmp_path, monkeypatch):
    """A check that finds more than MAX_KERNEL_DIFFERENCE runs every window on TFLM: the same outputs, figures
    and choice as `runtime="tflm"` from the start."""
    import microkws.streaming.calibrate as calibrate

    copies = [shutil.copytree(run_dir, tmp_path / name) for name in ("exact", "fallback")]
    exact = calibrate.calibrate_run(copies[0], false_accepts_per_hour=500, stream_seconds=STREAM_SECONDS,
                                    runtime="tflm")
    monkeypatch.setattr(calibrate, "MAX_KERNEL_DIFFERENCE", -1)  # any check fails
    fallback = calibrate.calibrate_run(copies[1], false_accepts_per_hour=500, stream_seconds=STREAM_SECONDS)
    kernels = [json.loads((copy / "detection.json").read_text())["stream"]["kernels"] for copy in copies]
    assert kernels[0] == {"runtime": "tflm"} and kernels[1]["runtime"] == "tflm"
    assert kernels[1]["checked_on_tflm"]["windows"] > 0
    assert fallback.chosen == exact.chosen and fallback.det == exact.det


def test_an_impossible_target_names_the_best_reachable(stream, run_dir, tmp_path):
    """Only low thresholds, where the model fires on unknown words and noise: every setting has false accepts."""
    from microkws.streaming.calibrate import calibrate_run, choose, sweep

    model, truth, times, outputs, duration_ms = stream
    grid = dict(thresholds=(0.05, 0.1, 0.2), windows=(500, 1000), counts=(3,))
    swept = sweep(model, times, outputs, truth, duration_ms=duration_ms, **grid)
    assert all(s.point.false_accepts > 0 for s in swept)  # the premise, measured
    best, met = choose(swept, 0.0001)
    assert not met and best.point.false_accepts_per_hour == min(s.point.false_accepts_per_hour for s in swept)
    copy = shutil.copytree(run_dir, tmp_path / "run")
    (copy / "detection.json").unlink(missing_ok=True)
    with pytest.raises(UserError) as error:
        calibrate_run(copy, false_accepts_per_hour=0.0001, stream_seconds=STREAM_SECONDS, **grid)
    message = str(error.value)
    assert "\n" not in message and "no detection setting meets 0.0001 false accepts per hour" in message
    assert f"the fewest reachable is {best.point.false_accepts_per_hour:.3g} per hour" in message
    assert f"threshold {best.settings.detection_threshold:g}, window {best.settings.average_window_duration_ms} ms" \
        in message
    assert not (copy / "detection.json").exists()
    # At the end of training the run is kept: a warning, and the best reachable setting with "met": false.
    calibration = calibrate_run(copy, false_accepts_per_hour=0.0001, stream_seconds=STREAM_SECONDS,
                                require_target=False, **grid)
    written = json.loads((copy / "detection.json").read_text())
    assert written["met"] is False and calibration.chosen == best
    assert written["chosen"]["false_accepts_per_hour"] == best.point.false_accepts_per_hour


@pytest.mark.parametrize("args, message", [(["calibrate", "RUN", "--false_accepts_per_hour", "0"], "above 0"),
                                           (["calibrate", "RUN", "--false_accepts_per_hour", "nan"], "finite"),
                                           (["calibrate", "RUN", "--stream_seconds", "inf"], "finite"),
                                           (["train", "--false_accepts_per_hour", "-1"], "above 0"),
                                           (["train", "--calibrate", "maybe"], "expected 0/1")])
def test_bad_calibration_flags_are_one_line(run_dir, args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(run_dir) if arg == "RUN" else arg for arg in args])
    error = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(error.splitlines()) == 1 and message in error


def test_calibrate_needs_a_run_with_a_model(run_dir, tmp_path, capsys):
    assert main(["calibrate", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
    copy = shutil.copytree(run_dir, tmp_path / "run")
    (copy / "model.tflite").unlink()
    assert main(["calibrate", str(copy)]) == 2
    assert "no model.tflite; export it first" in capsys.readouterr().err


def test_calibrate_command_writes_detection_json(run_dir, tmp_path, capsys):
    copy = shutil.copytree(run_dir, tmp_path / "run")
    (copy / "detection.json").unlink(missing_ok=True)
    assert main(["calibrate", str(copy), "--false_accepts_per_hour", "500", "--stream_seconds", "15",
                 "--no_progress"]) == 0
    assert capsys.readouterr().out.strip() == str(copy / "detection.json")
    assert json.loads((copy / "detection.json").read_text())["stream"]["duration_s"] == 15


# --- stream-eval and listen take the run's settings ---------------------------------------------------------------


@pytest.fixture(scope="module")
def recording(sample_dir, tmp_path_factory):
    from microkws.dataset import DataConfig
    from microkws.streaming.testwav import make_streaming_test_wav

    folder = tmp_path_factory.mktemp("recording")
    make_streaming_test_wav(DataConfig(sample_dir, wanted_words=("yes", "no")), audio_path=folder / "long.wav",
                            labels_path=folder / "long.txt", duration_s=12, seed=2)
    return folder / "long.wav", folder / "long.txt"


def test_stream_eval_on_a_calibrated_run_uses_detection_json_and_flags_override(calibration, run_dir, recording,
                                                                               tmp_path, capsys):
    chosen = calibration.chosen.settings
    out = tmp_path / "report.json"
    assert main(["stream-eval", str(run_dir), *map(str, recording), "--json", str(out), "--no_progress"]) == 0
    settings = json.loads(out.read_text())["settings"]
    assert (settings["detection_threshold"], settings["average_window_duration_ms"], settings["minimum_count"],
            settings["suppression_ms"]) == (chosen.detection_threshold, chosen.average_window_duration_ms,
                                            chosen.minimum_count, chosen.suppression_ms)
    said = capsys.readouterr().err
    assert f"threshold {chosen.detection_threshold:g} ({run_dir / 'detection.json'})" in said
    assert main(["stream-eval", str(run_dir), *map(str, recording), "--json", str(out), "--no_progress",
                 "--detection_threshold", "0.5", "--minimum_count", "7"]) == 0
    settings = json.loads(out.read_text())["settings"]
    assert settings["detection_threshold"] == 0.5 and settings["minimum_count"] == 7
    assert settings["average_window_duration_ms"] == chosen.average_window_duration_ms
    said = capsys.readouterr().err
    assert "threshold 0.5 (--detection_threshold)" in said and "min count 7 (--minimum_count)" in said
    assert f"window {chosen.average_window_duration_ms} ms ({run_dir / 'detection.json'})" in said


def test_a_bare_model_uses_the_device_defaults(testvectors, recording, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["stream-eval", str(testvectors / REFERENCE_MODEL), "--labels", ",".join(LABELS),
                 *map(str, recording), "--json", str(out), "--no_progress"]) == 0
    assert json.loads(out.read_text())["settings"]["score_threshold"] == 200
    assert "threshold 0.78125 (default), window 1000 ms (default)" in capsys.readouterr().err


def test_listen_on_a_calibrated_run_says_where_its_settings_came_from(calibration, run_dir, recording, capsys):
    assert main(["listen", str(run_dir), "--wav", str(recording[0]), "--speed", "0"]) == 0
    said = capsys.readouterr().err
    assert f"threshold {calibration.chosen.settings.detection_threshold:g} ({run_dir / 'detection.json'})" in said


def test_a_broken_detection_json_is_one_line(run_dir, recording, tmp_path, capsys):
    copy = shutil.copytree(run_dir, tmp_path / "run")
    (copy / "detection.json").write_text(json.dumps({"chosen": {"detection_threshold": 3}}))
    assert main(["stream-eval", str(copy), *map(str, recording), "--no_progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "detection.json" in error and "from 0 to 1" in error
    (copy / "detection.json").write_text("{")
    assert main(["listen", str(copy), "--wav", str(recording[0]), "--speed", "0"]) == 2
    assert "detection.json: cannot read" in capsys.readouterr().err


def test_a_run_exported_again_says_its_detection_json_is_stale(calibration, run_dir, recording, tmp_path, capsys):
    copy = shutil.copytree(run_dir, tmp_path / "run")
    data = json.loads((copy / "detection.json").read_text())
    data["model"]["sha256"] = "0" * 64
    (copy / "detection.json").write_text(json.dumps(data))
    assert main(["stream-eval", str(copy), *map(str, recording), "--no_progress", "--json", "-"]) == 0
    assert "chosen for an earlier model.tflite" in capsys.readouterr().err


# --- training ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow  # trains a short run
def test_train_calibrates_at_the_end_and_keeps_a_run_that_misses_the_target(sample_dir, tmp_path, monkeypatch,
                                                                            capsys, caplog):
    import functools

    from conftest import make_mini_dataset
    from test_train import TUTORIAL

    import microkws.pipeline
    from microkws.streaming.calibrate import calibrate_run

    # The default hour of stream would take minutes; the stream's length is all that changes.
    monkeypatch.setattr(microkws.pipeline, "calibrate_run", functools.partial(calibrate_run, stream_seconds=20))
    data = make_mini_dataset(tmp_path / "data", sample_dir)
    run = tmp_path / "run"
    assert main(["train", *TUTORIAL, "--data_dir", str(data), "--train_dir", str(run), "--how_many_training_steps",
                 "20", "--learning_rate", "0.003", "--batch_size", "16", "--eval_step_interval", "20",
                 "--save_step_interval", "20", "--no_progress", "--false_accepts_per_hour", "0.001"]) == 0
    written = json.loads((run / "detection.json").read_text())
    assert written["target_false_accepts_per_hour"] == 0.001 and written["stream"]["duration_s"] == 20
    assert written["met"] == (written["chosen"]["false_accepts_per_hour"] <= 0.001)
    assert json.loads((run / "device_report.json").read_text())["detection"]["met"] == written["met"]
    out = capsys.readouterr().out
    assert "detection: threshold" in out
    # Where the command's time went, the export with its verification and the calibration included.
    timing = re.search(r"^time: ([\d.]+) s: load data [\d.]+ s, steps .* export verify [\d.]+ s, calibrate ([\d.]+) s$",
                       out, re.MULTILINE)
    assert timing and 0 < float(timing.group(2)) < float(timing.group(1)), out
    # A warning through logging (which pytest captures apart from stderr), not an error: the run is kept.
    assert ("no detection setting meets 0.001 false accepts per hour" in caplog.text) != written["met"]
    assert main(["train", *TUTORIAL, "--data_dir", str(data), "--train_dir", str(tmp_path / "off"),
                 "--how_many_training_steps", "4", "--learning_rate", "0.01", "--batch_size", "8",
                 "--eval_step_interval", "4", "--save_step_interval", "4", "--no_progress", "--calibrate", "0"]) == 0
    assert not (tmp_path / "off" / "detection.json").exists()
