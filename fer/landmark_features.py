"""dlib landmark coordinates as model features (the paper's feature-extraction hypothesis).

One function turns a 48x48 face into 136 numbers, used identically for the dataset (training,
evaluation) and for faces cropped from photos. Build the table for all FER2013 rows with
``python -m fer.landmark_features --out fer/assets/landmark_features.npz``.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from fer.cli import argument_parser

# dlib's predictor was trained on faces far larger than 48 px: upscaling first makes its
# regression trees land on the features instead of collapsing to the mean shape.
_UPSCALE = 2
_MARGIN = 0.04


@functools.lru_cache(maxsize=1)
def _predictor():
    import dlib
    import face_recognition_models

    return dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


def face_landmark_features(gray_face: np.ndarray) -> np.ndarray:
    """Returns 68 (x, y) landmarks of a registered FER-style face, scaled to [0, 1], flattened.

    Args:
        gray_face: uint8 (48, 48) face, registered like FER2013 (the face fills the frame).

    Returns:
        float32 array (136,): x0, y0, x1, y1, ... in units of the face width.
    """
    import cv2
    import dlib

    size = gray_face.shape[0] * _UPSCALE
    big = cv2.resize(gray_face, (size, size), interpolation=cv2.INTER_LINEAR)
    margin = int(size * _MARGIN)
    shape = _predictor()(big, dlib.rectangle(margin, margin, size - margin, size - margin))
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
    return np.clip(points / size, 0.0, 1.0).reshape(-1)


def build_table(images: np.ndarray) -> np.ndarray:
    """Returns uint8-quantised features (N, 136) (value / 255 recovers the coordinate)."""
    table = np.empty((len(images), 136), dtype=np.uint8)
    for i, face in enumerate(images):
        table[i] = np.round(face_landmark_features(face) * 255)
    return table


def model_landmark_features(gray_faces: np.ndarray) -> np.ndarray:
    """Returns the landmark input (N, 136) float32 of faces exactly as training saw it.

    Training reads the uint8 table, so serving quantises the same way: no silent skew.
    """
    return build_table(gray_faces).astype(np.float32) / 255.0


def main(argv: list[str] | None = None) -> int:
    """CLI: build the landmark table for every FER2013 row."""
    from fer.data import load_fer2013
    from fer.paths import FER2013_CSV

    parser = argument_parser("python -m fer.landmark_features", __doc__)
    parser.add_argument("--data", default=str(FER2013_CSV), help="FER2013 CSV(.gz)")
    parser.add_argument("--out", required=True,
                        help="the table to write, e.g. fer/assets/landmark_features.npz")
    args = parser.parse_args(argv)
    dataset = load_fer2013(args.data)
    table = build_table(dataset.images)
    np.savez_compressed(args.out, features_q=table, rows=dataset.rows.astype(np.int32))
    return 0


def load_table(path: str) -> np.ndarray:
    """Reads a landmark table as float32 (N, 136), indexed by FER2013 row."""
    with np.load(path) as archive:
        return archive["features_q"].astype(np.float32) / 255.0


if __name__ == "__main__":
    sys.exit(main())
