"""Learnable descriptive convolution (LDC), Huang et al., "Learnable Descriptive Convolutional Network for Face
Anti-Spoofing", BMVC 2022 (official code huiyu8794/LDCNet, ``conv3x3_learn`` in ``models/LDCN.py`` and the
basic block of ``models/Learnable_Res18.py``).

LDC generalises central difference convolution (CDC, :mod:`openfas.ops.cdc`) with a learnable weight m[o, i]
per (output, input) channel pair and a learnable scalar θ. As the official code computes it, the kernel is
rescaled by a mask before ONE convolution:

    mask[o, i, u, v] = 1 − θ · m[o, i] · c[u, v] · Σ_{u', v'} w[o, i, u', v']
    w'               = w ⊙ mask,          y = conv(x, w')

with c the fixed centre selector (1 at the kernel centre, 0 elsewhere). Only the centre tap changes:
w'_centre = w_centre · (1 − θ·m·Σw). m is initialised to 1 and θ to 0.5; both are trained (as is w, and the
gradient flows through Σw as well, exactly as in the official forward). Note the difference to CDC, whose centre
tap is w_centre − θ·Σw (additive); LDC's is multiplicative in w_centre.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from openfas.ops.folded_conv import FoldedKernelConv2d, centre_tap


def ldc_kernel(weight: torch.Tensor, learnable_mask: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The folded LDC kernel w ⊙ (1 − θ·m·c·Σ_kernel w) for ``weight`` out×in×k×k (odd k), ``learnable_mask``
    out×in and ``theta`` a one-element tensor. Differentiable in all three."""
    centre = centre_tap(weight, "learnable descriptive convolution")
    if learnable_mask.shape != weight.shape[:2]:
        raise ValueError(f"learnable_mask must have shape {tuple(weight.shape[:2])} (out × in), "
                         f"got {tuple(learnable_mask.shape)}")
    kernel_sum = weight.sum(dim=(2, 3), keepdim=True)
    mask = 1.0 - theta.reshape(1, 1, 1, 1) * learnable_mask[:, :, None, None] * centre * kernel_sum
    return weight * mask


class LDConv2d(FoldedKernelConv2d):
    """Learnable descriptive convolution (Huang et al. 2022, official ``conv3x3_learn``), one ``F.conv2d``.

    Parameters beyond ``nn.Conv2d``: ``learnable_mask`` (out × in/groups, init 1) and ``theta`` (shape [1],
    init 0.5). ``weight`` keeps the ``nn.Conv2d`` name and layout, so ImageNet ResNet weights load into it
    directly. :meth:`fuse` returns a plain ``nn.Conv2d`` with the folded kernel for deployment.
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
        theta: float = 0.5,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.learnable_mask = nn.Parameter(torch.ones(out_channels, in_channels // groups))
        self.theta = nn.Parameter(torch.full((1,), float(theta)))

    def folded_weight(self) -> torch.Tensor:
        return ldc_kernel(self.weight, self.learnable_mask, self.theta)
