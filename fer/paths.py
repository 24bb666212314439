"""Paths that come from the package, never from the working directory."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR: Path = Path(__file__).resolve().parent
PROJECT_DIR: Path = PACKAGE_DIR.parent
MODELS_DIR: Path = PROJECT_DIR / "models"
ASSETS_DIR: Path = PACKAGE_DIR / "assets"
TEST_FACES_PATH: Path = ASSETS_DIR / "fer2013_test_faces.npz"
FERPLUS_VOTES_PATH: Path = ASSETS_DIR / "ferplus_votes.npz"
TEST_TWINS_PATH: Path = ASSETS_DIR / "fer2013_test_twins.csv"
TEST_POSES_PATH: Path = ASSETS_DIR / "fer2013_test_poses.csv"
BLAZE_MODEL_PATH: Path = ASSETS_DIR / "face_detection_full_range.tflite"

# The shared data folder sits beside the checkout (``../shared``), in CI and in development.
SHARED_DIR: Path = Path(os.environ.get("FER_SHARED_DIR", PROJECT_DIR.parent / "shared"))
FER2013_CSV: Path = SHARED_DIR / "data" / "fer2013" / "fer2013.csv.gz"
FERPLUS_CSV: Path = SHARED_DIR / "data" / "ferplus" / "fer2013new.csv"
PHOTOS_DIR: Path = SHARED_DIR / "data" / "photos"


def cache_dir() -> Path:
    """Returns the user cache folder for parsed datasets (``$FER_CACHE_DIR`` overrides it)."""
    env = os.environ.get("FER_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "fer-lab"
    path.mkdir(parents=True, exist_ok=True)
    return path
