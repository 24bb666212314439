"""Classification metrics as pure numpy functions (rows of a confusion matrix are true labels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer.labels import EMOTIONS, NUM_CLASSES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Counts (true, predicted) pairs: ``cm[i, j]`` is the number of class-i faces predicted j.

    Samples whose true label is negative (excluded, e.g. "not a face") are ignored.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    keep = y_true >= 0
    flat = y_true[keep] * num_classes + y_pred[keep]
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@dataclass(frozen=True)
class Metrics:
    """Metrics derived from one confusion matrix."""

    confusion: np.ndarray

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    @property
    def correct(self) -> int:
        """Items on the diagonal: predicted as labelled."""
        return int(np.trace(self.confusion))

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def recall(self) -> np.ndarray:
        """Per-class accuracy (recall): diagonal over row sums."""
        return _safe_div(np.diag(self.confusion), self.confusion.sum(axis=1))

    @property
    def precision(self) -> np.ndarray:
        return _safe_div(np.diag(self.confusion), self.confusion.sum(axis=0))

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return _safe_div(2 * p * r, p + r)

    @property
    def macro_f1(self) -> float:
        return float(self.f1.mean())

    def as_dict(self) -> dict:
        """JSON-ready summary, per-class figures keyed by emotion name."""
        return {
            "n": self.total,
            "accuracy": round(self.accuracy, 6),
            "macro_f1": round(self.macro_f1, 6),
            "per_class_accuracy": {e: round(float(v), 6) for e, v in zip(EMOTIONS, self.recall, strict=True)},
            "per_class_precision": {e: round(float(v), 6) for e, v in zip(EMOTIONS, self.precision, strict=True)},
            "confusion_matrix": self.confusion.astype(int).tolist(),
        }


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> Metrics:
    """Returns :class:`Metrics` for integer labels and predictions."""
    return Metrics(confusion_matrix(y_true, y_pred))


def format_confusion(cm: np.ndarray, labels: tuple[str, ...] = EMOTIONS) -> str:
    """Renders a confusion matrix as a fixed-width table (rows true, columns predicted)."""
    width = max(8, max(len(label) for label in labels) + 1)
    lines = ["true \\ pred".ljust(width) + "".join(label[:width - 1].rjust(width) for label in labels)]
    for label, row in zip(labels, cm, strict=True):
        lines.append(label.ljust(width) + "".join(str(int(v)).rjust(width) for v in row))
    return "\n".join(lines)
