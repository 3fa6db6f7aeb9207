"""report.png: one figure of a run that a person can look at, drawn from the files every stage leaves.

    title   the architecture, the wanted words and the headline test figures
    row 1   training loss (and learning rate), training accuracy, every validation scalar      (logs/)
    row 2   the test confusion matrices, original composition and every unknown clip,
            and per-class recall in both                                                    (metrics.json)
    row 3   the DET curve of the streaming calibration, the budget, details   (detection.json, device_report.json)

config.json and metrics.json must be there (a run that finished training). Every other input may be
missing or partial (`train --export 0`, `--summaries_dir` elsewhere, a run from before a stage existed):
its panel then says what is missing. `microkws report RUN_DIR` redraws it; training draws it at the end.
"""

import io
import json
import logging
import os
import re
import textwrap

import numpy as np

from microkws.dataset.labels import keyword_indices
from microkws.errors import UserError
from microkws.files import write_bytes
from microkws.metrics import per_class
from microkws.train import rundir
from microkws.train.scalars import read_scalars

log = logging.getLogger(__name__)

BUDGET_NAMES = {"flash_bytes": "flash", "arena_bytes": "arena", "macs": "MACs",
                "accuracy_drop_points": "int8 accuracy drop"}
"""device_report.json's target names as the budget panel shows them (others: the name, spaced)."""

CHOSEN_SETTINGS = {"detection_threshold": "threshold {:g}", "average_window_duration_ms": "window {:g} ms",
                   "minimum_count": "minimum count {:g}"}
"""detection.json's chosen recognition settings, as the DET panel's legend names them."""


def write_report(run_dir, *, out=None):
    """Draw the report of `run_dir` into `out` (default RUN_DIR/report.png), atomically; returns the path.

    A UserError names the file at fault when RUN_DIR is not a finished run (no config.json, or no
    readable metrics.json); the other inputs are optional.
    """
    buffer = io.BytesIO()
    draw_report(read_inputs(run_dir)).savefig(buffer, format="png")
    return write_bytes(out or os.path.join(run_dir, rundir.REPORT_PNG_FILE), buffer.getvalue())


def write_report_or_warn(run_dir):
    """write_report for the end of training: a report that cannot be drawn must not fail a finished
    run, so the reason is logged as a warning and None returned."""
    try:
        return write_report(run_dir)
    except Exception as error:  # noqa: BLE001 - the model and its metrics are already saved
        log.warning("%s: could not draw %s (%s: %s); `microkws report %s` retries", run_dir,
                    rundir.REPORT_PNG_FILE, type(error).__name__, error, run_dir)
        return None


def read_inputs(run_dir):
    """Everything the report shows: {"run_dir", "config", "metrics", "train", "validation", "device",
    "detection"}; an optional input that is missing or unreadable is a string saying so."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise UserError(f"{run_dir}: no such run directory")
    inputs = {"run_dir": run_dir, "config": rundir.read_run_config(run_dir), "metrics": _read_metrics(run_dir)}
    for name in ("train", "validation"):
        folder = os.path.join(run_dir, rundir.LOGS_DIR, name)
        scalars = read_scalars(folder) if os.path.isdir(folder) else {}
        inputs[name] = scalars or (f"no TensorBoard scalars in {folder}\n"
                                   "(was --summaries_dir elsewhere?)")
    for name, file in (("device", rundir.REPORT_FILE), ("detection", rundir.DETECTION_FILE)):
        inputs[name] = _read_optional_json(os.path.join(run_dir, file))
    return inputs


def _read_metrics(run_dir):
    path = os.path.join(run_dir, rundir.METRICS_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{path}: missing, so the run has not finished training "
                        f"(re-run `microkws train --train_dir {run_dir}` to resume)")
    try:
        with open(path, encoding="utf-8") as file:
            metrics = json.load(file)
        labels = [str(label) for label in metrics["labels"]]
        confusion = np.asarray(metrics["test_confusion"], dtype=np.int64)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise UserError(f"{path}: cannot read ({type(error).__name__}: {error})") from None
    if confusion.shape != (len(labels), len(labels)):
        raise UserError(f"{path}: test_confusion is {confusion.shape}, not square over its {len(labels)} labels")
    if not isinstance(metrics.get("test_every_unknown", {}), dict):
        raise UserError(f"{path}: test_every_unknown is not an object")
    return metrics


def _read_optional_json(path):
    """The object in `path`, or a note saying why there is none."""
    if not os.path.isfile(path):
        return f"no {os.path.basename(path)}"
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError) as error:
        return f"{os.path.basename(path)}: cannot read ({error})"
    return data if isinstance(data, dict) else f"{os.path.basename(path)}: not a JSON object"


# --- the figure ------------------------------------------------------------------------------------------------------


def draw_report(inputs):
    """The report of `read_inputs`'s dict, as a matplotlib Figure."""
    # A bare Figure renders through Agg without pyplot, so no display is needed and the user's backend is left alone.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(18, 15), dpi=100, layout="constrained")
    grid = figure.add_gridspec(3, 3)
    panel = [[figure.add_subplot(grid[row, column]) for column in range(3)] for row in range(3)]
    metrics, labels = inputs["metrics"], inputs["metrics"]["labels"]
    figure.suptitle(_title(inputs), fontsize=13)
    _draw_training(panel[0][0], panel[0][1], inputs["train"])
    _draw_validation(panel[0][2], inputs["validation"], metrics.get("best_step"), _kept(metrics))
    compositions = {"test (original composition)": metrics["test_confusion"]}
    wide = (metrics.get("test_every_unknown") or {}).get("confusion")
    if wide is not None and np.shape(wide) == np.shape(metrics["test_confusion"]):
        compositions["test, every unknown clip"] = wide
    for axes, (name, confusion) in zip((panel[1][0], panel[1][1]), compositions.items()):
        _draw_confusion(axes, np.asarray(confusion), labels, name)
    if len(compositions) == 1:
        _skip(panel[1][1], "test, every unknown clip", "metrics.json has no test_every_unknown confusion")
    _draw_recall(panel[1][2], compositions, labels)
    _draw_det(panel[2][0], inputs["detection"])
    _draw_budget(panel[2][1], inputs["device"])
    _draw_details(panel[2][2], inputs)
    return figure


