"""`microkws download` against a local HTTP server: never the real internet."""

import contextlib
import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile

from microkws import download
from microkws.cli import main
from microkws.download import Archive, default_data_root, download_archive, download_speech_commands
from microkws.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
FOLDER = "speech_commands_v0.02"
NAME = "speech_commands_v0.02.tar.gz"
CLIPS = ("yes/0a7c2a8d_nohash_0.wav", "yes/0a7c2a8d_nohash_1.wav", "no/1b4c9b89_nohash_0.wav")
NOISE = "_background_noise_/white_noise.wav"


def wav_bytes(seed, seconds):
    # Random noise does not compress, so the archive is big enough to cut in parts.
    samples = np.random.default_rng(seed).uniform(-0.5, 0.5, int(16000 * seconds))
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def make_tar_gz(members):
    """{arcname: bytes} -> .tar.gz bytes, names stored with the './' prefix the real archives use."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name if name.startswith(("/", "..")) else f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def contents():
    files = {clip: wav_bytes(i, 0.25) for i, clip in enumerate(CLIPS)}
    files[NOISE] = wav_bytes(99, 1.0)
    files["LICENSE"] = b"CC BY 4.0\n"
    files["validation_list.txt"] = f"{CLIPS[2]}\n".encode()
    return files


@pytest.fixture(scope="module")
def tarball(contents):
    return make_tar_gz(contents)


def archive_for(url, tarball, **changes):
    fields = dict(url=url, folder=FOLDER, size=len(tarball), sha256=hashlib.sha256(tarball).hexdigest())
    fields.update(changes)
    return Archive(**fields)


@contextlib.contextmanager
def serve(files, *, ranges=True, cut_after=None):
    """Serve {path: bytes} on 127.0.0.1 in a thread; yield (base URL, list of (path, Range header)).

    `ranges=False` ignores Range headers (answers 200 with the whole file);
    `cut_after=n` closes the connection after n bytes of the body.
    """
    requests = []

    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a stuck client cannot hold the server thread for ever

        def do_GET(self):
            requests.append((self.path, self.headers.get("Range")))
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            wanted = self.headers.get("Range")
            if ranges and wanted:
                start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload if cut_after is None else payload[:cut_after])

        def log_message(self, *args):
            pass

    with running(Handler) as base:
        yield base, requests


@contextlib.contextmanager
def running(handler):
    """Serve with `handler` (a BaseHTTPRequestHandler class) on 127.0.0.1 in a thread; yield the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens there once the socket is closed.
    return f"http://127.0.0.1:{port}/{NAME}"


def assert_extracted(folder, contents):
    assert folder.is_dir()
    for name, data in contents.items():
        assert (folder / name).read_bytes() == data, name
    leftovers = [p.name for p in folder.parent.iterdir() if p != folder]
    return leftovers


def test_download_and_extract(tmp_path, tarball, contents):
    with serve({f"/{NAME}": tarball}) as (base, requests):
        folder = download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    assert folder == tmp_path / FOLDER
    # The archive is deleted once unpacked, and nothing else is left behind.
    assert assert_extracted(folder, contents) == []
    assert requests == [(f"/{NAME}", None)]


def test_keep_archive(tmp_path, tarball, contents):
    with serve({f"/{NAME}": tarball}) as (base, _):
        folder = download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, keep_archive=True)
    assert assert_extracted(folder, contents) == [NAME]
    assert (tmp_path / NAME).read_bytes() == tarball


def test_resume_sends_range_and_appends(tmp_path, tarball, contents):
    done = len(tarball) // 3
    (tmp_path / f"{NAME}.part").write_bytes(tarball[:done])
    with serve({f"/{NAME}": tarball}) as (base, requests):
        folder = download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    assert requests == [(f"/{NAME}", f"bytes={done}-")]
    assert assert_extracted(folder, contents) == []


def test_server_ignoring_range_restarts(tmp_path, tarball, contents):
    # A .part that does not even match: the whole file comes again and replaces it.
    (tmp_path / f"{NAME}.part").write_bytes(b"x" * 1000)
    with serve({f"/{NAME}": tarball}, ranges=False) as (base, requests):
        folder = download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    assert requests == [(f"/{NAME}", "bytes=1000-")]
    assert assert_extracted(folder, contents) == []


def test_cut_connection_keeps_part_then_resumes(tmp_path, tarball, contents):
    half = len(tarball) // 2
    with serve({f"/{NAME}": tarball}, cut_after=half) as (base, _):
        with pytest.raises(UserError, match="run the command again to resume") as error:
            download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    assert "\n" not in str(error.value)
    assert (tmp_path / f"{NAME}.part").read_bytes() == tarball[:half]
    assert not (tmp_path / FOLDER).exists()
    with serve({f"/{NAME}": tarball}) as (base, requests):
        folder = download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    assert requests == [(f"/{NAME}", f"bytes={half}-")]
    assert assert_extracted(folder, contents) == []


