"""Decoding: every format and colour mode becomes RGB uint8; every bad file gets its own error.

The malformed files are generated in ``tmp_path`` (or in memory) by the tests themselves. The two
HEIC files in ``tests/data`` cannot be: pi-heif decodes only. They are ``gradient_rgb()`` saved by
pillow-heif 1.1.1 (quality 90): ``card_orientation6.heic`` with EXIF orientation 6, and
``card_half_transparent.heic`` as RGBA with the left half fully transparent.
"""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from fer.image_io import (
    MAX_PIXELS,
    MAX_SIDE,
    DecodedImage,
    EmptyFileError,
    ImageDecodeError,
    ImageTooLargeError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedFormatError,
    decode_image,
    read_image,
    sniff_format,
    to_rgb_array,
)
from fer.paths import PHOTOS_DIR, PROJECT_DIR

TEST_DATA = PROJECT_DIR / "tests" / "data"

EXIF_ORIENTATION = 0x0112


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient_rgb(width: int = 64, height: int = 48) -> np.ndarray:
    """A test card with a red square in the top-left corner, to check orientation."""
    x = np.linspace(0, 255, width, dtype=np.float64)
    y = np.linspace(0, 255, height, dtype=np.float64)
    rgb = np.stack(np.broadcast_arrays(x[None, :], y[:, None], np.full((height, width), 128.0)), axis=-1)
    rgb = rgb.astype(np.uint8)
    rgb[:8, :8] = (255, 0, 0)
    return rgb


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def huge_png(width: int, height: int) -> bytes:
    """A valid PNG header announcing a huge 1-bit image, with a tiny (incomplete) data chunk."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + png_chunk(b"IEND", b"")
    )


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF", "BMP", "TIFF", "GIF", "JPEG2000", "PPM", "TGA"])
def test_every_supported_format_decodes_to_rgb_uint8(fmt):
    rgb = gradient_rgb()
    decoded = decode_image(encode(Image.fromarray(rgb), fmt))
    assert isinstance(decoded, DecodedImage)
    assert decoded.format == fmt
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape == (48, 64, 3)
    assert decoded.original_size == (64, 48) and decoded.scale == 1.0
    # Lossy formats and GIF's palette move colours a little; the red corner must survive.
    assert decoded.rgb[2, 2, 0] > 200 and decoded.rgb[2, 2, 1] < 60


def test_face_dataset_formats_decode_in_grey_and_sixteen_bits():
    # AT&T/ORL and Yale ship PGM faces, some datasets 16-bit ones.
    grey = decode_image(encode(Image.fromarray(gradient_rgb()).convert("L"), "PPM"))
    assert grey.mode == "L" and grey.rgb.shape == (48, 64, 3)
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    deep = decode_image(encode(Image.fromarray(ramp), "PPM"))
    assert deep.rgb.min() < 5 and deep.rgb.max() > 250, "16-bit grey levels must keep their range"


def test_images_we_do_not_accept_are_named_not_called_non_images():
    card = Image.fromarray(gradient_rgb())
    big_icon = Image.fromarray(np.kron(gradient_rgb(), np.ones((6, 6, 1), np.uint8))).resize((256, 256))
    for image, fmt, name in ((card, "QOI", "QOI"), (card, "DDS", "DDS"), (card, "PCX", "PCX"), (card, "ICO", "ICO"),
                             (big_icon, "ICO", "ICO")):  # TGA's reader, with no signature, would take this one
        with pytest.raises(UnsupportedFormatError, match=f"^{name} files are not supported"):
            decode_image(encode(image, fmt))


def test_tga_is_tried_last_and_only_taken_when_it_decodes():
    # An uncompressed TGA starts with the bytes of a CUR cursor: it must still decode.
    for options in ({}, {"compression": "tga_rle"}):
        decoded = decode_image(encode(Image.fromarray(gradient_rgb()), "TGA", **options))
        assert decoded.format == "TGA" and decoded.rgb.shape == (48, 64, 3)
        np.testing.assert_array_equal(decoded.rgb, gradient_rgb())


def test_format_comes_from_bytes_not_the_file_name(tmp_path):
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(encode(Image.fromarray(gradient_rgb()), "PNG"))
    assert read_image(path).format == "PNG"


def test_sniff_format():
    assert sniff_format(b"\xff\xd8\xff\xe0rest") == "JPEG"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert sniff_format(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "HEIF"
    assert sniff_format(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00") == "AVIF"
    assert sniff_format(b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00") is None, "an MP4 video is not an image"
    assert sniff_format(b"hello") is None


def test_heic_is_turned_once_by_its_own_orientation():
    # An iPhone's HEIC carries its turn twice (the container's rotation and the EXIF tag):
    # the decoder applies the first and clears the second, so the photo must not turn again.
    decoded = read_image(TEST_DATA / "card_orientation6.heic")
    assert decoded.format == "HEIF"
    assert decoded.rgb.shape == (64, 48, 3) and decoded.original_size == (48, 64)
    # Orientation 6 shows the stored card turned a quarter clockwise: its red top-left corner
    # lands top right; an unturned or twice-turned card would put it elsewhere.
    def is_red(pixel: np.ndarray) -> bool:  # the square's pure red; the card's corners all carry blue 128
        r, g, b = (int(v) for v in pixel)
        return r > 200 and g < 60 and b < 60

    assert is_red(decoded.rgb[2, -3])
    assert not any(is_red(corner) for corner in (decoded.rgb[2, 2], decoded.rgb[-3, 2], decoded.rgb[-3, -3]))
    np.testing.assert_allclose(decoded.rgb[8:, :40].astype(int), np.rot90(gradient_rgb(), k=-1)[8:, :40], atol=16)


def test_heic_transparency_is_composited_on_white():
    decoded = read_image(TEST_DATA / "card_half_transparent.heic")
    assert decoded.mode == "RGBA" and decoded.rgb.shape == (48, 64, 3)
    assert decoded.rgb[:, :28].min() > 240, "the transparent half must show as white"
    np.testing.assert_allclose(decoded.rgb[20:, 36:].astype(int), gradient_rgb()[20:, 36:], atol=16)


def test_a_cut_heic_says_so():
    data = (TEST_DATA / "card_orientation6.heic").read_bytes()
    for cut in (data[:40], data[: len(data) // 2]):
        with pytest.raises(TruncatedImageError, match="HEIC"):
            decode_image(cut)


def test_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    rgb = decode_image(data).rgb
    assert tuple(rgb[16, 16]) == (255, 0, 0)


# --- colour modes ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1", "I", "F", "I;16"])
def test_every_mode_becomes_rgb_uint8(mode):
    image = Image.fromarray(gradient_rgb()).convert(mode) if mode not in ("I", "F", "I;16") else None
    if mode == "I;16":
        image = Image.fromarray((np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16))
    elif mode in ("I", "F"):
        image = Image.fromarray(gradient_rgb()).convert("L").convert(mode)
    rgb = to_rgb_array(image)
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
    assert rgb.max() > 200 and rgb.min() < 60, "grey levels must keep their range, not clip or vanish"


def test_rgba_transparency_is_composited_on_white():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 5:, 3] = 255  # right half opaque red, left half fully transparent
    rgb = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG")).rgb
    assert tuple(rgb[5, 0]) == (255, 255, 255)
    assert tuple(rgb[5, 9]) == (255, 0, 0)


def test_sixteen_bit_png_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256), (4, 1)).astype(np.uint16)
    decoded = decode_image(encode(Image.fromarray(ramp), "PNG"))
    grey = decoded.rgb[..., 0].astype(int)
    assert decoded.mode.startswith("I")
    assert grey.min() == 0 and grey.max() == 255
    assert 100 < grey[0, 128] < 160, "mid-range 16-bit values must land mid-range"


def test_cmyk_jpeg_keeps_its_colours():
    red = Image.new("RGB", (32, 32), (220, 30, 30)).convert("CMYK")
    decoded = decode_image(encode(red, "JPEG", quality=95))
    assert decoded.mode == "CMYK"
    r, g, b = (int(v) for v in decoded.rgb[16, 16])
    assert r > 180 and g < 80 and b < 80


def test_one_pixel_image():
    decoded = decode_image(encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"))
    assert decoded.rgb.shape == (1, 1, 3)


# --- EXIF orientation -----------------------------------------------------------------------


@pytest.mark.parametrize(("orientation", "stored"), [(3, 2), (6, 1), (8, 3)])
def test_exif_orientation_is_applied(orientation, stored):
    upright = gradient_rgb()
    # Store the pixels turned, and the tag that tells a viewer how to turn them back.
    image = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=stored)))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    decoded = decode_image(encode(image, "PNG", exif=exif))
    assert decoded.rgb.shape == upright.shape
    assert decoded.original_size == (64, 48)
    np.testing.assert_array_equal(decoded.rgb, upright)


# --- large photos ---------------------------------------------------------------------------


def test_big_jpeg_can_be_decoded_reduced():
    big = np.kron(gradient_rgb(), np.ones((40, 40, 1), np.uint8))  # 2560x1920
    data = encode(Image.fromarray(big), "JPEG", quality=80)
    decoded = decode_image(data, min_pixels=200_000)
    assert decoded.original_size == (2560, 1920)
    assert decoded.scale == 0.25 and decoded.rgb.shape == (480, 640, 3)
    assert decode_image(data).rgb.shape == (1920, 2560, 3)


def test_a_tiff_variant_pillow_cannot_open_is_not_only_called_damaged():
    import cv2

    ok, data = cv2.imencode(".tiff", np.random.default_rng(0).random((20, 30, 3)).astype(np.float32))
    assert ok
    with pytest.raises(TruncatedImageError, match="or is a TIFF variant that cannot be read"):
        decode_image(data.tobytes())


def test_a_strip_or_panorama_is_shrunk_to_the_longest_side_kept():
    # OpenCV's warps refuse sides of 32,767 px: a 60000x1 strip (140 bytes as PNG) crashed the
    # turned search with a raw assertion before.
    strip = decode_image(encode(Image.new("L", (60000, 2), 128), "PNG"))
    assert max(strip.rgb.shape[:2]) <= MAX_SIDE and strip.original_size == (60000, 2)
    assert strip.scale == strip.rgb.shape[1] / 60000 == 0.25
    tall = decode_image(encode(Image.new("RGB", (300, 20000), (10, 20, 30)), "PNG"))
    assert tall.rgb.shape == (10000, 150, 3) and tall.scale == 0.5
    assert decode_image(encode(Image.new("L", (MAX_SIDE, 4)), "PNG")).scale == 1.0


def test_pixel_budget_is_checked_before_decoding():
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="megapixels"):
        decode_image(huge_png(8000, 8000))  # 64 MP: over our budget, under PIL's own bomb limit
    with pytest.raises(ImageTooLargeError):
        decode_image(huge_png(20000, 20000))  # 400 MP: PIL's bomb check fires first
    assert time.perf_counter() - start < 1.0, "a bomb must be rejected from its header, fast"
    assert MAX_PIXELS == 50_000_000


# --- malformed files ------------------------------------------------------------------------


def malformed_corpus(tmp_path) -> dict[str, tuple[bytes, type[ImageDecodeError]]]:
    jpeg = (PHOTOS_DIR / "fr_obama_small.jpg").read_bytes() if PHOTOS_DIR.is_dir() else encode(
        Image.fromarray(np.kron(gradient_rgb(), np.ones((8, 8, 1), np.uint8))), "JPEG"
    )
    png = encode(Image.fromarray(gradient_rgb()), "PNG")
    return {
        "empty.jpg": (b"", EmptyFileError),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], TruncatedImageError),
        "header_only.jpg": (jpeg[:16], TruncatedImageError),
        "truncated.png": (png[:40], TruncatedImageError),
        "random.jpg": (np.random.default_rng(0).bytes(4096), NotAnImageError),
        "text.jpg": (b"This is not a photo, just some text saved with a .jpg name.\n" * 10, NotAnImageError),
        "bomb.png": (huge_png(20000, 20000), ImageTooLargeError),
        "doc.pdf.jpg": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", UnsupportedFormatError),
        "phone.heic": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", TruncatedImageError),
        "picture.jxl": (b"\xff\x0a\xfa\x7f\x01\x90\x08\x06\x01\x00", UnsupportedFormatError),
        "drawing.svg": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', UnsupportedFormatError),
    }


def test_malformed_files_raise_their_specific_error(tmp_path):
    for name, (data, expected) in malformed_corpus(tmp_path).items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(expected) as caught:
            read_image(path)
        message = str(caught.value)
        assert isinstance(caught.value, ValueError), name
        assert len(message) > 15 and "Traceback" not in message, (name, message)


def test_error_messages_are_for_people():
    with pytest.raises(EmptyFileError, match="empty"):
        decode_image(b"")
    with pytest.raises(NotAnImageError, match="not an image"):
        decode_image(b"hello")
    with pytest.raises(UnsupportedFormatError, match="JPEG XL.*HEIC"):
        decode_image(b"\xff\x0a\xfa\x7f\x01\x90\x08\x06\x01\x00")
