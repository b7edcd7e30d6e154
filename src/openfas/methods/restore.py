"""Re-create a trained method and its model from a checkpoint's own metadata (no config file needed).

It lives in the methods layer because the model is built by the checkpoint's method (a method may build a
container of several networks); the checkpoint file format itself is :mod:`openfas.io.checkpoint`. Deployment,
evaluation and recognition teachers use this, never the trainer.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from openfas.config import config_from_dict
from openfas.io.checkpoint import CheckpointError, load_checkpoint, load_model_weights
from openfas.methods.build import build_method


def build_model_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                                allow_unsigned: bool | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """``(model in eval mode, {"meta", "method", "config"})`` of the checkpoint at ``path``; ``allow_unsigned``
    admits legacy checkpoints without an integrity digest (see :func:`openfas.io.checkpoint.load_checkpoint`)."""
    ckpt = load_checkpoint(path, map_location, allow_unsigned=allow_unsigned)
    meta = ckpt["meta"]
    if "model" not in meta:
        raise CheckpointError(f"{path}: checkpoint metadata has no model name")
    source = f"{path} (stored config)"
    stored = copy.deepcopy(meta["config"])
    if isinstance(stored, dict) and isinstance(stored.get("model"), dict):
        # the trained weights come from the checkpoint: never read the start weights its config names (a file on
        # the training machine, possibly missing here, or planted)
        stored["model"].pop("pretrained", None)
    cfg = config_from_dict(stored, source=source)
    method = build_method(cfg, source)
    model = method.build_model()
    load_model_weights(model, ckpt["model"], str(path))
    model.eval()
    return model, {"meta": meta, "method": method, "config": cfg}