def test_complete_part_needs_no_request(tmp_path, tarball, contents):
    # Killed between the last byte and the rename: only the check remains.
    (tmp_path / f"{NAME}.part").write_bytes(tarball)
    folder = download_archive(archive_for(closed_port_url(), tarball), dest=tmp_path, progress=False)
    assert assert_extracted(folder, contents) == []


def test_checksum_mismatch_deletes_the_file(tmp_path, tarball, contents):
    with serve({f"/{NAME}": tarball}) as (base, _):
        wrong = archive_for(f"{base}/{NAME}", tarball, sha256="0" * 64)
        with pytest.raises(UserError) as error:
            download_archive(wrong, dest=tmp_path, progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert "SHA-256" in message and "0" * 64 in message and "--data_dir" in message
    assert list(tmp_path.iterdir()) == []  # no .part, no archive, no folder: a re-run starts clean
    with serve({f"/{NAME}": tarball}) as (base, requests):
        folder = download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    assert requests == [(f"/{NAME}", None)]
    assert assert_extracted(folder, contents) == []


def test_mirror_of_a_different_archive_fails_the_published_checksum(tmp_path, tarball):
    # --url serves our small archive, not the real v0.02: its size gives it away before any byte is saved.
    with serve({f"/{NAME}": tarball}) as (base, _):
        with pytest.raises(UserError, match="expected 2428923189"):
            download_speech_commands("v0.02", dest=tmp_path, url=f"{base}/{NAME}", progress=False)
    assert not (tmp_path / FOLDER).exists()


def test_unreachable_url_names_url_and_data_dir(tmp_path, tarball):
    url = closed_port_url()
    with pytest.raises(UserError) as error:
        download_archive(archive_for(url, tarball), dest=tmp_path, progress=False)
    message = str(error.value)
    assert url in message and "--data_dir" in message and "\n" not in message
    assert not (tmp_path / FOLDER).exists()


def test_http_error_is_a_user_error(tmp_path, tarball):
    with serve({}) as (base, _):
        with pytest.raises(UserError, match="HTTP 404"):
            download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)


