"""Decoding photos from bytes into RGB uint8 arrays, safely.

Everything a person might upload ends here: the format is read from the bytes (never the file
name), EXIF orientation is applied, every colour mode becomes RGB uint8, and anything that is
not a usable image raises a specific :class:`ImageDecodeError` subclass whose message a person
understands. Nothing is written to disk.

Large JPEGs can be decoded at a reduced size (libjpeg's DCT scaling, PIL's ``draft``), which is
several times faster than decoding every pixel and then shrinking; :attr:`DecodedImage.scale`
maps coordinates on the decoded array back to the original photo.
"""

from __future__ import annotations

import io
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pi_heif
from PIL import Image, ImageOps, UnidentifiedImageError

# HEIC is what iPhones save by default. pi-heif is pillow-heif's decode-only build (libheif with
# libde265, LGPL, without pillow-heif's GPL x265 encoder); it hands back the image already turned
# by the file's own rotation and resets the EXIF orientation, so nothing is turned twice.
pi_heif.register_heif_opener()

# PIL format names we accept; GIF, WebP and TIFF may be animated/multi-page: frame 0 is used.
# AVIF (Pillow's own plugin) is tried before HEIF, which shares its container but not its codec.
# PPM is Pillow's name for the PNM family (PBM, PGM, PPM), and with JPEG 2000 and TGA it is how
# face datasets ship (AT&T/ORL and Yale in PGM, FERET in PPM).
SUPPORTED_FORMATS: tuple[str, ...] = (
    "JPEG", "PNG", "WEBP", "AVIF", "HEIF", "BMP", "TIFF", "GIF", "JPEG2000", "PPM", "TGA",
)
# Formats without leading signature bytes, tried only when nothing else claims a file.
_UNSIGNED_FORMATS: tuple[str, ...] = ("TGA",)
# File-name suffixes of those formats, where a folder is listed (the format itself comes from
# the bytes): the one list the uploader, `fer.predict` and the benchmarks offer.
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".heic", ".heif", ".avif", ".bmp", ".tif", ".tiff", ".gif",
    ".jp2", ".j2k", ".pgm", ".ppm", ".pbm", ".pnm", ".tga",
)
# 50 megapixels: a 8000x6000 camera photo fits, a decompression bomb does not.
MAX_PIXELS: int = 50_000_000
# The longest side kept: OpenCV's warps (alignment, turned searches) refuse sides of 32,767 px
# and more, and no face needs such a side; a stitched panorama or a pixel strip is shrunk to it.
MAX_SIDE: int = 16_384

# Leading bytes of supported formats, to tell "a damaged JPEG" from "not an image at all".
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
    (b"\xffO\xffQ", "JPEG2000"),  # a bare codestream (.j2k)
)
# Leading bytes of common image formats we do not decode, for a helpful message.
_UNSUPPORTED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "PDF"),
    (b"8BPS", "Photoshop PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
)
# ISO base-media "ftyp" brands of HEIF still images: HEVC-coded (HEIC) or AV1-coded (AVIF). The
# image-sequence brands (avis, msf1, hevc, hevx) are left out: those files are videos.
_FTYP_BRANDS: dict[bytes, str] = {
    b"heic": "HEIF", b"heix": "HEIF", b"heim": "HEIF", b"heis": "HEIF", b"mif1": "HEIF", b"avif": "AVIF",
}
_SUPPORTED_NAMES = "JPEG, PNG, WebP, HEIC, AVIF, BMP, TIFF, GIF, JPEG 2000, PGM/PPM or TGA"
# PIL's format names as people know them, for messages.
_FORMAT_NAMES: dict[str, str] = {
    "WEBP": "WebP", "HEIF": "HEIC/HEIF", "JPEG2000": "JPEG 2000", "PPM": "PNM (PBM/PGM/PPM)",
}


def _display_name(pil_format: str) -> str:
    """A PIL format name as people know it (``HEIF`` as ``HEIC/HEIF``)."""
    return _FORMAT_NAMES.get(pil_format, pil_format)


class ImageDecodeError(ValueError):
    """The bytes cannot be turned into a usable photo; the message says why, for a person."""


class EmptyFileError(ImageDecodeError):
    """The file has no bytes."""


class NotAnImageError(ImageDecodeError):
    """The bytes are not an image of any format we know (text, random data, ...)."""


class UnsupportedFormatError(ImageDecodeError):
    """An image format or colour mode we do not decode (PDF, PSD, SVG, JPEG XL, ...)."""


class TruncatedImageError(ImageDecodeError):
    """The file starts like an image but is cut short or its data is damaged."""


class ImageTooLargeError(ImageDecodeError):
    """The header announces more pixels than the budget (a possible decompression bomb)."""


