"""Identity-folder training data with (normal, masked) pairs, and image loading for evaluation.

Layout (CASIA-WebFace style): ``root/<identity>/<image>`` — one folder per identity, any common image
suffix; identities are numbered in sorted folder-name order. Images are expected to be aligned face crops
(e.g. the ArcFace 5-point 112×112 alignment); they are resized to ``image_size``.

Masks are synthesised on the fly (:mod:`openfas.data.synth.masks`) from five landmarks per image, taken from
``landmarks.csv`` (columns ``file,lx,ly,rx,ry,nx,ny,mlx,mly,mrx,mry[,chx,chy]``, ``file`` relative to ``root``;
written by the synthetic generator, ``openfas data lfw``, or the user) or, when an image has no row, from the
ArcFace template scaled to the image (correct for aligned crops). Alternatively ``masked_root`` holds
pre-masked copies under the same relative paths (e.g. FMA-3D output). Each item returns the student input
(masked with probability ``mask_prob``), the unmasked face for the teacher, the identity label, whether it was
masked and the mask coverage. The randomness of an item depends only on (seed, epoch, index), so a resumed
run sees the same data.
"""

from __future__ import annotations

import csv
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from openfas.data.synth.masks import MASK_TYPES, apply_mask, sample_style, template_landmarks
from openfas.data.transforms import to_chw_float
from openfas.data.video import MediaError, read_image
from openfas.errors import OpenFASError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class IdentityDataError(OpenFASError, ValueError):
    """The identity folder (or its landmarks file) is unusable; the message names the path."""


def scan_identity_folder(root: str | Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(identity names, [(relative image path, label)]) of ``root/<identity>/<image>``."""
    root = Path(root)
    if not root.is_dir():
        raise IdentityDataError(f"{root}: identity folder root not found")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise IdentityDataError(f"{root}: no identity folders (expected root/<identity>/<image>)")
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise IdentityDataError(f"{root / name}: identity folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        samples += [(f"{name}/{f.name}", label) for f in files]
    return classes, samples


def read_landmarks(path: str | Path) -> dict[str, np.ndarray]:
    """``file → 5×2`` landmarks from a CSV with header ``file,lx,ly,rx,ry,nx,ny,mlx,mly,mrx,mry`` (``6×2``
    when the optional chin columns ``chx,chy`` follow; masks then end below the real chin)."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as err:
        raise IdentityDataError(f"{path}: cannot read landmarks ({err})") from None
    for no, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) not in (11, 13):
            raise IdentityDataError(f"{path}:{no}: expected file + 10 coordinates (+ 2 of the chin), "
                                    f"got {len(row)} fields")
        try:
            out[row[0]] = np.array([float(v) for v in row[1:]], np.float32).reshape(-1, 2)
        except ValueError:
            raise IdentityDataError(f"{path}:{no}: non-numeric landmark coordinate") from None
    return out


def load_face(path: str | Path, image_size: int, mean: float, std: float) -> torch.Tensor:
    """An aligned face image → normalised 3×S×S RGB tensor (``MediaError`` names a corrupt file)."""
    img = read_image(path)
    if img.shape[:2] != (image_size, image_size):
        img = cv2.resize(img, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(to_chw_float(img, mean, std))


class MaskedIdentityDataset(Dataset):
    """(masked-or-normal, normal, label) items from an identity folder; see the module docstring."""

    def __init__(self, root: str | Path, image_size: int = 112, mean: float = 0.5, std: float = 0.5,
                 mask_prob: float = 0.5, mask_types: tuple[str, ...] = MASK_TYPES,
                 masked_root: str | Path | None = None, landmarks: str | Path | None = None,
                 train: bool = True, seed: int = 0) -> None:
        self.root = Path(root)
        self.classes, self.samples = scan_identity_folder(self.root)
        if not 0.0 <= mask_prob <= 1.0:
            raise ValueError(f"mask_prob={mask_prob} must be in [0, 1]")
        bad = [t for t in mask_types if t not in MASK_TYPES]
        if bad or not mask_types:
            raise ValueError(f"mask_types {list(mask_types)}: use a non-empty subset of {list(MASK_TYPES)}")
        self.image_size, self.mean, self.std = image_size, mean, std
        self.mask_prob, self.mask_types = mask_prob, tuple(mask_types)
        self.masked_root = Path(masked_root) if masked_root else None
        if self.masked_root is not None and not self.masked_root.is_dir():
            raise IdentityDataError(f"{self.masked_root}: masked_root not found")
        lm_path = Path(landmarks) if landmarks else self.root / "landmarks.csv"
        if landmarks and not lm_path.is_file():
            raise IdentityDataError(f"{lm_path}: landmarks file not found")
        self.landmarks = read_landmarks(lm_path) if lm_path.is_file() else {}
        self.train, self.seed, self.epoch = train, seed, 0

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def labels(self) -> np.ndarray:
        return np.array([lab for _, lab in self.samples], np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(zlib.crc32(f"{self.seed}:{self.epoch}:{index}".encode()))

    def __getitem__(self, index: int) -> dict[str, Any]:
        rel, label = self.samples[index]
        rng = self._rng(index)
        normal = read_image(self.root / rel)
        h0, w0 = normal.shape[:2]
        size = self.image_size
        if self.masked_root is None and (h0, w0) != (size, size):
            # resize first, then draw the mask at the training size (a 112 px mask costs ~3× more to render)
            normal = cv2.resize(normal, (size, size), interpolation=cv2.INTER_AREA)
        masked, coverage, is_masked = normal, 0.0, False
        if rng.random() < self.mask_prob:
            is_masked = True
            if self.masked_root is not None:
                mpath = self.masked_root / rel
                if not mpath.is_file():
                    raise IdentityDataError(f"{mpath}: masked copy of {self.root / rel} not found")
                masked, coverage = read_image(mpath), float("nan")
            else:
                h, w = normal.shape[:2]
                lm = self.landmarks.get(rel)
                lm = template_landmarks(w, h) if lm is None else lm * np.array([w / w0, h / h0], np.float32)
                style = sample_style(rng, kinds=self.mask_types)
                try:
                    masked, _, coverage = apply_mask(normal, lm, style)
                except ValueError as err:
                    raise IdentityDataError(f"{self.root / rel}: cannot place a mask ({err})") from None
        if self.train and rng.random() < 0.5:
            normal, masked = normal[:, ::-1], masked[:, ::-1]

        def prep(img: np.ndarray) -> torch.Tensor:
            if img.shape[:2] != (size, size):
                img = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=cv2.INTER_AREA)
            return torch.from_numpy(to_chw_float(np.ascontiguousarray(img), self.mean, self.std))

        return {"image": prep(masked), "image_normal": prep(normal), "label": torch.tensor(label),
                "masked": torch.tensor(float(is_masked)), "coverage": torch.tensor(coverage, dtype=torch.float32),
                "index": torch.tensor(index)}


__all__ = ["IdentityDataError", "MaskedIdentityDataset", "load_face", "read_landmarks", "scan_identity_folder",
           "MediaError"]
