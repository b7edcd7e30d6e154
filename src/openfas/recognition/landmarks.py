"""Facial landmarks of real photos and the ArcFace 5-point alignment.

Landmarks come from dlib's 68-point shape predictor (iBUG 300-W layout), shipped inside the
``face-recognition-models`` wheel (``pip install 'openfas[dlib]'``: ``dlib-bin`` + ``face-recognition-models``;
nothing is downloaded at run time). The 68 points are reduced to the five ArcFace points plus the chin:

* left / right eye centre (in the image) = mean of points 36–41 / 42–47;
* nose tip = point 30; mouth corners = points 48 and 54; chin = point 8.

:func:`align_face` warps a face to the ArcFace crop with the least-squares similarity transform (rotation,
uniform scale, translation; Umeyama, IEEE TPAMI 1991) from the five points to the template
:data:`openfas.data.synth.masks.ARCFACE_112` scaled to the crop size.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from openfas.data.synth.masks import ARCFACE_112
from openfas.errors import OpenFASError


class LandmarkError(OpenFASError, RuntimeError):
    """The landmark model is unavailable or cannot be used; the message says what to install."""


def dlib_model_dir() -> Path:
    """Folder of the model files shipped by the ``face-recognition-models`` wheel.

    The package's ``__init__`` imports ``pkg_resources`` (absent from recent setuptools), so the folder is
    located without importing it."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LandmarkError("dlib models not installed: pip install 'openfas[dlib]' "
                            "(dlib-bin and face-recognition-models)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    if not folder.is_dir():
        raise LandmarkError(f"{folder}: face-recognition-models has no models folder; reinstall it")
    return folder


def _dlib():  # noqa: ANN202
    try:
        import dlib
    except ImportError:
        raise LandmarkError("dlib is not installed: pip install 'openfas[dlib]' (dlib-bin and "
                            "face-recognition-models)") from None
    return dlib


DLIB_CHIP_SIZE, DLIB_CHIP_PADDING = 150, 0.25  # dlib's face chip for its recognition ResNet


def chip_details_matrix(details: object) -> np.ndarray:
    """2×3 matrix photo → chip of a ``dlib.chip_details`` (dlib's ``get_mapping_to_chip``): the chip rectangle's
    top-left, top-right and bottom-right corners, rotated by the chip angle about the rectangle's centre, go to
    (0, 0), (cols−1, 0) and (cols−1, rows−1)."""
    det: Any = details
    r = det.rect
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    c, s = np.cos(det.angle), np.sin(det.angle)

    def rot(x: float, y: float) -> tuple[float, float]:
        return cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy)

    src = np.array([rot(r.left(), r.top()), rot(r.right(), r.top()), rot(r.right(), r.bottom())], np.float32)
    dst = np.array([[0, 0], [det.cols - 1, 0], [det.cols - 1, det.rows - 1]], np.float32)
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def reduce_68_to_5(points68: np.ndarray) -> np.ndarray:
    """68×2 iBUG landmarks → 6×2: the five ArcFace points (eyes, nose tip, mouth corners) and the chin."""
    p = np.asarray(points68, np.float32)
    if p.shape != (68, 2):
        raise ValueError(f"expected 68×2 landmarks, got shape {p.shape}")
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54], p[8]]).astype(np.float32)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2×3 matrix of the least-squares similarity transform mapping ``src`` (K×2) onto ``dst`` (Umeyama)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need two equal K×2 point sets (K ≥ 2), got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("source points coincide; no similarity transform")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1.0
    rot = u @ e @ vt
    scale = float(np.trace(np.diag(sig) @ e) / var_s)
    t = mu_d - scale * rot @ mu_s
    return np.concatenate([scale * rot, t[:, None]], 1)


def transform_points(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """(``size``×``size`` ArcFace crop, 2×3 matrix image → crop) from ≥ 5 landmarks (extra points unused)."""
    lm = np.asarray(landmarks, np.float32).reshape(-1, 2)
    if lm.shape[0] < 5:
        raise ValueError(f"need 5 landmarks to align, got {lm.shape[0]}")
    m = similarity_transform(lm[:5], ARCFACE_112 * (size / 112.0))
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA if m[0, 0] ** 2 + m[1, 0] ** 2 < 1
                          else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, m


@dataclass
class FaceLandmarks:
    """Landmarks of one face: the 68 iBUG points, the face box used, whether a detector found it."""

    points68: np.ndarray
    box: tuple[int, int, int, int]
    detected: bool

    @property
    def five(self) -> np.ndarray:
        """Five ArcFace points + chin (6×2)."""
        return reduce_68_to_5(self.points68)


class DlibLandmarker:
    """dlib's HOG face detector + 68-point shape predictor (models from ``face-recognition-models``).

    ``fallback_box`` (x0, y0, x1, y1 as fractions of the image) is used when the detector finds no face
    (pre-cropped sets such as LFW, where the face is centred); ``None`` makes a missed face an error."""

    def __init__(self, upsample: int = 0,
                 fallback_box: tuple[float, float, float, float] | None = (0.28, 0.3, 0.72, 0.76)) -> None:
        dlib = _dlib()
        path = dlib_model_dir() / "shape_predictor_68_face_landmarks.dat"
        if not path.is_file():
            raise LandmarkError(f"{path}: 68-point landmark model missing; reinstall face-recognition-models")
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(path))
        self.upsample, self.fallback_box = upsample, fallback_box

    def shape(self, rgb: np.ndarray, box: tuple[int, int, int, int]):  # noqa: ANN201 - a dlib.full_object_detection
        return self.predictor(np.ascontiguousarray(rgb), self._dlib.rectangle(*box))

    def __call__(self, image_bgr: np.ndarray) -> FaceLandmarks:
        """Landmarks of the face nearest the image centre."""
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        h, w = rgb.shape[:2]
        dets = list(self.detector(rgb, self.upsample))
        if dets:
            def dist(r) -> float:  # noqa: ANN001
                return ((r.left() + r.right()) / 2 - w / 2) ** 2 + ((r.top() + r.bottom()) / 2 - h / 2) ** 2
            r = min(dets, key=dist)
            box, detected = (r.left(), r.top(), r.right(), r.bottom()), True
        elif self.fallback_box is not None:
            fx0, fy0, fx1, fy1 = self.fallback_box
            box, detected = (int(fx0 * w), int(fy0 * h), int(fx1 * w), int(fy1 * h)), False
        else:
            raise LandmarkError("no face found")
        s = self.shape(rgb, box)
        pts = np.array([[s.part(i).x, s.part(i).y] for i in range(68)], np.float32)
        return FaceLandmarks(pts, box, detected)


__all__ = ["DlibLandmarker", "FaceLandmarks", "LandmarkError", "align_face", "dlib_model_dir", "reduce_68_to_5",
           "similarity_transform", "transform_points"]
