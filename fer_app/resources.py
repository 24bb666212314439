"""The app's one caching place: models, pipelines, tables and datasets.

``st.cache_resource`` holds objects shared by every session (the pipeline with its model,
detector and landmark predictor; the annotation store, which holds only a path): they are
thread-safe and never mutated. ``st.cache_data`` holds tables (model list, predictions, history,
label-issue ranking), copied per caller. Cache keys include file modification times, so a model
re-released under the same name is picked up. The read-only test faces are cached by
``fer.testset`` itself (see :func:`test_faces`).

Nothing here loads at import time.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import streamlit as st

from fer.calibration import card_temperature
from fer.metadata import split_accuracies
from fer.paths import FER2013_CSV, MODELS_DIR, PHOTOS_DIR, TEST_POSES_PATH, TEST_TWINS_PATH

# Sample photos offered on the Predict page (clear faces, see photos/manifest.csv).
SAMPLE_PHOTOS: tuple[str, ...] = (
    "deepface_img24.jpg", "dlib_tom_cruise.jpg", "deepface_img30.jpg", "pyfeat_multi_face.jpg",
)


def models_dir() -> Path:
    """Where the app looks for models: ``$FER_MODELS_DIR`` (tests, staging) or ``models/``."""
    env = os.environ.get("FER_MODELS_DIR")
    return Path(env) if env else MODELS_DIR


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


@dataclass(frozen=True)
class ModelEntry:
    """A model in the models folder, with what its card says.

    Attributes:
        path: the ``.h5`` file.
        name: the card's ``name`` (else the file stem).
        accuracy: split -> accuracy from the card's ``metrics``.
        predictions: the per-image predictions CSV (may not exist).
        history: the training history CSV (may not exist).
        card: the whole metadata card.
        error: why the card could not be read, or why it does not describe the weights (the model
            is then listed but unusable).
        mismatch: the card is readable but describes other weights (``error`` says how).
    """

    path: Path
    name: str
    accuracy: dict[str, float] = field(default_factory=dict)
    predictions: Path | None = None
    history: Path | None = None
    card: dict = field(default_factory=dict, compare=False, repr=False)
    error: str | None = None
    mismatch: bool = False

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def has_predictions(self) -> bool:
        return self.predictions is not None and self.predictions.is_file()

    def label(self) -> str:
        """One line for the model selector: name and PublicTest / PrivateTest accuracy.

        The same against FER+ majority labels follows where the card has them: a model trained
        on the crowd's votes is judged by those.
        """
        if self.error:
            return f"{self.stem} ({'weights differ from its card' if self.mismatch else 'unreadable card'})"
        accuracies = _test_accuracies(self.accuracy)
        if not accuracies:
            return f"{self.name} · not evaluated"
        ferplus = _test_accuracies(split_accuracies(self.card, "metrics_ferplus"))
        return f"{self.name} · {accuracies}" + (f" · FER+ {ferplus}" if ferplus else "")


def _test_accuracies(accuracy: dict[str, float]) -> str:
    """``"69.0% / 69.7%"``: PublicTest / PrivateTest, those the mapping has."""
    return " / ".join(f"{accuracy[s]:.1%}" for s in ("PublicTest", "PrivateTest") if s in accuracy)


def _folder_signature(folder: Path) -> tuple[tuple[str, int], ...]:
    if not folder.is_dir():
        return ()
    return tuple(sorted((p.name, _mtime(p)) for p in folder.iterdir() if p.suffix in (".h5", ".json", ".csv")))


@st.cache_data(show_spinner=False, max_entries=8)
def _scan_models(folder: str, signature: tuple) -> list[ModelEntry]:
    from fer.evaluate import predictions_path
    from fer.metadata import model_info, weights_problem

    del signature  # only a cache key
    entries = []
    for path in sorted(Path(folder).glob("*.h5")):
        if not path.with_suffix(".json").is_file():
            continue  # every released model has its card; a bare .h5 is a checkpoint
        history = path.with_name(path.stem + ".history.csv")
        common = {"predictions": predictions_path(path), "history": history if history.is_file() else None}
        try:
            info = model_info(path)
        except (ValueError, OSError) as err:
            entries.append(ModelEntry(path=path, name=path.stem, error=str(err), **common))
            continue
        problem = weights_problem(path, info.raw)  # hashed once per change of the folder (the cache key)
        if problem:
            entries.append(ModelEntry(path=path, name=info.name, error=problem, mismatch=True, **common))
            continue
        named = info.raw.get("history")  # a card may name its history file (beside the model)
        if isinstance(named, str) and (path.parent / Path(named).name).is_file():
            common["history"] = path.parent / Path(named).name
        entries.append(ModelEntry(path=path, name=info.name, accuracy=info.headline, card=info.raw, **common))
    # The default model first, so it is what a fresh session sees.
    from fer.pipeline import DEFAULT_MODEL_NAMES

    rank = {name: i for i, name in enumerate(DEFAULT_MODEL_NAMES)}
    entries.sort(key=lambda e: (e.error is not None, rank.get(e.path.name, len(rank)), e.path.name))
    return entries


def list_models() -> list[ModelEntry]:
    """Every ``*.h5`` with a ``.json`` card beside it in :func:`models_dir`, default first."""
    folder = models_dir()
    return _scan_models(str(folder), _folder_signature(folder))


_painted = False  # whether a first pipeline load has let the first page reach the browser


@st.cache_resource(show_spinner=False, max_entries=4)
def _pipeline(model_path: str, detector: str, signature: tuple[int, ...]):
    from fer.pipeline import FerPipeline

    global _painted
    if not _painted:
        # dlib's model loads hold Python's lock for seconds, during which Streamlit's server sends
        # nothing: on a fresh server, a pause first lets the page drawn so far reach the browser
        # (start to interactive 4.8-5.4 s with 1 s, 5.8-7.0 s with 0.5 s, 7.6-10.8 s with 0.2 s).
        time.sleep(1.0)
        _painted = True
    pipeline = FerPipeline(model_path, detector=detector)
    keep_keras_session()
    # TensorFlow, Keras and the model leave ~325,000 long-lived objects that every full garbage
    # collection walks again (~0.3 s on 2 cores, now and then during a click). Collect once here,
    # where a load takes seconds anyway (also what an evicted pipeline left), then freeze them.
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    # Recorded under the signature this load was asked for (the files may change while it loads).
    _runtimes[model_path] = (signature, pipeline.runtime)
    return pipeline


# What each loaded pipeline's model actually runs on, by model path: (files' signature, runtime).
_runtimes: dict[str, tuple[tuple[int, ...], str]] = {}


def _lite_signature(model_path: Path) -> tuple[int, ...]:
    """Modification times of the model, its card and its LiteRT copy: any change is re-checked."""
    from fer.lite import lite_path
    from fer.metadata import metadata_path

    return _mtime(model_path), _mtime(metadata_path(model_path)), _mtime(lite_path(model_path))


def keep_keras_session() -> None:
    """Stops Streamlit from calling ``keras.backend.clear_session()`` after every script run.

    Streamlit (``script_runner._clean_problem_modules``, 1.67) clears Keras' global state after
    each run for apps that build models per run. This app loads each model once and shares it
    read-only, so the clearing buys nothing and costs ~0.2 s per rerun (a full ``gc.collect``)
    plus TensorFlow's kernel cache, on every click. Other modules' clean-up is kept.
    """
    from streamlit.runtime.scriptrunner import script_runner

    original = getattr(script_runner, "_clean_problem_modules", None)
    if original is None or getattr(original, "_keeps_keras", False):
        return

    def clean_problem_modules_but_keras() -> None:
        import sys

        # The rest of Streamlit's clean-up, unchanged (its _log_if_error logs any failure).
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close("all")

    clean_problem_modules_but_keras._keeps_keras = True
    clean_problem_modules_but_keras._original = original
    script_runner._clean_problem_modules = clean_problem_modules_but_keras


def get_pipeline(model: ModelEntry, detector: str):
    """The shared :class:`fer.pipeline.FerPipeline` of a model and detector (loaded once).

    Raises:
        FileNotFoundError, ValueError, OSError: the model cannot be loaded (see FerPipeline).
    """
    # Keyed by the model's, card's and LiteRT copy's times: a rebuilt copy loads afresh.
    return _pipeline(*pipeline_key(model, detector))


def pipeline_key(model: ModelEntry, detector: str = "hog") -> tuple:
    """What identifies the model a pipeline runs: its path and its files' times (the pipeline
    cache's own key). Results made by a model, such as occlusion maps, are remembered under it,
    so a re-released model never shows results of the old one.
    """
    return str(model.path), detector, _lite_signature(model.path)


def device_description(model: ModelEntry | None) -> str:
    """What runs the selected model: the runtime of its loaded pipeline if the model's files are
    unchanged since it loaded, else LiteRT on the CPU for a fresh copy, else Keras on TensorFlow.

    Asking TensorFlow loads its 1 GB library with Python's lock held for seconds, which stalls
    the page's first paint; a model that LiteRT runs never needs it.
    """
    from fer.lite import KERAS, LITERT, default_threads

    runtime = None
    if model is not None:
        signature = _lite_signature(model.path)
        loaded = _runtimes.get(str(model.path))
        # A loaded pipeline knows what it runs (a copy can exist and still fail to open); before
        # that, a fresh copy is what it will run.
        if loaded is not None and loaded[0] == signature:
            runtime = loaded[1]
        else:
            runtime = LITERT if _has_fresh_lite(str(model.path), signature) else KERAS
    if runtime == LITERT:
        return f"CPU, {LITERT}, {default_threads()} threads"
    return _tensorflow_device() + (f", {KERAS}" if runtime == KERAS else "")


@st.cache_data(show_spinner=False, max_entries=16)
def _has_fresh_lite(model_path: str, signature: tuple[int, ...]) -> bool:
    from fer.lite import fresh_lite_path

    del signature  # only a cache key: a changed model, card or copy is checked again
    return fresh_lite_path(model_path) is not None


@st.cache_resource(show_spinner=False)
def _tensorflow_device() -> str:
    """Which device TensorFlow runs the model on: the first GPU it sees, else the CPU."""
    import tensorflow as tf

    keep_keras_session()  # importing TensorFlow imports Keras
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU (TensorFlow sees no GPU)"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    except (ValueError, RuntimeError):
        name = gpus[0].name
    return f"GPU: {name}" + (f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else "")


@st.cache_data(show_spinner=False, max_entries=8)
def _predictions(path: str, version: int, temperature: float = 1.0) -> pd.DataFrame:
    from fer.calibration import calibrate_table
    from fer.explorer import validate_predictions

    del version
    return calibrate_table(validate_predictions(pd.read_csv(path)), temperature)


def tta_predictions_path(model: ModelEntry) -> Path:
    """Where the model's flip-TTA predictions table is (``fer.evaluate --tta`` writes it)."""
    from fer.evaluate import predictions_path

    return predictions_path(model.path, tta=True)


