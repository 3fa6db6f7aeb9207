"""Reading audio: any WAV (or other libsndfile format) in, mono float32 at the wanted rate out.

Speech Commands clips are 16 kHz mono PCM16, but users bring their own
recordings: other sample rates, stereo, 8/24/32-bit or float samples, and
clips shorter or longer than one second. `read_audio` normalises all of
them; `fit_to_length` makes a clip exactly one example long.
"""

import math
import os

import numpy as np
import soundfile

from microkws.errors import UserError
from microkws.wavheader import read_pcm16_layout

MIN_SAMPLE_RATE = 4000
"""Files recorded below 4 kHz hold no speech a keyword model can use (and resampling them up costs
memory without bound): refused."""
MAX_SAMPLE_RATE = 768000
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
"""Sample formats that can hold NaN or infinity (integer PCM cannot)."""

# Extensions that libsndfile reads; anything else in a data folder is not audio.
AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au", ".mp3"})


class AudioError(UserError):
    """An audio file that cannot be used: empty, truncated, not audio, or silent of frames."""


def is_audio_path(path):
    """True if the file name has an audio extension (case-insensitive)."""
    return os.path.splitext(str(path))[1].lower() in AUDIO_EXTENSIONS


def check_audio(path):
    """Raise AudioError naming `path` unless it holds usable audio frames.

    Cheap: reads only the header, and the samples only of float files (the one kind that can hold NaN).
    Used to report bad files in a data folder before any training starts.
    """
    if _usable(_pcm16_layout(path)):
        return
    with _open(path) as file:
        if file.subtype in FLOAT_SUBTYPES:
            _read_samples(path, file, file.samplerate)


def read_audio(path, *, sample_rate=16000):
    """Read a file as mono float32 samples in [-1, 1] at `sample_rate` Hz.

    Integer PCM is scaled by its full range (PCM16 becomes x / 32768, exactly
    as TensorFlow's decode_wav), channels are averaged, and other rates are
    resampled with a polyphase filter that removes what would alias.
    """
    with _open(path) as file:
        return _read_samples(path, file, sample_rate)


def read_clip(path, *, sample_rate, length):
    """One example: `to_int16(fit_to_length(read_audio(path), length))`, the same values.

    A mono PCM16 WAV at `sample_rate` no longer than `length` (every Speech
    Commands clip) is read as int16 directly: x / 32768 and back is exact, so
    the float round trip and libsndfile's open are only cost.
    """
    clip = read_pcm16_clip(path, sample_rate=sample_rate, length=length)
    return clip if clip is not None else to_int16(fit_to_length(read_audio(path, sample_rate=sample_rate), length))


def read_pcm16_clip(path, *, sample_rate, length):
    """read_clip's direct path, one open and one read; None where it does not apply (read_clip then
    goes through libsndfile, which also says what is wrong with a bad file)."""
    try:
        with open(path, "rb") as file:
            layout = read_pcm16_layout(file)
            if not (_usable(layout) and layout.channels == 1 and layout.samplerate == sample_rate
                    and layout.frames <= length):
                return None
            _check_memory(path, layout, sample_rate)
            file.seek(layout.data_offset)
            data = file.read(2 * layout.frames)
    except OSError:
        return None
    if len(data) != 2 * layout.frames:  # the file changed since its size was read
        return None
    clip = np.zeros(length, dtype=np.int16)
    clip[:layout.frames] = np.frombuffer(data, dtype="<i2")
    return clip


