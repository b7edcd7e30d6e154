"""Distillation of a pixel-wise teacher (e.g. CDCN++ maps and scores) into a light classifier (MiniFASNet).

The accurate research model is slow (CDCN++ at 256×256 costs about a second per face on one CPU thread); the
student is the deployable one. Per batch, the frozen teacher scores the same face crops (resized to its own
input size, re-normalised to its own mean/std, and centre-cropped to its own crop scale when the student's
crops are wider) and the student learns from three terms::

    L = label_weight · CE(z, y)                                   ground truth
      + score_weight · BCE(σ(z₁ − z₀), σ((s_t − τ_t) / T))        the teacher's score as a soft label
      + map_weight   · MSE(m_s, pool(M_t))                        the teacher's map, pooled to the aux map size

with ``z`` the student's logits, ``s_t`` the teacher's score (mean of its map), ``τ_t`` the threshold stored in
the teacher file (its dev-chosen decision point, so the soft label is 0.5 exactly there) and ``T`` a temperature
in score units; ``m_s`` is the student's auxiliary map (``model(x, aux=True)``). This is response-based
knowledge distillation (Hinton et al., 2015) with the teacher's pixel map as a hint (Romero et al., FitNets, 2015).

The teacher file is read with the safe checkpoint loader (safetensors; nothing is unpickled) and is never
saved into the student's checkpoint: the student's file stays small and self-contained.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.config import ConfigError
from openfas.io.checkpoint import CheckpointError
from openfas.methods.base import Batch, Method, MethodParams, Stage, TrainerContext, register_method
from openfas.methods.binary import live_probability
from openfas.methods.restore import build_model_from_checkpoint

log = logging.getLogger(__name__)


class DistillParams(MethodParams):
    teacher: str | None = None  # pixel-wise teacher checkpoint (.safetensors made by `openfas train`)
    label_weight: float = 1.0
    score_weight: float = 1.0
    map_weight: float = 1.0
    label_smoothing: float = 0.0
    temperature: float = 0.05  # score units: teacher soft label = sigmoid((score − threshold) / temperature)


class FrozenTeacher:
    """A teacher checkpoint ready to score student batches (see the module docstring)."""

    def __init__(self, path: str, student_mean: float, student_std: float, student_scale: float | None) -> None:
        try:
            self.model, info = build_model_from_checkpoint(path)
        except (CheckpointError, KeyError, ValueError) as err:
            raise ConfigError(f"method.teacher={path}: cannot load the teacher ({err})") from None
        self.method = info["method"]
        meta = info["meta"]
        pre = meta["preprocess"]
        self.size = int(pre["image_size"])
        self.mean, self.std = float(pre["mean"]), float(pre["std"])
        self.s_mean, self.s_std = student_mean, student_std
        thr = meta.get("threshold")
        if thr is None:
            raise ConfigError(f"method.teacher={path}: the teacher stores no threshold; train it with a dev split")
        self.threshold = float(thr)
        t_scale = (pre.get("crop") or {}).get("scale")
        self.crop_fraction = 1.0
        if t_scale and student_scale and float(t_scale) < float(student_scale):
            self.crop_fraction = float(t_scale) / float(student_scale)
        elif t_scale and student_scale and float(t_scale) > float(student_scale):
            log.warning("teacher %s was trained on wider crops (scale %s) than the student's (%s): it sees less "
                        "context than it was trained with", path, t_scale, student_scale)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()

    def to(self, device: torch.device) -> FrozenTeacher:
        self.model.to(device)
        return self

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Student batch → teacher batch: centre crop to the teacher's scale, resize, re-normalise."""
        if self.crop_fraction < 1.0:
            h, w = x.shape[-2:]
            ch, cw = max(1, round(h * self.crop_fraction)), max(1, round(w * self.crop_fraction))
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[..., top:top + ch, left:left + cw]
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if (self.mean, self.std) != (self.s_mean, self.s_std):
            x = (x * self.s_std + self.s_mean - self.mean) / self.std
        return x

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.method.score(self.model, {"image": self.inputs(x.float())})
        return out["score"].float(), (None if out.get("map") is None else out["map"].float())


@register_method("distill")
class DistillMethod(Method):
    """Student training against a frozen pixel-wise teacher; see the module docstring."""

    Params = DistillParams
    params: DistillParams

    def __init__(self, cfg: Any, params: DistillParams) -> None:
        super().__init__(cfg, params)
        self._teacher: FrozenTeacher | None = None
        self._student_scale: float | None = None

    def teacher(self, device: torch.device) -> FrozenTeacher:
        if self._teacher is None:
            if not self.params.teacher:
                raise ConfigError("method distill needs method.teacher=<pixel-wise teacher .safetensors>")
            self._teacher = FrozenTeacher(self.params.teacher, self.cfg.data.mean, self.cfg.data.std,
                                          self._student_scale)
        return self._teacher.to(device)

    def on_stage_start(self, trainer: TrainerContext, stage: Stage) -> None:
        self._student_scale = (getattr(trainer, "crop_info", None) or {}).get("scale")
        self.teacher(trainer.device)  # fail before the first step

    def training_loss(self, model: nn.Module, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        p = self.params
        x = batch["image"]
        teacher = self.teacher(x.device)
        t_score, t_map = teacher(x)
        logits, aux = model(x, aux=True)
        logits = logits.float()
        ce = F.cross_entropy(logits, batch["label"], label_smoothing=p.label_smoothing)
        soft = torch.sigmoid((t_score - teacher.threshold) / p.temperature)
        kd = F.binary_cross_entropy(live_probability(logits).clamp(1e-6, 1 - 1e-6), soft)
        loss = p.label_weight * ce + p.score_weight * kd
        out = {"ce": ce, "kd": kd}
        if t_map is not None and p.map_weight > 0:
            target = F.adaptive_avg_pool2d(t_map.unsqueeze(1), tuple(aux.shape[-2:])).squeeze(1)
            hint = F.mse_loss(aux.float(), target)
            loss = loss + p.map_weight * hint
            out["map"] = hint
        out["loss"] = loss
        return out

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        return {"score": live_probability(model(batch["image"]).float())}
