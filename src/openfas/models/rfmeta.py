"""RFMetaFAS networks (Shao et al., "Regularized Fine-grained Meta Face Anti-spoofing", AAAI 2020).

Layer lists as in the official code (rshaojimmy/RFMetaFAS, ``models/DGFANet.py``):

* feature extractor: 3×3 conv (bias) + BN + ReLU, 6 → 64; three blocks of conv 128 → 196 → 128 (each
  + BN + ReLU) and a 2×2 max-pool; the outputs of blocks 1–3 are average-pooled to 32×32 and concatenated
  (384 channels) for the depth estimator, block 3's output (128×32×32 at 256² input) feeds the classifier;
* depth estimator (the domain-knowledge regulariser): 384 → 128 → 64 → 1, each conv + BN + ReLU → 32×32;
* meta learner / classifier ("FeatEmbedder"): conv blocks 128 → 128 (pool), 128 → 256 (pool), 256 → 512,
  global average pool, Linear 512 → 1 (a logit; live = 1). Its BatchNorm momentum is 1 in the official
  configuration (``bn_momentum``).

Input: the official loaders feed PIL RGB and PIL HSV of the face crop (6 channels) through ``ToTensor`` only, so
both halves are in [0, 1] with hue = angle / 360°. Here the model takes the usual normalised RGB, undoes the
normalisation and appends HSV itself (:class:`openfas.ops.color.AppendHSV`, ``input_range="unit"``), so that data
loading, export and deployment stay the same as for every other model. ``input_range="normalised"`` feeds
(v − 0.5)/0.5 instead (a documented deviation). Score = sigmoid(logit), higher = more live.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.models._registry import register_model
from openfas.ops.color import AppendHSV


def conv_bn_relu(cin: int, cout: int, bn_momentum: float = 0.1) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(cin, cout, 3, padding=1, bias=True),
        bn=nn.BatchNorm2d(cout, momentum=bn_momentum),
        relu=nn.ReLU(inplace=True),
    ))


class DownBlock(nn.Sequential):
    """conv cin→128, 128→196, 196→cout (each + BN + ReLU), then a 2×2 max-pool."""

    def __init__(self, cin: int, cout: int = 128) -> None:
        super().__init__(conv_bn_relu(cin, 128), conv_bn_relu(128, 196), conv_bn_relu(196, cout), nn.MaxPool2d(2))


class FeatureExtractor(nn.Module):
    """Returns (multi-level features B×384×32×32 for the depth estimator, block-3 features for the classifier)."""

    def __init__(self, in_channels: int = 6, map_size: int = 32) -> None:
        super().__init__()
        self.map_size = map_size
        self.stem = conv_bn_relu(in_channels, 64)
        self.block1, self.block2, self.block3 = DownBlock(64), DownBlock(128), DownBlock(128)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1 = self.block1(self.stem(x))
        x2 = self.block2(x1)
        x3 = self.block3(x2)
        size = self.map_size
        multi = torch.cat([F.adaptive_avg_pool2d(x1, size), F.adaptive_avg_pool2d(x2, size),
                           F.adaptive_avg_pool2d(x3, size)], 1)
        return multi, x3


class DepthEstimator(nn.Sequential):
    """384 → 128 → 64 → 1 (each 3×3 conv + BN + ReLU): the 32×32 depth / mask regulariser."""

    def __init__(self, in_channels: int = 384) -> None:
        super().__init__(conv_bn_relu(in_channels, 128), conv_bn_relu(128, 64), conv_bn_relu(64, 1))


class MetaClassifier(nn.Module):
    """The meta learner ("FeatEmbedder"): 128 →(pool) 128 →(pool) 256 → 512 → GAP → Linear 512 → 1."""

    def __init__(self, in_channels: int = 128, bn_momentum: float = 1.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, 128, bn_momentum), nn.MaxPool2d(2),
            conv_bn_relu(128, 256, bn_momentum), nn.MaxPool2d(2),
            conv_bn_relu(256, 512, bn_momentum), nn.AdaptiveAvgPool2d(1),
        )
        self.fc = nn.Linear(512, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1)).squeeze(1)


class RFMetaNet(nn.Module):
    """Container of the three RFMetaFAS networks; ``forward`` returns ``{"logit", "depth"}``."""

    def __init__(self, in_channels: int = 3, map_size: int = 32, input_hsv: bool = True,
                 classifier_bn_momentum: float = 1.0, input_mean: float = 0.5, input_std: float = 0.5,
                 input_range: str = "unit") -> None:
        super().__init__()
        if input_range not in ("unit", "normalised"):
            raise ValueError(f"model.input_range must be 'unit' (official: RGB+HSV in [0, 1]) or 'normalised', "
                             f"got {input_range!r}")
        # official: PIL RGB + PIL HSV, ToTensor only → both in [0, 1]; "normalised" = (v − mean)/std (deviation)
        self.to_input = AppendHSV(input_mean, input_std, hue="unit", output=input_range) if input_hsv else (
            _Unnormalise(input_mean, input_std) if input_range == "unit" else nn.Identity())
        cin = in_channels + 3 if input_hsv else in_channels
        self.extractor = FeatureExtractor(cin, map_size)
        self.depth = DepthEstimator(384)
        self.classifier = MetaClassifier(128, classifier_bn_momentum)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official ``xavier`` init: Xavier-normal conv/linear weights, zero linear biases, BN γ ~ U(0.02, 1)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_normal_(m.weight, gain=1.0)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.uniform_(m.weight, 0.02, 1.0)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.extractor(self.to_input(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        multi, feat = self.features(x)
        return {"logit": self.classifier(feat), "depth": self.depth(multi).squeeze(1)}


class _Unnormalise(nn.Module):
    """``x·std + mean``: back from the data pipeline's normalised input to [0, 1]."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = float(mean), float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


@register_model("rfmeta")
def rfmeta(in_channels: int = 3, map_size: int = 32, input_hsv: bool = True, classifier_bn_momentum: float = 1.0,
           input_mean: float = 0.5, input_std: float = 0.5, input_range: str = "unit") -> RFMetaNet:
    """RFMetaFAS (AAAI 2020): feature extractor, depth regulariser and meta-learned classifier."""
    return RFMetaNet(in_channels, map_size, input_hsv, classifier_bn_momentum, input_mean, input_std, input_range)
