import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from microkws.cli import build_parser
from microkws.dataset import DataConfig
from microkws.errors import UserError
from microkws.train import TrainConfig, train
from microkws.train.checkpoint import latest_checkpoint, read_meta
from microkws.train.scalars import read_scalars

TUTORIAL = (
    "--model_architecture=tiny_conv --window_stride=20 --preprocess=micro --wanted_words=up,down "
    "--silence_percentage=25 --unknown_percentage=25 --quantize=1"
).split()


def short_config(**overrides):
    settings = dict(how_many_training_steps=(30, 10), learning_rate=(0.003, 0.001), batch_size=32,
                    eval_step_interval=20, save_step_interval=10, optimizer="adam")
    settings.update(overrides)
    return TrainConfig(**settings)


def data_config(root, **overrides):
    return DataConfig(root, wanted_words=("up", "down"), silence_percentage=25, unknown_percentage=25, **overrides)


def cli_args(root, run_dir, *extra):
    return [sys.executable, "-m", "microkws", "train", *TUTORIAL, "--data_dir", str(root), "--train_dir",
            str(run_dir), "--how_many_training_steps", "30,10", "--learning_rate", "0.003,0.001", "--batch_size",
            "32", "--eval_step_interval", "20", "--save_step_interval", "10", "--optimizer", "adam",
            "--no_progress", "--export", "0", *extra]


def test_tutorial_flags_parse_in_both_spellings():
    args = build_parser().parse_args(["train", *TUTORIAL])
    assert args.window_stride_ms == 20.0 and args.preprocess == "micro" and args.quantize is True
    assert args.wanted_words == ("up", "down") and args.model_architecture == "tiny_conv"
    modern = build_parser().parse_args(["train", "--wanted-words", "yes,no", "--window-stride-ms", "10",
                                         "--quantize", "0", "--check-nans", "false"])
    assert modern.wanted_words == ("yes", "no") and modern.window_stride_ms == 10.0
    assert modern.quantize is False and modern.check_nans is False


def test_no_architecture_means_the_recommended_recipe_and_flags_still_win():
    from microkws.cli.train import run_settings
    from microkws.train.config import TrainConfig
    from microkws.train.recipes import RECOMMENDED_AUGMENT, RECOMMENDED_TRAIN

    words = ["train", "--wanted_words", "up,down", "--silence_percentage", "25", "--unknown_percentage", "25"]
    recommended = run_settings(build_parser().parse_args(words))
    assert recommended.train == RECOMMENDED_TRAIN and recommended.augment == RECOMMENDED_AUGMENT
    assert recommended.train.model_architecture != "tiny_conv"
    # A flag changes its setting only; the rest of the recipe stays.
    tweaked = run_settings(build_parser().parse_args([*words, "--optimizer", "adam", "--weight_decay", "0",
                                                      "--time_shift_ms", "150"]))
    assert tweaked.train.optimizer == "adam" and tweaked.train.label_smoothing == RECOMMENDED_TRAIN.label_smoothing
    assert tweaked.augment.time_shift_ms == 150 and tweaked.augment.gain_db == RECOMMENDED_AUGMENT.gain_db
    # Naming an architecture, as the tutorial does, keeps the original's schedule and augmentation.
    tutorial = run_settings(build_parser().parse_args(["train", *TUTORIAL]))
    assert tutorial.train == TrainConfig(quantize=True)
    assert tutorial.augment.gain_db == 0 and tutorial.augment.time_masks == 0


