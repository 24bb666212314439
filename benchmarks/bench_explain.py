"""Time of one occlusion map (``fer.explain``) per face on this CPU, as the Predict page makes it.

``python benchmarks/bench_explain.py [--repeats 30] [--model models/fer_best.h5]``

Runs the labelled sample photos through the pipeline once, then times ``occlusion_map`` on their
faces with the pipeline's own classifier (LiteRT when the model has a fresh copy, else Keras),
with and without flip TTA. Prints the median and 90th percentile.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer.explain import PATCH, STRIDE, occlusion_map  # noqa: E402
from fer.metadata import machine_description  # noqa: E402
from fer.paths import PHOTOS_DIR  # noqa: E402
from fer.pipeline import FerPipeline, default_model_path  # noqa: E402

PHOTOS = ("deepface_img24.jpg", "dlib_tom_cruise.jpg", "deepface_img30.jpg", "fr_obama_small.jpg")


def time_maps(pipeline: FerPipeline, faces: list, tta: bool, repeats: int) -> tuple[float, float]:
    def classify(batch):
        return pipeline.classify(batch, tta=tta)

    for face in faces:
        occlusion_map(classify, face)
    samples = []
    for i in range(repeats):
        face = faces[i % len(faces)]
        start = time.perf_counter()
        occlusion_map(classify, face)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(0.9 * len(samples)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--model", type=Path, default=default_model_path())
    args = parser.parse_args(argv)
    print(f"machine: {machine_description()}; load average {os.getloadavg()[0]:.2f}")
    side = (48 - PATCH) // STRIDE + 1
    print(f"one map: the face and {side * side} covered copies ({PATCH}-pixel squares, stride {STRIDE})")
    pipeline = FerPipeline(args.model)
    faces = [pipeline.analyze_path(PHOTOS_DIR / name).faces[0].gray_face for name in PHOTOS]
    for tta in (False, True):
        median, p90 = time_maps(pipeline, faces, tta, args.repeats)
        print(f"{args.model.name:14} {pipeline.runtime:22} flip TTA {'on ' if tta else 'off'}: "
              f"{median:6.1f} ms per face p50, {p90:6.1f} ms p90")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
