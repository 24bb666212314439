"""Photos labelled by their folders, scored end to end: ``python -m fer.predict -r DIR --folder-labels``
and the app's Your photos page (a ZIP archive of such folders, read in memory).

Expression datasets of whole photos (CK+, JAFFE, KDEF, RAF-DB, one's own) are often laid out as
one folder per emotion: ``DIR/happy/a.jpg``, ``DIR/s01/sad/b.png``. Each photo's label is the
nearest folder above it whose name is an emotion (:data:`FOLDER_NAMES`: FER2013's names and the
usual variants, "happiness", "anger", "surprised", ...); the photo's prediction is its largest
face's label, so detection, alignment and classification are scored together, as a user meets
them. Photos under no emotion folder (or under one FER2013 lacks, such as CK+'s "contempt") are
counted as unlabelled; labelled photos where no face was found are counted apart, and also as
errors in a second accuracy; labelled photos that could not be read are counted apart too, with
their reasons, and in neither accuracy (a broken file says nothing of the model).
"""

from __future__ import annotations

import io
import lzma
import re
import zipfile
import zlib
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


# A Windows drive ("C:") at the start of a member's name.
_DRIVE = re.compile(r"^[A-Za-z]:")


def member_path(name: str) -> PurePosixPath:
    r"""A ZIP member's name as a relative POSIX path that stays inside the archive's folder.

    Some Windows tools store ``happy\a.jpg`` or ``C:\set\happy\a.jpg``, and a crafted archive may
    hold ``/abs/a.jpg`` or ``../../a.jpg``, which joined to a folder would leave it. Backslashes
    become slashes, a leading drive and slashes are dropped, ``.`` parts vanish and each ``..``
    removes the folder before it (none climbs above the top).

    Returns:
        The path; ``PurePosixPath()`` (no parts) when nothing is left of the name (``/``, ``..``).
    """
    parts: list[str] = []
    for part in _DRIVE.sub("", name.replace("\\", "/")).split("/"):
        if part == "..":
            parts = parts[:-1]
        elif part not in ("", "."):
            parts.append(part)
    return PurePosixPath(*parts)


def zip_label(name: str, archive: str = "") -> int | None:
    """The class of a photo at ``name`` (``happy/a.jpg``, as stored: :func:`member_path` reads it)
    inside a ZIP archive named ``archive``, whose stem counts as the outermost folder (``happy.zip``).
    """
    return label_of_folders([PurePosixPath(archive).stem, *member_path(name).parent.parts])


class ZipPhotosError(ValueError):
    """A ZIP archive that cannot be read, or that holds too much; the message is for people."""


