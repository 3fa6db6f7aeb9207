"""From a stream of per-window scores to commands: TFLM micro_speech's RecognizeCommands.

A keyword model scores one window of audio at a time. Run on a stream (every
20 ms, say) a spoken word lights up many overlapping windows, and a single
window can flicker to a wrong label. The device's post-processing:

1. keeps the results of the last `average_window_duration_ms` (at most
   `max_results` of them, as the device's fixed-size queue),
2. says nothing (score 0, the previous label) until it holds at least
   `minimum_count` results spanning a quarter of that window,
3. averages each label's score over the kept results and takes the top label,
4. reports a new command when that average exceeds `detection_threshold` and
   the label differs from the last command, or the last command was longer
   than `suppression_ms` ago. The silence label never suppresses.

Scores come in two kinds, told apart by their dtype:

- int8 (or uint8) model outputs, as on the device: each score is shifted to
  0..255 (int8 + 128; uint8 as is), summed as integers and divided with
  truncation, so the averaged score and `detection_threshold` are integers
  0..255 (about 256 x the probability; the device's default threshold 200
  is a probability of about 0.78);
- float probabilities: a plain mean, and a threshold in 0..1.

The original Python tool (speech_commands/recognize_commands.py) differs from
the device in one rule: it reports a command only when the label changes AND
the suppression time has passed. This module follows the device, whose
constructor defaults (1000 ms, 200, 1500 ms, 3) are RecognizeCommands' defaults.

`DetectionSettings` holds the four settings, the threshold as a probability: the
defaults of the CLI's recognition flags and what the streaming calibration
(microkws.streaming.calibrate) chooses for a run.
"""

import collections
import math
from dataclasses import asdict, dataclass

import numpy as np

from microkws._config import settings_from_dict
from microkws.dataset.labels import SILENCE_LABEL, label_role
from microkws.device.firmware import (
    DEVICE_AVERAGE_WINDOW_MS,
    DEVICE_MAX_RESULTS,
    DEVICE_MINIMUM_COUNT,
    DEVICE_SCORE_THRESHOLD,
    DEVICE_SUPPRESSION_MS,
)
from microkws.errors import UserError

DEVICE_THRESHOLD = DEVICE_SCORE_THRESHOLD / 256
"""The device's default threshold as a probability (0.78125): int8 softmax outputs step by 1/256."""


@dataclass(frozen=True)
class DetectionSettings:
    """RecognizeCommands' settings: how a stream of per-window scores becomes commands (defaults: the device's)."""

    average_window_duration_ms: int = DEVICE_AVERAGE_WINDOW_MS
    """Average each label's scores over the results of the last this many ms."""
    detection_threshold: float = DEVICE_THRESHOLD
    """A PROBABILITY (0..1): a command needs its averaged score above it. For an int8 model the device
    compares its integer average (0..255) with floor(256 x this), `KeywordModel.score_threshold`."""
    suppression_ms: int = DEVICE_SUPPRESSION_MS
    """After a command, the same label is not reported again for this long."""
    minimum_count: int = DEVICE_MINIMUM_COUNT
    """Results the window must hold before any command."""

    def __post_init__(self):
        if not 0 <= self.detection_threshold <= 1:
            raise UserError(f"detection_threshold is a probability from 0 to 1, got {self.detection_threshold}")
        for name in ("average_window_duration_ms", "suppression_ms", "minimum_count"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must not be negative, got {getattr(self, name)}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data, *, source):
        """The settings of a dict as `to_dict` wrote it (extra keys ignored), checked; errors name `source`."""
        if not isinstance(data, dict):
            raise UserError(f"{source}: the detection settings must be an object, got {type(data).__name__}")
        names = [name for name in cls.__dataclass_fields__ if name in data]
        return settings_from_dict(cls, {name: data[name] for name in names}, source=source, kind="detection")

    def recognizer(self, labels, score_threshold):
        """A RecognizeCommands with these settings; `score_threshold`: the threshold in the scores' units
        (`KeywordModel.score_threshold(self.detection_threshold)`)."""
        return RecognizeCommands(labels, average_window_duration_ms=self.average_window_duration_ms,
                                 detection_threshold=score_threshold, suppression_ms=self.suppression_ms,
                                 minimum_count=self.minimum_count)


