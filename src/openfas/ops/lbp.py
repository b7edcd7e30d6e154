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
            # ceil(a / g) as (a + g − 1) // g: operands stay non-negative, where the exported graph's integer
            # division (which truncates) equals Python's floor division; -((-a) // g) exported as a truncating Div
            # gave floor instead of ceil, and the ONNX model read 12×12 cells where PyTorch read 13×13
            y0, y1 = (r * h) // grid, ((r + 1) * h + grid - 1) // grid
            x0, x1 = (c * w) // grid, ((c + 1) * w + grid - 1) // grid
            hists.append(onehot[:, :, y0:y1, x0:x1].mean(dim=(2, 3)))
    return torch.cat(hists, dim=1)


# ITU-R BT.601 luma and colour differences in 8-bit integer arithmetic (coefficients × 256, offsets omitted:
# comparisons ignore them). On 8-bit pixels every product and sum is an integer below 2^24, so float32 computes
# them EXACTLY in any order: PyTorch and ONNX Runtime see the same planes, the same ties and the same codes.
# With the real-valued coefficients a grey pixel's Cb or Cr came out as ±1e-8 depending on the runtime, and
# flipped bits moved exported scores by up to 0.13.
GREY_INT = ((77, 150, 29),)
YCBCR_INT = ((77, 150, 29), (-43, -85, 128), (128, -107, -21))
RGB_INT = ((1, 0, 0), (0, 1, 0), (0, 0, 1))


class PixelPlanes(torch.nn.Module):
    """Normalised input → integer-valued planes: 8-bit pixels ``round((x·std + mean)·255)`` (the inverse of the
    data pipeline's ``(p/255 − mean)/std``), then an integer channel mix (``weights``: planes × input channels)."""

    mix: torch.Tensor

    def __init__(self, weights: tuple[tuple[int, ...], ...], mean: float = 0.5, std: float = 0.5) -> None:
        super().__init__()
        if std <= 0:
            raise ValueError(f"input_std must be positive, got {std}")
        self.mean, self.std = float(mean), float(std)
        self.register_buffer("mix", torch.tensor(weights, dtype=torch.float32), persistent=False)
        self.out_channels = len(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = torch.round((x * self.std + self.mean) * 255.0)
        return torch.nn.functional.conv2d(pixels, self.mix[:, :, None, None])


def binary_pattern_planes(planes: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """The bits of ``LBP_{8,R}`` as image planes: ``B×C×H×W`` → ``B×8C×H×W`` of ±1.

    Plane ``8c + k`` holds ``2·[g_k ≥ g_c] − 1`` for neighbour ``k`` of :data:`NEIGHBOURS` in channel ``c`` (the
    bit that :func:`lbp_codes` puts at ``2^k``); the border is padded by repeating the edge pixel, so the size is
    kept. A CNN fed these planes sees only the local ORDER of values, like an LBP histogram, but may learn where
    and how the patterns combine."""
    if planes.dim() != 4:
        raise ValueError(f"binary_pattern_planes expects B×C×H×W, got shape {tuple(planes.shape)}")
    r = int(radius)
    h, w = planes.shape[-2:]
    if r < 1 or h <= r or w <= r:
        raise ValueError(f"radius {radius} needs images larger than {r}×{r}, got {h}×{w}")
    padded = torch.nn.functional.pad(planes, (r, r, r, r), mode="replicate")
    bits = [padded[:, :, r + dy * r:r + dy * r + h, r + dx * r:r + dx * r + w] >= planes for dy, dx in NEIGHBOURS]
    return torch.stack(bits, dim=2).flatten(1, 2).to(planes.dtype) * 2 - 1


class BinaryPatternInput(torch.nn.Module):
    """RGB → Y, Cb, Cr (:data:`YCBCR_INT`) → :func:`binary_pattern_planes` for each radius: ``B×3×H×W`` →
    ``B×24·len(radii)×H×W``.

    An input stem with no parameters: any increasing change of Y, Cb or Cr (a brightness gain, a gamma on luma)
    leaves its output unchanged, so a network behind it cannot learn the level of its training session's light."""

    def __init__(self, radii: tuple[int, ...] = (1,), mean: float = 0.5, std: float = 0.5) -> None:
        super().__init__()
        if not radii or any(int(r) < 1 for r in radii):
            raise ValueError(f"binary-pattern input needs radii >= 1, got {radii}")
        self.radii = tuple(int(r) for r in radii)
        self.planes = PixelPlanes(YCBCR_INT, mean, std)
        self.out_channels = 8 * 3 * len(self.radii)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"binary-pattern input expects B×3×H×W RGB, got shape {tuple(x.shape)}")
        planes = self.planes(x)
        return torch.cat([binary_pattern_planes(planes, r) for r in self.radii], dim=1)


INPUT_CODES = ("rgb", "lbp")


def input_encoder(input_code: str, in_channels: int, mean: float = 0.5, std: float = 0.5) -> torch.nn.Module:
    """The parameter-free input stem named by ``input_code``: ``"rgb"`` (identity) or ``"lbp"``."""
    if input_code not in INPUT_CODES:
        raise ValueError(f"input_code must be one of {', '.join(INPUT_CODES)}, got {input_code!r}")
    if input_code == "rgb":
        return torch.nn.Identity()
    if in_channels != 3:
        raise ValueError(f"input_code='lbp' needs RGB (3-channel) input, got in_channels={in_channels}")
    return BinaryPatternInput((1,), mean, std)


__all__ = ["GREY_INT", "INPUT_CODES", "NEIGHBOURS", "RGB_INT", "UNIFORM_BINS", "YCBCR_INT", "BinaryPatternInput",
           "PixelPlanes", "binary_pattern_planes", "input_encoder", "lbp_codes", "transitions", "uniform_histograms",
           "uniform_lut"]
