"""Streaming: RecognizeCommands against TFLM's own test cases, the continuous frontend, the test recording,
streaming accuracy and the stream-eval command."""

import json

import numpy as np
import pytest
import soundfile

from microkws.cli import main
from microkws.errors import UserError
from microkws.streaming import RecognizeCommands, StreamingRecognizer, recognize_stream, stream_outputs
from microkws.streaming.accuracy import streaming_accuracy
from microkws.streaming.det import det_point
from microkws.streaming.groundtruth import TIME_TOLERANCE_MS, GroundTruth, match_commands, read_ground_truth

REFERENCE_MODEL = "micro_speech_quantized.tflite"
REFERENCE_LABELS = ("silence", "unknown", "yes", "no")


@pytest.fixture(scope="module")
def reference_model(testvectors):
    from microkws.inference import load_model

    return load_model(testvectors / REFERENCE_MODEL, labels=REFERENCE_LABELS)


def words_recording(testvectors, *, noise=0.005, placements=((2.0, "yes"), (5.0, "no"), (8.5, "yes")), seconds=12):
    """float32 audio: TFLM's golden yes/no clips at the given seconds over faint white noise."""
    clips = {word: soundfile.read(testvectors / f"{word}_1000ms.wav", dtype="float32")[0] for word in ("yes", "no")}
    audio = np.random.default_rng(0).normal(0, noise, 16000 * seconds).astype(np.float32)
    for start, word in placements:
        offset = int(start * 16000)
        audio[offset:offset + 16000] += clips[word]
    return np.clip(audio, -1, 1)


# --- RecognizeCommands: the cases of TFLM's recognize_commands_test.cc, with their inputs and expectations ---------


def test_basic():
    recognize = RecognizeCommands(REFERENCE_LABELS)
    result = recognize.process(np.array([127, -128, -128, -128], np.int8), 0)
    assert result.is_new_command is False


def test_find_commands():
    recognize = RecognizeCommands(REFERENCE_LABELS, average_window_duration_ms=1000, detection_threshold=51)
    yes = np.array([-128, -128, 127, -128], np.int8)
    new = [recognize.process(yes, i * 100) for i in range(10)]
    assert [r.label for r in new if r.is_new_command] == ["yes"]
    no = np.array([-128, -128, -128, 127], np.int8)
    results = [recognize.process(no, 1000 + i * 100) for i in range(10)]
    assert [r.label for r in results if r.is_new_command] == ["no"]
    assert results[-1].score == 231  # the test's expectation: (10 x 255 + 0) // 11 for "no" at 1900 ms


def test_bad_input_length():
    recognize = RecognizeCommands(REFERENCE_LABELS, average_window_duration_ms=1000, detection_threshold=51)
    with pytest.raises(ValueError, match="4 scores"):
        recognize.process(np.array([-128, -128, 127], np.int8), 0)


def test_bad_input_times():
    recognize = RecognizeCommands(REFERENCE_LABELS, average_window_duration_ms=1000, detection_threshold=51)
    scores = np.array([-128, -128, 127, -128], np.int8)
    recognize.process(scores, 100)
    with pytest.raises(ValueError, match="increasing time order"):
        recognize.process(scores, 0)


def test_too_few_inputs():
    recognize = RecognizeCommands(REFERENCE_LABELS, average_window_duration_ms=1000, detection_threshold=51)
    result = recognize.process(np.array([-128, -128, 127, -128], np.int8), 100)
    assert result.score == 0 and result.is_new_command is False and result.label == "silence"


# --- RecognizeCommands: the rest of the device's rules ---------------------------------------------------------------


def test_the_first_command_needs_a_quarter_window_and_minimum_count():
    recognize = RecognizeCommands(REFERENCE_LABELS, average_window_duration_ms=1000, detection_threshold=51)
    yes = np.array([-128, -128, 127, -128], np.int8)
    # 3 results by 200 ms but spanning less than 250 ms: nothing yet; at 300 ms the command.
    assert [recognize.process(yes, t).is_new_command for t in (0, 100, 200, 300)] == [False, False, False, True]