def has_tta_predictions(model: ModelEntry) -> bool:
    """Whether the model has a flip-TTA predictions table."""
    return tta_predictions_path(model).is_file()


def load_predictions(model: ModelEntry, tta: bool = False, calibrated: bool = True) -> pd.DataFrame:
    """The model's per-image test predictions (validated): plain, or with flip TTA, with the
    probabilities calibrated by the card's temperature as the Predict page's are
    (:func:`fer.calibration.card_temperature`; labels unchanged) unless ``calibrated`` is off.

    Raises:
        FileNotFoundError: if the model has no such predictions CSV.
        ValueError: if the CSV is malformed.
    """
    temperature = card_temperature(model.card, tta) if calibrated else 1.0
    path = predictions_file(model, tta)
    return _predictions(str(path), _mtime(path), temperature)


def predictions_file(model: ModelEntry, tta: bool = False) -> Path:
    """The model's plain or flip-TTA predictions CSV.

    Raises:
        FileNotFoundError: if it does not exist (the message gives the command that writes it).
    """
    from fer.evaluate import stored_predictions_path

    return stored_predictions_path(model.path, tta)


@st.cache_data(show_spinner=False, max_entries=8)
def _history(path: str, version: int) -> pd.DataFrame:
    del version
    return pd.read_csv(path)


