"""Frozen face-recognition teachers for knowledge distillation (CSDN).

A teacher maps a batch of aligned faces to embeddings. Accepted files (nothing is downloaded, nothing is
unpickled):

* ``*.safetensors`` – an openfas recognition checkpoint (``openfas train`` with method ``cosface`` or
  ``csdn``); its own stored preprocessing (image size, mean, std) is used;
* ``*.onnx`` – an ONNX graph mapping an N×3×S×S RGB batch normalised as ``(x/255 − 0.5)/0.5`` (the
  insightface convention) to N×D embeddings, exported with a dynamic batch dimension and run with ONNX Runtime
  on the CPU (``pip install 'openfas[onnx]'``); ``S`` = ``teacher_input_size`` (default 112).

TorchScript (``.pt``/``.pth``/``.ts``/``.jit``) and ``torch.export`` (``.pt2``) files are refused: loading a
``.pt2`` unpickles Python objects (arbitrary code runs while the file is read), and a TorchScript archive is a
program that PyTorch itself will not load under ``weights_only=True``. Convert such a teacher once, on a machine
that trusts it, with ``torch.onnx.export``.

The student's batches (normalised with the data config's mean/std, at ``data.image_size``) are converted to the
teacher's normalisation and resized to its input size. The teacher's embedding size must equal the student's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.errors import OpenFASError


class TeacherError(OpenFASError, ValueError):
    """The teacher file is unusable; the message names the file and the problem."""


class Teacher:
    """A frozen embedding function; call with a student-normalised N×3×H×W batch."""

    def __init__(self, fn: Any, kind: str, path: Path, input_size: int, mean: float, std: float,
                 student_mean: float, student_std: float) -> None:
        self.fn, self.kind, self.path = fn, kind, path
        self.input_size, self.mean, self.std = input_size, mean, std
        self.student_mean, self.student_std = student_mean, student_std
        self.device = torch.device("cpu")
        self.embedding_dim = int(self(torch.zeros(2, 3, input_size, input_size)).shape[1])

    def to(self, device: torch.device) -> Teacher:
        if self.kind != "onnx" and device != self.device:
            self.fn = self.fn.to(device)
        self.device = device
        return self

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if (self.mean, self.std) != (self.student_mean, self.student_std):
            x = (x * self.student_std + self.student_mean - self.mean) / self.std
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        if self.kind == "onnx":
            name = self.fn.get_inputs()[0].name
            out = torch.from_numpy(self.fn.run(None, {name: x.cpu().numpy()})[0]).to(x.device)
        else:
            out = self.fn(x.to(self.device))
            if hasattr(out, "embedding"):
                out = out.embedding
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TeacherError(f"{self.path}: the teacher must return N×D embeddings, returned {shape}")
        return out.float()


#: Builds ``(model, {"meta": checkpoint metadata, ...})`` from an openfas checkpoint, e.g.
#: :func:`openfas.methods.restore.build_model_from_checkpoint` (passed in: this module sits below the methods).
CheckpointBuilder = Callable[[Path], tuple[nn.Module, dict[str, Any]]]


# Formats whose loaders execute code from the file (pickle) or are programs; refused before any byte is read.
_CODE_SUFFIXES = {".pt2": "torch.export (.pt2)", ".pt": "TorchScript/pickle (.pt)", ".pth": "TorchScript/pickle (.pth)",
                  ".ts": "TorchScript (.ts)", ".jit": "TorchScript (.jit)", ".pkl": "pickle (.pkl)",
                  ".pickle": "pickle (.pickle)", ".bin": "pickle (.bin)", ".ckpt": "pickle (.ckpt)"}


def load_teacher(path: str | Path, input_size: int = 112, student_mean: float = 0.5,
                 student_std: float = 0.5, *, build_model: CheckpointBuilder | None = None) -> Teacher:
    """Load a frozen teacher; ``build_model`` re-creates models of openfas ``.safetensors`` checkpoints."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TeacherError(f"{path}: teacher file not found")
    suffix = path.suffix.lower()
    if suffix in _CODE_SUFFIXES:
        raise TeacherError(f"{path}: {_CODE_SUFFIXES[suffix]} files can run arbitrary code when loaded, so openfas "
                           "refuses them; export the teacher to ONNX (torch.onnx.export, dynamic batch axis) or use "
                           "an openfas .safetensors checkpoint")
    try:
        if suffix == ".safetensors":
            if build_model is None:
                raise TeacherError(f"{path}: an openfas checkpoint teacher needs a model builder (build_model=)")
            model, info = build_model(path)
            if not callable(getattr(model, "embed", None)):
                raise TeacherError(f"{path}: not a recognition checkpoint (model {info['meta'].get('model')!r} "
                                   "has no embed())")
            for p in model.parameters():
                p.requires_grad_(False)
            pre = info["meta"].get("preprocess", {})
            return Teacher(model.eval(), "openfas", path, int(pre.get("image_size", input_size)),
                           float(pre.get("mean", 0.5)), float(pre.get("std", 0.5)), student_mean, student_std)
        if suffix == ".onnx":
            try:
                import onnxruntime as ort
            except ImportError:
                raise TeacherError(f"{path}: ONNX teachers need onnxruntime (pip install 'openfas[onnx]')") from None
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return Teacher(sess, "onnx", path, input_size, 0.5, 0.5, student_mean, student_std)
    except TeacherError:
        raise
    except Exception as err:  # noqa: BLE001 - any loader failure becomes one clear message
        raise TeacherError(f"{path}: cannot load the teacher ({type(err).__name__}: {err})") from None
    raise TeacherError(f"{path}: unknown teacher file type {suffix!r} (use an openfas .safetensors checkpoint "
                       "or an .onnx graph)")


__all__ = ["Teacher", "TeacherError", "load_teacher"]
