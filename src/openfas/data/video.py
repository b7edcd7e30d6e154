"""Decode videos and still images into H×W×3 uint8 BGR frames (OpenCV channel order).

PyAV is the primary decoder; OpenCV's ``VideoCapture`` is the fallback when PyAV is not installed or cannot
open a file. Every failure — missing, zero-byte, truncated, corrupt or non-video file — raises
:class:`MediaError` naming the file and the problem, never a bare PyAV/OpenCV traceback.

Still images are returned as displayed: the EXIF orientation tag (phone photos are often stored sideways
with orientation 6 or 8) is applied by :func:`apply_exif_orientation` in every reader
(:func:`read_image`, :func:`openfas.deploy.uploads.decode_image_bytes`); video frames are turned upright by
the container's display matrix (:func:`apply_display_rotation`; OpenCV's reader does this itself).

Frame indices are 0-based decode order (the n-th decoded frame), the same numbering the datasets' own
face-location files use once read by :func:`openfas.data.face.read_face_locations`.

A **frame folder** (a video already extracted to images, ``<video>/frame_00177.jpg`` …) is read like a video:
:func:`count_frames` counts its images, :func:`read_frames` picks them by position in frame order, and each
frame keeps the number in its file name (its index in the original video), so face-location files still match.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from openfas.data.image_check import DATA_LIMITS, ImageInputError, check_image_header
from openfas.errors import OpenFASError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class MediaError(OpenFASError, RuntimeError):
    """A media file could not be read; the message names the file and the problem."""


def sample_frame_indices(n_frames: int, every: int | None = None, count: int | None = None) -> list[int]:
    """Indices of the frames to keep out of ``n_frames``.

    * ``every=k``: frames ``0, k, 2k, …``;
    * ``count=N``: N frames evenly spaced, the centres of N equal segments, ``floor((i + 0.5)·n / N)``
      for ``i = 0…N−1`` (all frames when ``N ≥ n``);
    * neither: every frame.
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if every is not None and count is not None:
        raise ValueError("give either every=k or count=N, not both")
    if every is not None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        return list(range(0, n_frames, every))
    if count is not None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if count >= n_frames:
            return list(range(n_frames))
        return [int((i + 0.5) * n_frames / count) for i in range(count)]
    return list(range(n_frames))


