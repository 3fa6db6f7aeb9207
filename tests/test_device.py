"""microkws verify: TFLM's reference model and golden clips, arena search, bad input."""

import json

import numpy as np
import pytest
import soundfile

from microkws.errors import UserError

REFERENCE_MODEL = "micro_speech_quantized.tflite"


@pytest.fixture(scope="module")
def reference_report(testvectors, tmp_path_factory):
    from microkws.device import verify

    path = tmp_path_factory.mktemp("report") / "device_report.json"
    return verify(testvectors / REFERENCE_MODEL, report_path=path)


def test_reference_model_passes_verify(reference_report, testvectors):
    report = reference_report
    assert report["model_bytes"] == 18_800
    assert report["ops"] == ["RESHAPE", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    assert report["macs"] == {"value": 336_000, "source": "tflite conv/fc shapes"}
    assert 5_000 < report["arena_bytes"] <= 10 * 1024
    assert report["reference_kernels"] == {"identical": True, "inputs": 4, "differing": 0, "largest_difference": 0}
    golden = json.loads((testvectors / "golden.json").read_text())["clips"]
    for name, entry in report["golden"].items():
        assert entry["predicted"] == entry["expected"] == golden[name]["expected_label"], name
    assert report["targets"]["flash_bytes"]["met"] and report["targets"]["arena_bytes"]["met"]
    assert report["test"] == {"skipped": "no data: pass --train_dir or --data_dir"}
    assert json.loads(open(report["report_path"]).read())["model_bytes"] == 18_800


def test_reference_model_on_our_int8_features(testvectors):
    """TFLM's own model, fed microkws's device features, gives golden.json's labels."""
    from microkws.device import TflmModel
    from microkws.features.micro import micro_features, to_int8

    golden = json.loads((testvectors / "golden.json").read_text())
    labels = golden["reference_model"]["labels"]
    model = TflmModel((testvectors / REFERENCE_MODEL).read_bytes(), arena_size=16 * 1024)
    for name, entry in golden["clips"].items():
        audio, rate = soundfile.read(testvectors / name, dtype="int16")
        assert rate == 16000
        features = to_int8(micro_features(audio))
        if "int8_features_49x40" in entry:
            np.testing.assert_array_equal(features.reshape(-1), entry["int8_features_49x40"])
        (scores,) = model.run(features.reshape(1, -1))
        assert labels[int(np.argmax(scores))] == entry["expected_label"], name


def test_reference_model_on_the_sample_test_split(testvectors, sample_dir, tmp_path):
    from microkws.dataset import DataConfig
    from microkws.device import verify

    report = verify(testvectors / REFERENCE_MODEL, data_config=DataConfig(sample_dir, wanted_words=("yes", "no")),
                    report_path=tmp_path / "report.json", search_arena=False)
    assert report["labels"] == ["_silence_", "_unknown_", "yes", "no"]
    assert report["arena_bytes"] is None and report["targets"]["arena_bytes"]["met"] is None
    test = report["test"]
    assert test["examples"] > 80 and test["int8_accuracy"] > 0.8
    assert test["float_accuracy"] is None  # no float model beside it
    assert report["reference_kernels"]["identical"] and report["reference_kernels"]["inputs"] == test["examples"] + 4


def test_smallest_arena_is_the_boundary(testvectors, reference_report):
    from microkws.device.tflm import _ArenaProbe

    arena = reference_report["arena_bytes"]
    with _ArenaProbe((testvectors / REFERENCE_MODEL).read_bytes()) as probe:
        assert probe.works(arena)
        assert not probe.works(arena - 1)
        assert not probe.works(64)  # crashes the runtime: the probe survives it and says no
        assert probe.works(arena + 1000)


def test_top_ties_counts_rows_whose_best_score_is_shared():
    from microkws.metrics import top_ties

    outputs = np.array([[-128, -1, -1, -120], [-128, 0, -1, -120], [5, 5, 5, 5], [-128, -128, 126, -128]], np.int8)
    assert top_ties(outputs) == 2
    assert top_ties(np.zeros((0, 4), np.int8)) == 0


def test_format_report_is_a_short_table(reference_report):
    from microkws.device import format_report

    text = format_report(reference_report)
    assert "18,800 bytes   target <= 20,480: met" in text
    assert "4/4 as expected" in text
    assert len(text.splitlines()) == 9


def test_verify_cli_prints_the_table(testvectors, tmp_path, capsys):
    from microkws.cli import main

    report = tmp_path / "r.json"
    assert main(["verify", str(testvectors / REFERENCE_MODEL), "--report", str(report), "--no-arena-search",
                 "--labels", "silence,unknown,yes,no"]) == 0
    out = capsys.readouterr().out
    assert "identical to TFLite's reference kernels on 4 inputs" in out
    assert json.loads(report.read_text())["labels_source"] == "given"


def test_verify_cli_takes_the_boards_budget(testvectors, tmp_path, capsys):
    from microkws.cli import main

    argv = ["verify", str(testvectors / REFERENCE_MODEL), "--report", str(tmp_path / "r.json"),
            "--labels", "silence,unknown,yes,no"]
    assert main([*argv, "--flash_budget", "16K", "--arena-budget", "8000", "--macs_budget", "300000"]) == 0
    out = capsys.readouterr().out
    assert "18,800 bytes   target <= 16,384: NOT MET" in out
    assert "7,584 bytes   target <= 8,000: met" in out
    assert "target <= 300,000: NOT MET" in out
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--flash_budget", "lots"])
    assert exit_info.value.code == 2
    assert "not a byte count" in capsys.readouterr().err


def test_verify_leaves_nothing_in_the_temporary_folder(testvectors, tmp_path):
    # A killed verify used to leave /tmp/microkws-arena-*.tflite: the arena search's worker now reads the
    # model from its stdin, so neither verify nor its workers put anything in the temporary folder.
    import os
    import subprocess
    import sys

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary), "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-m", "microkws", "verify", str(testvectors / REFERENCE_MODEL),
                             "--labels", "silence,unknown,yes,no", "--report", str(tmp_path / "r.json")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-1500:]
    assert json.loads((tmp_path / "r.json").read_text())["arena_bytes"] == 7584  # the arena search ran
    assert os.listdir(temporary) == []


