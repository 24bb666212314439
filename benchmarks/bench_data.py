"""Parse and cached-load times of FER2013: ``python benchmarks/bench_data.py [--data CSV]``.

The bar (issue 2): parsing the full CSV under 10 s on the 2-core machine, a second (cached)
load under 1 s. The cache goes to a temporary folder so the run starts cold.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer.paths import FER2013_CSV  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(FER2013_CSV))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FER_CACHE_DIR"] = cache
        from fer.data import load_fer2013, parse_fer2013_csv

        started = time.perf_counter()
        dataset = parse_fer2013_csv(args.data)
        parse_s = time.perf_counter() - started
        load_fer2013(args.data)  # fills the cache
        started = time.perf_counter()
        cached = load_fer2013(args.data)
        cached_s = time.perf_counter() - started
    print(f"load average {os.getloadavg()[0]:.2f}; {len(dataset)} faces, {dataset.counts()}")
    print(f"parse CSV (no cache): {parse_s:.2f} s   (bar 10 s)")
    print(f"second load (cache):  {cached_s:.3f} s  (bar 1 s)")
    return 0 if len(cached) == len(dataset) else 1


if __name__ == "__main__":
    raise SystemExit(main())
