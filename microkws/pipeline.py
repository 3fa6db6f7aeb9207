"""The whole job, in order: train -> export -> verify, for the CLI and for notebooks.

Each stage stands alone (train() writes a run directory, export_run() reads it, verify() reads the
model), so this module is the only one that knows their order, as kws_streaming's model_train_eval
chains its stages from the top.
"""

import logging
import os
import time

from microkws.device import verify
from microkws.device.budget import check_budget, model_costs
from microkws.device.firmware import SETTINGS_FILE
from microkws.export import export_run
from microkws.report import write_report_or_warn
from microkws.streaming.calibrate import DEFAULT_FALSE_ACCEPTS_PER_HOUR, calibrate_run
from microkws.train import train
from microkws.train.rundir import REPORT_FILE, TFLITE_FILE

log = logging.getLogger(__name__)


def export_and_verify(run_dir, *, verify_model=True, progress=True, **export_options):
    """Export a trained run (microkws.export.export_run's options) and verify model.tflite on TFLM.

    Returns {"files": {name: path}, "report": the device report, or None without `verify_model`}.
    Without `verify_model`, a device_report.json and model_settings.h of an earlier verify are kept only
    if the model is byte for byte the one they describe: firmware built from a stale header would get
    the wrong arena size or op list.
    """
    before = None if verify_model else _read_or_none(os.path.join(run_dir, TFLITE_FILE))
    exported = export_run(run_dir, progress=progress, **export_options)
    report = None
    if verify_model:
        report = verify(exported["files"][TFLITE_FILE], train_dir=run_dir, progress=progress)
        exported["files"][REPORT_FILE] = report["report_path"]
    elif _read_or_none(exported["files"][TFLITE_FILE]) != before:
        _remove_stale(run_dir, (REPORT_FILE, SETTINGS_FILE))
    return {**exported, "report": report}


def _read_or_none(path):
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return None


def _remove_stale(run_dir, names):
    """Remove the files `names` of `run_dir` that exist: they describe a model that is no longer there."""
    for name in names:
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            continue
        try:
            os.remove(path)
        except OSError as error:
            log.warning("%s describes the model exported before, and cannot be removed (%s): do not build "
                        "firmware from it; `microkws verify %s` writes it again", path, error.strerror, run_dir)
            continue
        log.warning("removed %s: it described the model exported before; `microkws verify %s` writes it for "
                    "this one", path, run_dir)


def train_and_export(run_dir, *, export=True, calibrate=False, false_accepts_per_hour=DEFAULT_FALSE_ACCEPTS_PER_HOUR,
                     budget=None, progress=True, **train_options):
    """Train into `run_dir` (microkws.train.train's options), then export and verify the best model.

    Returns train's metrics, whose "seconds" also hold export_verify and calibrate; with `export`,
    metrics["export"] holds the files and device report. With `export` and `calibrate` (as `microkws train`
    does), the detection settings are then chosen on an hour of validation speakers
    (microkws.streaming.calibrate, about a minute for tiny_conv): detection.json, and metrics["detection"].
    Missing `false_accepts_per_hour` there is a warning, not an error.
    `budget` (device.Targets): refuse, before training, a model whose int8 conversion would not fit it.
    """
    if budget is not None:
        check_fit(budget, train_options)
    metrics = train(run_dir, progress=progress, **train_options)
    if export:
        started = time.monotonic()
        metrics["export"] = export_and_verify(run_dir, progress=progress)
        metrics["seconds"]["export_verify"] = time.monotonic() - started
        if calibrate:
            started = time.monotonic()
            calibration = calibrate_run(run_dir, false_accepts_per_hour=false_accepts_per_hour,
                                        require_target=False, progress=progress)
            metrics["detection"] = {**calibration.to_dict(), "summary": calibration.summary()}
            metrics["seconds"]["calibrate"] = time.monotonic() - started
    metrics["report"] = write_report_or_warn(run_dir)  # report.png, or None (and a warning) if it cannot be drawn
    return metrics


def check_fit(budget, train_options):
    """A one-line error if the model of `train_options` (train()'s keyword arguments) would not fit `budget`."""
    from microkws.features import FeatureConfig
    from microkws.train import TrainConfig

    settings = train_options.get("train_config") or TrainConfig()
    features = train_options.get("feature_config") or FeatureConfig()
    labels = len(train_options["data_config"].labels)
    costs = model_costs(settings, features, labels)
    check_budget(costs, budget, what=f"{settings.model_architecture} with model_config {settings.model_config}")
    return costs
