"""ONNX export of a trained model: folded convolutions, dynamic batch, verified against PyTorch.

The exported graph maps ``image`` (B×C×S×S, preprocessed as in training) to ``score`` (B, higher = live) and,
for map-predicting methods, ``map`` (B×h×w): it wraps the method's own ``score`` (pixel-wise methods: the
mean of the predicted map, Yu et al. 2020 Sec. 4.1), so the ONNX file and PyTorch agree by construction.

Before export the model goes through :func:`openfas.ops.fuse_model` (central-difference convolutions folded into
plain 3×3 convs, y = conv(x, w) − θ·(Σw)·x(p0) = conv(x, w − θ·Σw·δ_centre) (Yu et al. 2020, Eq. 2); BatchNorm
folded into the preceding conv). When ``openfas.ops.fuse_model`` is not available the model is exported
unfolded (still exact, only slower) and the metadata says ``"folded": false``.

Metadata for :class:`~openfas.deploy.predictor.Predictor` goes into the ONNX ``metadata_props`` under the key
``openfas`` (JSON): format, openfas version, model name/options, method, preprocess, threshold, outputs.
The legacy TorchScript-based exporter is used (``torch.onnx.export(..., dynamo=False)``).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from openfas.config import ConfigError
from openfas.deploy.predictor import (
    ONNX_FORMAT,
    ONNX_INTEGRITY_KEY,
    check_meta,
    load_onnx_session,
)
from openfas.errors import OpenFASError
from openfas.io.checkpoint import CheckpointError, integrity_placeholder, load_checkpoint_meta, seal_bytes
from openfas.methods.restore import build_model_from_checkpoint
from openfas.ops import fuse_model

DEFAULT_OPSET = 17


class ExportError(OpenFASError, RuntimeError):
    """The export failed or the exported model disagrees with PyTorch."""


@dataclass
class ExportReport:
    """What :func:`export_onnx` did; ``max_abs_diff`` compares ONNX Runtime with the original PyTorch model."""

    path: Path
    opset: int
    folded: bool
    outputs: list[str]
    max_abs_diff: dict[str, float]
    batch_sizes_checked: list[int]

    def __str__(self) -> str:
        diffs = ", ".join(f"{k} {v:.3g}" for k, v in self.max_abs_diff.items()) or "not verified"
        return (f"wrote {self.path} (opset {self.opset}, convs {'folded' if self.folded else 'NOT folded'}, "
                f"outputs {self.outputs}); max |ONNX Runtime − PyTorch| at batch {self.batch_sizes_checked}: "
                f"{diffs}")


class ScoringGraph(nn.Module):
    """``image → (score, map)`` through ``method.score`` (what is exported)."""

    def __init__(self, model: nn.Module, method: Any, with_map: bool) -> None:
        super().__init__()
        self.model = model
        self.method = method
        self.with_map = with_map

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.method.score(self.model, {"image": image})
        return (out["score"], out["map"]) if self.with_map else (out["score"],)


def fold_model(model: nn.Module) -> tuple[nn.Module, bool]:
    """An eval-mode copy with CDC/LDC convs and BatchNorm folded (:func:`openfas.ops.fuse_model`); ``(copy, True)``
    (the flag says that folding ran)."""
    return fuse_model(model).eval(), True


def _scores(model: nn.Module, method: Any, x: torch.Tensor) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        out = method.score(model, {"image": x})
    return {k: v.float().cpu().numpy() for k, v in out.items() if k in ("score", "map")}


def export_model_onnx(model: nn.Module, method: Any, meta: dict[str, Any], out: str | Path, *,
                      opset: int = DEFAULT_OPSET, verify: bool = True, tolerance: float = 1e-3,
                      fold: bool = True, seed: int = 0) -> ExportReport:
    """Export ``model`` (scored by ``method``) with openfas ``meta`` (the checkpoint metadata) to ``out``."""
    import onnx

    out = Path(out)
    model = model.float().cpu().eval()
    pre = meta["preprocess"]
    channels = 3 * len(pre.get("modalities", ["rgb"]))
    size = int(pre["image_size"])
    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(2, channels, size, size, generator=gen)
    reference_first = _scores(model, method, example)
    with_map = "map" in reference_first
    folded_model, folded = fold_model(model) if fold else (copy.deepcopy(model).eval(), False)
    graph = ScoringGraph(folded_model, method, with_map).eval()
    outputs = ["score", "map"] if with_map else ["score"]
    dynamic = {"image": {0: "batch"}, **{name: {0: "batch"} for name in outputs}}
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # torch annotates f as a path, but the TorchScript exporter (dynamo=False) writes to a file object too
            torch.onnx.export(graph, (example,), buf, input_names=["image"],  # type: ignore[arg-type]
                              output_names=outputs,
                              dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True, dynamo=False)
    except Exception as err:  # noqa: BLE001 - the exporter raises many types; name the model and the cause
        raise ExportError(f"ONNX export of model {meta.get('model')!r} failed: {type(err).__name__}: {err}") from err
    proto = onnx.load_from_string(buf.getvalue())
    info = {
        "format": ONNX_FORMAT, "openfas_version": meta.get("openfas_version"), "model": meta.get("model"),
        "model_kwargs": meta.get("model_kwargs", {}), "method": meta.get("method"), "preprocess": pre,
        "threshold": meta.get("threshold"), "threshold_info": meta.get("threshold_info"), "outputs": outputs,
        "folded": folded, "opset": opset,
    }
    if "source_sha256" in meta:
        info["source_sha256"] = meta["source_sha256"]
    write_sealed_onnx(proto, info, out)
    report = ExportReport(out, opset, folded, outputs, {}, [])
    if verify:
        report.max_abs_diff, report.batch_sizes_checked = verify_onnx(out, model, method, channels, size, seed)
        worst = max(report.max_abs_diff.values())
        if not worst <= tolerance:
            raise ExportError(f"{out}: ONNX Runtime output differs from PyTorch by {worst:.3g} "
                              f"(> tolerance {tolerance}); {report.max_abs_diff}")
    return report


def verify_onnx(path: str | Path, model: nn.Module, method: Any, channels: int, size: int, seed: int = 0
                ) -> tuple[dict[str, float], list[int]]:
    """Max |ORT − PyTorch| per output over random inputs at batch 1 and 3 (3 ≠ the traced batch of 2, so the
    dynamic batch axis is exercised)."""
    session, _ = load_onnx_session(path)
    names = [o.name for o in session.get_outputs()]
    gen = torch.Generator().manual_seed(seed + 1)
    diffs: dict[str, float] = {}
    batches = [1, 3]
    for b in batches:
        x = torch.randn(b, channels, size, size, generator=gen)
        ref = _scores(model, method, x)
        got = dict(zip(names, session.run(None, {"image": x.numpy()}), strict=True))
        for k in names:
            if got[k].shape != ref[k].shape:
                raise ExportError(f"{path}: output {k!r} has shape {got[k].shape} at batch {b}, PyTorch gives "
                                  f"{ref[k].shape}")
            diffs[k] = max(diffs.get(k, 0.0), float(np.max(np.abs(got[k] - ref[k]))))
    return diffs, batches


def write_sealed_onnx(proto: Any, info: dict[str, Any], out: Path) -> None:
    """Write ``proto`` to ``out`` atomically with ``info`` as its only openfas metadata and an integrity seal:
    the SHA-256 (HMAC with ``OPENFAS_CHECKPOINT_KEY``) of the whole file, checked by ``load_onnx_session``."""
    import onnx

    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "openfas", json.dumps(info)
    seal = proto.metadata_props.add()
    seal.key, seal.value = ONNX_INTEGRITY_KEY, integrity_placeholder()
    proto.producer_name = "openfas"
    onnx.checker.check_model(proto)
    data = seal_bytes(proto.SerializeToString())
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        Path(tmp).write_bytes(data)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_onnx(checkpoint: str | Path, out: str | Path, *, opset: int = DEFAULT_OPSET, verify: bool = True,
                tolerance: float = 1e-3, fold: bool = True) -> ExportReport:
    """``openfas export CKPT --onnx OUT``: rebuild the model from the checkpoint and export it."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: checkpoint not found")
    check_meta(load_checkpoint_meta(checkpoint), str(checkpoint))
    try:
        model, info = build_model_from_checkpoint(checkpoint)
    except (ConfigError, KeyError, ValueError) as err:
        raise CheckpointError(f"{checkpoint}: cannot rebuild the model from its metadata ({err})") from None
    meta = dict(info["meta"])
    meta["source_sha256"] = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    return export_model_onnx(model, info["method"], meta, out, opset=opset, verify=verify, tolerance=tolerance,
                             fold=fold)


__all__ = ["DEFAULT_OPSET", "ExportError", "ExportReport", "ScoringGraph", "export_model_onnx", "export_onnx",
           "fold_model", "verify_onnx"]
