"""Running a keyword model over a stream of audio, the way the device listens.

The device runs one audio frontend for as long as it listens: every 20 ms
it turns the newest 30 ms of audio into one frame of 40 features, with noise
estimates and gain control carried over from all the audio before, and keeps
the latest 49 frames. Every so often it hands those 49 frames (one second)
to the model. The frontend is never restarted per window, so a window's
features differ a little from those of the same second cut out as a clip
(which starts from a fresh frontend, as training does).

Here the same: one `MicroFrontend` for the whole stream and a rolling buffer
of the last `spectrogram_length` frames; the model runs every
`clip_stride_ms`, a whole number of frames. The mfcc and average modes have
no streaming frontend, so each window's features are computed from its
second of audio.

Windows are named by their start: the window that starts at sample s covers
the clip [s, s + desired_samples) (the micro frames of that clip end 160
samples before its end, as for any 1 s clip). Its time is s in milliseconds,
the convention of the original test_streaming_accuracy and of the ground-truth
labels of `make_streaming_test_wav`.

`stream_outputs` scores a whole recording: the frontend is sequential, but
the model calls are independent, so windows are batched. `StreamingRecognizer`
takes audio in chunks as it arrives (a microphone) and gives the same
outputs window by window.
"""

from dataclasses import dataclass

import numpy as np

from microkws.errors import UserError

_BATCH_WINDOWS = 2048
"""Windows per model call: enough for `TflmModel.run` to share them with a worker on each core."""


@dataclass(frozen=True)
class WindowResult:
    """One model run on the stream."""

    start_ms: int
    """Start of the window's clip, in ms from the start of the stream."""
    end_ms: int
    """End of the window's clip: when the device would have heard it."""
    outputs: np.ndarray
    """The model's outputs [labels] (int8 for quantised models)."""
    recognition: object
    """The RecognizeCommands result after these outputs (None without a recognizer)."""


