"""Accuracy of the PyPI ``fer`` package's emotion classifier on FER2013, beside ours.

Usage::

    python benchmarks/versus_fer_package.py [--model models/fer_best.h5 ...] [--keras]
        [--fer-venv /tmp/fer-pypi-venv]

The package (``fer==25.10.3``) classifies each face with a 64x64 mini-Xception from
oarriaga/face_classification, trained on FER2013. Here it runs as its ``detect_emotions`` runs it
on a face crop: grey face resized to 64x64 (``cv2.resize``), scaled to [-1, 1], through its
default quantized TFLite model (``--keras``: also its HDF5 model). FER2013's faces are already
crops, so no detector is involved on either side. The package lives in its own virtual
environment (its import name is also ``fer``), made on first use as ``bench_pipeline.py`` makes it.

Ours are read from the predictions each model's ``python -m fer.evaluate`` wrote
(``<model>.predictions.csv`` and ``<model>.predictions_tta.csv``): the figures of its card.

Every split is scored, Training too: a classifier that trained on FER2013's test faces scores
about as well on them as on Training, one that never saw them drops. The test splits are also
scored against the FER+ crowd's majority (faces without an emotion vote left out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_pipeline import DEFAULT_FER_VENV, FER_PACKAGE, ensure_fer_venv  # noqa: E402

from fer.explorer import PROB_COLUMNS  # noqa: E402
from fer.ferplus import load_ferplus_votes, majority_label  # noqa: E402
from fer.labels import EVAL_SPLITS  # noqa: E402
from fer.paths import MODELS_DIR  # noqa: E402
from fer.testset import load_eval_dataset  # noqa: E402

SPLITS = ("Training", *EVAL_SPLITS)
# Run inside the package's environment (``python -I``): faces in, its probabilities out.
FER_SCRIPT = textwrap.dedent("""
    import sys
    import cv2, numpy as np
    from fer.fer import FER
    faces, out, tflite = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    classifier = FER(mtcnn=False, use_tflite=tflite)
    images = np.load(faces)
    probabilities = []
    for start in range(0, len(images), 1024):
        # As detect_emotions prepares a face crop: resized to its model's 64x64, then to [-1, 1].
        batch = np.array([cv2.resize(f, (64, 64)) for f in images[start:start + 1024]], dtype="float32")
        probabilities.append(np.asarray(classifier._classify_emotions((batch / 255.0 - 0.5) * 2.0)))
    np.save(out, np.concatenate(probabilities).astype("float32"))
""")


def package_probabilities(python: Path, images: np.ndarray, tflite: bool) -> np.ndarray:
    """The ``fer`` package's seven probabilities for each 48x48 face (its label order is FER2013's)."""
    with tempfile.TemporaryDirectory() as folder:
        faces, out = Path(folder, "faces.npy"), Path(folder, "probabilities.npy")
        np.save(faces, images)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([str(python), "-I", "-c", FER_SCRIPT, str(faces), str(out), "1" if tflite else "0"],
                              capture_output=True, text=True, cwd=folder, env=env)
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"the fer package run failed:\n{done.stderr[-3000:]}")
        return np.load(out)


def accuracy(predicted: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Share of faces whose prediction is the reference label, over faces that have one (>= 0)."""
    kept = reference >= 0
    return float((predicted[kept] == reference[kept]).mean()), int(kept.sum())


def score_rows(name: str, predicted: np.ndarray, rows: np.ndarray, usage: np.ndarray, labels: np.ndarray,
               crowd: np.ndarray) -> list[dict]:
    """One table row per split and reference for one classifier's predictions of ``rows``."""
    out = []
    for split in SPLITS:
        here = usage == split
        if not here.any():
            continue
        for reference, truth in (("FER2013", labels[here]), ("FER+ majority", crowd[rows[here]])):
            if reference != "FER2013" and split == "Training":
                continue
            share, n = accuracy(predicted[here], truth)
            out.append({"classifier": name, "split": split, "labels": reference, "faces": n, "accuracy": share})
    return out


def ours(model: Path, tta: bool, crowd: np.ndarray) -> list[dict]:
    """Our model's table rows, from the predictions ``python -m fer.evaluate`` wrote."""
    path = model.with_suffix(".predictions_tta.csv" if tta else ".predictions.csv")
    if not path.is_file():
        return []
    table = pd.read_csv(path)
    predicted = table[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)
    name = f"{model.stem}{' (flip TTA)' if tta else ''}"
    return score_rows(name, predicted, table["row"].to_numpy(), table["split"].to_numpy(str),
                      table["true"].to_numpy(), crowd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", type=Path,
                        help="our model .h5 (repeatable; default: models/fer_best.h5 and models/paper_cnn.h5)")
    parser.add_argument("--keras", action="store_true", help="also the package's HDF5 model (its non-default path)")
    parser.add_argument("--fer-venv", type=Path, default=DEFAULT_FER_VENV)
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    dataset = load_eval_dataset()
    crowd = majority_label(load_ferplus_votes().votes)
    python = ensure_fer_venv(args.fer_venv)
    table = []
    for tflite in (True, False) if args.keras else (True,):
        probabilities = package_probabilities(python, dataset.images, tflite)
        name = f"PyPI {FER_PACKAGE} ({'quantized TFLite, its default' if tflite else 'HDF5'})"
        table += score_rows(name, probabilities.argmax(axis=1), dataset.rows, np.asarray(dataset.usage, str),
                            dataset.labels, crowd)
    for model in args.model or [MODELS_DIR / "fer_best.h5", MODELS_DIR / "paper_cnn.h5"]:
        table += ours(model, False, crowd) + ours(model, True, crowd)
    frame = pd.DataFrame(table)
    wide = frame.pivot_table(index="classifier", columns=["labels", "split"], values="accuracy", sort=False)
    print(wide.map(lambda a: "—" if np.isnan(a) else f"{a:.2%}").to_string())
    print("faces scored: " + ", ".join(f"{s} {n}" for s, n in frame.groupby(["labels", "split"], sort=False)["faces"]
                                        .first().items()))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