EXIF_ORIENTATION_TAG = 0x0112


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1–8) stored in encoded image bytes; 1 (as stored) when there is none.

    Only the header is parsed (Pillow, no pixel decoding). Unreadable headers count as 1: whether the pixels
    decode is the decoder's business, not this function's.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - Pillow raises many types for odd headers; orientation is optional
        return 1
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels (H×W[×C]) into the upright image that the EXIF ``orientation`` describes.

    TIFF/EXIF 2.3 tag 274: 1 as stored, 2 mirrored left-right, 3 rotated 180°, 4 mirrored top-bottom,
    5 transposed (mirror about the main diagonal), 6 needs a 90° clockwise turn, 7 transversed (mirror about
    the anti-diagonal), 8 needs a 90° counter-clockwise turn.
    """
    if orientation == 2:
        out = image[:, ::-1]
    elif orientation == 3:
        out = image[::-1, ::-1]
    elif orientation == 4:
        out = image[::-1]
    elif orientation == 5:
        out = image.swapaxes(0, 1)
    elif orientation == 6:
        out = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    elif orientation == 7:
        out = image[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        out = cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    else:
        return image
    return np.ascontiguousarray(out)


def apply_display_rotation(image: np.ndarray, degrees: float) -> np.ndarray:
    """Turn a decoded video frame upright by its container display matrix: ``degrees`` is the counter-clockwise
    rotation to apply before display (PyAV ``VideoFrame.rotation``; phone videos shot upright say 90 or −90)."""
    turn = int(round(float(degrees) / 90.0)) % 4
    if turn == 0:
        return image
    code = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}[turn]
    return cv2.rotate(image, code)


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


_FRAME_NUMBER = re.compile(r"(\d+)$")


def frame_folder_files(folder: str | Path) -> list[tuple[int, Path]]:
    """``[(frame number, image path)]`` of a frame folder, in frame order. The number is the last run of digits
    in the file name (``frame_00177.jpg`` → 177); a folder whose images lack numbers or repeat one is an error
    naming the folder, as is a folder without images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MediaError(f"{folder}: not a frame folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_file(p))
    if not files:
        raise MediaError(f"{folder}: a frame folder with no image files")
    numbered: dict[int, Path] = {}
    for p in files:
        m = _FRAME_NUMBER.search(p.stem)
        if m is None:
            raise MediaError(f"{p}: a frame file name must end in its frame number (e.g. frame_00012.jpg)")
        n = int(m.group(1))
        if n in numbered:
            raise MediaError(f"{folder}: {numbered[n].name} and {p.name} both claim frame {n}")
        numbered[n] = p
    return sorted(numbered.items())


def is_frame_folder(path: str | Path) -> bool:
    """True for a folder (a video extracted to numbered images); see :func:`frame_folder_files`."""
    return Path(path).is_dir()


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Read a still image (any path, non-ASCII included); colour images come back as H×W×3 uint8 BGR,
    upright (the EXIF orientation applied).

    Grayscale and 16-bit images (depth/IR maps) are converted to 3-channel uint8 when ``flags`` is
    ``IMREAD_COLOR``; pass ``cv2.IMREAD_UNCHANGED`` to get the raw array.
    """
    path = Path(path)
    _check_file(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise MediaError(f"{path}: cannot read file ({err})") from err
    try:  # the size from the header, before the decoder allocates the pixels (decompression bombs)
        check_image_header(data.tobytes(), DATA_LIMITS, str(path))
    except ImageInputError as err:
        unreadable = err.code == "not_an_image"
        raise MediaError(f"{path}: not a readable image (corrupt or unsupported format)" if unreadable
                         else str(err)) from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise MediaError(f"{path}: not a readable image (corrupt or unsupported format)")
    image = apply_exif_orientation(image, exif_orientation(data.tobytes()))
    return image if flags == cv2.IMREAD_UNCHANGED else to_bgr_uint8(image)


def to_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """Convert gray / BGRA / 16-bit / float images to H×W×3 uint8 (16-bit and float are min-max scaled)."""
    if image.dtype != np.uint8:
        img = image.astype(np.float32)
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(img)
        image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")


def _have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- PyAV


@contextlib.contextmanager
def _pyav_video_stream(path: Path) -> Iterator[tuple[Any, Any]]:
    """``(container, first video stream)`` of ``path``, closed on exit; open failures become MediaError."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        raise MediaError(f"{path}: not a readable video ({type(err).__name__}: {err})") from err
    try:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream found (truncated file, or not a video)")
        yield container, container.streams.video[0]
    finally:
        container.close()


def _pyav_frames(path: Path) -> Iterable[np.ndarray]:
    import av

    with _pyav_video_stream(path) as (container, stream):
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield apply_display_rotation(frame.to_ndarray(format="bgr24"), getattr(frame, "rotation", 0) or 0)
        except (av.FFmpegError, OSError, ValueError) as err:
            raise MediaError(f"{path}: decoding failed ({type(err).__name__}: {err})") from err


def _pyav_count(path: Path) -> int:
    """Frame count from the container header, or by counting video packets when the header has none."""
    import av

    with _pyav_video_stream(path) as (container, stream):
        if stream.frames and stream.frames > 0:
            return int(stream.frames)
        n = 0
        try:
            for packet in container.demux(stream):
                if packet.size > 0:
                    n += 1
        except (av.FFmpegError, OSError, ValueError) as err:
            raise MediaError(f"{path}: demuxing failed ({type(err).__name__}: {err})") from err
        return n


# -------------------------------------------------------------------------------------------- OpenCV


def _cv2_open(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise MediaError(f"{path}: OpenCV cannot open it as a video")
    return cap


def _cv2_frames(path: Path) -> Iterable[np.ndarray]:
    cap = _cv2_open(path)
    try:
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            yield frame
    finally:
        cap.release()


def _cv2_count(path: Path) -> int:
    cap = _cv2_open(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if n > 0:
        return n
    return sum(1 for _ in _cv2_frames(path))


# ---------------------------------------------------------------------------------------------- API


def _backends(backend: str) -> list[str]:
    if backend == "auto":
        return ["pyav", "opencv"] if _have_pyav() else ["opencv"]
    if backend not in ("pyav", "opencv"):
        raise ValueError(f"unknown video backend {backend!r}; expected 'auto', 'pyav' or 'opencv'")
    return [backend]


def count_frames(path: str | Path, backend: str = "auto") -> int:
    """Number of frames of a video (1 for a still image; the number of images of a frame folder)."""
    path = Path(path)
    if is_frame_folder(path):
        return len(frame_folder_files(path))
    _check_file(path)
    if is_image_file(path):
        read_image(path)
        return 1
    first_error: MediaError | None = None
    for name in _backends(backend):
        try:
            n = _pyav_count(path) if name == "pyav" else _cv2_count(path)
        except MediaError as err:
            first_error = first_error or err
            continue
        if n > 0:
            return n
        first_error = first_error or MediaError(f"{path}: the video has no frames")
    assert first_error is not None
    raise first_error


def read_frames(path: str | Path, indices: Sequence[int] | None = None,
                backend: str = "auto") -> list[tuple[int, np.ndarray]]:
    """Decode the frames at ``indices`` (all frames when ``None``) as ``[(index, H×W×3 uint8 BGR)]``.

    Frames are decoded sequentially (exact, unlike seeking) up to the largest wanted index. Indices past the
    end of the video are silently absent from the result (the header's frame count can overstate it); a
    video that yields no frame at all, or fails before the first wanted one, raises :class:`MediaError`.
    A still image is frame 0. For a frame folder, ``indices`` are positions in frame order (0 … count-1) and
    each returned index is the frame's own number from its file name.
    """
    path = Path(path)
    if is_frame_folder(path):
        files = frame_folder_files(path)
        chosen = range(len(files)) if indices is None else sorted({int(i) for i in indices
                                                                    if 0 <= int(i) < len(files)})
        return [(files[i][0], read_image(files[i][1])) for i in chosen]
    _check_file(path)
    if is_image_file(path):
        if indices is not None and 0 not in indices:
            return []
        return [(0, read_image(path))]
    wanted = None if indices is None else set(int(i) for i in indices)
    last = None if wanted is None else (max(wanted) if wanted else -1)
    if last == -1:
        return []
    first_error: MediaError | None = None
    for name in _backends(backend):
        frames = _pyav_frames(path) if name == "pyav" else _cv2_frames(path)
        out: list[tuple[int, np.ndarray]] = []
        decoded = 0
        try:
            for i, frame in enumerate(frames):
                decoded = i + 1
                if wanted is None or i in wanted:
                    out.append((i, np.ascontiguousarray(frame)))
                if last is not None and i >= last:
                    break
        except MediaError as err:
            if out:  # truncated tail: keep what decoded, say so
                log.warning("%s (kept %d frames decoded before the error)", err, len(out))
                return out
            first_error = first_error or err
            continue
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
        if decoded == 0:
            first_error = first_error or MediaError(f"{path}: no decodable video frames")
            continue
        return out
    assert first_error is not None
    raise first_error
