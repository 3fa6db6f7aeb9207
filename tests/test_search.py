"""`microkws search`: board budgets, refusals before any work, and real (tiny) searches on the mini data set.

The in-process tests call microkws.cli.main, and the subprocess tests the same in `python -c`, as the
`microkws` console script does.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

import microkws.cli
from microkws.device import Targets
from microkws.errors import UserError
from microkws.search.boards import BOARDS, board_named

WORDS = ["--wanted_words", "up,down", "--silence_percentage", "25", "--unknown_percentage", "25"]
LAUNCH = "import microkws.cli as c; raise SystemExit(c.main())"


@pytest.fixture
def search_main():
    """microkws.cli.main, which `search` is a command of."""
    return microkws.cli.main


def search_args(data_dir, search_dir, *extra):
    return ["search", "--data_dir", str(data_dir), *WORDS, "--search_dir", str(search_dir), "--no_progress", *extra]


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("microkws search: error: "), err
    return err


def read_trials_csv(search_dir):
    with open(search_dir / "trials.csv", newline="") as file:
        return list(csv.DictReader(file))


def load_study(search_dir):
    return optuna.load_study(study_name="microkws", storage=f"sqlite:///{search_dir / 'study.db'}")


# --- boards -------------------------------------------------------------------------------------------------------


def test_micro_speech_board_is_the_default_budget():
    assert BOARDS["micro_speech"].targets() == Targets()


def test_a_board_budget_is_its_share_of_flash_ram_and_one_stride():
    board = board_named("nano33ble")
    targets = board.targets(stride_ms=20)
    assert targets.flash_bytes == 512 * 1024 and targets.arena_bytes == 128 * 1024
    # 64 MHz * 20 ms = 1.28 M cycles; half of them at an estimated 0.6 cycles per MAC.
    assert targets.macs == round(64e6 * 0.020 * 0.5 / 0.6) == 1_066_667
    assert abs(board.targets(stride_ms=40).macs - 2 * targets.macs) <= 1
    assert BOARDS["pico"].targets().macs < BOARDS["esp32s3"].targets().macs  # no SIMD against ESP-NN
    with pytest.raises(UserError, match="micro_speech, nano33ble"):
        board_named("uno")


def test_budget_flags_override_the_board():
    from microkws.cli.search import add_arguments, targets_from_args

    parser = microkws.cli._Parser(prog="microkws search")
    add_arguments(parser)
    args = parser.parse_args(["--board", "stm32f746", "--flash_budget", "64K"])
    assert targets_from_args(args) == Targets(flash_bytes=64 * 1024, arena_bytes=160 * 1024,
                                              macs=BOARDS["stm32f746"].targets().macs)
    assert targets_from_args(parser.parse_args([])) == Targets()
    # The issue's own spelling: MACs in decimal K/M, bytes in binary K.
    args = parser.parse_args(["--flash_budget", "20K", "--arena_budget", "28K", "--macs_budget", "2M"])
    assert targets_from_args(args) == Targets(flash_bytes=20480, arena_bytes=28672, macs=2_000_000)
    assert parser.parse_args(["--macs_budget", "1.5e6"]).macs_budget == 1_500_000
    for refused in (["--trials", "nan"], ["--macs_budget", "2.5"], ["--macs_budget", "-2M"], ["--macs_budget", "M"]):
        with pytest.raises(SystemExit):
            parser.parse_args(refused)


# --- refusals, before any training --------------------------------------------------------------------------------


def test_unknown_board_is_a_one_line_error(search_main, capsys, tmp_path):
    assert search_main(search_args(tmp_path / "data", tmp_path / "search", "--board", "arduino_uno")) == 2
    err = one_line_error(capsys)
    assert "--board arduino_uno" in err and "nano33ble" in err


@pytest.mark.parametrize("url", ["postgresql://nobody:secret@127.0.0.1:1/x", "sqlite:///{missing}/study.db"])
def test_unreachable_storage_is_a_one_line_error(search_main, capsys, tmp_path, url):
    url = url.format(missing=tmp_path / "no" / "such" / "folder")
    assert search_main(search_args(tmp_path / "data", tmp_path / "search", "--storage", url)) == 2
    err = one_line_error(capsys)
    assert "--storage" in err and "cannot open" in err and "secret" not in err


def test_a_budget_nothing_fits_is_refused_before_training(search_main, capsys, mini_dataset, tmp_path):
    search_dir = tmp_path / "search"
    assert search_main(search_args(mini_dataset, search_dir, "--flash_budget", "1K")) == 2
    err = one_line_error(capsys)
    assert "no candidate of the search space fits" in err and "flash 1,024 bytes" in err
    for family in ("tiny_conv", "ds_cnn", "bc_resnet"):
        assert family in err
    # The smallest ds_cnn's flatbuffer with the recipe's per-tensor weight scales: a bit over 4 KB.
    assert '"first_strides": [2, 4]}: flash 4,' in err
    assert not (search_dir / "trials").exists()
    study = load_study(search_dir)
    assert study.trials == [] and study.user_attrs == {}  # a larger budget may be tried in the same folder


# --- real searches ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_search_writes_its_outputs_and_the_best_model(search_main, capsys, mini_dataset, tmp_path):
    from microkws.cli.train import run_settings
    from microkws.train import read_run_config

    search_dir = tmp_path / "search"
    # 12K of flash cuts every bc_resnet and tc_resnet and the larger ds_cnn and tiny_conv out of the space.
    args = search_args(mini_dataset, search_dir, "--flash_budget", "12K", "--trials", "5", "--steps_per_trial",
                       "30", "--final_steps", "30")
    assert search_main(args) == 0, capsys.readouterr().err
    assert "microkws train --config" in capsys.readouterr().out
    rows = read_trials_csv(search_dir)
    assert [row["number"] for row in rows] == ["0", "1", "2", "3", "4"]
    states = {row["state"] for row in rows}
    assert "over_budget" in states and "complete" in states, rows
    for row in rows:
        folder = search_dir / "trials" / f"trial-{int(row['number']):04d}"
        if row["state"] == "over_budget":
            assert not folder.exists() and row["run_dir"] == "" and row["score"] == ""
            assert int(row["flash_bytes"]) > 12 * 1024 and row["note"].startswith("over flash_bytes")
        else:
            assert (folder / "metrics.json").is_file() and 0 <= float(row["score"]) <= 1
            assert int(row["flash_bytes"]) <= 12 * 1024
    assert (search_dir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    best = search_dir / "best"
    assert (best / "model.tflite").is_file()
    report = json.loads((best / "device_report.json").read_text())
    # best/ is calibrated as `microkws train` calibrates: its header carries the chosen threshold.
    chosen = json.loads((best / "detection.json").read_text())["chosen"]
    assert report["detection"]["score_threshold"] == chosen["score_threshold"]
    assert f"kDetectionThreshold = {chosen['score_threshold']};" in (best / "model_settings.h").read_text()
    assert report["targets"]["flash_bytes"] == {"value": report["model_bytes"], "target": "<= 12,288", "met": True}
    # `microkws train --config SEARCH_DIR/best` trains exactly the best trial's candidate again.
    again = run_settings(microkws.cli.build_parser().parse_args(["train", "--config", str(best)]))
    assert again == read_run_config(best)
    # The best: the highest score; of equal scores, the one using the least of the budget.
    budget = {"flash_bytes": 12 * 1024, "arena_bytes": Targets().arena_bytes, "macs": Targets().macs}
    best_row = max((row for row in rows if row["state"] == "complete"), key=lambda row: (
        float(row["score"]), -sum(int(row[name]) / limit for name, limit in budget.items())))
    assert again.train.model_architecture == best_row["architecture"]
    assert again.train.model_config == json.loads(best_row["model_config"])
    # The costs measured before training are the trained, exported model's: they do not depend on weights.
    assert (int(best_row["flash_bytes"]), int(best_row["arena_bytes"])) == (report["model_bytes"],
                                                                            report["arena_bytes"])
    assert int(best_row["macs"]) == report["targets"]["macs"]["value"]
    assert again.train.how_many_training_steps == (30,) and again.train.learning_rate == (
        float(best_row["learning_rate"]),)

    # The same folder with other settings is refused, before any work.
    assert search_main([*args[:-1], "31"]) == 2
    assert "other settings (final_steps)" in one_line_error(capsys)


def launch(data_dir, search_dir, *extra, log):
    """The search in its own process group, as a user would start it from a shell."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", LAUNCH, *search_args(data_dir, search_dir, *extra)]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def launch_until_trial_0_trains(data_dir, search_dir, extra, log_path, *, seconds):
    """`launch` the search, logging to `log_path`, and return its process once trial 0 has its run folder."""
    with open(log_path, "w") as log:
        process = launch(data_dir, search_dir, *extra, log=log)
    deadline = time.monotonic() + seconds
    while not (search_dir / "trials" / "trial-0000" / "config.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    return process


@pytest.mark.slow
def test_kill_9_then_the_same_command_finishes_the_search(mini_dataset, tmp_path):
    search_dir = tmp_path / "search"
    # esp32s3's budget fits the whole space: every trial trains.
    extra = ("--board", "esp32s3", "--trials", "2", "--steps_per_trial", "60", "--final_steps", "20", "--calibrate", "0")
    process = launch_until_trial_0_trains(mini_dataset, search_dir, extra, tmp_path / "first.log", seconds=180)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()  # reaped: its pid is no longer alive
    assert [t.state for t in load_study(search_dir).trials] == [optuna.trial.TrialState.RUNNING], \
        "the trial finished before the kill; give it more --steps_per_trial"

    with open(tmp_path / "second.log", "w") as log:
        assert launch(mini_dataset, search_dir, *extra, log=log).wait() == 0, (tmp_path / "second.log").read_text()
    trials = load_study(search_dir).trials
    assert [t.number for t in trials] == [0, 1]
    assert trials[0].state == optuna.trial.TrialState.FAIL and trials[1].state == optuna.trial.TrialState.COMPLETE
    assert [row["state"] for row in read_trials_csv(search_dir)] == ["fail", "complete"]
    assert "trial 0 was left running" in (tmp_path / "second.log").read_text()
    assert (search_dir / "best" / "model.tflite").is_file()


@pytest.mark.slow
def test_two_workers_share_the_study(search_main, capsys, mini_dataset, tmp_path):
    search_dir = tmp_path / "search"
    args = search_args(mini_dataset, search_dir, "--board", "esp32s3", "--workers", "2", "--trials", "3",
                       "--steps_per_trial", "20", "--final_steps", "20", "--calibrate", "0")
    assert search_main(args) == 0, capsys.readouterr().err
    trials = load_study(search_dir).trials
    # Workers stop when finished plus running trials reach --trials; two finishing at the very same
    # moment may each start one more.
    assert 3 <= len(trials) <= 4
    assert all(t.user_attrs["pid"] != os.getpid() for t in trials)  # run by the spawned workers
    folders = [t.user_attrs["run_dir"] for t in trials if "run_dir" in t.user_attrs]
    assert len(folders) == len(set(folders))
    for trial in trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert (search_dir / trial.user_attrs["run_dir"] / "metrics.json").is_file()


@pytest.mark.slow
def test_kill_9_of_one_worker_among_two(mini_dataset, tmp_path):
    """One of two workers killed in the middle of its trial: the other finishes its own, the command says
    to re-run, and the re-run fails the killed trial without training any finished trial again."""
    search_dir = tmp_path / "search"
    extra = ("--board", "esp32s3", "--workers", "2", "--trials", "3", "--steps_per_trial", "60",
             "--final_steps", "20", "--calibrate", "0")
    process = launch_until_trial_0_trains(mini_dataset, search_dir, extra, tmp_path / "first.log", seconds=240)
    victim = load_study(search_dir).trials[0]
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)  # that worker only, not the command's process group
    assert process.wait() == 2, (tmp_path / "first.log").read_text()
    first_log = (tmp_path / "first.log").read_text()
    assert "stopped early" in first_log and "re-run the same command" in first_log
    trials = load_study(search_dir).trials
    assert trials[0].state == optuna.trial.TrialState.RUNNING, "trial 0 finished before the kill"
    survivors = [t for t in trials[1:] if t.state.is_finished()]
    assert survivors and all(t.user_attrs["pid"] != victim.user_attrs["pid"] for t in survivors)
    finished_at = {t.number: (search_dir / t.user_attrs["run_dir"] / "metrics.json").stat().st_mtime_ns
                   for t in survivors if t.state == optuna.trial.TrialState.COMPLETE}

    with open(tmp_path / "second.log", "w") as log:
        assert launch(mini_dataset, search_dir, *extra, log=log).wait() == 0, (tmp_path / "second.log").read_text()
    trials = load_study(search_dir).trials
    assert "trial 0 was left running" in (tmp_path / "second.log").read_text()
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert all(t.state.is_finished() for t in trials) and 3 <= len(trials) <= 4
    folders = [t.user_attrs["run_dir"] for t in trials if "run_dir" in t.user_attrs]
    assert len(folders) == len(set(folders))  # no trial's folder trained by two workers
    for number, mtime in finished_at.items():  # a finished trial is not run again
        assert trials[number].state == optuna.trial.TrialState.COMPLETE
        assert (search_dir / trials[number].user_attrs["run_dir"] / "metrics.json").stat().st_mtime_ns == mtime
    assert [row["state"] for row in read_trials_csv(search_dir)][0] == "fail"
    assert (search_dir / "best" / "model.tflite").is_file()
