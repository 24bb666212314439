"""The embedded PublicTest + PrivateTest faces (7,178 of 48x48) that a fresh clone works from.

Stored as horizontally delta-coded pixels compressed with LZMA (about 12 MB; plain zip would
be 15.7 MB), with labels, splits and FER2013 row indices. Build it with
``python -m fer.testset build``; the app and ``fer.evaluate`` read it when the dataset is absent.
"""

from __future__ import annotations

import argparse
import functools
import lzma
import sys
from pathlib import Path

import numpy as np

from fer.data import FerDataset, load_fer2013
from fer.labels import EVAL_SPLITS, FACE_SIZE
from fer.paths import FER2013_CSV, TEST_FACES_PATH


def _delta_encode(images: np.ndarray) -> np.ndarray:
    coded = images.copy()
    coded[:, :, 1:] = np.diff(images.astype(np.int16), axis=2).astype(np.uint8)
    return coded


def _delta_decode(coded: np.ndarray) -> np.ndarray:
    # uint8 cumulative sum wraps modulo 256, exactly inverting the wrapped differences.
    return np.cumsum(coded, axis=2, dtype=np.uint8)


def build_test_faces(dataset: FerDataset, path: Path = TEST_FACES_PATH) -> Path:
    """Writes the evaluation splits of ``dataset`` to the embedded file."""
    mask = np.isin(dataset.usage, EVAL_SPLITS)
    images = dataset.images[mask]
    payload = lzma.compress(_delta_encode(images).tobytes(), preset=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        pixels_xz=np.frombuffer(payload, dtype=np.uint8),
        count=np.array(len(images)),
        labels=dataset.labels[mask].astype(np.int8),
        usage=dataset.usage[mask].astype("U11"),
        rows=dataset.rows[mask].astype(np.int32),
        source_sha256=np.array(dataset.checksum),
    )
    return path


@functools.lru_cache(maxsize=1)
def load_test_faces(path: Path = TEST_FACES_PATH) -> FerDataset:
    """Reads the embedded evaluation faces (cached per process; treat arrays as read-only).

    Raises:
        FileNotFoundError: if the embedded file is missing.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"embedded test faces not found: {path}; run `python -m fer.testset build`")
    with np.load(path, allow_pickle=False) as archive:
        count = int(archive["count"])
        coded = np.frombuffer(lzma.decompress(archive["pixels_xz"].tobytes()), dtype=np.uint8)
        images = _delta_decode(coded.reshape(count, FACE_SIZE, FACE_SIZE))
        images.setflags(write=False)
        return FerDataset(
            images=images,
            labels=archive["labels"].astype(np.int64),
            usage=archive["usage"].astype(str),
            rows=archive["rows"].astype(np.int64),
            checksum=str(archive["source_sha256"]),
            source=str(path),
        )


def load_eval_dataset(data: str | Path | None = None) -> FerDataset:
    """Returns the dataset to evaluate on: ``data`` if given, else the full CSV beside the
    project if present, else the embedded faces (identical pixels for the evaluation splits).
    """
    if data:
        return load_fer2013(data)
    if FER2013_CSV.is_file():
        return load_fer2013(FER2013_CSV)
    return load_test_faces()


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m fer.testset build [--data CSV]``."""
    parser = argparse.ArgumentParser(prog="python -m fer.testset")
    parser.add_argument("command", choices=("build",))
    parser.add_argument("--data", default=str(FER2013_CSV))
    args = parser.parse_args(argv)
    path = build_test_faces(load_fer2013(args.data))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
