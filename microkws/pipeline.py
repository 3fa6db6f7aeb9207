"""The whole job, in order: train -> export -> verify, for the CLI and for notebooks.

Each stage stands alone (train() writes a run directory, export_run() reads it, verify() reads the
model), so this module is the only one that knows their order, as kws_streaming's model_train_eval
chains its stages from the top.
"""

from microkws.device import verify
from microkws.export import export_run
from microkws.train import train
from microkws.train.rundir import REPORT_FILE, TFLITE_FILE


def export_and_verify(run_dir, *, verify_model=True, progress=True, **export_options):
    """Export a trained run (microkws.export.export_run's options) and verify model.tflite on TFLM.

    Returns {"files": {name: path}, "report": the device report, or None without `verify_model`}.
    """
    exported = export_run(run_dir, progress=progress, **export_options)
    report = None
    if verify_model:
        report = verify(exported["files"][TFLITE_FILE], train_dir=run_dir, progress=progress)
        exported["files"][REPORT_FILE] = report["report_path"]
    return {**exported, "report": report}


def train_and_export(run_dir, *, export=True, progress=True, **train_options):
    """Train into `run_dir` (microkws.train.train's options), then export and verify the best model.

    Returns train's metrics; with `export`, metrics["export"] holds the files and device report.
    """
    metrics = train(run_dir, progress=progress, **train_options)
    if export:
        metrics["export"] = export_and_verify(run_dir, progress=progress)
    return metrics
