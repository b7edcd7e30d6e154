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
* ``"colour"`` – ``"real"`` without the changes that rewrite fine texture (blur, JPEG, sensor noise, down-up
  scaling): its geometric part and its light and colour changes only, so the print grain and screen moiré a
  texture descriptor reads survive augmentation;
* ``"geometric"`` – the geometric part of ``"real"`` alone, for texture inputs (``model.input_code: lbp``): those
  ignore brightness, contrast and gamma anyway, and blur, JPEG, noise and rescaling rewrite the very patterns
  they read;
* ``"relight"`` – the geometric part of ``"real"``, then :class:`RandomRelight`: every crop gets an exposure, a
  white balance and a sensor-noise level drawn independently of its label. On NUAA's training sessions the face's
  mean colour alone separates live from print across sessions (AUC 1.000 / 0.993, three numbers per crop) and so
  does its noise relative to its brightness (0.98 / 0.99): live faces are darker, warmer and noisier there. Those
  are properties of one room's light and camera, not of the attack; this recipe makes them useless to the model;
* ``"light"`` – :class:`RandomRelight` alone, no geometric change (resize only): for methods whose targets are
  computed on the un-augmented crop (LDCNet's CAM quasi-ground-truth) or whose papers train without augmentation
  (RFMetaFAS), where only the light must stop telling the label.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np

RECIPES = ("openfas", "none", "rfmeta", "anrl", "cdcn", "real", "colour", "geometric", "relight", "light")
RESIZE_ONLY_RECIPES = ("none", "rfmeta", "light")  # training crops keep the stored crop's geometry
LIGHT_RECIPES = ("relight", "light")  # each crop's light is drawn independently of its label (RandomRelight)


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

    The first modality is the ``image`` argument, every other one (``rgb`` included when it is not first) an
    ``additional_targets`` entry of type ``image``, so that flips and affine warps match pixel for pixel; colour
    jitter (:func:`build_color_transform`) is applied afterwards to the RGB crop alone, wherever it stands.
    """
    extra = {m: "image" for m in modalities[1:]}
    recipe = augment_recipe(recipe)
    ops: list[A.BasicTransform] = []
    if train and recipe in ("real", "colour", "geometric", "relight"):
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


def central_window(size: int, fraction: float) -> slice:
    """The centred run of ``round(size · fraction)`` (at least 1) indices along an axis of ``size``."""
    n = max(1, int(round(size * fraction)))
    start = (size - n) // 2
    return slice(start, start + n)


def face_fraction(crop_scale: float) -> float:
    """Side of the central square that lies on the face, as a fraction of a crop cut at ``crop_scale`` × the face
    box: 0.75 / scale (the inner three quarters of the box), kept within [0.2, 1]."""
    return float(np.clip(0.75 / max(crop_scale, 1e-6), 0.2, 1.0))


def build_color_transform(train: bool, recipe: str = "openfas", crop_scale: float = 1.5) -> A.Compose | None:
    """Photometric augmentation of the RGB crop (after the geometric one), or None.

    ``crop_scale``: the crop's size in face boxes as the model sees it (the cache's ``--scale`` × ``crop_fraction``);
    ``"relight"`` measures the face's light in its :func:`face_fraction`.
    """
    recipe = augment_recipe(recipe)
    if not train or recipe in ("none", "rfmeta", "cdcn", "geometric"):
        return None
    if recipe == "anrl":
        return A.Compose([A.HueSaturationValue(p=0.1)])
    if recipe in LIGHT_RECIPES:
        return A.Compose([RandomRelight(centre=face_fraction(crop_scale))])
    if recipe in ("real", "colour"):
        light_and_colour = [
            A.RandomBrightnessContrast(brightness_limit=0.4, contrast_limit=0.4, p=0.8),
            A.RandomGamma(gamma_limit=(60, 160), p=0.5),
            A.PlanckianJitter(mode="blackbody", temperature_limit=(3000, 15000), p=0.5),
            A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=30, val_shift_limit=0, p=0.5),
        ]
        if recipe == "colour":
            return A.Compose(light_and_colour)
        return A.Compose([
            *light_and_colour,
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7))], p=0.3),
            A.ImageCompression(quality_range=(30, 95), p=0.5),
            A.GaussNoise(std_range=(0.01, 0.05), p=0.3),
            A.Downscale(scale_range=(0.5, 0.9), p=0.2),
        ])
    return A.Compose([
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
    ])


def relight(
    image: np.ndarray,
    brightness: float,
    chroma: Sequence[float] = (0.0, 0.0, 0.0),
    gamma: float = 1.0,
    noise_std: float = 0.0,
    rng: np.random.Generator | None = None,
    centre: float = 0.5,
) -> np.ndarray:
    """Set a uint8 crop's light: gamma, then per-channel gains, then Gaussian sensor noise.

    After ``x ← x^gamma`` (x in [0, 1]), channel c is scaled so that the mean of the central ``centre`` × ``centre``
    square (the face, for crops centred on it) becomes ``brightness · exp(chroma_c − mean(chroma))`` (8-bit units);
    then noise of standard deviation ``noise_std`` (8-bit units) is added and the result rounded and clipped.
    ``chroma = 0`` gives a grey-balanced face of mean ``brightness``, whatever the input's light.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"relight expects an H×W×3 image, got shape {image.shape}")
    if image.dtype == np.uint8:  # the same float32 power, computed once per level instead of once per pixel
        x = ((np.arange(256, dtype=np.float32) / 255.0) ** np.float32(gamma))[image]
    else:
        x = (image.astype(np.float32) / 255.0) ** np.float32(gamma)
    mean = x[central_window(x.shape[0], centre), central_window(x.shape[1], centre)].reshape(-1, 3).mean(0)
    u = np.asarray(chroma, np.float32)
    goal = np.float32(brightness / 255.0) * np.exp(u - u.mean())
    x = x * (goal / np.maximum(mean, 1.0 / 255.0))
    if noise_std > 0:
        gen = rng if rng is not None else np.random.default_rng()
        # scale · standard normal: the draws and values of gen.normal(0, scale), without its broadcasting loop
        x = x + (gen.standard_normal(size=x.shape) * (noise_std / 255.0)).astype(np.float32)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