def test_suppression_repeats_a_label_only_after_suppression_ms():
    recognize = RecognizeCommands(REFERENCE_LABELS, average_window_duration_ms=200, detection_threshold=100,
                                  suppression_ms=1000, minimum_count=1)
    yes = np.array([-128, -128, 127, -128], np.int8)
    fired = [t for t in range(0, 3000, 100) if recognize.process(yes, t).is_new_command]
    assert fired == [100, 1200, 2300]  # strictly more than 1000 ms after the last, on the 100 ms grid


def test_float_probabilities_average_as_floats():
    recognize = RecognizeCommands(REFERENCE_LABELS, detection_threshold=0.5)
    found = [recognize.process(np.array([0.1, 0.1, 0.7, 0.1], np.float32), t) for t in range(0, 1000, 100)]
    assert [r.time_ms for r in found if r.is_new_command] == [300]
    assert found[-1].score == pytest.approx(0.7)
    with pytest.raises(ValueError, match="0..255 units"):
        RecognizeCommands(REFERENCE_LABELS, detection_threshold=200).process(np.full(4, 0.25, np.float32), 0)
    with pytest.raises(ValueError, match="looks like a probability"):
        RecognizeCommands(REFERENCE_LABELS, detection_threshold=0.7).process(np.zeros(4, np.int8), 0)


def test_the_device_queue_drops_results_when_full():
    """kMaxResults = 50: at a 20 ms stride the 51st result of a 1 s window is dropped, as on the device."""
    from microkws.streaming.recognize import ScoreAverager

    yes, no = np.array([-128, -128, 127, -128], np.int8), np.array([-128, -128, -128, 127], np.int8)
    limited, unlimited = ScoreAverager(4), ScoreAverager(4, max_results=None)
    for t in range(0, 1000, 20):
        limited.add(yes, t), unlimited.add(yes, t)
    assert limited.add(no, 1000) == (2, 255)  # the "no" at 1000 ms did not fit
    assert unlimited.add(no, 1000) == (2, 250)  # 50 x 255 // 51


def test_recognize_stream_equals_one_recognizer_per_threshold():
    rng = np.random.default_rng(1)
    scores = rng.integers(-128, 128, size=(400, 4)).astype(np.int8)
    scores[100:160, 2] = 127
    scores[250:300, 3] = 120
    times = np.arange(400) * 20
    thresholds = [60, 120, 180, 200]
    swept = recognize_stream(REFERENCE_LABELS, times, scores, thresholds=thresholds)
    for threshold in thresholds:
        recognize = RecognizeCommands(REFERENCE_LABELS, detection_threshold=threshold)
        expected = [r for r in (recognize.process(s, int(t)) for s, t in zip(scores, times)) if r.is_new_command]
        assert swept[threshold] == expected
    assert [r.label for r in swept[200]] == ["yes", "no"]


# --- the stream: continuous frontend, batched and chunked ------------------------------------------------------------


def test_chunked_streaming_equals_the_batched_stream(reference_model, testvectors):
    from microkws.audio import to_int16

    audio = to_int16(words_recording(testvectors, seconds=7, placements=((2.0, "yes"), (4.5, "no"))))
    rng = np.random.default_rng(2)
    for stride in (20, 60):
        times, outputs = stream_outputs(reference_model, audio, clip_stride_ms=stride)
        assert times[0] == 0 and np.all(np.diff(times) == stride)
        assert times[-1] + 1000 <= 7000 < times[-1] + 1000 + stride
        streaming = StreamingRecognizer(reference_model, clip_stride_ms=stride)
        results, begin = [], 0
        while begin < len(audio):
            size = int(rng.integers(1, 2500))
            results += streaming.feed(audio[begin:begin + size])
            begin += size
        assert [r.start_ms for r in results] == times.tolist()
        assert [r.end_ms for r in results] == (times + 1000).tolist()
        np.testing.assert_array_equal(np.stack([r.outputs for r in results]), outputs)


