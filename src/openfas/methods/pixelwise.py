"""Pixel-wise supervised training (CDCN family): map regression with MSE + contrastive depth loss.

Score (``score_norm``):

* ``"face_mask"`` – the official CDCN test score, Σ predicted map / Σ binary face mask of the test image. The mask
  is ``batch["face_mask"]`` (B×h×w, 1 = face) when the data provides one per image; otherwise it is the ellipse
  inscribed in the square face box that the crop geometry implies: centred, side = map side / ``mask_face_scale``
  (``mask_face_scale`` = crop side / face-box side, the ``--scale`` of ``openfas data prepare``). With that fixed
  mask the score is a constant multiple of the map mean, so AUC, EER and HTER/ACER at a dev-chosen threshold are
  the same as with ``"mean"``; only the score's scale (and hence a fixed threshold) differs.
* ``"mean"`` – the mean of the predicted map (openfas's earlier rule).

The rule a run used is written into its ``metrics.json`` (``score_rule``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
from pydantic import Field

from openfas.losses.depth import pixelwise_loss
from openfas.methods.base import Batch, Method, MethodParams, Stage, register_method, unwrap_model


class PixelwiseParams(MethodParams):
    cdl_weight: float = 1.0  # weight of the contrastive depth loss (Eq. 6 of Yu et al. 2020 uses 1)
    # 0 = valid convolution as the official code (30×30 difference maps for 32×32); 1 = zero padding (documented
    # deviation, adds border terms against 0)
    cdl_padding: Literal[0, 1] = 0
    score_norm: Literal["mean", "face_mask"] = "mean"  # CDCN configs: "face_mask" (official test score)
    mask_face_scale: float = Field(1.3, ge=1.0)  # crop side / face-box side, for the implied face mask


@register_method("pixelwise")
class PixelwiseMethod(Method):
    """Train a map-regressing model against binary-mask or pseudo-depth targets (live) and zeros (spoof).

    Score: see the module docstring (higher = more live).
    """

    Params = PixelwiseParams
    params: PixelwiseParams

    def training_loss(self, model: nn.Module, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        inner = unwrap_model(model)
        if callable(getattr(inner, "branch_maps", None)) and getattr(inner, "has_branches", True):
            # Score-level fusion (multi-modal CDCN): each modality branch has its own loss (the paper trains
            # each modality separately); the sum is minimised. Called through ``model`` (not the unwrapped
            # module) so DDP / torch.compile wrappers still see the forward.
            maps = model(batch["image"], branches=True).float()
            parts = [pixelwise_loss(maps[:, m], batch["target"], self.params.cdl_weight, self.params.cdl_padding)
                     for m in range(maps.shape[1])]
            return {key: torch.stack([p[key] for p in parts]).sum() for key in ("loss", "mse", "cdl")}
        pred = model(batch["image"])
        return pixelwise_loss(pred.float(), batch["target"], self.params.cdl_weight, self.params.cdl_padding)

    def score_rule(self) -> dict[str, object]:
        """How :meth:`score` turns a map into a score (recorded in metrics.json)."""
        p = self.params
        if p.score_norm == "mean":
            return {"score": "mean of the predicted map"}
        return {"score": "sum of the predicted map / sum of the binary face mask (official CDCN test score)",
                "face_mask": "per-image batch['face_mask'] when the data gives one, else the ellipse inscribed in "
                             f"the centred face box of side map_side/{p.mask_face_scale:g}"}

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        pred = model(batch["image"]).float()
        if self.params.score_norm == "mean":
            return {"score": pred.flatten(1).mean(1), "map": pred}
        mask = batch.get("face_mask")
        if mask is None:
            mask = implied_face_mask(pred.shape[-2], pred.shape[-1], self.params.mask_face_scale).to(pred.device)
            denom = mask.sum().expand(pred.shape[0])
        else:
            denom = mask.float().flatten(1).sum(1)
        return {"score": pred.flatten(1).sum(1) / denom.clamp_min(1.0), "map": pred}


def implied_face_mask(h: int, w: int, face_scale: float) -> torch.Tensor:
    """h×w binary mask: the ellipse inscribed in the centred square face box of side min(h, w)/``face_scale``
    (pixel (i, j) counts when its centre (j + ½, i + ½) lies inside, as :func:`openfas.data.face.face_mask_target`)."""
    side = min(h, w) / face_scale
    yy = torch.arange(h, dtype=torch.float64)[:, None] + 0.5
    xx = torch.arange(w, dtype=torch.float64)[None, :] + 0.5
    inside = ((xx - w / 2) / (side / 2)) ** 2 + ((yy - h / 2) / (side / 2)) ** 2 <= 1.0
    return inside.float()
