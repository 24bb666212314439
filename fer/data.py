"""Loading FER2013 (Kaggle CSV or image folders) and the FER+ crowd votes.

Bad input raises :class:`DataFormatError` naming the row or file and the reason; nothing is
skipped silently. Parsed CSVs are cached as ``.npz`` in the user cache folder, keyed by the
source file's SHA-256, so a second load is a checksum plus a memory copy.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.labels import EMOTIONS, FACE_SIZE, FERPLUS_COLUMNS, SPLITS
from fer.paths import cache_dir

PIXELS_PER_FACE = FACE_SIZE * FACE_SIZE
CSV_HEADER = ("emotion", "pixels", "Usage")
_FILE_SPLIT = re.compile(r"^(Training|PublicTest|PrivateTest)_(\d+)")
_CACHE_VERSION = 1


class DataFormatError(ValueError):
    """A dataset file is malformed; the message names the row or file and the reason."""


@dataclass(frozen=True)
class FerDataset:
    """FER2013 faces with labels and official splits.

    Attributes:
        images: uint8 array (N, 48, 48), grey levels.
        labels: int64 array (N,), codes into :data:`fer.labels.EMOTIONS`.
        usage: array (N,) of split names (``Training``, ``PublicTest``, ``PrivateTest``).
        rows: int64 array (N,), the 0-based data row of each face in the source CSV (for image
            folders, the order of the sorted file list).
        checksum: SHA-256 of the source file (for folders, of the sorted file contents).
        source: where the data came from.
    """

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    rows: np.ndarray
    checksum: str
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns ``(images, labels, rows)`` of one split.

        Raises:
            ValueError: for an unknown split name.
        """
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        mask = self.usage == name
        return self.images[mask], self.labels[mask], self.rows[mask]

    def counts(self) -> dict[str, int]:
        """Returns the number of faces per split."""
        return {name: int((self.usage == name).sum()) for name in SPLITS}


def file_sha256(path: str | Path, chunk_size: int = 1 << 22) -> str:
    """Returns the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _read_text(path: Path) -> str:
    with open(path, "rb") as handle:
        magic = handle.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not an ASCII CSV (byte {err.start} is {raw[err.start]:#x})") from None


def _row_error(path: Path, row: int, fields: list[str]) -> DataFormatError:
    """Explains why one data row is invalid (the slow path, run only once something failed)."""
    where = f"{path}: data row {row} (line {row + 2})"
    if len(fields) != 3:
        return DataFormatError(f"{where}: expected 3 fields emotion,pixels,Usage, found {len(fields)}")
    emotion, pixels, usage = fields
    if emotion.strip() not in {str(i) for i in range(len(EMOTIONS))}:
        return DataFormatError(f"{where}: unknown label {emotion!r}; expected an integer 0-6")
    if usage.strip() not in SPLITS:
        return DataFormatError(f"{where}: unknown usage {usage!r}; expected one of {', '.join(SPLITS)}")
    tokens = pixels.split()
    if len(tokens) != PIXELS_PER_FACE:
        return DataFormatError(f"{where}: wrong pixel count {len(tokens)}; expected {PIXELS_PER_FACE}")
    for position, token in enumerate(tokens):
        if not token.isdigit() or int(token) > 255:
            return DataFormatError(
                f"{where}: pixel {position} value {token!r} out of range; expected an integer 0-255"
            )
    return DataFormatError(f"{where}: could not be parsed")


def parse_fer2013_csv(path: str | Path) -> FerDataset:
    """Parses the canonical Kaggle CSV (``emotion,pixels,Usage``; plain or gzipped).

    Args:
        path: the ``.csv`` or ``.csv.gz`` file.

    Returns:
        The dataset, with ``rows`` equal to the 0-based data row indices.

    Raises:
        DataFormatError: naming the first bad row and why it is bad.
        FileNotFoundError: if the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FER2013 CSV not found: {path}")
    text = _read_text(path)
    lines = text.splitlines()
    if not lines:
        raise DataFormatError(f"{path}: empty file")
    header = tuple(field.strip() for field in lines[0].split(","))
    if header != CSV_HEADER:
        raise DataFormatError(f"{path}: header is {','.join(header)!r}; expected 'emotion,pixels,Usage'")
    body = lines[1:]
    while body and not body[-1].strip():
        body.pop()
    n = len(body)
    if n == 0:
        raise DataFormatError(f"{path}: no data rows")
    splits = [line.split(",") for line in body]
    labels = np.empty(n, dtype=np.int64)
    usage = np.empty(n, dtype=object)
    label_codes = {str(i): i for i in range(len(EMOTIONS))}
    usage_names = {name: name for name in SPLITS}
    for row, fields in enumerate(splits):
        if len(fields) != 3:
            raise _row_error(path, row, fields)
        code = label_codes.get(fields[0].strip())
        name = usage_names.get(fields[2].strip())
        if code is None or name is None:
            raise _row_error(path, row, fields)
        labels[row] = code
        usage[row] = name
    images = _parse_pixels(path, splits)
    return FerDataset(
        images=images,
        labels=labels,
        usage=usage.astype(str),
        rows=np.arange(n, dtype=np.int64),
        checksum=file_sha256(path),
        source=str(path),
    )


