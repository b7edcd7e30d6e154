"""Augmentation with albumentations, applied identically to every modality and to the pixel-wise target.

Training recipes (``data.augment``; ``true`` = ``"openfas"``, ``false`` = ``"none"``), each a method's official one
where a method config names it (see docs/faithfulness.md):

* ``"openfas"`` – horizontal flip, mild affine (scale 0.9–1.1, shift 5 %, rotation 10°), colour jitter (p 0.5);
* ``"none"`` / ``"rfmeta"`` – resize only (RFMetaFAS's loaders apply no augmentation);
* ``"anrl"`` – horizontal flip (p 0.5) + HueSaturationValue (p 0.1, albumentations' default limits), TFace ANRL;
* ``"cdcn"`` – CDCN's official training transforms approximated: horizontal flip (p 0.5), a random face scale
  of 1.2–1.5 (an affine zoom of (1.3/1.5, 1.3/1.2) on crops cut at scale 1.3; the official code re-crops the
  frame instead, here the border is reflected), random erasing of 1–5 % of the area (p 0.5, aspect 0.5–2) and
  one cutout square of side 1–50 px of 256 (scaled to ``image_size``). Erasing and cutout touch the images only,
  never the target map;
* ``"real"`` – for small real-face sets recorded under one light and tested under another (NUAA sessions):
  random resized crop (area 60–100 %), flip, ±10° rotation; strong photometric changes because the test
  session has other light and camera settings — brightness/contrast ±0.4, gamma 0.6–1.6, colour temperature
  3000–15000 K (Planckian jitter), saturation/hue jitter, Gaussian or motion blur, JPEG quality 30–95, sensor
  noise, down-up scaling. The colour part touches the RGB crop only; the geometric part moves the target too;
* ``"geometric"`` – the geometric part of ``"real"`` alone, for texture inputs (``model.input_code: lbp``): those
  ignore brightness, contrast and gamma anyway, and blur, JPEG, noise and rescaling rewrite the very patterns
  they read.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np

RECIPES = ("openfas", "none", "rfmeta", "anrl", "cdcn", "real", "geometric")


def augment_recipe(value: bool | str) -> str:
    """``data.augment`` → recipe name (``True`` → ``"openfas"``, ``False`` → ``"none"``)."""
    if value is True:
        return "openfas"
    if value is False:
        return "none"
    if value not in RECIPES:
        raise ValueError(f"data.augment={value!r}: unknown recipe; use true, false or one of {', '.join(RECIPES)}")
    return str(value)


def build_transform(
    image_size: int,
    train: bool,
    modalities: Sequence[str] = ("rgb",),
    recipe: str = "openfas",
) -> A.Compose:
    """Geometric augmentation for all modalities + target (``mask``); photometric jitter for RGB only.

    Extra modalities are passed as ``additional_targets`` (type ``image``) so that flips and affine
    warps match pixel for pixel; colour jitter is applied afterwards to the RGB crop alone.
    """
    extra = {m: "image" for m in modalities if m != "rgb"}
    recipe = augment_recipe(recipe)
    ops: list[A.BasicTransform] = []
    if train and recipe in ("real", "geometric"):
        return A.Compose([
            A.RandomResizedCrop(size=(image_size, image_size), scale=(0.6, 1.0), ratio=(0.9, 1.1), p=1.0),
            A.HorizontalFlip(p=0.5),
            A.Affine(rotate=(-10, 10), border_mode=cv2.BORDER_REFLECT_101, p=0.3),
        ], additional_targets=extra)
    if train and recipe == "openfas":
        ops += [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10),
                     border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        ]
    elif train and recipe == "anrl":
        ops.append(A.HorizontalFlip(p=0.5))
    elif train and recipe == "cdcn":
        ops += [A.HorizontalFlip(p=0.5),
                A.Affine(scale=(1.3 / 1.5, 1.3 / 1.2), border_mode=cv2.BORDER_REFLECT_101, p=1.0)]
    ops.append(A.Resize(image_size, image_size, interpolation=cv2.INTER_LINEAR))
    if train and recipe == "cdcn":
        ops += [A.Erasing(scale=(0.01, 0.05), ratio=(0.5, 2.0), fill=0, p=0.5),
                A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(1 / 256, 50 / 256),
                                hole_width_range=(1 / 256, 50 / 256), fill=0, p=1.0)]
    return A.Compose(ops, additional_targets=extra)


def build_color_transform(train: bool, recipe: str = "openfas") -> A.Compose | None:
    """Photometric augmentation of the RGB crop (after the geometric one), or None."""
    recipe = augment_recipe(recipe)
    if not train or recipe in ("none", "rfmeta", "cdcn", "geometric"):
        return None
    if recipe == "anrl":
        return A.Compose([A.HueSaturationValue(p=0.1)])
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