DEVICE_SETTINGS = DetectionSettings()
"""The device's RecognizeCommands defaults (1000 ms, 200/256, 1500 ms, 3)."""


@dataclass(frozen=True)
class Recognition:
    """What RecognizeCommands says after one result."""

    label: str
    """The top label of the averaged scores (the previous command while there are too few results)."""
    score: float
    """Its averaged score: 0..255 for integer scores, 0..1 for probabilities; 0 while there are too few results."""
    is_new_command: bool
    """True when this result triggers a command (the device's `is_new_command`)."""
    time_ms: int
    """The time the result was fed with."""


class ScoreAverager:
    """Steps 1-3 above: the queue of recent results and their average. Knows nothing of thresholds."""

    def __init__(self, label_count, *, average_window_duration_ms=DEVICE_SETTINGS.average_window_duration_ms,
                 minimum_count=DEVICE_SETTINGS.minimum_count, max_results=DEVICE_MAX_RESULTS):
        if average_window_duration_ms < 0 or minimum_count < 0:
            raise ValueError("average_window_duration_ms and minimum_count must not be negative")
        if max_results is not None and max_results < 1:
            raise ValueError(f"max_results must be at least 1 (or None for no limit), got {max_results}")
        self.label_count = int(label_count)
        self.average_window_duration_ms = average_window_duration_ms
        self.minimum_count = minimum_count
        self.max_results = max_results
        self._results = collections.deque()  # (time_ms, scores)
        self._integer = None

    def add(self, scores, time_ms):
        """(top index, averaged top score) after adding `scores` at `time_ms`; None while too few results."""
        scores = np.asarray(scores)
        if scores.ndim == 2 and scores.shape[0] == 1:  # a batch-1 model output [1, labels], as the device gets it
            scores = scores[0]
        if scores.shape != (self.label_count,):
            raise ValueError(f"the results for recognition should hold {self.label_count} scores, "
                             f"got shape {scores.shape}")
        integer = _is_integer_scores(scores)
        if self._integer is None:
            self._integer = integer
        elif integer != self._integer:
            raise ValueError("scores changed from integer to float (or back) within one stream")
        # The device compares with the oldest kept result only; a time between the oldest and the
        # newest would slip through there and corrupt the pruning below, so the newest is the bar here.
        if self._results and time_ms < self._results[-1][0]:
            raise ValueError(f"results must be fed in increasing time order, but {time_ms} ms came after "
                             f"{self._results[-1][0]} ms")
        if self.max_results is None or len(self._results) < self.max_results:
            self._results.append((time_ms, _shifted(scores) if integer else scores.astype(np.float64)))
        oldest_allowed = time_ms - self.average_window_duration_ms
        while self._results and self._results[0][0] < oldest_allowed:
            self._results.popleft()
        if not self._results:
            return None
        count = len(self._results)
        if count < self.minimum_count or time_ms - self._results[0][0] < self.average_window_duration_ms / 4:
            return None
        total = np.sum([scores for _, scores in self._results], axis=0)
        average = total // count if integer else total / count
        # The first label with the highest average, as the device's strict "greater than" scan from zero.
        top = int(np.argmax(average))
        score = int(average[top]) if integer else float(average[top])
        return top, score

    @property
    def integer_scores(self):
        """True / False once scores have been seen: whether they are device integers (0..255 averages)."""
        return self._integer


class CommandDecider:
    """Step 4 above: turns (top label, averaged score) into new commands."""

    def __init__(self, labels, *, detection_threshold, suppression_ms=DEVICE_SETTINGS.suppression_ms):
        self.labels = tuple(labels)
        self.detection_threshold = detection_threshold
        self.suppression_ms = suppression_ms
        # The device starts from (and never suppresses after) its first label, "silence".
        self.silence_label = self.labels[silence_index(self.labels)]
        self.previous_label = self.silence_label
        self.previous_time_ms = None

    def decide(self, top, time_ms):
        """A Recognition for `top` = (index, score) or None (too few results) at `time_ms`."""
        if top is None:
            return Recognition(self.previous_label, 0, False, time_ms)
        index, score = top
        label = self.labels[index]
        if self.previous_label == self.silence_label or self.previous_time_ms is None:
            since_last = math.inf
        else:
            since_last = time_ms - self.previous_time_ms
        is_new = score > self.detection_threshold and (label != self.previous_label or since_last > self.suppression_ms)
        if is_new:
            self.previous_label, self.previous_time_ms = label, time_ms
        return Recognition(label, score, is_new, time_ms)


