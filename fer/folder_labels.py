"""Photos labelled by their folders, scored end to end: ``python -m fer.predict -r DIR --folder-labels``.

Expression datasets of whole photos (CK+, JAFFE, KDEF, RAF-DB, one's own) are often laid out as
one folder per emotion: ``DIR/happy/a.jpg``, ``DIR/s01/sad/b.png``. Each photo's label is the
nearest folder above it whose name is an emotion (:data:`FOLDER_NAMES`: FER2013's names and the
usual variants, "happiness", "anger", "surprised", ...); the photo's prediction is its largest
face's label, so detection, alignment and classification are scored together, as a user meets
them. Photos under no emotion folder (or under one FER2013 lacks, such as CK+'s "contempt") are
counted as unlabelled; labelled photos where no face was found are counted apart, and also as
errors in a second accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.labels import EMOTIONS, NUM_CLASSES
from fer.metrics import Metrics, confusion_matrix, format_confusion

# Folder names (lower case) -> FER2013 class code.
FOLDER_NAMES: dict[str, int] = {
    **{name: code for code, name in enumerate(EMOTIONS)},
    "anger": 0, "disgusted": 1, "fearful": 2, "afraid": 2, "scared": 2, "happiness": 3, "joy": 3,
    "sadness": 4, "surprised": 5, "neutrality": 6,
}


def folder_label(path: Path, root: Path) -> int | None:
    """The class named by the nearest folder above ``path``, up to ``root`` itself.

    Returns:
        The class code, or ``None`` when no folder on the way names an emotion.
    """
    folders = [*Path(path).relative_to(root).parent.parts[::-1], Path(root).resolve().name]
    for name in folders:
        code = FOLDER_NAMES.get(name.lower())
        if code is not None:
            return code
    return None


def largest_face(faces: Sequence[dict]) -> dict | None:
    """The face (``FaceResult.to_dict()`` form) with the largest box, or ``None`` without faces."""
    return max(faces, key=lambda f: f["box"][2] * f["box"][3], default=None)


@dataclass(frozen=True)
class FolderScore:
    """How a model did on folder-labelled photos.

    Attributes:
        metrics: over the labelled photos with a face (rows: folder label).
        faceless: labelled photos where no face was found (or that could not be read).
        unlabelled: photos under no emotion folder.
    """

    metrics: Metrics
    faceless: tuple[str, ...]
    unlabelled: int

    @property
    def labelled(self) -> int:
        return self.metrics.total + len(self.faceless)

    @property
    def accuracy_counting_faceless(self) -> float:
        """Accuracy with the faceless photos counted as errors."""
        return float(np.trace(self.metrics.confusion) / self.labelled) if self.labelled else 0.0


def score_photos(photos: Sequence[tuple[Path, Sequence[dict]]], root: Path) -> FolderScore:
    """Scores ``(photo path, its faces)`` pairs of one folder by their folder labels."""
    truth, predicted, faceless, unlabelled = [], [], [], 0
    for path, faces in photos:
        label = folder_label(path, root)
        if label is None:
            unlabelled += 1
            continue
        face = largest_face(faces)
        if face is None:
            faceless.append(str(path))
            continue
        truth.append(label)
        predicted.append(EMOTIONS.index(face["label"]))
    cm = confusion_matrix(np.array(truth, dtype=np.int64), np.array(predicted, dtype=np.int64), NUM_CLASSES)
    return FolderScore(Metrics(cm), tuple(faceless), unlabelled)


def format_score(score: FolderScore, root: Path) -> str:
    """The score as text: counts, accuracies, per-class recall and the confusion matrix."""
    lines = [f"folder labels under {root}: {score.labelled} labelled photos, {score.metrics.total} with a face, "
             f"{len(score.faceless)} without, {score.unlabelled} unlabelled"]
    if score.labelled == 0:
        lines.append(f"  no photo is under a folder named after an emotion ({', '.join(EMOTIONS)}, ...)")
        return "\n".join(lines)
    right = int(np.trace(score.metrics.confusion))
    lines.append(f"  accuracy {score.metrics.accuracy:.1%} ({right}/{score.metrics.total}) on the largest face of "
                 f"each photo with one; {score.accuracy_counting_faceless:.1%} counting photos without a face as wrong")
    support = score.metrics.confusion.sum(axis=1)
    per_class = [f"{e} {int(score.metrics.confusion[i, i])}/{int(support[i])}"
                 for i, e in enumerate(EMOTIONS) if support[i]]
    lines.append("  per class: " + ", ".join(per_class))
    lines.extend("  " + line for line in format_confusion(score.metrics.confusion).splitlines())
    lines.extend(f"  no face: {path}" for path in score.faceless[:20])
    if len(score.faceless) > 20:
        lines.append(f"  ... and {len(score.faceless) - 20} more without a face")
    return "\n".join(lines)
