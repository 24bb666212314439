"""Per-stage and end-to-end timing of the photo pipeline, against the PyPI ``fer`` package.

Usage::

    python benchmarks/bench_pipeline.py [--photos DIR] [--repeat 5] [--detector hog]
        [--no-second-look] [--model PATH] [--fer-venv /tmp/fer-pypi-venv] [--no-fer-package]

For every photo it times ``FerPipeline.analyze_path`` (file bytes to labelled faces: decode,
detect, landmarks, align, classify) ``--repeat`` times after one warm-up run and reports the
median per stage; BlazeFace's second look (part of detection) runs unless ``--no-second-look``.
The same photos then go through the PyPI ``fer`` package (``FER(mtcnn=False)``:
OpenCV Haar cascade + its own 64x64 CNN), timed from ``cv2.imread`` to ``detect_emotions``'s
result. That package's import name is also ``fer``, so it lives in its own virtual environment,
created here on first use, and runs in a subprocess (``python -I`` so our ``fer`` cannot shadow
it). It is installed with ``--no-deps`` plus the dependencies its Haar path imports: its declared
``facenet-pytorch`` (PyTorch, for MTCNN) and ``moviepy`` (video) are not used by this benchmark.

The bar (issue 3): end-to-end median on ~1-megapixel one-face photos at most 60 ms on the
2-core development machine, and faster than the ``fer`` package. The load average is printed
because a busy machine inflates every number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer.detect import DETECTORS  # noqa: E402
from fer.image_io import IMAGE_SUFFIXES  # noqa: E402
from fer.paths import PHOTOS_DIR  # noqa: E402
from fer.photos import MANIFEST_NAME, manifest_rows, tally  # noqa: E402
from fer.pipeline import STAGES  # noqa: E402

DEFAULT_FER_VENV = Path(tempfile.gettempdir()) / "fer-pypi-venv"
FER_PACKAGE = "fer==25.10.3"
FER_RUNTIME_DEPS = ("tensorflow==2.21.*", "opencv-python-headless==4.14.*", "pandas", "requests", "tqdm", "pillow",
                    "setuptools<81")  # setuptools<81: fer imports pkg_resources
BAR_MS = 60.0
ONE_MP_RANGE = (0.7e6, 1.6e6)

FER_SCRIPT = textwrap.dedent("""
    import json, statistics, sys, time
    import cv2
    from fer.fer import FER
    paths, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
    detector = FER(mtcnn=False)
    out = {}
    for path in paths:
        def run():
            image = cv2.imread(path)
            return [] if image is None else detector.detect_emotions(image)
        faces = run()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) * 1000)
        out[path] = {"faces": len(faces), "ms": statistics.median(times)}
    print("RESULT " + json.dumps(out))
