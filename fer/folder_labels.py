"""Photos labelled by their folders, scored end to end: ``python -m fer.predict -r DIR --folder-labels``
and the app's Your photos page (a ZIP archive of such folders, read in memory).

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

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from fer.labels import EMOTIONS, NUM_CLASSES
from fer.metrics import Metrics, confusion_matrix, format_confusion

# What the app reads from one uploaded archive (it is kept in memory, never written to disk).
MAX_ZIP_PHOTOS: int = 1000
MAX_ZIP_BYTES: int = 1_000_000_000
# Folder names datasets use besides FER2013's own (lower case) -> the FER2013 emotion.
_VARIANTS: dict[str, str] = {
    "anger": "angry", "disgusted": "disgust", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happiness": "happy", "joy": "happy", "sadness": "sad", "surprised": "surprise", "neutrality": "neutral",
}
# Folder names (lower case) -> FER2013 class code.
FOLDER_NAMES: dict[str, int] = {
    **{name: code for code, name in enumerate(EMOTIONS)},
    **{variant: EMOTIONS.index(name) for variant, name in _VARIANTS.items()},
}


def is_archive(path: Path) -> bool:
    """Whether a path names a ZIP archive of photos (by its suffix), which stands for a folder."""
    return Path(path).suffix.lower() == ".zip" and not Path(path).is_dir()


def source_name(root: Path) -> str:
    """The name a folder of photos goes by: its own, or an archive's without ``.zip``."""
    resolved = Path(root).resolve()
    return resolved.stem if is_archive(root) else resolved.name


def label_of_folders(folders: Sequence[str]) -> int | None:
    """The class named by the last of ``folders`` (outermost first) that names an emotion."""
    for name in reversed(folders):
        code = FOLDER_NAMES.get(name.lower())
        if code is not None:
            return code
    return None


def folder_label(path: Path, root: Path) -> int | None:
    """The class named by the nearest folder above ``path``, up to ``root`` itself (a folder, or
    a ZIP archive whose stem counts as the folder's name).

    Returns:
        The class code, or ``None`` when no folder on the way names an emotion.
    """
    # A ZIP archive stands for its folder: "happy.zip" names happy.
    return label_of_folders([source_name(root), *Path(path).relative_to(root).parent.parts])


def zip_label(name: str, archive: str = "") -> int | None:
    """The class of a photo at ``name`` (``happy/a.jpg``) inside a ZIP archive named ``archive``,
    whose stem counts as the outermost folder (``happy.zip``).
    """
    # Some Windows tools store "happy\\a.jpg": a backslash separates folders too.
    return label_of_folders([PurePosixPath(archive).stem, *PurePosixPath(name.replace("\\", "/")).parent.parts])


class ZipPhotosError(ValueError):
    """A ZIP archive that cannot be read, or that holds too much; the message is for people."""


def photos_in_zip(
    data: bytes, max_photos: int = MAX_ZIP_PHOTOS, max_bytes: int = MAX_ZIP_BYTES
) -> list[tuple[str, bytes]]:
    """The photos of a ZIP archive, read in memory: ``(path inside it, bytes)``, sorted by path.

    Folders, hidden entries, macOS's ``__MACOSX`` copies and files without an image suffix are
    skipped. The sizes the archive declares are checked before anything is decompressed, and
    each entry is read no further than its declared size (a ZIP bomb cannot get past either).

    Raises:
        ZipPhotosError: not a ZIP archive, encrypted entries, more than ``max_photos`` photos, or
            more than ``max_bytes`` of them once decompressed.
    """
    from fer.image_io import IMAGE_SUFFIXES

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ZipPhotosError(f"the file is not a ZIP archive that can be read ({err})") from None
    with archive:
        entries = []
        for info in archive.infolist():
            path = PurePosixPath(info.filename.replace("\\", "/"))
            hidden = any(part.startswith(".") or part == "__MACOSX" for part in path.parts)
            if info.is_dir() or hidden or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if info.flag_bits & 0x1:
                raise ZipPhotosError(f"{info.filename} is encrypted; please give an archive without a password")
            entries.append(info)
        if len(entries) > max_photos:
            raise ZipPhotosError(f"the archive holds {len(entries)} photos; the limit is {max_photos}")
        total = sum(info.file_size for info in entries)
        if total > max_bytes:
            raise ZipPhotosError(f"the photos come to {total / 1e6:.0f} MB decompressed; the limit is "
                                 f"{max_bytes / 1e6:.0f} MB")
        photos = []
        for info in sorted(entries, key=lambda i: i.filename):
            try:
                with archive.open(info) as member:
                    photos.append((info.filename, member.read(info.file_size + 1)[: info.file_size]))
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as err:
                raise ZipPhotosError(f"{info.filename} cannot be read from the archive ({err})") from None
    return photos


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
        return self.metrics.correct / self.labelled if self.labelled else 0.0


