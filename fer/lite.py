"""LiteRT copies of Keras models for fast CPU inference: ``python -m fer.lite models/fer_best.h5``.

Keras' ``predict_on_batch`` spends most of a one-face call on graph dispatch: 5-11 ms for
``vgg_small`` on 2 cores, depending on the host. The same weights under LiteRT's XNNPACK
kernels take about a quarter of that (``python benchmarks/bench_classify.py``). The
``.tflite`` file lives beside the ``.h5``; the card records the sha256 of both, so the pipeline
runs it only while the ``.h5`` it was converted from is unchanged, and otherwise Keras.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.data import file_sha256
from fer.metadata import metadata_path, read_metadata, write_metadata
from fer.paths import PROJECT_DIR

KERAS = "Keras"
LITERT = "LiteRT (XNNPACK)"
# Agreement bound checked when a copy is built: float32 kernels differ only in summation order.
MAX_ABS_DIFFERENCE = 1e-4


def lite_path(model_path: str | Path) -> Path:
    """Where the LiteRT copy of a ``.h5`` model is kept."""
    return Path(model_path).with_suffix(".tflite")


def default_threads() -> int:
    """Inference threads: every core up to 4 (XNNPACK gains little beyond that for one face)."""
    return max(1, min(4, os.cpu_count() or 1))


def make_interpreter(path: Path, threads: int):
    """A LiteRT interpreter: the ``ai_edge_litert`` package, else TensorFlow's deprecated copy."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - only where the LiteRT wheel is missing
        from tensorflow.lite.python.interpreter import Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TensorFlow's copy warns that it is deprecated
        return Interpreter(model_path=str(path), num_threads=threads)


class LiteModel:
    """A ``.tflite`` model behind the one Keras call the pipeline makes, ``predict_on_batch``.

    One interpreter holds one set of buffers, so calls are serialised by a lock (Streamlit
    shares a cached pipeline between sessions' threads).

    Args:
        path: the ``.tflite`` file.
        threads: inference threads; default :func:`default_threads`.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self._interpreter = make_interpreter(self.path, threads or default_threads())
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            raise ValueError(f"{self.path}: expected one input, found {len(inputs)}")
        self._input = inputs[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in inputs[0]["shape"])
        self._batch = self.input_shape[0]
        self._lock = threading.Lock()
        self._interpreter.allocate_tensors()

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """Returns the model's output for a float32 batch (N, H, W, C)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        with self._lock:
            if len(x) != self._batch:
                self._interpreter.resize_tensor_input(self._input, [len(x), *self.input_shape[1:]])
                self._interpreter.allocate_tensors()
                self._batch = len(x)
            self._interpreter.set_tensor(self._input, x)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output)


def fresh_lite_path(model_path: str | Path) -> Path | None:
    """The model's ``.tflite`` if it exists and was built from the ``.h5`` as it is now, else ``None``."""
    model_path = Path(model_path)
    path = lite_path(model_path)
    if not path.is_file() or not metadata_path(model_path).is_file():
        return None
    record = read_metadata(model_path).get("lite") or {}
    if record.get("source_sha256") != file_sha256(model_path) or record.get("sha256") != file_sha256(path):
        return None
    return path


def load_classifier(model_path: str | Path):
    """Loads a model for inference: its fresh LiteRT copy if there is one, else Keras.

    Returns:
        ``(model, runtime)``: an object with ``predict_on_batch`` and :data:`LITERT` or :data:`KERAS`.
    """
    path = fresh_lite_path(model_path)
    if path is not None:
        try:
            return LiteModel(path), LITERT
        except (ImportError, RuntimeError, ValueError):
            pass  # an unreadable copy costs speed, not correctness: Keras runs the same weights
    from fer.models import load_saved_model

    return load_saved_model(model_path), KERAS


def describe_lite(record: dict) -> str:
    """Says in words what a card's ``lite`` record guarantees (for the Model page)."""
    return (f"Inference copy `{record.get('file', '?')}` (LiteRT, XNNPACK kernels, float32), checked against "
            f"Keras on {record.get('checked_faces', 0):,} PublicTest and PrivateTest faces: largest probability "
            f"difference {record.get('max_abs_difference', float('nan')):.1e}, "
            f"{record.get('argmax_disagreements', '?')} different predictions. "
            f"SHA-256: `{record.get('sha256', '?')}`")