def test_short_run_leaves_a_complete_run_directory(mini_dataset, tmp_path):
    run_dir = tmp_path / "run"
    timings = {}
    metrics = train(run_dir, data_config=data_config(mini_dataset), train_config=short_config(),
                    progress=False, timings=timings)
    # Where the time went, each part once, filling in the caller's dict as training went.
    assert set(metrics["seconds"]) == {"load_data", "steps", "validation", "checkpoints", "finish"}
    assert timings == metrics["seconds"] and all(seconds > 0 for seconds in timings.values())
    assert sum(timings.values()) - timings["load_data"] - timings["finish"] == pytest.approx(
        metrics["train_seconds"])
    assert (run_dir / "labels.txt").read_text() == "_silence_\n_unknown_\nup\ndown\n"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["labels"] == ["_silence_", "_unknown_", "up", "down"]
    assert config["features"]["window_stride_ms"] == 20 and config["train"]["model_architecture"] == "tiny_conv"
    assert (run_dir / "model.keras").is_file() and (run_dir / "best.npz").is_file()
    assert read_meta(latest_checkpoint(run_dir / "checkpoints"))["step"] == 40
    assert len(list((run_dir / "checkpoints").glob("ckpt-*.npz"))) <= 3
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"]
    assert 0 <= metrics["test_accuracy"] <= 1
    assert np.array(saved["test_confusion"]).sum() == saved["test_examples"] > 0
    assert metrics["best_step"] in (20, 40)
    wide = saved["test_every_unknown"]
    assert np.array(wide["confusion"]).sum() >= saved["test_examples"]
    assert wide["unknown_false_accepts"]["unknown_clips"] > 0
    assert [row["false_accept_rate"] for row in wide["keyword_recall"]] == [0.01, 0.02, 0.05, 0.1, 0.2]
    assert all(0 <= row["recall"] <= 1 for row in wide["keyword_recall"])
    # Every step's training scalars, though the steps run several to a compiled call.
    for tag in ("cross_entropy", "accuracy", "learning_rate"):
        steps, values = read_scalars(run_dir / "logs" / "train")[tag]
        assert list(steps) == list(range(1, 41)) and np.isfinite(values).all()
    assert read_scalars(run_dir / "logs" / "train")["learning_rate"][1][-1] == pytest.approx(0.001)
    # The best checkpoint is the one with the best keyword recall at 5 % false accepts on validation.
    recall_steps, recalls = read_scalars(run_dir / "logs" / "validation")["keyword_recall_at_5"]
    assert list(recall_steps) == [20, 40] and ((0 <= recalls) & (recalls <= 1)).all()
    assert metrics["checkpoint_metric"] == "keyword_recall_at_5"
    best = 20 if recalls[0] > recalls[1] else 40  # ties go to the later checkpoint
    assert metrics["best_step"] == best and read_meta(run_dir / "best.npz")["keyword_recall_at_5"] == pytest.approx(max(recalls))
    assert list((run_dir / "logs" / "validation").glob("events.out.tfevents.*"))


def test_keep_best_off_keeps_the_last_steps_weights(mini_dataset, tmp_path):
    run_dir = tmp_path / "run"
    metrics = train(run_dir, data_config=data_config(mini_dataset), progress=False,
                    train_config=short_config(keep_best=False, eval_step_interval=10))
    assert metrics["best_step"] == 40 and metrics["keep_best"] is False
    assert read_meta(run_dir / "best.npz")["step"] == 40
    # The saved weights are the last checkpoint's, whatever validation said at steps 10-30.
    with np.load(latest_checkpoint(run_dir / "checkpoints")) as last:
        expected = [last[k] for k in sorted(last.files) if k.startswith("model/")]
    assert all(np.array_equal(a, b) for a, b in zip(_final_weights(run_dir), expected, strict=True))
    recall_steps, recalls = read_scalars(run_dir / "logs" / "validation")["keyword_recall_at_5"]
    assert list(recall_steps) == [10, 20, 30, 40]
    assert metrics["validation_score"] == pytest.approx(recalls[-1])


def _final_weights(run_dir):
    with np.load(run_dir / "best.npz") as data:
        return [data[k] for k in sorted(data.files) if k.startswith("model/")]


