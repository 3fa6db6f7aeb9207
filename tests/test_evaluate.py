"""microkws evaluate and label: models from run directories and bare files, partitions and the test-archive layout,
false accepts, per-file predictions and bad input."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_mini_dataset

from microkws.cli import main
from microkws.errors import UserError

REFERENCE_MODEL = "micro_speech_quantized.tflite"
REFERENCE_LABELS = ("silence", "unknown", "yes", "no")
LABELS_FLAG = ["--labels", ",".join(REFERENCE_LABELS)]


@pytest.fixture(scope="module")
def reference_model(testvectors):
    from microkws.inference import load_model

    return load_model(testvectors / REFERENCE_MODEL, labels=REFERENCE_LABELS)


@pytest.fixture(scope="module")
def run_dir(sample_dir, testvectors, tmp_path_factory):
    """A run directory as training leaves it: config.json, labels.txt, an (untrained) model.keras, and a
    model.tflite (TFLM's reference model, which has the same input and outputs)."""
    import keras

    from microkws.dataset import AugmentConfig, DataConfig
    from microkws.features import FeatureConfig
    from microkws.models import build_model
    from microkws.train.config import TrainConfig
    from microkws.train import RunConfig

    run = tmp_path_factory.mktemp("run")
    data, features = DataConfig(sample_dir, wanted_words=("yes", "no")), FeatureConfig()
    settings = RunConfig(data, features, AugmentConfig(), TrainConfig(seed=3)).to_dict()
    (run / "config.json").write_text(json.dumps(settings))
    (run / "labels.txt").write_text("\n".join(data.labels) + "\n")
    keras.utils.set_random_seed(0)
    build_model("tiny_conv", input_shape=features.shape, label_count=4).save(run / "model.keras")
    shutil.copy(testvectors / REFERENCE_MODEL, run / "model.tflite")
    return run


@pytest.fixture(scope="module")
def archive_layout(sample_dir, testvectors, tmp_path_factory):
    """A small folder in the layout of speech_commands_test_set_v0.02: a folder per word, _silence_, _unknown_."""
    root = tmp_path_factory.mktemp("test_set")
    testing = (sample_dir / "testing_list.txt").read_text().split()
    picks = {"yes": 3, "no": 3, "_unknown_": 2, "bed": 1}
    for folder, count in picks.items():
        (root / folder).mkdir()
        source = "eight" if folder == "_unknown_" else folder
        for relative in [r for r in testing if r.startswith(f"{source}/")][:count]:
            shutil.copy(sample_dir / relative, root / folder / relative.replace("/", "_"))
    (root / "_silence_").mkdir()
    for name in ("silence_1000ms.wav", "noise_1000ms.wav"):
        shutil.copy(testvectors / name, root / "_silence_" / name)
    (root / "_background_noise_").mkdir()
    shutil.copy(sample_dir / "_background_noise_" / "pink_noise.wav", root / "_background_noise_")
    (root / "README.md").write_text("not a clip")
    (root / "yes" / "notes.txt").write_text("not a clip either")
    return root


def test_reference_model_on_the_test_split_matches_the_device_path(reference_model, sample_dir):
    """evaluate = index_dataset + load_partition + the device's int8 features on TFLM, done by hand."""
    from microkws.dataset import DataConfig, index_dataset, load_partition
    from microkws.device import TflmModel
    from microkws.evaluate import evaluate
    from microkws.metrics import confusion_matrix
    from microkws.features import FeatureConfig
    from microkws.features.micro import micro_features, to_int8

    report = evaluate(reference_model, sample_dir, split="testing")
    index = index_dataset(DataConfig(sample_dir, wanted_words=("yes", "no")))
    clips, truth = load_partition(index, "testing", FeatureConfig(), seed=0)
    tflm = TflmModel(Path(reference_model.path).read_bytes(), arena_size=1 << 20)
    predictions = np.argmax(tflm.run(to_int8(micro_features(clips)).reshape(len(clips), -1)), axis=-1)
    expected = confusion_matrix(truth, predictions, 4)
    assert report["confusion"] == expected.tolist()
    assert report["examples"] == len(clips) == 94
    assert report["accuracy"] == pytest.approx(np.trace(expected) / len(clips)) and report["accuracy"] > 0.85
    assert report["labels"] == list(REFERENCE_LABELS)
    unknown_row = expected[1]
    accepts = report["unknown_false_accepts"]
    assert accepts == {"rate": (unknown_row[2] + unknown_row[3]) / unknown_row.sum(),
                       "accepted": int(unknown_row[2] + unknown_row[3]), "unknown_clips": int(unknown_row.sum())}
    assert report["per_class"]["yes"]["recall"] == pytest.approx(expected[2, 2] / expected[2].sum())
    assert report["per_class"]["no"]["precision"] == pytest.approx(expected[3, 3] / expected[:, 3].sum())


def test_split_all_reads_the_test_archive_layout(archive_layout, testvectors, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["evaluate", str(testvectors / REFERENCE_MODEL), *LABELS_FLAG, "--data_dir", str(archive_layout),
                 "--split", "all", "--json", str(out), "--per_file", "--no_progress"])
    text = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text())
    assert report["examples"] == 11
    assert {label: entry["support"] for label, entry in report["per_class"].items()} == {
        "silence": 2, "unknown": 3, "yes": 3, "no": 3}
    confusion = np.array(report["confusion"])
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / 11)
    assert report["per_class"]["silence"]["recall"] == 1.0  # TFLM's golden silence and noise clips
    files = report["files"]
    assert len(files) == 11 and not any("_background_noise_" in f["path"] for f in files)
    truth = {f["path"].split("/")[-2]: f["true"] for f in files}
    assert truth == {"yes": "yes", "no": "no", "_silence_": "silence", "_unknown_": "unknown", "bed": "unknown"}
    for entry in files:
        assert set(entry["scores"]) == set(REFERENCE_LABELS)
        assert sum(entry["scores"].values()) == pytest.approx(1.0, abs=0.02)
        assert entry["predicted"] == max(entry["scores"], key=entry["scores"].get)
    assert f"accuracy: {100 * report['accuracy']:.2f}%" in text
    assert "unknown words taken for a wanted word (false accepts)" in text
    assert "true \\ predicted" in text and text.count("->") == 11
    recall = report["keyword_recall"]
    assert [row["false_accept_rate"] for row in recall] == [0.01, 0.02, 0.05, 0.1, 0.2]
    assert all(0 <= row["recall"] <= 1 and row["measured_false_accepts"] <= row["false_accept_rate"] for row in recall)
    assert "keyword recall at a false-accept rate of 1%:" in text


