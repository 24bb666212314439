"""Which parts of a face a prediction rests on: occlusion sensitivity maps.

Cover one square of the face at a time with the face's mean grey and see how far the predicted
class's log-odds fall. Squares whose cover lowers them carry evidence *for* the prediction;
squares whose cover raises them carry evidence against. Log-odds, not probability: a confident
0.98 that falls to 0.90 has lost real evidence (log-odds 3.9 to 2.2) though the probability
barely moved. Unlike gradient maps this needs only the
model's forward pass, so it works the same for the Keras model and its LiteRT copy, and it
explains exactly what the app runs: the classifier callable gets the raw aligned faces and
applies the model's own pre-processing (illumination correction, flip TTA) itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# A 20-pixel square covers a mouth or both brows of a 48x48 face: smiles are redundant evidence,
# and 12-pixel squares left the released model's confident "happy" unmoved on some smiling photos
# (tests/test_explain.py). A 4-pixel stride gives 8 x 8 = 64 covered copies, one batch.
PATCH: int = 20
STRIDE: int = 4
# Covered copies per 48x48 face with these settings.
COPIES: int = ((48 - PATCH) // STRIDE + 1) ** 2
_EPS: float = 1e-6


@dataclass(frozen=True, eq=False)
class OcclusionMap:
    """How much covering each pixel's neighbourhood lowers one class's log-odds.

    Attributes:
        drop: float32 (H, W), mean fall in the class's log-odds, ``log(p / (1 - p))``, over the
            squares covering each pixel (negative where covering raises them).
        target: the class explained.
        probability: its probability on the uncovered face.
    """

    drop: np.ndarray
    target: int
    probability: float

    @property
    def peak(self) -> tuple[int, int]:
        """``(row, column)`` of the pixel whose cover lowers the log-odds most."""
        row, col = np.unravel_index(int(np.argmax(self.drop)), self.drop.shape)
        return int(row), int(col)


def occluded_copies(gray_face: np.ndarray, patch: int = PATCH, stride: int = STRIDE) -> tuple[np.ndarray, list]:
    """Copies of a face with one square each covered by the face's mean grey.

    Returns:
        ``(faces, squares)``: uint8 (K, H, W) and the K ``(top, left)`` corners.
    """
    face = np.asarray(gray_face, dtype=np.uint8)
    if face.ndim != 2 or min(face.shape) < patch:
        raise ValueError(f"expected a grey face (H, W) of at least {patch} pixels; got shape {face.shape}")
    h, w = face.shape
    fill = np.uint8(round(float(face.mean())))
    squares = [(top, left) for top in range(0, h - patch + 1, stride) for left in range(0, w - patch + 1, stride)]
    faces = np.repeat(face[None], len(squares), axis=0)
    for k, (top, left) in enumerate(squares):
        faces[k, top:top + patch, left:left + patch] = fill
    return faces, squares


def occlusion_map(classify: Callable[[np.ndarray], np.ndarray], gray_face: np.ndarray, target: int | None = None,
                  patch: int = PATCH, stride: int = STRIDE) -> OcclusionMap:
    """The occlusion sensitivity map of one face for one class.

    Args:
        classify: maps uint8 faces (N, H, W) to probabilities (N, classes), pre-processing
            included (e.g. ``FerPipeline.classify``).
        gray_face: uint8 (H, W), the aligned face as the classifier expects it.
        target: the class to explain; default: the face's most probable class.
        patch: side of the covering square.
        stride: step between squares.
    """
    faces, squares = occluded_copies(gray_face, patch, stride)
    probs = np.asarray(classify(np.concatenate([np.asarray(gray_face, np.uint8)[None], faces])), dtype=np.float64)
    if target is None:
        target = int(np.argmax(probs[0]))
    p = np.clip(probs[:, target], _EPS, 1 - _EPS)
    log_odds = np.log(p / (1 - p))
    total = np.zeros(np.shape(gray_face), dtype=np.float64)
    count = np.zeros_like(total)
    for (top, left), value in zip(squares, log_odds[1:], strict=True):
        total[top:top + patch, left:left + patch] += log_odds[0] - value
        count[top:top + patch, left:left + patch] += 1
    drop = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return OcclusionMap(drop=drop.astype(np.float32), target=target, probability=float(probs[0, target]))


# The weakest full colour: a map of noise (changes well under one log-odds unit) stays faint.
MIN_SCALE: float = 0.5


def shared_scale(drops: Sequence[np.ndarray]) -> float:
    """The log-odds change to draw at full colour for maps shown together: their largest
    magnitude (at least :data:`MIN_SCALE`), so equal colours mean equal changes across them.
    """
    return max([MIN_SCALE, *(float(np.abs(drop).max()) for drop in drops if np.size(drop))])


def overlay(gray_face: np.ndarray, drop: np.ndarray, zoom: int = 3, scale: float | None = None,
            alpha: float = 0.55) -> np.ndarray:
    """The face in grey with the map over it: red where covering lowers the log-odds, blue where
    it raises them, clear where it changes nothing.

    Args:
        gray_face: uint8 (H, W).
        drop: (H, W) map from :func:`occlusion_map`.
        zoom: integer enlargement (nearest neighbour for the face, smooth for the map).
        scale: the log-odds change drawn at full colour; default: this map's own
            :func:`shared_scale` (pass one for several maps to compare them colour for colour).
        alpha: opacity of the colour at full strength.

    Returns:
        uint8 RGB (H * zoom, W * zoom, 3).
    """
    import cv2

    face = np.asarray(gray_face, dtype=np.float32)
    h, w = face.shape
    size = (w * zoom, h * zoom)
    grey = cv2.resize(face, size, interpolation=cv2.INTER_NEAREST)
    heat = cv2.resize(np.asarray(drop, dtype=np.float32), size, interpolation=cv2.INTER_CUBIC)
    full = shared_scale([drop]) if scale is None else scale
    strength = np.clip(heat / full, -1.0, 1.0)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    red, blue = np.array([230.0, 40.0, 40.0]), np.array([40.0, 90.0, 230.0])
    colour = np.where(strength[..., None] >= 0, red, blue)
    weight = alpha * np.abs(strength)[..., None]
    return np.clip(rgb * (1 - weight) + colour * weight, 0, 255).astype(np.uint8)