@dataclass(frozen=True)
class DecodedImage:
    """A decoded photo.

    Attributes:
        rgb: uint8 array (H, W, 3), upright (EXIF orientation applied). May be smaller than the
            original when decoded with ``min_pixels``.
        format: the PIL format name read from the bytes (``JPEG``, ``PNG``, ...).
        original_size: (width, height) of the upright photo at full resolution.
        scale: ``rgb`` pixels per original pixel (1.0 unless reduced while decoding, or shrunk
            to :data:`MAX_SIDE`).
        mode: the colour mode the file stored (``RGB``, ``CMYK``, ``I;16``, ...).
    """

    rgb: np.ndarray
    format: str
    original_size: tuple[int, int]
    scale: float = 1.0
    mode: str = "RGB"


def sniff_format(data: bytes) -> str | None:
    """Returns the supported format a byte string starts like, or ``None``."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12])
    return None


def _unsupported_format_name(data: bytes) -> str | None:
    for magic, name in _UNSUPPORTED_SIGNATURES:
        if data.startswith(magic):
            return name
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    return None


def _other_pil_format(data: bytes) -> str | None:
    """Names an image format PIL knows but we do not accept (ICO, QOI, DDS, ...), from its
    first bytes, as PIL's own plugins tell them: nothing is opened (PIL's ICO reader decodes a
    whole image just to open it) and formats without such a test are not named.
    """
    head = data[:16]
    for name, (_, accept) in Image.OPEN.items():
        if name in SUPPORTED_FORMATS or accept is None:
            continue
        try:
            if accept(head):
                return _display_name(name)
        except Exception:  # noqa: BLE001 -- a plugin's check failing only means "not this format"
            continue
    return None


def _open_as(data: bytes, formats: tuple[str, ...]) -> Image.Image | None:
    """Opens (reads the header of) an image in one of ``formats``; ``None`` if none claims it.

    Raises:
        ImageTooLargeError: a header too big for PIL's own bomb check.
        TruncatedImageError: a format's reader claimed the bytes but choked on the header.
    """
    try:
        return Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as err:
        # Pillow refuses gigantic headers before we can read the size: say it in our words.
        match = re.search(r"\((\d+) pixels\)", str(err))
        size = f" ({int(match.group(1)) / 1e6:.0f} megapixels)" if match else ""
        raise ImageTooLargeError(
            f"the image is too large{size}; the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
        ) from None
    except UnidentifiedImageError:
        return None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as err:
        raise TruncatedImageError(f"the image header is damaged ({err})") from None


def _article(name: str) -> str:
    return "an" if name[:1] in "AEIOU" else "a"


def _open(data: bytes) -> Image.Image:
    """Opens (reads the header of) an image, mapping every failure to a specific error."""
    if not data:
        raise EmptyFileError("the file is empty (0 bytes)")
    image = _open_as(data, tuple(f for f in SUPPORTED_FORMATS if f not in _UNSIGNED_FORMATS))
    if image is not None:
        return image
    unsupported = _unsupported_format_name(data)
    if unsupported:
        raise UnsupportedFormatError(f"{unsupported} files are not supported; please use {_SUPPORTED_NAMES}")
    started_as = sniff_format(data)
    if started_as:
        name = _display_name(started_as)
        # TIFF has variants Pillow cannot open (32-bit float colour, some compressions): those
        # files are sound, so the message must not call them damaged only.
        variant = ", or is a TIFF variant that cannot be read (e.g. floating-point colour)"
        variant = variant if started_as == "TIFF" else ""
        raise TruncatedImageError(f"the file starts like {_article(name)} {name} image but is cut short or "
                                  f"damaged{variant}")
    # Last, the formats with no signature (TGA), whose readers also claim other formats' files:
    # an uncompressed TGA starts like a CUR cursor, and TGA's reader takes ICO icons. Where
    # another format's first bytes match too, the file is a TGA only if it decodes as one.
    other = _other_pil_format(data)
    image = _open_as(data, _UNSIGNED_FORMATS) if other is None else _decoded_or_none(data, _UNSIGNED_FORMATS)
    if image is not None:
        return image
    if other:
        raise UnsupportedFormatError(f"{other} files are not supported; please use {_SUPPORTED_NAMES}")
    raise NotAnImageError(f"the file is not an image (expected {_SUPPORTED_NAMES})")


def _decoded_or_none(data: bytes, formats: tuple[str, ...]) -> Image.Image | None:
    """The image in one of ``formats``, decoded (within the pixel budget), or ``None`` if its
    header or its pixels do not read as one.
    """
    try:
        image = _open_as(data, formats)
        if image is not None:
            check_size(image.size)
            image.load()
        return image
    except ImageTooLargeError:
        raise
    except (ImageDecodeError, OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError):
        return None


def check_size(size: tuple[int, int], max_pixels: int = MAX_PIXELS) -> None:
    """Rejects empty or oversized images from their header size, before any pixel is decoded.

    Raises:
        ImageTooLargeError: if ``width * height > max_pixels``.
        NotAnImageError: if a side is zero.
    """
    width, height = size
    if width <= 0 or height <= 0:
        raise NotAnImageError(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {max_pixels / 1e6:.0f} megapixels"
        )


def _request_draft(image: Image.Image, min_pixels: int | None) -> None:
    """Asks libjpeg to decode at 1/2, 1/4 or 1/8 size while at least ``min_pixels`` remain."""
    if min_pixels is None or image.format not in ("JPEG", "MPO"):  # MPO: camera JPEGs with extra frames
        return
    width, height = image.size
    for factor in (8, 4, 2):
        if math.ceil(width / factor) * math.ceil(height / factor) >= min_pixels:
            # PIL picks the largest factor f with size // request >= f, so ask for size // factor.
            image.draft(None, (max(1, width // factor), max(1, height // factor)))
            return


def _upright(image: Image.Image) -> Image.Image:
    """Applies the EXIF orientation tag; a damaged EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except (SyntaxError, ValueError, TypeError, KeyError, struct.error) as err:
        # Orientation is a nicety: a photo with unreadable EXIF is still a photo.
        del err
        return image


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Maps integer or float grey levels of unknown range to uint8 (why: I;16, I and F modes)."""
    values = values.astype(np.float64, copy=False)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, np.uint8)
    low, high = float(finite.min()), float(finite.max())
    if low >= 0 and high <= 1.0 and values.dtype.kind == "f":
        scaled = values * 255.0
    elif low >= 0 and high <= 255:
        scaled = values
    elif low >= 0 and high <= 65535:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / max(high - low, 1e-12))
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0, 255).round().astype(np.uint8)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composites a transparent image over white, as a browser would show it."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Converts a loaded PIL image of any mode to an RGB uint8 array (H, W, 3).

    Raises:
        UnsupportedFormatError: for a colour mode PIL cannot convert.
    """
    mode = image.mode
    if mode == "RGB":
        rgb = image
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgb = _flatten_alpha(image)
    elif mode.startswith("I") or mode == "F":
        gray = _scale_to_uint8(np.asarray(image))
        if gray.ndim == 3:
            gray = gray[..., 0]
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    else:
        try:
            rgb = image.convert("RGB")
        except ValueError as err:
            raise UnsupportedFormatError(f"the colour mode {mode} is not supported ({err})") from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def decode_image(data: bytes, *, min_pixels: int | None = None, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Decodes image bytes into an upright RGB uint8 array.

    Args:
        data: the file's bytes (an upload, a file read).
        min_pixels: if given, a JPEG may be decoded at 1/2, 1/4 or 1/8 size as long as at least
            this many pixels remain (several times faster for big photos); other formats decode
            in full.
        max_pixels: pixel budget checked on the header before decoding.

    Returns:
        The decoded image, no side longer than :data:`MAX_SIDE`; ``scale`` maps its coordinates
        to the original photo.

    Raises:
        EmptyFileError, NotAnImageError, UnsupportedFormatError, TruncatedImageError,
        ImageTooLargeError: all subclasses of :class:`ImageDecodeError` (a ``ValueError``).
    """
    image = _open(data)
    check_size(image.size, max_pixels)
    stored_mode = image.mode
    full_width, full_height = image.size
    try:
        _request_draft(image, min_pixels)
        image.load()
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"the image is too large to process safely ({err})") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError) as err:
        name = _display_name(str(image.format))
        raise TruncatedImageError(f"the {name} image is cut short or damaged ({err})") from None
    scale = image.size[0] / full_width
    fmt = str(image.format)
    upright = _upright(image)
    if upright.size != image.size:  # a 90-degree turn swaps the sides
        full_width, full_height = full_height, full_width
    rgb = to_rgb_array(upright)
    if max(rgb.shape[:2]) > MAX_SIDE:
        factor = math.ceil(max(rgb.shape[:2]) / MAX_SIDE)
        rgb = np.asarray(Image.fromarray(rgb).reduce(factor))  # box averaging, as a reduced decode
        scale = rgb.shape[1] / full_width
    return DecodedImage(
        rgb=rgb,
        format=fmt,
        original_size=(full_width, full_height),
        scale=scale,
        mode=stored_mode,
    )


def read_image(path: str | Path, *, min_pixels: int | None = None, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Reads and decodes an image file (see :func:`decode_image`).

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: the file cannot be read.
        ImageDecodeError: the bytes are not a usable image.
    """
    return decode_image(Path(path).read_bytes(), min_pixels=min_pixels, max_pixels=max_pixels)


def encode_png(rgb_image: np.ndarray) -> bytes:
    """Encodes an RGB (or grey) uint8 array as PNG bytes, e.g. for downloads."""
    buffer = io.BytesIO()
    Image.fromarray(rgb_image).save(buffer, format="PNG")
    return buffer.getvalue()
