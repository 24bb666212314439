"""Reports of analysed photos: JSON and CSV downloads and per-face context crops.

Pure functions over :class:`fer.pipeline.PhotoResult` objects (or anything with ``faces`` whose
items have ``to_dict()``, ``box``), so the app's downloads and the CLI agree on the fields.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from fer.labels import EMOTIONS

# The columns after the photo's name, shared by the app's download and ``python -m fer.predict``.
FACE_FIELDS: tuple[str, ...] = ("face", "x", "y", "w", "h", "detector", "label", "score", "tta", "temperature",
                                "turn", *EMOTIONS, "yaw", "pitch", "roll")
CSV_FIELDS: tuple[str, ...] = ("file", *FACE_FIELDS)


def results_records(named_results: Sequence[tuple[str, Any]], model: str = "") -> list[dict[str, Any]]:
    """One JSON-ready record per photo.

    File name, size, detector, TTA, the turn its faces were found at (0: upright), faces, timings
    and ``error``: ``None``, or for a photo that could not be read (given as the reason, a str,
    in place of its result) the reason, with no faces (``python -m fer.predict --json`` records it
    likewise, under its own keys).
    """
    records = []
    for name, result in named_results:
        if isinstance(result, str):
            records.append({"file": name, "model": model, "faces": [], "error": result})
            continue
        records.append({
            "file": name,
            "model": model,
            "size": [int(v) for v in result.original_size],
            "detector": result.detector,
            "illumination": result.display_illumination,
            "model_illumination": result.model_illumination,
            "tta": bool(result.tta),
            "temperature": float(result.temperature),
            "turn": float(result.turn),
            "faces": [face.to_dict() for face in result.faces],
            "timings_ms": {k: round(float(v), 1) for k, v in result.timings.items()},
            "error": None,
        })
    return records


def results_json(named_results: Sequence[tuple[str, Any]], model: str = "") -> str:
    """The results of several photos as one JSON document (a list, one object per photo)."""
    return json.dumps(results_records(named_results, model), indent=2) + "\n"


def face_rows(name: str, faces: Sequence[dict[str, Any]], tta: bool,
              temperature: float = 1.0, turn: float = 0.0) -> Iterator[list[object]]:
    """One CSV row per face (``Face.to_dict()`` form): the photo's name, then :data:`FACE_FIELDS`
    (face number from 1, box, the detector that found it, label, score, TTA as 0/1, the calibration temperature applied,
    the turn the photo's faces were found at (0: upright), 7 probabilities, then the head's yaw,
    pitch and roll in degrees, empty when unknown).

    A name a spreadsheet would run as a formula is written behind a ``'``
    (:func:`fer.annotations.guard_formula`): uploads and files on disk name themselves, and both the
    app's download and ``python -m fer.predict``'s CSV come through here.
    """
    from fer.annotations import guard_formula  # pandas: not loaded for ``fer.predict --help``

    name = guard_formula(name)
    for i, face in enumerate(faces, start=1):
        x, y, w, h = (int(v) for v in face["box"])
        pose = face.get("pose") or {}
        yield [
            name, i, x, y, w, h, face.get("detector", ""), face["label"], f"{face['score']:.6f}", int(bool(tta)),
            f"{temperature:g}", f"{turn:g}",
            *(f"{face['probabilities'][e]:.6f}" for e in EMOTIONS),
            *(f"{pose[k]:.1f}" if k in pose else "" for k in ("yaw", "pitch", "roll")),
        ]


def results_csv(named_results: Sequence[tuple[str, Any]]) -> str:
    """One CSV row per face of several photos, under :data:`CSV_FIELDS` (a photo without faces,
    or unread, its result a str, gives none); file names guarded as in :func:`face_rows`.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for name, result in named_results:
        if isinstance(result, str):
            continue
        writer.writerows(face_rows(name, [face.to_dict() for face in result.faces], result.tta,
                                   result.temperature, result.turn))
    return buffer.getvalue()


def summary_rows(named_results: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    """One short row per face of several photos: photo, face number, label, score, detector."""
    return [
        {"photo": name, "face": i, "label": face.label, "score": float(face.score), "detector": face.detector}
        for name, result in named_results
        for i, face in enumerate(result.faces, start=1)
    ]


def face_table(result: Any) -> list[dict[str, Any]]:
    """One row per face of one photo (a ``fer.pipeline.PhotoResult``): number, label, score,
    detector, box, pixels across (``FaceResult.resolution``) and yaw (``None`` where no head pose
    was fitted).
    """
    return [
        {"face": i, "label": face.label, "score": float(face.score), "detector": face.detector,
         "box (x, y, w, h)": ", ".join(str(int(v)) for v in face.box), "px": round(face.resolution),
         "yaw": None if face.pose is None else round(face.pose.yaw)}
        for i, face in enumerate(result.faces, start=1)
    ]


def context_crop(rgb_image: np.ndarray, box: Sequence[int], scale: float = 1.0, margin: float = 0.5) -> np.ndarray:
    """The part of a photo around a face box, enlarged by ``margin`` of the box on each side.

    Args:
        rgb_image: the photo (possibly a reduced copy; ``scale`` maps original pixels to it).
        box: (x, y, w, h) in original pixels.
        scale: ``rgb_image`` pixels per original pixel.
        margin: extra context per side, as a fraction of the box side.

    Returns:
        A view-free copy of the crop (never empty: at least 1x1).
    """
    x0, y0, x1, y1 = _crop_bounds(rgb_image.shape, box, scale, margin)
    return np.ascontiguousarray(rgb_image[y0:y1, x0:x1])


def _crop_bounds(shape: Sequence[int], box: Sequence[int], scale: float, margin: float) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of :func:`context_crop`'s crop, inside an image of ``shape``."""
    height, width = shape[:2]
    x, y, w, h = (float(v) * scale for v in box)
    dx, dy = w * margin, h * margin
    x0, y0 = min(max(0, int(x - dx)), width - 1), min(max(0, int(y - dy)), height - 1)
    x1, y1 = min(width, int(round(x + w + dx))), min(height, int(round(y + h + dy)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def face_in_context(rgb_image: np.ndarray, box: Sequence[int], scale: float = 1.0, margin: float = 0.5,
                    color: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """:func:`context_crop` of the clean photo with this face's box alone drawn: a crop of the
    annotated photo would also show its neighbours' boxes and labels (group photos).
    """
    from fer.draw import draw_box

    x0, y0, x1, y1 = _crop_bounds(rgb_image.shape, box, scale, margin)
    crop = np.ascontiguousarray(rgb_image[y0:y1, x0:x1])
    x, y, w, h = (float(v) * scale for v in box)
    return draw_box(crop, (round(x - x0), round(y - y0), round(w), round(h)), color=color)


def enlarge(gray_or_rgb: np.ndarray, zoom: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so 48x48 faces stay crisp in a browser."""
    return np.repeat(np.repeat(np.asarray(gray_or_rgb), zoom, axis=0), zoom, axis=1)
