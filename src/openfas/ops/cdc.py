"""Central difference convolution (CDC), Yu et al., "Searching Central Difference Convolutional Networks
for Face Anti-Spoofing", CVPR 2020, Eq. (2)/(3).

Eq. (3): y(p0) = θ·Σ_n w(p_n)·(x(p0+p_n) − x(p0)) + (1−θ)·Σ_n w(p_n)·x(p0+p_n)
              = Σ_n w(p_n)·x(p0+p_n) − θ·(Σ_n w(p_n))·x(p0).

The official code evaluates this as two convolutions (a k×k conv minus θ times a 1×1 conv whose kernel is
the spatial sum of w). Because the second term only touches the window centre, it is the same as ONE
convolution whose kernel has θ·Σ_n w(p_n) subtracted at its centre tap; :class:`CDConv2d` does that, so a
CDC layer costs one convolution plus a tiny kernel update per call, and :meth:`CDConv2d.fuse` folds the
update once for deployment.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.ops.folded_conv import FoldedKernelConv2d, centre_tap


def cdc_kernel(weight: torch.Tensor, theta: float) -> torch.Tensor:
    """Fold Eq. (3) into one kernel: ``weight`` with θ·Σ_{spatial} w subtracted at the centre tap.

    ``weight`` is out×in×k×k with odd k. Differentiable in ``weight``.
    """
    centre = centre_tap(weight, "central difference convolution")
    if theta == 0.0:
        return weight
    return weight - (theta * weight.sum(dim=(2, 3), keepdim=True)) * centre


class CDConv2d(FoldedKernelConv2d):
    """Central difference convolution, Eq. (3) of Yu et al. 2020, computed as one ``F.conv2d``.

    ``theta`` = 0 is a plain convolution; θ = 0.7 is the paper's default. p0 is the centre of each kernel
    window, so the result is exact for any odd kernel size, stride, dilation and padding: for the usual
    "same" padding (padding = dilation·(k−1)/2) it equals the official two-convolution form, including at
    zero-padded borders (the centre of a window is never a padded pixel). A 1×1 CDC is (1−θ)·conv.
    An optional bias is added once (the official code would scale it by (1−θ); all CDCN layers use none).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 1,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        theta: float = 0.7,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"CDConv2d theta must be in [0, 1], got {theta}")
        self.theta = float(theta)

    def folded_weight(self) -> torch.Tensor:
        return cdc_kernel(self.weight, self.theta)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", theta={self.theta}"


class TwoConvCDC(nn.Module):
    """Reference two-convolution CDC as in the official code: conv(x, w) − θ·conv₁ₓ₁(x, Σw).

    Used by the benchmark and tests as the baseline; holds the same ``weight`` layout as :class:`CDConv2d`.
    Only valid for "same" padding (padding = dilation·(k−1)/2), like the official code.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, bias: bool = False, theta: float = 0.7) -> None:
        super().__init__()
        if padding != (kernel_size - 1) // 2 or kernel_size % 2 == 0:
            raise ValueError("TwoConvCDC needs an odd kernel with padding (k-1)/2")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.theta = float(theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.theta == 0.0:
            return out
        kernel_diff = self.conv.weight.sum(dim=(2, 3), keepdim=True)
        diff = F.conv2d(x, kernel_diff, stride=self.conv.stride, padding=0)
        return out - self.theta * diff
