import numpy as np

from fer.metrics import compute_metrics, confusion_matrix, format_confusion


def test_confusion_and_metrics_against_hand_computation():
    # 3 classes; by hand: class 0: 2 right, 1 -> class 1; class 1: 1 right, 1 -> 2; class 2: 2 right.
    y_true = np.array([0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2, 2])
    cm = confusion_matrix(y_true, y_pred, num_classes=3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 2]]
    from fer.metrics import Metrics

    m = Metrics(cm)
    assert m.accuracy == 5 / 7
    assert np.allclose(m.recall, [2 / 3, 1 / 2, 1.0])
    assert np.allclose(m.precision, [1.0, 1 / 2, 2 / 3])
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * (2 / 3) / (1 + 2 / 3)]
    assert np.isclose(m.macro_f1, np.mean(f1))


def test_excluded_labels_and_empty_class():
    cm = confusion_matrix(np.array([-1, 0, 3]), np.array([5, 0, 3]))
    assert cm.sum() == 2 and cm[0, 0] == 1 and cm[3, 3] == 1
    m = compute_metrics(np.array([0, 0]), np.array([0, 1]))
    assert m.recall[6] == 0.0 and m.as_dict()["n"] == 2


def test_format_confusion_has_rows_and_columns():
    text = format_confusion(np.eye(7, dtype=int))
    lines = text.splitlines()
    assert len(lines) == 8 and "angry" in lines[0] and lines[1].startswith("angry")
