"""How a model's accuracy falls with a face's resolution, and how many pixels a photo's face has.

FER2013's faces are 48x48. A face in a photo is aligned to 48x48 from however many pixels it
has: a face of ~25 px in a group photo is enlarged about twice, and the model sees a blur it
was not trained on. To measure what that costs, every test face is shrunk to ``size`` px and
enlarged back (area averaging down, bilinear up, as the alignment's warp enlarges), and the
model classifies the result:

``python -m fer.resolution --model models/fer_best.h5 [--tta] [--update-card]``

prints the accuracy at each size on PublicTest and PrivateTest (``--reference ferplus``: against
the FER+ crowd's majority labels, for ``fer_plus``) and, with ``--update-card``,
stores it in the card (``resolution_accuracy``), where the Predict page reads it to caution
under a small face (:func:`resolution_caution`, from the validation split only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from fer.align import alignment_matrix
from fer.cli import argument_parser, command_line, quiet_tensorflow
from fer.labels import EVAL_SPLITS, FACE_SIZE

# Sizes measured, px a side (48: the faces as they are).
RESOLUTIONS: tuple[int, ...] = (48, 40, 32, 28, 24, 20, 16)


def reduce_resolution(gray_faces: np.ndarray, size: int) -> np.ndarray:
    """Faces (N, H, W) uint8 shrunk to ``size`` px a side and enlarged back to their own size."""
    import cv2

    height, width = gray_faces.shape[1:3]
    if size >= min(height, width):
        return gray_faces
    return np.stack([
        cv2.resize(cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA), (width, height),
                   interpolation=cv2.INTER_LINEAR)
        for face in gray_faces
    ])


def face_resolution(landmarks: np.ndarray, size: int = FACE_SIZE) -> float:
    """How many of the photo's pixels span the aligned face's ``size``: ``size`` over the
    alignment's scale (:func:`fer.align.alignment_matrix`). Under ``size``, the face was enlarged.

    Args:
        landmarks: (68, 2) in the pixels the face was aligned from.
        size: the aligned face's side.
    """
    matrix = alignment_matrix(np.asarray(landmarks, np.float64), size)
    return size / max(float(np.sqrt(abs(np.linalg.det(matrix[:, :2])))), 1e-9)


def accuracy_by_resolution(model, gray_faces: np.ndarray, labels: np.ndarray, illumination: str,
                           tta: bool, sizes: tuple[int, ...] = RESOLUTIONS) -> list[dict[str, float]]:
    """The model's accuracy on the faces reduced to each size (:func:`reduce_resolution`).

    Returns:
        ``[{"size": px, "accuracy": share}, ...]`` in the order of ``sizes``.
    """
    from fer.evaluate import predict_probabilities

    rows = []
    for size in sizes:
        probabilities = predict_probabilities(model, reduce_resolution(gray_faces, size), illumination, tta)
        rows.append({"size": int(size), "accuracy": round(float((probabilities.argmax(axis=1) == labels).mean()), 4)})
    return rows


def resolution_caution(resolution: float, report: dict | None, split: str = "PublicTest",
                       min_drop: float = 0.05) -> str | None:
    """A warning for a face with as few pixels as the test faces its model is measurably worse on.

    The face is compared with the largest measured size at or under its own (so the figure
    quoted is never kinder than the face's), against the faces as they are.

    Args:
        resolution: the face's pixels a side (:func:`face_resolution`).
        report: a model card's ``resolution_accuracy``, or None.
        split: the split whose table is read (the validation split by default).
        min_drop: warn when that size is at least this much less accurate than full size.

    Returns:
        One sentence naming both accuracies, or None (no table, or no measurable drop).
    """
    rows = sorted((report or {}).get(split) or [], key=lambda row: -row["size"])
    if not rows:
        return None
    full = rows[0]
    here = next((row for row in rows if row["size"] <= resolution), rows[-1])
    if here is full or full["accuracy"] - here["accuracy"] < min_drop:
        return None
    views = " with flip TTA" if report.get("tta") else ""
    crowd = " by the FER+ crowd's labels" if report.get("reference") == "ferplus" else ""
    return (f"Small face ({resolution:.0f} px across, enlarged to {full['size']}): on {split} faces reduced to "
            f"{here['size']} px this model is right{views} {here['accuracy']:.0%} of the time{crowd}, against "
            f"{full['accuracy']:.0%} as they are.")


def main(argv: list[str] | None = None) -> int:
    """CLI: the accuracy table of one model, printed and optionally stored in its card."""
    parser = argument_parser("python -m fer.resolution", "A model's test accuracy on faces of fewer pixels.")
    parser.add_argument("--model", required=True, type=Path, help="model .h5 with its .json card beside it")
    parser.add_argument("--data", help="FER2013 CSV (default: the embedded test faces' source)")
    parser.add_argument("--tta", action="store_true", help="average each face with its mirror image")
    parser.add_argument("--reference", choices=("fer2013", "ferplus"), default="fer2013",
                        help="labels to score against: FER2013's, or the FER+ crowd's majority (faces with "
                             "emotion votes only; for models trained on FER+)")
    parser.add_argument("--update-card", action="store_true", help="write the table into the model's card")
    args = parser.parse_args(argv)
    quiet_tensorflow()

    from fer.data import fer2013_rows_problem, require_splits
    from fer.metadata import model_info, read_metadata, write_metadata
    from fer.models import load_saved_model
    from fer.testset import load_eval_dataset

    splits = EVAL_SPLITS
    try:
        model = load_saved_model(args.model)
        info = model_info(args.model)
        dataset = load_eval_dataset(args.data)
        require_splits(dataset, splits)
        problem = fer2013_rows_problem(dataset)
        if args.reference == "ferplus" and problem:
            raise ValueError(f"--reference ferplus looks the FER+ votes up by FER2013 row, and {problem}")
        if args.update_card and problem:
            raise ValueError(f"--update-card records the FER2013 test splits' table, and {problem}")
        majority = None
        if args.reference == "ferplus":
            from fer.ferplus import load_ferplus_votes, majority_label

            majority = majority_label(load_ferplus_votes().votes)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if len(model.inputs) != 1:
        parser.error(f"{args.model} takes {len(model.inputs)} inputs; only face-only models are measured")
    command = command_line("fer.resolution", argv)
    report: dict[str, object] = {"tta": bool(args.tta), "reference": args.reference, "command": command}
    for split in splits:
        faces, labels, rows = dataset.split(split)
        if majority is not None:
            labels = majority[rows]
            faces, labels = faces[labels >= 0], labels[labels >= 0]  # no emotion voted: no label
        report[split] = accuracy_by_resolution(model, faces, labels, info.illumination, args.tta)
    print(json.dumps(report, indent=2))
    if args.update_card:
        card = read_metadata(args.model)
        card["resolution_accuracy"] = report
        write_metadata(args.model, card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
