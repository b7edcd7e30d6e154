"""Safe, atomic checkpoints in one safetensors file.

Everything lives in a single ``.safetensors`` file: model weights under ``model.``, optimiser and scheduler
tensors under ``optim.`` / ``sched.``, RNG states under ``rng.``; the non-tensor parts (config, step
counters, optimiser hyper-parameters, the model's name and preprocessing, the decision threshold, the
openfas version) go into the file's JSON metadata. Loading never unpickles anything. Writes go to a
temporary file in the same folder followed by ``os.replace``, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "openfas-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, not an openfas checkpoint, tampered with or incompatible."""


def _flatten_state(prefix: str, state: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Move tensors out of a nested state (dicts/lists) into ``tensors``; return the JSON skeleton."""
    if isinstance(state, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = state.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(state, dict):
        return {"__dict__": [[_flatten_key(k), _flatten_state(f"{prefix}.{k}", v, tensors)]
                             for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        return {"__list__": [_flatten_state(f"{prefix}.{i}", v, tensors) for i, v in enumerate(state)],
                "tuple": isinstance(state, tuple)}
    if isinstance(state, (int, float, str, bool)) or state is None:
        return state
    if isinstance(state, (np.integer, np.floating)):
        return state.item()
    raise CheckpointError(f"cannot store a {type(state).__name__} in a checkpoint at {prefix!r}")


def _flatten_key(k: Any) -> Any:
    return {"__int__": k} if isinstance(k, int) else k


def _unflatten_state(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]]
        if "__dict__" in node:
            out = {}
            for k, v in node["__dict__"]:
                key = k["__int__"] if isinstance(k, dict) else k
                out[key] = _unflatten_state(v, tensors)
            return out
        if "__list__" in node:
            items = [_unflatten_state(v, tensors) for v in node["__list__"]]
            return tuple(items) if node.get("tuple") else items
    return node


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": json.dumps(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(state["numpy_pos"]), 0, 0.0))
    random.setstate((3, tuple(json.loads(state["python"])), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (sorted by name): detects altered weights."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: str | Path, *, model_state: dict[str, torch.Tensor], meta: dict[str, Any],
                    optimizer_state: dict[str, Any] | None = None,
                    scheduler_state: dict[str, Any] | None = None,
                    extra_state: dict[str, Any] | None = None) -> Path:
    """Atomically write a checkpoint; ``meta`` must be JSON-serialisable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model_state.items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    skeleton = {
        "optim": _flatten_state("optim", optimizer_state, tensors) if optimizer_state else None,
        "sched": _flatten_state("sched", scheduler_state, tensors) if scheduler_state else None,
        "extra": _flatten_state("extra", extra_state, tensors) if extra_state else None,
    }
    header = {"format": FORMAT, "meta": meta, "state": skeleton, "sha256": tensor_digest(tensors)}
    # safetensors refuses tensors that share memory; clone those that do.
    seen: dict[int, str] = {}
    for k, v in list(tensors.items()):
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        if ptr in seen and ptr != -1:
            tensors[k] = v.clone()
        seen[ptr] = k
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"openfas": json.dumps(header)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint → ``{"model": state_dict, "meta", "optimizer", "scheduler", "extra"}``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    if "openfas" not in metadata:
        raise CheckpointError(f"{path}: safetensors file without openfas metadata (not an openfas checkpoint)")
    try:
        header = json.loads(metadata["openfas"])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: corrupt openfas metadata ({err})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {header.get('format')!r} "
                              f"(this openfas reads {FORMAT!r})")
    digest = header.get("sha256")
    if digest is not None and digest != tensor_digest(tensors):
        raise CheckpointError(f"{path}: tensor data does not match the checksum stored in the file "
                              "(corrupted or tampered with)")
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    state = header.get("state", {})
    try:
        out = {
            "model": model,
            "meta": header.get("meta", {}),
            "optimizer": _unflatten_state(state.get("optim"), tensors),
            "scheduler": _unflatten_state(state.get("sched"), tensors),
            "extra": _unflatten_state(state.get("extra"), tensors),
        }
    except KeyError as err:
        raise CheckpointError(f"{path}: metadata refers to a missing tensor {err} (file tampered with?)") from None
    return out


def load_model_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``load_state_dict`` with an error message naming the source and the mismatching keys."""
    result = model.load_state_dict(state, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing {len(result.missing_keys)} keys (e.g. {result.missing_keys[:3]})")
    if result.unexpected_keys:
        problems.append(f"unexpected {len(result.unexpected_keys)} keys (e.g. {result.unexpected_keys[:3]})")
    if problems:
        raise CheckpointError(f"{source}: weights do not fit the model: " + "; ".join(problems))
