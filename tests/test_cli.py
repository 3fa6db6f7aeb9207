import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from conftest import write_tone

from microkws.cli import COMMANDS, main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "microkws", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_works_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"] if command is None else [command, "--help"])
    assert exit_.value.code == 0
    assert "usage: microkws" in capsys.readouterr().out


def test_features_int8_is_the_device_input(testvectors, tmp_path):
    golden = json.loads((testvectors / "golden.json").read_text())
    out = tmp_path / "yes.npy"
    result = run_cli("features", testvectors / "yes_1000ms.wav", "--format", "int8", "--out", out)
    assert result.returncode == 0, result.stderr
    features = np.load(out)
    assert features.dtype == np.int8 and features.shape == (49, 40)
    expected = np.array(golden["clips"]["yes_1000ms.wav"]["int8_features_49x40"]).reshape(49, 40)
    assert np.count_nonzero(features != expected) == 0


def test_features_formats_and_c_array(testvectors, tmp_path, capsys):
    wav = testvectors / "no_1000ms.wav"
    assert main(["features", str(wav), "--format", "uint16", "--out", str(tmp_path / "u.npy")]) == 0
    assert main(["features", str(wav), "--out", str(tmp_path / "f.npy")]) == 0
    raw, scaled = np.load(tmp_path / "u.npy"), np.load(tmp_path / "f.npy")
    assert raw.dtype == np.uint16 and scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, raw * 10 / 256, rtol=1e-6)
    assert main(["features", str(wav), "--format", "int8", "--c_array", str(tmp_path / "no.cc")]) == 0
    source = (tmp_path / "no.cc").read_text()
    assert "const int g_no_1000ms_features_width = 40;" in source
    assert "const int8_t g_no_1000ms_features_data[]" in source
    golden = json.loads((testvectors / "golden.json").read_text())["clips"]["no_1000ms.wav"]["int8_features_49x40"]
    body = source.split("{", 1)[1].split("}", 1)[0]
    assert [int(v) for v in body.replace("\n", " ").split(",") if v.strip()] == golden
    assert main(["features", str(wav), "--preprocess", "mfcc", "--window_stride_ms", "10",
                 "--out", str(tmp_path / "m.npy")]) == 0
    assert np.load(tmp_path / "m.npy").shape == (98, 40)
    assert main(["features", str(wav), "--preprocess", "mfcc", "--format", "int8"]) == 2
    assert "needs --preprocess micro" in capsys.readouterr().err


@pytest.mark.parametrize("name, kwargs", [
    ("u8.wav", dict(subtype="PCM_U8")), ("s24.wav", dict(subtype="PCM_24")), ("f32.wav", dict(subtype="FLOAT")),
    ("stereo.wav", dict(channels=2)), ("r8k.wav", dict(rate=8000)), ("r44k.wav", dict(rate=44100)),
    ("long.wav", dict(seconds=3.0)), ("short.wav", dict(seconds=0.2)),
])
def test_features_on_odd_but_valid_files(tmp_path, name, kwargs):
    path = write_tone(tmp_path / name, **kwargs)
    assert main(["features", str(path), "--format", "int8", "--out", str(tmp_path / "x.npy")]) == 0
    features = np.load(tmp_path / "x.npy")
    assert features.shape == (49, 40) and features.max() > -128  # the tone is heard


def _bad(tmp_path, name):
    good = write_tone(tmp_path / "good.wav").read_bytes()
    path = tmp_path / name
    if name == "empty.wav":
        path.write_bytes(b"")
    elif name == "truncated.wav":
        path.write_bytes(good[:20])
    elif name == "zero_frames.wav":
        soundfile.write(path, np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")
    elif name == "nan.wav":  # a float WAV with one NaN sample
        samples = np.zeros(16000, dtype=np.float32)
        samples[100] = np.nan
        soundfile.write(path, samples, 16000, subtype="FLOAT")
    elif name == "1hz.wav":  # 32 KB whose header says 1 Hz: 9 hours of audio once resampled to 16 kHz
        soundfile.write(path, np.zeros(32000, dtype=np.int16), 1, subtype="PCM_16")
    else:
        path.write_text("this is a text file\n")
    return path


@pytest.mark.parametrize("name", ["empty.wav", "truncated.wav", "zero_frames.wav", "text.wav", "nan.wav", "1hz.wav"])
def test_features_on_bad_files_exit_2_with_one_line(tmp_path, name):
    path = _bad(tmp_path, name)
    out = tmp_path / "out.npy"
    result = run_cli("features", path, "--out", out)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob("out.npy*"))


