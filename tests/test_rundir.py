import json
import subprocess
import sys

import pytest

from microkws.dataset import AugmentConfig, DataConfig
from microkws.errors import UserError
from microkws.features import FeatureConfig
from microkws.train import RunConfig, TrainConfig, read_run_config
from microkws.train.rundir import CONFIG_FILE, check_run_dir, write_run_config


def a_config(tmp_path):
    return RunConfig(
        data=DataConfig(tmp_path / "data", wanted_words=("up", "down"), silence_percentage=25, unknown_percentage=25),
        features=FeatureConfig(window_stride_ms=10, feature_bin_count=32),
        augment=AugmentConfig(time_shift_ms=50, background_volume=0.2),
        train=TrainConfig(model_architecture="ds_cnn", how_many_training_steps=(10, 5), learning_rate=(0.01, 0.001),
                          optimizer="adam", quantize=True, dropout_rate=0.3, seed=7),
    )


def test_run_config_round_trips_through_the_run_directory(tmp_path):
    config = a_config(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run_config(run_dir, config)
    assert read_run_config(run_dir) == config
    assert (run_dir / "labels.txt").read_text() == "_silence_\n_unknown_\nup\ndown\n"
    saved = json.loads((run_dir / CONFIG_FILE).read_text())
    assert saved["labels"] == ["_silence_", "_unknown_", "up", "down"]
    assert saved["train"]["learning_rate"] == [0.01, 0.001] and saved["features"]["window_stride_ms"] == 10
    assert config.device_grid and config.labels == ("_silence_", "_unknown_", "up", "down")
    check_run_dir(run_dir, config)  # the same settings: resumable
    with pytest.raises(UserError, match=r"other settings \(train.seed\)"):
        check_run_dir(run_dir, RunConfig(config.data, config.features, config.augment,
                                         TrainConfig(**{**config.train.to_dict(), "seed": 8})))


def test_missing_keys_take_their_defaults(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / CONFIG_FILE).write_text(json.dumps({"data": {"data_dir": "d", "wanted_words": ["yes"]}}))
    config = read_run_config(run_dir)
    assert config.features == FeatureConfig() and config.train == TrainConfig() and config.labels[-1] == "yes"


@pytest.mark.parametrize("content, message", [
    (lambda s: s["features"].update(sample_rate="16000"), r"features.sample_rate must be a whole number, got string"),
    (lambda s: s["train"].update(learning_rate=[0.1, "abc"]), r"train.learning_rate must be a number"),
    (lambda s: s["train"].update(quantize=1), r"train.quantize must be true or false"),
    (lambda s: s["data"].update(wanted_words="up,down"), r"data.wanted_words must be a list"),
    (lambda s: s.update(features=None), r"the features settings must be an object"),
    (lambda s: s.update(train=[1, 2]), r"the train settings must be an object"),
    (lambda s: s.pop("data"), r"no data section"),
    (lambda s: s["augment"].update(background_volume=float("nan")), r"augment.background_volume"),
    (lambda s: s["features"].update(hop=3), r"unknown features setting\(s\) hop"),
    (lambda s: s.update(labels=["a"]), r"labels \['a'\] do not match"),
    (lambda s: s["train"].update(model_architecture="resnet"), r"unknown model architecture 'resnet'"),
])
def test_a_bad_config_file_is_one_error_naming_the_file_and_key(tmp_path, content, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    settings = a_config(tmp_path).to_dict()
    content(settings)
    (run_dir / CONFIG_FILE).write_text(json.dumps(settings))
    with pytest.raises(UserError, match=message) as error:
        read_run_config(run_dir)
    assert str(error.value).startswith(str(run_dir / CONFIG_FILE))


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00binary", b"[]", b"null"])
def test_unreadable_config_files(tmp_path, raw):
    (tmp_path / CONFIG_FILE).write_bytes(raw)
    with pytest.raises(UserError, match=CONFIG_FILE):
        read_run_config(tmp_path)


@pytest.mark.slow  # six command-line processes
@pytest.mark.parametrize("command", [["label", "{run}", "{wav}"], ["export", "{run}"], ["freeze", "{run}"],
                                     ["verify", "{run}/model.tflite"], ["evaluate", "{run}"],
                                     ["train", "--train_dir", "{run}", "--data_dir", "{run}/data", "--no_progress"]])
def test_commands_on_a_run_with_a_broken_config_exit_2(tmp_path, testvectors, command):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    settings = a_config(tmp_path).to_dict()
    settings["features"]["sample_rate"] = "16000"
    (run_dir / CONFIG_FILE).write_text(json.dumps(settings))
    (run_dir / "model.tflite").write_bytes((testvectors / "micro_speech_quantized.tflite").read_bytes())
    (run_dir / "model.keras").write_bytes(b"")
    argv = [part.format(run=run_dir, wav=testvectors / "yes_1000ms.wav") for part in command]
    result = subprocess.run([sys.executable, "-m", "microkws", *argv], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "features.sample_rate must be a whole number" in lines[0], result.stderr


@pytest.mark.parametrize("command", ["export", "freeze"])
def test_export_into_a_run_dir_that_refuses_writes_is_one_line(tmp_path, monkeypatch, capsys, command):
    # Permission bits do not stop root (CI runs as root) and a read-only mount needs privileges, so the
    # folder refuses writes the way the kernel does: creating a file in it fails with EACCES / EROFS.
    import errno
    import os
    import tempfile

    from microkws.cli import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run_config(run_dir, a_config(tmp_path))
    (run_dir / "model.keras").write_bytes(b"not reached: the write check comes first")
    before = sorted(os.listdir(run_dir))
    real_mkstemp, real_mkdtemp = tempfile.mkstemp, tempfile.mkdtemp

    def refuse(real, code):
        def create(*args, dir=None, **kwargs):
            if dir is not None and os.path.abspath(dir) == str(run_dir):
                raise OSError(code, os.strerror(code))
            return real(*args, dir=dir, **kwargs)
        return create

    for code in (errno.EACCES, errno.EROFS):
        monkeypatch.setattr(tempfile, "mkstemp", refuse(real_mkstemp, code))
        monkeypatch.setattr(tempfile, "mkdtemp", refuse(real_mkdtemp, code))
        assert main([command, str(run_dir)]) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and str(run_dir) in lines[0] and os.strerror(code) in lines[0], lines
        assert sorted(os.listdir(run_dir)) == before
