"""Scoring a model: accuracy and the confusion matrix."""

import numpy as np


def confusion_matrix(labels, predictions, label_count):
    """[true label, predicted label] counts."""
    matrix = np.zeros((label_count, label_count), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def accuracy(confusion):
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else 0.0


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