class _Windowing:
    """Where the windows fall for a model's features and a clip stride."""

    def __init__(self, feature_config, clip_stride_ms):
        config = feature_config
        self.sample_rate = config.sample_rate
        self.clip_samples = config.desired_samples
        self.micro = config.preprocess == "micro"
        if clip_stride_ms <= 0:
            raise UserError(f"clip_stride_ms must be positive, got {clip_stride_ms}")
        if self.micro:
            frames = clip_stride_ms / config.window_stride_ms
            if abs(frames - round(frames)) > 1e-9:
                raise UserError(f"clip_stride_ms {clip_stride_ms:g} is not a whole number of feature frames; the "
                                f"streaming frontend makes one every {config.window_stride_ms:g} ms, so use a "
                                f"multiple of {config.window_stride_ms:g}")
            self.stride_frames = int(round(frames))
            self.frames_per_window = config.spectrogram_length
            self.frame_step = config.window_stride_samples
            self.stride_samples = self.stride_frames * self.frame_step
        else:
            self.stride_samples = int(clip_stride_ms * self.sample_rate / 1000)
            if self.stride_samples < 1:
                raise UserError(f"clip_stride_ms {clip_stride_ms:g} is shorter than one sample")

    def ms(self, sample):
        return int(sample * 1000 // self.sample_rate)

    def check_length(self, samples, source="the audio"):
        if samples < self.clip_samples:
            raise UserError(f"{source} is {1000 * samples / self.sample_rate:.0f} ms long, shorter than one clip "
                            f"({1000 * self.clip_samples / self.sample_rate:.0f} ms): nothing to recognise")


def stream_outputs(model, audio, *, clip_stride_ms=20, progress=False):
    """(start_ms int64 [n], outputs [n, labels]) of `model` (a KeywordModel) run every `clip_stride_ms`
    over int16 `audio` [samples], with the frontend running continuously (see the module docstring)."""
    windows = stream_windows(model, audio, clip_stride_ms=clip_stride_ms)
    return windows.start_ms, run_windows(model, windows, progress=progress)


@dataclass(frozen=True)
class StreamWindows:
    """The model inputs of a stream's windows, made on demand (an hour is 180,000 windows)."""

    start_ms: np.ndarray
    """Start of each window's clip, int64 [n]."""
    inputs: object
    """inputs(rows) -> the model inputs [len(rows), size] of the windows `rows` (an index array)."""

    def __len__(self):
        return len(self.start_ms)


def stream_windows(model, audio, *, clip_stride_ms=20):
    """StreamWindows of `model` (a KeywordModel) every `clip_stride_ms` over int16 `audio` [samples]: the
    continuous frontend runs once, here; each window's inputs are encoded when asked for."""
    audio = _as_int16(audio)
    windowing = _Windowing(model.feature_config, clip_stride_ms)
    windowing.check_length(len(audio))
    if windowing.micro:
        from microkws.features.micro import MicroFrontend

        frames = MicroFrontend(model.feature_config).process(audio)
        n = (len(frames) - windowing.frames_per_window) // windowing.stride_frames + 1
        windows = np.lib.stride_tricks.sliding_window_view(frames, windowing.frames_per_window, axis=0)
        windows = windows[::windowing.stride_frames][:n].transpose(0, 2, 1)  # [n, frames, bins], a view

        def inputs(rows):
            return model.encode_frontend(np.ascontiguousarray(windows[rows]))
    else:
        n = (len(audio) - windowing.clip_samples) // windowing.stride_samples + 1
        starts = np.arange(n) * windowing.stride_samples
        offsets = np.arange(windowing.clip_samples)

        def inputs(rows):
            return model.encode_clips(audio[starts[rows, None] + offsets])

    start_ms = np.asarray([windowing.ms(i * windowing.stride_samples) for i in range(n)], dtype=np.int64)
    return StreamWindows(start_ms=start_ms, inputs=inputs)


def run_windows(model, windows, *, rows=None, progress=False):
    """`model`'s outputs [len(rows), labels] on the StreamWindows `rows` (default: all), in batches."""
    from tqdm.auto import tqdm

    rows = np.arange(len(windows)) if rows is None else np.asarray(rows)
    outputs = []
    with tqdm(total=len(rows), disable=not progress, desc="running the model", unit="window", leave=False) as bar:
        for begin in range(0, len(rows), _BATCH_WINDOWS):
            batch = rows[begin:begin + _BATCH_WINDOWS]
            outputs.append(model.run(windows.inputs(batch)))
            bar.update(len(batch))
    return np.concatenate(outputs) if outputs else model.run(windows.inputs(rows))


class StreamingRecognizer:
    """Audio in as it arrives, model outputs and commands out, window by window.

    model: a KeywordModel. recognizer: a RecognizeCommands fed each window's outputs with the
    window's start time (None: outputs only). `feed(samples)` takes int16 samples at the model's
    sample rate, in chunks of any length, and returns a WindowResult for each window they complete;
    the outputs equal `stream_outputs` on the whole recording.
    """

    def __init__(self, model, *, clip_stride_ms=20, recognizer=None):
        self.model = model
        self.recognizer = recognizer
        self._windowing = _Windowing(model.feature_config, clip_stride_ms)
        self.reset()

    def reset(self):
        """Start a new stream: a fresh frontend, no buffered audio or frames, time zero."""
        from microkws.features.micro import MicroFrontend

        windowing = self._windowing
        self._samples_seen = 0
        self._next_start = 0  # sample where the next window starts
        if windowing.micro:
            self._frontend = MicroFrontend(self.model.feature_config)
            self._frames = np.zeros((0, self.model.feature_config.feature_bin_count), np.uint16)
            self._frames_seen = 0
        else:
            self._audio = np.zeros(0, np.int16)  # samples from `_audio_start` on
            self._audio_start = 0

    @property
    def time_ms(self):
        """How much audio has been fed, in ms."""
        return self._windowing.ms(self._samples_seen)

    def feed(self, samples):
        """WindowResults of the windows that `samples` (int16 [n]) complete, in time order."""
        samples = _as_int16(samples)
        self._samples_seen += len(samples)
        if self._windowing.micro:
            starts, inputs = self._micro_windows(samples)
        else:
            starts, inputs = self._audio_windows(samples)
        if not starts:
            return []
        outputs = self.model.run(inputs)
        results = []
        clip_ms = self._windowing.ms(self._windowing.clip_samples)
        for start, row in zip(starts, outputs):
            start_ms = self._windowing.ms(start)
            recognition = self.recognizer.process(row, start_ms) if self.recognizer is not None else None
            results.append(WindowResult(start_ms, start_ms + clip_ms, row, recognition))
        return results

    def _micro_windows(self, samples):
        windowing = self._windowing
        size = windowing.frames_per_window
        frames = np.concatenate([self._frames, self._frontend.process(samples)])
        first_new = self._frames_seen - len(self._frames)  # stream index of frames[0]
        windows, starts = [], []
        while self._next_start // windowing.frame_step + size <= first_new + len(frames):
            first = self._next_start // windowing.frame_step - first_new
            windows.append(frames[first:first + size])
            starts.append(self._next_start)
            self._next_start += windowing.stride_samples
        self._frames_seen = first_new + len(frames)
        # Keep the frames from the next window's first on: fewer than frames_per_window, or it would be complete.
        self._frames = frames[max(0, self._next_start // windowing.frame_step - first_new):].copy()
        if not windows:
            return [], None
        return starts, self.model.encode_frontend(np.stack(windows))

    def _audio_windows(self, samples):
        windowing = self._windowing
        audio = np.concatenate([self._audio, samples])
        clips, starts = [], []
        while self._next_start + windowing.clip_samples <= self._audio_start + len(audio):
            offset = self._next_start - self._audio_start
            clips.append(audio[offset:offset + windowing.clip_samples])
            starts.append(self._next_start)
            self._next_start += windowing.stride_samples
        drop = max(0, min(self._next_start - self._audio_start, len(audio)))
        self._audio = audio[drop:].copy()
        self._audio_start += drop
        if not clips:
            return [], None
        return starts, self.model.encode_clips(np.stack(clips))


def _as_int16(audio):
    audio = np.asarray(audio)
    if audio.dtype != np.int16:
        raise TypeError(f"audio must be int16 PCM samples, got {audio.dtype} (see microkws.audio.to_int16)")
    if audio.ndim != 1:
        raise ValueError(f"audio must be one-dimensional [samples], got shape {audio.shape}")
    return audio
