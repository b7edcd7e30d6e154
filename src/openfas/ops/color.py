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
    """Turn a normalised RGB input ``x = (rgb − mean) / std`` into the 6-channel RGB+HSV input of RFMetaFAS / ANRL.

    ``output="normalised"``: ``[x, (hsv − mean) / std]``, both halves normalised alike (ANRL: TFace normalises
    RGB and HSV with mean = std = 0.5). ``output="unit"``: ``[rgb, hsv]`` in [0, 1] without normalisation
    (RFMetaFAS: PIL images through ``ToTensor`` only).

    ``hue="unit"``: H = hue angle / 360° in [0, 1], which is what PIL's 8-bit HSV gives after ``ToTensor``
    (RFMetaFAS). ``hue="opencv"``: OpenCV's 8-bit HSV stores H = angle / 2 in [0, 180), so after the loader's
    division by 255 it is angle / 510 in [0, 0.706) (ANRL); S and V are the same in both.
    """

    def __init__(self, mean: float = 0.5, std: float = 0.5, hue: str = "unit", output: str = "normalised") -> None:
        super().__init__()
        if hue not in ("unit", "opencv"):
            raise ValueError(f"hue must be 'unit' or 'opencv', got {hue!r}")
        if output not in ("normalised", "unit"):
            raise ValueError(f"output must be 'normalised' or 'unit', got {output!r}")
        self.mean, self.std = float(mean), float(std)
        self.hue_factor = 1.0 if hue == "unit" else 180.0 / 255.0
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = (x * self.std + self.mean).clamp(0.0, 1.0)
        hsv = rgb_to_hsv(rgb)
        if self.hue_factor != 1.0:
            hsv = torch.cat([hsv[:, :1] * self.hue_factor, hsv[:, 1:]], 1)
        if self.output == "unit":
            return torch.cat([rgb, hsv], 1)
        return torch.cat([x, (hsv - self.mean) / self.std], 1)