@pytest.mark.parametrize("argv, message", [
    (["features", "{wav}", "--out", "{tmp}/missing/out.npy"], "{tmp}/missing/out.npy: cannot write: the folder "
                                                               "{tmp}/missing does not exist"),
    (["features", "{wav}", "--c_array", "{tmp}/missing/f.cc"], "the folder {tmp}/missing does not exist"),
    (["features", "{wav}", "--sample_rate", "8000"], "above the Nyquist frequency 4000 Hz (half the sample rate 8000"),
    (["freeze"], "name the run directory: microkws freeze TRAIN_DIR"),
    (["evaluate", "{model}", "--labels", "silence,unknown,yes,no", "--data_dir", "{sample}", "--no_progress",
      "--json", "{tmp}/missing/e.json"], "{tmp}/missing/e.json: cannot write: the folder {tmp}/missing does not exist"),
    (["stream-eval", "{model}", "--labels", "silence,unknown,yes,no", "{wav}", "{tmp}/truth.txt", "--json",
      "{tmp}/missing/s.json"], "{tmp}/missing/s.json: cannot write: the folder {tmp}/missing does not exist"),
    (["stream-eval", "{model}", "--labels", "silence,unknown,yes,no", "{wav}", "{tmp}/truth.txt", "--det",
      "{tmp}/missing/det"], "{tmp}/missing/det: cannot write: the folder {tmp}/missing does not exist"),
    (["stream-test-wav", "--data_dir", "{sample}", "--wanted_words", "yes", "--test_duration_seconds", "10",
      "--no_progress", "--out", "{tmp}/missing/long.wav", "--output_labels_file", "{tmp}/labels.txt"],
     "{tmp}/missing/long.wav: cannot write: the folder {tmp}/missing does not exist"),
])
def test_output_folders_and_messages(argv, message, tmp_path, testvectors, sample_dir):
    values = {"{wav}": str(testvectors / "yes_1000ms.wav"), "{tmp}": str(tmp_path), "{sample}": str(sample_dir),
              "{model}": str(testvectors / "micro_speech_quantized.tflite")}
    for key, value in values.items():
        argv, message = [a.replace(key, value) for a in argv], message.replace(key, value)
    result = run_cli(*argv)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr[-1500:]


@pytest.mark.parametrize("argv, message", [
    (["train", "--how_many_training_steps", "10,x"], "'x' is not a number"),
    (["train", "--how_many_training_steps", "10.5,3"], "'10.5' is not a whole number"),
    (["train", "--learning_rate", "0.1,abc"], "'abc' is not a number"),
    (["train", "--learning_rate", "nan,0.1"], "'nan': give a finite number"),
    (["train", "--seed=-1"], "seed must be 0 or more, got -1"),
    (["train", "--silence_percentage", "inf"], "'inf': give a finite number"),
    (["train", "--unknown_percentage", "nan"], "'nan': give a finite number"),
    (["stream-test-wav", "{data}", "--sample_rate", "0"], "'0' is out of range: give a number from 4000"),
    (["stream-test-wav", "{data}", "--test_duration_seconds", "nan"], "'nan': give a finite number"),
    (["stream-test-wav", "{data}", "--test_duration_seconds", "1e12"], "'1e12' is out of range"),
    (["stream-eval", "{stream}", "--average_window_duration_ms=-5"], "'-5' is out of range"),
    (["stream-eval", "{stream}", "--minimum_count=-1"], "'-1' is out of range"),
    (["stream-eval", "{stream}", "--clip_stride_ms", "nan"], "'nan': give a finite number"),
    (["stream-eval", "{stream}", "--detection_threshold", "nan"], "'nan': give a finite number"),
    (["stream-eval", "{stream}", "--time_tolerance_ms", "-1"], "'-1' is out of range"),
    (["stream-eval", "{stream}", "--suppression_ms", "-1"], "'-1' is out of range"),
    (["verify", "{model}", "--arena_budget", "infK"], "is not a byte count"),
    (["listen", "{model}", "--seconds", "-1"], "'-1': give a number above 0"),
    (["listen", "{model}", "--speed", "nan"], "'nan': give a finite number"),
    (["listen", "{model}", "--detection_threshold", "5"], "'5' is out of range: give a number from 0 to 1"),
    (["features", "{wav}", "--preprocess", "mfcc", "--window_stride_ms", "0.01"], "must each be at least one sample"),
])
def test_number_flags_are_one_line_errors(argv, message, tmp_path, testvectors, capsys):
    # Issue 13's numbers: refused by the flag's parser (SystemExit 2) or the settings' check (status 2).
    model, wav = str(testvectors / "micro_speech_quantized.tflite"), str(testvectors / "yes_1000ms.wav")
    values = {"{model}": [model, "--labels", "silence,unknown,yes,no"], "{wav}": [wav],
              "{stream}": [model, wav, str(tmp_path / "truth.txt"), "--labels", "silence,unknown,yes,no"],
              "{data}": ["--data_dir", str(tmp_path), "--out", str(tmp_path / "x.wav"),
                         "--output_labels_file", str(tmp_path / "x.txt")]}
    argv = [part for arg in argv for part in values.get(arg, [arg])]
    if argv[0] == "train":
        argv += ["--data_dir", str(tmp_path / "data"), "--train_dir", str(tmp_path / "run")]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"microkws {argv[0]}: error: ") and message in lines[0], lines
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("command", ["label", "listen", "stream-eval"])
def test_audio_with_nan_samples_is_one_line_naming_the_file(command, tmp_path, testvectors, capsys):
    path = _bad(tmp_path, "nan.wav")
    truth = tmp_path / "truth.txt"
    truth.write_text("yes,100\n")
    model = [str(testvectors / "micro_speech_quantized.tflite"), "--labels", "silence,unknown,yes,no"]
    argv = {"label": [*model, str(path)], "listen": [*model, "--wav", str(path), "--speed", "0"],
            "stream-eval": [*model, str(path), str(truth), "--no_progress"]}[command]
    assert main([command, *argv]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"microkws {command}: error: {path}: the audio holds NaN or infinite samples"]


