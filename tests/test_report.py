"""microkws report: report.png from a real run, from partial runs, the DET panel, and bad run directories.

One short up/down run (test_train's 40-step settings on a few clips) is trained and exported once for the
module through the pipeline, which draws the report at its end.
"""

import json
import os
import shutil
import subprocess
import sys

import matplotlib.image
import pytest
from conftest import make_mini_dataset
from test_train import data_config, short_config

from microkws.cli import main
from microkws.errors import UserError

FIGURE_PIXELS = (1500, 1800)  # rows, columns: 18 x 15 inches at 100 dpi


@pytest.fixture(scope="module")
def run(tmp_path_factory, sample_dir):
    """A trained and exported run directory, and train_and_export's metrics."""
    from microkws.pipeline import train_and_export

    root = make_mini_dataset(tmp_path_factory.mktemp("data") / "data", sample_dir)
    run_dir = tmp_path_factory.mktemp("run")
    metrics = train_and_export(run_dir, data_config=data_config(root), train_config=short_config(), progress=False)
    return run_dir, metrics


def copy_run(run_dir, target, names=("config.json", "metrics.json")):
    """A copy of some of a run's files: a run as a partial stage or an old version leaves it."""
    target.mkdir()
    for name in names:
        shutil.copy(run_dir / name, target / name)
    return target


def panel_texts(figure):
    """Every title, note and legend entry of the figure, for checking what a panel says."""
    texts = [figure._suptitle.get_text()]
    for axes in figure.axes:
        texts += [axes.get_title(), *(t.get_text() for t in axes.texts)]
        legend = axes.get_legend()
        texts += [t.get_text() for t in legend.get_texts()] if legend else []
    return texts


def assert_png(path):
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == FIGURE_PIXELS and image.shape[2] in (3, 4)
    assert image.std() > 0.05  # drawn, not blank


def test_training_draws_the_report_into_the_run(run):
    run_dir, metrics = run
    assert metrics["report"] == os.path.join(run_dir, "report.png")
    assert_png(metrics["report"])
    assert not [name for name in os.listdir(run_dir) if name.startswith(".tmp")]


def test_the_report_shows_every_stage_of_a_full_run(run):
    from microkws.report import draw_report, read_inputs

    run_dir, metrics = run
    inputs = read_inputs(run_dir)
    assert set(inputs["train"]) == {"cross_entropy", "accuracy", "learning_rate"}
    steps, values = inputs["train"]["cross_entropy"]
    assert list(steps) == list(range(1, 41)) and values.min() > 0
    assert list(inputs["validation"]["accuracy"][0]) == [20, 40]
    assert list(inputs["validation"]["balanced_accuracy"][0]) == [20, 40]
    texts = "\n".join(panel_texts(draw_report(inputs)))
    assert "tiny_conv: up, down" in texts and f"test accuracy {100 * metrics['test_accuracy']:.1f}%" in texts
    assert "test, every unknown clip" in texts and "balanced_accuracy" in texts
    device, targets = inputs["device"], inputs["device"]["targets"]
    assert f"{device['model_bytes']:,} (budget {targets['flash_bytes']['target']})" in texts
    assert f"{device['arena_bytes']:,} (budget {targets['arena_bytes']['target']})" in texts


