"""Detection error trade-off: false accepts per hour against the false-reject rate, over a threshold sweep.

`det_point` counts, at one detection threshold, the keyword commands that are not a correct match
(fired on an unknown word, on the wrong keyword, or on nothing) and the keywords said but not
correctly found; `write_det` writes the sweep as CSV and a PNG curve.
"""

import io
import os
from dataclasses import asdict, dataclass, fields

from microkws.dataset.labels import keyword_indices, label_role
from microkws.files import write_bytes, write_text
from microkws.streaming.groundtruth import TIME_TOLERANCE_MS, match_commands


DET_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20)) + (0.98, 0.99)
"""Detection thresholds (probabilities) of the DET sweep."""


DET_CSV_SUFFIX = ".csv"


DET_PNG_SUFFIX = ".png"


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


def det_point(commands, ground_truth, labels, *, threshold, duration_ms,
              time_tolerance_ms=TIME_TOLERANCE_MS):
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