def load_history(model: ModelEntry) -> pd.DataFrame | None:
    """The training history (``<stem>.history.csv``), or ``None`` without one."""
    if model.history is None:
        return None
    return _history(str(model.history), _mtime(model.history))


def face_map_path(model: ModelEntry) -> Path:
    """Where the model's map of the test faces is (``python -m fer.embedding build`` writes it)."""
    from fer.embedding import embedding_path

    return embedding_path(model.path)


def load_face_map(model: ModelEntry):
    """The model's :class:`fer.embedding.FaceMap` (read-only arrays, shared by every session).

    Raises:
        FileNotFoundError: if the model has no map.
        ValueError: if the file is not a map.
    """
    path = face_map_path(model)
    return _face_map(str(path), _mtime(path))


@st.cache_resource(show_spinner=False, max_entries=4)
def _face_map(path: str, version: int):
    from fer.embedding import load_map

    del version  # only a cache key: a rebuilt map is read again
    face_map = load_map(path)
    for array in (face_map.rows, face_map.split, face_map.xy, face_map.features):
        _read_only(array)
    return face_map


@st.cache_data(show_spinner=False, max_entries=8)
def model_sha256(path: str, version: int) -> str:
    """SHA-256 of a model file (cached per modification time)."""
    from fer.data import file_sha256

    del version
    return file_sha256(path)


