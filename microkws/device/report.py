"""The budget a model is checked against, the table `microkws verify` prints, and later stages' additions
to device_report.json."""

import json
import os
from dataclasses import dataclass

from microkws.device.firmware import refresh_model_settings
from microkws.errors import UserError
from microkws.files import write_json


@dataclass(frozen=True)
class Targets:
    """micro_speech's budget: what a model may cost to drop into TFLM's micro_speech example."""

    flash_bytes: int = 20 * 1024
    """Largest model flatbuffer (micro_speech_quantized.tflite is 18,800 bytes)."""
    arena_bytes: int = 28 * 1024
    """Largest tensor arena (micro_speech's kTensorArenaSize is 28,584 bytes)."""
    macs: int = 2_000_000
    """Most multiply-accumulates per inference (tiny_conv: 336,000), so that one inference stays well
    inside the 20 ms feature stride on a Cortex-M4 at 64 MHz."""
    accuracy_drop_points: float = 0.5
    """Largest fall of test accuracy from float to int8, in percentage points."""


def format_report(report):
    """The short table `microkws verify` prints."""
    targets = report["targets"]
    rows = [("model", report["model"])]

    def target(name, text):
        entry = targets[name]
        if entry["value"] is None:
            return f"{text}   (target {entry['target']}: not measured)"
        return f"{text}   target {entry['target']}: {'met' if entry['met'] else 'NOT MET'}"

    rows.append(("flash", target("flash_bytes", f"{report['model_bytes']:,} bytes")))
    arena = report["arena_bytes"]
    rows.append(("arena", target("arena_bytes", f"{arena:,} bytes" if arena is not None else "not measured")))
    rows.append(("ops", ", ".join(report["ops"])))
    rows.append(("MACs", target("macs", f"{report['macs']['value']:,} ({report['macs']['source']})")))
    tensor = report["input"]
    rows.append(("input", f"{tensor['dtype']} {tensor['shape']} scale {tensor['scale']!r} zero point "
                          f"{tensor['zero_point']}; {tensor['device_mapping']}"))
    reference = report["reference_kernels"]
    rows.append(("reference", f"{'identical to' if reference['identical'] else 'DIFFERS from'} TFLite's reference "
                              f"kernels on {reference['inputs']} inputs"
                              + ("" if reference["identical"] else f" ({reference['differing']} differ, by at most "
                                                                    f"{reference['largest_difference']})")))
    golden = report["golden"]
    checked = [g for g in golden.values() if g["expected"] is not None]
    rows.append(("golden clips", f"{sum(g['ok'] for g in checked)}/{len(checked)} as expected: "
                 + ", ".join(f"{name.split('_')[0]}->{g['predicted']}" for name, g in golden.items())))
    test = report["test"]
    if test.get("examples"):
        text = f"{report['input']['dtype']} {100 * test['int8_accuracy']:.2f}%"
        if test.get("float_accuracy") is not None:
            text += f", float {100 * test['float_accuracy']:.2f}% (N={test['examples']})"
            if test.get("int8_differs_from_float"):
                text += (f"; {test['int8_differs_from_float']} clip(s) labelled differently, "
                         f"{test['int8_top_ties']} int8 output(s) tied at the top")
            rows.append(("test accuracy", target("accuracy_drop_points", text)))
        else:
            rows.append(("test accuracy", f"{text} (N={test['examples']}); no float model to compare"))
    else:
        rows.append(("test accuracy", f"not measured: {test.get('skipped', 'no test split')}"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {text}" for name, text in rows)


def check_targets(report, targets):
    """{budget name: {"value", "target", "met"}} of a verify report against `targets`."""
    test = report["test"]
    drop = None
    if test.get("float_accuracy") is not None:
        drop = round(100 * (test["float_accuracy"] - test["int8_accuracy"]), 4)
    result = {}
    for name, value, limit in (
        ("flash_bytes", report["model_bytes"], targets.flash_bytes),
        ("arena_bytes", report["arena_bytes"], targets.arena_bytes),
        ("macs", report["macs"]["value"], targets.macs),
        ("accuracy_drop_points", drop, targets.accuracy_drop_points),
    ):
        result[name] = {"value": value, "target": f"<= {limit:,}", "met": None if value is None else value <= limit}
    return result


def update_device_report(path, **entries):
    """Set top-level `entries` of the device report at `path` (e.g. detection={...} from the streaming
    calibration), written atomically: a reader sees the old report or the new one. Returns `path`."""
    try:
        with open(path, encoding="utf-8") as file:
            report = json.load(file)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read the device report ({error})") from None
    if not isinstance(report, dict):
        raise UserError(f"{path}: not a device report (expected a JSON object)")
    report = {**report, **entries}
    write_json(path, report)
    refresh_model_settings(report, os.path.dirname(os.path.abspath(path)))
    return path
