"""Ground truth of a stream: which word was said when, read from and written to "label,time_ms" files,
and the original test_streaming_accuracy's rule for matching found commands to it.

A ground-truth file has one "label,time_ms" line per spoken word (the format of the original
generate_streaming_test_wav; spaces after the comma are fine), time_ms being where the word's
one-second clip starts. Unknown words are labelled `_unknown_`.
"""

import bisect
import math
from dataclasses import dataclass

from microkws.dataset.labels import label_role
from microkws.errors import UserError
from microkws.files import write_text

TIME_TOLERANCE_MS = 750
"""How far a command may be from a word's clip start and still match it: the original
test_streaming_accuracy's default. Not wider: the rule takes the FIRST word within the tolerance,
and a stream's words start 1 to 5 s apart, so a wider tolerance hands a correct command to the word
before it, scoring one false accept and one miss. Measured on an hour of validation stream with the
recommended model: 1,500 ms (this package's default until 2026-12-06) counted 10-32 false accepts where
750 ms counted 3-10 at the same settings, 2-3 times too many; no correct command fell more than 660 ms
from its word's start (commands carry the time of the window that starts the average's last result)."""


@dataclass(frozen=True)
class GroundTruth:
    """One word said in the stream."""

    label: str
    """As the dataset names it: a word, or _unknown_."""
    time_ms: float
    """Start of the word's clip, in ms."""


def read_ground_truth(path, labels=None):
    """GroundTruth entries of a "label,time_ms" file, in time order.

    With the model's `labels`, a label the model does not know is a UserError (as a file made
    for other wanted words would give). Labels are compared by role, so "unknown" and "_unknown_" agree.
    """
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: no such labels file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read ({error})") from None
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in line.split(",")]
        try:
            if len(fields) != 2 or not fields[0]:
                raise ValueError
            time_ms = float(fields[1])
            if not math.isfinite(time_ms) or time_ms < 0:
                raise ValueError
        except ValueError:
            raise UserError(f"{path}:{number}: expected 'label,time_ms', got {line.strip()!r}") from None
        entries.append(GroundTruth(label_role(fields[0]), time_ms))
    if labels is not None:
        known = {label_role(label) for label in labels}
        strangers = sorted({entry.label for entry in entries} - known)
        if strangers:
            raise UserError(f"{path}: names {', '.join(strangers)}, which the model does not know (its labels: "
                            f"{', '.join(labels)}); was it made for other --wanted_words?")
    return sorted(entries, key=lambda entry: entry.time_ms)


def write_ground_truth(path, entries):
    """Write GroundTruth entries as "label,time_ms" lines (atomically)."""
    return write_text(path, "".join(f"{entry.label},{_number(entry.time_ms)}\n" for entry in entries))


def match_commands(commands, ground_truth, *, time_tolerance_ms=TIME_TOLERANCE_MS):
    """For each (label, time_ms) command: ("correct" | "wrong" | "false_positive", index of the matched word or None).

    The original's rule: the first ground-truth word within the tolerance is the match.
    """
    times = [truth.time_ms for truth in ground_truth]
    # In time order (as read_ground_truth returns it) every word before the first one within the tolerance
    # is skipped anyway: starting there gives the same matches without scanning an hour of words per command.
    ordered = all(a <= b for a, b in zip(times, times[1:]))
    matched_before = set()
    outcomes = []
    for label, time_ms in commands:
        outcome = ("false_positive", None)
        first = bisect.bisect_left(times, time_ms - time_tolerance_ms) if ordered else 0
        for index in range(first, len(ground_truth)):
            truth = ground_truth[index]
            if truth.time_ms > time_ms + time_tolerance_ms:
                break
            if truth.time_ms < time_ms - time_tolerance_ms:
                continue
            correct = label_role(label) == truth.label and index not in matched_before
            outcome = ("correct" if correct else "wrong", index)
            matched_before.add(index)
            break
        outcomes.append(outcome)
    return outcomes


def _number(value):
    """A time in ms without needless digits: 1234.5625 -> "1234.5625", 2000.0 -> "2000"."""
    return f"{value:.4f}".rstrip("0").rstrip(".")
