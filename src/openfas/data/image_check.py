"""Size checks on encoded images from their header alone, before any pixel is decoded.

One check for every reader: :func:`openfas.data.video.read_image` (``data prepare``, frame folders, recognition
data) and :mod:`openfas.deploy.uploads` (``predict``, ``calibrate``, the HTTP service) both call
:func:`check_image_bytes`, so a small file that declares a huge image (a decompression bomb) is refused by all of
them before the decoder allocates its pixels.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from openfas.errors import OpenFASError

EXIF_ORIENTATION_TAG = 0x0112


class ImageInputError(OpenFASError, ValueError):
    """An input image is unusable (empty, truncated, not an image, too large). ``status`` is the HTTP code the
    service answers with, ``code`` a short machine-readable reason."""

    def __init__(self, message: str, status: int = 422, code: str = "bad_image") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds applied to every input before decoding. ``None`` disables a bound. ``max_bit_depth``: the
    most bits per sample (8 refuses 16-bit PNG/TIFF/PPM, whose decoding and conversion cost several times an
    8-bit image's)."""

    max_bytes: int | None = 20 * 1024 * 1024
    max_side: int | None = 8192
    max_pixels: int | None = 40_000_000
    max_bit_depth: int | None = None

    def check_size(self, width: int, height: int, source: str) -> None:
        if width <= 0 or height <= 0:
            raise ImageInputError(f"{source}: image has no pixels ({width}×{height})", 422, "empty_image")
        if self.max_side is not None and max(width, height) > self.max_side:
            raise ImageInputError(f"{source}: image is {width}×{height} pixels; the longer side may be at most "
                                  f"{self.max_side} (resize it first, or raise the max_side limit)", 413,
                                  "image_too_large")
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise ImageInputError(f"{source}: image has {width * height} pixels ({width}×{height}); at most "
                                  f"{self.max_pixels} are accepted", 413, "image_too_large")

    def check_depth(self, bits: int, source: str) -> None:
        if self.max_bit_depth is not None and bits > self.max_bit_depth:
            raise ImageInputError(f"{source}: image has {bits} bits per sample; at most {self.max_bit_depth} are "
                                  "accepted (save it as an 8-bit image)", 415, "unsupported_bit_depth")


# the size checks of the data readers: the decoders' pixel bounds, no byte bound (datasets hold large files)
DATA_LIMITS = ImageLimits(max_bytes=None)

_FORMATS = {"JPEG", "PNG", "BMP", "TIFF", "WEBP", "PPM", "MPO"}
_WIDE_MODES = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}


def _bit_depth(data: bytes, fmt: str, mode: str) -> int:
    if fmt == "PNG" and len(data) >= 25 and data[12:16] == b"IHDR":
        return int(data[24])  # IHDR: width, height, then the bit depth byte
    return _WIDE_MODES.get(mode, 8)


def sniff_image(data: bytes, source: str) -> tuple[str, int, int, int, int]:
    """Format, size (as stored), EXIF orientation and bits per sample from the header only (no pixel decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: our own limits decide
            with Image.open(io.BytesIO(data)) as im:
                fmt, (w, h), mode = str(im.format), im.size, str(im.mode)
                try:
                    orientation = int(im.getexif().get(EXIF_ORIENTATION_TAG, 1))
                except (TypeError, ValueError, OSError, SyntaxError, struct.error):
                    orientation = 1
    except Image.DecompressionBombError as err:
        raise ImageInputError(f"{source}: image is too large ({err})", 413, "image_too_large") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error):
        # name what was sent (its first bytes), never the decoder's message (it holds Python object addresses)
        raise ImageInputError(f"{source}: not a supported image (JPEG, PNG, BMP, TIFF, WebP, PPM); the "
                              f"{len(data)}-byte file starts with {data[:8]!r}", 415, "not_an_image") from None
    if fmt not in _FORMATS:
        raise ImageInputError(f"{source}: unsupported image format {fmt} (use JPEG, PNG, BMP, TIFF, WebP, PPM)",
                              415, "unsupported_format")
    return fmt, w, h, orientation if 1 <= orientation <= 8 else 1, _bit_depth(data, fmt, mode)


def check_image_header(data: bytes, limits: ImageLimits, source: str) -> tuple[str, int, int, int]:
    """Byte size, then format, dimensions and bit depth from the header; returns format, width, height and EXIF
    orientation. Raises :class:`ImageInputError`."""
    if len(data) == 0:
        raise ImageInputError(f"{source}: empty file (0 bytes)", 400, "empty_file")
    if limits.max_bytes is not None and len(data) > limits.max_bytes:
        raise ImageInputError(f"{source}: file is {len(data)} bytes; at most {limits.max_bytes} are accepted",
                              413, "file_too_large")
    fmt, w, h, orientation, bits = sniff_image(data, source)
    limits.check_size(w, h, source)
    limits.check_depth(bits, source)
    return fmt, w, h, orientation


__all__ = ["DATA_LIMITS", "EXIF_ORIENTATION_TAG", "ImageInputError", "ImageLimits", "check_image_header",
           "sniff_image"]