def score_photos(photos: Sequence[tuple[Path, Sequence[dict]]], root: Path) -> FolderScore:
    """Scores ``(photo path, its faces)`` pairs of one folder by their folder labels."""
    return score_labelled([(str(path), folder_label(path, root), faces) for path, faces in photos])


def score_labelled(photos: Sequence[tuple[str, int | None, Sequence[dict]]]) -> FolderScore:
    """Scores ``(photo name, its label or None, its faces)`` triples: the largest face of each."""
    truth, predicted, faceless, unlabelled = [], [], [], 0
    for path, label, faces in photos:
        if label is None:
            unlabelled += 1
            continue
        face = largest_face(faces)
        if face is None:
            faceless.append(path)
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
    lines.append(f"  accuracy {score.metrics.accuracy:.1%} ({score.metrics.correct}/{score.metrics.total}) on the "
                 f"largest face of each photo with one; {score.accuracy_counting_faceless:.1%} counting photos "
                 "without a face as wrong")
    support = score.metrics.confusion.sum(axis=1)
    per_class = [f"{e} {int(score.metrics.confusion[i, i])}/{int(support[i])}"
                 for i, e in enumerate(EMOTIONS) if support[i]]
    lines.append("  per class: " + ", ".join(per_class))
    lines.extend("  " + line for line in format_confusion(score.metrics.confusion).splitlines())
    lines.extend(f"  no face: {path}" for path in score.faceless[:20])
    if len(score.faceless) > 20:
        lines.append(f"  ... and {len(score.faceless) - 20} more without a face")
    return "\n".join(lines)


@dataclass(frozen=True)
class AnalysedPhoto:
    """One photo of an archive, analysed: what the app keeps of it (never the photo itself).

    Attributes:
        name: its path inside the archive.
        label: its folder's class, or ``None``.
        faces: its faces (``FaceResult.to_dict()`` form), in reading order.
        predicted: the largest face's class, or ``None`` without a face.
        score: the largest face's probability of that class (0 without a face).
        crop: the largest face with some surroundings, at most ``CROP_SIDE`` pixels a side
            (``None`` without a face).
        error: why it could not be read, or ``None``.
    """

    name: str
    label: int | None
    faces: tuple[dict, ...]
    predicted: int | None = None
    score: float = 0.0
    crop: np.ndarray | None = None
    error: str | None = None


CROP_SIDE: int = 160


def analyse_photos(pipeline, photos: Sequence[tuple[str, bytes]], archive: str = "", tta: bool = True,
                   on_progress=None) -> list[AnalysedPhoto]:
    """Runs ``pipeline`` (a :class:`fer.pipeline.FerPipeline`) on an archive's photos.

    Args:
        pipeline: the photo pipeline.
        photos: ``(path inside the archive, bytes)`` pairs (:func:`photos_in_zip`).
        archive: the archive's file name (its stem may name the emotion).
        tta: flip test-time augmentation.
        on_progress: called with the number of photos done after each one.
    """
    from fer.detect import shrink_by
    from fer.image_io import ImageDecodeError
    from fer.photo_report import context_crop

    analysed = []
    for done, (name, data) in enumerate(photos, start=1):
        label = zip_label(name, archive)
        try:
            result = pipeline.analyze_bytes(data, tta=tta)
        except ImageDecodeError as err:
            analysed.append(AnalysedPhoto(name, label, (), error=str(err)))
        except Exception as err:  # noqa: BLE001 - one bad photo must not cost the archive's others
            analysed.append(AnalysedPhoto(name, label, (), error=f"analysis failed ({type(err).__name__}: {err})"))
        else:
            faces = tuple(face.to_dict() for face in result.faces)
            largest = largest_face(faces)
            big = None if largest is None else result.faces[faces.index(largest)]
            if big is None:
                analysed.append(AnalysedPhoto(name, label, faces))
            else:
                crop = context_crop(result.rgb_image, big.box, result.scale, margin=0.3)
                crop = shrink_by(crop, CROP_SIDE / max(crop.shape[:2]))
                analysed.append(AnalysedPhoto(name, label, faces, EMOTIONS.index(big.label), big.score, crop))
        if on_progress is not None:
            on_progress(done)
    return analysed


def cell_photos(analysed: Sequence[AnalysedPhoto], true: int, pred: int) -> list[AnalysedPhoto]:
    """The photos labelled ``true`` whose largest face was called ``pred``, most confident first."""
    members = [p for p in analysed if p.label == true and p.predicted == pred]
    return sorted(members, key=lambda p: (-p.score, p.name))


def photo_table(analysed: Sequence[AnalysedPhoto]):
    """One row per photo: its name, folder label, prediction, score, face count and any error."""
    import pandas as pd

    return pd.DataFrame({
        "photo": [p.name for p in analysed],
        "folder_label": [EMOTIONS[p.label] if p.label is not None else "" for p in analysed],
        "predicted": [EMOTIONS[p.predicted] if p.predicted is not None else "" for p in analysed],
        "score": [round(p.score, 4) for p in analysed],
        "faces": [len(p.faces) for p in analysed],
        "error": [p.error or "" for p in analysed],
    })
