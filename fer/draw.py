"""Drawing on RGB images: face boxes with labels, probability bars, landmark region outlines.

Every function returns a new image and leaves its input untouched. Coordinates given in the
original photo's pixels are mapped with ``scale`` (drawing pixels per original pixel), since
the pipeline may work on a reduced copy of a big photo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fer.detect import Box
from fer.labels import EMOTIONS
from fer.landmarks import CLOSED_REGIONS, REGIONS

# One colour per emotion (RGB), readable on photos and distinct for the common confusions.
EMOTION_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (230, 40, 40),
    "disgust": (120, 170, 30),
    "fear": (150, 60, 200),
    "happy": (255, 200, 0),
    "sad": (40, 110, 230),
    "surprise": (255, 120, 200),
    "neutral": (200, 200, 200),
}
REGION_COLORS: dict[str, tuple[int, int, int]] = {
    "jaw": (255, 255, 255),
    "right_eyebrow": (255, 160, 0),
    "left_eyebrow": (255, 160, 0),
    "nose": (0, 220, 255),
    "right_eye": (0, 255, 0),
    "left_eye": (0, 255, 0),
    "outer_mouth": (255, 0, 90),
    "inner_mouth": (255, 120, 170),
}


def _line_width(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 400))


def draw_regions(
    rgb_image: np.ndarray, landmarks: np.ndarray, scale: float = 1.0, thickness: int | None = None
) -> np.ndarray:
    """Outlines the named landmark regions (eyes and mouth closed, the rest open curves)."""
    import cv2

    out = rgb_image.copy()
    width = thickness or _line_width(out)
    points = np.round(np.asarray(landmarks, dtype=np.float64) * scale).astype(np.int32)
    for name, idx in REGIONS.items():
        cv2.polylines(
            out, [points[idx.start : idx.stop].reshape(-1, 1, 2)], name in CLOSED_REGIONS,
            REGION_COLORS[name], width, cv2.LINE_AA,
        )
    return out


def _font_scale(image: np.ndarray) -> float:
    return max(0.35, max(image.shape[:2]) / 1600)


def draw_box(
    rgb_image: np.ndarray, box: Box, text: str = "", color: tuple[int, int, int] = (0, 255, 0), scale: float = 1.0
) -> np.ndarray:
    """Draws one box with an optional caption above it (inside it at the top edge)."""
    import cv2

    out = rgb_image.copy()
    x, y, w, h = (round(v * scale) for v in box)
    width = _line_width(out)
    cv2.rectangle(out, (x, y), (x + w, y + h), color, width, cv2.LINE_AA)
    if text:
        font_scale = _font_scale(out)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = y - th - base - 2 if y - th - base - 2 >= 0 else y
        cv2.rectangle(out, (x, top), (x + tw + 4, top + th + base + 2), color, -1)
        cv2.putText(out, text, (x + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def probability_panel(
    probabilities: Sequence[dict[str, float]], height: int, width: int = 240, row: int = 14,
    numbers: Sequence[int] | None = None,
) -> np.ndarray:
    """A dark panel listing each face's class probabilities as bars (for saved annotations).

    Bars beside faces would cover the neighbours in a group photo, hence a separate panel. It
    is at least ``height`` tall and grows to fit every face. ``numbers`` name the faces (default
    1, 2, ...).
    """
    import cv2

    block = row * (len(EMOTIONS) + 2)
    panel = np.full((max(height, block * len(probabilities) + row), width, 3), 32, np.uint8)
    label_w, bar_w = 80, width - 80 - 50
    for i, probs in enumerate(probabilities):
        top = row + i * block
        title = f"face {i + 1 if numbers is None else numbers[i]}"
        cv2.putText(panel, title, (6, top + row - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        for j, name in enumerate(EMOTIONS):
            y = top + (j + 1) * row
            value = float(probs.get(name, 0.0))
            cv2.putText(panel, name, (6, y + row - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (220, 220, 220), 1, cv2.LINE_AA)
            cv2.rectangle(panel, (label_w, y + 2), (label_w + round(bar_w * value), y + row - 2), EMOTION_COLORS[name],
                          -1)
            cv2.putText(panel, f"{value:.2f}", (label_w + bar_w + 4, y + row - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (220, 220, 220), 1, cv2.LINE_AA)
    return panel


def annotate_faces(
    rgb_image: np.ndarray,
    boxes: Sequence[Box],
    labels: Sequence[str],
    scores: Sequence[float],
    probabilities: Sequence[dict[str, float]] | None = None,
    scale: float = 1.0,
    numbers: Sequence[int] | None = None,
) -> np.ndarray:
    """Draws every face's box and ``n: label score`` caption.

    ``n`` counts the faces from 1 unless ``numbers`` gives each face's own (a video's track
    numbers, so the boxes match the timelines). With ``probabilities``, a
    :func:`probability_panel` is added on the right (the image is padded below if the panel is
    taller).
    """
    if numbers is None:
        numbers = range(1, len(boxes) + 1)
    out = rgb_image.copy()
    for box, label, score, number in zip(boxes, labels, scores, numbers, strict=True):
        out = draw_box(out, box, f"{number}: {label} {score:.2f}", EMOTION_COLORS.get(label, (0, 255, 0)), scale)
    if probabilities is None or not len(probabilities):
        return out
    panel = probability_panel(probabilities, out.shape[0], numbers=numbers)
    if panel.shape[0] > out.shape[0]:
        out = np.pad(out, ((0, panel.shape[0] - out.shape[0]), (0, 0), (0, 0)))
    return np.hstack([out, panel])


def face_overlay(
    rgb_image: np.ndarray, box: Box, landmarks: np.ndarray, scale: float = 1.0, size: int = 256
) -> np.ndarray:
    """Returns a square close-up of one face (box enlarged 1.6x) with its landmark regions drawn.

    Args:
        rgb_image: the photo (possibly a reduced copy: ``scale`` maps original pixels to it).
        box: the face box in original pixels.
        landmarks: (68, 2) in original pixels.
        scale: drawing pixels per original pixel.
        size: side of the returned image.
    """
    import cv2

    x, y, w, h = box
    side = max(w, h) * 1.6 * scale
    cx, cy = (x + w / 2) * scale, (y + h / 2) * scale
    zoom = size / max(side, 1.0)
    matrix = np.array([[zoom, 0.0, size / 2 - zoom * cx], [0.0, zoom, size / 2 - zoom * cy]])
    crop = cv2.warpAffine(rgb_image, matrix, (size, size), flags=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)
    points = np.asarray(landmarks, dtype=np.float64) * scale * zoom + matrix[:, 2]
    return draw_regions(crop, points, 1.0, thickness=max(1, size // 160))
