"""Synthetic identities with known landmarks and synthesised masks (a test and demo aid, not a benchmark).

Each identity is a :class:`openfas.data.synth.faces.Subject` (face shape, skin, eyes, brows, hair, glasses);
each image re-renders it under a new light, background, small pose and expression, and optionally degrades
it (down-up scaling, blur, noise, JPEG) to imitate low-quality captures. The five landmarks come from the
renderer's own geometry (:func:`render_landmarks`), and the face area for mask coverage is the renderer's
face ellipse, so coverage is exact.

Layout written by :func:`generate_identities` (CASIA-WebFace / MFR2 conventions)::

    root/train/<Name>/<k>.png            unmasked training images (masks are added on the fly in training)
    root/train/landmarks.csv             file,lx,ly,rx,ry,nx,ny,mlx,mly,mrx,mry (5 points, pixels)
    root/test/<Name>/<Name>_<i>.png      i = 1…k unmasked, k+1…2k masked (other renders), MFR2 style
    root/test/masks.csv                  file,identity,masked,mask_type,coverage,degraded
    root/test/pairs.txt                  masked-vs-unmasked pairs, MFR2 format ("Name i j" / "A i B j")
    root/test/pairs_unmasked.txt         unmasked-vs-unmasked pairs (sanity check)
    root/info.json                       generator parameters
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np

from openfas.data.synth.faces import Layers, Subject, render_scene, sample_jitter, sample_look, sample_subject
from openfas.data.synth.masks import MASK_TYPES, apply_mask, sample_style

GENERATOR_VERSION = 2  # 2: masks.csv gains the 'degraded' column (images unchanged)


def render_landmarks(subj: Subject, look, jit, cx: float, cy: float, b: float) -> np.ndarray:  # noqa: ANN001
    """The 5 landmarks (eyes, nose tip, mouth corners) + chin (6×2, px) of a :func:`render_scene` call,
    computed from the same geometry the renderer draws."""
    cx, cy = cx + jit.dx * b, cy + jit.dy * b
    a = subj.aspect * b
    roll = look.roll + jit.droll
    du = (look.yaw + jit.dyaw) * 0.25 * a
    mouth_v = subj.mouth_v * b - look.smile * 0.05 * b
    local = np.array([
        [-subj.eye_sep * a + du, subj.eye_v * b],
        [subj.eye_sep * a + du, subj.eye_v * b],
        [du, subj.nose_v * b],
        [-subj.mouth_w * a + du, mouth_v],
        [subj.mouth_w * a + du, mouth_v],
        [du, b],
    ], np.float32)
    c, s = math.cos(roll), math.sin(roll)
    x = cx + c * local[:, 0] - s * local[:, 1]
    y = cy + s * local[:, 0] + c * local[:, 1]
    return np.stack([x, y], 1).astype(np.float32)


def _render(subj: Subject, size: int, rng: np.random.Generator) -> tuple[Layers, np.ndarray]:
    wall = rng.uniform(0.2, 0.9, 3).astype(np.float32)
    wall2 = np.clip(wall * rng.uniform(0.6, 1.1, 3), 0, 1).astype(np.float32)
    light = rng.uniform(0.85, 1.1, 3).astype(np.float32)
    look = sample_look(rng, wall, wall2, light)
    jit = sample_jitter(rng)
    # Face placement of an ArcFace-style aligned crop: eyes near 0.46 H, mouth near 0.82 H.
    cx, cy, b = size * 0.5, size * 0.56, size * 0.40
    layers = render_scene(subj, look, jit, size, size, cx, cy, b, rng)
    return layers, render_landmarks(subj, look, jit, cx, cy, b)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low-quality capture: down-up scaling, Gaussian blur, sensor noise and JPEG, each at random."""
    h, w = image.shape[:2]
    out = image
    if rng.random() < 0.5:
        k = rng.uniform(1.5, 3.0)
        small = cv2.resize(out, (max(8, round(w / k)), max(8, round(h / k))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.2))
    if rng.random() < 0.4:
        noise = rng.normal(0, rng.uniform(2, 8), out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 80))])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            out = decoded
    return out


