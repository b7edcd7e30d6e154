"""Binary live/spoof classification (cross-entropy), optionally with the Fourier-spectrum auxiliary loss.

For classifier models that return B×2 logits (index 1 = live) and, with ``aux=True``, ``(logits, aux_map)``
(:mod:`openfas.models.minifasnet`). Loss: ``L = CE(logits, y) + ft_weight · MSE(aux_map, F(x))`` where ``F`` is
:func:`openfas.losses.spectrum.fourier_spectrum_target` (Silent-Face trains with the two terms weighted equally;
``ft_weight = 0`` switches the auxiliary loss off). Score = ``softmax(logits)[:, 1]`` (higher = more live).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.losses.spectrum import spectrum_loss
from openfas.methods.base import Batch, Method, MethodParams, Stage, register_method


class BinaryParams(MethodParams):
    ft_weight: float = 0.0  # weight of the Fourier-spectrum auxiliary loss (0 = off; Silent-Face uses 1)
    label_smoothing: float = 0.0


def live_probability(logits: torch.Tensor) -> torch.Tensor:
    """``softmax(logits)[:, 1]`` computed as ``sigmoid(l1 − l0)`` (the same value, one op fewer)."""
    return torch.sigmoid(logits[:, 1] - logits[:, 0])


@register_method("binary")
class BinaryMethod(Method):
    """Cross-entropy classifier training; see the module docstring."""

    Params = BinaryParams
    params: BinaryParams

    def training_loss(self, model: nn.Module, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        p = self.params
        if p.ft_weight > 0:
            logits, aux = model(batch["image"], aux=True)
        else:
            logits, aux = model(batch["image"]), None
        ce = F.cross_entropy(logits.float(), batch["label"], label_smoothing=p.label_smoothing)
        out = {"loss": ce, "ce": ce}
        if aux is not None:
            ft = spectrum_loss(aux, batch["image"], self.cfg.data.mean, self.cfg.data.std)
            out["ft"] = ft
            out["loss"] = ce + p.ft_weight * ft
        return out

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        return {"score": live_probability(model(batch["image"]).float())}