def _title(inputs):
    metrics, config = inputs["metrics"], inputs["config"]
    labels = metrics["labels"]
    words = ", ".join(labels[i] for i in keyword_indices(labels))
    parts = [f"{config.train.model_architecture}: {words}",
             f"test accuracy {_percent(metrics.get('test_accuracy'))} (N={metrics.get('test_examples', '?')})"]
    wide = metrics.get("test_every_unknown") or {}
    if wide.get("accuracy") is not None:
        parts.append(f"every unknown clip {_percent(wide['accuracy'])}, "
                     f"balanced {_percent(wide.get('balanced_accuracy'))}")
    taken = (wide.get("unknown_false_accepts") or {}).get("rate")
    if taken is not None:
        parts.append(f"other words taken for a keyword {_percent(taken)}")
    device = inputs["device"]
    if isinstance(device, dict) and (device.get("test") or {}).get("int8_accuracy") is not None:
        parts.append(f"int8 on TFLM {_percent(device['test']['int8_accuracy'])}")
    return f"{textwrap.shorten(parts[0], 160)}\n{'   |   '.join(parts[1:])}\n{os.path.abspath(inputs['run_dir'])}"


def _draw_training(loss_axes, accuracy_axes, scalars):
    if isinstance(scalars, str):
        _skip(loss_axes, "training loss", scalars)
        _skip(accuracy_axes, "training accuracy", scalars)
        return
    for axes, tag, title, scale in ((loss_axes, "cross_entropy", "training loss (cross-entropy)", 1),
                                    (accuracy_axes, "accuracy", "training accuracy (%)", 100)):
        if tag not in scalars:
            _skip(axes, title, f"no {tag} scalar in logs/train")
            continue
        steps, values = scalars[tag]
        # Per-batch figures are noisy: the raw curve faint, TensorBoard's moving average over it.
        axes.plot(steps, scale * values, color="tab:blue", alpha=0.25, linewidth=0.8)
        axes.plot(steps, scale * _smooth(values), color="tab:blue", linewidth=1.5, label=f"{tag} (smoothed)")
        _decorate(axes, title, "step")
    if "learning_rate" in scalars and "cross_entropy" in scalars:
        rate = loss_axes.twinx()
        rate.plot(*scalars["learning_rate"], color="tab:orange", linewidth=1, label="learning rate")
        rate.set_ylabel("learning rate", color="tab:orange")
        rate.set_yscale("log")
        _merge_legends(loss_axes, rate)


def _kept(metrics):
    """What the run kept: its best checkpoint, or (TrainConfig.keep_best False) its last."""
    return "best checkpoint" if metrics.get("keep_best", True) else "last checkpoint"


def _draw_validation(axes, scalars, best_step, kept="best checkpoint"):
    if isinstance(scalars, str):
        return _skip(axes, "validation", scalars)
    # Scores in [0, 1] share a percent axis; anything else (a rate per hour, a loss) gets its own.
    other = None
    for index, (tag, (steps, values)) in enumerate(sorted(scalars.items())):
        if np.all((values >= 0) & (values <= 1)):
            axes.plot(steps, 100 * values, marker="o", markersize=3, color=f"C{index}", label=tag)
        else:
            other = other or axes.twinx()
            other.plot(steps, values, marker="s", markersize=3, linestyle="--", color=f"C{index}", label=tag)
    if best_step:
        axes.axvline(best_step, color="black", linestyle=":", label=f"{kept} (step {best_step})")
    _decorate(axes, "validation (%)", "step")
    if other is not None:
        other.set_ylabel("dashed: " + ", ".join(other.get_legend_handles_labels()[1]))
        _merge_legends(axes, other)


