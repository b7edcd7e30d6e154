"""Crop cache: one LMDB environment holding every face crop, its pixel-wise target and its metadata.

Layout of ``<cache_dir>/crops.lmdb`` keys:

* ``img/<sample_id>/<modality>`` – PNG bytes of the crop (uint8, 3 channels for RGB/depth/IR alike);
* ``tgt/<sample_id>`` – PNG bytes (uint8 grayscale) of the live pixel-wise target (mask or pseudo-depth);
* ``meta/<sample_id>`` – JSON :class:`~openfas.data.sample.CropRecord`;
* ``done/<media_id>`` – JSON ``{"crops": n, "skipped": reason}``: written in the same transaction as the
  crops of that media item, so an interrupted ``prepare`` resumes exactly where it stopped.

A single LMDB file scales to millions of crops, reads concurrently from DataLoader workers and needs no
loose files. ``<cache_dir>/info.json`` records how the cache was made.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import lmdb
import numpy as np

from openfas.data.sample import CropRecord
from openfas.errors import OpenFASError

_MAP_SIZE = 1 << 40  # 1 TiB of address space; the file only grows as data is written


class CacheError(OpenFASError, RuntimeError):
    """A cache folder is missing, empty or corrupt."""


def encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not PNG-encode an array of shape {image.shape}")
    return buf.tobytes()


def decode_png(data: bytes, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise CacheError("corrupt image bytes in cache")
    return image


class CropCacheWriter:
    """Append crops to a cache; ``with CropCacheWriter(dir) as w: w.add_media(media_id, crops)``."""

    def __init__(self, cache_dir: str | Path, info: dict[str, Any] | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(self.cache_dir / "crops.lmdb"), map_size=_MAP_SIZE, subdir=True)
        if info is not None:
            info_path = self.cache_dir / "info.json"
            old = json.loads(info_path.read_text()) if info_path.exists() else {}
            old.update(info)
            info_path.write_text(json.dumps(old, indent=2, sort_keys=True))

    def done_media(self) -> set[str]:
        out = set()
        with self.env.begin() as txn:
            cur = txn.cursor()
            if cur.set_range(b"done/"):
                for key in cur.iternext(values=False):
                    if not key.startswith(b"done/"):
                        break
                    out.add(key[5:].decode())
        return out

    def add_media(
        self,
        media_id: str,
        crops: Sequence[tuple[CropRecord, dict[str, np.ndarray], np.ndarray | None]],
        skipped: str = "",
        status: dict[str, Any] | None = None,
    ) -> None:
        """Store all crops of one media item atomically: ``(record, {modality: HxWx3 uint8}, target|None)``;
        ``status`` (label, split, frame and face-detection counts, ...) is kept in the item's ``done`` record."""
        with self.env.begin(write=True) as txn:
            for record, images, target in crops:
                for modality, image in images.items():
                    txn.put(f"img/{record.sample_id}/{modality}".encode(), encode_png(image))
                if target is not None:
                    txn.put(f"tgt/{record.sample_id}".encode(), encode_png(target))
                txn.put(f"meta/{record.sample_id}".encode(), json.dumps(record.to_json()).encode())
            done = {**(status or {}), "crops": len(crops), "skipped": skipped}
            txn.put(f"done/{media_id}".encode(), json.dumps(done).encode())

    def close(self) -> None:
        self.env.sync()
        self.env.close()

    def __enter__(self) -> CropCacheWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_READ_ENVS: dict[tuple[int, str], lmdb.Environment] = {}


def _open_readonly(path: Path) -> lmdb.Environment:
    """One read-only environment per (process, path): LMDB forbids opening a file twice in a process.

    A forked child (a DataLoader worker) inherits its parent's open environments, which LMDB must not use
    across a fork and which py-lmdb still counts as open; the child closes its copies of them (the parent's
    stay open) before opening its own.
    """
    pid = os.getpid()
    key = (pid, str(path.resolve()))
    env = _READ_ENVS.get(key)
    if env is None:
        for inherited in [k for k in _READ_ENVS if k[0] != pid]:
            _READ_ENVS.pop(inherited).close()
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False, subdir=True)
        _READ_ENVS[key] = env
    return env


class CropCacheReader:
    """Read-only access; safe to use from DataLoader worker processes (the env opens lazily per process)."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / "crops.lmdb"
        if not self.path.exists():
            raise CacheError(f"{self.cache_dir}: no crop cache here (expected {self.path}); "
                             "run `openfas data prepare` or `openfas data synth` first")
        self._env: lmdb.Environment | None = None
        self._pid: int | None = None

    @property
    def env(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            self._env = _open_readonly(self.path)
            self._pid = os.getpid()
        return self._env

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_env"] = None
        state["_pid"] = None
        return state

    def info(self) -> dict[str, Any]:
        p = self.cache_dir / "info.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def records(self) -> list[CropRecord]:
        out: list[CropRecord] = []
        for _, value in self._scan(b"meta/"):
            out.append(CropRecord.from_json(json.loads(value)))
        out.sort(key=lambda r: r.sample_id)
        return out

    def media_status(self) -> dict[str, dict[str, Any]]:
        return {k[5:].decode(): json.loads(v) for k, v in self._scan(b"done/")}

    def _scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        with self.env.begin() as txn:
            cur = txn.cursor()
            if not cur.set_range(prefix):
                return
            for key, value in cur:
                if not key.startswith(prefix):
                    break
                yield bytes(key), bytes(value)

    def image(self, sample_id: str, modality: str = "rgb") -> np.ndarray:
        """The crop as an H×W×3 uint8 BGR array (OpenCV order)."""
        with self.env.begin() as txn:
            data = txn.get(f"img/{sample_id}/{modality}".encode())
        if data is None:
            raise CacheError(f"{self.cache_dir}: sample {sample_id!r} has no {modality!r} image")
        image = decode_png(data, cv2.IMREAD_COLOR)
        return image

    def target(self, sample_id: str) -> np.ndarray | None:
        """The stored live target map (H×W uint8) or ``None``."""
        with self.env.begin() as txn:
            data = txn.get(f"tgt/{sample_id}".encode())
        return None if data is None else decode_png(data, cv2.IMREAD_GRAYSCALE)