@pytest.mark.slow
def test_resume_after_kill_reaches_the_uninterrupted_result(mini_dataset, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    straight = tmp_path / "straight"
    subprocess.run(cli_args(mini_dataset, straight), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(cli_args(mini_dataset, killed), env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints" / "ckpt-000020.npz").exists():
        assert process.poll() is None and time.monotonic() < deadline, \
            f"training ended before the kill:\n{(tmp_path / 'killed.log').read_text()}"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "metrics.json").exists()
    resumed = subprocess.run(cli_args(mini_dataset, killed), check=True, env=env, capture_output=True, text=True)
    assert "resuming from" in resumed.stderr
    for a, b in zip(_final_weights(straight), _final_weights(killed)):
        np.testing.assert_array_equal(a, b)
    assert json.loads((straight / "metrics.json").read_text()) == json.loads((killed / "metrics.json").read_text())


def test_rerun_with_other_settings_is_refused(mini_dataset, tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, data_config=data_config(mini_dataset), train_config=short_config(how_many_training_steps=(5, 5)), progress=False)
    with pytest.raises(UserError, match="other settings .*train.batch_size"):
        train(run_dir, data_config=data_config(mini_dataset),
              train_config=short_config(how_many_training_steps=(5, 5), batch_size=8), progress=False)


def test_a_run_that_failed_on_bad_data_can_be_rerun_with_other_flags(mini_dataset, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(UserError, match="banana"):
        train(run_dir, data_config=DataConfig(mini_dataset, wanted_words=("up", "banana")),
              train_config=short_config(how_many_training_steps=(5, 5)), progress=False)
    assert not (run_dir / "config.json").exists()
    train(run_dir, data_config=data_config(mini_dataset), train_config=short_config(how_many_training_steps=(5, 5)), progress=False)
    assert (run_dir / "model.keras").exists()


def test_checkpoint_of_another_architecture_or_labels_is_refused(mini_dataset, tmp_path):
    first = tmp_path / "first"
    train(first, data_config=data_config(mini_dataset), train_config=short_config(how_many_training_steps=(5, 5)), progress=False)
    checkpoint = latest_checkpoint(first / "checkpoints")
    with pytest.raises(UserError, match="architecture 'tiny_conv' but this run has 'single_fc'"):
        train(tmp_path / "b", data_config=data_config(mini_dataset), start_checkpoint=checkpoint,
              train_config=short_config(how_many_training_steps=(5, 5), model_architecture="single_fc"), progress=False)
    other_labels = DataConfig(mini_dataset, wanted_words=("left", "right"))
    with pytest.raises(UserError, match="labels"):
        train(tmp_path / "c", data_config=other_labels, start_checkpoint=checkpoint,
              train_config=short_config(how_many_training_steps=(5, 5)), progress=False)


def test_a_truncated_latest_checkpoint_is_skipped_on_resume(mini_dataset, tmp_path, caplog):
    run_dir = tmp_path / "run"
    settings = dict(data_config=data_config(mini_dataset), train_config=short_config(), progress=False)
    train(run_dir, **settings)
    latest = run_dir / "checkpoints" / "ckpt-000040.npz"
    latest.write_bytes(latest.read_bytes()[:1000])  # a copy cut short, a disk that filled
    with caplog.at_level(logging.INFO):
        metrics = train(run_dir, **settings)
    assert f"skipping checkpoint {latest}: {latest}: not a readable microkws checkpoint" in caplog.text
    assert "ckpt-000030.npz at step 30" in caplog.text and metrics["steps_run"] == 10
    assert read_meta(latest)["step"] == 40  # written again by the resumed run


def test_an_unreadable_best_checkpoint_at_the_finish_is_one_line_and_deleting_it_finishes(mini_dataset, tmp_path,
                                                                                          caplog):
    run_dir = tmp_path / "run"
    settings = dict(data_config=data_config(mini_dataset), train_config=short_config(), progress=False)
    first_best = train(run_dir, **settings)["best_step"]
    best = run_dir / "best.npz"
    best.write_bytes(best.read_bytes()[:500])
    with pytest.raises(UserError, match=f"^{best}: not a readable microkws checkpoint .*; the best weights are "
                                        "lost: delete it and re-run"):
        train(run_dir, **settings)
    best.unlink()
    with caplog.at_level(logging.WARNING):
        metrics = train(run_dir, **settings)
    assert metrics["best_step"] == 40 and metrics["steps_run"] == 0
    warned = f"{best} is missing: using the last weights (step 40), not the best validation step {first_best}"
    assert (warned in caplog.text) == (first_best != 40), caplog.text


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut", b"not an npz at all", "no_meta"])
def test_a_bad_start_checkpoint_is_one_line(content, mini_dataset, tmp_path):
    path = tmp_path / "start.npz"
    if content == "no_meta":
        np.savez(path, weights=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(UserError, match=f"^{path}: not a readable microkws checkpoint \\(.+\\)$"):
        train(tmp_path / "run", data_config=data_config(mini_dataset), start_checkpoint=path, progress=False,
              train_config=short_config(how_many_training_steps=(5, 5)))
    with pytest.raises(UserError, match="no such checkpoint file"):
        train(tmp_path / "run", data_config=data_config(mini_dataset), start_checkpoint=tmp_path / "none.npz",
              progress=False, train_config=short_config(how_many_training_steps=(5, 5)))


def test_disk_full_keeps_the_previous_checkpoint(mini_dataset, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    calls = {"n": 0}
    real_savez = np.savez

    def savez_until_full(file, **arrays):
        calls["n"] += 1
        if calls["n"] > 2:
            file.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(file, **arrays)

    monkeypatch.setattr(np, "savez", savez_until_full)
    with pytest.raises(UserError, match=r"No space left on device\); the previous checkpoint is kept"):
        train(run_dir, data_config=data_config(mini_dataset), progress=False,
              train_config=short_config(how_many_training_steps=(30, 10), eval_step_interval=100))
    names = sorted(os.listdir(run_dir / "checkpoints"))
    assert names == ["ckpt-000010.npz", "ckpt-000020.npz"]  # no temporary or half-written file left
    assert read_meta(run_dir / "checkpoints" / "ckpt-000020.npz")["step"] == 20


def test_nan_loss_stops_naming_the_step(mini_dataset, tmp_path):
    with pytest.raises(UserError, match=r"loss became nan at step \d+"):
        train(tmp_path / "run", data_config=data_config(mini_dataset), progress=False,
              train_config=short_config(optimizer="gradient_descent", learning_rate=(1e30, 1e30)))


def test_a_chunk_of_steps_ends_at_every_validation_and_checkpoint():
    from microkws.train.loop import STEPS_PER_CALL, _check_finite, _chunk_size

    ends, step = [], 0
    while step < 95:
        step += _chunk_size(step, 95, [40, 15])
        ends.append(step)
    assert {15, 30, 40, 45, 60, 75, 80, 90, 95} <= set(ends)
    assert max(b - a for a, b in zip([0] + ends, ends)) <= STEPS_PER_CALL
    with pytest.raises(UserError, match="loss became inf at step 13;"):
        _check_finite(np.array([0.5, 0.4, np.inf, np.nan], np.float32), 10)


@pytest.mark.parametrize("flags, message", [
    (["--model_architecture", "resnet"], "unknown model architecture 'resnet'"),
    (["--how_many_training_steps", "100,10", "--learning_rate", "0.1"], "has 2 entries but learning_rate has 1"),
    (["--batch_size", "0"], "batch_size must be a positive integer"),
    (["--silence_percentage", "1e9"], "silence_percentage must be from 0 to 10000"),
    (["--preprocess", "mfcc", "--window_stride_ms", "0.01"], "must each be at least one sample"),
])
def test_bad_flags_give_one_line_and_status_2(mini_dataset, flags, message, capsys):
    # TrainConfig raises these before anything is loaded: the command in-process shows what a user sees.
    from microkws.cli import main

    assert main(["train", "--data_dir", str(mini_dataset), *flags]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_an_error_after_tensorflow_started_is_still_one_line(mini_dataset):
    """A fresh process, so TensorFlow's native start-up happens here; oneDNN on, as on CPUs that enable it
    by default, where TensorFlow writes start-up lines from C++ before any error."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TF_ENABLE_ONEDNN_OPTS": "1"}
    result = subprocess.run([sys.executable, "-m", "microkws", "train", "--data_dir", str(mini_dataset),
                             "--train_dir", "/proc/forbidden/run"], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot write to the train_dir" in lines[0] and "Traceback" not in result.stderr


def test_config_trains_again_from_a_saved_run_with_flags_on_top(mini_dataset, tmp_path):
    from microkws.cli import main
    from microkws.train import read_run_config

    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"
    quick = ["--how_many_training_steps", "4", "--learning_rate", "0.01", "--batch_size", "8",
             "--eval_step_interval", "4", "--save_step_interval", "4", "--no_progress", "--export", "0"]
    assert main(["train", *TUTORIAL, "--data_dir", str(mini_dataset), "--train_dir", str(first),
                 "--model_architecture", "ds_cnn", "--model_config", '{"filters": 8, "blocks": 1}',
                 "--optimizer", "adam", *quick]) == 0
    saved = read_run_config(first)
    assert saved.train.model_config == {"filters": 8, "blocks": 1} and saved.train.model_settings().filters == 8
    assert main(["train", "--config", str(first), "--train_dir", str(second), "--seed", "5", "--no_progress",
                 "--export", "0"]) == 0
    again = read_run_config(second)
    assert again.train == TrainConfig(**{**saved.train.to_dict(), "seed": 5})
    assert (again.data, again.features, again.augment) == (saved.data, saved.features, saved.augment)
    assert main(["train", "--config", str(first / "config.json"), "--train_dir", str(third), "--no_progress",
                 "--export", "0", "--window_stride_ms", "25"]) == 0
    assert read_run_config(third).features.window_stride_ms == 25 and read_run_config(third).train == saved.train


def test_config_that_is_not_a_run_is_one_error(tmp_path, capsys):
    from microkws.cli import main

    (tmp_path / "settings.json").write_text('{"data": {"data_dir": "d", "wanted_words": "up"}}')
    assert main(["train", "--config", str(tmp_path / "settings.json"), "--train_dir", str(tmp_path / "run")]) == 2
    assert "data.wanted_words must be a list" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "nothing"), "--train_dir", str(tmp_path / "run")]) == 2
    assert "no such run directory or settings file" in capsys.readouterr().err


def test_a_summaries_dir_that_is_a_file_is_one_error(tmp_path, capsys):
    from microkws.cli import main

    (tmp_path / "logs").write_text("not a folder")
    assert main(["train", "--data_dir", str(tmp_path / "data"), "--train_dir", str(tmp_path / "run"),
                 "--summaries_dir", str(tmp_path / "logs")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"microkws train: error: {tmp_path / 'logs'}: --summaries_dir is a file; name a folder"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_recommended_model_made_too_big_is_refused_before_training(mini_dataset, tmp_path, capsys):
    from microkws.cli import main

    run_dir = tmp_path / "run"
    assert main(["train", "--data_dir", str(mini_dataset), "--wanted_words", "up,down", "--model_config",
                 '{"filters": 64, "blocks": 4}', "--train_dir", str(run_dir), "--no_progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert "does not fit the budget: flash" in error and "over the 20,480 budget" in error
    assert len(error.splitlines()) == 1
    assert not (run_dir / "config.json").exists()


def test_a_run_stopped_by_its_validation_callback_still_says_where_its_time_went(mini_dataset, tmp_path):
    class Stop(Exception):
        pass

    def stop(step, scores):
        assert set(scores) == {"accuracy", "balanced_accuracy", "keyword_recall_at_1", "keyword_recall_at_5"}
        raise Stop

    timings = {}
    with pytest.raises(Stop):
        train(tmp_path / "run", data_config=data_config(mini_dataset), train_config=short_config(),
              progress=False, on_validation=stop, timings=timings)
    assert {"load_data", "steps", "validation", "checkpoints"} <= set(timings) and timings["steps"] > 0
