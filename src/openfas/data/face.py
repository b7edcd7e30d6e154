"""Face boxes, the datasets' own face-location files, square face crops and live targets.

Face detectors, which produce :class:`Box` objects from images, live in :mod:`openfas.data.detectors`.

Dataset face-location files (:func:`read_face_locations`):

* ``"replay"`` – Idiap Replay-Attack (and CASIA-FASD/MSU copies in the same style), ``face-locations/*.face``:
  one line per frame ``frame x y width height`` (whitespace-separated integers, ``x, y`` the top-left
  corner); frames where no face was found have a zero width/height and are left out.
* ``"oulu"`` – OULU-NPU ``<video>.txt`` next to each video: one line per frame ``frame, x1, y1, x2, y2``
  (comma-separated), the two EYE CENTRES, not a box. The face box is derived from them
  (:func:`box_from_eyes`): a square of side ``2.5·d`` (``d`` the inter-ocular distance) with the eye line
  at ``0.38`` of its height — the proportions of a frontal-face detector window, so the same crop ``scale``
  suits both. All-zero lines (no eyes found) are left out.
* ``"xywh"`` / ``"xyxy"`` – generic per-frame boxes ``frame x y w h`` / ``frame x1 y1 x2 y2`` (comma or
  whitespace separated) for adapters of other datasets.

Frame numbers are taken as written (0-based decode order is assumed; pass ``frame_offset=-1`` for files
numbered from 1).

Pseudo-depth targets (:func:`depth_maps_index`, :func:`load_depth_map`): the user renders depth maps
(e.g. with PRNet, as in the depth-supervised FAS papers) aligned with the FULL frame — same pixel grid, any
resolution (boxes are rescaled when the size differs). ``MediaItem.depth_file`` is either one image (used
for every frame: still images, or a video with one map) or a folder with one map per frame whose file name
ends with the 0-based frame index, e.g. ``00012.png``, ``12.jpg`` or ``frame_00012.png``. Maps are read as
8-bit grayscale (brighter = closer); 16-bit maps are min-max scaled to 0…255.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from openfas.data.video import MediaError, read_image

# Face box derived from two eye centres (see module docstring): side = _EYE_SIDE·d, eye line at _EYE_Y·side.
_EYE_SIDE = 2.5
_EYE_Y = 0.38


@dataclass(frozen=True)
class Box:
    """An axis-aligned face box in pixels: top-left ``(x, y)``, width ``w``, height ``h``, detector score."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0

    @property
    def area(self) -> float:
        return max(self.w, 0.0) * max(self.h, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def scaled(self, sx: float, sy: float) -> Box:
        """The same box in an image resized by ``(sx, sy)``."""
        return Box(self.x * sx, self.y * sy, self.w * sx, self.h * sy, self.score)


# ---------------------------------------------------------------------------- face-location files


def box_from_eyes(x1: float, y1: float, x2: float, y2: float) -> Box:
    """Square face box from two eye centres: side ``2.5·d``, centred on the eyes horizontally, the eye line
    at 0.38 of the side from the top (``d`` = inter-ocular distance)."""
    d = math.hypot(x2 - x1, y2 - y1)
    side = _EYE_SIDE * d
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    return Box(mx - side / 2, my - _EYE_Y * side, side, side)


def _numbers(line: str) -> list[float]:
    return [float(t) for t in re.split(r"[,\s]+", line.strip()) if t]


def read_face_locations(path: str | Path, fmt: str, frame_offset: int = 0) -> dict[int, Box]:
    """Per-frame face boxes from a dataset's face-location file: ``{frame: Box}`` (frames without a face
    are absent). ``fmt``: ``"oulu"``, ``"replay"``, ``"xywh"`` or ``"xyxy"`` (see the module docstring)."""
    path = Path(path)
    if fmt not in ("oulu", "replay", "xywh", "xyxy"):
        raise ValueError(f"unknown face-location format {fmt!r}; expected oulu, replay, xywh or xyxy")
    try:
        text = path.read_text(errors="strict")
    except FileNotFoundError as err:
        raise MediaError(f"{path}: face-location file not found") from err
    except (OSError, UnicodeDecodeError) as err:
        raise MediaError(f"{path}: cannot read face-location file ({err})") from err
    out: dict[int, Box] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            vals = _numbers(line)
        except ValueError as err:
            raise MediaError(f"{path}:{lineno}: not a line of numbers: {line.strip()!r}") from err
        if len(vals) < 5:
            raise MediaError(f"{path}:{lineno}: expected 5 numbers (frame + 4 coordinates), got {len(vals)}")
        frame, a, b, c, d = int(vals[0]) + frame_offset, *vals[1:5]
        if fmt == "oulu":
            if a == b == c == d == 0 or (a == c and b == d):
                continue
            box = box_from_eyes(a, b, c, d)
        elif fmt in ("replay", "xywh"):
            if c <= 0 or d <= 0:
                continue
            box = Box(a, b, c, d)
        else:
            if c <= a or d <= b:
                continue
            box = Box(a, b, c - a, d - b)
        out[frame] = box
    return out


def nearest_box(locations: dict[int, Box], frame: int, max_gap: int = 0) -> Box | None:
    """The box of ``frame``, or of the nearest annotated frame at most ``max_gap`` frames away."""
    if frame in locations:
        return locations[frame]
    for gap in range(1, max_gap + 1):
        for f in (frame - gap, frame + gap):
            if f in locations:
                return locations[f]
    return None


# -------------------------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class CropRegion:
    """A square region of the source image: top-left ``(x0, y0)`` (may be negative) and ``side`` in pixels."""

    x0: int
    y0: int
    side: int


def square_region(box: Box, scale: float = 1.3) -> CropRegion:
    """The square of side ``round(scale · max(w, h))`` centred on the box centre."""
    side = max(1, round(scale * max(box.w, box.h)))
    cx, cy = box.center
    return CropRegion(math.floor(cx - side / 2 + 0.5), math.floor(cy - side / 2 + 0.5), side)


def crop_region(image: np.ndarray, region: CropRegion, size: int) -> np.ndarray:
    """Cut ``region`` out of ``image`` (zero-padded where it leaves the image) and resize it to size×size."""
    h, w = image.shape[:2]
    s = region.side
    canvas = np.zeros((s, s, *image.shape[2:]), dtype=image.dtype)
    sx0, sy0 = max(region.x0, 0), max(region.y0, 0)
    sx1, sy1 = min(region.x0 + s, w), min(region.y0 + s, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - region.y0:sy1 - region.y0, sx0 - region.x0:sx1 - region.x0] = image[sy0:sy1, sx0:sx1]
    if s == size:
        return canvas
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interp)


