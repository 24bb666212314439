"""Classification time per face on this CPU: batch of 1, after warm-up.

``python benchmarks/bench_classify.py [--repeats 200] [--ensemble A.h5 B.h5 ...]``

Times every released model in ``models/`` and every registered architecture (random weights:
the same arithmetic), with and without flip test-time augmentation (a batch of 2), through
``predict_on_batch`` as the pipeline calls it. Released models are timed under Keras and, where
they have a fresh ``.tflite`` copy (``fer.lite``), under LiteRT, which is what the pipeline then
runs; architectures under both (their LiteRT copies are converted into a temporary folder).
Prints the median and 90th percentile. With ``--ensemble`` it also times the members run one
after the other on the same face, as :mod:`fer.ensemble` averages them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from fer.lite import KERAS, LITERT, LiteModel, convert, fresh_lite_path  # noqa: E402
from fer.metadata import machine_description  # noqa: E402
from fer.models import ARCHITECTURES, build_model  # noqa: E402
from fer.paths import MODELS_DIR  # noqa: E402


def time_model(model, repeats: int, batch: int) -> tuple[float, float]:
    return time_members([model], repeats, batch)


def time_members(members: list, repeats: int, batch: int) -> tuple[float, float]:
    face = np.random.default_rng(0).uniform(0, 255, (batch, 48, 48, 1)).astype(np.float32)
    for _ in range(10):
        for model in members:
            model.predict_on_batch(face)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for model in members:
            model.predict_on_batch(face)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * len(samples)) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--ensemble", nargs="+", default=[], help="member .h5 files to time together")
    args = parser.parse_args(argv)
    print(f"machine: {machine_description()}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':28s} {'runtime':17s} {'params':>10s} {'ms/face p50':>12s} {'p90':>7s} {'TTA p50':>9s} {'p90':>7s}")
    models = []
    for path in sorted(MODELS_DIR.glob("*.h5")):
        model = keras.models.load_model(path, compile=False)
        models.append((path.stem + " (released)", KERAS, model, model.count_params()))
        lite = fresh_lite_path(path)
        if lite is not None:
            models.append((path.stem + " (released)", LITERT, LiteModel(lite), model.count_params()))
    with tempfile.TemporaryDirectory(prefix="bench_classify_") as folder:  # the architectures' copies
        for name in ARCHITECTURES:
            if "landmarks" in name:
                continue
            model = build_model(name)
            models.append((f"{name} (architecture)", KERAS, model, model.count_params()))
            lite = Path(folder) / f"{name}.tflite"
            lite.write_bytes(convert(model))
            models.append((f"{name} (architecture)", LITERT, LiteModel(lite), model.count_params()))
        for name, runtime, model, params in models:
            if runtime == KERAS and len(model.inputs) > 1:
                continue
            p50, p90 = time_model(model, args.repeats, 1)
            t50, t90 = time_model(model, args.repeats, 2)
            print(f"{name:28s} {runtime:17s} {params:>10,d} {p50:>12.2f} {p90:>7.2f} {t50:>9.2f} {t90:>7.2f}")
    if args.ensemble:
        members = [keras.models.load_model(path, compile=False) for path in args.ensemble]
        p50, p90 = time_members(members, args.repeats, 1)
        t50, t90 = time_members(members, args.repeats, 2)
        params = sum(model.count_params() for model in members)
        name = "ensemble of " + "+".join(Path(path).stem for path in args.ensemble)
        print(f"{name:28s} {KERAS:17s} {params:>10,d} {p50:>12.2f} {p90:>7.2f} {t50:>9.2f} {t90:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
