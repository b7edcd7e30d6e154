"""Face-recognition networks: an IResNet trunk, the plain CosFace embedding net and CSDN.

* :class:`IResNet` – the "improved" pre-activation residual trunk of ArcFace (Deng et al., CVPR 2019):
  ``BN → conv3×3 → BN → PReLU → conv3×3(stride) → BN`` blocks. ``depth`` picks the published layouts
  (18/34/50/100); ``layers``/``widths`` give small CPU variants. Output: a C×h×w feature map
  (the "feature-map generator" of CSDN).
* :class:`FaceEmbeddingNet` – trunk → BN → flatten → n dropout blocks (Dropout → Linear → BN1d), each giving a
  sub-embedding e_i and, through the shared CosFace head, a sub-decision (class logits). With one block and no
  concept branch it is the standard IResNet output layer (the CosFace baseline, registered as ``iresnet``).
  With n blocks and the concept branch (a small MLP on the flattened features, softmax over n) it is the
  Consistent Sub-Decision Network (Zhao et al., IEEE SPL 2022), registered as ``csdn``: the weighted embedding
  ``e = Σ_i w_i e_i`` is the face embedding. The paper is closed access: the block layout, the dropout rates
  and the concept-branch design here are our reconstruction from its abstract (see
  ``configs/recognition/csdn_synth.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from openfas.models._registry import register_model
from openfas.ops.cosface import CosFaceHead

_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}


class IBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (x if self.short is None else self.short(x))


class IResNet(nn.Module):
    """Four stride-2 stages after a stride-1 stem: 112 px → 7×7, 64 px → 4×4 maps."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), widths: tuple[int, ...] = (64, 128, 256, 512),
                 in_channels: int = 3) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"layers {layers} and widths {widths} must have the same length")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0]))
        blocks: list[nn.Module] = []
        cin = widths[0]
        for n, cout in zip(layers, widths, strict=True):
            for k in range(n):
                blocks.append(IBasicBlock(cin, cout, 2 if k == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.out_channels = cin
        self.reduction = 2 ** len(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


@dataclass
class RecognitionOutput:
    """What a recognition net returns. n = number of sub-decisions (1 for the plain net)."""

    embedding: torch.Tensor  # N×D, the face embedding (weighted sum of the sub-embeddings)
    branch_embeddings: torch.Tensor  # N×n×D
    weights: torch.Tensor  # N×n, concept-branch weights w_i (rows sum to 1; all ones for n = 1)
    cosine: torch.Tensor  # N×C, cos θ of ``embedding`` to the class centres
    branch_cosine: torch.Tensor  # N×n×C, cos θ of each sub-embedding (the sub-decisions before scaling)


class RecognitionNet(nn.Module):
    """What the recognition methods (cosface, csdn) need of a model: ``forward`` → :class:`RecognitionOutput`,
    ``num_branches`` sub-decisions, ``embedding_dim`` and the CosFace class centres ``head``."""

    num_branches: int
    embedding_dim: int
    head: CosFaceHead
    concept: nn.Module | None

    def combine_sub_decisions(self, f: torch.Tensor, branch: torch.Tensor) -> RecognitionOutput:
        """CSDN's fusion of the n sub-decisions ``branch`` (N×n×D) of features ``f``: concept weights
        ``softmax(concept(f))`` (uniform 1/n without a concept branch), embedding = weighted sum, plus the
        CosFace cosines of the embedding and of every sub-decision."""
        if self.concept is None:
            w = torch.full(branch.shape[:2], 1.0 / self.num_branches, device=branch.device, dtype=branch.dtype)
        else:
            w = torch.softmax(self.concept(f).float(), dim=1).to(branch.dtype)
        emb = (w.unsqueeze(-1) * branch).sum(1)
        return RecognitionOutput(embedding=emb, branch_embeddings=branch, weights=w,
                                 cosine=self.head.cosine(emb), branch_cosine=self.head.cosine(branch))


class FaceEmbeddingNet(RecognitionNet):
    """Trunk + n dropout blocks (+ concept branch) + CosFace class centres; see the module docstring."""

    region_masks: torch.Tensor  # buffer: n × (C·h·w) input masks of the blocks

    def __init__(self, image_size: int = 112, embedding_dim: int = 512, num_classes: int = 2,
                 layers: tuple[int, ...] = (2, 2, 2, 2), widths: tuple[int, ...] = (64, 128, 256, 512),
                 dropout_rates: tuple[float, ...] = (0.4,), concept: bool = False, concept_hidden: int = 128,
                 in_channels: int = 3, regions: str = "all") -> None:
        super().__init__()
        if regions not in ("all", "bands"):
            raise ValueError(f"regions={regions!r}: use 'all' or 'bands'")
        if not dropout_rates:
            raise ValueError("dropout_rates must name at least one dropout block")
        if concept and len(dropout_rates) < 2:
            raise ValueError("the concept branch weighs several sub-decisions: give >= 2 dropout_rates")
        self.trunk = IResNet(tuple(layers), tuple(widths), in_channels)
        side = -(-image_size // self.trunk.reduction)
        self.feature_shape = (self.trunk.out_channels, side, side)
        flat = self.trunk.out_channels * side * side
        self.bn = nn.BatchNorm2d(self.trunk.out_channels)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Dropout(p), nn.Linear(flat, embedding_dim), nn.BatchNorm1d(embedding_dim))
            for p in dropout_rates)
        self.concept = None
        if concept:
            self.concept = nn.Sequential(nn.Linear(flat, concept_hidden), nn.PReLU(concept_hidden),
                                         nn.Linear(concept_hidden, len(dropout_rates)))
        # regions="bands": block i sees only horizontal band i of n overlapping bands of the feature map (top =
        # eyes, bottom = mouth/chin), a structured reading of "sub-decisions for different facial regions".
        n = len(dropout_rates)
        band = torch.ones(n, *self.feature_shape)
        if regions == "bands" and n > 1:
            band.zero_()
            for i in range(n):
                lo = (i * side) // (n + 1)
                hi = max(lo + 1, ((i + 2) * side + n) // (n + 1))
                band[i, :, lo:hi] = 1.0
        self.register_buffer("region_masks", band.flatten(1), persistent=False)
        self.regions = regions
        self.head = CosFaceHead(embedding_dim, num_classes)
        self.embedding_dim = embedding_dim
        self.num_branches = len(dropout_rates)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened feature map (N × C·h·w)."""
        return torch.flatten(self.bn(self.trunk(x)), 1)

    def forward(self, x: torch.Tensor) -> RecognitionOutput:
        f = self.features(x)
        if self.regions == "bands":
            branch = torch.stack([blk(f * self.region_masks[i]) for i, blk in enumerate(self.blocks)], 1)
        else:
            branch = torch.stack([blk(f) for blk in self.blocks], 1)  # N×n×D
        return self.combine_sub_decisions(f, branch)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Face embeddings (N×D, not normalised) of a normalised N×3×H×W batch."""
        return self.forward(x).embedding


def _layout(depth: int | None, layers: tuple[int, ...] | None) -> tuple[int, ...]:
    if layers is not None:
        return tuple(layers)
    if depth not in _DEPTHS:
        raise ValueError(f"depth {depth} not one of {sorted(_DEPTHS)}; or give layers=[...]")
    return _DEPTHS[depth]


@register_model("iresnet")
def iresnet(image_size: int = 112, num_classes: int = 2, embedding_dim: int = 512, depth: int | None = 18,
            layers: tuple[int, ...] | None = None, widths: tuple[int, ...] = (64, 128, 256, 512),
            dropout: float = 0.4, in_channels: int = 3) -> FaceEmbeddingNet:
    """IResNet + one dropout/FC/BN output layer + CosFace centres: the single-decision baseline."""
    return FaceEmbeddingNet(image_size, embedding_dim, num_classes, _layout(depth, layers), tuple(widths),
                            (dropout,), concept=False, in_channels=in_channels)


@register_model("csdn")
def csdn(image_size: int = 112, num_classes: int = 2, embedding_dim: int = 512, depth: int | None = 18,
         layers: tuple[int, ...] | None = None, widths: tuple[int, ...] = (64, 128, 256, 512),
         dropout_rates: tuple[float, ...] = (0.2, 0.4, 0.6), concept_hidden: int = 128,
         in_channels: int = 3, regions: str = "all") -> FaceEmbeddingNet:
    """Consistent Sub-Decision Network: n = len(dropout_rates) sub-decisions weighted by a concept branch.

    The rates (0.2, 0.4, 0.6) are our assumption (the paper's values are not public). ``regions``: "all" (every
    block sees the whole flattened map; blocks differ by dropout rate and weights) or "bands" (block i sees
    horizontal band i of the map).
    """
    return FaceEmbeddingNet(image_size, embedding_dim, num_classes, _layout(depth, layers), tuple(widths),
                            tuple(dropout_rates), concept=True, concept_hidden=concept_hidden,
                            in_channels=in_channels, regions=regions)
