"""ANRL networks (Liu et al., "Adaptive Normalized Representation Learning for Generalizable Face
Anti-Spoofing", ACM MM 2021; official code in Tencent TFace ``security/tasks/Face-Anti-Spoofing/ANRL``).

* feature extractor with adaptive normalisation (:class:`openfas.ops.adaptive_norm.AdaptiveNorm2d` after every
  conv): conv 6 → 64, then three blocks of conv → 128 → 196 → 128 and a 2×2 max-pool; the outputs of blocks
  1–3 average-pooled to 32×32 and concatenated → 384 channels (the representation the Dual Calibration
  Constraints act on);
* classifier (plain BN): conv 384 → 128, max-pool, 128 → 256, max-pool, 256 → 512, global pool, Linear 512 → 2;
* depth estimator (plain BN): conv 384 → 128 → 64 → 1, each + BN + ReLU → 32×32.

Every conv is 3×3 with bias, followed by its normalisation and ReLU; init as the official code
(:meth:`ANRLNet.reset_parameters`). Input: normalised RGB; HSV is appended inside the model (the official
``img_mode: rgb_hsv``) with OpenCV's hue range by default, see :class:`openfas.ops.color.AppendHSV`.
Score = softmax(logits)[live], higher = more live.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.models._registry import register_model
from openfas.ops.adaptive_norm import AdaptiveNorm2d
from openfas.ops.color import AppendHSV


class ConvNormReLU(nn.Module):
    """3×3 conv (bias) → adaptive BN/IN mix (or plain BN) → ReLU."""

    def __init__(self, cin: int, cout: int, adaptive: bool, gate_layers: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=True)
        self.norm: nn.Module = AdaptiveNorm2d(cout, gate_layers) if adaptive else nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.norm(self.conv(x)))


class ANRLExtractor(nn.Module):
    def __init__(self, in_channels: int = 6, map_size: int = 32, adaptive: bool = True, gate_layers: int = 1) -> None:
        super().__init__()
        self.map_size = map_size

        def block(cin: int) -> nn.Sequential:
            return nn.Sequential(ConvNormReLU(cin, 128, adaptive, gate_layers),
                                 ConvNormReLU(128, 196, adaptive, gate_layers),
                                 ConvNormReLU(196, 128, adaptive, gate_layers), nn.MaxPool2d(2))

        self.stem = ConvNormReLU(in_channels, 64, adaptive, gate_layers)
        self.block1, self.block2, self.block3 = block(64), block(128), block(128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.block1(self.stem(x))
        x2 = self.block2(x1)
        x3 = self.block3(x2)
        s = self.map_size
        return torch.cat([F.adaptive_avg_pool2d(x1, s), F.adaptive_avg_pool2d(x2, s), F.adaptive_avg_pool2d(x3, s)], 1)


class ANRLClassifier(nn.Module):
    def __init__(self, in_channels: int = 384) -> None:
        super().__init__()
        self.features = nn.Sequential(
            ConvNormReLU(in_channels, 128, False), nn.MaxPool2d(2), ConvNormReLU(128, 256, False), nn.MaxPool2d(2),
            ConvNormReLU(256, 512, False), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(512, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class ANRLNet(nn.Module):
    """``forward`` returns ``{"logits": B×2 (index 1 = live), "depth": B×32×32, "feat": B×384×32×32}``."""

    def __init__(self, in_channels: int = 3, map_size: int = 32, input_hsv: bool = True, adaptive_norm: bool = True,
                 gate_layers: int = 1, input_mean: float = 0.5, input_std: float = 0.5, hsv_hue: str = "opencv",
                 init: str = "official") -> None:
        super().__init__()
        if init not in ("official", "kaiming_all"):
            raise ValueError(f"model.init must be 'official' or 'kaiming_all', got {init!r}")
        self.to_input = AppendHSV(input_mean, input_std, hue=hsv_hue) if input_hsv else nn.Identity()
        self.extractor = ANRLExtractor(in_channels + 3 if input_hsv else in_channels, map_size, adaptive_norm,
                                       gate_layers)
        self.classifier = ANRLClassifier(384)
        self.depth = nn.Sequential(ConvNormReLU(384, 128, False), ConvNormReLU(128, 64, False),
                                   ConvNormReLU(64, 1, False))
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "official") -> None:
        """``"official"`` (TFace ``init_weights(kaiming)`` applied to each conv and the classifier's fc only):
        Kaiming-normal (fan-in, gain √2) conv and fc weights, fc bias 0; conv biases, the adaptive-norm gates and
        all norm layers keep PyTorch's defaults. ``"kaiming_all"``: Kaiming weights and zero biases on every
        conv and linear layer, gates included (openfas's earlier init)."""
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) or (isinstance(m, nn.Linear) and (init == "kaiming_all"
                                                                          or name == "classifier.fc")):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None and (init == "kaiming_all" or isinstance(m, nn.Linear)):
                    nn.init.zeros_(m.bias)

    def heads(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.classifier(feat), "depth": self.depth(feat).squeeze(1), "feat": feat}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.extractor(self.to_input(x)))


@register_model("anrl")
def anrl(in_channels: int = 3, map_size: int = 32, input_hsv: bool = True, adaptive_norm: bool = True,
         gate_layers: int = 1, input_mean: float = 0.5, input_std: float = 0.5, hsv_hue: str = "opencv",
         init: str = "official") -> ANRLNet:
    """ANRL (ACM MM 2021). ``adaptive_norm=False`` gives the plain-BN ablation; ``hsv_hue`` and ``init`` see
    :class:`openfas.ops.color.AppendHSV` and :meth:`ANRLNet.reset_parameters`."""
    return ANRLNet(in_channels, map_size, input_hsv, adaptive_norm, gate_layers, input_mean, input_std, hsv_hue, init)
