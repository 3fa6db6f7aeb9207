"""Download and extract the Speech Commands data set, resumably and atomically.

`download_speech_commands("v0.02")` returns the folder to pass as `data_dir`.
A download interrupted for any reason resumes from its `.part` file on the
next call; the archive is checked against its published size and SHA-256
before it is unpacked; and the data-set folder appears only by a rename once
every file is in it, so a folder with the final name is always complete.
"""

import hashlib
import http.client
import logging
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from microkws.errors import UserError
from microkws.files import staging_directory

log = logging.getLogger(__name__)

DATA_DIR_ENV = "MICROKWS_DATA_DIR"
"""Environment variable naming the folder that data sets are downloaded into."""

_BASE_URL = "http://download.tensorflow.org/data"
_CHUNK_BYTES = 1 << 20
_TIMEOUT_S = 60
_LOCAL_COPY_HINT = "or pass --data_dir with a local copy of the data set"


@dataclass(frozen=True)
class Archive:
    """One downloadable .tar.gz and the folder it is unpacked into."""

    url: str
    """Where to download it from."""
    folder: str
    """Name of the folder, under the destination, that receives its contents."""
    size: int | None = None
    """Expected size in bytes; None trusts the server's Content-Length."""
    sha256: str | None = None
    """Expected SHA-256 as hex; None skips the check."""

    @property
    def filename(self):
        """File name of the archive, from the URL."""
        name = self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        return name or f"{self.folder}.tar.gz"


