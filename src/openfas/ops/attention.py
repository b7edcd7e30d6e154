"""Spatial attention of CDCN++'s multiscale attention fusion module (Yu et al., CVPR 2020, Sec. 3.3, Eq. (6)).

A = σ(conv_k([mean_c(F); max_c(F)])): channel-wise mean and max maps (2 channels) → one k×k conv (no bias)
→ sigmoid. CDCN++ uses k = 7, 5, 3 for its low-, mid- and high-level features.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class SpatialAttention(nn.Module):
    """B×C×H×W features → B×1×H×W attention map in (0, 1) (multiply it onto the features yourself)."""

    def __init__(self, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"SpatialAttention needs an odd kernel size, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=1, keepdim=True)
        mx = x.amax(dim=1, keepdim=True)
        return torch.sigmoid(self.conv(torch.cat([avg, mx], dim=1)))
