"""PyTorch dataset over a crop cache (see :mod:`openfas.data.cache`)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from openfas.data.cache import CacheError, CropCacheReader
from openfas.data.locate import crop_geometry
from openfas.data.sample import LIVE, CropRecord, attack_index
from openfas.data.transforms import augment_recipe, build_color_transform, build_transform, to_chw_float


def center_fraction(image: np.ndarray, fraction: float) -> np.ndarray:
    """The centred ``round(fraction·side)`` square of a square-ish crop (``fraction`` = 1 → unchanged)."""
    h, w = image.shape[:2]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    y, x = (h - ch) // 2, (w - cw) // 2
    return image[y:y + ch, x:x + cw]


class FaceCropDataset(Dataset):
    """Face crops with labels and pixel-wise targets.

    Each item is a dict of tensors: ``image`` (C×H×W, the modalities stacked along channels in the order
    given, 3 channels each), ``target`` (map_size×map_size float in [0, 1]: the stored live mask/depth, zeros
    for spoof), ``label`` (1 live, 0 spoof), ``attack`` (index into ``ATTACK_TYPES``), ``domain`` (index into
    :attr:`domains`) and ``index``. Augmentation is seeded by (seed, epoch, index) so runs are repeatable and
    a resumed run sees exactly the same augmented batches.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        split: str | Sequence[str] | None = None,
        domains: Sequence[str] | None = None,
        modalities: Sequence[str] = ("rgb",),
        image_size: int = 256,
        map_size: int = 32,
        train: bool = False,
        mean: float = 0.5,
        std: float = 0.5,
        seed: int = 0,
        records: Sequence[CropRecord] | None = None,
        augment: bool | str = "openfas",
        crop_fraction: float = 1.0,
    ) -> None:
        self.reader = CropCacheReader(cache_dir)
        recs = list(records) if records is not None else self.reader.records()
        splits = {split} if isinstance(split, str) else (set(split) if split is not None else None)
        if splits is not None:
            recs = [r for r in recs if r.split in splits]
        if domains is not None:
            recs = [r for r in recs if r.domain in set(domains)]
        if not recs:
            raise CacheError(
                f"{cache_dir}: no samples for split={split!r} domains={list(domains) if domains else None}; "
                f"the cache holds domains {sorted({r.domain for r in self.reader.records()})}"
            )
        missing = {m for r in recs for m in modalities if m not in r.modalities}
        if missing:
            raise CacheError(f"{cache_dir}: samples lack modalities {sorted(missing)} asked for by the config")
        self.records = recs
        self.modalities = tuple(modalities)
        self.domains = sorted({r.domain for r in recs}) if domains is None else list(domains)
        self.image_size, self.map_size = image_size, map_size
        self.mean, self.std = mean, std
        self.train = train
        self.seed = seed
        self.epoch = 0
        if not 0.0 < crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.crop_fraction = crop_fraction
        self.geometric = build_transform(image_size, train, self.modalities, augment_recipe(augment))
        seen_scale = float(crop_geometry(self.reader.cache_dir, crop_fraction).get("scale") or 1.5)
        self.color = build_color_transform(train, augment_recipe(augment), crop_scale=seen_scale)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    @property
    def domain_ids(self) -> np.ndarray:
        index = {d: i for i, d in enumerate(self.domains)}
        return np.array([index[r.domain] for r in self.records], dtype=np.int64)

    def _seed_for(self, index: int) -> int:
        return zlib.crc32(f"{self.seed}:{self.epoch}:{index}".encode()) & 0x7FFFFFFF

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        images = {m: self.reader.image(rec.sample_id, m) for m in self.modalities}
        h, w = images[self.modalities[0]].shape[:2]
        stored = self.reader.target(rec.sample_id) if rec.label == LIVE else None
        target = stored if stored is not None else np.zeros((h, w), np.uint8)
        if target.shape != (h, w):
            target = cv2.resize(target, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.crop_fraction < 1.0:  # the centre of the stored crop: a tighter crop scale, same centre
            images = {m: center_fraction(im, self.crop_fraction) for m, im in images.items()}
            target = center_fraction(target, self.crop_fraction)
        seed = self._seed_for(index)
        if self.train:
            self.geometric.set_random_seed(seed)
        kwargs = {"image": images[self.modalities[0]], "mask": target}
        kwargs.update({m: images[m] for m in self.modalities[1:]})
        out = self.geometric(**kwargs)
        if self.color is not None and "rgb" in self.modalities:
            key = "image" if self.modalities[0] == "rgb" else "rgb"
            self.color.set_random_seed(seed + 1)
            out[key] = self.color(image=out[key])["image"]
        chans = [to_chw_float(out["image"], self.mean, self.std)]
        chans += [to_chw_float(out[m], self.mean, self.std) for m in self.modalities[1:]]
        tmap = cv2.resize(out["mask"], (self.map_size, self.map_size), interpolation=cv2.INTER_AREA)
        return {
            "image": torch.from_numpy(np.concatenate(chans, axis=0)),
            "target": torch.from_numpy(tmap.astype(np.float32) / 255.0),
            "label": torch.tensor(rec.label, dtype=torch.long),
            "attack": torch.tensor(attack_index(rec.attack), dtype=torch.long),
            "domain": torch.tensor(self.domains.index(rec.domain), dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),
        }
