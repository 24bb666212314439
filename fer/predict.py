"""Classify the expressions of every face in photos: ``python -m fer.predict PATH...``.

Each PATH is a photo, a folder of photos (``-r`` takes its subfolders too) or a ZIP archive of
photos (read in memory, all its folders). For every photo
it prints the faces found (box, label, score), or with ``--json`` one JSON object per line::

    {"path": "a.jpg", "faces": [{"box": [x, y, w, h], "detector": "hog", "label": "happy",
     "score": 0.93, "probabilities": {"angry": 0.01, ...}, "pose": {"yaw": ...}}], "tta": false,
     "temperature": 1.0, "turn": 0.0, "annotated": null, "error": null}

``"detector"`` is ``"blaze"`` for a face the detector missed and BlazeFace's second look found
(``--no-second-look`` turns it off).

``"tta"`` says whether the probabilities average each face with its mirror image (``--tta``),
and ``"temperature"`` which calibration temperature from the model card softened them (1 with
``--raw``, or for a model without one; ``python -m fer.calibration``), so saved results say how
they were made; ``"turn"`` is 0, or the degrees (anticlockwise) the photo was turned to find its
faces when none was found upright (``fer.detect.search_turned``). The CSV has all three as columns.

A photo that cannot be read gets ``"faces": []`` and ``"error"`` set to the reason, and the command
goes on with the next one. Exit codes: 0 every photo was read; 1 some photo (or archive) could not
be read, or an output (annotated photo, CSV) not written; 2 a setup error (a bad model or option) or
nothing to do (no photos in the folders and archives given, ``--folder-labels`` without a folder or
archive). ``--annotate OUT`` writes each photo with boxes, labels and probability bars to
``OUT/<name>_annotated.jpg`` (numbered when two photos share a name; each photo's output
line, and ``"annotated"`` in its JSON, names its copy); with ``--explain`` also each face's
occlusion map (``fer.explain``: red where covering the face lowers its label's log-odds, blue
where it raises them), drawn over the face as ``--illumination`` shows it, to
``OUT/<name>_face<i>_explained.png``. A folder as input also writes a CSV with one row per face: to
``--csv`` if given, else ``OUT/<folder>_faces.csv`` with ``--annotate``, else ``<folder>_faces.csv``
in the current directory (its path is printed). Photos named on their own go to ``--csv`` too (one
file for them all; without ``--csv``, no CSV). A run with several folders (or folders and photos)
writes one CSV each: ``--csv FILE`` becomes ``FILE``'s name plus ``_<folder>`` (``_photos`` for the
photos named on their own), and a name another file of the run already took is numbered
(``faces_2_faces.csv``), so no file of one run overwrites another; a path a spreadsheet would run
as a formula is written behind a ``'`` (``fer.photo_report.face_rows``). ``--folder-labels`` then scores
each folder's photos against the emotion named by the folder they sit in (``happy/a.jpg``;
``fer.folder_labels``): accuracy of each photo's largest face, per class, and the confusion matrix
(on standard error with ``--json``).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from fer.detect import DETECTORS, turn_text
from fer.folder_labels import format_score, is_archive, score_photos, source_name
from fer.image_io import IMAGE_SUFFIXES
from fer.photo_report import FACE_FIELDS, face_rows
from fer.pose import angles_text
from fer.preprocess import ILLUMINATIONS

if TYPE_CHECKING:  # the pipeline imports keras: only when a command runs, not for --help
    from fer.pipeline import FerPipeline, PhotoResult

CSV_FIELDS: tuple[str, ...] = ("path", *FACE_FIELDS)


@dataclass(frozen=True)
class PhotoOutcome:
    """What happened to one input file: its faces as dicts, or the error message."""

    path: Path
    faces: tuple[dict, ...]
    error: str | None = None
    timings: dict[str, float] | None = None
    tta: bool = False
    temperature: float = 1.0
    turn: float = 0.0
    annotated: Path | None = None

    def to_json(self) -> str:
        """One JSON line: ``{"path", "faces", "tta", "temperature", "turn", "annotated", "error"}``."""
        return json.dumps({"path": str(self.path), "faces": list(self.faces), "tta": self.tta,
                           "temperature": self.temperature, "turn": self.turn,
                           "annotated": None if self.annotated is None else str(self.annotated),
                           "error": self.error})


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m fer.predict",
        description="Find faces in photos and classify their expressions (FER2013 classes).",
        epilog="exit codes: 0 every photo was read, 1 some photo or archive could not be read or an output "
               "not written, "
               "2 a setup error or nothing to analyse",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="photos, folders of photos, or ZIP archives of photos")
    parser.add_argument("-r", "--recursive", action="store_true",
                        help="folders give the photos of their subfolders too (hidden ones skipped, "
                             "symbolic links to folders not followed); --annotate mirrors the subfolders")
    parser.add_argument("--folder-labels", action="store_true",
                        help="score each folder's photos against the emotion their folder is named after "
                             "(happy/, sadness/, ...; fer.folder_labels): accuracy and confusion matrix")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line per photo")
    parser.add_argument("--annotate", type=Path, metavar="OUT", help="write annotated photos into folder OUT")
    parser.add_argument("--csv", type=Path, metavar="FILE",
                        help="CSV of the faces found (one row per face). Without it each folder or archive "
                             "gets <folder>_faces.csv in the current directory (in OUT with --annotate) and "
                             "photos named on their own none; with several folders, FILE_<folder>.csv each "
                             "(FILE_photos.csv for the photos named on their own); a name another file of the "
                             "same run took is numbered, and a file left by an earlier run is replaced (said so)")
    parser.add_argument("--detector", choices=DETECTORS, default="hog", help="face detector (default: hog)")
    parser.add_argument("--no-second-look", dest="second_look", action="store_false",
                        help="skip BlazeFace's second look for faces the detector missed")
    parser.add_argument(
        "--illumination", choices=ILLUMINATIONS, default=None,
        help="illumination correction of the faces drawn under --explain's maps; the model always gets the one "
             "it was trained with",
    )
    parser.add_argument("--model", type=Path, default=None, help="Keras .h5 model (default: the released model)")
    parser.add_argument("--tta", action="store_true", help="average each face with its mirror image")
    parser.add_argument("--raw", action="store_true",
                        help="the network's own probabilities, without the card's calibration temperature")
    parser.add_argument("--explain", action="store_true",
                        help="with --annotate: also write each face's occlusion map (64 more model runs a face)")
    return parser


@dataclass(frozen=True)
class Input:
    """One photo to analyse: its path (inside its archive for a ZIP's), the folder or archive it
    came from (``None`` for a photo named on its own), its bytes when they come from an archive,
    or why the archive (or the photo's entry in it) could not be read.
    """

    path: Path
    folder: Path | None = None
    data: bytes | None = None
    error: str | None = None


def expand_inputs(paths: Sequence[Path], recursive: bool = False) -> Iterator[Input]:
    """Yields the photos to analyse; folders and ZIP archives give their images, sorted.

    A folder gives the files with an image suffix (with ``recursive``, those of its subfolders
    too, skipping hidden files and folders such as ``.git``); a ZIP archive all of its photos,
    read in memory (``fer.folder_labels.photos_in_zip``), each at its path inside the archive
    (``fer.folder_labels.member_path``: never outside it, whatever the entry's name); a file named
    on its own is tried whatever its suffix, since the format is read from the bytes.
    """
    from fer.folder_labels import ZipPhotosError, photos_in_zip

    for path in paths:
        if is_archive(path):
            try:
                photos = photos_in_zip(path.read_bytes())
            except (ZipPhotosError, OSError) as err:
                yield Input(path, error=f"cannot read the archive: {_describe(err, path)}")
                continue
            # photos_in_zip names each photo by member_path: relative, so it stays under the archive.
            for photo in photos:
                yield Input(path / photo.name, path, photo.data, photo.error)
            continue
        if not path.is_dir():
            yield Input(path)
            continue
        children = path.rglob("*") if recursive else path.iterdir()
        for child in sorted(children):
            hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
            if not hidden and child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES:
                yield Input(child, path)


def analyze_file(pipeline: FerPipeline, path: Path, annotate_dir: Path | None = None,
                 taken: set[Path] | None = None, explain: bool = False, data: bytes | None = None) -> PhotoOutcome:
    """Runs the pipeline on one file; unreadable files become an outcome with an error.

    With ``annotate_dir`` the annotated photo is written there, and with ``explain`` each face's
    occlusion map beside it. ``data`` gives the photo's bytes when they do not come from ``path``
    (a photo inside a ZIP archive).
    """
    from fer.image_io import ImageDecodeError

    # The CLI never overrides the pipeline's TTA, so its temperature is fixed too.
    outcome = partial(PhotoOutcome, path, tta=pipeline.tta, temperature=pipeline.temperatures[pipeline.tta])
    try:
        result = pipeline.analyze_path(path) if data is None else pipeline.analyze_bytes(data)
    except (ImageDecodeError, OSError) as err:
        return outcome((), error=_describe(err, path))
    except Exception as err:  # noqa: BLE001 - one bad photo must not stop the others
        return outcome((), error=f"analysis failed ({type(err).__name__}: {err})")
    faces = tuple(face.to_dict() for face in result.faces)
    target = None
    if annotate_dir is not None:
        try:
            target = annotated_path(annotate_dir, path, taken if taken is not None else set())
            write_annotated(result, target)
            if explain:
                write_explanations(pipeline, result, target)
        except OSError as err:
            return outcome(faces, error=f"cannot write the annotated image: {err}", timings=result.timings,
                           turn=result.turn)
    # Said in the output: numbered names (a.jpg in two folders) must lead back to their photo.
    return outcome(faces, timings=result.timings, turn=result.turn, annotated=target)


def annotated_path(annotate_dir: Path, path: Path, taken: set[Path]) -> Path:
    """Where a photo's annotated copy goes: ``<stem>_annotated.jpg``, numbered when another
    input of the same run already took that name (``a.jpg`` and ``a.png``, or two folders).
    """
    return numbered(annotate_dir / f"{path.stem}_annotated.jpg", taken, "_annotated")


def _describe(err: Exception, path: Path) -> str:
    if isinstance(err, FileNotFoundError):
        return f"file not found: {path}"
    if isinstance(err, IsADirectoryError):
        return f"is a folder, not a photo: {path}"
    if isinstance(err, PermissionError):
        return f"permission denied: {path}"
    if isinstance(err, OSError):
        return f"cannot read {path}: {err.strerror or err}"
    return str(err)


def write_annotated(result: PhotoResult, out_path: Path) -> None:
    """Saves the photo with boxes, labels and probability bars (JPEG)."""
    from PIL import Image

    out_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(result.boxes_image(probabilities=True)).save(out_path, quality=90)


def write_explanations(pipeline: FerPipeline, result: PhotoResult, annotated: Path) -> list[Path]:
    """Saves each face's occlusion map for its label beside the annotated photo (PNG, 192x192),
    drawn over the face as ``--illumination`` shows it (the map itself is the model's, on its input).
    """
    from PIL import Image

    from fer.explain import occlusion_map, overlay
    from fer.labels import EMOTIONS

    stem = annotated.name.removesuffix("_annotated.jpg")
    written = []
    for i, face in enumerate(result.faces, start=1):
        explained = occlusion_map(pipeline.classify, face.gray_face, EMOTIONS.index(face.label))
        out_path = annotated.with_name(f"{stem}_face{i}_explained.png")
        Image.fromarray(overlay(face.display_face, explained.drop, zoom=4)).save(out_path)
        written.append(out_path)
    return written


def format_outcome(outcome: PhotoOutcome, detector: str = "hog") -> str:
    """Human-readable lines for one photo, searched with ``detector`` (BlazeFace alone has no
    second look to credit).
    """
    if outcome.error is not None:
        return f"{outcome.path}: error: {outcome.error}"
    count = len(outcome.faces)
    ms = outcome.timings.get("total", 0.0) if outcome.timings else 0.0
    turned = f", found with the photo turned {turn_text(outcome.turn)}" if outcome.turn else ""
    lines = [f"{outcome.path}: {count} face{'s' if count != 1 else ''} ({ms:.0f} ms{turned})"
             + ("" if outcome.annotated is None else f" -> {outcome.annotated}")]
    for i, face in enumerate(outcome.faces, start=1):
        ranked = sorted(face["probabilities"].items(), key=lambda kv: -kv[1])[:3]
        others = ", ".join(f"{name} {p:.2f}" for name, p in ranked)
        x, y, w, h = face["box"]
        pose = face.get("pose")
        turn = f"  {angles_text(pose['yaw'], pose['pitch'], pose['roll'])}" if pose else ""
        looked_again = face.get("detector") == "blaze" and detector != "blaze"
        second = "  (found by BlazeFace's second look)" if looked_again else ""
        lines.append(f"  {i}. {face['label']:<8} {face['score']:.2f}  box x={x} y={y} w={w} h={h}  ({others}){turn}"
                     f"{second}")
    return "\n".join(lines)


def default_csv_path(folder: Path, annotate_dir: Path | None) -> Path:
    """Where a folder's (or an archive's) CSV goes when ``--csv`` is not given."""
    name = f"{source_name(folder) or 'photos'}_faces.csv"
    return (annotate_dir / name) if annotate_dir is not None else Path.cwd() / name


def numbered(path: Path, taken: set[Path], marker: str = "") -> Path:
    """``path``, or when this run already took it, the first free ``<stem>_2``, ``<stem>_3``, ...

    A stem that ends in ``marker`` is numbered before it (``faces_2_faces.csv``,
    ``a_2_annotated.jpg``). The path returned joins ``taken``.
    """
    stem = path.stem
    if marker and stem.endswith(marker):
        stem = stem.removesuffix(marker)
    else:
        marker = ""
    candidate, number = path, 2
    while candidate.resolve() in taken:
        candidate = path.with_name(f"{stem}_{number}{marker}{path.suffix}")
        number += 1
    taken.add(candidate.resolve())
    return candidate


def csv_paths(sources: Sequence[Path | None], csv_path: Path | None,
              annotate_dir: Path | None) -> dict[Path | None, Path]:
    """Where each source's CSV goes: a folder's or archive's, or ``None``'s for the photos named on
    their own (given ``csv_path`` only), each to its own file.

    One source and ``csv_path``: that file. Several: ``csv_path``'s name plus ``_<folder>`` (or
    ``_photos``), or :func:`default_csv_path`; a name an earlier source took is :func:`numbered`.
    """
    taken: set[Path] = set()
    targets: dict[Path | None, Path] = {}
    for source in sources:
        if source is None and csv_path is None:
            continue  # photos on their own have no default CSV
        if csv_path is None:
            target, marker = default_csv_path(source, annotate_dir), "_faces"
        elif len(sources) == 1:
            target, marker = csv_path, ""
        else:
            name = source_name(source) if source is not None else "photos"
            target, marker = csv_path.with_name(f"{csv_path.stem}_{name}{csv_path.suffix}"), ""
        targets[source] = numbered(target, taken, marker)
    return targets


def write_csv(path: Path, outcomes: Sequence[PhotoOutcome]) -> int:
    """Writes the faces of ``outcomes`` to a CSV and returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")  # the same bytes as the app's CSV download
        writer.writerow(CSV_FIELDS)
        for outcome in outcomes:
            for row in face_rows(str(outcome.path), outcome.faces, outcome.tta, outcome.temperature, outcome.turn):
                writer.writerow(row)
                count += 1
    return count


def say_no_photos(paths: Sequence[Path], seen: set[Path | None], recursive: bool) -> None:
    """Tells on standard error which folders and archives gave no photo (nor an error of their own).

    A folder whose photos all sit in subfolders, read without ``recursive``, is the usual case
    (an emotion-folder tree without ``-r``): it is told to add ``-r``, naming the subfolders.
    """
    for path in paths:
        if not (path.is_dir() or is_archive(path)) or path in seen or not path.exists():
            continue
        if not recursive and path.is_dir() and next(expand_inputs([path], recursive=True), None) is not None:
            subfolders = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            shown = ", ".join(subfolders[:4]) + (", ..." if len(subfolders) > 4 else "")
            print(f"{path}: no photos in it, only in its subfolders ({shown}): add -r to take them", file=sys.stderr)
        else:
            print(f"{path}: no photos (expected {', '.join(IMAGE_SUFFIXES)} files)", file=sys.stderr)


def distinct_paths(paths: Sequence[Path]) -> list[Path]:
    """``paths`` without repeats of one file or folder (``a`` and ``./a/``), first kept: a folder
    given twice would be analysed twice and its faces written twice into one CSV.
    """
    seen: set[Path] = set()
    kept = []
    for path in paths:
        key = path.resolve()
        if key in seen:
            print(f"note: {path} is given more than once; analysed once", file=sys.stderr)
            continue
        seen.add(key)
        kept.append(path)
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns 0 if every photo was read, 1 if some were not, 2 on a setup error or
    when there was no photo to analyse.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.explain and args.annotate is None:
        parser.error("--explain writes its maps beside the annotated photos: give --annotate OUT")
    if args.folder_labels and not any(path.is_dir() or is_archive(path) for path in args.paths):
        parser.error("--folder-labels scores folders or ZIP archives of photos; no PATH is one")
    if args.illumination and not args.explain:
        parser.error("--illumination changes only the faces drawn under --explain's maps (the model always gets "
                     "the correction it was trained with): give --annotate OUT --explain, or leave it out")
    # Outputs that cannot be written are refused now, not after every photo was analysed.
    if args.csv is not None and args.csv.is_dir():
        parser.error(f"--csv {args.csv} is a folder; give a file name (FILE.csv)")
    if args.annotate is not None and args.annotate.exists() and not args.annotate.is_dir():
        parser.error(f"--annotate {args.annotate} is a file; give a folder for the annotated photos")
    args.paths = distinct_paths(args.paths)
    inputs = expand_inputs(args.paths, args.recursive)
    first = next(inputs, None)
    if first is None:  # nothing to analyse: say why before the model costs seconds to load
        say_no_photos(args.paths, set(), args.recursive)
        return 2
    from fer.pipeline import FerPipeline

    try:
        pipeline = FerPipeline(args.model, detector=args.detector, illumination=args.illumination, tta=args.tta,
                               calibrated=not args.raw, second_look=None if args.second_look else False)
    except (OSError, ValueError) as err:  # FileNotFoundError; ModelFileError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    from fer.calibration import has_card_temperature

    if not args.raw and not has_card_temperature(pipeline.info.raw, pipeline.tta):
        view = "flip-TTA" if pipeline.tta else "plain"
        print(f"note: the card of {pipeline.info.path.name} holds no temperature for {view} probabilities, so they "
              f"are the network's own, uncalibrated (`python -m fer.calibration --model {pipeline.info.path}"
              f"{' --tta' if pipeline.tta else ''} --update-card` fits one)", file=sys.stderr)
    failed = 0
    # Outcomes by folder or archive; None: the photos named on their own.
    by_source: dict[Path | None, list[PhotoOutcome]] = {}
    unreadable_archives: set[Path] = set()
    taken_names: set[Path] = set()
    for item in itertools.chain([first], inputs):
        path, folder = item.path, item.folder
        annotate = args.annotate
        if annotate is not None and folder is not None:
            annotate = annotate / path.parent.relative_to(folder)  # "." unless recursive or an archive
        if item.error is not None:
            outcome = PhotoOutcome(path, (), error=item.error)
            if folder is None and is_archive(path):
                unreadable_archives.add(path)  # its error says it all: not "no photos" as well
        else:
            outcome = analyze_file(pipeline, path, annotate, taken_names, explain=args.explain, data=item.data)
        failed += outcome.error is not None
        if path not in unreadable_archives:
            by_source.setdefault(folder, []).append(outcome)
        print(outcome.to_json() if args.json else format_outcome(outcome, args.detector), flush=True)
    say_no_photos(args.paths, {*by_source, *unreadable_archives}, args.recursive)
    targets = csv_paths(list(by_source), args.csv, args.annotate)
    for source, outcomes in by_source.items():
        if source in targets:
            named = "the photos named on their own" if source is None else source
            replaced = " (replacing an earlier file)" if targets[source].exists() else ""
            try:
                rows = write_csv(targets[source], outcomes)
            except OSError as err:  # a folder given as --csv, a read-only place: the results above stand
                print(f"error: cannot write {targets[source]} for {named}: {err.strerror or err}", file=sys.stderr)
                failed += 1
            else:
                print(f"wrote {rows} face rows for {named} to {targets[source]}{replaced}", file=sys.stderr)
        if args.folder_labels and source is not None:
            score = score_photos([(o.path, o.faces, o.error) for o in outcomes], source)
            print(format_score(score, source), file=sys.stderr if args.json else sys.stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