def test_failed_extraction_leaves_no_folder(tmp_path, tarball, contents, monkeypatch):
    real_extract = tarfile.TarFile.extract
    calls = []

    def failing_extract(self, member, *args, **kwargs):
        calls.append(member.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_extract(self, member, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", failing_extract)
    with serve({f"/{NAME}": tarball}) as (base, _):
        with pytest.raises(UserError, match="No space left on device"):
            download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    assert len(calls) == 3
    assert not (tmp_path / FOLDER).exists()
    # The verified archive stays; the half-unpacked staging folder does not.
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]

    monkeypatch.setattr(tarfile.TarFile, "extract", real_extract)
    folder = download_archive(archive_for(closed_port_url(), tarball), dest=tmp_path, progress=False)
    assert assert_extracted(folder, contents) == []


def test_killed_extraction_is_cleaned_up(tmp_path, tarball, contents):
    # What a SIGKILL mid-extraction leaves: a hidden staging folder, never FOLDER itself.
    stale = tmp_path / f".{FOLDER}.abc123.partial"
    (stale / "yes").mkdir(parents=True)
    with serve({f"/{NAME}": tarball}) as (base, _):
        folder = download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    assert not stale.exists()
    assert assert_extracted(folder, contents) == []


def test_unsafe_member_is_refused(tmp_path):
    evil = make_tar_gz({"yes/a.wav": b"RIFF", "../escaped.txt": b"gotcha"})
    dest = tmp_path / "dest"
    with serve({f"/{NAME}": evil}) as (base, _):
        with pytest.raises(UserError, match="cannot unpack"):
            download_archive(archive_for(f"{base}/{NAME}", evil), dest=dest, progress=False)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (dest / FOLDER).exists()


def test_existing_folder_is_not_downloaded_again(tmp_path, tarball):
    with serve({f"/{NAME}": tarball}) as (base, requests):
        first = download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
        second = download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    assert first == second
    assert len(requests) == 1


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("MICROKWS_DATA_DIR", str(tmp_path / "data"))
    assert default_data_root() == tmp_path / "data"
    monkeypatch.delenv("MICROKWS_DATA_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        assert default_data_root() == tmp_path / "cache" / "microkws"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored, as the XDG spec says
        assert default_data_root() == Path.home() / ".cache" / "microkws"


def test_default_destination_is_used(monkeypatch, tmp_path, tarball):
    monkeypatch.setenv("MICROKWS_DATA_DIR", str(tmp_path / "cache"))
    with serve({f"/{NAME}": tarball}) as (base, _):
        monkeypatch.setitem(download.SPEECH_COMMANDS, "v0.02", archive_for(f"{base}/{NAME}", tarball))
        folder = download_speech_commands("v0.02", progress=False)
    assert folder == tmp_path / "cache" / FOLDER


def test_published_archives_have_checksums():
    for version, archive in download.SPEECH_COMMANDS.items():
        assert archive.size and re.fullmatch(r"[0-9a-f]{64}", archive.sha256), version
        assert archive.filename.endswith(".tar.gz") and archive.url.startswith("http"), version


def test_cli_prints_the_folder(monkeypatch, tmp_path, tarball, capsys):
    with serve({f"/{NAME}": tarball}) as (base, _):
        monkeypatch.setitem(download.SPEECH_COMMANDS, "v0.02", archive_for(f"{base}/{NAME}", tarball))
        assert main(["download", "--dest", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path / FOLDER}\n"


def run_cli(*args, tmp_path):
    env = {**os.environ, "MICROKWS_DATA_DIR": str(tmp_path / "default"), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "microkws", "download", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_unreachable_url_exits_2_with_one_line(tmp_path):
    url = closed_port_url()
    result = run_cli("--url", url, "--dest", str(tmp_path), tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("microkws download: error: cannot download")
    assert url in lines[0] and "--data_dir" in lines[0]


def test_cli_checksum_mismatch_exits_2_with_one_line(monkeypatch, tmp_path, tarball, capsys):
    with serve({f"/{NAME}": tarball}) as (base, _):
        wrong = archive_for(f"{base}/{NAME}", tarball, sha256="0" * 64)
        monkeypatch.setitem(download.SPEECH_COMMANDS, "v0.02", wrong)
        assert main(["download", "--dest", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith("microkws download: error: ") and "SHA-256" in captured.err


def test_cli_wrong_mirror_exits_2_with_one_line(tmp_path, tarball):
    with serve({f"/{NAME}": tarball}) as (base, _):
        result = run_cli("--data_url", f"{base}/{NAME}", "--dest", str(tmp_path), tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "expected 2428923189" in result.stderr


def test_relative_destination_gives_an_absolute_folder(monkeypatch, tmp_path, tarball):
    monkeypatch.chdir(tmp_path)
    with serve({f"/{NAME}": tarball}) as (base, _):
        folder = download_archive(archive_for(f"{base}/{NAME}", tarball), dest="data", progress=False)
    assert folder == tmp_path / "data" / FOLDER


@contextlib.contextmanager
def serve_endless():
    """A server that answers without Content-Length and keeps sending (64 MB at most, so that a client
    without the limit fails this test without filling the disk)."""

    class Handler(BaseHTTPRequestHandler):
        timeout = 10

        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(1024):
                    self.wfile.write(b"\0" * 65536)

        def log_message(self, *args):
            pass

    with running(Handler) as base:
        yield base


def test_a_server_that_never_stops_is_cut_at_the_expected_size(tmp_path, tarball):
    with serve_endless() as base:
        with pytest.raises(UserError, match="sent more than the expected"):
            download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    assert (tmp_path / f"{NAME}.part").stat().st_size == len(tarball)


def test_a_glob_in_the_folder_name_deletes_nothing_else(tmp_path, tarball, contents):
    # The folder name is user text: "*" in it must not match other people's folders.
    unrelated = tmp_path / ".other.xyz.partial"
    (unrelated / "keep").mkdir(parents=True)
    with serve({f"/{NAME}": tarball}) as (base, _):
        folder = download_archive(archive_for(f"{base}/{NAME}", tarball, folder="*"), dest=tmp_path, progress=False)
    assert (unrelated / "keep").is_dir()
    assert folder.name == "*" and (folder / CLIPS[0]).read_bytes() == contents[CLIPS[0]]


def test_the_unpacked_folder_is_readable_by_others_as_the_umask_allows(tmp_path, tarball):
    old = os.umask(0o022)
    try:
        with serve({f"/{NAME}": tarball}) as (base, _):
            folder = download_archive(archive_for(f"{base}/{NAME}", tarball), dest=tmp_path, progress=False)
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o755


def test_cli_not_a_url_exits_2_with_one_line(tmp_path):
    result = run_cli("--url", "not a url", "--dest", str(tmp_path), tmp_path=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("microkws download: error: --url 'not a url' is not a download address; "
                                     "give an http(s)://, ftp:// or file:// URL")
