"""Class activation maps (Grad-CAM, Selvaraju et al., ICCV 2017) of a classifier, and their on-disk cache.

LDCNet (Huang et al., BMVC 2022, dual-attention supervision) turns the class activation maps of a pre-trained
live/spoof classifier into quasi ground truth for its live and spoof attention estimators. The geometry follows
the official code (huiyu8794/LDCNet ``train.py``: ``pytorch_grad_cam.GradCAM`` 1.3.5 on the last block of
ResNet-18 ``layer4``, ``target_category`` = 1 for live and 0 for spoof faces, then ``torchvision`` 0.13
``T.Resize(32)`` and × 255):

1. y_c = the classifier logit of class c (no softmax); A = the target layer's output (B×K×h×w);
2. α_k = mean_{i,j} ∂y_c/∂A_k(i, j);   cam = ReLU(Σ_k α_k A_k)                      (Grad-CAM, Eq. 1–2)
3. per image: cam ← (cam − min) / (max(cam − min) + 1e-7), bilinearly resized to the input size (cv2 INTER_LINEAR
   = half-pixel centres); the library's layer aggregation repeats the min-max scaling once (ReLU, mean over one
   layer, min-max again);
4. bilinear resize (half-pixel centres, no antialiasing, as torchvision 0.13 resizes tensors) to out_size×out_size
   and multiply by ``scale`` (255 in the official code, so the targets lie in [0, 255]).

The model is run in eval mode (BatchNorm running statistics, no dropout), as ``GradCAM`` does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from openfas.errors import OpenFASError

CAM_FORMAT = "openfas-cam-v1"


class CamCacheError(OpenFASError, RuntimeError):
    """A CAM cache file is unreadable or does not cover the samples asked for."""


def grad_cam(model: nn.Module, layer: nn.Module, images: torch.Tensor, classes: torch.Tensor,
             logits_fn: Callable[[Any], torch.Tensor] | None = None) -> torch.Tensor:
    """Raw Grad-CAM maps ReLU(Σ_k α_k A_k) at ``layer``'s output (B×h×w) for target ``classes`` (B).

    ``logits_fn`` picks the B×C logits out of the model output (default: the output itself). Gradients are taken
    with ``torch.autograd.grad`` w.r.t. the activation only, so no parameter ``.grad`` is touched.
    """
    store: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        store["a"] = output

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            out = model(images)
            logits = logits_fn(out) if logits_fn is not None else out
            act = store["a"]
            y = logits.float().gather(1, classes.reshape(-1, 1).long()).sum()
            (grad,) = torch.autograd.grad(y, act)
    finally:
        handle.remove()
    alpha = grad.float().mean(dim=(2, 3), keepdim=True)
    return F.relu((alpha * act.detach().float()).sum(dim=1))


def _minmax(cam: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam ``scale_cam_image``: per image (x − min) / (max(x − min) + 1e-7)."""
    flat = cam.flatten(1)
    shifted = flat - flat.min(dim=1, keepdim=True).values
    return (shifted / (shifted.max(dim=1, keepdim=True).values + 1e-7)).reshape(cam.shape)


def cam_to_target(cam: torch.Tensor, input_size: tuple[int, int], out_size: int = 32,
                  scale: float = 255.0) -> torch.Tensor:
    """Official post-processing of raw Grad-CAM maps (steps 3–4 of the module docstring): B×h×w → B×s×s."""
    x = _minmax(cam.float())
    x = F.interpolate(x[:, None], size=input_size, mode="bilinear", align_corners=False)[:, 0]
    x = _minmax(F.relu(x))
    x = F.interpolate(x[:, None], size=(out_size, out_size), mode="bilinear", align_corners=False,
                      antialias=False)[:, 0]
    return x * scale


def class_activation_maps(model: nn.Module, dataset: Dataset, layer: nn.Module, *,
                          logits_fn: Callable[[Any], torch.Tensor] | None = None,
                          device: str | torch.device = "cpu", batch_size: int = 32, out_size: int = 32,
                          scale: float = 255.0, num_workers: int = 0) -> torch.Tensor:
    """Quasi ground-truth maps for every item of ``dataset`` (N×out_size×out_size, in dataset order).

    Each item's target class is its ``label`` (1 live, 0 spoof), as in the official code. The model's mode is
    restored afterwards.
    """
    device = torch.device(device)
    loader = DataLoader(dataset, batch_size=max(1, batch_size), shuffle=False, num_workers=num_workers)
    was_training = model.training
    model.eval()
    maps: list[torch.Tensor] = []
    try:
        for batch in loader:
            images = batch["image"].to(device)
            cam = grad_cam(model, layer, images, batch["label"].to(device), logits_fn)
            maps.append(cam_to_target(cam, tuple(images.shape[-2:]), out_size, scale).cpu())
    finally:
        model.train(was_training)
    return torch.cat(maps) if maps else torch.zeros(0, out_size, out_size)


def save_cam_cache(path: str | Path, sample_ids: list[str], maps: torch.Tensor, info: dict[str, Any]) -> Path:
    """Write ``maps`` (N×s×s, row i = ``sample_ids[i]``) to a ``.safetensors`` file atomically."""
    from safetensors.torch import save_file

    if len(sample_ids) != maps.shape[0]:
        raise ValueError(f"{len(sample_ids)} sample ids for {maps.shape[0]} maps")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    meta = {"format": CAM_FORMAT, "sample_ids": json.dumps(sample_ids), "info": json.dumps(info)}
    save_file({"maps": maps.contiguous().float().cpu()}, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_cam_cache(path: str | Path, sample_ids: list[str]) -> tuple[torch.Tensor, dict[str, Any]]:
    """Maps for ``sample_ids`` (in that order) from a cache written by :func:`save_cam_cache`, and its info."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            maps = f.get_tensor("maps")
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one clear error
        raise CamCacheError(f"{path}: cannot read the CAM cache ({type(err).__name__}: {err})") from err
    if meta.get("format") != CAM_FORMAT:
        raise CamCacheError(f"{path}: not an openfas CAM cache (format {meta.get('format')!r})")
    ids = json.loads(meta["sample_ids"])
    row = {s: i for i, s in enumerate(ids)}
    missing = [s for s in sample_ids if s not in row]
    if missing:
        raise CamCacheError(f"{path}: no CAM for {len(missing)} training samples (e.g. {missing[0]!r}); "
                            "delete the file to recompute it from the pre-trained model")
    return maps[torch.tensor([row[s] for s in sample_ids], dtype=torch.long)], json.loads(meta.get("info", "{}"))
