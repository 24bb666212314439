"""The one source of truth for emotion labels, splits and the face size of FER2013."""

from __future__ import annotations

import numpy as np

# FER2013's integer codes, in order: 0 angry ... 6 neutral.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES: int = len(EMOTIONS)
# Probability columns of every per-image predictions table.
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{e}" for e in EMOTIONS)

# Official splits from the ``Usage`` column. PublicTest is our validation split (and the
# paper's "test"); PrivateTest is our headline test split.
SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
EVAL_SPLITS: tuple[str, ...] = ("PublicTest", "PrivateTest")

FACE_SIZE: int = 48

# FER+ vote columns, in the order of ``fer2013new.csv``.
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
    "contempt", "unknown", "NF",
)
# FER+ column name -> FER2013 emotion name, for the 7 shared classes.
FERPLUS_TO_EMOTION: dict[str, str] = {
    "anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy",
    "sadness": "sad", "surprise": "surprise", "neutral": "neutral",
}


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Returns float32 (N, NUM_CLASSES) one-hot rows for integer class codes (N,)."""
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels]


def label_index(name: str) -> int:
    """Returns the integer code of an emotion name.

    Raises:
        ValueError: if ``name`` is not one of :data:`EMOTIONS`.
    """
    try:
        return EMOTIONS.index(name)
    except ValueError:
        raise ValueError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}") from None
