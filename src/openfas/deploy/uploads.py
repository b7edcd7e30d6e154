"""Checking and decoding untrusted input images (uploads, files, arrays) before any model sees them.

Every input goes through :class:`ImageLimits` (byte size, longer side, pixel count, bit depth; the same checks
as the data readers', :mod:`openfas.data.image_check`) and is REJECTED when over a bound, never silently
downscaled; for encoded bytes the size is read from the file header (:func:`check_image_bytes`) before any pixel
is decoded, and truncated JPEG/PNG files are refused.
:class:`ImageInputError` carries the HTTP status the service answers with and a short machine-readable code,
so the command line and the server report the same reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from openfas.data.image_check import ImageInputError, ImageLimits, check_image_header
from openfas.data.video import EXIF_ORIENTATION_TAG, apply_exif_orientation, to_bgr_uint8

# ------------------------------------------------------------------------------------------ decoding


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
    fmt, w, h, orientation = check_image_header(data, limits, source)
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
