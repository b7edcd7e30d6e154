"""The CosFace large-margin cosine head (Wang et al., CVPR 2018, Eq. 4): logits ``s·(cos θ_j − m·[j = y])``
between L2-normalised embeddings and L2-normalised class centres. A building block of recognition models
(:mod:`openfas.models.iresnet`); the loss is the cross-entropy of these logits."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class CosFaceHead(nn.Module):
    """Class centres ``W`` (num_classes × dim); :meth:`cosine` gives cos θ, ``forward`` the CosFace logits."""

    def __init__(self, embedding_dim: int, num_classes: int, s: float = 32.0, m: float = 0.35) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"CosFace needs at least 2 classes, got num_classes={num_classes}")
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.normal_(self.weight, std=0.01)
        self.s, self.m = float(s), float(m)

    def cosine(self, embedding: torch.Tensor) -> torch.Tensor:
        """cos θ between each embedding (…×D) and every class centre: …×C, clamped to [−1, 1]."""
        e = F.normalize(embedding.float(), dim=-1)
        w = F.normalize(self.weight.float(), dim=-1)
        return (e @ w.t()).clamp(-1.0, 1.0)

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cosface_logits(self.cosine(embedding), labels, self.s, self.m)


def cosface_logits(cosine: torch.Tensor, labels: torch.Tensor, s: float, m: float) -> torch.Tensor:
    """``s·(cos θ_j − m·[j = y])`` (CosFace Eq. 4); ``cosine`` is N×C, ``labels`` N."""
    margin = F.one_hot(labels.long(), cosine.shape[-1]).to(cosine.dtype) * m
    return s * (cosine - margin)