def _parse_pixels(path: Path, splits: list[list[str]]) -> np.ndarray:
    """Parses every row's pixels into uint8 (N, 48, 48), naming the first bad row.

    Fast path: when every row has exactly 2303 single spaces (the canonical file), one C-level
    parse of all pixels. The per-row count check first matters: otherwise a row one pixel short
    followed by a row one pixel long would still add up. Anything unusual takes the per-row path.
    """
    n = len(splits)
    separators = PIXELS_PER_FACE - 1
    if all(fields[1].count(" ") == separators for fields in splits):
        values = _parse_ints(" ".join(fields[1] for fields in splits))
        if values is not None and values.size == n * PIXELS_PER_FACE and values.min() >= 0 and values.max() <= 255:
            return values.astype(np.uint8).reshape(n, FACE_SIZE, FACE_SIZE)
    images = np.empty((n, PIXELS_PER_FACE), dtype=np.uint8)
    for row, fields in enumerate(splits):
        tokens = fields[1].split()
        if len(tokens) != PIXELS_PER_FACE or not all(t.isdigit() and int(t) <= 255 for t in tokens):
            raise _row_error(path, row, fields)
        images[row] = np.array(tokens, dtype=np.int32)
    return images.reshape(n, FACE_SIZE, FACE_SIZE)


def _parse_ints(joined: str) -> np.ndarray | None:
    """Parses space-separated integers in C; ``None`` when a token is not an integer."""
    try:
        # np.fromstring's text mode is the fastest parser numpy has; it stops at the first bad
        # token, which the caller detects as a short count.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.fromstring(joined, dtype=np.int32, sep=" ")
    except ValueError:
        return None


def load_fer2013(path: str | Path, use_cache: bool = True) -> FerDataset:
    """Loads FER2013 from a CSV (cached as npz) or from an image-folder layout.

    Args:
        path: a ``.csv``/``.csv.gz`` file or a folder holding ``train/`` and ``test/``.
        use_cache: read and write the parsed-array cache for CSV input.

    Returns:
        The dataset.

    Raises:
        DataFormatError: for malformed input, naming the row or file.
        FileNotFoundError: if ``path`` does not exist.
    """
    path = Path(path)
    if path.is_dir():
        return load_image_folders(path)
    if not path.exists():
        raise FileNotFoundError(f"FER2013 data not found: {path}")
    if not use_cache:
        return parse_fer2013_csv(path)
    checksum = file_sha256(path)
    cached = cache_dir() / f"fer2013-v{_CACHE_VERSION}-{checksum[:16]}.npz"
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as archive:
                return FerDataset(
                    images=archive["images"],
                    labels=archive["labels"],
                    usage=archive["usage"],
                    rows=archive["rows"],
                    checksum=checksum,
                    source=str(path),
                )
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
            cached.unlink(missing_ok=True)  # A torn cache file is rebuilt, not trusted.
    dataset = parse_fer2013_csv(path)
    # A per-process temporary name: two processes filling the cache at once never share a file.
    tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, images=dataset.images, labels=dataset.labels, usage=dataset.usage, rows=dataset.rows)
    tmp.replace(cached)
    return dataset


