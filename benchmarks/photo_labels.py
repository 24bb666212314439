"""How many hand-labelled sample photos each model labels right.

``python benchmarks/photo_labels.py [--model models/fer_best.h5 ...] [--tta] [--photos DIR]``

The manifest's ``expression`` column labels the clear expressions of single-face photos, each
with a confidence in its notes (``expr_conf=high`` or ``medium``). A photo counts as right when
its first face (in reading order) gets that label. Twelve photos are too few to rank models
(one photo is 8 points); the report is a sanity check on real photos, not a benchmark.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer.paths import MODELS_DIR, PHOTOS_DIR  # noqa: E402
from fer.photos import labelled_photos  # noqa: E402
from fer.pipeline import FerPipeline  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", type=Path, help="a model .h5 (repeatable; default: all released)")
    parser.add_argument("--photos", default=PHOTOS_DIR, type=Path)
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    args = parser.parse_args(argv)
    photos = labelled_photos(args.photos)
    models = args.model or sorted(p for p in MODELS_DIR.glob("*.h5") if p.with_suffix(".json").is_file())
    for model in models:
        pipeline = FerPipeline(model, tta=args.tta)
        right = {"high": [0, 0], "medium": [0, 0]}
        wrong = []
        for name, label, confidence in photos:
            faces = pipeline.analyze_path(args.photos / name).faces
            got = faces[0].label if faces else "no face"
            tally = right.setdefault(confidence, [0, 0])
            tally[0] += got == label
            tally[1] += 1
            if got != label:
                wrong.append(f"{name} ({label}): {got}")
        counts = ", ".join(f"{c} {r}/{n}" for c, (r, n) in right.items() if n)
        misses = f"; wrong: {'; '.join(wrong)}" if wrong else ""
        print(f"{model.stem}{' (TTA)' if args.tta else ''}: {counts}{misses}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