def test_tflite_runtime_equals_tflm(archive_layout, testvectors):
    from microkws.evaluate import evaluate
    from microkws.inference import load_model

    reports = [evaluate(load_model(testvectors / REFERENCE_MODEL, labels=REFERENCE_LABELS, runtime=runtime),
                        archive_layout, split="all", per_file=True) for runtime in ("tflm", "tflite")]
    assert reports[0]["runtime"] == "tflm" and reports[1]["runtime"] == "tflite"
    assert reports[0]["files"] == reports[1]["files"]


def test_optimised_kernels_are_near_tflm(archive_layout, testvectors):
    """tf.lite's optimised kernels (the streaming calibration's): within a few steps of TFLM's outputs."""
    from microkws.evaluate import evaluate
    from microkws.inference import load_model
    from microkws.streaming.calibrate import MAX_KERNEL_DIFFERENCE

    models = [load_model(testvectors / REFERENCE_MODEL, labels=REFERENCE_LABELS, runtime=runtime)
              for runtime in ("tflm", "tflite_optimized")]
    assert models[1].runtime == "tflite_optimized"
    clips = np.random.default_rng(0).integers(-3000, 3000, (40, 16000)).astype(np.int16)
    inputs = models[0].encode_clips(clips)
    outputs = [model.run(inputs).astype(int) for model in models]
    assert outputs[0].shape == outputs[1].shape and np.abs(outputs[0] - outputs[1]).max() <= MAX_KERNEL_DIFFERENCE
    report = evaluate(models[1], archive_layout, split="all", per_file=True)
    assert report["runtime"] == "tflite_optimized" and report["files"]


