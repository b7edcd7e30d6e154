"""A small pixel-supervised network: a few conv blocks and a 1-channel map head.

It is the quick baseline for smoke tests and for the demo before a full CDCN is wanted: input B×C×H×W,
output a B×map_size×map_size map in [0, ∞) (ReLU), score = mean of the map (higher = more live).
``input_code="lbp"`` puts :class:`~openfas.ops.lbp.BinaryPatternInput` in front (the 8 LBP comparison bits of
Y, Cb and Cr as 24 planes), so the network sees only the local order of values, never the light's level.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.models._registry import register_model
from openfas.ops.lbp import input_encoder


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class PixelNet(nn.Module):
    """Stem + three downsampling blocks, multi-level features resized to the map size and concatenated."""

    def __init__(self, in_channels: int = 3, width: int = 32, map_size: int = 32, input_code: str = "rgb",
                 input_mean: float = 0.5, input_std: float = 0.5) -> None:
        super().__init__()
        self.map_size = map_size
        self.encode = input_encoder(input_code, in_channels, input_mean, input_std)
        self.stem = _block(getattr(self.encode, "out_channels", in_channels), width)
        self.blocks = nn.ModuleList(
            [nn.Sequential(_block(width, width), nn.MaxPool2d(3, 2, 1)) for _ in range(3)]
        )
        self.head = nn.Sequential(_block(3 * width, width), nn.Conv2d(width, 1, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.encode(x))
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(F.interpolate(x, size=(self.map_size, self.map_size), mode="bilinear",
                                       align_corners=False))
        return self.head(torch.cat(feats, dim=1)).squeeze(1)


@register_model("pixelnet")
def pixelnet(in_channels: int = 3, width: int = 32, map_size: int = 32, input_code: str = "rgb",
             input_mean: float = 0.5, input_std: float = 0.5) -> PixelNet:
    return PixelNet(in_channels=in_channels, width=width, map_size=map_size, input_code=input_code,
                    input_mean=input_mean, input_std=input_std)