def _draw_confusion(axes, confusion, labels, title):
    # Colour by row share (recall), so a row of 1,000 unknown clips does not wash out the keyword rows.
    support = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, support, out=np.zeros(confusion.shape), where=support > 0)
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    few = len(labels) <= 6  # room in each cell for the count and its share; with more labels, the count
    size = 9 if few else 7
    if len(labels) <= 16:  # beyond that a cell is too small for text, and the colour has to say it
        for (row, column), count in np.ndenumerate(confusion):
            axes.text(column, row, f"{count}\n{100 * shares[row, column]:.0f}%" if few else f"{count}", ha="center",
                      va="center", fontsize=size, color="white" if shares[row, column] > 0.5 else "black")
    ticks = range(len(labels))
    axes.set_xticks(ticks, labels, rotation=30, ha="right", fontsize=size)
    axes.set_yticks(ticks, labels, fontsize=size)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{title}: N={int(confusion.sum())}", fontsize=11)


def _draw_recall(axes, compositions, labels):
    width = 0.8 / len(compositions)
    positions = np.arange(len(labels))
    for index, (name, confusion) in enumerate(compositions.items()):
        scores = per_class(np.asarray(confusion), labels)
        recall = [100 * scores[label]["recall"] if scores[label]["support"] else np.nan for label in labels]
        bars = axes.bar(positions + (index - (len(compositions) - 1) / 2) * width, recall, width, label=name)
        if len(labels) <= 6:  # more labels leave no room above the bars
            axes.bar_label(bars, labels=["no clips" if np.isnan(r) else f"{r:.0f}" for r in recall], fontsize=8)
    axes.set_xticks(positions, labels, rotation=30, ha="right")
    axes.set_ylim(0, 110)
    _decorate(axes, "per-class recall (%)", None)


