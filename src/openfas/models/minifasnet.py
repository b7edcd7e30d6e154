"""MiniFASNet-class light liveness classifiers for deployment (≈0.1–0.5 M parameters, 80×80 input).

The family follows the design of the Silent-Face-Anti-Spoofing MiniFASNets (MobileFaceNet-style: a strided stem,
inverted-residual depthwise-separable blocks, a global depthwise convolution instead of global pooling, a
128-d embedding and a 2-way live/spoof classifier); the code is written from that description, not copied.
Activations are ReLU, not Silent-Face's PReLU: ONNX Runtime fuses Conv+ReLU, while its separate PRelu kernel took
52 % of the CPU inference time of this network (one thread, 80×80; the whole model ran 4× faster with ReLU).

* ``forward(x)`` → B×2 logits (index 1 = live); the liveness score is ``softmax(logits)[:, 1]``.
* ``forward(x, aux=True)`` → ``(logits, aux_map)``: a small head on the stride-8 features predicts a 1-channel
  map (10×10 for 80×80 input). Training methods give it a target: the Fourier spectrum of the input
  (:mod:`openfas.methods.binary`, as Silent-Face does) or a pixel-wise teacher's map
  (:mod:`openfas.methods.distill`). Only the plain forward is exported, so the head costs nothing at inference.

Variants: ``minifasnet`` (width 1.0, 0.49 M parameters incl. the 0.014 M auxiliary head) and ``minifasnet-s``
(width 0.5, 0.14 M).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from openfas.models._registry import register_model


def _conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True,
             padding: int | None = None) -> nn.Sequential:
    pad = k // 2 if padding is None else padding
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1×1 expansion → 3×3 depthwise (stride s) → 1×1 linear projection; identity shortcut when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expansion: int = 2) -> None:
        super().__init__()
        mid = cin * expansion
        self.block = nn.Sequential(_conv_bn(cin, mid), _conv_bn(mid, mid, 3, stride, groups=mid),
                                   _conv_bn(mid, cout, act=False))
        self.shortcut = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.shortcut else y


def _stage(cin: int, cout: int, n: int, expansion: int) -> nn.Sequential:
    return nn.Sequential(InvertedResidual(cin, cout, 2, expansion),
                         *[InvertedResidual(cout, cout, 1, expansion) for _ in range(n - 1)])


class MiniFASNet(nn.Module):
    """Stem (stride 2) + depthwise conv, three inverted-residual stages (strides 2, 2, 2: 80 → 5), 1×1 conv,
    global depthwise conv over the whole 5×5 map, 128-d embedding, 2-way classifier."""

    def __init__(self, in_channels: int = 3, width: float = 1.0, image_size: int = 80, embedding: int = 128,
                 expansion: int = 2, depths: tuple[int, int, int] = (2, 4, 2), dropout: float = 0.2) -> None:
        super().__init__()
        self.image_size = image_size
        if image_size % 16:
            raise ValueError(f"minifasnet: image_size must be a multiple of 16, got {image_size}")
        c = [max(8, int(round(v * width / 8)) * 8) for v in (32, 64, 128, 128, 256)]
        self.stem = nn.Sequential(_conv_bn(in_channels, c[0], 3, 2), _conv_bn(c[0], c[0], 3, 1, groups=c[0]))
        self.stage1 = _stage(c[0], c[1], depths[0], expansion)  # stride 4
        self.stage2 = _stage(c[1], c[2], depths[1], expansion)  # stride 8: the auxiliary head reads this
        self.stage3 = _stage(c[2], c[3], depths[2], expansion)  # stride 16
        self.expand = _conv_bn(c[3], c[4])
        side = image_size // 16
        self.gdc = _conv_bn(c[4], c[4], side, 1, groups=c[4], act=False, padding=0)  # global depthwise: 1 pixel
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(c[4], embedding, bias=False), nn.BatchNorm1d(embedding))
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(embedding, 2)
        half = max(8, c[2] // 4)
        self.aux_head = nn.Sequential(_conv_bn(c[2], half), _conv_bn(half, half, 3, groups=1),
                                      nn.Conv2d(half, 1, 1))

    def forward(self, x: torch.Tensor, aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"minifasnet was built for {self.image_size}×{self.image_size} input, got "
                             f"{tuple(x.shape[-2:])}; set model.image_size to data.image_size")
        f8 = self.stage2(self.stage1(self.stem(x)))
        z = self.gdc(self.expand(self.stage3(f8)))
        logits = self.classifier(self.drop(self.embed(z)))
        if aux:
            return logits, self.aux_head(f8).squeeze(1)
        return logits


@register_model("minifasnet")
def minifasnet(in_channels: int = 3, width: float = 1.0, image_size: int = 80, embedding: int = 128,
               expansion: int = 2, dropout: float = 0.2) -> MiniFASNet:
    return MiniFASNet(in_channels, width, image_size, embedding, expansion, dropout=dropout)


@register_model("minifasnet-s")
def minifasnet_s(in_channels: int = 3, width: float = 0.5, image_size: int = 80, embedding: int = 128,
                 expansion: int = 2, dropout: float = 0.2) -> MiniFASNet:
    return MiniFASNet(in_channels, width, image_size, embedding, expansion, dropout=dropout)
