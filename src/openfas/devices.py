"""Checking a PyTorch device name against this machine, with one-line errors (training and the Predictor)."""

from __future__ import annotations

import torch

from openfas.config import ConfigError


def check_device(spec: str, what: str) -> torch.device:
    """``torch.device(spec)`` when it names a device this machine has; else :class:`ConfigError` starting with
    ``what`` (how the user gave it, e.g. ``"--device 'cuda:7'"``)."""
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{what}: not a device name (cpu, cuda, cuda:N, mps, auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{what} but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{what} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
