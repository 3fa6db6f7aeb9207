"""Scores of a keyword model's outputs: pure numpy, arrays in, numbers out.

Confusion matrices and what follows from them (accuracy, balanced accuracy, per-class precision and
recall, unknown words taken for keywords), keyword recall at fixed false-accept rates, and the
softmax that turns logits into the probabilities these take.
"""

import numpy as np

from microkws.dataset.labels import UNKNOWN_LABEL, keyword_indices, label_role


def softmax(logits):
    """float32 probabilities [n, labels] of logits [n, labels]."""
    logits = np.asarray(logits, dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def confusion_matrix(labels, predictions, label_count):
    """[true label, predicted label] counts."""
    matrix = np.zeros((label_count, label_count), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def accuracy(confusion):
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else 0.0


def balanced_accuracy(confusion):
    """Mean recall over the classes that have examples: every class counts the same."""
    support = confusion.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(confusion)[present] / support[present])) if present.any() else 0.0


def per_class(confusion, labels):
    """{label: {"precision", "recall", "support"}} from a confusion matrix."""
    result = {}
    for i, label in enumerate(labels):
        predicted = confusion[:, i].sum()
        actual = confusion[i].sum()
        result[label] = {
            "precision": float(confusion[i, i] / predicted) if predicted else 0.0,
            "recall": float(confusion[i, i] / actual) if actual else 0.0,
            "support": int(actual),
        }
    return result


def format_confusion(confusion, labels):
    width = max(8, *(len(label) + 1 for label in labels))
    lines = ["true \\ predicted".ljust(width + 2) + "".join(label.rjust(width) for label in labels)]
    for label, row in zip(labels, confusion):
        lines.append(label.ljust(width + 2) + "".join(str(int(n)).rjust(width) for n in row))
    return "\n".join(lines)


def unknown_false_accepts(confusion, labels):
    """How often a clip of an unknown word is taken for a wanted word.

    {"rate": accepted / unknown clips (None without unknown clips), "accepted", "unknown_clips"}.
    The original recipe's known weakness: unknown words are few in training, so many fire a keyword.
    """
    roles = [label_role(label) for label in labels]
    if UNKNOWN_LABEL not in roles:
        return {"rate": None, "accepted": 0, "unknown_clips": 0}
    row = np.asarray(confusion)[roles.index(UNKNOWN_LABEL)]
    accepted = int(sum(row[i] for i in keyword_indices(labels)))
    total = int(row.sum())
    return {"rate": accepted / total if total else None, "accepted": accepted, "unknown_clips": total}


FALSE_ACCEPT_RATES = (0.01, 0.02, 0.05, 0.10, 0.20)
"""The shares of unknown clips allowed to fire a keyword at which `keyword_recall` is reported."""


def keyword_recall(probabilities, truth, labels, rates=FALSE_ACCEPT_RATES):
    """Keyword recall at fixed false-accept rates: the threshold sweep a device's detector makes.

    A clip fires as a device's RecognizeCommands would: its top label over ALL labels, when that is a
    keyword and its score reaches the threshold t (a clip whose top label is "unknown" or silence never
    fires, however high its keyword scores). A keyword clip counts as detected when it fires with its
    own word. For each rate r, t is the lowest score at which at most r of the unknown-word clips fire.
    Two models compared at equal false accepts, unlike argmax accuracy, do not reward one for merely
    leaning towards "unknown"; and a checkpoint that scores keywords well but calls them "unknown"
    (which a device never reports) is not rewarded either.

    probabilities: [n, labels] scores; truth: [n] label indices. Returns a list of
    {"false_accept_rate": r, "threshold", "measured_false_accepts", "recall"}, empty without
    unknown or keyword clips.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(truth)
    keywords = keyword_indices(labels)
    roles = [label_role(label) for label in labels]
    if not keywords or UNKNOWN_LABEL not in roles or not len(truth):
        return []
    top = probabilities.argmax(axis=1)
    fires = np.isin(top, keywords)
    scores = np.where(fires, probabilities[np.arange(len(top)), top], -1.0)  # -1: below every threshold
    unknown = scores[truth == roles.index(UNKNOWN_LABEL)]
    is_keyword = np.isin(truth, keywords)
    if not len(unknown) or not is_keyword.any():
        return []
    candidates = np.unique(scores[fires])
    top_score = candidates[-1] if len(candidates) else 0.0
    candidates = np.append(candidates, top_score + 1e-6)  # above every score: nothing fires
    # How many unknown clips score >= t, for every candidate t at once.
    fire_counts = len(unknown) - np.searchsorted(np.sort(unknown), candidates, side="left")
    report = []
    for rate in rates:
        # Counts fall as t rises, so the first candidate within the rate is the lowest threshold.
        first = np.argmax(fire_counts <= rate * len(unknown) + 1e-9)
        threshold = candidates[first]
        detected = (scores >= threshold) & (top == truth) & is_keyword
        report.append({
            "false_accept_rate": rate,
            "threshold": float(threshold),
            "measured_false_accepts": float(fire_counts[first] / len(unknown)),
            "recall": float(detected.sum() / is_keyword.sum()),
        })
    return report


def format_keyword_recall(rows):
    """One line: "keyword recall at a false-accept rate of 2%: 66.7%, 5%: 76.0%, ..."."""
    return "keyword recall at a false-accept rate of " + ", ".join(
        f"{100 * row['false_accept_rate']:g}%: {100 * row['recall']:.1f}%" for row in rows)


def top_ties(outputs):
    """How many rows of int8 scores share their top value between labels.

    The output's step is 1/256; a clip the float model scores 0.51/0.48 can
    come out as an exact tie, which argmax (here and on the device) gives to
    the first label.
    """
    outputs = np.asarray(outputs)
    if not len(outputs):
        return 0
    return int(np.sum(np.sum(outputs == outputs.max(axis=-1, keepdims=True), axis=-1) > 1))
