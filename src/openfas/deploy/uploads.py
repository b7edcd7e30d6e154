"""Checking and decoding untrusted input images (uploads, files, arrays) before any model sees them.

Every input goes through :class:`ImageLimits` (byte size, longer side, pixel count) and is REJECTED when over
a bound, never silently downscaled; for encoded bytes the size is read from the file header
(:func:`check_image_bytes`) before any pixel is decoded, and truncated JPEG/PNG files are refused.
:class:`ImageInputError` carries the HTTP status the service answers with and a short machine-readable code,
so the command line and the server report the same reason.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from openfas.data.video import EXIF_ORIENTATION_TAG, apply_exif_orientation, to_bgr_uint8
from openfas.errors import OpenFASError


class ImageInputError(OpenFASError, ValueError):
    """An input image is unusable (empty, truncated, not an image, too large). ``status`` is the HTTP code the
    service answers with, ``code`` a short machine-readable reason."""

    def __init__(self, message: str, status: int = 422, code: str = "bad_image") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds applied to every input before decoding. ``None`` disables a bound."""

    max_bytes: int | None = 20 * 1024 * 1024
    max_side: int | None = 8192
    max_pixels: int | None = 40_000_000

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


# ------------------------------------------------------------------------------------------ decoding

_CV2_FORMATS = {"JPEG", "PNG", "BMP", "TIFF", "WEBP", "PPM", "MPO"}


def _sniff(data: bytes, source: str) -> tuple[str, int, int, int]:
    """Format, size (as stored) and EXIF orientation from the header only (no pixel decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: our own limits decide
            with Image.open(io.BytesIO(data)) as im:
                fmt, (w, h) = str(im.format), im.size
                try:
                    orientation = int(im.getexif().get(EXIF_ORIENTATION_TAG, 1))
                except (TypeError, ValueError, OSError, SyntaxError):
                    orientation = 1
    except Image.DecompressionBombError as err:
        raise ImageInputError(f"{source}: image is too large ({err})", 413, "image_too_large") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        # name what was sent (its first bytes), never the decoder's message (it holds Python object addresses)
        raise ImageInputError(f"{source}: not a supported image (JPEG, PNG, BMP, TIFF, WebP, PPM); the "
                              f"{len(data)}-byte file starts with {data[:8]!r}", 415, "not_an_image") from None
    if fmt not in _CV2_FORMATS:
        raise ImageInputError(f"{source}: unsupported image format {fmt} (use JPEG, PNG, BMP, TIFF, WebP, PPM)",
                              415, "unsupported_format")
    return fmt, w, h, orientation if 1 <= orientation <= 8 else 1


def _check_complete(data: bytes, fmt: str, source: str) -> None:
    """Truncated JPEG/PNG files decode to partly grey images without an error: refuse them explicitly.

    JPEG: the end-of-image marker FFD9 must follow the first start-of-scan FFDA (entropy-coded data stuffs
    every FF byte, so FFD9 cannot occur inside a scan). PNG: the IEND chunk must be present.
    """
    if fmt in ("JPEG", "MPO"):
        sos = data.find(b"\xff\xda")
        if sos < 0 or data.rfind(b"\xff\xd9") < sos:
            raise ImageInputError(f"{source}: truncated JPEG (no end-of-image marker after the scan data)",
                                  422, "truncated_image")
    elif fmt == "PNG" and data.rfind(b"IEND") < 0:
        raise ImageInputError(f"{source}: truncated PNG (no IEND chunk)", 422, "truncated_image")


def check_image_bytes(data: bytes, limits: ImageLimits | None = None, source: str = "<bytes>"
                      ) -> tuple[str, int, int, int]:
    """Every check that needs no pixel decoding (byte size, format and dimensions from the header, truncation);
    returns format, width, height and EXIF orientation. Cheap enough to run before queueing work."""
    limits = limits or ImageLimits()
    if len(data) == 0:
        raise ImageInputError(f"{source}: empty file (0 bytes)", 400, "empty_file")
    if limits.max_bytes is not None and len(data) > limits.max_bytes:
        raise ImageInputError(f"{source}: file is {len(data)} bytes; at most {limits.max_bytes} are accepted",
                              413, "file_too_large")
    fmt, w, h, orientation = _sniff(data, source)
    limits.check_size(w, h, source)
    _check_complete(data, fmt, source)
    return fmt, w, h, orientation


def decode_image_bytes(data: bytes, limits: ImageLimits | None = None, source: str = "<bytes>") -> np.ndarray:
    """Encoded image bytes → H×W×3 uint8 BGR, upright (EXIF orientation applied), after the size limits and a
    truncation check."""
    fmt, w, h, orientation = check_image_bytes(data, limits, source)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageInputError(f"{source}: corrupt {fmt} image (the decoder failed)", 422, "corrupt_image")
    return to_bgr_uint8(apply_exif_orientation(image, orientation))


def to_bgr_image(image: Any, color: str = "bgr", limits: ImageLimits | None = None, source: str = "<image>"
                 ) -> np.ndarray:
    """Any supported input → H×W×3 uint8 BGR: a path, encoded bytes, a numpy array (``color`` = channel
    order of 3/4-channel arrays, ``"bgr"`` like OpenCV or ``"rgb"``) or a PIL image. Files, bytes and PIL images
    are turned upright by their EXIF orientation; numpy arrays are taken as they are."""
    limits = limits or ImageLimits()
    if color not in ("bgr", "rgb"):
        raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ImageInputError(f"{path}: file not found", 400, "not_found")
        size = path.stat().st_size
        if limits.max_bytes is not None and size > limits.max_bytes:
            raise ImageInputError(f"{path}: file is {size} bytes; at most {limits.max_bytes} are accepted",
                                  413, "file_too_large")
        return decode_image_bytes(path.read_bytes(), limits, str(path))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image_bytes(bytes(image), limits, source)
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ImageInputError(f"{source}: expected an H×W, H×W×3 or H×W×4 array, got shape {arr.shape}")
        limits.check_size(arr.shape[1], arr.shape[0], source)
        if color == "rgb" and arr.ndim == 3 and arr.shape[2] in (3, 4):
            arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]
        return np.ascontiguousarray(to_bgr_uint8(arr))
    if hasattr(image, "mode") and hasattr(image, "size") and type(image).__module__.startswith("PIL"):
        limits.check_size(image.size[0], image.size[1], source)
        try:
            orientation = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1))
        except (TypeError, ValueError, OSError, SyntaxError):
            orientation = 1
        if orientation != 1:
            from PIL import ImageOps

            image = ImageOps.exif_transpose(image)
        im = image if image.mode in ("RGB", "RGBA", "L", "I;16", "I", "F") else image.convert("RGB")
        arr = np.asarray(im)
        if arr.ndim == 3:
            arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]
        return np.ascontiguousarray(to_bgr_uint8(arr))
    raise TypeError(f"unsupported image input {type(image).__name__}: pass a path, bytes, a numpy array or a "
                    "PIL image")


__all__ = ["ImageInputError", "ImageLimits", "check_image_bytes", "decode_image_bytes", "to_bgr_image"]
