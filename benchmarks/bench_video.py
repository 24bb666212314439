"""Time to analyse a video (``fer.video``) on this CPU, as the Video page does it.

``python benchmarks/bench_video.py [--size 1280x720] [--seconds 20] [--every 0.5] [--detector hog]``

Writes a clip of the labelled sample photos (each held for a few seconds, scaled into a frame of
the given size) to a temporary MP4, then times, from its bytes in memory: decoding every frame,
sampling alone (grab every frame, convert the sampled ones), and the whole analysis with and
without flip TTA. Prints seconds, milliseconds per analysed frame and the real-time factor.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from fer.detect import DETECTORS  # noqa: E402
from fer.metadata import machine_description  # noqa: E402
from fer.paths import PHOTOS_DIR  # noqa: E402
from fer.pipeline import FerPipeline  # noqa: E402
from fer.video import analyze_video, open_video, sample_frames  # noqa: E402

PHOTOS = ("deepface_img24.jpg", "deepface_img30.jpg", "dlib_tom_cruise.jpg", "pyfeat_multi_face.jpg")


def make_clip(size: tuple[int, int], seconds: float, fps: int = 25) -> bytes:
    """An MP4 (OpenCV's mp4v) cycling through the sample photos, each held for a quarter of the clip."""
    import cv2

    frames = []
    for name in PHOTOS:
        canvas = Image.new("RGB", size, (40, 40, 40))
        photo = Image.open(PHOTOS_DIR / name).convert("RGB")
        photo.thumbnail(size)
        canvas.paste(photo, ((size[0] - photo.width) // 2, (size[1] - photo.height) // 2))
        frames.append(cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2BGR))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        per_photo = round(seconds * fps / len(frames))
        for frame in frames:
            for _ in range(per_photo):
                writer.write(frame)
        writer.release()
        return path.read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--detector", choices=DETECTORS, default="hog")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    data = make_clip(size, args.seconds)
    print(f"machine: {machine_description()}")
    print(f"clip: {size[0]}x{size[1]}, {args.seconds:.0f} s at 25 fps, {len(data) / 1e6:.1f} MB (mp4v)")
    start = time.perf_counter()
    with open_video(data) as (capture, _):
        decoded = 0
        while capture.read()[0]:
            decoded += 1
    decode_s = time.perf_counter() - start
    print(f"decode every frame: {decoded} frames in {decode_s:.2f} s ({1000 * decode_s / decoded:.1f} ms a frame)")
    start = time.perf_counter()
    sampled = sum(1 for _ in sample_frames(data, args.every))
    print(f"sample one frame every {args.every:g} s: {sampled} frames in {time.perf_counter() - start:.2f} s")
    pipeline = FerPipeline(detector=args.detector)
    for tta in (False, True):
        result = analyze_video(pipeline, data, args.every, tta=tta)
        frames = len(result.times_s)
        cuts = ", ".join(f"{t:g}" for t in result.cuts) or "none"
        print(f"analysis{' (flip TTA)' if tta else ''}: {frames} frames, {len(result.points)} faces, "
              f"{len(result.tracks)} tracks ({result.identity_checks} identity checks), cuts at {cuts} s, in "
              f"{result.seconds:.2f} s = {1000 * result.seconds / frames:.0f} ms an "
              f"analysed frame, {args.seconds / result.seconds:.1f}x real time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
