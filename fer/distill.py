"""Soft targets for knowledge distillation: ``python -m fer.distill``.

``python -m fer.distill --teacher runs/a/model.h5 --teacher runs/b/model.h5 --out runs/teacher.npz``

Averages the teachers' flip-TTA probabilities on every Training face, softens them with a
temperature, and stores them by CSV row. ``python -m fer.train --soft-targets runs/teacher.npz
--soft-weight W`` then trains on ``(1 - W) * one-hot label + W * teacher``: the teachers' "dark
knowledge" (which wrong classes a face resembles) and a partial vote against FER2013's noisy
labels, computed once here instead of running the teachers in every training step.

``python -m fer.distill --ferplus --out runs/ferplus.npz`` stores human teachers instead: the
FER+ crowd's vote shares over the seven emotions for every Training face (ten annotators each;
a face with no emotion vote keeps its FER2013 label).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer.labels import NUM_CLASSES, one_hot

if TYPE_CHECKING:
    from fer.data import FerDataset

FERPLUS_TEACHER = "FER+ crowd votes"


def from_crowd(distillation: dict) -> bool:
    """Whether a card's ``distillation`` record is of FER+ crowd votes (``fer.distill --ferplus``)."""
    return distillation.get("teachers") == [FERPLUS_TEACHER]


def describe_teachers(distillation: dict) -> str:
    """Says in words what a distilled run learnt from, given its card's ``distillation`` record."""
    teachers = distillation.get("teachers") or []
    if from_crowd(distillation):
        return ("the FER+ crowd's vote shares over the seven emotions, ten annotators per face "
                "(`python -m fer.distill --ferplus`)")
    return (f"the averaged flip-TTA probabilities of {', '.join(teachers) or '?'} at temperature "
            f"{distillation.get('temperature') or '?'} (`python -m fer.distill`)")


def describe_targets(distillation: dict) -> str:
    """Says in words what targets a distilled run trained on: the blend, or the teacher alone."""
    weight = distillation.get("weight")
    teachers = describe_teachers(distillation)
    if weight is None:
        return f"the FER2013 label blended with {teachers}"
    if weight >= 1.0:
        return f"{teachers} alone (the FER2013 label had no weight)"
    return f"{1 - weight:.2f} × the FER2013 label + {weight:.2f} × {teachers}"


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Returns ``softmax(log(p) / T)`` row-wise: T > 1 flattens, T < 1 sharpens.

    Args:
        probabilities: (N, C) rows of probabilities.
        temperature: the distillation temperature (> 0).

    Raises:
        ValueError: a temperature that is not positive.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def blend_targets(labels: np.ndarray, soft: np.ndarray, weight: float) -> np.ndarray:
    """Returns float32 ``(1 - weight) * one_hot(labels) + weight * soft`` (rows sum to 1).

    Raises:
        ValueError: a weight outside [0, 1] or shapes that do not match.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"soft-target weight must be in [0, 1], not {weight}")
    if soft.shape != (len(labels), NUM_CLASSES):
        raise ValueError(f"soft targets of shape {soft.shape} for {len(labels)} labels")
    return ((1.0 - weight) * one_hot(labels) + weight * soft).astype(np.float32)


def teacher_cards(model_paths: list[Path]) -> dict[Path, dict]:
    """Reads every teacher's card, so that a bad teacher fails before any teacher runs.

    Raises:
        FileNotFoundError: a teacher without its model file or card.
        ValueError: a landmark-input teacher (it would need landmarks for every face).
    """
    from fer.metadata import metadata_path, read_metadata

    cards = {}
    for path in model_paths:
        if not path.is_file() or not metadata_path(path).is_file():
            raise FileNotFoundError(f"{path}: no model with a card (model .h5 and .json) there")
        cards[path] = read_metadata(path)
        if cards[path].get("preprocessing", {}).get("landmarks"):
            raise ValueError(f"{path}: landmark-input teachers are not supported")
    return cards


def teacher_probabilities(cards: dict[Path, dict], faces: np.ndarray) -> np.ndarray:
    """Averages the teachers' flip-TTA probabilities on uint8 faces (N, 48, 48).

    Args:
        cards: :func:`teacher_cards` of the teachers; each brings its own illumination correction.
        faces: uint8 faces.

    Raises:
        fer.models.ModelFileError: a teacher file that is not a saved Keras model (a ``ValueError``).
    """
    from fer.evaluate import predict_probabilities
    from fer.models import load_saved_model

    total = np.zeros((len(faces), NUM_CLASSES))
    for path, card in cards.items():
        model = load_saved_model(path)
        illumination = card.get("preprocessing", {}).get("illumination", "none")
        total += predict_probabilities(model, faces, illumination, tta=True, batch_size=512)
    return total / len(cards)


def ferplus_training_targets(dataset: FerDataset, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Returns :func:`ferplus_targets` of the Training faces at CSV ``rows`` of ``dataset``.

    Raises:
        ValueError: a dataset that is not the canonical FER2013 CSV (FER+ rows follow its order).
    """
    from fer.data import fer2013_rows_problem
    from fer.ferplus import emotion_distribution, load_ferplus_votes

    problem = fer2013_rows_problem(dataset)
    if problem:
        raise ValueError(f"FER+ votes follow the rows of the FER2013 CSV: {problem}")
    return ferplus_targets(emotion_distribution(load_ferplus_votes().votes[rows]), labels)


