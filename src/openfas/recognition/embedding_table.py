"""Precomputed teacher embeddings: distillation without running the teacher at each step.

A table holds one teacher embedding per training image — of the UNMASKED face — keyed by the image's path
relative to the identity-folder root (``<identity>/<file>``, as :func:`openfas.recognition.data.scan_identity_folder`
lists them). It is computed once (``openfas data lfw --teacher dlib`` or :func:`build_table`), stored as
safetensors (never pickle):

* tensor ``embeddings``: N×D float32;
* metadata ``format`` = ``openfas-teacher-embeddings/1``, ``files`` = JSON list of the N keys (row order),
  ``teacher`` = what produced them, ``info`` = free JSON.

:meth:`EmbeddingTable.rows_for` checks the table against a training list: every file must have a row, else a
one-line error names how many (and which) are missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openfas.recognition.teacher import TeacherError

TABLE_FORMAT = "openfas-teacher-embeddings/1"


class EmbeddingTableError(TeacherError):
    """The table file is unusable or does not cover the training list; the message names the file."""


class EmbeddingTable:
    """``files`` (N keys) ↔ ``embeddings`` (N×D float32)."""

    def __init__(self, files: list[str], embeddings: np.ndarray | torch.Tensor, teacher: str = "",
                 info: dict[str, Any] | None = None, path: str | Path | None = None) -> None:
        emb = torch.as_tensor(np.asarray(embeddings, np.float32))
        where = f"{path}: " if path else ""
        if emb.dim() != 2 or emb.shape[0] != len(files):
            raise EmbeddingTableError(f"{where}embeddings {tuple(emb.shape)} do not match {len(files)} files")
        if len(set(files)) != len(files):
            raise EmbeddingTableError(f"{where}duplicate file keys in the embedding table")
        if not torch.isfinite(emb).all():
            raise EmbeddingTableError(f"{where}embedding table holds NaN or infinite values")
        self.files, self.embeddings, self.teacher = list(files), emb.contiguous(), teacher
        self.info = dict(info or {})
        self.path = Path(path) if path else None
        self._index = {f: i for i, f in enumerate(self.files)}

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.files)

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": TABLE_FORMAT, "files": json.dumps(self.files), "teacher": self.teacher,
                "info": json.dumps(self.info)}
        tmp = path.with_name(path.name + ".tmp")
        save_file({"embeddings": self.embeddings}, str(tmp), metadata=meta)
        tmp.replace(path)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingTable:
        from safetensors import safe_open

        path = Path(path).expanduser()
        if not path.is_file():
            raise EmbeddingTableError(f"{path}: teacher embedding table not found")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != TABLE_FORMAT:
                    raise EmbeddingTableError(f"{path}: not a teacher embedding table (metadata format "
                                              f"{meta.get('format')!r}, expected {TABLE_FORMAT!r})")
                emb = f.get_tensor("embeddings")
            files = json.loads(meta["files"])
            info = json.loads(meta.get("info") or "{}")
        except EmbeddingTableError:
            raise
        except Exception as err:  # noqa: BLE001 - any reader failure becomes one clear message
            raise EmbeddingTableError(f"{path}: cannot read the teacher embedding table "
                                      f"({type(err).__name__}: {err})") from None
        if not isinstance(files, list) or not all(isinstance(x, str) for x in files):
            raise EmbeddingTableError(f"{path}: metadata 'files' must be a JSON list of strings")
        return cls(files, emb.float().numpy(), meta.get("teacher", ""), info, path)

    def rows_for(self, files: Iterable[str]) -> torch.Tensor:
        """Row indices of ``files`` (in order); every file must be in the table."""
        files = list(files)
        missing = [f for f in files if f not in self._index]
        if missing:
            where = self.path or "teacher embedding table"
            raise EmbeddingTableError(f"{where}: {len(missing)} of {len(files)} training images have no teacher "
                                      f"embedding (e.g. {missing[:3]}); rebuild the table for this training list")
        return torch.tensor([self._index[f] for f in files], dtype=torch.long)

    def for_files(self, files: Iterable[str]) -> torch.Tensor:
        """The embeddings of ``files`` in order (K×D), checked as :meth:`rows_for`."""
        return self.embeddings[self.rows_for(files)]


def build_table(files: list[str], embed: Callable[[list[str]], np.ndarray], teacher: str,
                batch_size: int = 64, info: dict[str, Any] | None = None) -> EmbeddingTable:
    """Embed ``files`` in batches with ``embed(list of keys) → K×D`` and return the table."""
    parts = [np.asarray(embed(files[k:k + batch_size]), np.float32) for k in range(0, len(files), batch_size)]
    emb = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
    return EmbeddingTable(files, emb, teacher, info)


__all__ = ["TABLE_FORMAT", "EmbeddingTable", "EmbeddingTableError", "build_table"]