_faces_lock = threading.Lock()  # held while decompressing
_warming_lock = threading.Lock()  # held only to start the warm-up (never waits for it)
_warming: threading.Thread | None = None


def test_faces():
    """The embedded PublicTest + PrivateTest faces (read-only arrays).

    Decompressed once per process (``fer.testset.load_test_faces`` caches them); the lock keeps
    the warm-up thread and a page from both doing it.

    Raises:
        FileNotFoundError: if the embedded file is missing.
    """
    from fer.testset import load_test_faces

    with _faces_lock:
        return load_test_faces()


def warm_test_faces() -> None:
    """Starts decompressing the embedded test faces (~1-2 s) in a background thread, once.

    Not in the script run: a run cannot be interrupted inside it, so a click or an upload made
    meanwhile (the first upload after a server start) would wait for it.
    """
    global _warming
    with _warming_lock:
        if _warming is not None:
            return
        _warming = threading.Thread(target=_warm, name="fer-warm-test-faces", daemon=True)
    _warming.start()


def _warm() -> None:
    try:
        test_faces()
    except FileNotFoundError:
        pass  # the pages that need the faces say so
    except Exception:  # noqa: BLE001 - a damaged file: logged here, and the pages say so when they load it
        logging.getLogger("fer_app").exception("the embedded test faces could not be loaded")


@dataclass(frozen=True)
class FerPlusTables:
    """FER+ votes by FER2013 row: raw votes (N, 10), emotion shares (N, 7), majority (N,)."""

    votes: np.ndarray
    shares: np.ndarray
    majority: np.ndarray
    usage: np.ndarray


@st.cache_resource(show_spinner=False)
def ferplus() -> FerPlusTables | None:
    """The embedded FER+ votes, or ``None`` when the table is missing."""
    from fer.ferplus import emotion_distribution, load_ferplus_votes, majority_label

    try:
        table = load_ferplus_votes()
    except (FileNotFoundError, ValueError):
        return None
    return FerPlusTables(
        votes=_read_only(table.votes), shares=_read_only(emotion_distribution(table.votes)),
        majority=_read_only(majority_label(table.votes)), usage=_read_only(table.usage),
    )


def twins() -> pd.DataFrame | None:
    """The embedded table of each test face's nearest Training face (``fer.twins``), or ``None``
    when it is missing or malformed. Re-read when ``python -m fer.twins build`` rewrites it.
    """
    return _twins(_mtime(TEST_TWINS_PATH))


@st.cache_data(show_spinner=False, max_entries=2)
def _twins(version: int) -> pd.DataFrame | None:
    from fer.twins import load_twins

    del version  # only a cache key
    try:
        return load_twins()
    except (FileNotFoundError, ValueError):
        return None


def face_poses() -> pd.DataFrame | None:
    """The embedded head pose of every test face (``fer.pose``), indexed by FER2013 row, or
    ``None`` when it is missing or malformed. Re-read when ``python -m fer.pose build`` rewrites it.
    """
    return _face_poses(_mtime(TEST_POSES_PATH))


@st.cache_data(show_spinner=False, max_entries=2)
def _face_poses(version: int) -> pd.DataFrame | None:
    from fer.pose import load_pose_table

    del version  # only a cache key
    try:
        return load_pose_table()
    except (FileNotFoundError, ValueError):
        return None


def twin_lookup() -> Mapping[int, tuple[int, int, float]]:
    """Test row -> (Training row, its label, similarity) for the faces with a Training twin."""
    return _twin_lookup(_mtime(TEST_TWINS_PATH))


@st.cache_resource(show_spinner=False, max_entries=2)
def _twin_lookup(version: int) -> Mapping[int, tuple[int, int, float]]:
    from fer.twins import TWIN_THRESHOLD

    table = _twins(version)
    if table is None:
        return MappingProxyType({})
    found = table[table["similarity"] >= TWIN_THRESHOLD]
    # Read-only: one mapping is shared by every session.
    return MappingProxyType({int(r): (int(t), int(lab), float(sim)) for r, t, lab, sim in
                             zip(found["row"], found["twin_row"], found["twin_label"], found["similarity"],
                                 strict=True)})


