"""How well a model spots keywords in a long recording: the original's figures, false accepts and rejects.

`streaming_accuracy` scores found commands as the original test_streaming_accuracy
did: each command is matched to the first ground-truth word within
`time_tolerance_ms` of it (microkws.streaming.groundtruth); it is correct if the
labels agree and that word was not matched before, wrong otherwise, and a false
positive when no word is near. Percentages are of the ground-truth words. (The
original counted a word matched twice as two matches; here "matched" counts words.)

`evaluate_stream` runs a model over a recording as the device does and adds the figures a product
needs, per detection threshold (microkws.streaming.det): false accepts per hour and the false-reject
rate of the keywords.
"""

import os
from dataclasses import asdict, dataclass

from microkws.audio import read_audio, to_int16
from microkws.dataset.labels import SILENCE_LABEL, label_role
from microkws.errors import UserError
from microkws.streaming.det import DET_THRESHOLDS, det_point
from microkws.streaming.groundtruth import TIME_TOLERANCE_MS, match_commands, read_ground_truth
from microkws.streaming.recognize import DEVICE_SETTINGS, recognize_stream
from microkws.streaming.stream import stream_outputs


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


def streaming_accuracy(commands, ground_truth, *, time_tolerance_ms=TIME_TOLERANCE_MS):
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


def evaluate_stream(model, audio_path, labels_path, *, clip_stride_ms=20,
                    average_window_duration_ms=DEVICE_SETTINGS.average_window_duration_ms,
                    detection_threshold=DEVICE_SETTINGS.detection_threshold,
                    suppression_ms=DEVICE_SETTINGS.suppression_ms, minimum_count=DEVICE_SETTINGS.minimum_count,
                    time_tolerance_ms=TIME_TOLERANCE_MS, thresholds=DET_THRESHOLDS, progress=False):
    """Run `model` (a KeywordModel) over a long recording and score its commands against the ground truth.

    detection_threshold and thresholds are probabilities (0..1); for a quantised model they become the
    device's integer thresholds (`KeywordModel.score_threshold`). Returns the report dict: the original's
    figures at `detection_threshold` ("stats"), each command with its outcome ("commands"), false accepts
    per hour and the false-reject rate there, and a DetPoint per threshold ("det").
    """
    if not 0 <= detection_threshold <= 1 or any(not 0 <= t <= 1 for t in thresholds):
        raise UserError(f"detection thresholds are probabilities between 0 and 1, got {detection_threshold}")
    truth = read_ground_truth(labels_path, model.labels)
    audio = _stream_audio(audio_path, model.feature_config)
    times, outputs = stream_outputs(model, audio, clip_stride_ms=clip_stride_ms, progress=progress)
    duration_ms = 1000 * len(audio) / model.feature_config.sample_rate
    settings = {"clip_stride_ms": clip_stride_ms, "average_window_duration_ms": average_window_duration_ms,
                "detection_threshold": float(detection_threshold),
                "score_threshold": model.score_threshold(detection_threshold), "suppression_ms": suppression_ms,
                "minimum_count": minimum_count, "time_tolerance_ms": time_tolerance_ms}
    commands_at = _commands_by_threshold(model, times, outputs, [*thresholds, detection_threshold], settings)
    det = [det_point([(label, time) for label, time, _ in commands_at(p)], truth, model.labels, threshold=p,
                     duration_ms=duration_ms, time_tolerance_ms=time_tolerance_ms)
           for p in sorted({float(t) for t in thresholds} | {float(detection_threshold)})]
    chosen = commands_at(float(detection_threshold))
    at_threshold = next(point for point in det if point.threshold == float(detection_threshold))
    return {
        "model": os.path.abspath(model.path),
        "runtime": model.runtime,
        "input_dtype": model.input_dtype,
        "audio": os.path.abspath(audio_path),
        "ground_truth": os.path.abspath(labels_path),
        "duration_s": duration_ms / 1000,
        "windows": int(len(times)),
        "settings": settings,
        **_scored_commands(model, chosen, truth, time_tolerance_ms),
        "false_accepts_per_hour": at_threshold.false_accepts_per_hour,
        "false_reject_rate": at_threshold.false_reject_rate,
        "det": [point.to_dict() for point in det],
    }


def _stream_audio(path, config):
    """int16 samples of a recording at the model's rate, at least one clip long."""
    audio = to_int16(read_audio(path, sample_rate=config.sample_rate))
    if len(audio) < config.desired_samples:
        raise UserError(f"{path}: {1000 * len(audio) / config.sample_rate:.0f} ms of audio, shorter than one "
                        f"clip ({config.clip_duration_ms} ms): too short to stream")
    return audio


def _commands_by_threshold(model, times, outputs, probabilities, settings):
    """A function: probability threshold -> the (label, time_ms, score) commands RecognizeCommands finds,
    silence left out. One pass of the recogniser serves every threshold."""
    by_score = {float(p): model.score_threshold(p) for p in probabilities}
    found = recognize_stream(model.labels, times, outputs, thresholds=sorted(set(by_score.values())),
                             average_window_duration_ms=settings["average_window_duration_ms"],
                             suppression_ms=settings["suppression_ms"], minimum_count=settings["minimum_count"])
    silence = [label for label in model.labels if label_role(label) == SILENCE_LABEL]
    return lambda probability: [(r.label, r.time_ms, r.score) for r in found[by_score[float(probability)]]
                                if r.label not in silence]


def _scored_commands(model, chosen, truth, time_tolerance_ms):
    """The report's "stats", "summary" and "commands" of the commands found at the chosen threshold."""
    pairs = [(label, time) for label, time, _ in chosen]
    stats = streaming_accuracy(pairs, truth, time_tolerance_ms=time_tolerance_ms)
    outcomes = match_commands(pairs, truth, time_tolerance_ms=time_tolerance_ms)
    scale, _ = model.output_scale
    return {
        "stats": {**stats.to_dict(), "matched_percent": stats.percent(stats.matched),
                  "correct_percent": stats.percent(stats.correct), "wrong_percent": stats.percent(stats.wrong),
                  "false_positive_percent": stats.percent(stats.false_positives)},
        "summary": stats.summary(),
        "commands": [
            {"label": label, "time_ms": int(time), "score": float(score * scale if scale is not None else score),
             "outcome": kind, "ground_truth": None if index is None else asdict(truth[index])}
            for (label, time, score), (kind, index) in zip(chosen, outcomes)
        ],
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


