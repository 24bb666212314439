"""A compact training pack for the trip to the GPU machine: ``python -m fer.pack``.

The full dataset does not compress below ~58 MB losslessly, too much beside the project tree,
so the Training split travels as JPEG (quality 90; mean error about 2 grey levels, harmless for
training) while PublicTest, the validation split, travels exactly. PrivateTest never travels:
test evaluation happens here, on exact pixels.
"""

from __future__ import annotations

import io
import sys

import numpy as np

from fer.cli import argument_parser
from fer.labels import FACE_SIZE


def _encode_jpeg(images: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    blobs = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="JPEG", quality=quality)
        blobs.append(buffer.getvalue())
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets


def _decode_jpeg(payload: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from PIL import Image

    count = len(offsets) - 1
    images = np.empty((count, FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    raw = payload.tobytes()
    for i in range(count):
        with Image.open(io.BytesIO(raw[offsets[i]:offsets[i + 1]])) as img:
            images[i] = np.asarray(img.convert("L"))
    return images


def write_pack(data: str, out: str, quality: int = 90) -> None:
    """Writes the pack from a FER2013 source."""
    from fer.data import load_fer2013

    dataset = load_fer2013(data)
    train_images, train_labels, train_rows = dataset.split("Training")
    val_images, val_labels, val_rows = dataset.split("PublicTest")
    payload, offsets = _encode_jpeg(train_images, quality)
    np.savez_compressed(
        out,
        train_jpeg=payload, train_offsets=offsets, train_labels=train_labels.astype(np.int8),
        train_rows=train_rows.astype(np.int32),
        val_images=val_images, val_labels=val_labels.astype(np.int8), val_rows=val_rows.astype(np.int32),
        source_sha256=np.array(dataset.checksum),
    )


def read_pack(path: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], str]:
    """Reads a pack into ``{split: (images, labels, rows)}`` for Training and PublicTest, and the
    SHA-256 of the CSV it was made from (one open of the archive for both).
    """
    with np.load(path, allow_pickle=False) as archive:
        splits = {
            "Training": (
                _decode_jpeg(archive["train_jpeg"], archive["train_offsets"]),
                archive["train_labels"].astype(np.int64),
                archive["train_rows"].astype(np.int64),
            ),
            "PublicTest": (
                archive["val_images"], archive["val_labels"].astype(np.int64), archive["val_rows"].astype(np.int64),
            ),
        }
        return splits, str(archive["source_sha256"])


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m fer.pack --data CSV --out PACK.npz``."""
    from fer.paths import FER2013_CSV

    parser = argument_parser("python -m fer.pack", __doc__)
    parser.add_argument("--data", default=str(FER2013_CSV), help="FER2013 CSV(.gz)")
    parser.add_argument("--out", required=True, help="the pack to write, e.g. .gpu/pack.npz")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the Training faces (0-100)")
    args = parser.parse_args(argv)
    write_pack(args.data, args.out, args.quality)
    return 0


if __name__ == "__main__":
    sys.exit(main())
