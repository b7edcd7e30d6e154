"""Base of convolutions whose operator is a per-call update of the kernel (CDC, LDC): one ``F.conv2d`` with the
updated kernel, and :meth:`FoldedKernelConv2d.fuse` to bake the update into a plain ``nn.Conv2d`` for export."""

from __future__ import annotations

import torch
import torch.nn as nn


class FoldedKernelConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (odd kernel, so it has a centre tap) that convolves with :meth:`folded_weight`.

    Subclasses implement :meth:`folded_weight`; ``weight`` keeps the ``nn.Conv2d`` name and layout.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int], padding: int | tuple[int, int] | str,
                 dilation: int | tuple[int, int], groups: int, bias: bool) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        require_centre_tap(self.kernel_size, type(self).__name__)

    def folded_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.folded_weight(), self.bias)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` holding the folded kernel: same output, no per-call kernel update."""
        padding = self.padding if isinstance(self.padding, str) else _pair(self.padding)
        conv = nn.Conv2d(self.in_channels, self.out_channels, _pair(self.kernel_size), stride=_pair(self.stride),
                         padding=padding, dilation=_pair(self.dilation), groups=self.groups,
                         bias=self.bias is not None, padding_mode=self.padding_mode,
                         device=self.weight.device, dtype=self.weight.dtype)
        conv.weight.copy_(self.folded_weight())
        if self.bias is not None and conv.bias is not None:
            conv.bias.copy_(self.bias)
        conv.train(self.training)
        return conv


def require_centre_tap(kernel_size: tuple[int, ...], operator: str) -> None:
    """Raise ``ValueError`` naming ``operator`` unless the (height, width) ``kernel_size`` is odd in both sides."""
    kh, kw = _pair(kernel_size)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"{operator} needs an odd kernel size (a centre tap), got {kh}×{kw}")


def centre_tap(weight: torch.Tensor, operator: str) -> torch.Tensor:
    """The k×k centre selector c of ``weight`` (out×in×k×k, odd k): 1 at the centre tap, 0 elsewhere, in
    ``weight``'s dtype and device; ``operator`` names the convolution in the error for an even kernel."""
    kh, kw = weight.shape[-2:]
    require_centre_tap((kh, kw), operator)
    centre = weight.new_zeros(kh, kw)
    centre[kh // 2, kw // 2] = 1.0
    return centre


def _pair(size: tuple[int, ...]) -> tuple[int, int]:
    """A 2-d convolution's (height, width) setting (``nn.Conv2d`` stores them as tuples of any length)."""
    h, w = size
    return h, w