""")


def photo_list(folder: Path) -> list[tuple[Path, str]]:
    """Photos of the folder with their manifest face count ('?' without a manifest)."""
    counts: dict[str, str] = {}
    if (folder / MANIFEST_NAME).is_file():
        counts = {row["file"]: row["faces"] for row in manifest_rows(folder)}
    return [(p, counts.get(p.name, "?")) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


def time_ours(
    photos: list[Path], repeat: int, detector: str, model: Path | None, second_look: bool = True
) -> dict[Path, dict]:
    """Median per-stage and total milliseconds of our pipeline, per photo."""
    from fer.pipeline import FerPipeline

    pipeline = FerPipeline(model, detector=detector, second_look=None if second_look else False)
    results = {}
    for path in photos:
        first = pipeline.analyze_path(path)  # warm-up (first use of each batch size, caches)
        runs = [pipeline.analyze_path(path).timings for _ in range(repeat)]
        results[path] = {
            "faces": len(first.faces),
            "pixels": first.original_size[0] * first.original_size[1],
            **{k: statistics.median(r[k] for r in runs) for k in (*STAGES, "total")},
        }
    return results


def ensure_fer_venv(venv: Path) -> Path:
    """Creates the virtual environment with the PyPI ``fer`` package if it is missing."""
    python = venv / "bin" / "python"
    check = [str(python), "-I", "-c", "from fer.fer import FER"]
    if python.is_file() and subprocess.run(check, capture_output=True, cwd=tempfile.gettempdir()).returncode == 0:
        return python
    print(f"creating {venv} with {FER_PACKAGE} (a few minutes: it installs TensorFlow)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", FER_PACKAGE], check=True)
    subprocess.run([*pip, *FER_RUNTIME_DEPS], check=True)
    return python


def time_fer_package(python: Path, photos: list[Path], repeat: int) -> dict[Path, dict]:
    """Median milliseconds of the PyPI ``fer`` package per photo (run in its own venv)."""
    args = [str(python), "-I", "-c", FER_SCRIPT, json.dumps([str(p) for p in photos]), str(repeat)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(args, capture_output=True, text=True, cwd=tempfile.gettempdir(), env=env)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"the fer package run failed:\n{done.stderr[-3000:]}")
    return {Path(k): v for k, v in json.loads(line[len("RESULT "):]).items()}


def print_table(photos: list[tuple[Path, str]], ours: dict[Path, dict], theirs: dict[Path, dict] | None) -> None:
    """One row per photo: face counts, our stage medians, totals and the speed ratio."""
    head = f"{'photo':26} {'MP':>5} {'want':>4} {'ours':>4} " + " ".join(f"{s:>9}" for s in STAGES)
    head += f" {'total':>7}"
    if theirs:
        head += f" {'fer#':>4} {'fer ms':>7} {'x faster':>8}"
    print(head)
    print("-" * len(head))
    for path, want in photos:
        row = ours[path]
        line = f"{path.name[:26]:26} {row['pixels'] / 1e6:5.2f} {want:>4} {row['faces']:>4} "
        line += " ".join(f"{row[s]:9.1f}" for s in STAGES) + f" {row['total']:7.1f}"
        if theirs:
            other = theirs[path]
            line += f" {other['faces']:>4} {other['ms']:7.1f} {other['ms'] / row['total']:8.1f}"
        print(line)


def found_text(photos: list[tuple[Path, str]], results: dict[Path, dict]) -> str:
    """Faces found of the countable ones, and extra boxes, scored as ``detection_report.py`` does."""
    scores = [tally(results[p]["faces"], want) for p, want in photos]
    countable, found, extra = (sum(column) for column in zip(*scores, strict=True))
    return f"{found} of {countable} countable faces, {extra} extra"


def summarise(photos: list[tuple[Path, str]], ours: dict[Path, dict], theirs: dict[Path, dict] | None) -> bool:
    """Prints medians and the issue's bar; returns whether it is met."""
    every = [ours[p]["total"] for p, _ in photos]
    counted = [(p, want) for p, want in photos if want != "?"]
    if counted:
        print(f"\nfaces found against the hand counts: {found_text(counted, ours)} (ours)"
              + (f", {found_text(counted, theirs)} (fer package)" if theirs else ""))
    one_mp = [p for p, want in photos if want == "1" and ONE_MP_RANGE[0] <= ours[p]["pixels"] <= ONE_MP_RANGE[1]]
    print(f"\nend-to-end median, all {len(every)} photos: {statistics.median(every):.1f} ms (ours)", end="")
    if theirs:
        print(f", {statistics.median(theirs[p]['ms'] for p, _ in photos):.1f} ms (fer package)")
    else:
        print()
    if not one_mp:
        print("no ~1-megapixel one-face photo in the folder: bar not checked")
        return True
    ours_1mp = statistics.median(ours[p]["total"] for p in one_mp)
    ok = ours_1mp <= BAR_MS
    names = ", ".join(p.name for p in one_mp)
    verdict = 'PASS' if ok else 'FAIL'
    print(f"~1 MP one-face photos ({names}): {ours_1mp:.1f} ms median (bar {BAR_MS:.0f} ms): {verdict}")
    if theirs:
        fer_1mp = statistics.median(theirs[p]["ms"] for p in one_mp)
        faster = ours_1mp < fer_1mp
        ok = ok and faster
        print(f"fer package on the same photos: {fer_1mp:.1f} ms; ours is {fer_1mp / ours_1mp:.1f}x faster: "
              f"{'PASS' if faster else 'FAIL'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; exit code 1 if the bar is not met."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=PHOTOS_DIR)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--detector", choices=DETECTORS, default="hog")
    parser.add_argument("--no-second-look", dest="second_look", action="store_false",
                        help="time the pipeline without BlazeFace's second look")
    parser.add_argument("--model", type=Path, default=None, help="default: the released model")
    parser.add_argument("--fer-venv", type=Path, default=DEFAULT_FER_VENV)
    parser.add_argument("--no-fer-package", action="store_true", help="skip the PyPI fer comparison")
    args = parser.parse_args(argv)

    photos = photo_list(args.photos)
    load = os.getloadavg()
    print(f"{len(photos)} photos from {args.photos}; {os.cpu_count()} CPU cores; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; medians of {args.repeat} runs (ms)\n")
    ours = time_ours([p for p, _ in photos], args.repeat, args.detector, args.model, args.second_look)
    theirs = None
    if not args.no_fer_package:
        theirs = time_fer_package(ensure_fer_venv(args.fer_venv), [p for p, _ in photos], args.repeat)
    print_table(photos, ours, theirs)
    return 0 if summarise(photos, ours, theirs) else 1


if __name__ == "__main__":
    sys.exit(main())
