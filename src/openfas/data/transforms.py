"""Augmentation with albumentations, applied identically to every modality and to the pixel-wise target."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np


def build_transform(
    image_size: int,
    train: bool,
    modalities: Sequence[str] = ("rgb",),
) -> A.Compose:
    """Geometric augmentation for all modalities + target (``mask``); photometric jitter for RGB only.

    Extra modalities are passed as ``additional_targets`` (type ``image``) so that flips and affine
    warps match pixel for pixel; colour jitter is applied afterwards to the RGB crop alone.
    """
    extra = {m: "image" for m in modalities if m != "rgb"}
    ops: list[A.BasicTransform] = []
    if train:
        ops += [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10),
                     border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        ]
    ops.append(A.Resize(image_size, image_size, interpolation=cv2.INTER_LINEAR))
    return A.Compose(ops, additional_targets=extra)


def build_color_transform(train: bool) -> A.Compose | None:
    if not train:
        return None
    return A.Compose([
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
    ])


def to_chw_float(image: np.ndarray, mean: float = 0.5, std: float = 0.5) -> np.ndarray:
    """uint8 H×W×3 BGR → float32 3×H×W RGB, normalised as (x/255 − mean)/std."""
    rgb = image[:, :, ::-1].astype(np.float32) / 255.0
    return ((rgb - mean) / std).transpose(2, 0, 1).copy()
