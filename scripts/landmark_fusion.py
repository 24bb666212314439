"""The landmark hypothesis at the released model's scale: do dlib's 68 points add anything to
what ``fer_best`` already sees?

``python scripts/landmark_fusion.py --landmarks runs/landmarks.npz [--model models/fer_best.h5] [--out R.json]``
``python scripts/landmark_fusion.py --report R.json --update-card`` writes a saved report's rows
into the model's card (``landmark_fusion``, a table on the Model page).

The first test (``paper`` vs ``paper_landmarks``, README) trained the paper's CNN with and without
a landmark input. This one asks the question of the strong model, on PublicTest only:

1. **Landmarks alone**: an MLP on the 136 coordinates (Training, with mirrored copies), to see
   how much expression the points carry by themselves.
2. **Late fusion**: ``log p_cnn + w * log p_landmarks`` for a grid of ``w``. ``w`` is chosen on one
   half of PublicTest and scored on the other, both ways round, so the gain is out of sample.
3. **Feature fusion**: a softmax head retrained on ``fer_best``'s 256 penultimate features, with
   and without the 136 coordinates beside them (the same recipe; the head without them is the
   control).

The landmark table comes from ``python -m fer.landmark_features --out runs/landmarks.npz``
(dlib's predictor on each 48x48 face upscaled 2x, as the pipeline feeds landmark models).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from fer.labels import NUM_CLASSES  # noqa: E402

# iBUG 300-W point order mirrored left to right (jaw, brows, nose, eyes, outer and inner mouth).
MIRROR: tuple[int, ...] = (
    *range(16, -1, -1), 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,
    64, 63, 62, 61, 60, 67, 66, 65,
)


def mirrored(points: np.ndarray) -> np.ndarray:
    """Landmark features (N, 136) of the mirror-image faces: x -> 1 - x, left and right swapped."""
    xy = points.reshape(len(points), 68, 2)[:, list(MIRROR)].copy()
    xy[..., 0] = 1.0 - xy[..., 0]
    return xy.reshape(len(points), 136)


def normalised(points: np.ndarray) -> np.ndarray:
    """Centres each face's points and scales them to unit spread: expression, not framing."""
    xy = points.reshape(len(points), 68, 2)
    xy = xy - xy.mean(axis=1, keepdims=True)
    xy = xy / (np.sqrt((xy ** 2).sum(axis=(1, 2), keepdims=True) / 68) + 1e-6)
    return xy.reshape(len(points), 136).astype(np.float32)


