"""Classification figures from true and predicted classes: the one place they are computed.

Training's evaluation, conversion's check of the TF.js model and the server's scoring of the
published model all report per-class recall; they all call ``per_class_recall``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], classes: int) -> np.ndarray:
    """Counts with rows = true class and columns = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def per_class_report(matrix: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class, from the confusion matrix."""
    report = {}
    for i, label in enumerate(labels):
        tp = matrix[i, i]
        predicted, actual = matrix[:, i].sum(), matrix[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[label] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    return report


def per_class_recall(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict[str, float]:
    """Each class's share of its images predicted right (0 for a class with no images)."""
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    return {label: m["recall"] for label, m in per_class_report(matrix, labels).items()}