def _read_only(array: np.ndarray) -> np.ndarray:
    # Shared across sessions: a stray in-place write would corrupt every session's view.
    array.setflags(write=False)
    return array


def full_dataset_available() -> bool:
    """Whether the full FER2013 CSV (with the Training split) is beside the project."""
    return FER2013_CSV.is_file()


@st.cache_resource(show_spinner=False)
def full_dataset():
    """All of FER2013 from the shared CSV (parsed once, cached on disk by ``fer.data``).

    Raises:
        FileNotFoundError, fer.data.DataFormatError: the CSV is missing or malformed.
    """
    from fer.data import load_fer2013

    dataset = load_fer2013(FER2013_CSV)
    dataset.images.setflags(write=False)
    return dataset


@dataclass(frozen=True)
class FaceLookup:
    """Faces by FER2013 row: ``images[positions[row]]`` (position -1: not available).

    Attributes:
        missing: what a row without a face means, for the error (``{rows}`` is replaced).
    """

    images: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    missing: str = "no embedded face for FER2013 rows {rows}; predictions and faces disagree"

    def faces(self, rows: np.ndarray) -> np.ndarray:
        """The (n, 48, 48) faces of the given rows.

        Raises:
            KeyError: naming the rows that have no face (never a silent wrong face).
        """
        positions = self.positions[np.asarray(rows, dtype=np.int64)]
        if (positions < 0).any():
            raise KeyError(self.missing.format(rows=np.asarray(rows)[positions < 0][:5].tolist()))
        return self.images[positions]


@st.cache_resource(show_spinner=False)
def test_face_lookup() -> FaceLookup:
    """Row -> face index over the embedded test faces."""
    from fer.explorer import row_positions
    from fer.ferplus import FER2013_ROWS

    faces = test_faces()
    return FaceLookup(faces.images, faces.labels, _read_only(row_positions(faces.rows, FER2013_ROWS)))


@st.cache_resource(show_spinner=False)
def full_face_lookup() -> FaceLookup:
    """Row -> face index over all of FER2013 (the full CSV), for Training faces.

    Raises:
        FileNotFoundError, fer.data.DataFormatError: the CSV is missing or malformed.
    """
    from fer.explorer import row_positions
    from fer.ferplus import FER2013_ROWS

    dataset = full_dataset()
    return FaceLookup(dataset.images, dataset.labels, _read_only(row_positions(dataset.rows, FER2013_ROWS)),
                      missing="the CSV lacks FER2013 rows {rows}")


@st.cache_data(show_spinner=False)
def original_labels() -> np.ndarray:
    """The FER2013 label of every row (-1 where unknown), for the annotation export."""
    from fer.annotations import labels_by_row

    return labels_by_row(full_dataset() if full_dataset_available() else test_faces())


@st.cache_data(show_spinner=False, max_entries=8)
def _issues(path: str, version: int, weight_ferplus: float) -> pd.DataFrame:
    from fer.label_issues import rank_predictions

    tables = ferplus()
    return rank_predictions(_predictions(path, version), None if tables is None else tables.votes, weight_ferplus)


def label_issues(model: ModelEntry, weight_ferplus: float = 0.5, tta: bool = False) -> pd.DataFrame:
    """The model's test faces ranked by how likely their given label is wrong, from its plain
    or flip-TTA predictions (raw probabilities: confident learning's thresholds are per model).

    Raises:
        FileNotFoundError: if the model has no such predictions CSV.
    """
    path = predictions_file(model, tta)
    return _issues(str(path), _mtime(path), float(weight_ferplus))


@st.cache_resource(show_spinner=False)
def _store(path: str):
    from fer.annotations import AnnotationStore

    return AnnotationStore(path)


def annotation_store():
    """The shared annotation store at ``$FER_ANNOTATIONS_DB`` or the default path."""
    from fer.annotations import default_db_path

    return _store(str(default_db_path()))


def sample_photos() -> dict[str, Path]:
    """The sample photos that exist (empty without the shared photos folder)."""
    return {name: PHOTOS_DIR / name for name in SAMPLE_PHOTOS if (PHOTOS_DIR / name).is_file()}
