"""Reading the scalars a training run wrote for TensorBoard (logs/train, logs/validation) back as arrays.

The TFRecord framing is fixed and tiny, so it is read here; tensorboard's own loaders import TensorFlow
(seconds), which `microkws report` otherwise never needs. The Event proto comes from tensorboard.
"""

import glob
import os
import struct

import numpy as np


def read_scalars(directory):
    """{tag: (steps, values)} of every scalar in the event files of `directory`, sorted by step.

    A resumed run writes a new event file that repeats the steps after its last checkpoint; the later
    file's value wins. TF2's tf.summary.scalar stores a scalar tensor, TF1 a simple_value: both count.
    """
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.util.tensor_util import make_ndarray

    series = {}
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*")), key=_event_file_order):
        for record in _records(path):
            try:
                event = Event.FromString(record)
            except DecodeError:  # a damaged record ends that file's readable part
                break
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = value.simple_value
                elif value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                    number = make_ndarray(value.tensor).item()
                else:
                    continue
                series.setdefault(value.tag, {})[event.step] = float(number)
    return {tag: tuple(np.array(column) for column in zip(*sorted(points.items())))
            for tag, points in series.items()}


def _event_file_order(path):
    """Oldest first: event files are named events.out.tfevents.TIME.HOST.PID.N(.v2), and N counts up
    within a process (compared as text, file 10 would come before file 9)."""
    return tuple(int(part) for part in os.path.basename(path).split(".") if part.isdigit())


def _records(path):
    """The records of a TFRecord file: an 8-byte length, its 4-byte CRC, the data, its 4-byte CRC.
    A record cut short (a run killed while writing) ends the file."""
    with open(path, "rb") as file:
        while len(header := file.read(12)) == 12:
            (length,) = struct.unpack("<Q", header[:8])
            data = file.read(length)
            if len(data) < length or len(file.read(4)) < 4:
                return
            yield data
