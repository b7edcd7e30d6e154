"""Local binary patterns (Ojala et al., TPAMI 2002) as fixed tensor operations.

``LBP_{8,R}`` of a pixel ``c``: compare its 8 neighbours at chessboard distance ``R`` (clockwise from the top-left
corner) with it, ``code = Σ_k [g_k ≥ g_c]·2^k``. The *uniform* mapping ``u2`` keeps the 58 codes with at most two
0/1 transitions around the circle and puts every other code into one extra bin (59 bins). The codes depend only
on the ORDER of grey levels, so any increasing change of brightness, contrast or gamma leaves them unchanged —
the reason LBP histograms were the classic print-attack baseline under new light (Määttä et al., IJCB 2011).
"""

from __future__ import annotations

import torch

# clockwise from the top-left corner: (dy, dx) in units of the radius
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
UNIFORM_BINS = 59


def transitions(code: int) -> int:
    """Number of 0/1 changes around the 8-bit circle of ``code``."""
    bits = [(code >> k) & 1 for k in range(8)]
    return sum(bits[k] != bits[(k + 1) % 8] for k in range(8))


def uniform_lut() -> torch.Tensor:
    """256 → 59 lookup: uniform codes numbered 0…57 in increasing code order, all others → 58."""
    lut, nxt = [], 0
    for code in range(256):
        if transitions(code) <= 2:
            lut.append(nxt)
            nxt += 1
        else:
            lut.append(UNIFORM_BINS - 1)
    assert nxt == UNIFORM_BINS - 1
    return torch.tensor(lut, dtype=torch.long)


def lbp_codes(gray: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """``B×H×W`` grey images → ``B×(H−2R)×(W−2R)`` LBP_{8,R} codes in 0…255 (long); border pixels are dropped."""
    if gray.dim() != 3:
        raise ValueError(f"lbp_codes expects B×H×W grey images, got shape {tuple(gray.shape)}")
    r = int(radius)
    h, w = gray.shape[-2:]
    if r < 1 or h <= 2 * r or w <= 2 * r:
        raise ValueError(f"radius {radius} needs images larger than {2 * r}×{2 * r}, got {h}×{w}")
    centre = gray[:, r:h - r, r:w - r]
    code = torch.zeros_like(centre, dtype=torch.long)
    for k, (dy, dx) in enumerate(NEIGHBOURS):
        neighbour = gray[:, r + dy * r:h - r + dy * r, r + dx * r:w - r + dx * r]
        code = code + (neighbour >= centre).long() * (1 << k)
    return code


def uniform_histograms(codes: torch.Tensor, lut: torch.Tensor, grid: int = 3) -> torch.Tensor:
    """Normalised u2 histograms of ``B×H×W`` codes: the whole image and each cell of a ``grid×grid`` partition.

    Returns ``B×(1 + grid²)·59``: the global histogram first, then the cells row by row; each histogram sums to 1.
    """
    bins = lut.to(codes.device)[codes]  # B×H×W in 0…58
    onehot = (bins.unsqueeze(1) == torch.arange(UNIFORM_BINS, device=codes.device).view(1, -1, 1, 1)).float()
    h, w = codes.shape[-2:]
    hists = [onehot.mean(dim=(2, 3))]
    for r in range(grid):  # cell bounds of adaptive average pooling: floor(start), ceil(end); explicit slices
        for c in range(grid):  # keep the ONNX graph static for any size (adaptive pooling needs divisible sizes)
            y0, y1 = (r * h) // grid, -((-(r + 1) * h) // grid)
            x0, x1 = (c * w) // grid, -((-(c + 1) * w) // grid)
            hists.append(onehot[:, :, y0:y1, x0:x1].mean(dim=(2, 3)))
    return torch.cat(hists, dim=1)


__all__ = ["NEIGHBOURS", "UNIFORM_BINS", "lbp_codes", "transitions", "uniform_histograms", "uniform_lut"]
