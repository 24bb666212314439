"""The sample photos' manifest (``shared/data/photos/manifest.csv``): hand counts and labels.

One reader for the tests, the benchmarks and their reports. ``faces`` is a count or a range
(``1-2``: either is right); ``expression`` labels a single-face photo's clear expression, with its
confidence in the notes (``expr_conf=high`` or ``medium``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from fer.paths import PHOTOS_DIR

MANIFEST_NAME: str = "manifest.csv"


def manifest_rows(folder: Path = PHOTOS_DIR) -> list[dict[str, str]]:
    """The manifest's rows (``file``, ``faces``, ``expression``, ``notes``, ...).

    Raises:
        FileNotFoundError: the folder has no manifest.
    """
    with (Path(folder) / MANIFEST_NAME).open(newline="") as handle:
        return list(csv.DictReader(handle))


def count_range(spec: str) -> tuple[int, int]:
    """'2' -> (2, 2); '1-2' -> (1, 2): either count is right."""
    low, _, high = spec.partition("-")
    return int(low), int(high or low)


def tally(count: int, spec: str) -> tuple[int, int, int]:
    """How ``count`` faces found in a photo whose manifest count is ``spec`` ('2', '1-2') score:
    ``(countable, found, extra)``. A face the range leaves optional counts only when found, so
    a photo adds at least its range's low end and at most its high end to the countable faces.
    """
    low, high = count_range(spec)
    countable = high if count >= high else max(low, count)
    return countable, min(count, high), max(0, count - high)


def labelled_photos(folder: Path = PHOTOS_DIR) -> list[tuple[str, str, str]]:
    """(file, expression, confidence) of every photo the manifest labels."""
    labelled = []
    for row in manifest_rows(folder):
        confidence = re.search(r"expr_conf=(\w+)", row["notes"])
        if row["expression"] and confidence:
            labelled.append((row["file"], row["expression"], confidence.group(1)))
    return labelled


def group_photos(folder: Path = PHOTOS_DIR) -> list[str]:
    """The photos the manifest counts exactly two or more faces in, in manifest order."""
    return [row["file"] for row in manifest_rows(folder) if row["faces"].isdigit() and int(row["faces"]) >= 2]


def group_mosaic(folder: Path = PHOTOS_DIR, cell: tuple[int, int] = (1333, 1000)) -> tuple[np.ndarray, list[str]]:
    """The first nine group photos tiled 3x3, each fitted into ``cell`` (aspect kept, centred on
    black): a 12 MP group photo with faces of about 2-6% of its width, what a phone's holds.

    Returns:
        ``(mosaic, names)``: uint8 RGB (3 x cell height, 3 x cell width, 3) and the photos used.

    Raises:
        ValueError: the folder has fewer than nine group photos.
    """
    from PIL import Image

    names = group_photos(folder)[:9]
    if len(names) < 9:
        raise ValueError(f"{folder} has {len(names)} group photos; the mosaic needs 9")
    width, height = cell
    mosaic = np.zeros((3 * height, 3 * width, 3), np.uint8)
    for i, name in enumerate(names):
        photo = Image.open(Path(folder) / name).convert("RGB")
        factor = min(width / photo.width, height / photo.height)
        fitted = np.asarray(photo.resize((round(photo.width * factor), round(photo.height * factor)),
                                         Image.Resampling.LANCZOS))
        top = (i // 3) * height + (height - fitted.shape[0]) // 2
        left = (i % 3) * width + (width - fitted.shape[1]) // 2
        mosaic[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
    return mosaic, names


def crowd(name: str, width: int, copies: int, folder: Path = PHOTOS_DIR) -> tuple[np.ndarray, int]:
    """A crowd of small faces: one sample photo shrunk to ``width`` px wide and repeated
    ``copies`` x ``copies`` times.

    Its faces are as many times smaller, relative to the whole, as there are copies a side: the
    five-person ``pyfeat_multi_face.jpg``'s faces are ~10.5% of its width, so at 240 px and 2x2
    they are ~25 px and 5% of the crowd's, at 200 px and 4x4 ~2.6%.

    Returns:
        ``(crowd, faces)``: uint8 RGB and its face count (the manifest's, times the copies).

    Raises:
        ValueError: the manifest does not count the photo's faces exactly.
    """
    import cv2

    from fer.image_io import read_image

    spec = next(row["faces"] for row in manifest_rows(folder) if row["file"] == name)
    if not spec.isdigit():
        raise ValueError(f"{name}'s faces are counted as {spec!r}, not exactly")
    rgb = read_image(Path(folder) / name).rgb
    small = cv2.resize(rgb, (width, round(rgb.shape[0] * width / rgb.shape[1])), interpolation=cv2.INTER_AREA)
    return np.vstack([np.hstack([small] * copies)] * copies), int(spec) * copies * copies
