"""Checkpoints: the model's and optimizer's variables plus the loop's state, in one .npz file.

One file per checkpoint, written to a temporary name and renamed, so a
kill or a full disk never leaves a half-written file as the latest. The
metadata names the architecture, labels and input shape, so a checkpoint of
another model is refused with a clear message instead of a shape error.
"""

import json
import logging
import os
import re
import zipfile
import zlib

import numpy as np

from microkws.errors import UserError, first_line
from microkws.files import write_with

log = logging.getLogger(__name__)

UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)
"""What numpy raises on an empty, truncated or malformed .npz."""

CHECKPOINT_PATTERN = re.compile(r"^ckpt-(\d+)\.npz$")
KEEP_CHECKPOINTS = 3


def checkpoint_path(directory, step):
    return os.path.join(directory, f"ckpt-{step:06d}.npz")


class UnreadableCheckpoint(UserError):
    """A checkpoint file that numpy cannot read back (empty, truncated, not an .npz of ours)."""


def checkpoints_newest_first(directory):
    """Paths of the checkpoints in `directory`, highest step first."""
    if not os.path.isdir(directory):
        return []
    steps = sorted((int(m.group(1)) for m in map(CHECKPOINT_PATTERN.match, os.listdir(directory)) if m), reverse=True)
    return [checkpoint_path(directory, step) for step in steps]


def latest_checkpoint(directory):
    """Path of the highest-step checkpoint in `directory`, or None."""
    return next(iter(checkpoints_newest_first(directory)), None)


def load_newest_checkpoint(directory, *, model, optimizer=None, expect=None):
    """(path, metadata) of the newest checkpoint in `directory` that loads, or (None, None). A file that
    cannot be read (a disk that filled, a copy cut short) is skipped with a warning naming it, so one bad
    file does not stop resuming for good."""
    for path in checkpoints_newest_first(directory):
        try:
            return path, load_checkpoint(path, model=model, optimizer=optimizer, expect=expect)
        except UnreadableCheckpoint as error:
            log.warning("skipping checkpoint %s: %s", path, error)
    return None, None


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
    return _read(path)[0]


def _read(path):
    """(metadata, model arrays, optimizer arrays) of a checkpoint, all read before anything is assigned."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such checkpoint file")
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {prefix: [data[k] for k in sorted(k for k in data.files if k.startswith(prefix))]
                      for prefix in ("model/", "optimizer/")}
    except UNREADABLE as error:
        raise UnreadableCheckpoint(f"{path}: not a readable microkws checkpoint ({first_line(error)})") from None
    if not isinstance(meta, dict):
        raise UnreadableCheckpoint(f"{path}: not a readable microkws checkpoint (its metadata is not an object)")
    return meta, arrays["model/"], arrays["optimizer/"]


def load_checkpoint(path, *, model, optimizer=None, expect=None):
    """Restore variables from `path` into model (and optimizer); returns the metadata.

    `expect` maps metadata keys to required values (architecture, labels,
    input shape): a mismatch is a UserError naming both.
    """
    meta, model_values, optimizer_values = _read(path)
    for key, wanted in (expect or {}).items():
        found = meta.get(key)
        if _comparable(found) != _comparable(wanted):
            raise UserError(
                f"{path}: checkpoint has {key} {found!r} but this run has {wanted!r}; "
                "use a checkpoint of the same architecture and labels, or a new --train_dir"
            )
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