def test_report_command_redraws_into_out(run, tmp_path, capsys):
    out = tmp_path / "report.png"
    assert main(["report", str(run[0]), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert_png(out)


def test_a_run_without_logs_device_report_or_detection_still_gets_a_report(run, tmp_path):
    from microkws.report import draw_report, read_inputs, write_report

    partial = copy_run(run[0], tmp_path / "partial")
    assert_png(write_report(partial))
    texts = "\n".join(panel_texts(draw_report(read_inputs(partial))))
    assert "no TensorBoard scalars" in texts and "--summaries_dir" in texts
    assert "no device_report.json" in texts and "no detection.json" in texts
    (partial / "device_report.json").write_text("{not json")
    (partial / "detection.json").write_text(json.dumps({"det": [{"threshold": 0.5}], "chosen": {}}))
    texts = "\n".join(panel_texts(draw_report(read_inputs(partial))))
    assert "device_report.json: cannot read" in texts and "detection.json has no DET points" in texts


def test_det_panel_marks_the_chosen_point_and_the_target(run, tmp_path):
    from microkws.report import draw_report, read_inputs

    partial = copy_run(run[0], tmp_path / "partial")
    det = [{"threshold": t, "false_accepts_per_hour": 40 * (1 - t), "false_reject_rate": t / 2, "keywords": 30}
           for t in (0.2, 0.4, 0.6, 0.8)]
    chosen = {"detection_threshold": 0.6, "average_window_duration_ms": 750, "minimum_count": 3,
              "false_accepts_per_hour": 16.0, "false_reject_rate": 0.3}
    (partial / "detection.json").write_text(json.dumps({"det": det, "chosen": chosen,
                                                         "target_false_accepts_per_hour": 2}))
    figure = draw_report(read_inputs(partial))
    axes = next(a for a in figure.axes if a.get_title().startswith("DET curve"))
    lines = {line.get_label(): line for line in axes.get_lines()}
    curve = lines["threshold sweep"]
    assert list(curve.get_xdata()) == pytest.approx([8, 16, 24, 32])  # sorted by false accepts
    assert list(curve.get_ydata()) == pytest.approx([40, 30, 20, 10])
    target = lines["target: 2 per hour"]
    assert list(target.get_xdata()) == [2, 2]
    star = lines["chosen: threshold 0.6, window 750 ms, minimum count 3"]
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([16.0], [30.0])


def test_scalars_of_a_resumed_run_keep_the_later_value(tmp_path):
    """A resumed run writes a second event file that repeats the steps after its checkpoint."""
    from microkws._tensorflow import tf
    from microkws.train.scalars import read_scalars

    for values in ({1: 0.1, 2: 0.2, 3: 0.3}, {3: 0.35, 4: 0.4}):
        writer = tf.summary.create_file_writer(str(tmp_path))
        with writer.as_default():
            for step, value in values.items():
                tf.summary.scalar("accuracy", value, step=step)
        writer.close()
    steps, values = read_scalars(tmp_path)["accuracy"]
    assert list(steps) == [1, 2, 3, 4]
    assert [round(v, 4) for v in values] == [0.1, 0.2, 0.35, 0.4]
    newest = max(tmp_path.iterdir(), key=os.path.getmtime)
    newest.write_bytes(newest.read_bytes()[:-7])  # killed while writing the last record
    assert list(read_scalars(tmp_path)["accuracy"][0]) == [1, 2, 3]


def test_a_failed_drawing_does_not_fail_training(tmp_path, caplog):
    from microkws.report import write_report_or_warn

    assert write_report_or_warn(tmp_path / "missing") is None
    assert "could not draw report.png" in caplog.text and "microkws report" in caplog.text


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "microkws", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.fixture
def untrained_run(tmp_path, sample_dir):
    """A run directory with config.json but no metrics.json, as a run killed during training leaves it."""
    from microkws.dataset import DataConfig
    from microkws.train import RunConfig

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(RunConfig(DataConfig(sample_dir)).to_dict()))
    return run_dir


@pytest.mark.parametrize("case, message", [
    ("missing", "missing: no such run directory"),
    ("corrupt", "metrics.json: cannot read"),
])
def test_bad_run_directories_exit_2_with_one_line(untrained_run, case, message):
    target = untrained_run.parent / "missing" if case == "missing" else untrained_run
    (untrained_run / "metrics.json").write_text('{"labels": ["_silence_", "_unknown_", "up"')
    result = run_cli("report", target)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (untrained_run / "report.png").exists()


@pytest.mark.parametrize("setup, message", [
    (lambda run: None, "metrics.json: missing, so the run has not finished training"),
    (lambda run: (run / "config.json").unlink(), "no config.json; is it a microkws run directory"),
    (lambda run: (run / "metrics.json").write_text('{"labels": ["a", "b"], "test_confusion": [[1, 2]]}'),
     "test_confusion is (1, 2), not square over its 2 labels"),
])
def test_unfinished_or_foreign_runs_are_one_error(untrained_run, setup, message, capsys):
    from microkws.report import write_report

    setup(untrained_run)
    with pytest.raises(UserError) as error:
        write_report(untrained_run)
    assert message in str(error.value)
    assert main(["report", str(untrained_run)]) == 2
    assert message in capsys.readouterr().err
