"""Faces found and labels kept when the sample photos are degraded: dark, bright, blurred, noisy,
heavily compressed, shrunk.

``python benchmarks/robustness.py [--photos DIR] [--tta]``

Each degradation is applied to every sample photo (``fer.photos.manifest_rows``), and the default
pipeline analyses the result as an upload (JPEG-encoded at quality 95, but for the compressed
one). It prints, per degradation: the countable faces found and the extra ones, by the manifest's
hand counts and ranges (as ``detection_report.py`` counts them), and how many of the labelled
photos keep their hand label, with the time. The degradations are fixed (no randomness but a
seeded noise), so two runs differ only in their times.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from fer.detect import shrink_by  # noqa: E402
from fer.image_io import read_image  # noqa: E402
from fer.paths import PHOTOS_DIR  # noqa: E402
from fer.photos import count_range, labelled_photos, manifest_rows, tally  # noqa: E402
from fer.pipeline import FerPipeline  # noqa: E402


def _tone(rgb: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    """Exposure: linear gain after a gamma curve (gamma > 1 darkens the mid-tones)."""
    x = (rgb.astype(np.float32) / 255.0) ** gamma * gain
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _blur(rgb: np.ndarray, sigma_share: float) -> np.ndarray:
    """Gaussian blur of ``sigma_share`` of the photo's longer side (so alike at every size)."""
    import cv2

    sigma = sigma_share * max(rgb.shape[:2])
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def _noise(rgb: np.ndarray, sd: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(rgb + rng.normal(0, sd, rgb.shape), 0, 255).astype(np.uint8)


# name -> (change to the pixels, JPEG quality of the upload)
DEGRADATIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "none": (lambda rgb: rgb, 95),
    "dark (gamma 2, x0.35)": (lambda rgb: _tone(rgb, 0.35, 2.0), 95),
    "very dark (gamma 2.5, x0.2)": (lambda rgb: _tone(rgb, 0.2, 2.5), 95),
    "overexposed (x1.8)": (lambda rgb: _tone(rgb, 1.8, 1.0), 95),
    "blurred (sigma 0.4% of side)": (lambda rgb: _blur(rgb, 0.004), 95),
    "noisy (sd 20 grey levels)": (lambda rgb: _noise(rgb, 20.0), 95),
    "JPEG quality 8": (lambda rgb: rgb, 8),
    "half size": (lambda rgb: shrink_by(rgb, 0.5), 95),
    "grey": (lambda rgb: np.repeat(rgb.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2), 95),
}


def jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=PHOTOS_DIR, type=Path)
    parser.add_argument("--tta", action="store_true", help="flip TTA for the labels (the app's default)")
    parser.add_argument("--only", action="append", choices=list(DEGRADATIONS), help="a degradation (repeatable)")
    args = parser.parse_args(argv)
    rows = manifest_rows(args.photos)
    labels = {name: label for name, label, _ in labelled_photos(args.photos)}
    photos = {row["file"]: read_image(args.photos / row["file"]).rgb for row in rows}
    pipeline = FerPipeline(tta=args.tta)
    print(f"{'degradation':30s} {'faces found':>12s} {'extra':>6s} {'labels kept':>12s} {'median ms':>10s}")
    for name in args.only or DEGRADATIONS:
        change, quality = DEGRADATIONS[name]
        kept, scores = 0, []
        times, missed = [], []
        for row in rows:
            start = time.perf_counter()
            result = pipeline.analyze_bytes(jpeg(change(photos[row["file"]]), quality))
            times.append((time.perf_counter() - start) * 1000)
            count = len(result.faces)
            scores.append(tally(count, row["faces"]))
            low, high = count_range(row["faces"])
            if count < low or count > high:
                missed.append(f"{row['file']} {count}/{row['faces']}")
            label = labels.get(row["file"])
            if label and len(result.faces) == 1 and result.faces[0].label == label:
                kept += 1
        countable, found, extra = (sum(column) for column in zip(*scores, strict=True))
        print(f"{name:30s} {found:>5d} of {countable:<4d} {extra:6d} {kept:>5d} of {len(labels):<4d} "
              f"{statistics.median(times):10.0f}")
        for line in missed:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
