"""Deployment folding: CDC-style kernel updates and Conv→BatchNorm pairs folded into plain convolutions."""

from __future__ import annotations

import copy

import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _replace_fusable(module: nn.Module) -> nn.Module:
    for name, child in list(module.named_children()):
        fuse = getattr(child, "fuse", None)
        if callable(fuse):
            setattr(module, name, fuse())
        else:
            _replace_fusable(child)
    return module


def _fold_bn(module: nn.Module) -> None:
    if isinstance(module, nn.Sequential):
        items = list(module._modules.items())
        for (prev_name, prev), (name, cur) in zip(items, items[1:], strict=False):
            if (type(prev) is nn.Conv2d and isinstance(cur, nn.BatchNorm2d) and cur.track_running_stats
                    and cur.running_mean is not None and prev.out_channels == cur.num_features):
                module._modules[prev_name] = fuse_conv_bn_eval(prev, cur)
                module._modules[name] = nn.Identity()
    for child in module.children():
        _fold_bn(child)


def fuse_model(model: nn.Module) -> nn.Module:
    """An eval-mode deep copy of ``model`` ready for export.

    Every submodule with a ``fuse()`` method (e.g. :class:`~openfas.ops.CDConv2d`) is replaced by what it
    returns, then every ``BatchNorm2d`` directly following a plain ``Conv2d`` inside an ``nn.Sequential`` is
    folded into that conv (w' = w·γ/√(σ²+ε), b' = (b−μ)·γ/√(σ²+ε) + β) and replaced by ``nn.Identity``.
    The input model is left untouched; the copy gives the same output as ``model.eval()``.
    """
    fused = copy.deepcopy(model).eval()
    fuse = getattr(fused, "fuse", None)
    if callable(fuse):
        fused = fuse().eval()
    _replace_fusable(fused)
    _fold_bn(fused)
    return fused
