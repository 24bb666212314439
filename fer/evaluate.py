"""Evaluate a model on PublicTest and PrivateTest: ``python -m fer.evaluate --model PATH``.

Prints accuracy, macro-F1, per-class accuracy and the confusion matrix (rows true, columns
predicted) per split, and writes per-image predictions beside the model
(``<model>.predictions.csv``: row, split, true, predicted, the 7 probabilities). ``--json``
prints the metrics as one JSON object keyed by split, with the same metrics against the FER+
crowd's majority labels (``metrics_ferplus``) and on the faces without a Training copy
(``metrics_no_twin``) where the faces are FER2013's; ``--reference ferplus`` prints the per-class
tables against the FER+ labels.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fer.cli import argument_parser, quiet_tensorflow
from fer.labels import EVAL_SPLITS, PROB_COLUMNS
from fer.metrics import compute_metrics, format_confusion
from fer.preprocess import to_model_input

__all__ = ["PROB_COLUMNS", "Evaluation", "evaluate_model", "predict_probabilities", "predictions_path", "summarise"]


@dataclass(frozen=True)
class Evaluation:
    """Per-image predictions and per-split metrics of one model.

    Attributes:
        predictions: one row per face (``row``, ``split``, ``true``, ``pred``, probabilities).
        metrics: per split.
        metrics_ferplus: against the FER+ majority labels (None where rows are not FER2013's).
        metrics_no_twin: on the faces without a Training twin (None likewise).
        rows_problem: why the ``row`` column holds no FER2013 row numbers ('' when it does):
            such predictions must not be saved where twins, pose or compare would read them.
    """

    predictions: pd.DataFrame
    metrics: dict[str, dict]
    metrics_ferplus: dict[str, dict] | None = None
    metrics_no_twin: dict[str, dict] | None = None
    rows_problem: str = ""

    @property
    def aligned(self) -> bool:
        """Whether the predictions' rows are FER2013 row numbers."""
        return not self.rows_problem


# Shifted views for test-time augmentation: the four 2-pixel moves, matching the training shifts.
TTA_SHIFTS: tuple[tuple[int, int], ...] = ((-2, 0), (2, 0), (0, -2), (0, 2))


def views_suffix(tta: bool, shifts: bool) -> str:
    """Names the test-time views in file names and card keys: '', '_tta' or '_tta_shifts'."""
    return "_tta_shifts" if shifts else "_tta" if tta else ""


# The test-time views a model is evaluated with, as ``(tta, shifts)``: plain, flip, 10 views.
VIEWS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (True, True))


def predictions_path(model_path: str | Path, tta: bool = False, shifts: bool = False) -> Path:
    """Returns where per-image predictions of a model are stored."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.predictions{views_suffix(tta, shifts)}.csv")


def stored_predictions_path(model_path: str | Path, tta: bool = False) -> Path:
    """Where a model's stored plain or flip-TTA predictions are, when they exist.

    Raises:
        FileNotFoundError: they do not (the message gives the command that writes them).
    """
    path = predictions_path(model_path, tta)
    if not path.is_file():
        flag = " --tta" if tta else ""
        raise FileNotFoundError(f"no {'flip-TTA ' if tta else ''}predictions for {Path(model_path).name}: run "
                                f"`python -m fer.evaluate --model {model_path}{flag}`")
    return path


def shifted(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Moves (N, H, W, C) faces by (dy, dx) pixels, repeating the border pixels."""
    pad = max(abs(dy), abs(dx))
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    h, w = x.shape[1:3]
    return padded[:, pad - dy: pad - dy + h, pad - dx: pad - dx + w]


