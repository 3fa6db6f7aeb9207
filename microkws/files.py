"""Atomic writes: a reader never sees half a model, checkpoint, header or report.

Each writer fills a temporary file beside the target and renames it into
place, so a kill or a full disk leaves the previous file, never a torn one.
"""

import json
import logging
import os
import re
import shutil
import tempfile

from microkws.errors import UserError

log = logging.getLogger(__name__)


def write_with(path, write, *, hint=""):
    """Call `write(binary_file)` on a temporary file, then rename it to `path`. Returns `path`.

    A failure is a UserError naming `path` and the reason, with `hint` appended.
    """
    path = os.fspath(path)
    folder = existing_folder_of(path, hint=hint)
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


def existing_folder_of(path, *, hint=""):
    """The folder `path` goes in; a UserError naming `path` when that folder does not exist."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise UserError(f"{os.fspath(path)}: cannot write: the folder {folder} does not exist{hint}")
    return folder


def write_bytes(path, data):
    """Write `data` to `path` atomically."""
    return write_with(path, lambda file: file.write(data))


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, data):
    return write_text(path, json.dumps(data, indent=1) + "\n")


def check_writable(folder, *, what="write"):
    """A UserError naming `folder` unless a file can be created in it: checked before long work (an
    export converts for a minute before its first write), and by creating a file, because permission
    bits say nothing on a read-only file system or to root."""
    folder = os.fspath(folder)
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    except OSError as error:
        raise UserError(f"{folder}: cannot {what} there ({error.strerror or error})") from None
    os.close(handle)
    _remove_quietly(probe)


LOW_DISK_BYTES = 64 * 2**20
"""Below this much free space a failed write is reported as a full disk."""


def staging_directory(path):
    """A new empty folder beside `path` (".NAME.XXXXXXXX.partial") to build its replacement in, with the
    umask's mode (mkdtemp's 0700 would hide a data set from others on a shared machine). What a killed
    earlier build of `path` left is cleared first: its staging folders, and `path`.old from a kill
    between the two renames of `replace_directory` (moved back when `path` is missing)."""
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    old = f"{path}.old"
    if os.path.isdir(old):
        if os.path.isdir(path):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, path)
    # Only names this function makes, matched literally: the folder name is user text, and used as a
    # glob pattern ("DIR/*") it once matched unrelated folders.
    ours = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{1,16}\.partial")
    for entry in os.scandir(parent) if os.path.isdir(parent) else []:
        if ours.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
            log.info("removing %s, left by an interrupted run", entry.path)
            shutil.rmtree(entry.path, ignore_errors=True)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent)
        os.chmod(staging, 0o777 & ~_umask())
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error.strerror or error}){low_disk_note(parent)}") from None
    return staging


def low_disk_note(folder):
    """" (the disk holding FOLDER has N MB free)" when it is nearly full, else "": a failed write's
    likely cause, which TensorFlow's own messages do not say."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f" (the disk holding {folder} has {free / 2**20:.0f} MB free)" if free < LOW_DISK_BYTES else ""


def replace_directory(built, path):
    """Move the finished directory `built` to `path`, replacing what was there (a kill between the two
    renames leaves `path`.old, which the next `staging_directory(path)` puts back)."""
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
