"""Colour-space layers used inside models (so exported models take the same RGB input as every other)."""

from __future__ import annotations

import torch
import torch.nn as nn


def rgb_to_hsv(rgb: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """HSV of an RGB batch ``B×3×H×W`` in [0, 1]; H, S and V all in [0, 1] (H = hue angle / 360°).

    The standard hexcone model: V = max, S = (max − min) / max, H from the channel holding the maximum.
    Grey pixels (max = min) get H = 0, black pixels S = 0.
    """
    r, g, b = rgb.unbind(1)
    maxc, argmax = rgb.max(1)
    minc = rgb.min(1).values
    delta = maxc - minc
    safe = torch.where(delta > eps, delta, torch.ones_like(delta))
    h_r = ((g - b) / safe) % 6.0
    h_g = (b - r) / safe + 2.0
    h_b = (r - g) / safe + 4.0
    h = torch.where(argmax == 0, h_r, torch.where(argmax == 1, h_g, h_b)) / 6.0
    h = torch.where(delta > eps, h, torch.zeros_like(h))
    s = torch.where(maxc > eps, delta / torch.where(maxc > eps, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack([h, s, maxc], 1)


class AppendHSV(nn.Module):
    """Turn a normalised RGB input into the 6-channel RGB+HSV input of RFMetaFAS / ANRL (``img_mode rgb_hsv``).

    ``x`` is ``(rgb − mean) / std``; the output is ``[x, (hsv − mean) / std]`` so both halves share the
    normalisation of the official code (mean = std = 0.5). Hue is scaled to [0, 1] (OpenCV's 8-bit HSV, used
    by the official loaders, stores H/2 in [0, 180) instead; documented difference).
    """

    def __init__(self, mean: float = 0.5, std: float = 0.5) -> None:
        super().__init__()
        self.mean, self.std = float(mean), float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = (x * self.std + self.mean).clamp(0.0, 1.0)
        return torch.cat([x, (rgb_to_hsv(rgb) - self.mean) / self.std], 1)
