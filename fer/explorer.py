"""The error explorer's logic as pure functions: reference labels, confusion views, cell members,
errors by loss, paging and face tiles. The Streamlit pages call these; nothing here imports streamlit.

A *predictions table* is the per-image CSV that ``python -m fer.evaluate`` writes beside a model
(columns ``row, split, true, pred, p_angry .. p_neutral``; ``row`` is the FER2013 row index).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fer.draw import EMOTION_COLORS
from fer.labels import EMOTIONS, FACE_SIZE, NUM_CLASSES, PROB_COLUMNS
from fer.metrics import Metrics, confusion_matrix
from fer.photo_report import enlarge

PREDICTION_COLUMNS: tuple[str, ...] = ("row", "split", "true", "pred", *PROB_COLUMNS)
# The seed paper's FER2013 test accuracy (its Abstract), the reference line of every accuracy plot.
PAPER_ACCURACY: float = 0.617

# Which labels the explorer counts as the truth.
REFERENCES: dict[str, str] = {
    "fer2013": "FER2013",
    "ferplus": "FER+ majority",
    "annotated": "FER2013 + our annotations",
}

def validate_predictions(table: pd.DataFrame) -> pd.DataFrame:
    """Checks a predictions table's columns and returns it with integer codes.

    Raises:
        ValueError: naming the missing columns or out-of-range codes.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"predictions table lacks column(s) {', '.join(missing)}")
    table = table.astype({"row": "int64", "true": "int64", "pred": "int64", "split": str})
    for column in ("true", "pred"):
        values = table[column].to_numpy()
        if values.size and (values.min() < 0 or values.max() >= NUM_CLASSES):
            raise ValueError(f"predictions column {column!r} holds codes outside 0..{NUM_CLASSES - 1}")
    return table.reset_index(drop=True)


