"""Adaptive normalisation of ANRL (Liu et al., ACM MM 2021, Sec. 3.2).

Per layer, the batch-normalised and instance-normalised versions of a feature map are mixed with a
per-sample, per-channel balance factor computed from the input itself:

    λ = σ(W · GAP(x) + b),     y = λ ⊙ BN(x) + (1 − λ) ⊙ IN(x)

(``AdapNorm_attention_flag = 1layer`` of the official code: one fully connected layer C → C on the globally
average-pooled, pre-normalisation features; ``2layer`` is C → C/16+1 → C with a ReLU.) The gate's
parameters are the ones ANRL's meta-learning adapts in its inner step.

Computation. Both normalisations are affine in x per (sample, channel), so the mix is one affine map
y = A ⊙ x + B with per-(sample, channel) A = λ γ_B / σ_B + (1 − λ) γ_I / σ_I and
B = λ (β_B − μ_B γ_B / σ_B) + (1 − λ) (β_I − μ_I γ_I / σ_I). The forward takes the instance statistics μ_I, σ²_I
in one pass over x, derives the batch statistics from them (μ_B = mean of μ_I; σ²_B = mean of σ²_I plus the
variance of μ_I over the batch, exact for equal-sized maps) and touches the full-size map once more for A ⊙ x + B.
That is the same function (and gradient) as running ``nn.BatchNorm2d`` and ``nn.InstanceNorm2d`` separately and
mixing their outputs, with fewer full-size intermediate tensors, which makes the second-order meta-gradient about
twice as cheap in this layer. The ``bn`` / ``inorm`` submodules hold the parameters and BatchNorm's running
statistics (updated exactly as ``nn.BatchNorm2d`` does), so checkpoints are unchanged;
``test_adaptive_norm_fused_equals_separate_norms`` compares values, running statistics and gradients with the
plain two-module form.
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

    def _batch_stats(self, mu_i: torch.Tensor, var_i: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, variance) BatchNorm normalises with, updating its running statistics as ``nn.BatchNorm2d``."""
        bn = self.bn
        use_batch = bn.training or bn.running_mean is None or bn.running_var is None
        if not use_batch:
            assert bn.running_mean is not None and bn.running_var is not None
            return bn.running_mean, bn.running_var
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got {n} (BatchNorm2d)")
        mu_b = mu_i.mean(0)
        var_b = var_i.mean(0) + ((mu_i - mu_b) ** 2).mean(0)  # law of total variance (equal-sized maps)
        if bn.training and bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None:
            factor = 0.0 if bn.momentum is None else bn.momentum
            if bn.num_batches_tracked is not None:
                bn.num_batches_tracked.add_(1)
                if bn.momentum is None:  # cumulative moving average
                    factor = 1.0 / float(bn.num_batches_tracked)
            with torch.no_grad():
                bn.running_mean.mul_(1 - factor).add_(mu_b.detach().to(bn.running_mean.dtype), alpha=factor)
                unbiased = var_b.detach().to(bn.running_var.dtype) * (n / (n - 1))
                bn.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return mu_b, var_b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"AdaptiveNorm2d expects a B×C×H×W input, got shape {tuple(x.shape)}")
        stats = x if x.dtype in (torch.float32, torch.float64) else x.float()  # statistics in float32 under AMP
        var_i, mu_i = torch.var_mean(stats, dim=(2, 3), unbiased=False)
        lam = torch.sigmoid(self.gate(mu_i.to(x.dtype))).to(mu_i.dtype)  # GAP(x) is the instance mean
        mu_b, var_b = self._batch_stats(mu_i, var_i, x.shape[0] * x.shape[2] * x.shape[3])
        a_b = self.bn.weight * torch.rsqrt(var_b + self.bn.eps)  # C
        a_i = self.inorm.weight * torch.rsqrt(var_i + self.inorm.eps)  # B×C
        scale = lam * a_b + (1 - lam) * a_i
        shift = lam * (self.bn.bias - mu_b * a_b) + (1 - lam) * (self.inorm.bias - mu_i * a_i)
        return torch.addcmul(shift.to(x.dtype)[:, :, None, None], x, scale.to(x.dtype)[:, :, None, None])
