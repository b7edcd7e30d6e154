"""Safe, atomic checkpoints in one safetensors file.

Everything lives in a single ``.safetensors`` file: model weights under ``model.``, optimiser and scheduler
tensors under ``optim.`` / ``sched.``, RNG states under ``rng.``; the non-tensor parts (config, step
counters, optimiser hyper-parameters, the model's name and preprocessing, the decision threshold, the
openfas version) go into the file's JSON metadata. Loading never unpickles anything. Writes go to a
temporary file in the same folder followed by ``os.replace``, so a crash never leaves a half-written file.

Integrity: the header carries ``integrity`` = SHA-256 of the canonical JSON of everything else in the header
(format, metadata, state layout and the SHA-256 of every tensor), so an edited threshold, preprocessing, model
name or config, altered weights, or a removed checksum are all refused. That protects against accidental
corruption and naive edits, not against someone who recomputes the hash. For that, set the environment variable
``OPENFAS_CHECKPOINT_KEY`` (or pass ``key=``) when saving and loading: the digest becomes an HMAC-SHA256 under
that key, and while a key is set only files signed with it load (``key=b""`` turns the key off for one call).
Files written before this scheme (``openfas-checkpoint/1``) carry no integrity digest and load only with an
explicit opt-in (``allow_unsigned=True``, ``openfas --allow-unsigned …`` or ``OPENFAS_ALLOW_UNSIGNED=1``), and
never while a key is set; ``openfas checkpoint sign`` rewrites such a file in the current format once you trust
it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from openfas.errors import OpenFASError

FORMAT = "openfas-checkpoint/2"
LEGACY_FORMATS = ("openfas-checkpoint/1",)  # no integrity digest: loaded only with allow_unsigned
KEY_ENV = "OPENFAS_CHECKPOINT_KEY"
ALLOW_UNSIGNED_ENV = "OPENFAS_ALLOW_UNSIGNED"


class CheckpointError(OpenFASError, RuntimeError):
    """A checkpoint is missing, not an openfas checkpoint, tampered with or incompatible."""


class CheckpointIntegrityError(CheckpointError):
    """A checkpoint's integrity digest is missing, wrong or made with another key."""


def _env_key() -> bytes | None:
    value = os.environ.get(KEY_ENV, "")
    return value.encode() if value else None


_allow_unsigned_setting: bool | None = None


def set_allow_unsigned(allow: bool | None) -> None:
    """Process-wide default of ``allow_unsigned`` (the CLI's ``--allow-unsigned``); ``None``: the environment's."""
    global _allow_unsigned_setting
    _allow_unsigned_setting = allow


def _allow_unsigned_default() -> bool:
    if _allow_unsigned_setting is not None:
        return _allow_unsigned_setting
    return os.environ.get(ALLOW_UNSIGNED_ENV, "").strip().lower() in ("1", "true", "yes")


def header_digest(header: dict[str, Any], key: bytes | None) -> dict[str, str]:
    """The integrity record of a header: SHA-256 (or HMAC-SHA256 under ``key``) of its canonical JSON without
    the ``integrity`` entry. Canonical = sorted keys, no spaces, so a loaded header reproduces the digest."""
    body = {k: v for k, v in header.items() if k != "integrity"}
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if key:
        return {"alg": "hmac-sha256", "digest": hmac.new(key, data, hashlib.sha256).hexdigest()}
    return {"alg": "sha256", "digest": hashlib.sha256(data).hexdigest()}


def _check_record(record: dict[str, Any], expected: dict[str, str], key: bytes | None, source: str) -> None:
    """Compare a stored integrity record with the recomputed one, enforcing the key policy."""
    if record.get("alg") == "hmac-sha256" and not key:
        raise CheckpointIntegrityError(f"{source}: the file is signed with a key (HMAC); set {KEY_ENV} to verify it")
    if key and record.get("alg") != "hmac-sha256":
        raise CheckpointIntegrityError(f"{source}: {KEY_ENV} is set but the file is not signed with a key; "
                                       "only signed files load while a key is set")
    if record.get("alg") != expected["alg"] or not hmac.compare_digest(str(record.get("digest", "")),
                                                                       expected["digest"]):
        what = "signature (wrong key, or the file was altered)" if key else "checksum"
        raise CheckpointIntegrityError(f"{source}: the metadata does not match the integrity {what} stored in the "
                                       "file (threshold, preprocessing, config or checksum edited?)")