def test_model_inside_a_run_without_a_trained_model(tmp_path, testvectors, sample_dir):
    from microkws.dataset import AugmentConfig, DataConfig
    from microkws.device import verify
    from microkws.features import FeatureConfig
    from microkws.train import RunConfig, TrainConfig

    settings = RunConfig(DataConfig(sample_dir, wanted_words=("yes", "no")), FeatureConfig(), AugmentConfig(),
                         TrainConfig()).to_dict()
    (tmp_path / "config.json").write_text(json.dumps(settings))
    model = tmp_path / "model.tflite"
    model.write_bytes((testvectors / REFERENCE_MODEL).read_bytes())
    with pytest.raises(UserError, match="no model.keras, so no trained model"):
        verify(model)


@pytest.mark.parametrize("case", ["not_tflite", "float", "shape", "no_run", "labels", "folder", "report_folder"])
def test_bad_input_is_one_line_and_exit_2(case, testvectors, tmp_path, capsys):
    from microkws.cli import main

    reference = str(testvectors / REFERENCE_MODEL)
    report = ["--report", str(tmp_path / "r.json")]
    if case == "not_tflite":
        path = tmp_path / "model.tflite"
        path.write_bytes(b"\x00" * 64)
        argv, message = ["verify", str(path)], "not a TFLite model"
    elif case == "float":
        argv, message = ["verify", _float_model(tmp_path)], "a float32 model"
    elif case == "shape":
        argv, message = ["verify", reference, "--window_stride_ms", "10"], "input holds 1960 values"
    elif case == "folder":
        argv, message = ["verify", str(tmp_path)], f"{tmp_path}: a folder with no exported model.tflite"
    elif case == "report_folder":
        report = ["--report", str(tmp_path / "missing" / "r.json")]
        argv, message = ["verify", reference], f"the folder {tmp_path / 'missing'} does not exist"
    elif case == "no_run":
        argv, message = ["verify", reference, "--train_dir", str(tmp_path)], "no config.json"
    else:
        argv, message = ["verify", reference, "--labels", "yes,no"], "2 labels, given (yes, no), but the model has 4 outputs"
    assert main(argv + report) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("microkws verify: error: ") and message in err[0], err


def _float_model(tmp_path):
    """A float TFLite model of the right input size (what model_float.tflite is)."""
    import keras

    from microkws.export.convert import to_float_tflite

    inputs = keras.Input(shape=(1960,))
    path = tmp_path / "model_float.tflite"
    path.write_bytes(to_float_tflite(keras.Model(inputs, keras.layers.Dense(4)(inputs))))
    return str(path)


def test_tflm_rows_shared_with_worker_processes_give_the_same_outputs(testvectors):
    from microkws.device.tflm import GENEROUS_ARENA, ROWS_PER_WORKER, TflmModel

    model_bytes = (testvectors / "micro_speech_quantized.tflite").read_bytes()
    here = TflmModel(model_bytes, arena_size=GENEROUS_ARENA, probed=True)
    shared = TflmModel(model_bytes, arena_size=GENEROUS_ARENA, probed=True, workers=3)
    inputs = np.random.default_rng(0).integers(-128, 128, (3 * ROWS_PER_WORKER + 7, here.input_size), np.int8)
    outputs = shared.run(inputs)
    assert len(shared._pool) == 2  # the rows really went to two workers
    np.testing.assert_array_equal(outputs, here.run(inputs))
    np.testing.assert_array_equal(shared.run(inputs[:10]), outputs[:10])  # a short batch stays here
    # A worker that dies is a one-line error, not a hang or a traceback from the pipe.
    shared._pool[0]._process.kill()
    shared._pool[0]._process.wait()
    with pytest.raises(UserError, match="worker process died"):
        shared.run(inputs)