def test_run_directory_models(run_dir, sample_dir, tmp_path):
    from microkws.dataset import DataConfig, index_dataset, load_partition
    from microkws.evaluate import evaluate, partition_clips
    from microkws.inference import load_model
    from microkws.features import FeatureConfig

    keras_model = load_model(run_dir)
    assert keras_model.runtime == "keras" and keras_model.path.endswith("model.keras")
    assert keras_model.labels == ("_silence_", "_unknown_", "yes", "no")
    # The silence examples are those training scored: drawn with the run's seed (3).
    clips = partition_clips(keras_model, "testing").clips
    index = index_dataset(DataConfig(sample_dir, wanted_words=("yes", "no")))
    np.testing.assert_array_equal(clips, load_partition(index, "testing", FeatureConfig(), seed=3)[0])
    assert not np.array_equal(clips, load_partition(index, "testing", FeatureConfig(), seed=0)[0])
    probabilities = keras_model.predict(clips[:8])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)  # logits went through a softmax

    int8_model = load_model(run_dir, prefer="tflite")
    assert int8_model.runtime == "tflm" and int8_model.labels == keras_model.labels
    beside = load_model(run_dir / "model.tflite")  # a model file inside a run takes the run's labels
    assert beside.labels == keras_model.labels and beside.run_dir == str(run_dir)

    mini = make_mini_dataset(tmp_path / "mini", sample_dir, {"yes": 8, "no": 8, "left": 4})
    report = evaluate(int8_model, mini, split="validation")
    assert report["data"].startswith(str(mini)) and "validation partition" in report["data"]
    assert report["labels"] == ["_silence_", "_unknown_", "yes", "no"]
    mini_index = index_dataset(DataConfig(mini, wanted_words=("yes", "no")))
    assert report["examples"] == len(mini_index.partitions["validation"])


