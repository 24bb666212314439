"""Shared set-up for the app tests: a tiny model folder and the AppTest entry.

The tiny model is a real Keras ``.h5`` (so the photo pipeline loads and runs it) with a card,
synthetic but deterministic test predictions over the embedded faces, and a history CSV: the
app tests do not depend on which models have been released into ``models/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from fer.evaluate import no_twin_metrics
from fer.labels import EMOTIONS, EVAL_SPLITS
from fer.lite import build_lite
from fer.metrics import compute_metrics

PROJECT_DIR = Path(__file__).resolve().parent.parent
APP = str(PROJECT_DIR / "streamlit_app.py")
PHOTOS_DIR = Path(os.environ.get("FER_SHARED_DIR", PROJECT_DIR.parent / "shared")) / "data" / "photos"
TIMEOUT = 180


def synthetic_predictions(seed: int = 0) -> pd.DataFrame:
    """Predictions for every embedded test face, right about 60% of the time."""
    from fer.testset import load_test_faces

    faces = load_test_faces()
    rng = np.random.default_rng(seed)
    n = len(faces.labels)
    probs = rng.dirichlet(np.ones(len(EMOTIONS)), size=n)
    right = rng.random(n) < 0.6
    probs[np.arange(n), faces.labels] += np.where(right, 2.0, 0.0)
    probs /= probs.sum(axis=1, keepdims=True)
    table = pd.DataFrame({"row": faces.rows, "split": faces.usage, "true": faces.labels, "pred": probs.argmax(axis=1)})
    for j, emotion in enumerate(EMOTIONS):
        table[f"p_{emotion}"] = probs[:, j].round(6)
    order = {s: i for i, s in enumerate(EVAL_SPLITS)}
    return table.sort_values(["split", "row"], key=lambda c: c.map(order) if c.name == "split" else c,
                             ignore_index=True)


def synthetic_pose_report(yaw_accuracies: list[float]) -> dict:
    """A ``fer.pose`` card table with these accuracies per yaw bin (0-10, 10-20, 20-30, 30+ degrees)."""
    bins = ["0-10°", "10-20°", "20-30°", "30°+"]

    def rows(accuracies):
        return [{"bin": b, "faces": 900, "share": 0.25, "accuracy": a, "stderr": 0.015, "accuracy_class_mix": a}
                for b, a in zip(bins, accuracies, strict=True)]

    table = {"faces": 3600, "accuracy": 0.7, "yaw_bins": [0, 10, 20, 30, 180], "pitch_bins": [0, 10, 20, 30, 180],
             "yaw": rows(yaw_accuracies), "pitch": rows([0.7] * 4)}
    return {"tta": False, "command": "python -m fer.pose --model models/tiny.h5", "PublicTest": table,
            "PrivateTest": table}


def make_model_folder(folder: Path, name: str = "tiny") -> Path:
    """Writes ``<name>.h5`` + card + predictions + history into ``folder``; returns the .h5 path."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((48, 48, 1)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(len(EMOTIONS), activation="softmax"),
    ], name="tiny_cnn")
    path = folder / f"{name}.h5"
    model.save(path)
    predictions = synthetic_predictions()
    predictions.to_csv(folder / f"{name}.predictions.csv", index=False)
    metrics = {
        split: compute_metrics(part["true"].to_numpy(), part["pred"].to_numpy()).as_dict()
        for split, part in predictions.groupby("split", sort=False)
    }
    card = {
        "name": name,
        "labels": list(EMOTIONS),
        "input_shape": [48, 48, 1],
        "preprocessing": {"illumination": "none", "landmarks": False},
        "architecture": {"name": "tiny", "parameters": int(model.count_params()), "summary": "Model: tiny_cnn\n..."},
        "training": {"arch": "tiny", "epochs": 3, "batch_size": 64, "seed": 0},
        "epochs_completed": 3,
        "train_wall_seconds": 12.5,
        "machine": "test machine",
        "keras": keras.__version__,
        "command": f"python -m fer.train --arch tiny --out runs/{name} --init-from runs/{name}_first/model.h5",
        "warm_start": {"from": f"runs/{name}_first/model.h5", "command": f"python -m fer.train --arch tiny "
                       f"--out runs/{name}_first", "epochs_completed": 2, "train_wall_seconds": 6.5},
        "metrics": metrics,
        "metrics_tta": metrics,
        "metrics_ferplus": metrics,
        "metrics_ferplus_tta": metrics,
        "metrics_no_twin": no_twin_metrics(predictions),
        "notes": ["A note from the card."],
        "ablation": [{"variant": "baseline", "PrivateTest": 0.60}, {"variant": "+ hist", "PrivateTest": 0.61}],
        "landmark_experiment": [{"run": "lm0_paper", "final": 0.59}, {"run": "lm1_landmarks", "final": 0.6}],
        "pose_accuracy": synthetic_pose_report([0.74, 0.71, 0.66, 0.61]),
        "resolution_accuracy": {"tta": True, "command": "python -m fer.resolution --model tiny.h5 --tta",
                                **{split: [{"size": px, "accuracy": share} for px, share in
                                           [(48, 0.70), (40, 0.67), (32, 0.64), (24, 0.55), (16, 0.35)]]
                                   for split in ("PublicTest", "PrivateTest")}},
    }
    (folder / f"{name}.json").write_text(json.dumps(card))
    build_lite(path)  # the app runs the checked LiteRT copy, as it does for the released models
    pd.DataFrame({
        "epoch": [0, 1, 2], "accuracy": [0.3, 0.45, 0.55], "loss": [1.8, 1.4, 1.2],
        "val_accuracy": [0.35, 0.5, 0.58], "val_loss": [1.7, 1.3, 1.15], "epoch_seconds": [4.0, 4.1, 4.2],
        "lr": [1e-3, 1e-3, 5e-4],
    }).to_csv(folder / f"{name}.history.csv", index=False)
    return path