def test_the_frontend_runs_on_between_windows(reference_model, testvectors, monkeypatch):
    """Window k's input is frames k..k+48 of one frontend run over the whole stream, not a fresh frontend per window."""
    from microkws.audio import to_int16
    from microkws.features.micro import MicroFrontend, micro_features, to_int8

    audio = to_int16(words_recording(testvectors, seconds=4, placements=((1.5, "yes"),)))
    captured = []
    run = reference_model.run
    monkeypatch.setattr(reference_model, "run", lambda inputs: captured.append(np.array(inputs)) or run(inputs))
    stream_outputs(reference_model, audio, clip_stride_ms=20)
    inputs = np.concatenate(captured)
    frames = MicroFrontend().process(audio)
    for k in (0, 40, 100):
        np.testing.assert_array_equal(inputs[k], to_int8(frames[k:k + 49]).reshape(-1))
    fresh = to_int8(micro_features(audio[100 * 320:100 * 320 + 16000])).reshape(-1)
    assert np.count_nonzero(inputs[100] != fresh) > 100  # a restarted frontend would give these
    np.testing.assert_array_equal(inputs[0], to_int8(micro_features(audio[:16000])).reshape(-1))


def test_mfcc_streaming_computes_each_window(tmp_path):
    """Modes without a streaming frontend: each window's features from its own second of audio."""
    import keras

    from microkws.inference import load_model
    from microkws.features import FeatureConfig, compute_features
    from microkws.models import build_model

    config = FeatureConfig(preprocess="mfcc", window_stride_ms=20)
    keras.utils.set_random_seed(0)
    build_model("single_fc", input_shape=config.shape, label_count=4).save(tmp_path / "fc.keras")
    model = load_model(tmp_path / "fc.keras", labels=REFERENCE_LABELS, feature_config=config)
    audio = (np.random.default_rng(3).normal(0, 3000, 16000 * 2)).astype(np.int16)
    times, outputs = stream_outputs(model, audio, clip_stride_ms=100)
    assert times.tolist() == list(range(0, 1001, 100))
    start = 500 * 16
    expected = model.run(compute_features(audio[None, start:start + 16000], config).reshape(1, -1))
    np.testing.assert_allclose(outputs[5], expected[0], rtol=1e-5, atol=1e-6)
    streaming = StreamingRecognizer(model, clip_stride_ms=100)
    chunks = [streaming.feed(audio[i:i + 777]) for i in range(0, len(audio), 777)]
    np.testing.assert_allclose(np.stack([r.outputs for c in chunks for r in c]), outputs, rtol=1e-5, atol=1e-6)


def test_clip_stride_must_be_whole_frames(reference_model):
    with pytest.raises(UserError, match="multiple of 20"):
        stream_outputs(reference_model, np.zeros(32000, np.int16), clip_stride_ms=30)
    with pytest.raises(UserError, match="shorter than one clip"):
        stream_outputs(reference_model, np.zeros(15000, np.int16))


# --- the test recording -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def test_recording(sample_dir, tmp_path_factory):
    from microkws.dataset import DataConfig
    from microkws.streaming.testwav import make_streaming_test_wav

    folder = tmp_path_factory.mktemp("stream")
    config = DataConfig(sample_dir, wanted_words=("yes", "no"))
    summary = make_streaming_test_wav(config, audio_path=folder / "long.wav", labels_path=folder / "long.txt",
                                      duration_s=45, seed=4)
    return folder, summary


def test_streaming_test_wav_layout(test_recording):
    folder, summary = test_recording
    audio, rate = soundfile.read(folder / "long.wav", dtype="int16")
    info = soundfile.info(folder / "long.wav")
    assert rate == 16000 and info.subtype == "PCM_16" and len(audio) == 45 * 16000
    truth = read_ground_truth(folder / "long.txt")
    assert len(truth) == summary["words"] == 15  # one per 3 s slot
    for slot, entry in enumerate(truth):
        assert slot * 3000 <= entry.time_ms < slot * 3000 + 2000
    assert {e.label for e in truth} <= {"yes", "no", "_unknown_"}
    assert {e.label for e in truth} >= {"yes", "no"}
    assert summary["unknown_words"] == sum(e.label == "_unknown_" for e in truth)
    assert (folder / "long.txt").read_text().splitlines()[0].count(",") == 1


