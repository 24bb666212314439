"""Illumination correction and model-input preparation: one function for training, evaluation
and the app, so what a model sees at serving time is what it saw in training.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Illumination = Literal["none", "hist", "clahe"]
ILLUMINATIONS: tuple[str, ...] = ("none", "hist", "clahe")
# A photo whose grey levels span fewer than this many between their 5th and 95th percentiles is
# equalised before faces are looked for (:func:`lift_low_contrast`). The sample photos span 99-238;
# darkened (gamma 2.5, x0.2) they span 6-43, and the pipeline found 50 of their 56 faces as they
# were, all 57 equalised (``benchmarks/robustness.py``). Equalising every photo also gave HOG stray
# low-scoring boxes (0.08-0.12) in two normal ones (a throwaway check), so only flat photos are.
LOW_CONTRAST_SPREAD: int = 80
_EQUALIZE_CHUNK = 1024  # faces per vectorised step of equalize_hist


def correct_illumination(gray_faces: np.ndarray, method: str = "none") -> np.ndarray:
    """Applies the illumination correction named in a model's metadata.

    Args:
        gray_faces: uint8 array, one face (H, W) or a stack (N, H, W).
        method: ``none``, ``hist`` (global histogram equalisation, the paper's) or ``clahe``
            (contrast-limited adaptive equalisation, clip 2.0 on 4x4 tiles).

    Returns:
        A uint8 array of the same shape.

    Raises:
        ValueError: for an unknown method or a non-uint8 input.
    """
    if method not in ILLUMINATIONS:
        raise ValueError(f"unknown illumination {method!r}; expected one of {', '.join(ILLUMINATIONS)}")
    if gray_faces.dtype != np.uint8:
        raise ValueError(f"faces must be uint8 grey levels, got {gray_faces.dtype}")
    if method == "none":
        return gray_faces
    if method == "hist":
        return equalize_hist(gray_faces)
    import cv2

    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
    if gray_faces.ndim == 2:
        return clahe.apply(np.ascontiguousarray(gray_faces))
    return np.stack([clahe.apply(np.ascontiguousarray(face)) for face in gray_faces])


def equalize_hist(gray_faces: np.ndarray) -> np.ndarray:
    """Global histogram equalisation of each face, bit for bit ``cv2.equalizeHist``.

    In NumPy because the GPU training machine has no OpenCV, and a model must see the same
    pixels there as here.

    Args:
        gray_faces: uint8 array, one face (H, W) or a stack (N, H, W).

    Returns:
        A uint8 array of the same shape.

    Raises:
        ValueError: an array that is not one face or a stack of faces.
    """
    if gray_faces.ndim not in (2, 3):
        raise ValueError(f"faces must be (H, W) or (N, H, W), got shape {gray_faces.shape}")
    if gray_faces.size == 0:
        return gray_faces.copy()
    faces = gray_faces.reshape(-1, gray_faces.shape[-2] * gray_faces.shape[-1])
    out = np.empty_like(faces)
    for start in range(0, len(faces), _EQUALIZE_CHUNK):  # chunks keep the index arrays small
        out[start:start + _EQUALIZE_CHUNK] = _equalize_rows(faces[start:start + _EQUALIZE_CHUNK])
    return out.reshape(gray_faces.shape)


def _equalize_rows(faces: np.ndarray) -> np.ndarray:
    """:func:`equalize_hist` of (N, pixels) uint8 rows."""
    n, size = faces.shape
    index = faces + (np.arange(n, dtype=np.int32) * 256)[:, None]  # each face's own 256 bins
    hist = np.bincount(index.ravel(), minlength=n * 256).reshape(n, 256)
    first = (hist > 0).argmax(axis=1)  # the darkest grey level present
    at_first = hist[np.arange(n), first]
    # OpenCV's arithmetic exactly: a float32 scale, float32 products, round half to even.
    scale = np.float32(255) / np.maximum(size - at_first, 1).astype(np.float32)
    above = (np.cumsum(hist, axis=1) - at_first[:, None]).astype(np.float32)
    lut = np.clip(np.rint(above * scale[:, None]), 0, 255).astype(np.uint8)
    flat = size == at_first  # a single grey level: OpenCV leaves it as it is
    lut[flat] = first[flat, None].astype(np.uint8)
    return lut.ravel()[index]


def to_model_input(gray_faces: np.ndarray, illumination: str = "none") -> np.ndarray:
    """Turns uint8 faces (N, 48, 48) into the model input (N, 48, 48, 1) float32 grey levels.

    Rescaling to [0, 1] happens inside the models, so this is the only pre-processing step.
    """
    corrected = correct_illumination(gray_faces, illumination)
    return corrected.astype(np.float32)[..., None]


def grey_spread(gray_image: np.ndarray) -> int:
    """Grey levels between the 5th and 95th percentiles of a uint8 image (every 4th pixel each
    way: a 12 MP photo's histogram in ~2 ms).
    """
    counts = np.bincount(gray_image[::4, ::4].ravel(), minlength=256)
    cumulative = np.cumsum(counts) / max(1, counts.sum())
    return int(np.searchsorted(cumulative, 0.95) - np.searchsorted(cumulative, 0.05))


def lift_low_contrast(gray_image: np.ndarray, spread: int = LOW_CONTRAST_SPREAD) -> np.ndarray:
    """The photo histogram-equalised where its grey levels are flat (dark, hazy or washed out:
    :func:`grey_spread` under ``spread``); otherwise the photo itself.

    Faces are looked for, fitted and aligned in the result; the model's own correction is applied
    to each aligned face afterwards, as always.
    """
    import cv2

    return cv2.equalizeHist(gray_image) if grey_spread(gray_image) < spread else gray_image