def predict_probabilities(model, gray_faces: np.ndarray, illumination: str = "none", tta: bool = False,
                          landmarks: np.ndarray | None = None, batch_size: int = 256,
                          shifts: bool = False) -> np.ndarray:
    """Returns (N, 7) probabilities for uint8 faces (N, 48, 48), optionally view-averaged.

    Args:
        model: a loaded Keras model.
        gray_faces: uint8 faces.
        illumination: the model's illumination correction (from its metadata).
        tta: average with the horizontally flipped faces.
        landmarks: (N, 136) landmark features for landmark models.
        batch_size: inference batch size.
        shifts: also average the four 2-pixel shifts of the face and of its mirror (10 views;
            implies ``tta``). Only for evaluation: it costs 10 forward passes per face.
    """
    x = to_model_input(gray_faces, illumination)
    tta = tta or shifts

    def run(images: np.ndarray) -> np.ndarray:
        inputs = images if landmarks is None else {"face": images, "landmarks": landmarks}
        return np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0), dtype=np.float64)

    probabilities = run(x)
    if tta:
        # A mirrored face keeps its expression, so the flip is a free second opinion. Landmark
        # models would need mirrored points too, so they skip it.
        if landmarks is None:
            views = [x[:, :, ::-1, :]]
            if shifts:
                moved = [shifted(x, dy, dx) for dy, dx in TTA_SHIFTS]
                views += moved + [view[:, :, ::-1, :] for view in moved]
            probabilities = (probabilities + sum(run(view) for view in views)) / (1 + len(views))
    return probabilities


def evaluate_model(model_path: str | Path, data: str | None = None, tta: bool = False,
                   splits: tuple[str, ...] = EVAL_SPLITS, shifts: bool = False) -> Evaluation:
    """Evaluates a saved model on the evaluation splits.

    Args:
        model_path: the ``.h5`` model (its metadata JSON beside it gives the pre-processing).
        data: FER2013 CSV or image folder; default: the shared CSV, else the embedded faces.
        tta: flip test-time augmentation.
        splits: splits to evaluate (each once, whatever the repeats).
        shifts: add the shifted views to the flip (see :func:`predict_probabilities`).

    Raises:
        FileNotFoundError: no model, card or data.
        ValueError: a file that is not a model (:class:`fer.models.ModelFileError`), malformed
            data, or data without faces in one of ``splits`` (before the model runs).
    """
    from fer.data import fer2013_rows_problem, require_splits
    from fer.landmark_features import model_landmark_features
    from fer.metadata import model_info
    from fer.models import ModelFileError, load_saved_model
    from fer.testset import load_eval_dataset

    splits = tuple(dict.fromkeys(splits))
    if not Path(model_path).is_file():  # before its card, whose absence would be the lesser news
        raise ModelFileError(f"model not found: {model_path}")
    info = model_info(model_path)
    dataset = load_eval_dataset(data)
    require_splits(dataset, splits)
    model = load_saved_model(model_path)
    frames = []
    for split in splits:
        images, labels, rows = dataset.split(split)
        probs = predict_probabilities(
            model, images, info.illumination, tta=tta, shifts=shifts,
            landmarks=model_landmark_features(images) if info.landmarks else None,
        )
        frame = pd.DataFrame({"row": rows, "split": split, "true": labels, "pred": probs.argmax(axis=1)})
        for j, column in enumerate(PROB_COLUMNS):
            frame[column] = probs[:, j].round(6)
        frames.append(frame)
    # A subset CSV or an image folder numbers its own faces: FER+ votes and twins would be
    # looked up at the wrong faces.
    problem = fer2013_rows_problem(dataset) or ""
    return summarise(pd.concat(frames, ignore_index=True), rows_problem=problem)


def summarise(predictions: pd.DataFrame, rows_problem: str = "") -> Evaluation:
    """Per-split metrics of a per-image prediction table (and FER+ and no-twin metrics when its
    rows are FER2013 row numbers).

    Args:
        predictions: per-image table.
        rows_problem: why its ``row`` column does not hold FER2013 row numbers ("" when it does).
    """
    metrics = {
        str(split): compute_metrics(frame["true"].to_numpy(), frame["pred"].to_numpy()).as_dict()
        for split, frame in predictions.groupby("split", sort=False)
    }
    aligned = not rows_problem
    return Evaluation(predictions=predictions, metrics=metrics,
                      metrics_ferplus=ferplus_metrics(predictions) if aligned else None,
                      metrics_no_twin=no_twin_metrics(predictions) if aligned else None,
                      rows_problem=rows_problem)