def _resolve_key(key: bytes | str | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key if key is not None else _env_key()


def _bytes_digest(data: bytes, key: bytes | None) -> dict[str, str]:
    if key:
        return {"alg": "hmac-sha256", "digest": hmac.new(key, data, hashlib.sha256).hexdigest()}
    return {"alg": "sha256", "digest": hashlib.sha256(data).hexdigest()}


_PLACEHOLDER = "0" * 64


def integrity_placeholder(key: bytes | str | None = None) -> str:
    """The record to embed in a file (e.g. an ONNX metadata entry) before :func:`seal_bytes` fills in its digest."""
    return json.dumps({"alg": "hmac-sha256" if _resolve_key(key) else "sha256", "digest": _PLACEHOLDER})


def seal_bytes(data: bytes, key: bytes | str | None = None) -> bytes:
    """``data`` embeds :func:`integrity_placeholder` exactly once; return it with the placeholder's digest set to
    the SHA-256 (HMAC under ``key``) of ``data`` itself (same length, so the file's layout is unchanged)."""
    key = _resolve_key(key)
    blank = integrity_placeholder(key).encode()
    if data.count(blank) != 1:
        raise CheckpointError("cannot seal: the integrity placeholder must occur exactly once")
    record = _bytes_digest(data, key)
    return data.replace(blank, json.dumps(record).encode())


def verify_sealed_bytes(data: bytes, value: str | None, source: str, *, allow_unsigned: bool | None = None,
                        key: bytes | str | None = None, legacy: bool = False) -> None:
    """Check bytes sealed by :func:`seal_bytes`; ``value``: the embedded record as read from the file (``None``:
    absent). ``legacy``: the file's format predates sealing, so it loads only with ``allow_unsigned``."""
    if allow_unsigned is None:
        allow_unsigned = _allow_unsigned_default()
    key = _resolve_key(key)
    if legacy:
        if key:
            raise CheckpointIntegrityError(
                f"{source}: legacy model file without an integrity digest, refused while {KEY_ENV} is set (only "
                "files signed with that key load, --allow-unsigned included); export it again with the key set")
        if not allow_unsigned:
            raise CheckpointIntegrityError(
                f"{source}: legacy model file without an integrity digest; if you trust it, load it with "
                f"`openfas --allow-unsigned …` (Python: allow_unsigned=True, or {ALLOW_UNSIGNED_ENV}=1), or "
                "export it again")
        return
    try:
        record = json.loads(value) if value is not None else None
    except json.JSONDecodeError:
        record = None
    if value is None or not isinstance(record, dict) or data.count(value.encode()) != 1:
        raise CheckpointIntegrityError(f"{source}: the integrity checksum is missing (the file was altered; "
                                       "openfas always writes one)")
    blank = json.dumps({"alg": record.get("alg"), "digest": _PLACEHOLDER}).encode()
    unsealed = data.replace(value.encode(), blank)
    _check_record(record, _bytes_digest(unsealed, key if record.get("alg") == "hmac-sha256" else None), key, source)


def verify_header(header: dict[str, Any], tensors: dict[str, torch.Tensor], source: str, *,
                  allow_unsigned: bool | None = None, key: bytes | str | None = None) -> None:
    """Refuse a header whose integrity record is missing or wrong, or whose tensors differ from the digest.

    ``allow_unsigned`` (default: ``$OPENFAS_ALLOW_UNSIGNED``) admits legacy ``openfas-checkpoint/1`` files, which
    have no integrity record. ``key`` (default: ``$OPENFAS_CHECKPOINT_KEY``): while set, only files signed with
    it are accepted."""
    if allow_unsigned is None:
        allow_unsigned = _allow_unsigned_default()
    key = _resolve_key(key)
    fmt = header.get("format")
    digest = header.get("sha256")
    if fmt in LEGACY_FORMATS:
        if key:
            raise CheckpointIntegrityError(
                f"{source}: legacy checkpoint ({fmt}) without an integrity digest, refused while {KEY_ENV} is set "
                "(only files signed with that key load, --allow-unsigned included); if you trust the file, sign it "
                "with `openfas --allow-unsigned checkpoint sign --trust-unkeyed FILE`")
        if not allow_unsigned:
            raise CheckpointIntegrityError(
                f"{source}: legacy checkpoint ({fmt}) without an integrity digest; if you trust the file, load it "
                f"with `openfas --allow-unsigned …` (Python: allow_unsigned=True, or {ALLOW_UNSIGNED_ENV}=1), or "
                "rewrite it once with `openfas --allow-unsigned checkpoint sign FILE`")
        if digest is not None and digest != tensor_digest(tensors):
            raise CheckpointIntegrityError(f"{source}: tensor data does not match the checksum stored in the file "
                                           "(corrupted or tampered with)")
        return
    record = header.get("integrity")
    if not isinstance(record, dict) or not isinstance(digest, str):
        raise CheckpointIntegrityError(f"{source}: the integrity checksum is missing (the file was altered; "
                                       "openfas always writes one)")
    _check_record(record, header_digest(header, key if record.get("alg") == "hmac-sha256" else None), key, source)
    if digest != tensor_digest(tensors):
        raise CheckpointIntegrityError(f"{source}: tensor data does not match the checksum stored in the file "
                                       "(corrupted or tampered with)")


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
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple), "numpy's global generator is MT19937, whose legacy state is a tuple"
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
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
                    extra_state: dict[str, Any] | None = None, key: bytes | str | None = None) -> Path:
    """Atomically write a checkpoint; ``meta`` must be JSON-serialisable. ``key`` (default:
    ``$OPENFAS_CHECKPOINT_KEY``) signs it with HMAC-SHA256 instead of a plain SHA-256."""
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
    header: dict[str, Any] = {"format": FORMAT, "meta": meta, "state": skeleton, "sha256": tensor_digest(tensors)}
    # the digest is computed over the header as it will be read back (JSON round trip: tuples → lists, …)
    header = json.loads(json.dumps(header))
    header["integrity"] = header_digest(header, _resolve_key(key))
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


