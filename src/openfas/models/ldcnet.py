"""LDCNet networks (Huang et al., "Learnable Descriptive Convolutional Network for Face Anti-Spoofing",
BMVC 2022; layer lists as in the official code huiyu8794/LDCNet, ``models/LDCN.py`` and
``models/Learnable_Res18.py``).

* FE (feature extractor): ResNet-18 whose 3×3 convolutions are learnable descriptive convolutions
  (:class:`~openfas.ops.LDConv2d`; the 7×7 stem and the 1×1 shortcut convs stay plain). The outputs of
  layer1–3 are average-pooled to ``map_size`` (32) and concatenated (64 + 128 + 256 = 448 channels) for the
  two attention estimators; layer4 → global average pool → bottleneck Linear 512→512 (init N(0, 0.005),
  bias 0.1) + ReLU + Dropout 0.5 → f, rescaled as in the official code to f / (√‖f‖₂ · √2).
* CF (classifier): Linear 512→2 (init N(0, 0.01), bias 0) applied with an L2-normalised weight (see
  :class:`NormalizedClassifier` for which axis).
* LE / SE (live / spoof attention estimators, separate weights): LDC 448→128 + BN + ReLU, LDC 128→64 + BN +
  ReLU, LDC 64→1 + ReLU → 1×32×32 map.

``forward`` returns ``{"logits": B×2, "live_map": B×32×32, "spoof_map": B×32×32, "feature": B×512}``
(logit index 1 = live). The official FE starts from ImageNet weights downloaded at run time; here
``pretrained`` is the path of a user-supplied torchvision-layout ResNet-18 weights file (nothing downloads) and
the default trains from scratch with torchvision's ResNet initialisation.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.errors import OpenFASError
from openfas.models._registry import register_model
from openfas.ops.ldc import LDConv2d


def _adaptive_pool_matrix(n_in: int, n_out: int, like: torch.Tensor) -> torch.Tensor:
    """n_out×n_in averaging matrix of adaptive average pooling: row i averages inputs ⌊i·n/m⌋ … ⌈(i+1)·n/m⌉ − 1."""
    rows = []
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        rows.append([1.0 / (end - start) if start <= j < end else 0.0 for j in range(n_in)])
    # built from Python numbers, so an ONNX export records it as a constant
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def pool_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, size)`` in a form ONNX can export (the exporter rejects adaptive pooling to a
    size that does not divide the input, e.g. layer3's 16×16 → 32×32 at 256 px): an average pool when the input is
    a multiple of ``size``, a nearest repeat when ``size`` is a multiple of the input (both equal adaptive pooling
    exactly), otherwise the separable averaging matrices P_h · x · P_wᵀ."""
    h, w = x.shape[-2:]
    if h % size == 0 and w % size == 0:
        return x if h == w == size else F.avg_pool2d(x, (h // size, w // size))
    if size % h == 0 and size % w == 0:
        return F.interpolate(x, size=(size, size), mode="nearest")
    ph, pw = _adaptive_pool_matrix(h, size, x), _adaptive_pool_matrix(w, size, x)
    return torch.matmul(torch.matmul(ph, x), pw.t())


class BasicBlock(nn.Module):
    """ResNet basic block with LDC 3×3 convs (official ``Learnable_Res18.BasicBlock``)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = LDConv2d(cin, cout, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = LDConv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def _layer(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout))


class FeatureExtractor(nn.Module):
    """FE: LDC ResNet-18 → (feature B×512 rescaled, multi-level map features B×448×s×s)."""

    def __init__(self, in_channels: int = 3, map_size: int = 32, dropout: float = 0.5) -> None:
        super().__init__()
        self.map_size = map_size
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _layer(64, 64, 1)
        self.layer2 = _layer(64, 128, 2)
        self.layer3 = _layer(128, 256, 2)
        self.layer4 = _layer(256, 512, 2)
        self.bottleneck = nn.Sequential(OrderedDict(fc=nn.Linear(512, 512), relu=nn.ReLU(),
                                                    dropout=nn.Dropout(dropout)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's ResNet init (Kaiming-normal fan-out convs, BN 1/0); bottleneck N(0, 0.005), bias 0.1."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        fc = self.bottleneck.fc
        assert isinstance(fc, nn.Linear)
        nn.init.normal_(fc.weight, 0.0, 0.005)
        nn.init.constant_(fc.bias, 0.1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        s = self.map_size
        multi = torch.cat([pool_to(f1, s), pool_to(f2, s), pool_to(f3, s)], 1)
        f = F.adaptive_avg_pool2d(self.layer4(f3), 1).flatten(1)
        f = self.bottleneck(f)
        # official: f / (clamp(‖f‖, 1e-12)^0.5 · 2^0.5)
        scale = f.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12).sqrt() * (2.0 ** 0.5)
        return f / scale, multi


class NormalizedClassifier(nn.Module):
    """CF: ``Linear(512, 2)`` applied with an L2-normalised weight.

    ``norm_axis=0`` (default) is what the official code computes (``l2_norm(weight, axis=0)``, inherited from
    SSDG): every column of the 2×512 weight (the two class weights of one feature dimension) has unit norm.
    ``norm_axis=1`` normalises the rows (each class vector), the reading of the papers' text. The official code
    writes the normalised weight back into ``weight.data`` at every forward, so its gradient is taken as if the
    normalised weight were a free parameter; here it is computed in the forward and gradients flow through the
    normalisation (they are projected onto the unit sphere's tangent). Forward outputs are the same, training
    dynamics are not (documented deviation, docs/faithfulness.md). :meth:`fuse` folds it for export.
    """

    def __init__(self, in_features: int = 512, num_classes: int = 2, norm_axis: int = 0) -> None:
        super().__init__()
        if norm_axis not in (0, 1):
            raise ValueError(f"classifier norm_axis must be 0 (official code) or 1 (rows), got {norm_axis}")
        self.norm_axis = norm_axis
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def normalized_weight(self) -> torch.Tensor:
        return F.normalize(self.fc.weight, p=2, dim=self.norm_axis, eps=1e-12)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.linear(f, self.normalized_weight(), self.fc.bias)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        lin = nn.Linear(self.fc.in_features, self.fc.out_features, device=self.fc.weight.device,
                        dtype=self.fc.weight.dtype)
        lin.weight.copy_(self.normalized_weight())
        lin.bias.copy_(self.fc.bias)
        return lin


def _ldc_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(LDConv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AttentionEstimator(nn.Sequential):
    """LE / SE: LDC 448→128 + BN + ReLU, LDC 128→64 + BN + ReLU, LDC 64→1 + ReLU (official ``Estmator_learnable``)."""

    def __init__(self, in_channels: int = 448) -> None:
        super().__init__(_ldc_bn_relu(in_channels, 128), _ldc_bn_relu(128, 64),
                         nn.Sequential(LDConv2d(64, 1, 3, padding=1), nn.ReLU(inplace=True)))


class LDCNet(nn.Module):
    """Container of FE, CF, LE and SE (official ``LDCNet``)."""

    def __init__(self, in_channels: int = 3, map_size: int = 32, dropout: float = 0.5,
                 classifier_norm_axis: int = 0) -> None:
        super().__init__()
        self.backbone = FeatureExtractor(in_channels, map_size, dropout)
        self.classifier = NormalizedClassifier(512, 2, classifier_norm_axis)
        self.live_estimator = AttentionEstimator(448)
        self.spoof_estimator = AttentionEstimator(448)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feature, multi = self.backbone(x)
        return {"logits": self.classifier(feature), "live_map": self.live_estimator(multi).squeeze(1),
                "spoof_map": self.spoof_estimator(multi).squeeze(1), "feature": feature}


# ---------------------------------------------------------------------------------------------- weights
class PretrainedWeightsError(OpenFASError, ValueError):
    """A user-supplied ImageNet ResNet-18 weights file is missing, unreadable or does not fit."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat ``name → tensor`` dict from a ``.safetensors`` file or a ``torch.save`` file (loaded with
    ``weights_only=True``); a ``{"state_dict": …}`` / ``{"model": …}`` wrapper and ``module.`` prefixes are
    unwrapped."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise PretrainedWeightsError(f"{p}: pretrained weights file not found")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" not in str(err).lower():  # not a refused object: garbage, truncated, other format
            raise PretrainedWeightsError(f"{p}: cannot read pretrained weights (not a readable torch.save file of "
                                         "tensors, nor .safetensors)") from None
        raise PretrainedWeightsError(f"{p}: the file holds Python objects besides tensors, which openfas will not "
                                     "unpickle (save a plain state dict, or convert it to .safetensors)") from None
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one clear error
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise PretrainedWeightsError(f"{p}: cannot read pretrained weights ({type(err).__name__}: {first})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{p}: expected a dict of tensors (a ResNet-18 state dict)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_imagenet_resnet18(fe: FeatureExtractor, path: str | Path) -> None:
    """Copy torchvision-layout ResNet-18 weights (``conv1.weight``, ``layer1.0.conv1.weight``, ``bn1.running_mean``,
    ``layer2.0.downsample.0.weight``, …) into the FE. The LDC convs keep the names of the convs they replace, so
    the mapping is one to one; ``fc.*`` (the ImageNet head) is ignored, the LDC masks/θ and the bottleneck keep
    their initial values. A missing, extra or mis-shaped tensor is an error naming the file and the key."""
    state = read_state_dict(path)
    ours = {k: v for k, v in fe.state_dict().items()
            if not k.startswith("bottleneck.") and not k.endswith((".learnable_mask", ".theta"))}
    given = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing = sorted(set(ours) - set(given))
    extra = sorted(set(given) - set(ours))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if extra:
            parts.append(f"unexpected {len(extra)} keys (e.g. {', '.join(extra[:3])})")
        raise PretrainedWeightsError(f"{path}: not a torchvision ResNet-18 state dict: {'; '.join(parts)}")
    for k, v in ours.items():
        if tuple(given[k].shape) != tuple(v.shape):
            raise PretrainedWeightsError(f"{path}: {k} has shape {tuple(given[k].shape)}, the model expects "
                                         f"{tuple(v.shape)}")
    fe.load_state_dict({k: given[k].to(v.dtype) for k, v in ours.items()}, strict=False)


@register_model("ldcnet")
def ldcnet(in_channels: int = 3, map_size: int = 32, pretrained: str | None = None, dropout: float = 0.5,
           classifier_norm_axis: int = 0) -> LDCNet:
    """LDCNet (BMVC 2022): LDC ResNet-18 FE, normalised CF, live/spoof attention estimators.

    ``pretrained``: path of an ImageNet ResNet-18 weights file in torchvision layout (``.safetensors`` or a
    ``torch.save`` file); ``None`` trains from scratch.
    """
    model = LDCNet(in_channels, map_size, dropout, classifier_norm_axis)
    if pretrained:
        if in_channels != 3:
            raise PretrainedWeightsError(f"{pretrained}: ImageNet weights need 3 input channels, got {in_channels}")
        load_imagenet_resnet18(model.backbone, pretrained)
    return model
