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