def read_header(path: str | Path) -> dict[str, Any]:
    """The openfas header of a checkpoint (``format``, ``meta``, the state skeleton, digests) from the safetensors
    header alone: no tensor is read and nothing is verified yet. The one reader of checkpoint metadata."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    if "openfas" not in metadata:
        raise CheckpointError(f"{path}: safetensors file without openfas metadata (not an openfas checkpoint)")
    try:
        header = json.loads(metadata["openfas"])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: corrupt openfas metadata ({err})") from None
    if not isinstance(header, dict) or header.get("format") not in (FORMAT, *LEGACY_FORMATS):
        fmt = header.get("format") if isinstance(header, dict) else None
        raise CheckpointError(f"{path}: unsupported checkpoint format {fmt!r} (this openfas reads {FORMAT!r})")
    return header


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, allow_unsigned: bool | None = None,
                    key: bytes | str | None = None) -> dict[str, Any]:
    """Read a checkpoint → ``{"model": state_dict, "meta", "optimizer", "scheduler", "extra"}``, verifying its
    integrity digest (see the module docstring for ``allow_unsigned`` and ``key``)."""
    path = Path(path)
    header = read_header(path)
    try:
        tensors = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    verify_header(header, tensors, str(path), allow_unsigned=allow_unsigned, key=key)
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


def load_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta`` of a checkpoint read from its header alone (no tensors, NOT verified: use it only to decide
    how to load the file, which :func:`load_checkpoint` then verifies)."""
    meta = read_header(path).get("meta")
    return meta if isinstance(meta, dict) else {}


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