# Sizes and SHA-256 digests as published by others who download these files:
# v0.02 and its test set from tensorflow_datasets
# (tensorflow_datasets/url_checksums/speech_commands.txt); v0.01's digest from
# torchaudio (torchaudio/datasets/speechcommands.py) and its size from the
# Content-Length download.tensorflow.org sends for it.
SPEECH_COMMANDS = {
    "v0.02": Archive(
        url=f"{_BASE_URL}/speech_commands_v0.02.tar.gz",
        folder="speech_commands_v0.02",
        size=2428923189,
        sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
    ),
    "v0.01": Archive(
        url=f"{_BASE_URL}/speech_commands_v0.01.tar.gz",
        folder="speech_commands_v0.01",
        size=1489096277,
        sha256="743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    ),
    "v0.02-test": Archive(
        url=f"{_BASE_URL}/speech_commands_test_set_v0.02.tar.gz",
        folder="speech_commands_test_set_v0.02",
        size=112563277,
        sha256="cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
    ),
}
"""Versions of Speech Commands that `download_speech_commands` knows."""

DEFAULT_VERSION = "v0.02"


def default_data_root():
    """Folder that data sets are downloaded into when no destination is given.

    `$MICROKWS_DATA_DIR` when set, else a per-user cache folder:
    `$XDG_CACHE_HOME/microkws` or `~/.cache/microkws` on Linux,
    `~/Library/Caches/microkws` on macOS, `%LOCALAPPDATA%\\microkws` on Windows.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        base = home / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        # The XDG spec says to ignore a relative path here.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache"
    return base / "microkws"


def download_speech_commands(version=DEFAULT_VERSION, *, dest=None, url=None, keep_archive=False, progress=True):
    """Download and unpack one version of Speech Commands; return its folder.

    `version` is a key of `SPEECH_COMMANDS` ("v0.02", "v0.01" or
    "v0.02-test"). The data set lands in `<dest>/<folder>/`, `dest`
    defaulting to `default_data_root()`. `url` replaces the download address
    with a mirror of the same archive: it is still checked against the
    version's published size and checksum. Nothing is downloaded when the
    folder is already there.
    """
    if version not in SPEECH_COMMANDS:
        raise UserError(f"unknown Speech Commands version {version!r}; choose one of {', '.join(SPEECH_COMMANDS)}")
    archive = SPEECH_COMMANDS[version]
    if url:
        archive = replace(archive, url=url)
    return download_archive(archive, dest=dest, keep_archive=keep_archive, progress=progress)


def download_archive(archive, *, dest=None, keep_archive=False, progress=True):
    """Download, verify and unpack `archive` into `<dest>/<archive.folder>/`; return that folder.

    Steps, each skipped when a previous call finished it: download to
    `<dest>/<filename>.part` (resuming it with an HTTP Range request), check
    size and SHA-256 and rename it to `<dest>/<filename>`, unpack into a
    hidden sibling folder and rename that into place, then delete the
    archive unless `keep_archive`.
    """
    _check_url(archive.url)
    # Absolute, so that the folder returned (and printed by the CLI) works from anywhere.
    dest = (Path(dest).expanduser() if dest is not None else default_data_root()).absolute()
    final = dest / archive.folder
    if final.is_dir():
        log.info("%s is already downloaded", final)
        return final
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create download folder {dest}: {error.strerror or error}") from error

    archive_path = dest / archive.filename
    if archive_path.is_file():
        # A previous run verified this file and then stopped before it was
        # unpacked; check it again in case it was changed since.
        log.info("found %s from an earlier run", archive_path)
        _verify(archive_path, archive)
    else:
        part = dest / (archive.filename + ".part")
        _fetch(archive, part, progress=progress)
        _verify(part, archive)
        os.replace(part, archive_path)

    _extract(archive_path, final, progress=progress)
    if not keep_archive:
        archive_path.unlink()
    log.info("Speech Commands is in %s", final)
    return final


def _check_url(url):
    scheme = urllib.parse.urlsplit(str(url)).scheme.lower()
    if scheme not in ("http", "https", "ftp", "file"):
        raise UserError(f"--url {url!r} is not a download address; give an http(s)://, ftp:// or file:// URL")


def _fetch(archive, part, *, progress):
    """Download `archive.url` into `part`, appending to what is there already."""
    offset = part.stat().st_size if part.is_file() else 0
    if archive.size is not None:
        if offset == archive.size:
            log.info("%s is complete", part)
            return
        if offset > archive.size:
            log.warning("%s is longer than the archive; starting over", part)
            part.unlink()
            offset = 0

    response = _open(archive.url, offset)
    with response:
        if offset and response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                # Rare: a server that answers a different range than asked.
                # Starting over is simpler than patching the file.
                response.close()
                log.warning("server resumed at byte %s instead of %s; starting over", start, offset)
                part.unlink()
                return _fetch(archive, part, progress=progress)
            mode = "ab"
            log.info("resuming %s at %.1f MB", archive.filename, offset / 1e6)
        else:
            if offset:
                log.info("the server does not resume downloads; starting %s over", archive.filename)
            offset, mode = 0, "wb"
            total = _content_length(response)
        if archive.size is not None and total is not None and total != archive.size:
            raise UserError(
                f"{archive.url} is {total} bytes, expected {archive.size}: not the published archive; "
                f"check --url, {_LOCAL_COPY_HINT}"
            )
        expected = archive.size if archive.size is not None else total
        _copy_body(response, part, mode=mode, offset=offset, total=expected, archive=archive, progress=progress)

    received = part.stat().st_size
    if expected is not None and received != expected:
        # The connection closed early without an error: keep what arrived.
        raise UserError(
            f"download of {archive.url} stopped at {received} of {expected} bytes; "
            f"run the command again to resume, {_LOCAL_COPY_HINT}"
        )


def _open(url, offset):
    """GET `url` from byte `offset`; network failures become a UserError."""
    headers = {"User-Agent": "microkws"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Range Not Satisfiable: the .part file does not fit this archive.
            # Ask for the whole file instead.
            log.warning("the server refused to resume; starting over")
            return _open(url, 0)
        raise _network_error(url, f"HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        raise _network_error(url, _reason(error)) from error


def _copy_body(response, part, *, mode, offset, total, archive, progress):
    bar = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=archive.filename,
        file=sys.stderr,
        disable=None if progress else True,  # None: only on a terminal
    )
    with bar, open(part, mode) as out:
        while True:
            try:
                chunk = response.read(_CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as error:
                raise _network_error(
                    archive.url, f"{_reason(error)} after {out.tell()} bytes; run the command again to resume"
                ) from error
            if not chunk:
                break
            # A server without Content-Length (or a wrong one) could send forever and fill the disk.
            too_much = total is not None and out.tell() + len(chunk) > total
            if too_much:
                chunk = chunk[:total - out.tell()]
            try:
                out.write(chunk)
            except OSError as error:
                raise UserError(f"cannot write {part}: {error.strerror or error}") from error
            if too_much:
                raise UserError(f"{archive.url} sent more than the expected {total} bytes; stopped there. "
                                f"Check --url, {_LOCAL_COPY_HINT}")
            bar.update(len(chunk))


def _verify(path, archive):
    """Check size and SHA-256; delete the file when they are wrong."""
    size = path.stat().st_size
    if archive.size is not None and size != archive.size:
        path.unlink()
        raise UserError(
            f"{archive.filename} from {archive.url} is {size} bytes, expected {archive.size}; "
            f"deleted it, run the command again to download it afresh, {_LOCAL_COPY_HINT}"
        )
    if archive.sha256 is None:
        return
    log.info("checking the SHA-256 of %s", path.name)
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(_CHUNK_BYTES), b""):
            digest.update(block)
    if digest.hexdigest() != archive.sha256.lower():
        path.unlink()
        raise UserError(
            f"{archive.filename} from {archive.url} has SHA-256 {digest.hexdigest()}, expected {archive.sha256}; "
            f"deleted it, run the command again to download it afresh, {_LOCAL_COPY_HINT}"
        )


def _extract(archive_path, final, *, progress):
    """Unpack into a hidden sibling of `final`, then rename it into place."""
    if not hasattr(tarfile, "data_filter"):
        raise UserError("unpacking the data set safely needs Python 3.11.4 or newer")
    staging = Path(staging_directory(final))  # also clears folders of runs killed while unpacking
    log.info("unpacking %s", archive_path.name)
    try:
        bar = tqdm(unit=" files", desc="unpacking", file=sys.stderr, disable=None if progress else True)
        with bar, tarfile.open(archive_path, "r:gz") as tar:
            for member in tar:
                # The "data" filter refuses absolute paths, paths leaving the
                # folder, device files and links pointing outside.
                tar.extract(member, staging, filter="data")
                bar.update()
        os.rename(staging, final)
    except (tarfile.TarError, EOFError, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"cannot unpack {archive_path}: {_reason(error)}") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _parse_content_range(value):
    """'bytes 100-999/1000' -> (100, 1000); total None when '*'."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    total = None if match.group(2) == "*" else int(match.group(2))
    return int(match.group(1)), total


def _content_length(response):
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _reason(error):
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        error = error.reason
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _network_error(url, problem):
    return UserError(f"cannot download {url}: {problem}; check the network connection, {_LOCAL_COPY_HINT}")
