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


IN_MEMORY_AUTO_BYTES = 1 << 30  # in_memory="auto": keep the decoded crops when they take at most this


class FaceCropDataset(Dataset):
    """Face crops with labels and pixel-wise targets.

    Each item is a dict of tensors: ``image`` (C×H×W, the modalities stacked along channels in the order
    given, 3 channels each), ``target`` (map_size×map_size float in [0, 1]: the stored live mask/depth, zeros
    for spoof), ``label`` (1 live, 0 spoof), ``attack`` (index into ``ATTACK_TYPES``), ``domain`` (index into
    :attr:`domains`) and ``index``. Augmentation is seeded by (seed, epoch, index) so runs are repeatable and
    a resumed run sees exactly the same augmented batches, whichever process reads them.

    ``in_memory``: decode every crop once, here, and keep the arrays (``"auto"``: when they take at most
    ``IN_MEMORY_AUTO_BYTES``); forked DataLoader workers share them. Items are the same either way.
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
        in_memory: bool | str = False,
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
        self._images: dict[str, list[np.ndarray]] | None = None
        self._targets: list[np.ndarray | None] | None = None
        if in_memory not in (True, False, "auto"):
            raise ValueError(f"in_memory must be true, false or 'auto', got {in_memory!r}")
        if in_memory is True or (in_memory == "auto" and self.decoded_bytes() <= IN_MEMORY_AUTO_BYTES):
            self._preload()

    def decoded_bytes(self) -> int:
        """Memory the decoded crops would take (from the first crop's size)."""
        rec = self.records[0]
        h, w = self.reader.image(rec.sample_id, self.modalities[0]).shape[:2]
        return len(self.records) * h * w * (3 * len(self.modalities) + 1)

    def _preload(self) -> None:
        images: dict[str, list[np.ndarray]] = {m: [] for m in self.modalities}
        targets: list[np.ndarray | None] = []
        for rec in self.records:
            decoded, target = self._decode(rec)
            for m in self.modalities:
                decoded[m].flags.writeable = False  # shared by every item that reads it
                images[m].append(decoded[m])
            if target is not None:
                target.flags.writeable = False
            targets.append(target)
        self._images, self._targets = images, targets

    def _decode(self, rec: CropRecord) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """The stored crops and the live target at the crop's size (``None``: an all-zero target)."""
        images = {m: self.reader.image(rec.sample_id, m) for m in self.modalities}
        h, w = images[self.modalities[0]].shape[:2]
        target = self.reader.target(rec.sample_id) if rec.label == LIVE else None
        if target is not None and target.shape != (h, w):
            target = cv2.resize(target, (w, h), interpolation=cv2.INTER_LINEAR)
        return images, target

    @property
    def in_memory(self) -> bool:
        return self._images is not None

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
        if self._images is not None and self._targets is not None:
            images = {m: self._images[m][index] for m in self.modalities}
            target = self._targets[index]
        else:
            images, target = self._decode(rec)
        if self.crop_fraction < 1.0:  # the centre of the stored crop: a tighter crop scale, same centre
            images = {m: center_fraction(im, self.crop_fraction) for m, im in images.items()}
            target = None if target is None else center_fraction(target, self.crop_fraction)
        seed = self._seed_for(index)
        if self.train:
            self.geometric.set_random_seed(seed)
        kwargs = {"image": images[self.modalities[0]]}
        if target is not None:  # an all-zero target stays zero through every transform: not computed
            kwargs["mask"] = target
        kwargs.update({m: images[m] for m in self.modalities[1:]})
        out = self.geometric(**kwargs)
        if self.color is not None and "rgb" in self.modalities:
            key = "image" if self.modalities[0] == "rgb" else "rgb"
            self.color.set_random_seed(seed + 1)
            out[key] = self.color(image=out[key])["image"]
        chans = [to_chw_float(out["image"], self.mean, self.std)]
        chans += [to_chw_float(out[m], self.mean, self.std) for m in self.modalities[1:]]
        if target is not None:
            tmap = cv2.resize(out["mask"], (self.map_size, self.map_size), interpolation=cv2.INTER_AREA)
            tmap = tmap.astype(np.float32) / 255.0
        else:
            tmap = np.zeros((self.map_size, self.map_size), np.float32)
        return {
            "image": torch.from_numpy(np.concatenate(chans, axis=0)),
            "target": torch.from_numpy(tmap),
            "label": torch.tensor(rec.label, dtype=torch.long),
            "attack": torch.tensor(attack_index(rec.attack), dtype=torch.long),
            "domain": torch.tensor(self.domains.index(rec.domain), dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),
        }