def _draw_det(axes, detection):
    title = "DET curve of the streaming calibration"
    if isinstance(detection, str):
        return _skip(axes, title, detection)
    points = [(_number(p, "false_accepts_per_hour"), _number(p, "false_reject_rate"), _number(p, "threshold"))
              for p in detection.get("det") or [] if isinstance(p, dict)]
    points = sorted((p for p in points if p[0] is not None and p[1] is not None), key=lambda p: (p[0], -p[1]))
    if not points:
        return _skip(axes, title, "detection.json has no DET points (det: false_accepts_per_hour, false_reject_rate)")
    x, y, _ = zip(*points)
    axes.plot(x, 100 * np.array(y), marker="o", markersize=3, label="threshold sweep")
    for xi, yi, threshold in points[:: max(1, len(points) // 8)]:  # a few labels, not one per point
        if threshold is not None:
            axes.annotate(f"{threshold:g}", (xi, 100 * yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    target = _number(detection, "target_false_accepts_per_hour")
    if target is not None:
        axes.axvline(target, color="tab:red", linestyle="--", label=f"target: {target:g} per hour")
    chosen = _chosen(detection)
    if chosen:
        axes.plot(chosen["false_accepts_per_hour"], 100 * chosen["false_reject_rate"], marker="*", markersize=16,
                  color="tab:green", linestyle="none", label=f"chosen: {_chosen_settings(chosen)}")
    # Counts per hour run from 0 to hundreds: linear near zero, logarithmic above 1.
    axes.set_xscale("symlog", linthresh=1)
    axes.set_ylabel("false-reject rate (%)")
    _decorate(axes, title, "false accepts per hour", legend="upper right")  # the curve falls away from there


def _draw_budget(axes, device):
    title = "budget (device_report.json)"
    if isinstance(device, str):
        return _skip(axes, title, device)
    rows = [(BUDGET_NAMES.get(name, name.replace("_", " ")), _number(entry, "value"), entry.get("target"))
            for name, entry in (device.get("targets") or {}).items() if isinstance(entry, dict)]
    rows = [(name, value, target, _limit(target)) for name, value, target in reversed(rows) if _limit(target)]
    if not rows:  # reversed: barh draws from the bottom, so the first target ends at the top
        return _skip(axes, title, "device_report.json has no targets with a budget")
    axes.axvline(100, color="black", linestyle="--", linewidth=1)
    for position, (name, value, target, limit) in enumerate(rows):
        share = 0 if value is None else 100 * value / limit
        axes.barh(name, share, color="tab:gray" if value is None else "tab:green" if share <= 100 else "tab:red")
        inside = share >= 60  # inside a long bar, the text never crosses the budget line
        text = "not measured" if value is None else f"{_amount(value)} (budget {target})"
        axes.text(share - 2 if inside else share + 2, position, text, va="center", fontsize=9,
                  ha="right" if inside else "left", color="white" if inside else "black")
    axes.set_xlim(0, max([150] + [1.3 * b.get_width() for b in axes.patches]))
    note = f"ops: {', '.join(device.get('ops') or ['?'])}"
    if _number(device.get("macs"), "value") is not None:
        note += f"\n{device['macs']['value']:,} multiply-accumulates per inference"
    axes.set_xlabel(f"% of the budget (dashed: the budget)\n{note}")
    axes.set_title(title, fontsize=11)


def _draw_details(axes, inputs):
    metrics, device, detection = inputs["metrics"], inputs["device"], inputs["detection"]
    # Runs before checkpoints were chosen by a named metric stored only "validation_accuracy".
    metric = str(metrics.get("checkpoint_metric", "accuracy")).replace("_", " ")
    score = metrics.get("validation_score", metrics.get("validation_accuracy"))
    lines = [f"{_kept(metrics)}: step {metrics.get('best_step')}, validation {metric} {_percent(score)}"]
    recall = (metrics.get("test_every_unknown") or {}).get("keyword_recall") or []
    if recall:
        lines.append("keyword recall (every unknown clip) at a false-accept rate of\n    " + ", ".join(
            f"{100 * row['false_accept_rate']:g}%: {_percent(row['recall'])}" for row in recall))
    test = (device.get("test") or {}) if isinstance(device, dict) else {}
    if test.get("int8_accuracy") is not None:
        lines.append(f"test on TFLM: int8 {_percent(test['int8_accuracy'])}, "
                     f"float {_percent(test.get('float_accuracy'))} (N={test.get('examples')})")
    chosen = _chosen(detection)
    if chosen:
        lines.append(f"streaming ({_chosen_settings(chosen)}):\n    {chosen['false_accepts_per_hour']:.3g} "
                     f"false accepts per hour, {_percent(chosen['false_reject_rate'])} of keywords missed")
    axes.text(0, 1, "\n\n".join(lines), va="top", ha="left", fontsize=10, transform=axes.transAxes)
    axes.set_axis_off()
    axes.set_title("details", fontsize=11)


# --- helpers ---------------------------------------------------------------------------------------------------------


def _skip(axes, title, note):
    """A panel whose input is missing: its title and why."""
    # Wrapped to the panel's width: a wider note would squeeze its neighbours in the constrained layout.
    text = "\n".join(textwrap.fill(line, 60) for line in note.splitlines())
    axes.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, color="dimgray", transform=axes.transAxes)
    axes.set_axis_off()
    axes.set_title(title, fontsize=11)


def _decorate(axes, title, xlabel, *, legend="best"):
    axes.set_title(title, fontsize=11)
    if xlabel:
        axes.set_xlabel(xlabel)
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc=legend)


def _merge_legends(axes, twin):
    """One legend for an axes and its twin (two would overlap), drawn on the twin, which lies on top."""
    handles, names = (sum(pair, []) for pair in zip(axes.get_legend_handles_labels(),
                                                    twin.get_legend_handles_labels()))
    if axes.get_legend():
        axes.get_legend().remove()
    twin.legend(handles, names, fontsize=8, loc="best")


def _smooth(values, weight=0.9):
    """TensorBoard's exponential moving average."""
    smoothed, last = np.empty(len(values)), values[0]
    for index, value in enumerate(values):
        last = weight * last + (1 - weight) * value
        smoothed[index] = last
    return smoothed


def _chosen(detection):
    """detection.json's chosen point, or None when it has no false accepts and false-reject rate."""
    chosen = detection.get("chosen") if isinstance(detection, dict) else None
    figures = (_number(chosen, "false_accepts_per_hour"), _number(chosen, "false_reject_rate"))
    return chosen if None not in figures else None


def _chosen_settings(chosen):
    return ", ".join(text.format(chosen[key]) for key, text in CHOSEN_SETTINGS.items()
                     if _number(chosen, key) is not None)


def _number(mapping, key):
    """mapping[key] as a float, or None when it is missing or not a number (a partial file)."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _limit(target):
    """The number of a budget: device_report.json writes it as text ("<= 19,000") or a number."""
    if isinstance(target, (int, float)):
        return float(target)
    match = re.search(r"\d[\d,]*(\.\d+)?", str(target or ""))
    return float(match.group().replace(",", "")) if match else None


def _amount(value):
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _percent(share):
    return "?" if share is None else f"{100 * share:.1f}%"