def load_soft_targets(path: str | Path, rows: np.ndarray, data_sha256: str = "") -> np.ndarray:
    """Returns the stored soft targets of CSV ``rows``, in that order.

    Args:
        path: an ``.npz`` from :func:`main`.
        rows: CSV rows of the training faces.
        data_sha256: the training data's checksum; when both it and the file's are known they
            must agree, since rows only line up within one dataset.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a soft-target file, or targets of another dataset.
        KeyError: a row the file has no target for.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"soft targets not found: {path}")
    try:
        with np.load(path) as archive:
            stored_rows, stored = archive["rows"], archive["targets"]
            source = str(archive["source_sha256"]) if "source_sha256" in archive else ""
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path} is not a soft-target file from python -m fer.distill ({err})") from err
    if source and data_sha256 and source != data_sha256:
        raise ValueError(f"{path} was made from another dataset (SHA-256 {source[:12]}…, "
                         f"training data {data_sha256[:12]}…)")
    index = {int(row): i for i, row in enumerate(stored_rows)}
    missing = [int(row) for row in rows if int(row) not in index]
    if missing:
        raise KeyError(f"{path} has no soft target for {len(missing)} rows (first: CSV row {missing[0]})")
    return stored[[index[int(row)] for row in rows]].astype(np.float32)


def describe_soft_targets(path: str | Path) -> dict:
    """Returns what a soft-target file records of its making (teachers, temperature, command)."""
    with np.load(path) as archive:
        return {
            "targets": str(path),
            "teachers": [str(t) for t in archive["teachers"]] if "teachers" in archive else [],
            "temperature": float(archive["temperature"]) if "temperature" in archive else None,
            "command": str(archive["command"]) if "command" in archive else "",
        }


def ferplus_targets(emotion_shares: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Returns float32 FER+ vote shares as targets, the one-hot label where no emotion got a vote.

    Args:
        emotion_shares: (N, 7) rows from :func:`fer.ferplus.emotion_distribution` (all zeros
            for a face the crowd gave no emotion vote, such as not-a-face).
        labels: the FER2013 codes of the same faces (N,).

    Raises:
        ValueError: shapes that do not match.
    """
    if emotion_shares.shape != (len(labels), NUM_CLASSES):
        raise ValueError(f"vote shares of shape {emotion_shares.shape} for {len(labels)} labels")
    voted = emotion_shares.sum(axis=1, keepdims=True) > 0
    return np.where(voted, emotion_shares, one_hot(labels)).astype(np.float32)


def npz_path(path: Path) -> Path:
    """The file ``numpy.savez`` writes for ``path``: ``.npz`` is appended unless the name ends in it."""
    return path if path.name.endswith(".npz") else path.with_name(f"{path.name}.npz")


def recorded_command(argv: list[str], out: Path) -> str:
    """The command line to record, with ``--out``'s value as the file written (``.npz`` included)."""
    words, given = [], iter(argv)
    for word in given:
        option, equals, _ = word.partition("=")
        is_out = len(option) > 2 and "--out".startswith(option)  # argparse takes "--ou" for "--out"
        if is_out and equals:
            word = f"{option}={out}"
        words.append(word)
        if is_out and not equals:
            words.append(str(out))
            next(given, None)
    return "python -m fer.distill " + " ".join(shlex.quote(w) for w in words)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: 0 when the targets were written, 2 on an error (nothing written)."""
    parser = argparse.ArgumentParser(prog="python -m fer.distill", description=__doc__.splitlines()[0])
    teachers = parser.add_mutually_exclusive_group(required=True)
    teachers.add_argument("--teacher", action="append", type=Path, help="a teacher .h5 (repeat)")
    teachers.add_argument("--ferplus", action="store_true", help="the FER+ crowd votes as the teacher")
    parser.add_argument("--out", required=True, type=Path,
                        help="output .npz (the suffix is added when missing, as numpy does)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--data", default=None, help="FER2013 CSV or image folder (default: the shared CSV)")
    args = parser.parse_args(argv)
    if args.temperature <= 0:
        parser.error(f"--temperature must be positive, not {args.temperature}")

    from fer.data import load_fer2013
    from fer.paths import FER2013_CSV

    try:
        cards = {} if args.ferplus else teacher_cards(args.teacher)
        dataset = load_fer2013(args.data or FER2013_CSV)
        faces, labels, rows = dataset.split("Training")
        if args.ferplus:
            probabilities = ferplus_training_targets(dataset, labels, rows)
        else:
            probabilities = teacher_probabilities(cards, faces)
        targets = soften(probabilities, args.temperature)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = npz_path(args.out)  # numpy would append .npz itself, behind the message's and the command's back
    out.parent.mkdir(parents=True, exist_ok=True)
    command = recorded_command(list(sys.argv[1:] if argv is None else argv), out)
    np.savez_compressed(out, rows=rows, targets=targets.astype(np.float32), source_sha256=dataset.checksum,
                        teachers=np.array([FERPLUS_TEACHER] if args.ferplus else [str(p) for p in args.teacher]),
                        temperature=args.temperature, command=command)
    agreement = float((probabilities.argmax(1) == labels).mean())
    print(f"wrote {out}: {len(rows)} faces, teachers agree with the label on {agreement:.2%}, "
          f"mean top target {targets.max(1).mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