def test_streaming_test_wav_uses_test_split_clips_and_the_seed(sample_dir, tmp_path):
    """Without background, each word's middle is exactly a test-split clip of its label."""
    from microkws.audio import fit_to_length, read_audio, to_int16
    from microkws.dataset import DataConfig, index_dataset
    from microkws.streaming.testwav import make_streaming_test_wav

    config = DataConfig(sample_dir, wanted_words=("yes", "no"))
    kwargs = dict(duration_s=15, background_volume=0.0, unknown_percentage=40)
    make_streaming_test_wav(config, audio_path=tmp_path / "a.wav", labels_path=tmp_path / "a.txt", seed=5, **kwargs)
    make_streaming_test_wav(config, audio_path=tmp_path / "b.wav", labels_path=tmp_path / "b.txt", seed=5, **kwargs)
    make_streaming_test_wav(config, audio_path=tmp_path / "c.wav", labels_path=tmp_path / "c.txt", seed=6, **kwargs)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text() != (tmp_path / "c.txt").read_text()

    index = index_dataset(config)
    testing = {"yes": [], "no": [], "_unknown_": [e.path for e in index.unknown_pool["testing"]]}
    for example in index.partitions["testing"]:
        if example.label in testing:
            testing[example.label].append(example.path)
    audio, _ = soundfile.read(tmp_path / "a.wav", dtype="int16")
    for entry in read_ground_truth(tmp_path / "a.txt"):
        offset = round(entry.time_ms * 16)
        middle = audio[offset + 500:offset + 15500]
        candidates = [to_int16(fit_to_length(read_audio(p), 16000))[500:15500] for p in testing[entry.label]]
        assert any(np.array_equal(middle, c) for c in candidates), entry


def test_streaming_test_wav_bad_input(sample_dir, tmp_path, capsys):
    args = ["stream-test-wav", "--data_dir", str(sample_dir), "--out", str(tmp_path / "x.wav"),
            "--output_labels_file", str(tmp_path / "x.txt")]
    assert main(args + ["--wanted_words", "yes,nope"]) == 2
    assert "nope not found" in capsys.readouterr().err
    assert main(args + ["--wanted_words", "yes", "--test_duration_seconds", "2"]) == 2
    assert "holds no word" in capsys.readouterr().err


# --- streaming accuracy -----------------------------------------------------------------------------------------------


def test_matching_follows_the_original():
    truth = [GroundTruth("yes", 1000), GroundTruth("no", 5000), GroundTruth("_unknown_", 9000),
             GroundTruth("yes", 13000)]
    commands = [("yes", 1400), ("yes", 1600), ("no", 4000), ("yes", 8000), ("unknown", 9200), ("no", 20000)]
    outcomes = match_commands(commands, truth, time_tolerance_ms=1500)
    assert outcomes == [("correct", 0), ("wrong", 0), ("correct", 1), ("wrong", 2), ("wrong", 2),
                        ("false_positive", None)]
    stats = streaming_accuracy(commands, truth, time_tolerance_ms=1500)
    assert (stats.ground_truth, stats.matched, stats.correct, stats.wrong, stats.false_positives) == (4, 3, 2, 3, 1)
    assert stats.summary().startswith("75.0% matched, 50.0% correct, 75.0% wrong, 25.0% false positive")
    point = det_point(commands, truth, ("_silence_", "_unknown_", "yes", "no"), threshold=0.5, duration_ms=1_800_000,
                      time_tolerance_ms=1500)
    # keywords said: yes, no, yes; found correctly: yes@1000 and no@5000. Keyword commands not correct: 3.
    assert (point.keywords, point.false_rejects, point.false_accepts) == (3, 1, 3)
    assert point.false_accepts_per_hour == 6.0 and point.false_reject_rate == pytest.approx(1 / 3)


def test_default_tolerance_is_the_originals_and_keeps_a_command_with_its_word():
    """The first word within the tolerance takes the command: at 1,500 ms an "up" said 1.1 s after another
    word is handed to that word (a false accept and a miss); at the original's 750 ms it is found."""
    truth = [GroundTruth("_unknown_", 1000), GroundTruth("up", 2100)]
    labels = ("_silence_", "_unknown_", "up", "down")
    assert TIME_TOLERANCE_MS == 750
    assert match_commands([("up", 2000)], truth) == [("correct", 1)]
    assert match_commands([("up", 2000)], truth, time_tolerance_ms=1500) == [("wrong", 0)]
    point = det_point([("up", 2000)], truth, labels, threshold=0.5, duration_ms=3_600_000)
    assert (point.false_rejects, point.false_accepts) == (0, 0)