def test_evaluate_command_on_a_run(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--tflite", "--split", "testing", "--no_progress"]) == 0
    text = capsys.readouterr().out
    assert "model.tflite (tflm, int8 input)" in text and "testing partition" in text and "94 examples" in text


def test_label_command(testvectors, capsys):
    assert main(["label", str(testvectors / REFERENCE_MODEL), *LABELS_FLAG, str(testvectors),
                 "--how_many_labels", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    files = [line for line in lines if not line.startswith("  ")]
    assert len(files) == 6 and len(lines) == 18  # yes, no, silence, noise at 1000 ms; yes and no at 30 ms
    block = lines[lines.index(str(testvectors / "yes_1000ms.wav")) + 1:][:2]
    assert block[0].startswith("  yes (score = ")
    scores = [float(line.split("= ")[1].rstrip(")")) for line in block]
    assert scores[0] > 0.5 and scores[0] >= scores[1]


def test_label_files_api(reference_model, testvectors):
    from microkws.evaluate import label_files

    results = label_files(reference_model, [testvectors / "no_1000ms.wav", testvectors / "silence_1000ms.wav"],
                          how_many_labels=4)
    assert [best[0][0] for _, best in results] == ["no", "silence"]
    assert all(len(best) == 4 and sum(s for _, s in best) == pytest.approx(1, abs=0.02) for _, best in results)


def test_unknown_false_accepts_and_label_roles():
    from microkws.dataset import label_role
    from microkws.metrics import unknown_false_accepts

    confusion = np.array([[5, 0, 0, 0], [1, 6, 2, 1], [0, 0, 9, 1], [0, 1, 0, 9]])
    assert unknown_false_accepts(confusion, ("_silence_", "_unknown_", "up", "down")) == {
        "rate": 0.3, "accepted": 3, "unknown_clips": 10}
    assert unknown_false_accepts(np.zeros((3, 3)), ("silence", "unknown", "go"))["rate"] is None
    assert [label_role(x) for x in ("silence", "_unknown_", "Unknown", "Yes")] == [
        "_silence_", "_unknown_", "_unknown_", "yes"]


def test_keyword_recall_at_fixed_false_accepts():
    from microkws.metrics import keyword_recall

    labels = ("_silence_", "_unknown_", "up", "down")
    # Ten unknown clips whose "up" scores are 0.0, 0.1, ..., 0.9 (the top label from 0.6 up); four keyword clips.
    unknown = [[0.0, 1 - s, s, 0.0] for s in np.arange(10) / 10]
    words = [[0, 0.05, 0.95, 0], [0, 0.2, 0, 0.8], [0, 0.35, 0.65, 0], [0, 0.5, 0.3, 0.2]]
    probabilities = np.array(unknown + words + [[1, 0, 0, 0]])
    truth = np.array([1] * 10 + [2, 3, 2, 3] + [0])
    rows = keyword_recall(probabilities, truth, labels, rates=(0.0, 0.1, 0.3, 1.0))
    # 0 %: above every unknown score (0.9), only the 0.95 "up" fires.
    assert rows[0] == {"false_accept_rate": 0.0, "threshold": 0.95, "measured_false_accepts": 0.0, "recall": 0.25}
    # 10 %: t = 0.9. 30 %: the lowest score with at most 3 unknown clips at or above it is 0.65.
    assert (rows[1]["threshold"], rows[1]["recall"]) == (0.9, 0.25)
    assert (rows[2]["threshold"], rows[2]["measured_false_accepts"], rows[2]["recall"]) == (0.65, 0.3, 0.75)
    # At 100 % everything that can fire fires (from 0.6, the lowest top keyword score), but the last
    # "down" clip's top label is "unknown", so it never fires, as on a device.
    assert (rows[3]["threshold"], rows[3]["recall"]) == (0.6, 0.75)
    assert keyword_recall(probabilities[10:], truth[10:], labels) == []  # no unknown clips


def test_keyword_recall_fires_only_the_top_label():
    """A device reports a clip's top label: keyword scores under "unknown" neither detect nor false-accept."""
    from microkws.metrics import keyword_recall

    labels = ("_silence_", "_unknown_", "up", "down")
    probabilities = np.array([[0, 0.55, 0.45, 0], [0, 0.9, 0.1, 0],    # unknown clips, neither fires
                              [0, 0.6, 0.4, 0], [0, 0.1, 0.0, 0.9]])  # "up" called unknown; "down" found
    rows = keyword_recall(probabilities, np.array([1, 1, 2, 3]), labels, rates=(0.0,))
    # Ranking by the best keyword score would put the 0.45 unknown clip above the 0.4 "up" and need
    # t > 0.45 for no false accepts; by the top label nothing of "unknown" fires, so t is 0.9.
    assert rows == [{"false_accept_rate": 0.0, "threshold": 0.9, "measured_false_accepts": 0.0, "recall": 0.5}]


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_input(testvectors, run_dir, sample_dir, tmp_path, capsys):
    model = str(testvectors / REFERENCE_MODEL)
    assert main(["evaluate", model, "--labels", "yes,no", "--data_dir", str(sample_dir)]) == 2
    assert "has 4 outputs but 2 labels are given (yes, no)" in one_line_error(capsys)
    assert main(["evaluate", model, "--data_dir", str(sample_dir)]) == 2
    assert "no labels; pass --labels" in one_line_error(capsys)
    empty = tmp_path / "empty"
    (empty / "yes").mkdir(parents=True)
    (empty / "yes" / "notes.txt").write_text("nothing to hear")
    assert main(["evaluate", model, *LABELS_FLAG, "--data_dir", str(empty), "--split", "all"]) == 2
    assert "no audio clips in its folders" in one_line_error(capsys)
    assert main(["label", model, *LABELS_FLAG, str(empty)]) == 2
    assert "empty: no audio files in this folder" in one_line_error(capsys)
    assert main(["label", model, *LABELS_FLAG, str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav: no such file or directory" in one_line_error(capsys)
    assert main(["evaluate", str(empty / "yes" / "notes.txt")]) == 2
    assert "not a model" in one_line_error(capsys)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "config.json", bare)
    assert main(["evaluate", str(bare), "--tflite"]) == 2
    assert "no model.tflite; export it first" in one_line_error(capsys)
    from microkws.inference import load_model

    with pytest.raises(UserError, match="name _silence_ more than once"):
        load_model(model, labels=("silence", "_silence_", "yes", "no"))
