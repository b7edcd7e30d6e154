"""Pixel-wise supervision losses of the CDCN family (Yu et al., CVPR 2020, Sec. 3.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def neighbour_difference_kernels(dtype: torch.dtype = torch.float32,
                                 device: torch.device | None = None) -> torch.Tensor:
    """The 8 fixed 3×3 kernels K_i^contrast: −1 at the centre, +1 at the i-th neighbour. Shape 8×1×3×3."""
    kernels = torch.zeros(8, 1, 3, 3, dtype=dtype, device=device)
    neighbours = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    for i, (r, c) in enumerate(neighbours):
        kernels[i, 0, r, c] = 1.0
        kernels[i, 0, 1, 1] = -1.0
    return kernels


def contrast_depth_loss(pred: torch.Tensor, target: torch.Tensor, padding: int = 0) -> torch.Tensor:
    """Contrastive depth loss, Eq. (5) of Yu et al. 2020: ‖K ⊛ D_pred − K ⊛ D_gt‖² averaged (MSE).

    ``pred`` and ``target`` are B×H×W maps; each is convolved with the 8 kernels. ``padding=0`` (default) is the
    valid convolution of the paper's released code (8×(H−2)×(W−2) difference maps, e.g. 30×30 for a 32×32 map);
    ``padding=1`` zero-pads, which adds border differences against zero that the official loss does not have.
    """
    if padding not in (0, 1):
        raise ValueError(f"contrastive depth loss padding must be 0 (valid, official) or 1 (zero), got {padding!r}")
    kernels = neighbour_difference_kernels(pred.dtype, pred.device)
    p = F.conv2d(pred.unsqueeze(1), kernels, padding=padding)
    t = F.conv2d(target.unsqueeze(1).to(pred.dtype), kernels, padding=padding)
    return F.mse_loss(p, t)


def pixelwise_loss(pred: torch.Tensor, target: torch.Tensor, cdl_weight: float = 1.0,
                   cdl_padding: int = 0) -> dict[str, torch.Tensor]:
    """Overall loss of CDCN, Eq. (6): L = L_MSE + L_CDL. Returns the parts and their weighted sum."""
    mse = F.mse_loss(pred, target.to(pred.dtype))
    cdl = contrast_depth_loss(pred, target, cdl_padding)
    return {"loss": mse + cdl_weight * cdl, "mse": mse, "cdl": cdl}