def train_head(x: np.ndarray, y: np.ndarray, hidden: int, seed: int, epochs: int):
    """A softmax classifier (``hidden`` > 0: one ReLU layer with dropout first), Adam, fixed epochs."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((x.shape[1],))]
    if hidden:
        layers += [keras.layers.Dense(hidden, activation="relu"), keras.layers.Dropout(0.3),
                   keras.layers.Dense(hidden, activation="relu"), keras.layers.Dropout(0.3)]
    layers.append(keras.layers.Dense(NUM_CLASSES, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=256, epochs=epochs, verbose=0)
    return model


def fused_accuracy(log_cnn: np.ndarray, log_lm: np.ndarray, y: np.ndarray, weight: float) -> float:
    return float(((log_cnn + weight * log_lm).argmax(axis=1) == y).mean())


def cross_fitted_fusion(log_cnn: np.ndarray, log_lm: np.ndarray, y: np.ndarray, grid: np.ndarray,
                        seed: int = 0) -> tuple[float, list[float]]:
    """Accuracy of late fusion with ``w`` picked on one half and scored on the other (both ways)."""
    order = np.random.default_rng(seed).permutation(len(y))
    halves = order[: len(y) // 2], order[len(y) // 2:]
    right, chosen = 0, []
    for pick, score in (halves, halves[::-1]):
        best = max(grid, key=lambda w: fused_accuracy(log_cnn[pick], log_lm[pick], y[pick], w))
        chosen.append(float(best))
        right += fused_accuracy(log_cnn[score], log_lm[score], y[score], best) * len(score)
    return right / len(y), chosen


def card_rows(report: dict) -> list[dict]:
    """The report as the card's table: one row per test, PublicTest accuracy."""
    def row(test: str, value: float) -> dict:
        return {"test (PublicTest only)": test, "accuracy": round(float(value), 4)}

    weights = ", ".join(f"{w:.2f}" for w in report["late_fusion_weights_chosen"])
    best = max(report["late_fusion_by_weight"].items(), key=lambda item: item[1])
    return [
        row("the model, flip TTA", report["cnn_flip_tta"]),
        row("dlib landmarks alone (MLP on the 136 coordinates)", report["landmarks_alone"]),
        row(f"late fusion, weight picked on one half, scored on the other (picked {weights})",
            report["late_fusion_cross_fitted"]),
        row(f"late fusion, best weight in-sample ({best[0]}; an upper bound)", best[1]),
        row("softmax head retrained on the model's features (control)", report["head_features"]),
        row("the same head on features + landmarks", report["head_features_plus_landmarks"]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--landmarks", help="table from python -m fer.landmark_features")
    parser.add_argument("--report", help="a saved report (--out) to use instead of computing one")
    parser.add_argument("--out", help="write the report here (JSON)")
    parser.add_argument("--update-card", action="store_true", help="write the rows into the model's card")
    parser.add_argument("--model", default="models/fer_best.h5")
    parser.add_argument("--data", default=None, help="FER2013 CSV (default: the shared one)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.report:
        report = json.loads(Path(args.report).read_text())
    elif args.landmarks:
        report = fusion_report(args)
    else:
        parser.error("give --landmarks (to compute) or --report (a saved one)")
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.update_card:
        from fer.metadata import read_metadata, write_metadata

        card = read_metadata(report["model"])
        card["landmark_fusion"] = card_rows(report)
        write_metadata(report["model"], card)
        print(f"wrote landmark_fusion into the card of {report['model']}")
    return 0


def fusion_report(args: argparse.Namespace) -> dict:
    """Runs the three tests (see the module docstring) and returns their figures."""
    import keras

    from fer.data import load_fer2013
    from fer.landmark_features import load_table
    from fer.metadata import model_info
    from fer.paths import FER2013_CSV
    from fer.preprocess import to_model_input

    data = load_fer2013(args.data or FER2013_CSV)
    table = load_table(args.landmarks)
    info = model_info(args.model)
    model = keras.models.load_model(args.model, compile=False)
    # The input of the softmax layer: what the released model's own head reads.
    features = keras.Model(model.inputs, model.get_layer("probabilities").input)

    def split(name: str):
        faces, labels, rows = data.split(name)
        x = to_model_input(faces, info.illumination)
        probs = (model.predict(x, batch_size=512, verbose=0) + model.predict(x[:, :, ::-1], batch_size=512,
                                                                           verbose=0)) / 2
        feats = (features.predict(x, batch_size=512, verbose=0)
                 + features.predict(x[:, :, ::-1], batch_size=512, verbose=0)) / 2
        return labels.astype(np.int64), table[rows], probs.astype(np.float64), feats.astype(np.float32)

    y_tr, lm_tr, _, f_tr = split("Training")
    y_va, lm_va, p_va, f_va = split("PublicTest")
    report: dict[str, object] = {"model": args.model, "PublicTest_n": int(len(y_va))}
    report["cnn_flip_tta"] = float((p_va.argmax(1) == y_va).mean())

    # 1. Landmarks alone (mirrored copies double Training; the test faces are averaged with their mirrors).
    lm_model = train_head(normalised(np.concatenate([lm_tr, mirrored(lm_tr)])), np.concatenate([y_tr, y_tr]),
                          hidden=256, seed=args.seed, epochs=args.epochs)
    p_lm = (lm_model.predict(normalised(lm_va), verbose=0) + lm_model.predict(normalised(mirrored(lm_va)),
                                                                               verbose=0)) / 2
    report["landmarks_alone"] = float((p_lm.argmax(1) == y_va).mean())

    # 2. Late fusion, weight cross-fitted on PublicTest halves.
    grid = np.round(np.arange(0.0, 1.01, 0.05), 2)
    log_cnn, log_lm = np.log(p_va + 1e-9), np.log(p_lm + 1e-9)
    report["late_fusion_by_weight"] = {str(w): round(fused_accuracy(log_cnn, log_lm, y_va, w), 4) for w in grid}
    report["late_fusion_cross_fitted"], report["late_fusion_weights_chosen"] = cross_fitted_fusion(
        log_cnn, log_lm, y_va, grid, seed=args.seed)

    # 3. Feature fusion: the same head recipe on the CNN's features, without and with the points.
    for name, x_tr, x_va in (("head_features", f_tr, f_va),
                             ("head_features_plus_landmarks", np.hstack([f_tr, normalised(lm_tr)]),
                              np.hstack([f_va, normalised(lm_va)]))):
        head = train_head(x_tr, y_tr, hidden=0, seed=args.seed, epochs=args.epochs)
        report[name] = float((head.predict(x_va, verbose=0).argmax(1) == y_va).mean())
    return report


if __name__ == "__main__":
    sys.exit(main())
