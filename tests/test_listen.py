"""microkws listen: a file through the live path, a (fake) microphone, and the errors of a machine without one."""

import re
import sys
import threading
import time
import types

import numpy as np
import pytest
import soundfile
from test_streaming import REFERENCE_LABELS, REFERENCE_MODEL, words_recording

from microkws.cli import main

PLACEMENTS = ((2.0, "yes"), (5.0, "no"), (8.5, "yes"))
HEARD = re.compile(r"^Heard (\w+) \((\d\.\d\d)\) at (\d+\.\d\d) s$")


@pytest.fixture(scope="module")
def words_wav(testvectors, tmp_path_factory):
    path = tmp_path_factory.mktemp("listen") / "words.wav"
    soundfile.write(path, words_recording(testvectors, placements=PLACEMENTS), 16000, subtype="PCM_16")
    return path


@pytest.fixture
def model_args(testvectors):
    return ["listen", str(testvectors / REFERENCE_MODEL), "--labels", ",".join(REFERENCE_LABELS)]


def heard(text):
    events = [HEARD.match(line) for line in text.splitlines()]
    assert all(events), text
    return [(m.group(1), float(m.group(2)), float(m.group(3))) for m in events]


def assert_heard_the_words(events):
    assert [label for label, _, _ in events] == [word for _, word in PLACEMENTS]
    for (_, score, at), (start, _) in zip(events, PLACEMENTS):
        # Heard once the averaged window has taken in most of the word: after it starts, before it is long over.
        assert start + 0.5 <= at <= start + 2.5, (at, start)
        assert 200 / 256 < score <= 1


def test_listen_to_a_wav_hears_the_words_at_their_times(model_args, words_wav, capsys):
    assert main([*model_args, "--wav", str(words_wav), "--speed", "0"]) == 0
    assert_heard_the_words(heard(capsys.readouterr().out))


def test_wav_chunks_keep_real_time_pace(words_wav):
    from microkws.streaming.listen import wav_chunks

    started = time.monotonic()
    chunks = list(wav_chunks(words_wav, sample_rate=16000, speed=40))  # 12 s of audio at 40x: 0.3 s
    assert time.monotonic() - started >= 0.28
    assert len(chunks) == 600 and {len(c) for c in chunks} == {320}
    assert np.concatenate(chunks).tolist() == soundfile.read(words_wav, dtype="int16")[0].tolist()


class FakeSoundDevice(types.ModuleType):
    """Just enough of sounddevice: one input device that 'records' a WAV file, on a thread like PortAudio's."""

    class PortAudioError(Exception):
        pass

    def __init__(self, wav=None, *, devices_error=None):
        super().__init__("sounddevice")
        self.wav, self.devices_error, self.opened = wav, devices_error, []
        fake = self

        class InputStream:
            def __init__(self, *, samplerate, channels, dtype, blocksize, device, callback):
                fake.opened.append(dict(samplerate=samplerate, channels=channels, dtype=dtype, blocksize=blocksize))
                self.callback, self.blocksize = callback, blocksize
                self.stop = threading.Event()

            def __enter__(self):
                audio = soundfile.read(fake.wav, dtype="int16")[0]

                def record():
                    for begin in range(0, len(audio) - self.blocksize + 1, self.blocksize):
                        if self.stop.is_set():
                            return
                        self.callback(audio[begin:begin + self.blocksize, None], self.blocksize, None, None)

                self.thread = threading.Thread(target=record, daemon=True)
                self.thread.start()
                return self

            def __exit__(self, *exc):
                self.stop.set()
                self.thread.join()

        self.InputStream = InputStream

    def query_devices(self, device=None, kind=None):
        if self.devices_error:
            raise self.PortAudioError(self.devices_error)
        return {"name": "fake microphone", "max_input_channels": 1}


def test_listen_to_the_microphone(model_args, words_wav, monkeypatch, capsys):
    fake = FakeSoundDevice(words_wav)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    assert main([*model_args, "--seconds", "12"]) == 0
    captured = capsys.readouterr()
    assert "listening for yes, no" in captured.err
    assert fake.opened == [dict(samplerate=16000, channels=1, dtype="int16", blocksize=320)]
    assert_heard_the_words(heard(captured.out))


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_without_sounddevice(model_args, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails with ImportError
    assert main(model_args) == 2
    err = one_line_error(capsys)
    assert 'needs sounddevice: pip install "microkws[listen]"' in err and "libportaudio2" in err


def test_without_portaudio(model_args, monkeypatch, capsys):
    class NoPortAudio:  # sounddevice raises OSError at import when the PortAudio library is missing
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    assert main(model_args) == 2
    err = one_line_error(capsys)
    assert "cannot load PortAudio (PortAudio library not found)" in err and "apt install libportaudio2" in err


def test_without_an_input_device(model_args, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice(devices_error="Error querying device -1"))
    assert main(model_args) == 2
    assert "no audio input device (Error querying device -1); connect a microphone" in one_line_error(capsys)


def test_a_wav_shorter_than_one_clip(model_args, tmp_path, capsys):
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(4000, np.int16), 16000)
    assert main([*model_args, "--wav", str(short), "--speed", "0"]) == 2
    assert "short.wav: 250 ms of audio, shorter than one clip (1000 ms)" in one_line_error(capsys)
