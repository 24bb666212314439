"""Illumination correction and model-input preparation: one function for training, evaluation
and the app, so what a model sees at serving time is what it saw in training.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Illumination = Literal["none", "hist", "clahe"]
ILLUMINATIONS: tuple[str, ...] = ("none", "hist", "clahe")


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
    import cv2

    if method == "hist":
        apply = cv2.equalizeHist
    else:
        clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
        apply = clahe.apply
    if gray_faces.ndim == 2:
        return apply(np.ascontiguousarray(gray_faces))
    return np.stack([apply(np.ascontiguousarray(face)) for face in gray_faces])


def to_model_input(gray_faces: np.ndarray, illumination: str = "none") -> np.ndarray:
    """Turns uint8 faces (N, 48, 48) into the model input (N, 48, 48, 1) float32 grey levels.

    Rescaling to [0, 1] happens inside the models, so this is the only pre-processing step.
    """
    corrected = correct_illumination(gray_faces, illumination)
    return corrected.astype(np.float32)[..., None]