class RecognizeCommands:
    """TFLM micro_speech's RecognizeCommands: feed it each window's scores, in time order.

    labels: the model's output names, in output order.
    detection_threshold: in the scores' units: 0..255 for int8/uint8 model outputs (device
    default 200), 0..1 for float probabilities.
    max_results: the device keeps at most 50 results and drops a new one when full; None: no limit.
    """

    def __init__(self, labels, *, average_window_duration_ms=DEVICE_SETTINGS.average_window_duration_ms,
                 detection_threshold=DEVICE_SCORE_THRESHOLD, suppression_ms=DEVICE_SETTINGS.suppression_ms,
                 minimum_count=DEVICE_SETTINGS.minimum_count, max_results=DEVICE_MAX_RESULTS):
        self.labels = tuple(labels)
        self._averager = ScoreAverager(len(self.labels), average_window_duration_ms=average_window_duration_ms,
                                       minimum_count=minimum_count, max_results=max_results)
        self._decider = CommandDecider(self.labels, detection_threshold=detection_threshold,
                                       suppression_ms=suppression_ms)

    @property
    def detection_threshold(self):
        return self._decider.detection_threshold

    def process(self, scores, time_ms):
        """The Recognition after one model output `scores` [labels] (or [1, labels]) at `time_ms`.

        ValueError for the wrong number of scores or a time earlier than the last one.
        """
        top = self._averager.add(scores, time_ms)
        _check_threshold_units(self._decider.detection_threshold, self._averager.integer_scores)
        return self._decider.decide(top, time_ms)


def recognize_stream(labels, times_ms, scores, *, thresholds,
                     average_window_duration_ms=DEVICE_SETTINGS.average_window_duration_ms,
                     suppression_ms=DEVICE_SETTINGS.suppression_ms, minimum_count=DEVICE_SETTINGS.minimum_count,
                     max_results=DEVICE_MAX_RESULTS):
    """{threshold: [Recognition of each new command]} for a whole stream of results at several thresholds.

    The same as running one RecognizeCommands per threshold over (times_ms[i], scores[i]), but the
    averaging, which does not depend on the threshold, is done once.
    """
    averager = ScoreAverager(len(labels), average_window_duration_ms=average_window_duration_ms,
                             minimum_count=minimum_count, max_results=max_results)
    tops = [averager.add(row, int(time)) for row, time in zip(np.asarray(scores), times_ms)]
    commands = {}
    for threshold in thresholds:
        _check_threshold_units(threshold, averager.integer_scores)
        decider = CommandDecider(labels, detection_threshold=threshold, suppression_ms=suppression_ms)
        decisions = (decider.decide(top, int(time)) for top, time in zip(tops, times_ms))
        commands[threshold] = [d for d in decisions if d.is_new_command]
    return commands


def silence_index(labels):
    """The output the device treats as silence: the one whose role is _silence_, else the first."""
    roles = [label_role(label) for label in labels]
    return roles.index(SILENCE_LABEL) if SILENCE_LABEL in roles else 0


def _is_integer_scores(scores):
    if scores.dtype in (np.int8, np.uint8):
        return True
    if np.issubdtype(scores.dtype, np.floating):
        return False
    raise ValueError(f"scores must be int8/uint8 model outputs or float probabilities, got {scores.dtype}")


def _shifted(scores):
    """Integer scores as the device averages them: int8 + 128, uint8 as is (0..255)."""
    values = scores.astype(np.int32)
    return values + 128 if scores.dtype == np.int8 else values


def _check_threshold_units(threshold, integer):
    if integer is None:
        return
    if integer and 0 < threshold < 1:
        raise ValueError(f"detection_threshold {threshold} looks like a probability, but the scores are int8 "
                         f"(averaged 0..255): use about {math.floor(threshold * 256)}")
    if not integer and threshold > 1:
        raise ValueError(f"detection_threshold {threshold} is in the device's 0..255 units, but the scores are "
                         f"probabilities (0..1): use about {threshold / 256:.2f}")
