"""Aligning a face to FER2013's framing: eyes level, features where FER2013 puts them.

FER2013's faces were registered automatically and vary, but on average they are framed
tightly: eyes at 39% of the height, mouth at 79%, chin at the bottom edge, 37% of the width
between the eyes. :data:`FER2013_TEMPLATE` is the median dlib landmark layout of FER2013 faces,
from :func:`estimate_template` on 1,500 faces drawn at random (seed 0) from the whole CSV, of
which the HOG detector found exactly one face in 1,004. A photo's face is rotated so its eyes
are level, then scaled and shifted, by least squares on the inner landmarks (brows, eyes, nose,
mouth; the jaw line moves too much with pose), onto that layout.
"""

from __future__ import annotations

import math

import numpy as np

from fer.detect import Box
from fer.labels import FACE_SIZE
from fer.landmarks import eye_centers

# Median positions of the 68 dlib landmarks on 48x48 FER2013 faces, eyes levelled.
FER2013_TEMPLATE: np.ndarray = np.array([
    [4.8, 19.6], [4.9, 24.5], [5.6, 29.4], [6.6, 34.2], [8.3, 38.8], [10.9, 42.7], [14.7, 46.1],
    [19.0, 48.3], [24.1, 48.7], [29.0, 48.3], [33.4, 46.1], [37.1, 42.8], [40.0, 38.8], [41.8, 34.3],
    [42.8, 29.4], [43.4, 24.4], [43.6, 19.4],  # jaw
    [7.7, 15.0], [10.1, 13.0], [13.5, 12.4], [17.0, 12.9], [20.4, 14.2],  # right brow
    [27.4, 14.1], [30.8, 12.8], [34.3, 12.3], [37.8, 13.0], [40.2, 15.1],  # left brow
    [24.0, 18.4], [23.9, 21.7], [23.9, 25.0], [23.9, 28.2], [20.0, 30.6], [21.9, 31.3], [23.9, 31.9],
    [26.0, 31.3], [27.9, 30.7],  # nose
    [11.5, 18.9], [13.7, 17.6], [16.4, 17.6], [18.7, 19.4], [16.2, 19.9], [13.5, 19.9],  # right eye
    [29.2, 19.4], [31.5, 17.6], [34.2, 17.6], [36.3, 18.9], [34.4, 19.9], [31.7, 19.9],  # left eye
    [16.3, 37.1], [18.9, 35.6], [21.8, 34.9], [24.0, 35.5], [26.1, 35.0], [29.0, 35.6], [31.7, 37.1],
    [29.1, 40.0], [26.3, 41.2], [24.0, 41.5], [21.7, 41.3], [18.8, 39.9],  # outer mouth
    [17.4, 37.2], [21.8, 36.5], [24.0, 36.8], [26.1, 36.6], [30.5, 37.2], [26.1, 38.7], [23.9, 38.9],
    [21.8, 38.6],  # inner mouth
], dtype=np.float64)
TEMPLATE_SIZE: int = 48
# Landmarks used for the fit: everything but the jaw line.
FIT_POINTS: slice = slice(17, 68)


def eye_angle(landmarks: np.ndarray) -> float:
    """Returns the roll of the face in degrees: the angle of the line from the right eye (image
    left) to the left eye, positive when the image-right eye is lower.
    """
    right, left = eye_centers(landmarks)
    return math.degrees(math.atan2(float(left[1] - right[1]), float(left[0] - right[0])))


def alignment_matrix(landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Returns the 2x3 affine matrix taking image pixels to a ``size`` x ``size`` aligned face.

    The matrix rotates about the eye midpoint so the eyes are level, then scales and shifts so
    the inner landmarks best match :data:`FER2013_TEMPLATE` (least squares, no further
    rotation).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    right, left = eye_centers(points)
    angle = math.atan2(left[1] - right[1], left[0] - right[0])
    cos, sin = math.cos(-angle), math.sin(-angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    rotated = points[FIT_POINTS] @ rotation.T
    target = FER2013_TEMPLATE[FIT_POINTS] * (size / TEMPLATE_SIZE)
    src_centred = rotated - rotated.mean(axis=0)
    dst_centred = target - target.mean(axis=0)
    scale = float((src_centred * dst_centred).sum() / max((src_centred**2).sum(), 1e-9))
    linear = scale * rotation
    shift = target.mean(axis=0) - scale * rotated.mean(axis=0)
    return np.hstack([linear, shift[:, None]])


def warp_face(image: np.ndarray, matrix: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Applies an alignment matrix, anti-aliased when shrinking a large face.

    Pixels from outside the image (faces at the border) are filled by reflection, which keeps
    the crop face-like instead of adding a black bar FER2013 never showed the model.
    """
    import cv2

    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    # Warping straight to 48 px from a 400 px face would alias; warp to an intermediate
    # multiple of the size and shrink with area averaging.
    factor = max(1, min(8, int(1.0 / max(scale, 1e-9))))
    if factor > 1:
        matrix = matrix * factor
    big = cv2.warpAffine(
        image, matrix, (size * factor, size * factor), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    if factor == 1:
        return big
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def align_face(gray_image: np.ndarray, landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Returns the face as a ``size`` x ``size`` uint8 grey image in FER2013's framing."""
    return warp_face(gray_image, alignment_matrix(landmarks, size), size)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Applies a 2x3 affine matrix to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def estimate_template(gray_faces: np.ndarray, detector, predictor, upscale: int = 4) -> tuple[np.ndarray, int]:
    """Estimates the median landmark layout of small aligned faces (how the template was made).

    Each face is enlarged ``upscale`` times (dlib's detector needs ~80 px faces), faces where
    the HOG detector finds exactly one face get landmarks, those are rotated about the eye
    midpoint so the eyes are level, and the per-point median is taken.

    Args:
        gray_faces: uint8 (N, S, S) faces, e.g. FER2013's 48x48.
        detector: a ``fer.detect.HogDetector``.
        predictor: a ``fer.landmarks.LandmarkPredictor``.
        upscale: enlargement before detection.

    Returns:
        ``(template, used)``: (68, 2) float64 in the faces' pixels, and how many faces it used.
    """
    import cv2

    levelled = []
    for face in gray_faces:
        big = cv2.resize(face, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        found = detector.detect(big)
        if len(found) != 1:
            continue
        points = predictor.predict(big, found[0].box).astype(np.float64) / upscale
        right, left = eye_centers(points)
        angle = math.atan2(left[1] - right[1], left[0] - right[0])
        cos, sin = math.cos(-angle), math.sin(-angle)
        centre = (right + left) / 2
        levelled.append((points - centre) @ np.array([[cos, -sin], [sin, cos]]).T + centre)
    if not levelled:
        raise ValueError("no face was found in any of the given faces")
    return np.median(np.stack(levelled), axis=0), len(levelled)


def box_crop(gray_image: np.ndarray, box: Box, size: int = FACE_SIZE, enlarge: float = 1.28) -> np.ndarray:
    """Crops a square around a HOG-style box without landmarks, in FER2013's average framing.

    FER2013's faces are on average a dlib HOG box enlarged 1.28 times, centred 5% of its height
    above the box centre. Used when landmarks are not wanted; pads by reflection at borders.
    """
    x, y, w, h = box
    side = max(w, h) * enlarge
    cx, cy = x + w / 2, y + h / 2 - 0.053 * h
    scale = size / side
    matrix = np.array([[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]])
    return warp_face(gray_image, matrix, size)