def crop_face(image: np.ndarray, box: Box, scale: float = 1.3, size: int = 256) -> np.ndarray:
    """Square face crop: the box enlarged ``scale`` times around its centre (longer side), zero-padded at the
    image borders, resized to size×size."""
    return crop_region(image, square_region(box, scale), size)


def box_in_crop(box: Box, region: CropRegion, size: int) -> Box:
    """``box`` in the coordinates of the size×size crop of ``region``."""
    k = size / region.side
    return Box((box.x - region.x0) * k, (box.y - region.y0) * k, box.w * k, box.h * k, box.score)


def face_mask_target(box: Box, size: int) -> np.ndarray:
    """Binary live target (size×size uint8, 255 = face): the ellipse inscribed in ``box`` (crop coordinates).

    A pixel ``(i, j)`` (centre ``(j + 0.5, i + 0.5)``) is inside when ``((x − cx)/a)² + ((y − cy)/b)² ≤ 1``,
    ``a = w/2``, ``b = h/2``; the binary-mask supervision of the multi-modal CDCN / FAS-SGTD line of work
    (1 on the live face region, 0 elsewhere; spoof targets are all zero and are not stored).
    """
    a, b = box.w / 2, box.h / 2
    if a <= 0 or b <= 0:
        return np.zeros((size, size), np.uint8)
    cx, cy = box.center
    yy, xx = np.mgrid[:size, :size].astype(np.float64) + 0.5
    inside = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1.0
    return inside.astype(np.uint8) * 255


# ---------------------------------------------------------------------------------------- depth maps


def depth_maps_index(depth_file: str | Path) -> dict[int, Path] | Path:
    """A folder → ``{frame: file}`` (file names ending with the frame index); a file → the file itself."""
    depth_file = Path(depth_file)
    if depth_file.is_file():
        return depth_file
    if not depth_file.is_dir():
        raise MediaError(f"{depth_file}: depth map file or folder not found")
    index: dict[int, Path] = {}
    for p in sorted(depth_file.iterdir()):
        m = re.search(r"(\d+)$", p.stem)
        if m and p.is_file():
            index.setdefault(int(m.group(1)), p)
    if not index:
        raise MediaError(f"{depth_file}: no depth maps named by frame index (e.g. 00012.png) in this folder")
    return index


def load_depth_map(index: dict[int, Path] | Path, frame: int) -> np.ndarray | None:
    """The frame's depth map as H×W uint8, or ``None`` when the folder has none for that frame."""
    path = index if isinstance(index, Path) else index.get(frame)
    if path is None:
        return None
    return cv2.cvtColor(read_image(path), cv2.COLOR_BGR2GRAY)