def reference_labels(
    source: str,
    original: np.ndarray,
    rows: np.ndarray,
    ferplus_majority: np.ndarray | None = None,
    annotations: pd.DataFrame | None = None,
) -> np.ndarray:
    """Returns the reference label of each face under one of :data:`REFERENCES`.

    Args:
        source: ``fer2013`` (the original labels), ``ferplus`` (the FER+ crowd's majority) or
            ``annotated`` (the original with our current annotations applied).
        original: int array (N,), the FER2013 labels.
        rows: int array (N,), FER2013 row of each face.
        ferplus_majority: int array indexed by FER2013 row (35,887 entries), -1 where FER+ has
            no emotion vote; needed for ``ferplus``.
        annotations: the current-annotation table of ``fer.annotations.AnnotationStore.current``;
            needed for ``annotated``.

    Returns:
        int64 array (N,); -1 marks a face without a reference label (FER+ not-a-face, or marked
        not-a-face/ambiguous by an annotator), which evaluation excludes.

    Raises:
        ValueError: for an unknown source or a missing input.
    """
    original = np.asarray(original, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    if source == "fer2013":
        return original.copy()
    if source == "ferplus":
        if ferplus_majority is None:
            raise ValueError("the FER+ reference needs the FER+ majority labels")
        return np.asarray(ferplus_majority, dtype=np.int64)[rows]
    if source == "annotated":
        from fer.annotations import apply_annotations

        if annotations is None:
            raise ValueError("the annotated reference needs the current annotations")
        return apply_annotations(original, annotations, rows)
    raise ValueError(f"unknown reference {source!r}; expected one of {', '.join(REFERENCES)}")


@dataclass(frozen=True)
class SplitView:
    """One split's predictions judged against one reference.

    Attributes:
        rows: FER2013 row of each face (all faces of the split, excluded ones too).
        reference: reference label per face, -1 where excluded.
        predicted: predicted label per face.
        probabilities: float (N, 7) predicted probabilities.
        metrics: metrics over the faces with a reference label.
    """

    rows: np.ndarray
    reference: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    metrics: Metrics

    @property
    def excluded(self) -> int:
        """How many faces have no reference label and are left out."""
        return int((self.reference < 0).sum())

    @property
    def confidence(self) -> np.ndarray:
        """The probability of each face's predicted class."""
        return self.probabilities[np.arange(len(self.predicted)), self.predicted]


def split_view(predictions: pd.DataFrame, split: str, reference: np.ndarray | None = None) -> SplitView:
    """Builds the :class:`SplitView` of one split.

    Args:
        predictions: a validated predictions table.
        split: ``PublicTest`` or ``PrivateTest``.
        reference: reference labels aligned with the split's rows of ``predictions`` (in table
            order); default: the table's own ``true`` column.

    Raises:
        ValueError: if the split has no predictions or ``reference`` has the wrong length.
    """
    part = predictions[predictions["split"] == split]
    if part.empty:
        raise ValueError(f"no predictions for split {split!r}")
    ref = part["true"].to_numpy(np.int64) if reference is None else np.asarray(reference, dtype=np.int64)
    if ref.shape != (len(part),):
        raise ValueError(f"reference has {ref.shape[0]} labels; split {split} has {len(part)} faces")
    predicted = part["pred"].to_numpy(np.int64)
    return SplitView(
        rows=part["row"].to_numpy(np.int64),
        reference=ref,
        predicted=predicted,
        probabilities=part[list(PROB_COLUMNS)].to_numpy(np.float64),
        metrics=Metrics(confusion_matrix(ref, predicted)),
    )


def normalise_rows(cm: np.ndarray) -> np.ndarray:
    """Divides each row of a confusion matrix by its sum (rows without faces stay 0)."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def confusion_frame(cm: np.ndarray, normalise: bool = False) -> pd.DataFrame:
    """The confusion matrix as a table: index true labels, columns predicted labels.

    Args:
        cm: (7, 7) counts, rows true.
        normalise: divide each row by its sum (the fraction of each true class).
    """
    values = normalise_rows(cm) if normalise else np.asarray(cm, dtype=np.int64)
    frame = pd.DataFrame(values, index=list(EMOTIONS), columns=list(EMOTIONS))
    frame.index.name = "true \\ predicted"
    return frame


def per_class_table(metrics: Metrics) -> pd.DataFrame:
    """Per-class precision, recall (= per-class accuracy), F1 and support; NaN where undefined
    (recall of a class with no faces, precision of a class never predicted), not 0.
    """
    support = metrics.confusion.sum(axis=1).astype(np.int64)
    predicted = metrics.confusion.sum(axis=0)
    precision = np.where(predicted > 0, metrics.precision, np.nan)
    recall = np.where(support > 0, metrics.recall, np.nan)
    f1 = np.where((predicted > 0) & (support > 0), metrics.f1, np.nan)
    return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": support},
                        index=pd.Index(list(EMOTIONS), name="class"))


def selected_cell(cells: Sequence[Sequence]) -> tuple[int, int] | None:
    """Maps a dataframe cell selection (``[(row position, column name)]``) to ``(true, pred)``.

    Returns:
        Class codes of the first selected cell, or ``None`` when nothing (valid) is selected.
    """
    for cell in cells or ():
        if len(cell) != 2:
            continue
        position, column = cell
        if column in EMOTIONS and 0 <= int(position) < NUM_CLASSES:
            return int(position), EMOTIONS.index(column)
    return None


# How a cell's faces can be ordered: key -> words for the page ("most confident first").
CELL_ORDERS: dict[str, str] = {
    "confident": "most confident first",
    "unsure": "least confident first",
    "crowd": "the crowd's backing of the prediction first",
    "turned": "most turned first",
}


def cell_members(
    view: SplitView,
    true: int,
    pred: int,
    order: str = "confident",
    crowd_shares: np.ndarray | None = None,
    yaws: np.ndarray | None = None,
) -> np.ndarray:
    """Positions (into ``view``'s arrays) of the faces in one cell, in the chosen order.

    Confidence is the probability of the predicted class. In a cell off the diagonal, the most
    confident errors and those the crowd backs are the likeliest wrong labels; the least
    confident are the model's near misses. Ties go to the more confident face, then to the
    FER2013 row order.

    Args:
        view: the split's predictions.
        true: the cell's reference class.
        pred: the cell's predicted class.
        order: a key of :data:`CELL_ORDERS`.
        crowd_shares: for ``"crowd"``, each FER2013 row's FER+ vote shares over the seven
            emotions (rows, 7): faces by the share of the crowd that chose the predicted
            label, highest first; faces without votes (NaN) last.
        yaws: for ``"turned"``, each FER2013 row's yaw in degrees (NaN where unknown): faces by
            how far the head is turned either way, most first; unknown last.

    Raises:
        ValueError: for an unknown order, or one whose table is not given.
    """
    if order not in CELL_ORDERS:
        raise ValueError(f"unknown order {order!r}; expected one of {', '.join(CELL_ORDERS)}")
    members = np.flatnonzero((view.reference == true) & (view.predicted == pred))
    rows, confidence = view.rows[members], view.confidence[members]
    if order == "confident":
        primary = -confidence
    elif order == "unsure":
        primary = confidence
    else:
        table = crowd_shares if order == "crowd" else yaws
        if table is None:
            raise ValueError(f"the {order!r} order needs its table")
        values = table[rows, pred] if order == "crowd" else np.abs(table[rows])
        primary = -np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-1.0)
    return members[np.lexsort((rows, -confidence, primary))]


# Probabilities are clipped up to this before the log: a table rounded to 6 decimals holds zeros,
# whose loss would be infinite and would tie every such face at the top.
LOSS_FLOOR: float = 1e-7


def face_losses(view: SplitView, floor: float = LOSS_FLOOR) -> np.ndarray:
    """Each face's cross-entropy against its reference label, ``-log p(reference)``.

    Args:
        view: the split's predictions.
        floor: the smallest probability the log sees, so that every loss is finite
            (at most ``-log(floor)``, 16.1 by default).

    Returns:
        float64 array (N,), NaN for a face without a reference label.
    """
    labelled = view.reference >= 0
    p = view.probabilities[np.arange(len(view.reference)), np.where(labelled, view.reference, 0)]
    return np.where(labelled, -np.log(np.clip(p, floor, 1.0)), np.nan)


def error_members(view: SplitView, true: int | None = None, pred: int | None = None) -> np.ndarray:
    """Positions (into ``view``'s arrays) of the misclassified faces, highest loss first.

    A face is misclassified when it has a reference label and the prediction differs from it.
    The highest losses are the errors the model was surest of, where wrong labels and strange
    faces gather (as Cleanlab and FiftyOne rank them). Equal losses go by FER2013 row.

    Args:
        view: the split's predictions.
        true: keep only the errors on faces of this reference class (``None``: any).
        pred: keep only the errors predicted as this class (``None``: any).
    """
    wrong = (view.reference >= 0) & (view.predicted != view.reference)
    if true is not None:
        wrong &= view.reference == true
    if pred is not None:
        wrong &= view.predicted == pred
    members = np.flatnonzero(wrong)
    return members[np.lexsort((view.rows[members], -face_losses(view)[members]))]


def cell_table(view: SplitView, members: np.ndarray, crowd_shares: np.ndarray | None = None,
               yaws: np.ndarray | None = None,
               annotations: dict[int, tuple[str, str | None, str, str]] | None = None) -> pd.DataFrame:
    """The faces of a list (``members``, in their order: a cell's, or :func:`error_members`) as a
    table to export: FER2013 row, reference and predicted labels, confidence, loss
    (:func:`face_losses`), the seven probabilities, where known the share of the FER+ crowd that
    chose the predicted label and the head's yaw in degrees, and with ``annotations``
    (:func:`current_annotation_map`) each face's :func:`annotation_columns`.
    """
    rows, predicted = view.rows[members], view.predicted[members]
    table = pd.DataFrame({
        "row": rows,
        "reference": [label_name(v) for v in view.reference[members]],
        "predicted": [label_name(v) for v in predicted],
        "confidence": view.confidence[members].round(6),
        "loss": face_losses(view)[members].round(6),
    })
    for j, column in enumerate(PROB_COLUMNS):
        table[column] = view.probabilities[members, j].round(6)
    if crowd_shares is not None:
        table["ferplus_share_predicted"] = crowd_shares[rows, predicted].round(4)
    if yaws is not None:
        table["yaw"] = yaws[rows].round(1)
    if annotations is not None:
        table = pd.concat([table, annotation_columns(rows, annotations)], axis=1)
    return table


@dataclass(frozen=True)
class PageSlice:
    """One page of a long list: items ``start:stop`` of ``total``, page ``page`` of ``pages``."""

    page: int
    pages: int
    start: int
    stop: int
    total: int


def paginate(total: int, page: int, per_page: int) -> PageSlice:
    """Returns the slice of page ``page`` (1-based, clamped to the valid range).

    Raises:
        ValueError: if ``per_page`` is not positive or ``total`` is negative.
    """
    if per_page <= 0:
        raise ValueError(f"per_page must be positive; got {per_page}")
    if total < 0:
        raise ValueError(f"total must be >= 0; got {total}")
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, int(page)), pages)
    start = (page - 1) * per_page
    return PageSlice(page=page, pages=pages, start=start, stop=min(total, start + per_page), total=total)


def row_positions(rows: np.ndarray, size: int) -> np.ndarray:
    """An index from FER2013 row to position in ``rows`` (-1 where absent), of length ``size``."""
    index = np.full(size, -1, dtype=np.int64)
    index[np.asarray(rows, dtype=np.int64)] = np.arange(len(rows))
    return index


def browse_indices(labels: np.ndarray, usage: np.ndarray, split: str, label: int | None = None) -> np.ndarray:
    """Positions of a dataset's faces in one split (and of one label, if given), in row order."""
    mask = np.asarray(usage) == split
    if label is not None:
        mask &= np.asarray(labels) == label
    return np.flatnonzero(mask)


def _bar_strip(values: np.ndarray, width: int, height: int, background: int = 24) -> np.ndarray:
    """A tiny bar chart: one bar per emotion, in :data:`EMOTIONS` order and colours."""
    strip = np.full((height, width, 3), background, dtype=np.uint8)
    n = len(EMOTIONS)
    bar = width // n
    offset = (width - bar * n) // 2
    for i, name in enumerate(EMOTIONS):
        value = float(np.clip(values[i], 0.0, 1.0)) if i < len(values) else 0.0
        filled = round(value * (height - 1))
        if filled:
            x0 = offset + i * bar
            strip[height - filled :, x0 + 1 : x0 + bar - 1] = EMOTION_COLORS[name]
        # A baseline tick keeps empty classes visible as slots.
        strip[height - 1, offset + i * bar + 1 : offset + (i + 1) * bar - 1] = 90
    return strip


def face_tile(
    gray_face: np.ndarray,
    probabilities: np.ndarray | None = None,
    votes: np.ndarray | None = None,
    zoom: int = 2,
    bar_height: int = 18,
    face_rgb: np.ndarray | None = None,
) -> np.ndarray:
    """One face for a grid: the face enlarged, then a bar per class of the model's probabilities
    and then one of the FER+ vote shares (each strip only if given), as one RGB image.

    Args:
        gray_face: uint8 (48, 48).
        probabilities: (7,) model probabilities, or ``None``.
        votes: (7,) FER+ vote shares over the 7 emotions, or ``None``.
        zoom: integer upscaling of the face (nearest neighbour keeps pixels crisp).
        bar_height: height of each strip.
        face_rgb: uint8 (H * zoom, W * zoom, 3) to draw instead of the enlarged grey face (an
            occlusion map over it, say).
    """
    face = np.asarray(gray_face, dtype=np.uint8)
    if face.ndim != 2:
        raise ValueError(f"expected a grey face (H, W); got shape {face.shape}")
    if face_rgb is None:
        top = np.repeat(enlarge(face, zoom)[..., None], 3, axis=2)
    else:
        top = np.asarray(face_rgb, dtype=np.uint8)
        if top.shape != (face.shape[0] * zoom, face.shape[1] * zoom, 3):
            raise ValueError(f"face_rgb must be the face enlarged {zoom} times in RGB; got shape {top.shape}")
    parts = [top]
    width = top.shape[1]
    for values in (probabilities, votes):
        if values is not None:
            parts.append(np.full((2, width, 3), 255, dtype=np.uint8))
            parts.append(_bar_strip(np.asarray(values, dtype=np.float64), width, bar_height))
    return np.ascontiguousarray(np.concatenate(parts, axis=0))


def pair_tile(left: np.ndarray, right: np.ndarray, gap: int = 6, background: int = 255) -> np.ndarray:
    """Two equal-height RGB tiles side by side (a test face and its Training twin)."""
    if left.shape[0] != right.shape[0]:
        raise ValueError(f"tiles differ in height: {left.shape[0]} and {right.shape[0]}")
    spacer = np.full((left.shape[0], gap, 3), background, dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([left, spacer, right], axis=1))


def mosaic(tiles: Sequence[np.ndarray], columns: int, gap: int = 4, background: int = 255) -> np.ndarray:
    """Lays equal-sized RGB tiles out in a grid image (row-major)."""
    if not tiles:
        return np.full((FACE_SIZE, FACE_SIZE, 3), background, dtype=np.uint8)
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    out = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), background, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return out


def label_name(code: int) -> str:
    """The emotion name of a code, or ``none`` for -1 (no label)."""
    return EMOTIONS[int(code)] if 0 <= int(code) < NUM_CLASSES else "none"


def describe_annotation(action: str | None, label: str | None) -> str:
    """A short text for a face's current annotation (empty when there is none)."""
    if not action:
        return ""
    if action == "confirm":
        return f"confirmed {label}"
    if action == "relabel":
        return f"relabelled {label}"
    return {"not_face": "not a face", "ambiguous": "ambiguous"}.get(action, action)


def annotation_columns(rows: Sequence[int], annotations: dict[int, tuple[str, str | None, str, str]]) -> pd.DataFrame:
    """Each row's current annotation as export columns, as ``fer.annotations`` exports them:
    ``action``, ``annotated_label``, ``annotator``, ``note`` (empty for a face without one).

    Annotator and note are people's free text: they pass through
    :func:`fer.annotations.guard_formula`, so that a spreadsheet opening the CSV shows them as
    text rather than running them.

    Args:
        rows: FER2013 rows, in the table's order.
        annotations: :func:`current_annotation_map` of the store.
    """
    from fer.annotations import guard_formula

    found = [annotations.get(int(r)) or ("", None, "", "") for r in rows]
    return pd.DataFrame({
        "action": [action for action, _, _, _ in found],
        "annotated_label": [label or "" for _, label, _, _ in found],
        "annotator": [guard_formula(str(who)) for _, _, who, _ in found],
        "note": [guard_formula(str(note or "")) for _, _, _, note in found],
    })


def current_annotation_map(current: pd.DataFrame) -> dict[int, tuple[str, str | None, str, str]]:
    """``row -> (action, label, annotator, note)`` from an annotation store's current table."""
    if current is None or current.empty:
        return {}
    return {
        int(r): (a, None if lab is None or (isinstance(lab, float) and math.isnan(lab)) else str(lab), who, note)
        for r, a, lab, who, note in current[["row", "action", "label", "annotator", "note"]].itertuples(index=False)
    }