_MODEL_FOLDER: Path | None = None


def shared_model_folder(tmp_path_factory) -> Path:
    """The tiny model folder, built once per test process."""
    global _MODEL_FOLDER
    if _MODEL_FOLDER is None:
        folder = tmp_path_factory.mktemp("models")
        make_model_folder(folder)
        _MODEL_FOLDER = folder
    return _MODEL_FOLDER


def own_model_folder(tmp_path: Path, tmp_path_factory) -> Path:
    """A private copy of the tiny model folder (``tmp_path / "models"``), for a test that changes it."""
    import shutil

    folder = tmp_path / "models"
    shutil.copytree(shared_model_folder(tmp_path_factory), folder)
    return folder


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A ZIP archive (stored, uncompressed, so that tests can find their bytes) of ``entries``:
    name inside it -> bytes."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def two_model_folder(tmp_path: Path, tmp_path_factory) -> Path:
    """A private model folder holding the tiny model and a copy, ``other``, whose predictions
    differ (synthetic, seed 1)."""
    import shutil

    folder = own_model_folder(tmp_path, tmp_path_factory)
    for suffix in (".h5", ".tflite", ".history.csv"):
        shutil.copyfile(folder / f"tiny{suffix}", folder / f"other{suffix}")
    card = json.loads((folder / "tiny.json").read_text())
    (folder / "other.json").write_text(json.dumps({**card, "name": "other"}))
    synthetic_predictions(seed=1).to_csv(folder / "other.predictions.csv", index=False)
    return folder


def switched_to_tta(monkeypatch, tmp_path: Path, tmp_path_factory, page: str, toggle: str):
    """Opens ``page`` on a private model folder: first without a flip-TTA predictions table (so
    without the ``toggle`` switch), then with one (synthetic, seed 3), with the switch turned on.

    Returns:
        ``(AppTest after the switch, the plain page's image captions, the TTA table)``.
    """
    folder = own_model_folder(tmp_path, tmp_path_factory)
    use_app_env(monkeypatch, tmp_path, folder)
    at = open_page(page)
    assert not [t for t in at.toggle if t.key == toggle]  # no TTA table: no switch
    tta = synthetic_predictions(seed=3)
    tta.to_csv(folder / "tiny.predictions_tta.csv", index=False)
    at = open_page(page)
    plain = at.image[0].captions if at.image else []
    at.toggle(key=toggle).set_value(True).run()
    assert not at.exception
    return at, plain, tta


def use_app_env(monkeypatch, tmp_path: Path, models: Path) -> Path:
    """Points the app at ``models`` and a fresh annotation database; returns the database path."""
    db = tmp_path / "annotations.sqlite3"
    monkeypatch.setenv("FER_MODELS_DIR", str(models))
    monkeypatch.setenv("FER_ANNOTATIONS_DB", str(db))
    return db


def open_page(page: str):
    """Runs the app on one page (``pages/<name>.py``) and checks that nothing raised."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(page).run()
    assert not at.exception
    return at


def texts(elements) -> list[str]:
    """The ``value`` of every element in an AppTest element list."""
    return [str(e.value) for e in elements]


def record_downloads(monkeypatch) -> dict:
    """File name -> a callable giving the file's content, for every download button the app
    draws from now on (immediate or deferred): AppTest drops its media files after each run."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    found = {}
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def recording(self, data, mimetype, coordinates, file_name=None, *args, **kwargs):
        if file_name is not None:  # images have none
            found[file_name] = lambda: data
        return add(self, data, mimetype, coordinates, file_name, *args, **kwargs)

    def recording_deferred(self, data, *args, file_name=None, **kwargs):
        found[file_name] = data
        return add_deferred(self, data, *args, file_name=file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", recording)
    monkeypatch.setattr(MediaFileManager, "add_deferred", recording_deferred)
    return found