def load_image_folders(root: str | Path) -> FerDataset:
    """Loads the popular ``train/<emotion>/*.jpg``, ``test/<emotion>/*.jpg`` layout.

    The split of each file comes from its name prefix (``Training_``, ``PublicTest_``,
    ``PrivateTest_``); files are ordered by split, then by the number in the name.

    Raises:
        DataFormatError: for an unknown emotion folder, a name without a split prefix, an
            unreadable image, or an image that is not 48x48.
    """
    # Imported here, not above: the GPU machine trains from a pack, without pi-heif.
    from PIL import Image

    from fer.image_io import IMAGE_SUFFIXES, ImageDecodeError, decode_image

    root = Path(root)
    entries: list[tuple[int, int, str, Path, int]] = []
    subdirs = [d for d in (root / "train", root / "test") if d.is_dir()]
    if not subdirs:
        raise DataFormatError(f"{root}: expected 'train/' and/or 'test/' folders")
    for subdir in subdirs:
        for class_dir in sorted(p for p in subdir.iterdir() if p.is_dir()):
            if class_dir.name not in EMOTIONS:
                raise DataFormatError(
                    f"{class_dir}: unknown label folder {class_dir.name!r}; expected one of {', '.join(EMOTIONS)}"
                )
            for file in sorted(class_dir.iterdir()):
                if file.name.startswith("."):
                    continue  # hidden files (.DS_Store) are never faces
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    raise DataFormatError(f"{file}: not an image file (expected one of {sorted(IMAGE_SUFFIXES)})")
                match = _FILE_SPLIT.match(file.name)
                if not match:
                    raise DataFormatError(
                        f"{file}: unknown usage; the name must start with Training_, PublicTest_ or PrivateTest_"
                    )
                usage, number = match.group(1), int(match.group(2))
                entries.append((SPLITS.index(usage), number, usage, file, EMOTIONS.index(class_dir.name)))
    if not entries:
        raise DataFormatError(f"{root}: no images found")
    entries.sort(key=lambda e: (e[0], e[1], str(e[3])))
    images = np.empty((len(entries), FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    digest = hashlib.sha256()
    for i, (_, _, _, file, _) in enumerate(entries):
        data = file.read_bytes()
        digest.update(data)
        try:
            # The photos' decoder: 16-bit greys scaled, transparency over white; then PIL's grey.
            array = np.asarray(Image.fromarray(decode_image(data).rgb).convert("L"))
        except ImageDecodeError as err:
            raise DataFormatError(f"{file}: not a readable image ({err})") from None
        if array.shape != (FACE_SIZE, FACE_SIZE):
            raise DataFormatError(f"{file}: image is {array.shape[1]}x{array.shape[0]}; expected 48x48")
        images[i] = array
    return FerDataset(
        images=images,
        labels=np.array([e[4] for e in entries], dtype=np.int64),
        usage=np.array([e[2] for e in entries]),
        rows=np.arange(len(entries), dtype=np.int64),
        checksum=digest.hexdigest(),
        source=str(root),
    )


def require_splits(dataset: FerDataset, names: tuple[str, ...] | list[str]) -> None:
    """Checks that a dataset has faces in each of the splits ``names``.

    A tool that runs a model on a split checks first, so data without it gets one clear message
    instead of Keras's error on an empty input.

    Raises:
        DataFormatError: naming the first empty split, the data and the splits it does have.
    """
    counts = dataset.counts()
    for name in names:
        if not counts.get(name):
            have = ", ".join(f"{split} {n:,}" for split, n in counts.items() if n) or "no faces"
            raise DataFormatError(f"no {name} faces in {dataset.source} (it has {have})")


def fer2013_rows_problem(dataset: FerDataset) -> str | None:
    """Why a dataset's ``rows`` are not row numbers of the FER2013 CSV; ``None`` when they are.

    The FER+ votes, the twins and head-pose tables and every saved predictions table are keyed by
    FER2013 row number. A CSV numbers its own lines, so only the full CSV (35,887 faces in
    FER2013's splits, checked against the embedded FER+ table when it is there) and the embedded
    test faces (which keep the full CSV's numbers) qualify: a subset's row 0 is whatever face it
    starts with, and an image folder's numbers are the order of its files.
    """
    from fer.ferplus import FER2013_ROWS, load_ferplus_votes
    from fer.paths import TEST_FACES_PATH

    source = Path(dataset.source)
    if source.is_dir():
        return f"{source} is an image folder: its faces carry no FER2013 row numbers"
    if source != TEST_FACES_PATH and len(dataset) != FER2013_ROWS:
        faces = f"{len(dataset):,} face" + ("" if len(dataset) == 1 else "s")
        return (f"{source.name} has {faces}, not the {FER2013_ROWS:,} of the full FER2013 CSV, "
                "so its row numbers are not FER2013's")
    try:
        usage = load_ferplus_votes().usage
    except (FileNotFoundError, ValueError):
        return None  # nothing to check the splits against: the count has to do
    rows = dataset.rows
    if len(rows) and (rows.min() < 0 or rows.max() >= FER2013_ROWS or not np.array_equal(usage[rows], dataset.usage)):
        return f"{source.name}'s splits differ from FER2013's at the same rows: not the FER2013 CSV"
    return None


@dataclass(frozen=True)
class FerPlusVotes:
    """FER+ crowd votes aligned with FER2013 rows.

    Attributes:
        votes: int array (N, 10): votes for the columns of :data:`fer.labels.FERPLUS_COLUMNS`.
        usage: array (N,) of split names.
        image_names: array (N,) of FER+ image names (empty where FER+ dropped the image).
    """

    votes: np.ndarray
    usage: np.ndarray
    image_names: np.ndarray


def load_ferplus(path: str | Path, expected_rows: int | None = None) -> FerPlusVotes:
    """Loads ``fer2013new.csv`` (one row per FER2013 row, same order).

    Args:
        path: the FER+ CSV.
        expected_rows: if given, the number of FER2013 rows it must align with.

    Raises:
        DataFormatError: for a wrong header, a bad vote or a row-count mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FER+ CSV not found: {path}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        expected = ["Usage", "Image name", *FERPLUS_COLUMNS]
        if header is None or [h.strip() for h in header] != expected:
            raise DataFormatError(f"{path}: header {header!r}; expected {','.join(expected)}")
        usage, names, votes = [], [], []
        for row, fields in enumerate(reader):
            if len(fields) != len(expected):
                raise DataFormatError(f"{path}: data row {row}: {len(fields)} fields; expected {len(expected)}")
            try:
                counts = [int(v) for v in fields[2:]]
            except ValueError:
                raise DataFormatError(f"{path}: data row {row}: a vote is not an integer: {fields[2:]}") from None
            if min(counts) < 0:
                raise DataFormatError(f"{path}: data row {row}: negative vote")
            usage.append(fields[0])
            names.append(fields[1])
            votes.append(counts)
    if expected_rows is not None and len(votes) != expected_rows:
        raise DataFormatError(f"{path}: {len(votes)} rows; FER2013 has {expected_rows}")
    return FerPlusVotes(
        votes=np.array(votes, dtype=np.int16),
        usage=np.array(usage),
        image_names=np.array(names),
    )
