"""Ranking of suspected label errors: confident learning plus FER+ crowd disagreement.

Implemented here rather than taken from cleanlab (AGPL). The method follows Northcutt, Jiang and
Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels" (JAIR 2021): per-class
thresholds on out-of-sample predicted probabilities, a confident-learning flag, and a ranking
by normalised margin. FER2013 adds a second, independent witness: the 10 FER+ crowd votes per
face, which this module mixes into the score.

The probabilities must be out-of-sample: predictions of a model that did not train on those
faces (the PublicTest and PrivateTest splits for a model trained on Training, or cross-validated
predictions). In-sample predictions have memorised the given labels and hide their errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fer.ferplus import emotion_votes, majority_label
from fer.labels import EMOTIONS, PROB_COLUMNS, SPLITS

ISSUE_COLUMNS: tuple[str, ...] = (
    "index", "row", "split", "given", "suggested", "self_confidence", "margin_suspicion",
    "ferplus_majority", "ferplus_disagreement", "score", "is_issue",
)


def _validate(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must have shape (N, K) with K >= 2; got {probabilities.shape}")
    if labels.shape != (probabilities.shape[0],):
        raise ValueError(f"labels must have shape ({probabilities.shape[0]},); got {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class codes; got dtype {labels.dtype}")
    num_classes = probabilities.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got {labels.min()}..{labels.max()}")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any():
        raise ValueError("probabilities must be finite and non-negative")
    return labels.astype(np.int64), probabilities


def per_class_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Return the confident-learning threshold of each class.

    ``t_j`` is the mean predicted probability of class ``j`` over the samples whose given label
    is ``j``: the model's average self-confidence on that class.

    Args:
        labels: int array (N,), given labels in ``[0, K)``.
        probabilities: float array (N, K), out-of-sample predicted probabilities.

    Returns:
        float64 array (K,). A class with no sample gets ``inf``, so nothing is ever confidently
        assigned to it.
    """
    labels, probabilities = _validate(labels, probabilities)
    num_classes = probabilities.shape[1]
    counts = np.bincount(labels, minlength=num_classes)
    sums = np.zeros(num_classes)
    np.add.at(sums, labels, probabilities[np.arange(labels.size), labels])
    return np.divide(sums, counts, out=np.full(num_classes, np.inf), where=counts > 0)


def ferplus_disagreement(labels: np.ndarray, ferplus_votes: np.ndarray) -> np.ndarray:
    """Return the fraction of FER+ emotion votes that are not for the given label.

    Args:
        labels: int array (N,), given labels as codes into :data:`fer.labels.EMOTIONS`.
        ferplus_votes: array (N, 10), FER+ votes in :data:`fer.labels.FERPLUS_COLUMNS` order.

    Returns:
        float64 array (N,) in [0, 1]; NaN where no emotion got a vote (FER+ not-a-face,
        unknown or contempt only), since the crowd then says nothing about the 7 labels.
    """
    votes = emotion_votes(ferplus_votes)
    labels = np.asarray(labels, dtype=np.int64)
    if votes.shape[0] != labels.shape[0]:
        raise ValueError(f"ferplus_votes has {votes.shape[0]} rows; labels has {labels.shape[0]}")
    totals = votes.sum(axis=1).astype(np.float64)
    agree = votes[np.arange(labels.size), labels].astype(np.float64)
    return np.divide(totals - agree, totals, out=np.full(labels.size, np.nan), where=totals > 0)


