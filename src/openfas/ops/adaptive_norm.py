"""Adaptive normalisation of ANRL (Liu et al., ACM MM 2021, Sec. 3.2).

Per layer, the batch-normalised and instance-normalised versions of a feature map are mixed with a
per-sample, per-channel balance factor computed from the input itself:

    λ = σ(W · GAP(x) + b),     y = λ ⊙ BN(x) + (1 − λ) ⊙ IN(x)

(``AdapNorm_attention_flag = 1layer`` of the official code: one fully connected layer C → C on the globally
average-pooled, pre-normalisation features; ``2layer`` is C → C/16+1 → C with a ReLU.) The gate's
parameters are the ones ANRL's meta-learning adapts in its inner step.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class AdaptiveNorm2d(nn.Module):
    """λ·BN(x) + (1−λ)·IN(x) with λ = sigmoid(gate(GAP(x))) per sample and channel."""

    def __init__(self, channels: int, gate_layers: int = 1) -> None:
        super().__init__()
        if gate_layers not in (1, 2):
            raise ValueError(f"gate_layers must be 1 or 2, got {gate_layers}")
        self.bn = nn.BatchNorm2d(channels)
        self.inorm = nn.InstanceNorm2d(channels, affine=True)
        if gate_layers == 1:
            self.gate = nn.Sequential(nn.Linear(channels, channels))
        else:
            hidden = channels // 16 + 1
            self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def balance(self, x: torch.Tensor) -> torch.Tensor:
        """The balance factor λ, ``B×C×1×1`` in (0, 1)."""
        return torch.sigmoid(self.gate(x.mean(dim=(2, 3))))[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.balance(x)
        return lam * self.bn(x) + (1.0 - lam) * self.inorm(x)
