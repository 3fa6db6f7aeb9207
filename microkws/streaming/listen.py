"""Live keyword spotting: audio from the microphone (or a file at real-time pace) through the
streaming frontend, the model and RecognizeCommands, one chunk at a time.

A microphone and a file go down the same path: a source yields int16 chunks
at the model's sample rate, `StreamingRecognizer` turns them into window
outputs and commands, and each new keyword command becomes a `Heard` event.

The microphone needs the optional `sounddevice` package (and the PortAudio
library it wraps): `pip install "microkws[listen]"`; on Debian/Ubuntu also
`apt install libportaudio2`. It is imported only when listening starts.
"""

import queue
import time
from dataclasses import dataclass

import numpy as np

from microkws.errors import UserError

CHUNK_MS = 20
"""Audio per chunk: the frontend's stride, as the device's audio callback delivers it."""
INSTALL_HINT = 'pip install "microkws[listen]" (the sounddevice package) and the PortAudio library ' \
               "(Debian/Ubuntu: apt install libportaudio2; macOS: brew install portaudio)"


@dataclass(frozen=True)
class Heard:
    """A keyword command."""

    label: str
    score: float
    """Averaged score as a probability (0..1)."""
    time_s: float
    """When it was heard: the end of the window that triggered it, in seconds from the start of the stream."""

    def __str__(self):
        return f"Heard {self.label} ({self.score:.2f}) at {self.time_s:.2f} s"


def listen(model, source, *, recognizer, clip_stride_ms=20, on_heard=print):
    """Run `model` (a KeywordModel) on the chunks of `source` and call `on_heard(Heard)` for each keyword
    command (silence and unknown are not reported). Returns the list of Heard events."""
    from microkws.dataset.labels import keyword_indices
    from microkws.streaming.stream import StreamingRecognizer

    keywords = {model.labels[i] for i in keyword_indices(model.labels)}
    streaming = StreamingRecognizer(model, clip_stride_ms=clip_stride_ms, recognizer=recognizer)
    scale, _ = model.output_scale
    heard = []
    for chunk in source:
        for result in streaming.feed(chunk):
            recognition = result.recognition
            if recognition.is_new_command and recognition.label in keywords:
                score = recognition.score * scale if scale is not None else recognition.score
                event = Heard(recognition.label, float(score), result.end_ms / 1000)
                heard.append(event)
                on_heard(event)
    return heard


def wav_chunks(path, *, sample_rate, speed=1.0, chunk_ms=CHUNK_MS, min_samples=0):
    """int16 chunks of an audio file, paced as if recorded live (`speed` 1.0), faster (2.0: twice as
    fast) or as fast as possible (0). A file shorter than `min_samples` is a UserError."""
    from microkws.audio import read_audio, to_int16

    if speed < 0:
        raise UserError(f"--speed must be 0 (as fast as possible) or positive, got {speed}")
    audio = to_int16(read_audio(path, sample_rate=sample_rate))
    if len(audio) < min_samples:
        raise UserError(f"{path}: {1000 * len(audio) / sample_rate:.0f} ms of audio, shorter than one clip "
                        f"({1000 * min_samples / sample_rate:.0f} ms): too short to stream")
    chunk = max(1, int(chunk_ms * sample_rate / 1000))
    started = time.monotonic()
    for begin in range(0, len(audio), chunk):
        if speed > 0:
            due = started + begin / sample_rate / speed
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        yield audio[begin:begin + chunk]


def microphone_chunks(*, sample_rate, chunk_ms=CHUNK_MS, device=None, max_seconds=None):
    """int16 chunks from an input device (the default one unless `device`), until interrupted or
    `max_seconds` have been recorded. UserError when sounddevice, PortAudio or an input device is missing."""
    sounddevice = import_sounddevice()
    try:
        info = sounddevice.query_devices(device, kind="input")
    except (ValueError, sounddevice.PortAudioError) as error:
        raise UserError(f"no audio input device ({_first_line(error)}); connect a microphone or choose one "
                        "with --device (list them with `python -m sounddevice`)") from None
    if not info or info.get("max_input_channels", 0) < 1:
        raise UserError(f"{info.get('name', 'the audio device') if info else 'the audio device'} has no input "
                        "channels; choose another with --device")
    chunk = max(1, int(chunk_ms * sample_rate / 1000))
    arrived = queue.Queue()

    def callback(indata, frames, time_info, status):  # runs on PortAudio's thread: hand over, nothing more
        arrived.put(np.array(indata[:, 0], dtype=np.int16))

    try:
        stream = sounddevice.InputStream(samplerate=sample_rate, channels=1, dtype="int16", blocksize=chunk,
                                         device=device, callback=callback)
    except (ValueError, sounddevice.PortAudioError) as error:
        raise UserError(f"cannot open {info.get('name', 'the input device')} at {sample_rate} Hz mono "
                        f"({_first_line(error)})") from None
    recorded = 0
    with stream:
        while max_seconds is None or recorded < max_seconds * sample_rate:
            try:
                samples = arrived.get(timeout=2.0)
            except queue.Empty:
                raise UserError("the input device delivers no audio; is the microphone muted or in use?") from None
            recorded += len(samples)
            yield samples


def import_sounddevice():
    """The sounddevice module, or a UserError saying what to install."""
    try:
        import sounddevice
    except ImportError:
        raise UserError(f"listening to a microphone needs sounddevice: {INSTALL_HINT}") from None
    except OSError as error:  # sounddevice is there but the PortAudio library is not
        raise UserError(f"sounddevice cannot load PortAudio ({_first_line(error)}): {INSTALL_HINT}") from None
    return sounddevice


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