def test_a_nan_clip_in_a_word_folder_is_skipped_as_unreadable(tmp_path, sample_dir):
    from conftest import make_mini_dataset

    root = tmp_path / "data"
    make_mini_dataset(root, sample_dir)
    bad = _bad(root / "up", "nan.wav")
    result = run_cli("dataset", "--data_dir", root, "--wanted_words", "up,down")
    assert result.returncode == 0 and "unreadable audio skipped: 1" in result.stdout, result.stderr[-1500:]
    strict = run_cli("dataset", "--data_dir", root, "--wanted_words", "up,down", "--strict")
    assert strict.returncode == 2 and f"{bad}: the audio holds NaN or infinite samples" in strict.stderr


def test_odd_data_folders_are_one_line_or_handled(tmp_path, sample_dir):
    from conftest import make_mini_dataset

    root = make_mini_dataset(tmp_path / "data", sample_dir)
    (root / "up" / "loop").symlink_to(root)  # a symlink loop inside a word folder
    (root / "self").symlink_to(root / "self")  # a symlink to itself
    result = run_cli("dataset", "--data_dir", root, "--wanted_words", "up,down")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-1500:]
    assert f"{root / 'self'}: skipped (Too many levels of symbolic links)" in result.stderr
    (root / "validation_list.txt").write_bytes(bytes(range(256)) * 2)
    result = run_cli("dataset", "--data_dir", root, "--wanted_words", "up,down")
    lines = [line for line in result.stderr.splitlines() if line.startswith("microkws")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-1500:]
    assert f"{root / 'validation_list.txt'}: not a text list of clips" in lines[0]


def test_a_keras_model_with_two_outputs_is_one_line(tmp_path, testvectors):
    import keras

    inputs = keras.Input((1960,))
    path = tmp_path / "two.keras"
    keras.Model(inputs, [keras.layers.Dense(4)(inputs), keras.layers.Dense(4)(inputs)]).save(path)
    result = run_cli("label", path, testvectors / "yes_1000ms.wav", "--labels", "a,b,c,d")
    lines = [line for line in result.stderr.splitlines() if line.strip().startswith("microkws")]
    assert result.returncode == 2 and lines == [f"microkws label: error: {path}: a keyword model has one input "
                                                "and one output; this one has 1 and 2"], result.stderr[-1500:]


def test_dataset_command_prints_the_counts(sample_dir, capsys):
    assert main(["dataset", "--data_dir", str(sample_dir), "--wanted_words", "up,down",
                 "--silence_percentage", "25", "--unknown_percentage", "25", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["validation"] == {"_silence_": 15, "_unknown_": 15, "up": 27, "down": 32}
    assert report["counts"]["testing"] == {"_silence_": 19, "_unknown_": 19, "up": 39, "down": 36}
    assert report["counts"]["training"] == {"_silence_": 86, "_unknown_": 86, "up": 168, "down": 175}


@pytest.mark.parametrize("args, message", [
    (["dataset", "--data_dir", "/nonexistent/data"], "/nonexistent/data: data folder not found"),
    (["dataset", "--data_dir", "{sample}", "--wanted_words", "up,banana"], "banana not found; words found:"),
])
def test_dataset_errors_are_one_line(sample_dir, args, message):
    result = run_cli(*[a.replace("{sample}", str(sample_dir)) for a in args])
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
