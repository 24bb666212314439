"""dlib's 68-point facial landmarks and their named regions (iBUG 300-W numbering).

"Right" and "left" are the person's own: the right eye (36-41) is on the left of the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer.detect import Box

# 0-based, end-exclusive ranges of the 68-point layout.
REGIONS: dict[str, range] = {
    "jaw": range(0, 17),
    "right_eyebrow": range(17, 22),
    "left_eyebrow": range(22, 27),
    "nose": range(27, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "outer_mouth": range(48, 60),
    "inner_mouth": range(60, 68),
}
# Regions drawn as closed outlines; the others are open curves.
CLOSED_REGIONS: frozenset[str] = frozenset({"right_eye", "left_eye", "outer_mouth", "inner_mouth"})
NUM_LANDMARKS: int = 68


def default_predictor_path() -> Path:
    """Path of the 68-point model shipped by the ``face-recognition-models`` package."""
    import face_recognition_models

    return Path(face_recognition_models.pose_predictor_model_location())


class LandmarkPredictor:
    """dlib's ensemble-of-regression-trees 68-point shape predictor.

    The predictor is const in dlib and holds no per-call state, so one instance is shared
    across threads without a lock.

    Args:
        model_path: a ``shape_predictor_68_face_landmarks.dat``; defaults to
            :func:`default_predictor_path`.
    """

    def __init__(self, model_path: str | Path | None = None) -> None:
        import dlib

        path = Path(model_path) if model_path else default_predictor_path()
        if not path.is_file():
            raise FileNotFoundError(f"landmark model not found: {path} (pip install face-recognition-models)")
        self._predictor = dlib.shape_predictor(str(path))

    def predict(self, gray_image: np.ndarray, box: Box) -> np.ndarray:
        """Returns the 68 landmarks (float32, (68, 2), x then y) of the face in ``box``.

        The box may reach outside the image; the predictor was trained on HOG detector boxes,
        so other detectors' boxes should be converted first (see ``fer.pipeline``).
        """
        import dlib

        x, y, w, h = (int(v) for v in box)
        shape = self._predictor(np.ascontiguousarray(gray_image), dlib.rectangle(x, y, x + w - 1, y + h - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def region_points(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Splits 68 landmarks into the named :data:`REGIONS` (each an (n, 2) view)."""
    if landmarks.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected landmarks of shape (68, 2), got {landmarks.shape}")
    return {name: landmarks[idx.start : idx.stop] for name, idx in REGIONS.items()}


def eye_centers(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns the centres of the person's right eye and left eye, (x, y) each."""
    right = landmarks[REGIONS["right_eye"].start : REGIONS["right_eye"].stop].mean(axis=0)
    left = landmarks[REGIONS["left_eye"].start : REGIONS["left_eye"].stop].mean(axis=0)
    return right, left
