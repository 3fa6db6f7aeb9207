"""The device stage: a model on TensorFlow Lite Micro's own kernels, and what it costs there.

tflm.py     the tflite-micro runtime (TflmModel) and the smallest tensor arena (smallest_arena)
golden.py   TFLM micro_speech's four test clips
verification.py  `verify`: flash, arena, ops, MACs, bit-equality with TFLite's reference kernels, golden
            clips, int8 vs float accuracy; writes device_report.json
report.py   the budget (Targets) and the printed table (format_report)

`verify` needs TensorFlow (the reference kernels, the float model), so it is imported on first use:
running a model on TFLM alone does not load TensorFlow.
"""

from microkws.device.report import Targets, format_report
from microkws.device.tflm import GENEROUS_ARENA, TflmModel, smallest_arena

__all__ = ["GENEROUS_ARENA", "Targets", "TflmModel", "format_report", "smallest_arena", "verify"]


def __getattr__(name):
    if name == "verify":
        from microkws.device.verification import verify

        return verify
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
