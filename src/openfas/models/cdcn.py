"""CDCN and CDCN++ (Yu et al., "Searching Central Difference Convolutional Networks for Face Anti-Spoofing",
CVPR 2020) and the multi-modal CDCN (Yu et al., "Multi-Modal Face Anti-Spoofing Based on Central Difference
Networks", CVPR workshops 2020).

Layer lists follow the official code (``CVPR2020_paper_codes/models/CDCNs.py``): every convolution is a 3×3
central difference convolution (Eq. (3), :class:`~openfas.ops.CDConv2d`) without bias, followed by BatchNorm
and ReLU; each block ends with a 3×3 stride-2 max-pool. The three block outputs are resized (bilinear) to
32×32 and concatenated (3·128 = 384 channels) and a head regresses a 1×32×32 map (ReLU). For a 256×256 input
the block outputs are 128, 64 and 32 px. Any input size divisible by 8 works; the features are always
resized to 32×32 as in the paper, and when ``map_size`` ≠ 32 the final map is resized bilinearly to
``map_size``×``map_size`` (a convenience for other target sizes, not part of the paper).

Score (pixelwise method) = mean of the map; higher = more live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.conventions import MODALITIES
from openfas.models._registry import register_model
from openfas.ops.attention import SpatialAttention
from openfas.ops.cdc import CDConv2d
from openfas.ops.lbp import input_encoder

#: A convolution factory ``conv(in_ch, out_ch) -> module`` (3×3, stride 1, padding 1, no bias).
ConvFactory = Callable[[int, int], nn.Module]

FEATURE_SIZE = 32  # the multi-level features are resized to 32×32 (official nn.Upsample(size=(32, 32)))

# Layer lists (output channels of each conv), official code / facts.md.
CDCN_STEM = 64
CDCN_BLOCKS: tuple[tuple[int, ...], ...] = ((128, 196, 128), (128, 196, 128), (128, 196, 128))
CDCN_HEAD: tuple[int, ...] = (128, 64)  # then a conv to 1 channel + ReLU
CDCNPP_BLOCKS: tuple[tuple[int, ...], ...] = (
    (128, int(128 * 1.6), 128),  # 204
    (int(128 * 1.2), 128, int(128 * 1.4), 128),  # 153, 179
    (128, int(128 * 1.2), 128),
)
CDCNPP_HEAD: tuple[int, ...] = (128,)
CDCNPP_ATTENTION_KERNELS: tuple[int, ...] = (7, 5, 3)


def cdc_factory(theta: float = 0.7) -> ConvFactory:
    """3×3 CDC layers with the given θ (θ = 0 gives plain convolutions)."""

    def make(cin: int, cout: int) -> nn.Module:
        return CDConv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False, theta=theta)

    return make


def _conv_bn_relu(conv: ConvFactory, cin: int, cout: int) -> list[nn.Module]:
    return [conv(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _block(conv: ConvFactory, cin: int, widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += _conv_bn_relu(conv, cin, w)
        cin = w
    layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    return nn.Sequential(*layers)


def _head(conv: ConvFactory, cin: int, widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += _conv_bn_relu(conv, cin, w)
        cin = w
    layers += [conv(cin, 1), nn.ReLU()]
    return nn.Sequential(*layers)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class CDCNTrunk(nn.Module):
    """Stem + three blocks → the concatenated multi-level features, B×Σ(block widths)×32×32.

    With ``attention_kernels`` (CDCN++'s multiscale attention fusion), each block output is multiplied by its
    spatial attention map before the resize; the next block takes the un-attended output (official code).
    """

    def __init__(self, in_channels: int, conv: ConvFactory, stem: int, blocks: Sequence[Sequence[int]],
                 attention_kernels: Sequence[int] | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn_relu(conv, in_channels, stem))
        mods = []
        cin = stem
        for widths in blocks:
            mods.append(_block(conv, cin, widths))
            cin = widths[-1]
        self.blocks = nn.ModuleList(mods)
        if attention_kernels is not None:
            if len(attention_kernels) != len(blocks):
                raise ValueError(f"need one attention kernel per block, got {list(attention_kernels)}")
            self.attention: nn.ModuleList | None = nn.ModuleList(SpatialAttention(k) for k in attention_kernels)
        else:
            self.attention = None
        self.out_channels = sum(widths[-1] for widths in blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            f = x if self.attention is None else self.attention[i](x) * x
            feats.append(_resize(f, FEATURE_SIZE))
        return torch.cat(feats, dim=1)


def _check_size(x: torch.Tensor, what: str) -> None:
    if x.dim() != 4 or x.shape[-1] % 8 or x.shape[-2] % 8:
        raise ValueError(f"{what} expects a B×C×H×W input with H and W divisible by 8, got {tuple(x.shape)}")


class CDCN(nn.Module):
    """CDCN / CDCN++: B×C×H×W → B×map_size×map_size map (ReLU output)."""

    def __init__(self, in_channels: int = 3, map_size: int = 32, variant: Literal["cdcn", "cdcn++"] = "cdcn",
                 theta: float = 0.7, conv: ConvFactory | None = None, input_code: str = "rgb",
                 input_mean: float = 0.5, input_std: float = 0.5) -> None:
        super().__init__()
        if variant not in ("cdcn", "cdcn++"):
            raise ValueError(f"CDCN variant must be 'cdcn' or 'cdcn++', got {variant!r}")
        conv = conv or cdc_factory(theta)
        self.variant = variant
        self.map_size = map_size
        self.in_channels = in_channels
        # input_code "lbp": the LBP comparison bits instead of pixels
        self.encode = input_encoder(input_code, in_channels, input_mean, input_std)
        stem_in = getattr(self.encode, "out_channels", in_channels)
        if variant == "cdcn":
            self.trunk = CDCNTrunk(stem_in, conv, CDCN_STEM, CDCN_BLOCKS)
            self.head = _head(conv, self.trunk.out_channels, CDCN_HEAD)
        else:
            self.trunk = CDCNTrunk(stem_in, conv, CDCN_STEM, CDCNPP_BLOCKS, CDCNPP_ATTENTION_KERNELS)
            self.head = _head(conv, self.trunk.out_channels, CDCNPP_HEAD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, self.variant)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self.variant} was built for {self.in_channels} input channels, got {x.shape[1]}")
        return _resize(self.head(self.trunk(self.encode(x))), self.map_size).squeeze(1)


class MultiModalCDCN(nn.Module):
    """Multi-modal CDCN (Yu et al., CVPR-W 2020). Input: B×3M×H×W, modalities stacked as 3-channel groups in
    the order of ``modalities``. Output: B×map_size×map_size.

    * ``fusion="feature"``: one unshared CDCN(++) trunk per modality; as in the official code
      (``CDCN_3modality2``) each branch's 384-channel multi-level features go through its own CDC 384→128
      (+BN+ReLU), the M results are concatenated (128·M channels) and a shared head CDC 128·M→128 (+BN+ReLU),
      CDC 128→1 (+ReLU) gives one map. One deliberate difference: the official ``CDCN_3modality2.forward``
      builds the third branch's block-2 multi-level feature from the FIRST (RGB) branch
      (``x_Block2_32x32_M3 = downsample32x32(x_Block2_M1)``), a copy-paste bug; here every branch uses its
      own features, as the paper describes (see docs/faithfulness.md).
    * ``fusion="input"``: one CDCN(++) whose stem takes all 3·M channels.
    * ``fusion="score"``: one full single-modality CDCN(++) per modality; ``forward`` returns
      Σ_m w_m·map_m with the weights normalised to sum 1. Since the score is the mean of the map and the mean
      is linear, mean(Σ w_m map_m) = Σ w_m·score_m: the weighted sum of per-modality scores.
      :meth:`branch_maps` (or ``forward(x, branches=True)``) returns B×M×h×w so each branch is supervised by
      its own loss, as the paper trains each modality separately.
    """

    score_weights: torch.Tensor  # buffer of score fusion (w_m, summing to 1)

    def __init__(self, modalities: Sequence[str] = ("rgb", "depth", "ir"),
                 fusion: Literal["feature", "input", "score"] = "feature",
                 score_weights: Sequence[float] | None = None, backbone: Literal["cdcn", "cdcn++"] = "cdcn",
                 theta: float = 0.7, map_size: int = 32, conv: ConvFactory | None = None) -> None:
        super().__init__()
        modalities = tuple(modalities)
        bad = [m for m in modalities if m not in MODALITIES]
        if not modalities or bad or len(set(modalities)) != len(modalities):
            raise ValueError(f"cdcn-mm modalities must be a non-empty subset of {MODALITIES} without repeats, "
                             f"got {list(modalities)}")
        if fusion not in ("feature", "input", "score"):
            raise ValueError(f"cdcn-mm fusion must be 'feature', 'input' or 'score', got {fusion!r}")
        if backbone not in ("cdcn", "cdcn++"):
            raise ValueError(f"cdcn-mm backbone must be 'cdcn' or 'cdcn++', got {backbone!r}")
        if score_weights is not None and fusion != "score":
            raise ValueError(f"cdcn-mm score_weights only apply to fusion='score' (fusion is {fusion!r})")
        self.modalities = modalities
        self.fusion = fusion
        #: True when :meth:`branch_maps` is available (score fusion): the pixelwise method then sums
        #: one loss per branch.
        self.has_branches = fusion == "score"
        self.backbone = backbone
        self.map_size = map_size
        m = len(modalities)
        conv = conv or cdc_factory(theta)
        if fusion == "score":
            weights = [1.0] * m if score_weights is None else [float(w) for w in score_weights]
            if len(weights) != m or any(w < 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(f"cdcn-mm score_weights must be {m} non-negative numbers (one per modality "
                                 f"{list(modalities)}) with a positive sum, got {score_weights!r}")
            total = sum(weights)
            self.register_buffer("score_weights", torch.tensor([w / total for w in weights]), persistent=False)
            self.nets = nn.ModuleList(CDCN(3, map_size, backbone, theta, conv) for _ in modalities)
        elif fusion == "input":
            self.net = CDCN(3 * m, map_size, backbone, theta, conv)
        else:
            if backbone == "cdcn":
                trunks = [CDCNTrunk(3, conv, CDCN_STEM, CDCN_BLOCKS) for _ in modalities]
            else:
                trunks = [CDCNTrunk(3, conv, CDCN_STEM, CDCNPP_BLOCKS, CDCNPP_ATTENTION_KERNELS) for _ in modalities]
            self.trunks = nn.ModuleList(trunks)
            feat = trunks[0].out_channels
            self.reduce = nn.ModuleList(nn.Sequential(*_conv_bn_relu(conv, feat, 128)) for _ in modalities)
            self.head = _head(conv, 128 * m, (128,))

    def _split(self, x: torch.Tensor) -> list[torch.Tensor]:
        _check_size(x, "cdcn-mm")
        m = len(self.modalities)
        if x.shape[1] != 3 * m:
            raise ValueError(f"cdcn-mm with modalities {list(self.modalities)} expects {3 * m} input channels "
                             f"(3 per modality), got {x.shape[1]}")
        return list(x.split(3, dim=1))

    def branch_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-modality maps B×M×h×w (score fusion only)."""
        if self.fusion != "score":
            raise RuntimeError(f"branch_maps needs fusion='score' (this model uses fusion={self.fusion!r})")
        return torch.stack([net(xi) for net, xi in zip(self.nets, self._split(x), strict=True)], dim=1)

    def forward(self, x: torch.Tensor, branches: bool = False) -> torch.Tensor:
        if branches:
            return self.branch_maps(x)
        if self.fusion == "score":
            maps = self.branch_maps(x)
            return (maps * self.score_weights.to(maps.dtype).view(1, -1, 1, 1)).sum(dim=1)
        if self.fusion == "input":
            _check_size(x, "cdcn-mm")
            return self.net(x)
        parts = self._split(x)
        feats = [red(trunk(xi)) for trunk, red, xi in zip(self.trunks, self.reduce, parts, strict=True)]
        return _resize(self.head(torch.cat(feats, dim=1)), self.map_size).squeeze(1)


@register_model("cdcn")
def cdcn(in_channels: int = 3, map_size: int = 32, theta: float = 0.7, input_code: str = "rgb",
         input_mean: float = 0.5, input_std: float = 0.5) -> CDCN:
    """CDCN (Yu et al. CVPR 2020), 3×3 CDC with ``theta`` (θ = 0 → plain convolutions); ``input_code="lbp"``: the
    LBP comparison bits of Y, Cb, Cr instead of pixels (an openfas option, not in the paper)."""
    return CDCN(in_channels=in_channels, map_size=map_size, variant="cdcn", theta=theta, input_code=input_code,
                input_mean=input_mean, input_std=input_std)


@register_model("cdcn++")
def cdcn_pp(in_channels: int = 3, map_size: int = 32, theta: float = 0.7, input_code: str = "rgb",
            input_mean: float = 0.5, input_std: float = 0.5) -> CDCN:
    """CDCN++ (searched backbone + multiscale attention fusion, Yu et al. CVPR 2020); ``input_code`` as for cdcn."""
    return CDCN(in_channels=in_channels, map_size=map_size, variant="cdcn++", theta=theta, input_code=input_code,
                input_mean=input_mean, input_std=input_std)


@register_model("cdcn-mm")
def cdcn_mm(modalities: tuple[str, ...] = ("rgb", "depth", "ir"),
            fusion: Literal["feature", "input", "score"] = "feature",
            score_weights: tuple[float, ...] | None = None, backbone: Literal["cdcn", "cdcn++"] = "cdcn",
            theta: float = 0.7, map_size: int = 32) -> MultiModalCDCN:
    """Multi-modal CDCN (Yu et al. CVPR-W 2020) with feature-, input- or score-level fusion."""
    return MultiModalCDCN(modalities=modalities, fusion=fusion, score_weights=score_weights, backbone=backbone,
                          theta=theta, map_size=map_size)