def convert(model) -> bytes:
    """Converts a single-input Keras model to a float32 ``.tflite`` flatbuffer (no quantisation).

    Raises:
        ValueError: for models with more than one input (the landmark models).
    """
    import tensorflow as tf

    if len(model.inputs) != 1:
        raise ValueError("only single-input models convert; landmark models run under Keras")
    with tempfile.TemporaryDirectory() as folder:  # the model's weights, never a user's photo
        model.export(folder, format="tf_saved_model", verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(folder).convert()


def project_relative(path: Path) -> str:
    """``path`` as written from the project root when it lies inside it (cards stay portable)."""
    try:
        return path.resolve().relative_to(PROJECT_DIR).as_posix()
    except ValueError:
        return path.as_posix()


@dataclass(frozen=True)
class Agreement:
    """How closely a LiteRT copy reproduces Keras on the evaluation faces."""

    faces: int
    max_abs_difference: float
    argmax_disagreements: int


def compare(keras_model, lite: LiteModel, faces: np.ndarray, batch_size: int = 256) -> Agreement:
    """Runs both models on the same model inputs (N, H, W, 1) and measures their difference."""
    reference = np.asarray(keras_model.predict(faces, batch_size=batch_size, verbose=0))
    copy = np.concatenate([lite.predict_on_batch(faces[i: i + batch_size]) for i in range(0, len(faces), batch_size)])
    return Agreement(
        faces=len(faces),
        max_abs_difference=float(np.abs(reference - copy).max()),
        argmax_disagreements=int((reference.argmax(axis=1) != copy.argmax(axis=1)).sum()),
    )


def build_lite(model_path: str | Path, data: str | None = None,
               recorded_path: str | Path | None = None) -> tuple[Path, Agreement]:
    """Writes the model's ``.tflite`` beside it, checks it against Keras, and records it in the card.

    The check runs both on every PublicTest and PrivateTest face (the shared CSV, else the
    embedded copy) with the model's own pre-processing. The copy is converted into a temporary
    file and renamed over the ``.tflite`` only once it passed, so a failure (bad check data, a
    disagreeing copy) leaves the previous copy and the card as they were.

    Args:
        model_path: the ``.h5`` model with its card.
        data: FER2013 CSV for the check (default: shared, else embedded).
        recorded_path: where the model will live, for the card's command, when it is built
            elsewhere first (``fer.release`` stages a release); default ``model_path``.

    Raises:
        ModelFileError: the file is missing or not a saved Keras model.
        ValueError: a landmark model, unreadable check data, or a copy that disagrees with
            Keras beyond :data:`MAX_ABS_DIFFERENCE` (nothing is written then).
    """
    from fer.labels import EVAL_SPLITS
    from fer.metadata import model_info
    from fer.models import load_saved_model
    from fer.preprocess import to_model_input
    from fer.testset import load_eval_dataset

    model_path = Path(model_path)
    illumination = model_info(model_path).illumination
    model = load_saved_model(model_path)
    dataset = load_eval_dataset(data)
    images = np.concatenate([dataset.split(split)[0] for split in EVAL_SPLITS])
    faces = to_model_input(images, illumination)
    target = lite_path(model_path)
    # Beside the target, so the rename that keeps it is atomic (data.py caches the same way).
    candidate = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        candidate.write_bytes(convert(model))
        agreement = compare(model, LiteModel(candidate), faces)
        if agreement.max_abs_difference > MAX_ABS_DIFFERENCE:
            raise ValueError(f"{target}: the new copy differs from Keras by {agreement.max_abs_difference:.2e}; "
                             "not kept")
        os.replace(candidate, target)
    finally:
        candidate.unlink(missing_ok=True)
    card = read_metadata(model_path)
    card["lite"] = {
        "file": target.name,
        "sha256": file_sha256(target),
        "source_sha256": file_sha256(model_path),
        "checked_faces": agreement.faces,
        "max_abs_difference": agreement.max_abs_difference,
        "argmax_disagreements": agreement.argmax_disagreements,
        "command": f"python -m fer.lite {project_relative(Path(recorded_path or model_path))}",
    }
    write_metadata(model_path, card)
    return target, agreement


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m fer.lite", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="Keras .h5 models with their metadata JSON")
    parser.add_argument("--data", default=None, help="FER2013 CSV for the check (default: shared, else embedded)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    status = 0
    for path in args.models:
        if not path.is_file() or not metadata_path(path).is_file():
            print(f"error: {path}: model or its metadata JSON not found", file=sys.stderr)
            status = 2
            continue
        try:
            target, agreement = build_lite(path, args.data)
        except (ValueError, OSError) as error:  # ModelFileError and DataFormatError are ValueErrors
            message = str(error) if str(path) in str(error) else f"{path}: {error}"  # which model failed
            print(f"error: {message}", file=sys.stderr)
            status = 2
            continue  # one bad model does not cost the others their copies
        print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB): {agreement.faces} faces, max |difference| "
              f"{agreement.max_abs_difference:.1e}, {agreement.argmax_disagreements} different predictions")
    return status


if __name__ == "__main__":
    sys.exit(main())