def _to_uint8(layers: Layers) -> np.ndarray:
    return np.clip(layers.rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _name(split: str, i: int) -> str:
    return f"{split.capitalize()}Person{i:03d}"


def generate_identities(root: str | Path, identities: int = 24, images_per_identity: int = 8,
                        test_identities: int = 16, test_images_per_identity: int = 4, size: int = 112,
                        degrade_prob: float = 0.5, mask_types: tuple[str, ...] = MASK_TYPES, seed: int = 0,
                        pairs_per_identity: int = 12) -> Path:
    """Write the layout of the module docstring (skipped when ``root/info.json`` already matches)."""
    root = Path(root)
    params = {"identities": identities, "images_per_identity": images_per_identity,
              "test_identities": test_identities, "test_images_per_identity": test_images_per_identity,
              "size": size, "degrade_prob": degrade_prob, "mask_types": list(mask_types), "seed": seed,
              "pairs_per_identity": pairs_per_identity, "generator_version": GENERATOR_VERSION}
    info = root / "info.json"
    if info.exists():
        try:
            if json.loads(info.read_text()) == params:
                return root
        except json.JSONDecodeError:
            pass
        raise FileExistsError(f"{root}: holds a different synthetic set (info.json differs); use another folder")
    if identities < 2 or test_identities < 2 or images_per_identity < 1 or test_images_per_identity < 2:
        raise ValueError("need >= 2 identities per split, >= 1 training image and >= 2 test images per identity")
    rng = np.random.default_rng([seed, 0x1D5])

    def maybe_degrade(img: np.ndarray) -> tuple[np.ndarray, bool]:
        if rng.random() < degrade_prob:
            return degrade(img, rng), True
        return img, False

    train = root / "train"
    train.mkdir(parents=True, exist_ok=True)
    with open(train / "landmarks.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["file", "lx", "ly", "rx", "ry", "nx", "ny", "mlx", "mly", "mrx", "mry"])
        for i in range(identities):
            subj = sample_subject(seed * 100_003 + i)
            d = train / _name("train", i)
            d.mkdir(exist_ok=True)
            for k in range(images_per_identity):
                layers, lm = _render(subj, size, rng)
                rel = f"{d.name}/{k:04d}.png"
                cv2.imwrite(str(train / rel), maybe_degrade(_to_uint8(layers))[0])
                wr.writerow([rel, *(f"{v:.2f}" for v in lm[:5].ravel())])

    test = root / "test"
    test.mkdir(parents=True, exist_ok=True)
    k = test_images_per_identity
    names = [_name("test", i) for i in range(test_identities)]
    with open(test / "masks.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["file", "identity", "masked", "mask_type", "coverage", "degraded"])
        for i, name in enumerate(names):
            subj = sample_subject(seed * 100_003 + 50_000 + i)
            d = test / name
            d.mkdir(exist_ok=True)
            for j in range(2 * k):
                layers, lm = _render(subj, size, rng)
                img = _to_uint8(layers)
                masked = j >= k
                kind, coverage = "", 0.0
                if masked:
                    style = sample_style(rng, kinds=tuple(mask_types))
                    img, _, coverage = apply_mask(img, lm, style, face_region=layers.mask)
                    kind = style.kind
                rel = f"{name}/{name}_{j + 1:04d}.png"
                img, degraded = maybe_degrade(img)
                cv2.imwrite(str(test / rel), img)
                wr.writerow([rel, name, int(masked), kind, f"{coverage:.4f}", int(degraded)])

    def write_pairs(path: Path, masked: bool) -> None:
        lines = []
        second = range(k + 1, 2 * k + 1) if masked else range(1, k + 1)
        for i, name in enumerate(names):
            cand = [(a, bb) for a in range(1, k + 1) for bb in second if masked or a < bb]
            pick = rng.permutation(len(cand))[:pairs_per_identity]
            lines += [f"{name} {cand[p][0]} {cand[p][1]}" for p in pick]
            for _ in range(len(pick)):
                other = names[(i + 1 + int(rng.integers(len(names) - 1))) % len(names)]
                lines.append(f"{name} {int(rng.integers(1, k + 1))} {other} {int(rng.choice(list(second)))}")
        path.write_text("\n".join(lines) + "\n")

    write_pairs(test / "pairs.txt", masked=True)
    write_pairs(test / "pairs_unmasked.txt", masked=False)
    info.write_text(json.dumps(params, indent=2))
    return root


__all__ = ["GENERATOR_VERSION", "degrade", "generate_identities", "render_landmarks"]