def ferplus_metrics(predictions: pd.DataFrame) -> dict[str, dict] | None:
    """Metrics of the same predictions against the FER+ crowd's majority label per face.

    Faces where no FER+ annotator voted for one of the 7 emotions (not-a-face, unknown) are
    left out; ``n`` says how many remain. ``None`` when the embedded FER+ table is missing.
    """
    from fer.ferplus import load_ferplus_votes, majority_label

    try:
        votes = load_ferplus_votes()
    except FileNotFoundError:
        return None
    majority = majority_label(votes.votes)
    out = {}
    for split, frame in predictions.groupby("split", sort=False):
        reference = majority[frame["row"].to_numpy()]
        out[str(split)] = compute_metrics(reference, frame["pred"].to_numpy()).as_dict()
    return out


def no_twin_metrics(predictions: pd.DataFrame, twins_path: Path | None = None) -> dict[str, dict] | None:
    """Metrics per split on the faces without a near-duplicate in Training (``fer.twins``), by
    the twins table at ``twins_path`` (default: the embedded one).

    ``None`` when the embedded twins table is missing, malformed or does not cover the predicted
    rows: an evaluation is never lost to it.
    """
    from fer.paths import TEST_TWINS_PATH
    from fer.twins import TWIN_THRESHOLD, accuracy_by_twin, load_twins

    try:
        parts = accuracy_by_twin(predictions, load_twins(twins_path or TEST_TWINS_PATH), TWIN_THRESHOLD)
    except (FileNotFoundError, ValueError, KeyError):
        return None
    return {split: by_twin["no_twin"] for split, by_twin in parts.items()}


