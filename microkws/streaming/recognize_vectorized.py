"""RecognizeCommands over a whole recorded stream at once, in numpy: the same commands, many settings fast.

The streaming calibration tries thousands of recognition settings on an hour of results (180,000
windows at 20 ms); `RecognizeCommands`, one Python call per window, takes seconds per setting. Here
the device's rules (microkws.streaming.recognize) are restated for a whole stream, and
tests/test_calibrate.py checks that the commands are exactly RecognizeCommands' on real model outputs.

Averaging (`average_stream`): which results the device's queue holds after each one depends on the
times only (a result is dropped when the queue is full, the oldest leave the window), so one pass
over the times gives each step's queue as a range of the kept results, and cumulative sums give
every step's integer average. Only device integer scores (int8 / uint8) are handled: their sums
are exact, so the averages are the device's to the unit.

Deciding (`StreamAverages.commands`): a step is a candidate when its averaged top score exceeds the
threshold. A silence candidate is always a new command (silence never suppresses, and any other
label differs from it). After any candidate the decider's last label is that candidate's label, so
a non-silence candidate whose label differs from the previous candidate's (or that follows a
silence candidate) is always new; within a run of candidates of one label, commands follow the
suppression rule alone: the first, then each one more than `suppression_ms` after the last command.
"""

from dataclasses import dataclass

import numpy as np

from microkws.streaming.recognize import DEVICE_MAX_RESULTS, silence_index


@dataclass(frozen=True)
class StreamCommands:
    """The new commands of a stream at one setting, as arrays in time order."""

    windows: np.ndarray
    """Index of the result that triggered each command."""
    labels: np.ndarray
    """Index of each command's label."""
    scores: np.ndarray
    """Its averaged score (0..255)."""
    times_ms: np.ndarray
    """The time of the result, as fed."""


@dataclass(frozen=True)
class StreamAverages:
    """Steps 1-3 of RecognizeCommands after each result of a stream: whether there is an average, its top
    label and that label's averaged score."""

    times_ms: np.ndarray
    valid: np.ndarray
    """False where the device says nothing (too few results, or less than a quarter window)."""
    top: np.ndarray
    score: np.ndarray
    silence: int
    """Index of the silence label."""

    def commands(self, score_threshold, *, suppression_ms, include_silence=False):
        """StreamCommands of RecognizeCommands at `score_threshold` (0..255), silence commands left out
        unless `include_silence`."""
        candidates = np.flatnonzero(self.valid & (self.score > score_threshold))
        labels = self.top[candidates]
        times = self.times_ms[candidates]
        previous = np.concatenate([[-1], labels[:-1]])
        run_starts = np.flatnonzero((labels != self.silence) & (labels != previous))
        changes = np.concatenate([np.flatnonzero(labels[1:] != labels[:-1]) + 1, [len(labels)]])
        run_ends = changes[np.searchsorted(changes, run_starts, side="right")]
        chosen = [run_starts]
        # Only a run longer than the suppression time can hold a second command.
        for start, end in zip(run_starts, run_ends):
            if times[end - 1] - times[start] > suppression_ms:
                chosen.append(_suppressed_repeats(times, start, end, suppression_ms))
        if include_silence:
            chosen.append(np.flatnonzero(labels == self.silence))
        picked = candidates[np.sort(np.concatenate(chosen))]
        return StreamCommands(windows=picked, labels=self.top[picked], scores=self.score[picked],
                              times_ms=self.times_ms[picked])


def average_stream(labels, times_ms, scores, *, average_window_duration_ms, minimum_count,
                   max_results=DEVICE_MAX_RESULTS):
    """StreamAverages of int8 / uint8 `scores` [n, labels] fed at `times_ms` [n] (increasing), as
    RecognizeCommands (with these settings) averages them."""
    scores = np.asarray(scores)
    times = np.asarray(times_ms, dtype=np.int64)
    if scores.dtype not in (np.int8, np.uint8):
        raise ValueError(f"average_stream takes the device's int8/uint8 scores, got {scores.dtype}")
    if scores.ndim != 2 or scores.shape != (len(times), len(labels)):
        raise ValueError(f"scores should be [{len(times)}, {len(labels)}], got shape {scores.shape}")
    if len(times) and np.any(np.diff(times) < 0):
        raise ValueError("results must be fed in increasing time order")
    kept, low, high = _queue_ranges(times, average_window_duration_ms, max_results)
    shifted = scores.astype(np.int64) + (128 if scores.dtype == np.int8 else 0)
    sums = np.zeros((len(kept) + 1, scores.shape[1]), np.int64)
    np.cumsum(shifted[kept], axis=0, out=sums[1:])
    count = high - low
    oldest = times[kept][np.minimum(low, max(len(kept) - 1, 0))] if len(kept) else times
    valid = (count > 0) & (count >= minimum_count) & (times - oldest >= average_window_duration_ms / 4)
    # Integer division truncates, as the device's; the sums are never negative.
    average = (sums[high] - sums[low]) // np.maximum(count, 1)[:, None]
    top = np.argmax(average, axis=1)  # the first of equal maxima, as the device's strict ">" scan
    score = average[np.arange(len(times)), top]
    return StreamAverages(times_ms=times, valid=valid, top=top, score=score, silence=silence_index(labels))


def _queue_ranges(times, window_ms, max_results):
    """(indices of the results the queue accepted, and per result the range [low, high) of those accepted
    ones that it holds after that result)."""
    kept, low, high = [], np.empty(len(times), np.int64), np.empty(len(times), np.int64)
    kept_times = []
    head = 0
    for i, time in enumerate(times.tolist()):
        if max_results is None or len(kept) - head < max_results:
            kept.append(i)
            kept_times.append(time)
        while head < len(kept) and kept_times[head] < time - window_ms:
            head += 1
        low[i], high[i] = head, len(kept)
    return np.asarray(kept, np.int64), low, high


def _suppressed_repeats(times, start, end, suppression_ms):
    """Positions after `start` in the run [start, end) of one label that are new commands: each the first
    candidate more than `suppression_ms` after the previous command."""
    repeats, last = [], times[start]
    while True:
        position = start + int(np.searchsorted(times[start:end], last + suppression_ms, side="right"))
        if position >= end:
            return np.asarray(repeats, np.int64)
        repeats.append(position)
        last = times[position]
