"""LDCNet training (Huang et al., "Learnable Descriptive Convolutional Network for Face Anti-Spoofing", BMVC 2022;
official code huiyu8794/LDCNet ``Amap_train.py``, ``train.py``, ``test.py``).

Two stages:

1. ``pretrain`` (``pretrain_epochs``): FE + CF only, cross-entropy (the classifier whose class activation maps
   become the attention ground truth; the official code trains a separate ImageNet ResNet-18 + Linear for this
   in ``Amap_train.py``, openfas pre-trains LDCNet's own FE + CF as the paper describes);
2. at the start of ``main``: Grad-CAM maps of the pre-trained FE + CF at the last block of FE ``layer4``
   (:mod:`openfas.eval.cam`), class = the sample's label, give the quasi ground truth: a live face gets its CAM as
   live-attention target and 0 as spoof-attention target, a spoof face the reverse. They are computed once on the
   un-augmented training crops and cached in ``<run>/cam_targets.safetensors`` keyed by sample id; a run resumed
   inside ``main`` reloads them (the model is no longer the pre-trained one then, so a missing file is an error),
   a run entering ``main`` afresh (also a resume from the end of ``pretrain``) recomputes them;
3. ``main`` (``train.epochs``): everything, with

       L = L_cls + β·L_trip + γ·L_att                                              (total loss of the paper)
       L_cls = CE(CF(f), live/spoof)
       L_trip = batch-hard triplet loss on f, labels live / print / replay pooled over the source domains,
                margin 0.1, Euclidean distance   (:class:`openfas.losses.BatchHardTripletLoss`)
       L_att = MSE(LE, live target) + MSE(SE, spoof target)
       β = 0.1, γ = 0.004 (official ``train.py``; the targets are CAMs × 255).

Score (official ``test.py``): softmax(CF(f))[live], higher = more live; the live attention map is returned as
``map``. (``test.py`` also min-max normalises the scores over the test set, a monotone map that does not change
AUC or the EER-threshold HTER; it is not applied here because it makes a sample's score depend on the others.)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from openfas.data.loading import resolve_num_workers
from openfas.data.transforms import RESIZE_ONLY_RECIPES, augment_recipe
from openfas.eval.cam import class_activation_maps, load_cam_cache, save_cam_cache
from openfas.losses.triplet import BatchHardTripletLoss
from openfas.methods.base import (
    Batch,
    Method,
    MethodParams,
    Stage,
    TrainerContext,
    register_method,
    unwrap_as,
    unwrap_model,
)
from openfas.models.ldcnet import LDCNet

log = logging.getLogger(__name__)

CAM_CACHE_NAME = "cam_targets.safetensors"


class LDCNetParams(MethodParams):
    pretrain_epochs: int = Field(1, ge=1)  # stage 1 (FE + CF, cross-entropy)
    triplet_weight: float = Field(0.1, ge=0.0)  # β
    attention_weight: float = Field(0.004, ge=0.0)  # γ
    triplet_margin: float = Field(0.1, gt=0.0)
    cam_scale: float = Field(255.0, gt=0.0)  # official targets are CAM × 255
    cam_batch_size: int | None = None  # None = data.batch_size


def _is_fe_or_cf(name: str) -> bool:
    return name.startswith(("backbone.", "classifier."))


@register_method("ldcnet")
class LDCNetMethod(Method):
    Params = LDCNetParams
    params: LDCNetParams
    sampler = "domain_balanced"  # official: 5 live + 5 spoof per source domain per step
    # Stage 1 runs FE + CF only (LE/SE get no gradient), which the DDP wrapper would reject; the engine averages
    # the gradients across ranks itself instead.
    ddp_wrap = False

    def __init__(self, cfg: Any, params: MethodParams) -> None:
        super().__init__(cfg, params)
        self.triplet = BatchHardTripletLoss(self.params.triplet_margin)
        self.cam_targets: torch.Tensor | None = None  # N×s×s, row = training-set index

    def stages(self) -> list[Stage]:
        return [Stage("pretrain", self.params.pretrain_epochs, _is_fe_or_cf), Stage("main", self.cfg.train.epochs)]

    # ------------------------------------------------------------------ CAM quasi ground truth
    def on_stage_start(self, trainer: TrainerContext, stage: Stage) -> None:
        if stage.name != "main" or self.params.attention_weight == 0.0:
            return
        cfg = self.cfg
        if augment_recipe(cfg.data.augment) not in RESIZE_ONLY_RECIPES:
            log.warning("ldcnet: the CAM targets are computed on un-augmented crops; data.augment=true moves the "
                        "training crops (flip/affine) away from them (the official code trains without augmentation)")
        train_set = trainer.dataset(cfg.data.train_split, cfg.data.train_domains, train=False)
        ids = [r.sample_id for r in train_set.records]
        path = Path(trainer.run_dir) / CAM_CACHE_NAME
        resumed_inside = trainer.state.epoch > 0 or trainer.state.step_in_epoch > 0
        if resumed_inside and not path.exists():
            raise FileNotFoundError(f"{path}: the CAM targets of this run are missing; the run resumes inside "
                                    "stage 'main', where the pre-trained model they come from is gone. "
                                    "Restore the file or start the run again")
        if not resumed_inside:  # stage 'main' starts now: the model is the pre-trained one (any old file is stale)
            if trainer.dist.is_main:
                net = unwrap_as(trainer.model, LDCNet, "ldcnet")
                maps = class_activation_maps(
                    net, train_set, net.backbone.layer4[-1], logits_fn=lambda out: out["logits"],
                    device=trainer.device, batch_size=self.params.cam_batch_size or cfg.data.batch_size,
                    out_size=cfg.data.map_size, scale=self.params.cam_scale,
                    num_workers=resolve_num_workers(cfg.data.num_workers, trainer.device.type))
                save_cam_cache(path, ids, maps, {"layer": "backbone.layer4.1", "scale": self.params.cam_scale,
                                                 "image_size": cfg.data.image_size})
                log.info("ldcnet: wrote CAM targets of %d training crops to %s", len(ids), path)
            trainer.barrier()
        self.cam_targets, _ = load_cam_cache(path, ids)

    def attention_targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(live target, spoof target), B×s×s: the sample's CAM in its own class's map, zeros in the other."""
        if self.cam_targets is None:
            raise RuntimeError("ldcnet: no CAM targets; stage 'main' must start through the Trainer "
                               "(on_stage_start computes or loads them)")
        cam = self.cam_targets.to(batch["image"].device)[batch["index"]]
        live = (batch["label"] == 1).to(cam.dtype)[:, None, None]
        return cam * live, cam * (1.0 - live)

    # ------------------------------------------------------------------ losses
    def training_loss(self, model: nn.Module, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        p = self.params
        if stage.name == "pretrain":
            net = unwrap_as(model, LDCNet, "ldcnet")
            feature, _ = net.backbone(batch["image"])
            cls = F.cross_entropy(net.classifier(feature).float(), batch["label"])
            return {"loss": cls, "cls": cls.detach()}
        out = model(batch["image"])
        cls = F.cross_entropy(out["logits"].float(), batch["label"])
        loss = cls
        terms = {"cls": cls.detach()}
        if p.triplet_weight > 0:
            trip = self.triplet(out["feature"].float(), batch["attack"])
            loss = loss + p.triplet_weight * trip
            terms["trip"] = trip.detach()
        if p.attention_weight > 0:
            live_t, spoof_t = self.attention_targets(batch)
            att = F.mse_loss(out["live_map"].float(), live_t) + F.mse_loss(out["spoof_map"].float(), spoof_t)
            loss = loss + p.attention_weight * att
            terms["att"] = att.detach()
        return {"loss": loss, **terms}

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        out = unwrap_model(model)(batch["image"])
        return {"score": torch.softmax(out["logits"].float(), dim=1)[:, 1], "map": out["live_map"].float()}
