"""How well commands found in a stream match what was said: the original's figures, false accepts and rejects.

Ground truth is a text file with one "label,time_ms" line per spoken word (the
format of the original generate_streaming_test_wav; spaces after the comma are
fine), time_ms being where the word's one-second clip starts. Unknown words
are labelled `_unknown_`.

`streaming_accuracy` scores found commands as the original test_streaming_accuracy
did: each command is matched to the first ground-truth word within
`time_tolerance_ms` of it; it is correct if the labels agree and that word was
not matched before, wrong otherwise, and a false positive when no word is near.
Percentages are of the ground-truth words. (The original counted a word matched
twice as two matches; here "matched" counts words.)

`det_points` adds the figures a product needs, per detection threshold: false
accepts per hour (keyword commands that are not a correct match: fired on an
unknown word, on the wrong keyword, or on nothing) and the false-reject rate
(keywords said but not correctly found).
"""

import math
import os
from dataclasses import asdict, dataclass, fields

from microkws.dataset.labels import SILENCE_LABEL, keyword_indices, label_role
from microkws.errors import UserError
from microkws.streaming.recognize import DEVICE_THRESHOLD

DET_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20)) + (0.98, 0.99)
"""Detection thresholds (probabilities) of the DET sweep."""
DET_CSV_SUFFIX = ".csv"
DET_PNG_SUFFIX = ".png"


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
    from microkws.files import write_text

    return write_text(path, "".join(f"{entry.label},{_number(entry.time_ms)}\n" for entry in entries))


@dataclass(frozen=True)
class StreamingStats:
    """The original test_streaming_accuracy's figures."""

    ground_truth: int
    matched: int
    """Ground-truth words some command was matched to."""
    correct: int
    wrong: int
    false_positives: int

    def percent(self, count):
        return 100 * count / self.ground_truth if self.ground_truth else 0.0

    def summary(self):
        if not self.ground_truth:
            return f"no ground truth; {self.false_positives} false positives"
        return (f"{self.percent(self.matched):.1f}% matched, {self.percent(self.correct):.1f}% correct, "
                f"{self.percent(self.wrong):.1f}% wrong, {self.percent(self.false_positives):.1f}% false positive "
                f"({self.ground_truth} words)")

    def to_dict(self):
        return asdict(self)


def match_commands(commands, ground_truth, *, time_tolerance_ms=1500):
    """For each (label, time_ms) command: ("correct" | "wrong" | "false_positive", index of the matched word or None).

    The original's rule: the first ground-truth word within the tolerance is the match.
    """
    matched_before = set()
    outcomes = []
    for label, time_ms in commands:
        outcome = ("false_positive", None)
        for index, truth in enumerate(ground_truth):
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


def streaming_accuracy(commands, ground_truth, *, time_tolerance_ms=1500):
    """StreamingStats of (label, time_ms) commands, silence commands already left out (as the original did)."""
    outcomes = match_commands(commands, ground_truth, time_tolerance_ms=time_tolerance_ms)
    kinds = [kind for kind, _ in outcomes]
    return StreamingStats(
        ground_truth=len(ground_truth),
        matched=len({index for _, index in outcomes if index is not None}),
        correct=kinds.count("correct"),
        wrong=kinds.count("wrong"),
        false_positives=kinds.count("false_positive"),
    )


