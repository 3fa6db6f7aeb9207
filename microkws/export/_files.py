"""Atomic writes: a reader never sees half a model, header or report."""

import os
import shutil

from microkws.errors import UserError


def write_bytes(path, data):
    """Write `data` to `path` through a temporary file and a rename."""
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError as error:
        _remove_quietly(temporary)
        raise UserError(f"{path}: cannot write ({error.strerror or error})") from None
    return path


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


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


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
