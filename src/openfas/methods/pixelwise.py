"""Pixel-wise supervised training (CDCN family): map regression with MSE + contrastive depth loss."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from openfas.losses.depth import pixelwise_loss
from openfas.methods.base import Batch, Method, MethodParams, Stage, register_method, unwrap_model


class PixelwiseParams(MethodParams):
    cdl_weight: float = 1.0  # weight of the contrastive depth loss (Eq. 6 of Yu et al. 2020 uses 1)
    # 0 = valid convolution as the official code (30×30 difference maps for 32×32); 1 = zero padding (documented
    # deviation, the behaviour of openfas before issue 13)
    cdl_padding: Literal[0, 1] = 0


@register_method("pixelwise")
class PixelwiseMethod(Method):
    """Train a map-regressing model against binary-mask or pseudo-depth targets (live) and zeros (spoof).

    Score = mean of the predicted map, so higher = more live (Yu et al. 2020, Sec. 4.1).
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

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        pred = model(batch["image"]).float()
        return {"score": pred.flatten(1).mean(1), "map": pred}