def _suggestions(
    labels: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (suggested class, highest other probability, confident-learning flag) per sample."""
    n = labels.size
    others = probabilities.copy()
    others[np.arange(n), labels] = -np.inf
    max_other = others.max(axis=1)
    confident_other = others >= thresholds[None, :]
    # Suggest the most probable class among those above their threshold, as confident learning
    # counts the sample there; without one, simply the most probable other class.
    confident_scores = np.where(confident_other, others, -np.inf)
    suggested = np.where(confident_other.any(axis=1), confident_scores.argmax(axis=1), others.argmax(axis=1))
    given_prob = probabilities[np.arange(n), labels]
    is_issue = (given_prob < thresholds[labels]) & confident_other.any(axis=1)
    return suggested.astype(np.int64), max_other, is_issue


def rank_label_issues(
    labels: np.ndarray,
    probabilities: np.ndarray,
    ferplus_votes: np.ndarray | None = None,
    weight_ferplus: float = 0.5,
    *,
    rows: np.ndarray | None = None,
    usage: np.ndarray | None = None,
) -> pd.DataFrame:
    """Ranks samples by how likely their given label is wrong, most suspicious first.

    With ``p`` the out-of-sample probabilities, ``y`` the given label of a sample and ``t`` the
    per-class thresholds of :func:`per_class_thresholds`:

    - ``self_confidence = p[y]`` (cleanlab's label-quality score: low means suspicious).
    - ``margin_suspicion = (2 + max_{k != y} (p[k] - t[k]) - (p[y] - t[y])) / 4``: the margin of
      the given label over the strongest other class, each measured against its own per-class
      threshold (confident learning), so classes the model is always unsure of (fear, sad) are
      not ranked as suspicious merely for being hard; in [-2, 2], flipped and mapped to [0, 1].
    - ``ferplus_disagreement = 1 - votes[y] / sum(votes over the 7 emotions)`` from FER+; NaN
      without FER+ votes or where no emotion got a vote.
    - ``score = (1 - w) * margin_suspicion + w * ferplus_disagreement`` with ``w =
      weight_ferplus``; where the disagreement is NaN, ``score = margin_suspicion``. Both terms
      lie in [0, 1], so the score does too.
    - ``is_issue`` (the confident-learning flag): ``p[y] < t[y]`` and some ``k != y`` has
      ``p[k] >= t[k]``.
    - ``suggested``: the most probable ``k != y`` with ``p[k] >= t[k]``; if there is none, the
      most probable ``k != y``.

    Args:
        labels: int array (N,), given labels in ``[0, K)``.
        probabilities: float array (N, K), out-of-sample predicted probabilities (see the module
            docstring: in-sample predictions hide label errors).
        ferplus_votes: optional array (N, 10) of FER+ votes aligned with ``labels``; needs
            ``K == 7`` with classes in :data:`fer.labels.EMOTIONS` order.
        weight_ferplus: weight ``w`` in [0, 1] of the FER+ term.
        rows: optional FER2013 row index of each sample (defaults to the position).
        usage: optional split name of each sample, for :func:`filter_issues`.

    Returns:
        A DataFrame with the columns of :data:`ISSUE_COLUMNS` (``index`` is the position in the
        inputs; ``given``, ``suggested`` and ``ferplus_majority`` are class codes, the last -1
        without FER+ emotion votes), sorted by ``score`` descending, ties by ``index``.

    Raises:
        ValueError: for inconsistent shapes, labels out of range, non-finite probabilities, a
            weight outside [0, 1], or FER+ votes with ``K != 7``.
    """
    labels, probabilities = _validate(labels, probabilities)
    if not 0.0 <= weight_ferplus <= 1.0:
        raise ValueError(f"weight_ferplus must lie in [0, 1]; got {weight_ferplus}")
    n = labels.size
    thresholds = per_class_thresholds(labels, probabilities)
    suggested, max_other, is_issue = _suggestions(labels, probabilities, thresholds)
    self_confidence = probabilities[np.arange(n), labels]
    # A class nobody was given has no threshold: treat it as unreachable (1.0), not as -inf.
    adjusted = probabilities - np.where(np.isfinite(thresholds), thresholds, 1.0)[None, :]
    adjusted_other = np.where(np.eye(probabilities.shape[1], dtype=bool)[labels], -np.inf, adjusted).max(axis=1)
    margin_suspicion = (2.0 + adjusted_other - adjusted[np.arange(n), labels]) / 4.0

    if ferplus_votes is None:
        disagreement = np.full(n, np.nan)
        majority = np.full(n, -1, dtype=np.int64)
    else:
        if probabilities.shape[1] != len(EMOTIONS):
            raise ValueError(f"FER+ votes need the {len(EMOTIONS)} FER2013 classes; got {probabilities.shape[1]}")
        disagreement = ferplus_disagreement(labels, ferplus_votes)
        majority = majority_label(ferplus_votes)
    score = np.where(
        np.isnan(disagreement),
        margin_suspicion,
        (1.0 - weight_ferplus) * margin_suspicion + weight_ferplus * np.nan_to_num(disagreement),
    )

    table = pd.DataFrame(
        {
            "index": np.arange(n, dtype=np.int64),
            "row": np.arange(n, dtype=np.int64) if rows is None else _aligned(rows, n, "rows").astype(np.int64),
            "split": pd.Series([""] * n if usage is None else _aligned(usage, n, "usage").astype(str), dtype=str),
            "given": labels,
            "suggested": suggested,
            "self_confidence": self_confidence,
            "margin_suspicion": margin_suspicion,
            "ferplus_majority": majority,
            "ferplus_disagreement": disagreement,
            "score": score,
            "is_issue": is_issue,
        },
        columns=list(ISSUE_COLUMNS),
    )
    # A stable sort on -score keeps equal scores in input order, so the ranking is deterministic.
    return table.iloc[np.argsort(-score, kind="stable")].reset_index(drop=True)


def _aligned(values: np.ndarray, n: int, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},); got {array.shape}")
    return array


def _class_code(value: int | str) -> int:
    if isinstance(value, str):
        if value not in EMOTIONS:
            raise ValueError(f"unknown emotion {value!r}; expected one of {', '.join(EMOTIONS)}")
        return EMOTIONS.index(value)
    return int(value)


def filter_issues(
    issues: pd.DataFrame,
    *,
    given: int | str | Sequence[int | str] | None = None,
    suggested: int | str | Sequence[int | str] | None = None,
    split: str | Sequence[str] | None = None,
    only_flagged: bool = False,
    top: int | None = None,
) -> pd.DataFrame:
    """Select rows of a :func:`rank_label_issues` table, keeping its order.

    Args:
        issues: the ranked table.
        given: class code(s) or emotion name(s) of the given label to keep.
        suggested: class code(s) or emotion name(s) of the suggested label to keep.
        split: split name(s) to keep (``Training``, ``PublicTest``, ``PrivateTest``).
        only_flagged: keep only confident-learning issues (``is_issue``).
        top: keep at most this many rows (after the other filters).

    Returns:
        The selected rows, index reset.

    Raises:
        ValueError: for an unknown emotion or split name, or a negative ``top``.
    """
    mask = np.ones(len(issues), dtype=bool)
    for column, wanted in (("given", given), ("suggested", suggested)):
        if wanted is not None:
            values = [wanted] if isinstance(wanted, str | int | np.integer) else list(wanted)
            mask &= issues[column].isin([_class_code(v) for v in values]).to_numpy()
    if split is not None:
        names = [split] if isinstance(split, str) else list(split)
        unknown = sorted(set(names) - set(SPLITS))
        if unknown:
            raise ValueError(f"unknown split {unknown}; expected one of {', '.join(SPLITS)}")
        mask &= issues["split"].isin(names).to_numpy()
    if only_flagged:
        mask &= issues["is_issue"].to_numpy(dtype=bool)
    selected = issues[mask]
    if top is not None:
        if top < 0:
            raise ValueError(f"top must be >= 0; got {top}")
        selected = selected.head(top)
    return selected.reset_index(drop=True)


def model_issues(model_path: str | Path, weight_ferplus: float = 0.5, tta: bool = False) -> pd.DataFrame:
    """:func:`rank_label_issues` of a released model's stored test predictions (plain or flip
    TTA, ``python -m fer.evaluate``), with the embedded FER+ votes of the same rows.

    Raises:
        FileNotFoundError: the model has no such predictions table.
        ValueError: the table is malformed.
    """
    from fer.evaluate import stored_predictions_path
    from fer.explorer import validate_predictions
    from fer.ferplus import load_ferplus_votes

    path = stored_predictions_path(model_path, tta)
    try:
        votes = load_ferplus_votes().votes
    except FileNotFoundError:
        votes = None  # the ranking then rests on the model alone
    return rank_predictions(validate_predictions(pd.read_csv(path)), votes, weight_ferplus)


def rank_predictions(table: pd.DataFrame, ferplus_votes: np.ndarray | None,
                     weight_ferplus: float = 0.5) -> pd.DataFrame:
    """:func:`rank_label_issues` of a predictions table (``fer.explorer.PREDICTION_COLUMNS``),
    with the FER+ votes of all FER2013 rows (``None``: the model alone).
    """
    rows = table["row"].to_numpy(np.int64)
    return rank_label_issues(
        table["true"].to_numpy(np.int64), table[list(PROB_COLUMNS)].to_numpy(np.float64),
        None if ferplus_votes is None else ferplus_votes[rows], weight_ferplus,
        rows=rows, usage=table["split"].to_numpy(str),
    )


def issues_table(
    issues: pd.DataFrame,
    predicted: np.ndarray,
    annotations: Mapping[int, tuple[str, str | None, str, str]],
    twins: Mapping[int, tuple[int, int, float]] | None = None,
) -> pd.DataFrame:
    """Ranked faces as a table to export, in their order: rank, FER2013 row, split, given,
    suggested and predicted labels, the score and its parts, the flag, the FER+ majority, the
    face's current annotation and, with ``twins``, its Training copy.

    Args:
        issues: rows of a :func:`rank_label_issues` table (filtered, still in ranking order).
        predicted: int array (len(issues),), the model's most probable class for each face.
        annotations: row -> ``(action, label, annotator, note)`` of the annotated faces
            (:func:`fer.explorer.current_annotation_map`); other faces get empty cells.
        twins: test row -> ``(Training row, its label, similarity)`` of the faces with a
            Training copy, or ``None`` to leave the copy's columns out.

    Returns:
        A DataFrame whose ``rank`` counts from 1 down the given table, the annotation columns
        from :func:`fer.explorer.annotation_columns` (free text guarded against formulas).

    Raises:
        ValueError: if ``predicted`` does not have one entry per face.
    """
    from fer.explorer import annotation_columns

    rows = issues["row"].to_numpy(np.int64)
    predicted = _aligned(predicted, len(rows), "predicted").astype(np.int64)
    table = pd.DataFrame({
        "rank": np.arange(1, len(rows) + 1, dtype=np.int64),
        "row": rows,
        "split": issues["split"].to_numpy(str),
        "given": _names(issues["given"]),
        "suggested": _names(issues["suggested"]),
        "predicted": _names(predicted),
        "score": issues["score"].to_numpy(np.float64).round(6),
        "margin_suspicion": issues["margin_suspicion"].to_numpy(np.float64).round(6),
        "ferplus_disagreement": issues["ferplus_disagreement"].to_numpy(np.float64).round(6),
        "self_confidence": issues["self_confidence"].to_numpy(np.float64).round(6),
        "flagged": issues["is_issue"].to_numpy(bool),
        "ferplus_majority": _names(issues["ferplus_majority"]),
    })
    table = pd.concat([table, annotation_columns(rows, annotations)], axis=1)
    if twins is not None:
        copies = [twins.get(int(r)) for r in rows]
        table["twin_row"] = pd.array([c[0] if c else None for c in copies], dtype="Int64")
        table["twin_label"] = _names([c[1] if c else -1 for c in copies])
        table["twin_similarity"] = [round(c[2], 4) if c else np.nan for c in copies]
    return table


def _names(codes) -> list[str]:
    """:func:`fer.annotations.name_or_empty` of each class code, as the annotation export writes them."""
    from fer.annotations import name_or_empty

    return [name_or_empty(c) for c in np.asarray(codes, dtype=np.int64).tolist()]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fer.label_issues --model M``: the test faces whose label is most likely wrong."""
    import argparse
    import sys

    from fer.cli import at_least

    parser = argparse.ArgumentParser(prog="python -m fer.label_issues", description=main.__doc__)
    parser.add_argument("--model", required=True, help="a released model with stored test predictions")
    parser.add_argument("--tta", action="store_true", help="rank from the flip-TTA predictions")
    parser.add_argument("--ferplus-weight", type=float, default=0.5,
                        help="weight of the FER+ crowd's disagreement in the score (0: the model alone)")
    parser.add_argument("--split", choices=("PublicTest", "PrivateTest"), help="one test split only")
    parser.add_argument("--flagged", action="store_true", help="only faces confident learning flags")
    parser.add_argument("--top", type=at_least(0), default=20, help="faces printed (default 20)")
    parser.add_argument("--csv", type=Path, help="write every ranked face here")
    args = parser.parse_args(argv)
    if not 0.0 <= args.ferplus_weight <= 1.0:
        parser.error(f"--ferplus-weight must be within [0, 1], not {args.ferplus_weight}")
    try:
        issues = model_issues(args.model, args.ferplus_weight, args.tta)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    chosen = filter_issues(issues, split=args.split, only_flagged=args.flagged)
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        chosen.to_csv(args.csv, index=False)
        print(f"wrote {len(chosen)} ranked faces to {args.csv}", file=sys.stderr)
    print(f"{len(chosen)} faces, {int(chosen['is_issue'].sum())} flagged; most suspicious first:")
    for item in chosen.head(args.top).itertuples():
        crowd = "" if np.isnan(item.ferplus_disagreement) else f", FER+ disagrees {item.ferplus_disagreement:.0%}"
        print(f"  row {item.row} ({item.split}): labelled {EMOTIONS[item.given]}, suggested "
              f"{EMOTIONS[item.suggested]}, score {item.score:.3f}{' (flagged)' if item.is_issue else ''}{crowd}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