@dataclass(frozen=True)
class DetPoint:
    """False accepts and rejects of keyword commands at one detection threshold."""

    threshold: float
    """As a probability (0..1)."""
    keywords: int
    """Keywords said (ground-truth words that are not _unknown_)."""
    false_rejects: int
    false_accepts: int
    hours: float
    """Length of the stream."""

    @property
    def false_reject_rate(self):
        return self.false_rejects / self.keywords if self.keywords else 0.0

    @property
    def false_accepts_per_hour(self):
        return self.false_accepts / self.hours if self.hours else 0.0

    def to_dict(self):
        return {**asdict(self), "false_reject_rate": self.false_reject_rate,
                "false_accepts_per_hour": self.false_accepts_per_hour}

    @classmethod
    def from_dict(cls, data):
        """The point `to_dict` wrote (its derived figures are recomputed)."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def det_point(commands, ground_truth, labels, *, threshold, duration_ms, time_tolerance_ms=1500):
    """DetPoint of the (label, time_ms) commands found at `threshold`; only keyword commands count."""
    keywords = {label_role(labels[i]) for i in keyword_indices(labels)}
    spotted = [(label, time) for label, time in commands if label_role(label) in keywords]
    outcomes = match_commands(spotted, ground_truth, time_tolerance_ms=time_tolerance_ms)
    found = {index for kind, index in outcomes if kind == "correct"}
    said = [i for i, truth in enumerate(ground_truth) if truth.label in keywords]
    return DetPoint(
        threshold=float(threshold),
        keywords=len(said),
        false_rejects=sum(1 for i in said if i not in found),
        false_accepts=sum(1 for kind, _ in outcomes if kind != "correct"),
        hours=duration_ms / 3_600_000,
    )


def write_det(prefix, points, *, title="DET curve"):
    """Write PREFIX.csv (one row per threshold) and PREFIX.png (false-reject rate against false accepts
    per hour). Returns the two paths."""
    import io

    from microkws.files import write_bytes, write_text

    header = "threshold,false_accepts,false_accepts_per_hour,false_rejects,keywords,false_reject_rate\n"
    rows = "".join(f"{p.threshold:g},{p.false_accepts},{p.false_accepts_per_hour:.4f},{p.false_rejects},"
                   f"{p.keywords},{p.false_reject_rate:.6f}\n" for p in points)
    csv_path = write_text(os.fspath(prefix) + DET_CSV_SUFFIX, header + rows)

    # A bare Figure renders to a file through Agg without pyplot, so the user's backend is left alone.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.5), dpi=100)
    axes = figure.add_subplot()
    x = [p.false_accepts_per_hour for p in points]
    y = [100 * p.false_reject_rate for p in points]
    axes.plot(x, y, marker="o", markersize=3)
    labelled = set()
    for p, xi, yi in zip(points, x, y):
        if round(p.threshold * 100) % 10 == 0 and (xi, yi) not in labelled:  # one label per distinct point
            labelled.add((xi, yi))
            axes.annotate(f"{p.threshold:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axes.set_xlabel("false accepts per hour")
    axes.set_ylabel("false-reject rate (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    png_path = write_bytes(os.fspath(prefix) + DET_PNG_SUFFIX, buffer.getvalue())
    return csv_path, png_path



def evaluate_stream(model, audio_path, labels_path, *, clip_stride_ms=20, average_window_duration_ms=1000,
                    detection_threshold=DEVICE_THRESHOLD, suppression_ms=1500, minimum_count=3,
                    time_tolerance_ms=1500, thresholds=DET_THRESHOLDS, progress=False):
    """Run `model` (a KeywordModel) over a long recording and score its commands against the ground truth.

    detection_threshold and thresholds are probabilities (0..1); for a quantised model they become the
    device's integer thresholds (`KeywordModel.score_threshold`). Returns the report dict: the original's
    figures at `detection_threshold` ("stats"), each command with its outcome ("commands"), false accepts
    per hour and the false-reject rate there, and a DetPoint per threshold ("det").
    """
    from microkws.audio import read_audio, to_int16
    from microkws.streaming.recognize import recognize_stream
    from microkws.streaming.stream import stream_outputs

    if not 0 <= detection_threshold <= 1 or any(not 0 <= t <= 1 for t in thresholds):
        raise UserError(f"detection thresholds are probabilities between 0 and 1, got {detection_threshold}")
    truth = read_ground_truth(labels_path, model.labels)
    config = model.feature_config
    audio = to_int16(read_audio(audio_path, sample_rate=config.sample_rate))
    if len(audio) < config.desired_samples:
        raise UserError(f"{audio_path}: {1000 * len(audio) / config.sample_rate:.0f} ms of audio, shorter than one "
                        f"clip ({config.clip_duration_ms} ms): too short to stream")
    times, outputs = stream_outputs(model, audio, clip_stride_ms=clip_stride_ms, progress=progress)
    duration_ms = 1000 * len(audio) / config.sample_rate
    probabilities = sorted({float(t) for t in thresholds} | {float(detection_threshold)})
    by_score = {p: model.score_threshold(p) for p in probabilities}
    found = recognize_stream(model.labels, times, outputs, thresholds=sorted(set(by_score.values())),
                             average_window_duration_ms=average_window_duration_ms, suppression_ms=suppression_ms,
                             minimum_count=minimum_count)
    silence = [label for label in model.labels if label_role(label) == SILENCE_LABEL]

    def commands_at(probability):
        return [(r.label, r.time_ms, r.score) for r in found[by_score[probability]] if r.label not in silence]

    chosen = commands_at(float(detection_threshold))
    pairs = [(label, time) for label, time, _ in chosen]
    stats = streaming_accuracy(pairs, truth, time_tolerance_ms=time_tolerance_ms)
    outcomes = match_commands(pairs, truth, time_tolerance_ms=time_tolerance_ms)
    scale, _ = model.output_scale
    det = [det_point([(label, time) for label, time, _ in commands_at(p)], truth, model.labels, threshold=p,
                     duration_ms=duration_ms, time_tolerance_ms=time_tolerance_ms) for p in probabilities]
    at_threshold = next(point for point in det if point.threshold == float(detection_threshold))
    return {
        "model": os.path.abspath(model.path),
        "runtime": model.runtime,
        "input_dtype": model.input_dtype,
        "audio": os.path.abspath(audio_path),
        "ground_truth": os.path.abspath(labels_path),
        "duration_s": duration_ms / 1000,
        "windows": int(len(times)),
        "settings": {"clip_stride_ms": clip_stride_ms, "average_window_duration_ms": average_window_duration_ms,
                     "detection_threshold": float(detection_threshold),
                     "score_threshold": by_score[float(detection_threshold)], "suppression_ms": suppression_ms,
                     "minimum_count": minimum_count, "time_tolerance_ms": time_tolerance_ms},
        "stats": {**stats.to_dict(), "matched_percent": stats.percent(stats.matched),
                  "correct_percent": stats.percent(stats.correct), "wrong_percent": stats.percent(stats.wrong),
                  "false_positive_percent": stats.percent(stats.false_positives)},
        "summary": stats.summary(),
        "false_accepts_per_hour": at_threshold.false_accepts_per_hour,
        "false_reject_rate": at_threshold.false_reject_rate,
        "commands": [
            {"label": label, "time_ms": int(time), "score": float(score * scale if scale is not None else score),
             "outcome": kind, "ground_truth": None if index is None else asdict(truth[index])}
            for (label, time, score), (kind, index) in zip(chosen, outcomes)
        ],
        "det": [point.to_dict() for point in det],
    }


def format_stream_report(report, *, commands=False):
    """The text `microkws stream-eval` prints."""
    settings = report["settings"]
    lines = [
        f"model: {report['model']} ({report['runtime']}, {report['input_dtype']} input)",
        f"audio: {report['audio']}: {report['duration_s']:.1f} s, {report['windows']} windows every "
        f"{settings['clip_stride_ms']:g} ms",
        f"recognition: average over {settings['average_window_duration_ms']} ms, threshold "
        f"{settings['detection_threshold']:g}" + (f" ({settings['score_threshold']} on the device's 0-255 scale)"
                                                 if isinstance(settings["score_threshold"], int) else "")
        + f", suppression {settings['suppression_ms']} ms, at least {settings['minimum_count']} results; "
          f"time tolerance {settings['time_tolerance_ms']} ms",
    ]
    if commands:
        for command in report["commands"]:
            lines.append(f"  {command['time_ms']:>8} ms  {command['label']} ({command['score']:.2f})  "
                         f"{command['outcome'].replace('_', ' ')}")
    lines.append(report["summary"])
    lines.append(f"keywords: {100 * report['false_reject_rate']:.1f}% falsely rejected, "
                 f"{report['false_accepts_per_hour']:.1f} false accepts per hour")
    return "\n".join(lines)


def _number(value):
    """A time in ms without needless digits: 1234.5625 -> "1234.5625", 2000.0 -> "2000"."""
    return f"{value:.4f}".rstrip("0").rstrip(".")