def test_ground_truth_files(tmp_path):
    path = tmp_path / "truth.txt"
    path.write_text("yes, 1234.500000\n\n_unknown_,2000\nno,3000.25\n")  # the original wrote "label, time"
    truth = read_ground_truth(path, REFERENCE_LABELS)
    assert truth == [GroundTruth("yes", 1234.5), GroundTruth("_unknown_", 2000.0), GroundTruth("no", 3000.25)]
    path.write_text("yes,100\nmaybe,200\n")
    with pytest.raises(UserError, match="names maybe, which the model does not know"):
        read_ground_truth(path, REFERENCE_LABELS)
    path.write_text("yes;100\n")
    with pytest.raises(UserError, match=r"truth.txt:1: expected 'label,time_ms'"):
        read_ground_truth(path)


# --- stream-eval -----------------------------------------------------------------------------------------------------


def test_stream_eval_command(test_recording, testvectors, tmp_path, capsys):
    folder, _ = test_recording
    prefix, out = tmp_path / "det", tmp_path / "stream.json"
    code = main(["stream-eval", str(testvectors / REFERENCE_MODEL), "--labels", ",".join(REFERENCE_LABELS),
                 str(folder / "long.wav"), str(folder / "long.txt"), "--det", str(prefix), "--json", str(out),
                 "--show_commands", "--no_progress"])
    text = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text())
    assert report["windows"] == (45000 - 1000) // 20 + 1
    assert report["settings"]["score_threshold"] == 200 and report["settings"]["detection_threshold"] == 0.78125
    stats = report["stats"]
    assert stats["ground_truth"] == 15 and stats["matched"] <= 15
    assert stats["correct"] + stats["wrong"] + stats["false_positives"] == len(report["commands"])
    assert stats["correct"] >= 5  # the reference model finds most of the words
    assert f"{stats['correct_percent']:.1f}% correct" in text and "false accepts per hour" in text
    assert all(c["label"] != "silence" for c in report["commands"])
    det = report["det"]
    assert [p["threshold"] for p in det] == sorted(p["threshold"] for p in det)
    rejects = [p["false_reject_rate"] for p in det]
    accepts = [p["false_accepts"] for p in det]
    assert accepts[0] >= accepts[-1] and rejects[-1] >= rejects[0] and rejects[-1] > 0.5
    at_threshold = next(p for p in det if p["threshold"] == 0.78125)
    assert at_threshold["false_reject_rate"] == report["false_reject_rate"]
    csv = (tmp_path / "det.csv").read_text().splitlines()
    assert csv[0].startswith("threshold,false_accepts,false_accepts_per_hour") and len(csv) == len(det) + 1
    assert (tmp_path / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stream_eval_bad_input(testvectors, tmp_path, capsys):
    model = [str(testvectors / REFERENCE_MODEL), "--labels", ",".join(REFERENCE_LABELS)]
    truth = tmp_path / "truth.txt"
    truth.write_text("yes,100\n")
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(8000, np.int16), 16000)
    assert main(["stream-eval", *model, str(short), str(truth)]) == 2
    err = capsys.readouterr().err
    assert "short.wav: 500 ms of audio, shorter than one clip" in err and len(err.strip().splitlines()) == 1
    long = tmp_path / "long.wav"
    soundfile.write(long, np.zeros(32000, np.int16), 16000)
    truth.write_text("up,100\n")
    assert main(["stream-eval", *model, str(long), str(truth)]) == 2
    assert "names up, which the model does not know" in capsys.readouterr().err
    truth.write_text("yes,100\n")
    assert main(["stream-eval", *model, str(long), str(truth), "--clip_stride_ms", "25"]) == 2
    assert "multiple of 20" in capsys.readouterr().err
    assert main(["stream-eval", str(testvectors / REFERENCE_MODEL), "--labels", "a,b,c", str(long), str(truth)]) == 2
    assert "4 outputs but 3 labels" in capsys.readouterr().err
