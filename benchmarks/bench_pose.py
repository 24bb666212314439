"""Time of the head-pose fit (``fer.pose.head_pose``) per face on this CPU.

``python benchmarks/bench_pose.py [--repeats 200]``

Runs every sample photo through the pipeline once (HOG detector) to get its faces' dlib
landmarks, then times ``head_pose`` on them in turn. Prints the median and 90th percentile per
face; the pipeline pays this inside its ``landmarks`` stage.
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

from fer.metadata import machine_description  # noqa: E402
from fer.paths import PHOTOS_DIR  # noqa: E402
from fer.photos import manifest_rows  # noqa: E402
from fer.pipeline import FerPipeline  # noqa: E402
from fer.pose import head_pose  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--photos", type=Path, default=PHOTOS_DIR)
    args = parser.parse_args(argv)

    pipeline = FerPipeline(detector="hog")
    landmarks = [face.landmarks for row in manifest_rows(args.photos)
                 for face in pipeline.analyze_path(args.photos / row["file"]).faces]
    if not landmarks:
        parser.error(f"no faces found in {args.photos}")
    for points in landmarks:  # warm-up: OpenCV's first call pays one-time costs
        head_pose(points)
    samples = []
    for i in range(args.repeats):
        start = time.perf_counter()
        head_pose(landmarks[i % len(landmarks)])
        samples.append((time.perf_counter() - start) * 1000)
    deciles = statistics.quantiles(samples, n=10)
    print(f"{machine_description()}")
    print(f"head pose over {len(landmarks)} sample-photo faces, {args.repeats} fits: "
          f"median {statistics.median(samples):.3f} ms, p90 {deciles[-1]:.3f} ms per face")
    return 0


if __name__ == "__main__":
    sys.exit(main())
