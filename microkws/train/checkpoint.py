"""Checkpoints: the model's and optimizer's variables plus the loop's state, in one .npz file.

One file per checkpoint, written to a temporary name and renamed, so a
kill or a full disk never leaves a half-written file as the latest. The
metadata names the architecture, labels and input shape, so a checkpoint of
another model is refused with a clear message instead of a shape error.
"""

import json
import os
import re

import numpy as np

from microkws.errors import UserError
from microkws.files import write_with

CHECKPOINT_PATTERN = re.compile(r"^ckpt-(\d+)\.npz$")
KEEP_CHECKPOINTS = 3


def checkpoint_path(directory, step):
    return os.path.join(directory, f"ckpt-{step:06d}.npz")


def latest_checkpoint(directory):
    """Path of the highest-step checkpoint in `directory`, or None."""
    if not os.path.isdir(directory):
        return None
    steps = [int(m.group(1)) for m in map(CHECKPOINT_PATTERN.match, os.listdir(directory)) if m]
    return checkpoint_path(directory, max(steps)) if steps else None


def save_checkpoint(path, *, model, optimizer=None, meta):
    """Write model (and optimizer) variables and `meta` (a JSON-able dict) atomically."""
    arrays = {f"model/{i:04d}": np.asarray(v) for i, v in enumerate(model.variables)}
    if optimizer is not None:
        arrays.update({f"optimizer/{i:04d}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    arrays["meta"] = np.array(json.dumps(meta))
    write_npz_atomically(path, arrays)


def write_npz_atomically(path, arrays):
    write_with(path, lambda file: np.savez(file, **arrays), hint="; the previous checkpoint is kept")


def read_meta(path):
    try:
        with np.load(path) as data:
            return json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{path}: not a microkws checkpoint ({error})") from None


def load_checkpoint(path, *, model, optimizer=None, expect=None):
    """Restore variables from `path` into model (and optimizer); returns the metadata.

    `expect` maps metadata keys to required values (architecture, labels,
    input shape): a mismatch is a UserError naming both.
    """
    meta = read_meta(path)
    for key, wanted in (expect or {}).items():
        found = meta.get(key)
        if _comparable(found) != _comparable(wanted):
            raise UserError(
                f"{path}: checkpoint has {key} {found!r} but this run has {wanted!r}; "
                "use a checkpoint of the same architecture and labels, or a new --train_dir"
            )
    with np.load(path) as data:
        model_values = [data[k] for k in sorted(k for k in data.files if k.startswith("model/"))]
        optimizer_values = [data[k] for k in sorted(k for k in data.files if k.startswith("optimizer/"))]
    _assign(model.variables, model_values, path, "model")
    if optimizer is not None and optimizer_values:
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        _assign(optimizer.variables, optimizer_values, path, "optimizer")
    return meta


def prune_checkpoints(directory, keep=KEEP_CHECKPOINTS):
    """Delete all but the newest `keep` checkpoints."""
    found = sorted(
        (int(m.group(1)), name)
        for name in os.listdir(directory)
        if (m := CHECKPOINT_PATTERN.match(name))
    )
    for _, name in found[:-keep]:
        _remove_quietly(os.path.join(directory, name))


def _assign(variables, values, path, what):
    if len(variables) != len(values) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise UserError(f"{path}: the checkpoint's {what} variables do not fit this model")
    for variable, value in zip(variables, values):
        variable.assign(value)


def _comparable(value):
    return json.loads(json.dumps(value))


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
