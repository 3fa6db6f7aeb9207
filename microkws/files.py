"""Atomic writes: a reader never sees half a model, checkpoint, header or report.

Each writer fills a temporary file beside the target and renames it into
place, so a kill or a full disk leaves the previous file, never a torn one.
"""

import json
import os
import shutil
import tempfile

from microkws.errors import UserError


def write_with(path, write, *, hint=""):
    """Call `write(binary_file)` on a temporary file, then rename it to `path`. Returns `path`.

    A failure is a UserError naming `path` and the reason, with `hint` appended.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"{path}: cannot write: the folder {folder} does not exist{hint}")
    try:
        handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error.strerror or error}){hint}") from None
    try:
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        _remove_quietly(temporary)
        raise UserError(f"{path}: cannot write ({error.strerror or error}){hint}") from None
    except BaseException:
        _remove_quietly(temporary)
        raise
    return path


def write_bytes(path, data):
    """Write `data` to `path` atomically."""
    return write_with(path, lambda file: file.write(data))


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, data):
    return write_text(path, json.dumps(data, indent=1) + "\n")


def replace_directory(built, path):
    """Move the finished directory `built` to `path`, replacing what was there."""
    try:
        if os.path.isdir(path):
            old = f"{path}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(built, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(built, path)
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error.strerror or error})") from None
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