def format_report(metrics: dict[str, dict]) -> str:
    """Renders the per-split metrics as text tables."""
    out = []
    for split, m in metrics.items():
        out.append(f"== {split} (n={m['n']}) accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
        out.append("per-class accuracy: " + "  ".join(f"{e} {v:.4f}" for e, v in m["per_class_accuracy"].items()))
        out.append(format_confusion(np.array(m["confusion_matrix"])))
        out.append("")
    return "\n".join(out)


def evaluation_json(evaluation: Evaluation) -> dict[str, dict]:
    """The metrics as ``--json`` prints them: keyed by split, plus ``metrics_ferplus`` and
    ``metrics_no_twin`` (keyed by split, named as in the card) where they were computed.
    """
    out = dict(evaluation.metrics)
    if evaluation.metrics_ferplus is not None:
        out["metrics_ferplus"] = evaluation.metrics_ferplus
    if evaluation.metrics_no_twin is not None:
        out["metrics_no_twin"] = evaluation.metrics_no_twin
    return out


def accuracy_line(title: str, metrics: dict[str, dict]) -> str:
    """One line of each split's accuracy and face count, after ``title``."""
    return f"{title}: " + "  ".join(f"{split} {m['accuracy']:.4f} (n={m['n']})" for split, m in metrics.items())


def print_evaluation(evaluation: Evaluation, as_json: bool = False, reference: str = "fer2013") -> None:
    """Prints the metrics as one JSON object (:func:`evaluation_json`), or as text tables against
    the ``reference`` labels (``fer2013``, or ``ferplus``: the FER+ crowd's majority) with one line
    of accuracy against the other labels and one on the faces without a Training copy.
    """
    if as_json:
        print(json.dumps(evaluation_json(evaluation)))
        return
    if reference == "ferplus" and evaluation.metrics_ferplus:
        print("Against FER+ majority labels (faces with a vote for an emotion):")
        print(format_report(evaluation.metrics_ferplus))
        print(accuracy_line("Against FER2013 labels", evaluation.metrics))
    else:
        print(format_report(evaluation.metrics))
        if evaluation.metrics_ferplus:
            print(accuracy_line("Against FER+ majority labels", evaluation.metrics_ferplus))
    if evaluation.metrics_no_twin:
        print(accuracy_line("Without a near-duplicate in Training (fer.twins)", evaluation.metrics_no_twin))


def update_card(model_path: str | Path, evaluation: Evaluation, tta: bool, shifts: bool = False) -> None:
    """Writes the metrics into the model's metadata JSON (``metrics``, ``metrics_tta`` or
    ``metrics_tta_shifts``).
    """
    from fer.metadata import read_metadata, write_metadata

    card = read_metadata(model_path)
    suffix = views_suffix(tta, shifts)
    card["metrics" + suffix] = evaluation.metrics
    if evaluation.metrics_ferplus is not None:
        card["metrics_ferplus" + suffix] = evaluation.metrics_ferplus
    if evaluation.metrics_no_twin is not None:
        card["metrics_no_twin" + suffix] = evaluation.metrics_no_twin
    write_metadata(model_path, card)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argument_parser("python -m fer.evaluate", __doc__)
    parser.add_argument("--model", required=True, help="model .h5 with its .json metadata beside it")
    parser.add_argument("--data", default=None, help="FER2013 CSV or image folder (default: shared CSV, else embedded)")
    parser.add_argument("--tta", action="store_true", help="average with horizontally flipped faces")
    parser.add_argument("--tta-shifts", action="store_true",
                        help="average 10 views: the face, four 2-pixel shifts, and their mirrors")
    parser.add_argument("--json", action="store_true",
                        help="print metrics as one JSON object keyed by split, with metrics_ferplus and "
                             "metrics_no_twin (keyed by split too) where the faces are FER2013's")
    parser.add_argument("--reference", choices=("fer2013", "ferplus"), default="fer2013",
                        help="labels the per-class tables are scored against: FER2013's, or the FER+ crowd's "
                             "majority (faces with a vote for an emotion)")
    parser.add_argument("--update-card", action="store_true", help="write the metrics into the model's JSON card")
    parser.add_argument("--no-save", action="store_true", help="do not write the predictions CSV")
    parser.add_argument("--split", action="append", choices=EVAL_SPLITS,
                        help="evaluate only this split (repeatable; default: both). `--split PublicTest` compares "
                             "candidates without reading the test split")
    args = parser.parse_args(argv)
    if args.json and args.reference == "ferplus":
        parser.error("--json holds the FER+ metrics already (metrics_ferplus); --reference is for the text tables")
    splits = tuple(dict.fromkeys(args.split)) if args.split else EVAL_SPLITS
    if set(splits) != set(EVAL_SPLITS) and (args.update_card or not args.no_save):
        parser.error("--split evaluates part of the test data: use it with --no-save and without --update-card, "
                     "so cards and predictions tables always cover both splits")
    quiet_tensorflow()
    if not Path(args.model).is_file():
        print(f"error: model not found: {args.model}", file=sys.stderr)
        return 2
    try:
        evaluation = evaluate_model(args.model, args.data, tta=args.tta, splits=splits, shifts=args.tta_shifts)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.reference == "ferplus" and evaluation.metrics_ferplus is None:
        why = evaluation.rows_problem or "the embedded FER+ votes table is missing"
        print(f"error: --reference ferplus looks the FER+ votes up by FER2013 row, and {why}", file=sys.stderr)
        return 2
    if not evaluation.aligned:
        # Twins, pose and compare look faces up by FER2013 row: never save other numbers for them.
        print(f"note: {evaluation.rows_problem}; no FER+ or near-duplicate metrics"
              + ("" if args.no_save else ", predictions not saved"), file=sys.stderr)
    elif not args.no_save:
        evaluation.predictions.to_csv(predictions_path(args.model, args.tta, args.tta_shifts), index=False)
    if args.update_card and not evaluation.aligned:
        print_evaluation(evaluation, as_json=args.json)
        print("error: --update-card records the FER2013 test splits' metrics; these faces are not them",
              file=sys.stderr)
        return 2
    if args.update_card:
        update_card(args.model, evaluation, args.tta, args.tta_shifts)
    print_evaluation(evaluation, as_json=args.json, reference=args.reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
