"""Which test-time views help? ``python scripts/tta_views.py [--model models/fer_best.h5]``.

Runs the model on every PublicTest face (never PrivateTest: this chooses views) under 34 views
and their mirrors: the face, shifts of 1-3 pixels in 8 directions, zooms of 0.9-1.15 and
rotations of ±5° and ±10° (border pixels repeated, as in training). Prints each view's
accuracy, then the accuracy of view sets averaged as probabilities and as log-probabilities.
About 4-20 minutes on 2 cores (68 passes over 3,589 faces), with the host.

``--final SET`` then scores that one named set on PrivateTest (averaged probabilities): for a
set chosen on PublicTest beforehand, read once, never to choose between sets.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from fer.evaluate import shifted  # noqa: E402
from fer.paths import MODELS_DIR  # noqa: E402

AXIAL = ((-1, 0), (1, 0), (0, -1), (0, 1))
DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))
SHIFTS = [(dy * d, dx * d) for d in (1, 2, 3) for dy, dx in AXIAL + DIAGONAL]
ZOOMS = (0.9, 0.95, 1.05, 1.1, 1.15)
ANGLES = (-10, -5, 5, 10)


def affine(x: np.ndarray, scale: float = 1.0, angle: float = 0.0) -> np.ndarray:
    """Zooms and rotates (N, 48, 48, 1) faces about their centre, repeating the border."""
    import cv2

    h, w = x.shape[1:3]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    return np.stack([cv2.warpAffine(face[..., 0], matrix, (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE) for face in x])[..., None]


def views(x: np.ndarray) -> dict[str, np.ndarray]:
    """Every candidate view of the model inputs, by name."""
    out = {"id": x}
    out.update({f"s{dy},{dx}": shifted(x, dy, dx) for dy, dx in SHIFTS})
    out.update({f"z{s}": affine(x, scale=s) for s in ZOOMS})
    out.update({f"r{a}": affine(x, angle=a) for a in ANGLES})
    return out


def view_sets(names: list[str]) -> dict[str, list[str]]:
    """Named sets of views (each with its mirrors) to compare with the flip alone."""
    def mirrored(*bases: str) -> list[str]:
        return [n for b in bases for n in (b, b + "_f")]

    def moves(directions: tuple[tuple[int, int], ...], d: int) -> list[str]:
        return [f"s{dy * d},{dx * d}" for dy, dx in directions]

    shifts = {d: moves(AXIAL, d) for d in (1, 2, 3)}
    diagonals = {d: moves(DIAGONAL, d) for d in (1, 2)}
    return {
        "flip": mirrored("id"),
        "shift 1 px x4": mirrored("id", *shifts[1]),
        "shift 2 px x4 (--tta-shifts)": mirrored("id", *shifts[2]),
        "shift 3 px x4": mirrored("id", *shifts[3]),
        "shift 1 px x8": mirrored("id", *shifts[1], *diagonals[1]),
        "shift 2 px x8": mirrored("id", *shifts[2], *diagonals[2]),
        "zoom 0.95, 1.05": mirrored("id", "z0.95", "z1.05"),
        "zoom 0.9, 1.1": mirrored("id", "z0.9", "z1.1"),
        "zoom 1.05, 1.1": mirrored("id", "z1.05", "z1.1"),
        "zoom 1.1": mirrored("id", "z1.1"),
        "rotate ±5°": mirrored("id", "r-5", "r5"),
        "rotate ±10°": mirrored("id", "r-10", "r10"),
        "zoom 1.05 + rotate ±5°": mirrored("id", "z1.05", "r-5", "r5"),
        "shift 1 px x4 + zoom 0.95, 1.05": mirrored("id", *shifts[1], "z0.95", "z1.05"),
        "shift 1 + 3 px x4 + zoom 0.9, 1.1": mirrored("id", *shifts[1], *shifts[3], "z0.9", "z1.1"),
        "all": names,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(MODELS_DIR / "fer_best.h5"))
    parser.add_argument("--final", metavar="SET", help="then score this view set on PrivateTest")
    args = parser.parse_args(argv)
    if args.final and args.final not in view_sets([]):
        parser.error(f"--final: no view set {args.final!r}; choose from: " + ", ".join(view_sets([])))
    import keras

    from fer.metadata import model_info
    from fer.preprocess import to_model_input
    from fer.testset import load_eval_dataset

    model = keras.models.load_model(args.model, compile=False)
    dataset = load_eval_dataset()
    illumination = model_info(args.model).illumination
    images, labels, _ = dataset.split("PublicTest")
    x = to_model_input(images, illumination)
    probs: dict[str, np.ndarray] = {}
    print(f"{args.model}, PublicTest ({len(labels)} faces): accuracy of each view (and with its mirror)")
    for name, view in views(x).items():
        probs[name] = model.predict(view, batch_size=256, verbose=0)
        probs[name + "_f"] = model.predict(view[:, :, ::-1, :], batch_size=256, verbose=0)
        alone = (probs[name].argmax(1) == labels).mean()
        pair = ((probs[name] + probs[name + "_f"]).argmax(1) == labels).mean()
        print(f"  {name:8s} {alone:.2%} ({pair:.2%})", flush=True)
    print(f"{'view set':34s} {'views':>5s} {'mean prob':>10s} {'mean log-prob':>14s}")
    for name, members in view_sets(list(probs)).items():
        mean = sum(probs[m] for m in members)
        log_mean = sum(np.log(probs[m] + 1e-7) for m in members)
        print(f"{name:34s} {len(members):5d} {(mean.argmax(1) == labels).mean():10.2%} "
              f"{(log_mean.argmax(1) == labels).mean():14.2%}")
    if args.final:
        images, labels, _ = dataset.split("PrivateTest")
        every = views(to_model_input(images, illumination))
        members = view_sets([n for base in every for n in (base, base + "_f")])[args.final]  # "all": mirrors too
        mean = sum(model.predict(every[m.removesuffix("_f")][:, :, ::-1, :] if m.endswith("_f")
                                 else every[m], batch_size=256, verbose=0) for m in members)
        print(f"PrivateTest ({len(labels)} faces), {args.final} ({len(members)} views): "
              f"{(mean.argmax(1) == labels).mean():.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
