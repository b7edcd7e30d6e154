"""Augmentation with albumentations, applied identically to every modality and to the pixel-wise target.

Recipes (``data.augment_recipe``):

* ``default`` – flip, a mild affine warp (±10 %, ±10°) and a light colour jitter (±0.2);
* ``real`` – for small real-face sets recorded under one light and tested under another (NUAA sessions):
  random resized crop (area 60–100 %), flip, ±10° rotation; strong photometric changes because the test
  session has other light and camera settings — brightness/contrast ±0.4, gamma 0.6–1.6, colour temperature
  3000–15000 K (Planckian jitter), saturation/hue jitter, Gaussian or motion blur, JPEG quality 30–95, sensor
  noise, down-up scaling. The colour part touches the RGB crop only; the geometric part moves the target too.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np


def build_transform(
    image_size: int,
    train: bool,
    modalities: Sequence[str] = ("rgb",),
    recipe: str = "default",
) -> A.Compose:
    """Geometric augmentation for all modalities + target (``mask``); photometric jitter for RGB only.

    Extra modalities are passed as ``additional_targets`` (type ``image``) so that flips and affine
    warps match pixel for pixel; colour jitter is applied afterwards to the RGB crop alone.
    """
    extra = {m: "image" for m in modalities if m != "rgb"}
    ops: list[A.BasicTransform] = []
    if train and recipe == "real":
        return A.Compose([
            A.RandomResizedCrop(size=(image_size, image_size), scale=(0.6, 1.0), ratio=(0.9, 1.1), p=1.0),
            A.HorizontalFlip(p=0.5),
            A.Affine(rotate=(-10, 10), border_mode=cv2.BORDER_REFLECT_101, p=0.3),
        ], additional_targets=extra)
    if recipe not in ("default", "real"):
        raise ValueError(f"unknown augmentation recipe {recipe!r}; expected 'default' or 'real'")
    if train:
        ops += [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10),
                     border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        ]
    ops.append(A.Resize(image_size, image_size, interpolation=cv2.INTER_LINEAR))
    return A.Compose(ops, additional_targets=extra)


def build_color_transform(train: bool, recipe: str = "default") -> A.Compose | None:
    if not train:
        return None
    if recipe == "real":
        return A.Compose([
            A.RandomBrightnessContrast(brightness_limit=0.4, contrast_limit=0.4, p=0.8),
            A.RandomGamma(gamma_limit=(60, 160), p=0.5),
            A.PlanckianJitter(mode="blackbody", temperature_limit=(3000, 15000), p=0.5),
            A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=30, val_shift_limit=0, p=0.5),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7))], p=0.3),
            A.ImageCompression(quality_range=(30, 95), p=0.5),
            A.GaussNoise(std_range=(0.01, 0.05), p=0.3),
            A.Downscale(scale_range=(0.5, 0.9), p=0.2),
        ])
    return A.Compose([
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
    ])


def to_chw_float(image: np.ndarray, mean: float = 0.5, std: float = 0.5) -> np.ndarray:
    """uint8 H×W×3 BGR → float32 3×H×W RGB, normalised as (x/255 − mean)/std."""
    rgb = image[:, :, ::-1].astype(np.float32) / 255.0
    return ((rgb - mean) / std).transpose(2, 0, 1).copy()
