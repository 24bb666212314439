"""The sample photos' manifest (``shared/data/photos/manifest.csv``): hand counts and labels.

One reader for the tests, the benchmarks and their reports. ``faces`` is a count or a range
(``1-2``: either is right); ``expression`` labels a single-face photo's clear expression, with its
confidence in the notes (``expr_conf=high`` or ``medium``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

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


def group_mosaic(folder: Path = PHOTOS_DIR, cell: tuple[int, int] = (1333, 1000)):
    """The first nine group photos tiled 3x3, each resized to ``cell``: a 12 MP group photo.

    Faces in the sample group photos are 8-20% of their width; tiled, 3-7% of the mosaic's,
    about what a phone's group photo holds.

    Returns:
        ``(mosaic, names)``: uint8 RGB (3 x cell height, 3 x cell width, 3) and the photos used.
    """
    import numpy as np
    from PIL import Image

    names = group_photos(folder)[:9]
    if len(names) < 9:
        raise ValueError(f"{folder} has {len(names)} group photos; the mosaic needs 9")
    width, height = cell
    mosaic = np.zeros((3 * height, 3 * width, 3), np.uint8)
    for i, name in enumerate(names):
        row, col = divmod(i, 3)
        photo = Image.open(Path(folder) / name).convert("RGB").resize(cell, Image.Resampling.LANCZOS)
        mosaic[row * height:(row + 1) * height, col * width:(col + 1) * width] = np.asarray(photo)
    return mosaic, names