# What decompressing one damaged entry raises: a bad CRC or header (BadZipFile), an unsupported
# compression method (NotImplementedError), corrupt data (zlib, lzma; bz2 raises OSError).
_ENTRY_ERRORS = (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class ZipPhoto:
    """One photo of a ZIP archive, read in memory.

    Attributes:
        name: its path inside the archive (:func:`member_path`, as a string).
        data: its bytes (empty when it could not be read).
        error: why it could not be read from the archive, or ``None``.
    """

    name: str
    data: bytes = b""
    error: str | None = None


def photos_in_zip(data: bytes, max_photos: int = MAX_ZIP_PHOTOS, max_bytes: int = MAX_ZIP_BYTES) -> list[ZipPhoto]:
    """The photos of a ZIP archive, read in memory and sorted by path.

    Folders, hidden entries, macOS's ``__MACOSX`` copies and files without an image suffix are
    skipped. The sizes the archive declares are checked before anything is decompressed, and
    each entry is read no further than its declared size (a ZIP bomb cannot get past either).
    An entry that cannot be decompressed (bad CRC, unsupported method) is a photo with an error,
    as a corrupt photo in a sound entry is: it costs only itself.

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
            path = member_path(info.filename)
            hidden = any(part.startswith(".") or part == "__MACOSX" for part in path.parts)
            if info.is_dir() or hidden or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if info.flag_bits & 0x1:
                raise ZipPhotosError(f"{info.filename} is encrypted; please give an archive without a password")
            entries.append((str(path), info))
        if len(entries) > max_photos:
            raise ZipPhotosError(f"the archive holds {len(entries)} photos; the limit is {max_photos}")
        total = sum(info.file_size for _, info in entries)
        if total > max_bytes:
            raise ZipPhotosError(f"the photos come to {total / 1e6:.0f} MB decompressed; the limit is "
                                 f"{max_bytes / 1e6:.0f} MB")
        photos = []
        for name, info in sorted(entries, key=lambda entry: entry[0]):
            try:
                with archive.open(info) as member:
                    photos.append(ZipPhoto(name, member.read(info.file_size + 1)[: info.file_size]))
            except _ENTRY_ERRORS as err:
                photos.append(ZipPhoto(name, error=f"cannot be read from the archive ({err})"))
    return photos


def largest_face(faces: Sequence[dict]) -> dict | None:
    """The face (``FaceResult.to_dict()`` form) with the largest box, or ``None`` without faces."""
    return max(faces, key=lambda f: f["box"][2] * f["box"][3], default=None)


@dataclass(frozen=True)
class FolderScore:
    """How a model did on folder-labelled photos.

    Attributes:
        metrics: over the labelled photos with a face (rows: folder label).
        faceless: labelled photos where no face was found.
        unlabelled: photos under no emotion folder.
        unreadable: labelled photos that could not be read (or analysed), each with the reason.
    """

    metrics: Metrics
    faceless: tuple[str, ...]
    unlabelled: int
    unreadable: tuple[tuple[str, str], ...] = ()

    @property
    def labelled(self) -> int:
        return self.metrics.total + len(self.faceless) + len(self.unreadable)

    @property
    def accuracy(self) -> float | None:
        """Accuracy of the largest face of each photo with one; ``None`` when no photo had a face."""
        return self.metrics.accuracy if self.metrics.total else None

    @property
    def accuracy_counting_faceless(self) -> float | None:
        """Accuracy with the faceless photos counted as errors (the unreadable ones left out);
        ``None`` when no photo had a face.
        """
        return self.metrics.correct / (self.metrics.total + len(self.faceless)) if self.metrics.total else None


def score_photos(photos: Sequence[tuple[Path, Sequence[dict], str | None]], root: Path) -> FolderScore:
    """Scores ``(photo path, its faces, why it could not be read or None)`` of one folder by their
    folder labels.
    """
    return score_labelled([(str(path), folder_label(path, root), faces, error) for path, faces, error in photos])


def score_labelled(photos: Sequence[tuple[str, int | None, Sequence[dict], str | None]]) -> FolderScore:
    """Scores ``(photo name, its label or None, its faces, why it could not be read or None)``:
    the largest face of each.
    """
    truth, predicted, faceless, unreadable, unlabelled = [], [], [], [], 0
    for path, label, faces, error in photos:
        if label is None:
            unlabelled += 1
            continue
        face = largest_face(faces)
        if face is None:
            # An error after the faces were found (the CLI's annotated copy) does not undo them.
            if error is not None:
                unreadable.append((path, error))
            else:
                faceless.append(path)
            continue
        truth.append(label)
        predicted.append(EMOTIONS.index(face["label"]))
    cm = confusion_matrix(np.array(truth, dtype=np.int64), np.array(predicted, dtype=np.int64), NUM_CLASSES)
    return FolderScore(Metrics(cm), tuple(faceless), unlabelled, tuple(unreadable))


def _listed(lines: Sequence[str], what: str, most: int = 20) -> list[str]:
    """The first ``most`` of ``lines``, then one counting the rest (``... and 3 more <what>``)."""
    more = [f"  ... and {len(lines) - most} more {what}"] if len(lines) > most else []
    return [*lines[:most], *more]


def format_score(score: FolderScore, root: Path) -> str:
    """The score as text: counts, accuracies, per-class recall, the confusion matrix and the
    photos without a face or that could not be read.
    """
    lines = [f"folder labels under {root}: {score.labelled} labelled photos, {score.metrics.total} with a face, "
             f"{len(score.faceless)} without, {len(score.unreadable)} unreadable, {score.unlabelled} unlabelled"]
    if score.labelled == 0:
        lines.append(f"  no photo is under a folder named after an emotion ({', '.join(EMOTIONS)}, ...)")
        return "\n".join(lines)
    if score.accuracy is None:
        lines.append("  accuracy — (no photo had a face)")
    else:
        lines.append(f"  accuracy {score.accuracy:.1%} ({score.metrics.correct}/{score.metrics.total}) on the "
                     f"largest face of each photo with one; {score.accuracy_counting_faceless:.1%} counting photos "
                     "without a face as wrong")
        support = score.metrics.confusion.sum(axis=1)
        per_class = [f"{e} {int(score.metrics.confusion[i, i])}/{int(support[i])}"
                     for i, e in enumerate(EMOTIONS) if support[i]]
        lines.append("  per class: " + ", ".join(per_class))
        lines.extend("  " + line for line in format_confusion(score.metrics.confusion).splitlines())
    lines.extend(_listed([f"  no face: {path}" for path in score.faceless], "without a face"))
    lines.extend(_listed([f"  unreadable: {path} ({error})" for path, error in score.unreadable], "unreadable"))
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


def analyse_photos(pipeline, photos: Sequence[ZipPhoto], archive: str = "", tta: bool = True,
                   on_progress=None) -> list[AnalysedPhoto]:
    """Runs ``pipeline`` (a :class:`fer.pipeline.FerPipeline`) on an archive's photos.

    Args:
        pipeline: the photo pipeline.
        photos: the archive's photos (:func:`photos_in_zip`); one it could not read keeps its error.
        archive: the archive's file name (its stem may name the emotion).
        tta: flip test-time augmentation.
        on_progress: called with the number of photos done after each one.
    """
    analysed = []
    for done, photo in enumerate(photos, start=1):
        analysed.append(analyse_photo(pipeline, photo, zip_label(photo.name, archive), tta))
        if on_progress is not None:
            on_progress(done)
    return analysed


def analyse_photo(pipeline, photo: ZipPhoto, label: int | None, tta: bool = True) -> AnalysedPhoto:
    """Runs ``pipeline`` on one photo of an archive; one that cannot be read keeps the reason."""
    from fer.detect import shrink_by
    from fer.image_io import ImageDecodeError
    from fer.photo_report import context_crop

    if photo.error is not None:
        return AnalysedPhoto(photo.name, label, (), error=photo.error)
    try:
        result = pipeline.analyze_bytes(photo.data, tta=tta)
    except ImageDecodeError as err:
        return AnalysedPhoto(photo.name, label, (), error=str(err))
    except Exception as err:  # noqa: BLE001 - one bad photo must not cost the archive's others
        return AnalysedPhoto(photo.name, label, (), error=f"analysis failed ({type(err).__name__}: {err})")
    faces = tuple(face.to_dict() for face in result.faces)
    largest = largest_face(faces)
    if largest is None:
        return AnalysedPhoto(photo.name, label, faces)
    big = result.faces[faces.index(largest)]
    crop = context_crop(result.rgb_image, big.box, result.scale, margin=0.3)
    crop = shrink_by(crop, CROP_SIDE / max(crop.shape[:2]))
    return AnalysedPhoto(photo.name, label, faces, EMOTIONS.index(big.label), big.score, crop)


def cell_photos(analysed: Sequence[AnalysedPhoto], true: int, pred: int) -> list[AnalysedPhoto]:
    """The photos labelled ``true`` whose largest face was called ``pred``, most confident first."""
    members = [p for p in analysed if p.label == true and p.predicted == pred]
    return sorted(members, key=lambda p: (-p.score, p.name))


def photo_table(analysed: Sequence[AnalysedPhoto]):
    """One row per photo: its name, folder label, prediction, score, face count and any error.
    Names and errors (which quote names) a spreadsheet would run as a formula are written behind
    a ``'`` (:func:`fer.annotations.guard_formula`): an archive names its own files.
    """
    import pandas as pd

    from fer.annotations import guard_formula

    return pd.DataFrame({
        "photo": [guard_formula(p.name) for p in analysed],
        "folder_label": [EMOTIONS[p.label] if p.label is not None else "" for p in analysed],
        "predicted": [EMOTIONS[p.predicted] if p.predicted is not None else "" for p in analysed],
        "score": [round(p.score, 4) if p.predicted is not None else None for p in analysed],  # none: no face
        "faces": [len(p.faces) for p in analysed],
        "error": [guard_formula(p.error or "") for p in analysed],
    })