def _read_samples(path, file, sample_rate):
    """read_audio's work on a file `_open` checked."""
    _check_memory(path, file, sample_rate)
    try:
        samples = file.read(dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioError(f"{path}: cannot read audio ({_reason(error)})") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: the file has no audio frames (header claims {file.frames})")
    if not np.isfinite(samples).all():
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return resample(mono, file.samplerate, sample_rate)


def resample(samples, from_rate, to_rate):
    """Resample float samples with scipy's anti-aliased polyphase resampler."""
    if from_rate == to_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly

    divisor = math.gcd(int(from_rate), int(to_rate))
    result = resample_poly(samples, int(to_rate) // divisor, int(from_rate) // divisor)
    return result.astype(np.float32)


def fit_to_length(samples, length):
    """Make a clip exactly `length` samples long.

    Shorter clips are zero-padded at the end, as the original pipeline
    (decode_wav with desired_samples) did. Longer clips keep the `length`
    samples with the most energy, so a word in the middle of a long
    recording is kept rather than cut off (the original kept the start).
    """
    samples = np.asarray(samples, dtype=np.float32)
    if len(samples) == length:
        return samples
    if len(samples) < length:
        return np.pad(samples, (0, length - len(samples)))
    start = loudest_window_start(samples, length)
    return samples[start:start + length]


def loudest_window_start(samples, length):
    """Start index of the `length`-sample window with the largest energy."""
    energy = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
    window_energy = energy[length:] - energy[:-length]
    return int(np.argmax(window_energy))


def _pcm16_layout(path):
    """The file's Pcm16Layout, or None (not a plain PCM16 WAV, or not openable: `_open` says why)."""
    try:
        with open(path, "rb") as file:
            return read_pcm16_layout(file)
    except OSError:
        return None


def _usable(layout):
    """True if a PCM16 layout passes every check `_open` makes (else `_open` raises the error)."""
    return layout is not None and layout.frames > 0 and MIN_SAMPLE_RATE <= layout.samplerate <= MAX_SAMPLE_RATE


def _open(path):
    """An open soundfile.SoundFile of `path` (one open gives header and samples), after the checks
    every reader makes; AudioError naming `path` if they fail."""
    path = str(path)
    try:
        size = os.path.getsize(path)
    except OSError as error:
        raise AudioError(f"{path}: cannot open ({error.strerror or error})") from None
    if size == 0:
        raise AudioError(f"{path}: the file is empty")
    try:
        file = soundfile.SoundFile(path)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioError(f"{path}: not a readable audio file ({_reason(error)})") from None
    if file.frames <= 0:
        file.close()
        raise AudioError(f"{path}: the file has no audio frames")
    if not MIN_SAMPLE_RATE <= file.samplerate <= MAX_SAMPLE_RATE:
        file.close()
        raise AudioError(f"{path}: sample rate {file.samplerate} Hz; microkws reads audio recorded at "
                         f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")
    return file


def _check_memory(path, info, sample_rate):
    """Refuse, before allocating, a file whose samples would not fit in half of this machine's memory
    (read as float32, averaged to mono, resampled: about three copies). `info`: a SoundFile or a Pcm16Layout."""
    needed = 4 * (info.frames * info.channels + 2 * info.frames * max(1.0, sample_rate / info.samplerate))
    available = _physical_memory() / 2
    if needed > available:
        raise AudioError(f"{path}: {info.frames / info.samplerate / 3600:.1f} hours of audio need "
                         f"{needed / 2**30:.1f} GiB to read, more than half of this machine's memory; "
                         "cut it into shorter files")


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on Linux or macOS: assume a small machine
        return 8 * 2**30


def _reason(error):
    text = str(getattr(error, "error_string", "") or error)
    text = text.split("\n")[0].strip()
    return text.replace(" : ", ": ") or type(error).__name__


def to_int16(samples):
    """Float samples in [-1, 1] to int16 PCM as `trunc(x * 32768)`, saturating at the ends.

    The original cast x * 32768 to int16, which wraps +1.0 around to -32768;
    saturating keeps full-scale clips loud and is identical everywhere else.
    """
    samples = np.asarray(samples)
    if not np.issubdtype(samples.dtype, np.floating):
        raise TypeError(f"to_int16 expects float samples, got {samples.dtype}")
    if np.isnan(samples).any():
        raise ValueError("audio contains NaN")
    # Scaling by a power of two is exact, so the float type loses nothing here.
    scaled = np.multiply(samples, 32768, dtype=np.result_type(samples.dtype, np.float32))
    np.trunc(scaled, out=scaled)
    return np.clip(scaled, -32768, 32767, out=scaled).astype(np.int16)
