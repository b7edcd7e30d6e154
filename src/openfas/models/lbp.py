"""A texture baseline: fixed LBP histograms + a learned linear classifier (after Määttä et al., IJCB 2011).

Määttä, Hadid and Pietikäinen ("Face spoofing detection from single images using micro-texture analysis") describe
a 64×64 grey face by uniform LBP histograms — ``LBP^{u2}_{8,1}`` over 3×3 overlapping regions plus whole-image
``LBP^{u2}_{8,2}`` and ``LBP^{u2}_{16,2}`` — and classify with an RBF SVM; on NUAA's session-3 test it reached
98 % accuracy. This model keeps the idea and fits the openfas engine (trained by the ``binary`` method,
exported to ONNX like every model):

* the input's 8-bit pixels are recovered exactly, ``round((x·input_std + input_mean)·255)`` (the data config's
  normalisation, filled in by the trainer), and mixed with BT.601's integer coefficients (``openfas.ops.lbp``),
  so the codes are computed exactly and the exported ONNX model reads the same codes as PyTorch;
* ``colour="grey"`` (Määttä et al.): the grey level ``(77 R + 150 G + 29 B) / 256``;
* ``colour="ycbcr"`` (Boulkenafet, Komulainen and Hadid, ICIP 2015 / TIFS 2016, "colour texture analysis"): the
  same histograms for each of the ITU-R BT.601 channels Y, Cb and Cr, concatenated. A printed photo reproduces
  the face through the printer's narrower colour gamut, and that shows in the chroma texture, which grey LBP
  discards. Cb and Cr weigh R, G, B with coefficients that sum to zero, so a shared offset cancels and a shared
  gain scales all three channels alike: their codes ignore any uniform brightness gain of the light.
  ``colour="rgb"`` uses the three input channels directly;
* ``LBP^{u2}_{8,r}`` for each radius in ``radii`` (default 1 and 2; the 16-neighbour operator is not included),
  each as a whole-image histogram plus ``grid×grid`` non-overlapping cells;
* a BatchNorm (standardises the histogram features, like the SVM's feature scaling) and one linear layer →
  ``B×2`` logits (index 1 = live). A linear classifier instead of the RBF SVM: trainable by SGD with the rest of
  openfas. Only the normalisation and the linear layer learn (4.7 k parameters with the defaults).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from openfas.models._registry import register_model
from openfas.ops.lbp import (
    GREY_INT,
    RGB_INT,
    UNIFORM_BINS,
    YCBCR_INT,
    PixelPlanes,
    lbp_codes,
    uniform_histograms,
    uniform_lut,
)

COLOURS = ("grey", "ycbcr", "rgb")


class LBPNet(nn.Module):
    lut: torch.Tensor

    def __init__(self, in_channels: int = 3, radii: tuple[int, ...] = (1, 2), grid: int = 3,
                 num_classes: int = 2, dropout: float = 0.0, colour: str = "grey",
                 input_mean: float = 0.5, input_std: float = 0.5) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"lbp takes grey (1) or RGB (3) input, got in_channels={in_channels}")
        if colour not in COLOURS:
            raise ValueError(f"lbp colour must be one of {', '.join(COLOURS)}, got {colour!r}")
        if colour != "grey" and in_channels != 3:
            raise ValueError(f"lbp colour={colour!r} needs RGB (3-channel) input, got in_channels={in_channels}")
        if not radii or any(r < 1 for r in radii) or grid < 1:
            raise ValueError(f"lbp needs radii >= 1 and grid >= 1, got radii={radii}, grid={grid}")
        self.in_channels, self.radii, self.grid = in_channels, tuple(int(r) for r in radii), int(grid)
        self.colour = colour
        self.register_buffer("lut", uniform_lut(), persistent=False)
        weights = {"grey": GREY_INT, "ycbcr": YCBCR_INT, "rgb": RGB_INT}[colour] if in_channels == 3 else ((1,),)
        self.planes = PixelPlanes(weights, input_mean, input_std)  # exact integer planes of the 8-bit pixels
        self.num_features = len(weights) * len(self.radii) * (1 + grid * grid) * UNIFORM_BINS
        self.norm = nn.BatchNorm1d(self.num_features)
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B×C×H×W`` → ``B×num_features`` concatenated normalised histograms (no gradient flows through them)."""
        if x.shape[1] != self.in_channels:
            raise ValueError(f"lbp was built for {self.in_channels}-channel input, got {x.shape[1]} channels")
        with torch.no_grad():
            planes = self.planes(x)
            return torch.cat([uniform_histograms(lbp_codes(planes[:, k], r), self.lut, self.grid)
                              for k in range(planes.shape[1]) for r in self.radii], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.drop(self.norm(self.features(x))))


@register_model("lbp")
def lbp(in_channels: int = 3, radii: tuple[int, ...] = (1, 2), grid: int = 3, dropout: float = 0.0,
        colour: str = "grey", input_mean: float = 0.5, input_std: float = 0.5) -> LBPNet:
    return LBPNet(in_channels=in_channels, radii=radii, grid=grid, dropout=dropout, colour=colour,
                  input_mean=input_mean, input_std=input_std)
