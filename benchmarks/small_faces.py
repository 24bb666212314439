"""Small faces found with and without BlazeFace's tiles, in crowds made of a sample photo.

``python benchmarks/small_faces.py [--photo NAME]``

Each crowd is the photo shrunk and repeated (``fer.photos.crowd``), so its faces are a known
count at a known share of the crowd's width. It prints the faces the default pipeline finds with
the tiles (``FerPipeline()``) and without them (``FerPipeline(tiles=False)``), and the detection
time of each (one run; the first crowd also warms up). Faces found beyond the count would be
false ones; a face count is not a check that each box is on a face (the tests check that for the
5% crowd).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer.photos import crowd  # noqa: E402
from fer.pipeline import FerPipeline  # noqa: E402

# (cell width in px, copies a side): faces of ~10.5% of the photo's width become ~5%, 3.5%, 2.6%.
CROWDS: tuple[tuple[int, int], ...] = ((240, 2), (240, 3), (200, 3), (200, 4), (160, 4))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="pyfeat_multi_face.jpg", help="a sample photo with an exact face count")
    parser.add_argument("--face-share", type=float, default=0.105,
                        help="its faces' width as a share of its own (pyfeat_multi_face.jpg: ~0.105)")
    args = parser.parse_args(argv)
    with_tiles, without = FerPipeline(), FerPipeline(tiles=False)
    print(f"{'crowd':>12s} {'face share':>10s} {'faces':>6s} {'tiles':>6s} {'ms':>6s} {'no tiles':>9s} {'ms':>6s}")
    for width, copies in CROWDS:
        image, faces = crowd(args.photo, width, copies)
        on, off = with_tiles.analyze(image), without.analyze(image)
        share = args.face_share / copies
        print(f"{image.shape[1]:>5d}x{image.shape[0]:<6d} {share:10.3f} {faces:6d} {len(on.faces):6d} "
              f"{on.timings['detect']:6.0f} {len(off.faces):9d} {off.timings['detect']:6.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
