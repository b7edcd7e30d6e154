"""Score a crop cache with a trained model, outside the trainer (``openfas eval`` and reports use this)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn

from openfas.config import Config
from openfas.data.cache import CacheError, CropCacheReader
from openfas.data.dataset import FaceCropDataset
from openfas.data.loading import eval_loader
from openfas.eval.scores import ScoreTable


class Scorer(Protocol):
    """What scoring needs of a training method (:class:`openfas.methods.base.Method` is one): the config it
    was trained with (pre-processing) and its score function."""

    cfg: Config

    def score(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


def _dataset(method: Scorer, cache_dir: str | Path, split: str | None, domains: Sequence[str] | None,
             records: Sequence[Any] | None = None) -> FaceCropDataset:
    d = method.cfg.data
    return FaceCropDataset(cache_dir, split=split, domains=domains, modalities=d.modalities,
                           image_size=d.image_size, map_size=d.map_size, train=False, mean=d.mean, std=d.std,
                           seed=method.cfg.experiment.seed, records=records, crop_fraction=d.crop_fraction)


@torch.no_grad()
def _run(model: nn.Module, method: Scorer, ds: FaceCropDataset, device: str | torch.device, batch_size: int,
         num_workers: int, amp_dtype: torch.dtype | None, keep_maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
    device = torch.device(device)
    loader = eval_loader(ds, batch_size, num_workers, pin_memory=device.type == "cuda")
    was_training = model.training
    model.to(device).eval()
    scores: list[torch.Tensor] = []
    maps: list[torch.Tensor] = []
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    try:
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with autocast:
                out = method.score(model, batch)
            scores.append(out["score"].float().reshape(-1).cpu())
            if keep_maps and out.get("map") is not None:
                maps.append(out["map"].float().reshape(out["map"].shape[0], *out["map"].shape[-2:]).cpu())
    finally:
        model.train(was_training)
    s = torch.cat(scores).numpy().astype(np.float64)
    if s.size != len(ds):
        raise RuntimeError(f"method {type(method).__name__}.score returned {s.size} scores for {len(ds)} samples")
    return s, (torch.cat(maps).numpy() if maps else None)


def score_cache(model: nn.Module, method: Scorer, cache_dir: str | Path, split: str = "test",
                domains: Sequence[str] | None = None, device: str | torch.device = "cpu",
                batch_size: int | None = None, *, num_workers: int = 0,
                amp_dtype: torch.dtype | None = None) -> ScoreTable:
    """Per-frame scores (higher = more live) of ``split`` (``"all"`` = every split) of a crop cache.

    Pre-processing (modalities, image size, normalisation) comes from ``method.cfg.data``, i.e. the config the
    model was trained with; the model's train/eval mode is restored afterwards.
    """
    ds = _dataset(method, cache_dir, None if split == "all" else split, domains)
    bs = batch_size or method.cfg.data.batch_size
    s, _ = _run(model, method, ds, device, bs, num_workers, amp_dtype, keep_maps=False)
    recs = ds.records
    return ScoreTable([r.sample_id for r in recs], [r.media_id for r in recs], [r.domain for r in recs],
                      [r.attack for r in recs], np.array([r.label for r in recs], dtype=np.int64), s)


def predict_samples(model: nn.Module, method: Scorer, cache_dir: str | Path, sample_ids: Sequence[str],
                    device: str | torch.device = "cpu", batch_size: int = 16
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores and, for pixel-wise methods, predicted maps (N×h×w) of the given samples, in the given order."""
    by_id = {r.sample_id: r for r in CropCacheReader(cache_dir).records()}
    missing = [i for i in sample_ids if i not in by_id]
    if missing:
        raise CacheError(f"{cache_dir}: samples not in the cache: {missing[:3]}")
    ds = _dataset(method, cache_dir, None, None, records=[by_id[i] for i in sample_ids])
    return _run(model, method, ds, device, batch_size, 0, None, keep_maps=True)