class RandomRelight(A.ImageOnlyTransform):
    """A random light for each crop (:func:`relight`), drawn independently of its label.

    Face brightness uniform in ``brightness`` (8-bit), channel log-gains uniform in ±``chroma`` around grey, gamma
    log-uniform in ``gamma``, noise standard deviation uniform in ``noise_std`` (8-bit); the light is measured on the
    central ``centre`` × ``centre`` square (the face: :func:`face_fraction` of the crop's scale).
    """

    def __init__(
        self,
        brightness: tuple[float, float] = (40.0, 200.0),
        chroma: float = 0.3,
        gamma: tuple[float, float] = (0.7, 1.4),
        noise_std: tuple[float, float] = (0.0, 6.0),
        centre: float = 0.5,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if not 0.0 < centre <= 1.0:
            raise ValueError(f"RandomRelight: centre must be in (0, 1], got {centre}")
        self.brightness, self.chroma, self.gamma, self.noise_std = brightness, chroma, gamma, noise_std
        self.centre = centre

    def get_params(self) -> dict[str, object]:
        r = self.py_random
        return {
            "brightness": r.uniform(*self.brightness),
            "chroma": [r.uniform(-self.chroma, self.chroma) for _ in range(3)],
            "gamma": float(np.exp(r.uniform(np.log(self.gamma[0]), np.log(self.gamma[1])))),
            "noise_std": r.uniform(*self.noise_std),
            "noise_seed": r.randrange(2**31),
        }

    def apply(self, img: np.ndarray, brightness: float = 128.0, chroma: Sequence[float] = (0.0, 0.0, 0.0),
              gamma: float = 1.0, noise_std: float = 0.0, noise_seed: int = 0, **params: object) -> np.ndarray:
        return relight(img, brightness, chroma, gamma, noise_std, np.random.default_rng(noise_seed), self.centre)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("brightness", "chroma", "gamma", "noise_std", "centre")


def to_chw_float(image: np.ndarray, mean: float = 0.5, std: float = 0.5) -> np.ndarray:
    """uint8 H×W×3 BGR → float32 3×H×W RGB, normalised as (x/255 − mean)/std."""
    rgb = image[:, :, ::-1].astype(np.float32) / 255.0
    return ((rgb - mean) / std).transpose(2, 0, 1).copy()
