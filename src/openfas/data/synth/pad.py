"""Synthetic live/spoof face crops: every method, the demo and the DG protocols run with no licensed data.

**A test and demo aid, not a benchmark of real attacks.** The faces are procedural cartoons
(:mod:`openfas.data.synth.faces`) and the attacks are simple physical simulations of the cues the
literature relies on; accuracy on this data says nothing about accuracy on real presentation attacks.

* live: a shaded 3-D-looking face with fine skin texture, seen by the domain's camera;
* ``print``: the face re-captured through paper — printer gamut/contrast loss and blur, a rotated CMY
  halftone screen, paper texture, a cylindrical bend (non-planar warp) with its shading, sometimes the
  paper border and fingers;
* ``replay``: the face shown on a screen — display gamma and colour cast, the screen's RGB sub-pixel grid
  and black matrix resampled by the camera's pixel grid (moiré), specular glare, sometimes the bezel;
* per-domain camera (:func:`camera_params`): white balance, exposure, gamma, saturation, blur, down-scaling,
  sharpening, vignetting, noise and JPEG quality, drawn deterministically from the domain name and seed;
* optional ``depth`` (live: head relief; print: flat or bent plane; replay: flat plane) and ``ir`` (live:
  skin-like NIR; replay: screens nearly dark; print: bright paper with ink that is dark in NIR only for
  carbon inks) modalities, aligned with RGB. Attack strength is drawn per video independently per
  modality (e.g. a high-quality print is hard in RGB but flat in depth; a strongly bent print is harder in
  depth), so the modalities are partly complementary.

Live targets: ``mask`` (uint8 0/255, the face ellipse) and ``depth_target`` (the face relief, uint8).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from openfas.data.cache import CacheError, CropCacheWriter
from openfas.data.sample import LIVE, MODALITIES, SPOOF, CropRecord
from openfas.data.synth.faces import (
    Layers,
    Look,
    render_background,
    render_scene,
    sample_jitter,
    sample_look,
    sample_subject,
)

GENERATOR_VERSION = 1
SYNTH_ATTACKS: tuple[str, ...] = ("print", "replay")
_SS = 3  # supersampling of the screen-grid re-capture (moiré)
_SS_PRINT = 2  # supersampling of the halftone re-capture


class SynthCacheMismatch(CacheError):
    """A folder already holds a different synthetic set (or a non-synthetic cache)."""


def _seed(*parts: Any) -> int:
    """A stable 63-bit seed from arbitrary parts (strings included; never Python's salted ``hash``)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


# ----------------------------------------------------------------------------------------------- domains
@dataclass(frozen=True)
class CameraParams:
    """Capture conditions of one domain (camera + scene)."""

    wb: tuple[float, float, float]  # BGR gains (colour temperature and tint)
    exposure: float
    gamma: float
    saturation: float
    blur: float  # Gaussian sigma, px
    downscale: float  # resolution loss factor (>= 1)
    sharpen: float  # unsharp-mask amount
    noise: float  # sensor noise sigma, [0, 1] units
    jpeg_quality: int
    vignette: float
    wall: tuple[float, float, float]  # background colours (BGR)
    wall2: tuple[float, float, float]
    light: tuple[float, float, float]  # scene light colour (BGR)
    depth_noise: float
    depth_holes: float
    ir_gain: float
    ir_noise: float


def camera_params(domain: str, seed: int = 0, shift: float = 1.0) -> CameraParams:
    """Deterministic camera/scene parameters of a domain: any string, mixed with ``seed``.

    ``shift`` scales how far each domain's camera lies from a neutral one (see :func:`_stronger_camera`);
    1.0 (the default) gives exactly the parameters of generator version 1.
    """
    if shift != 1.0:
        return _stronger_camera(camera_params(domain, seed), domain, seed, shift)
    rng = np.random.default_rng(_seed("domain", str(domain), int(seed)))
    temp, tint = rng.uniform(-1, 1), rng.uniform(-1, 1)
    wb = (1.0 - 0.16 * temp, 1.0 + 0.05 * tint, 1.0 + 0.16 * temp)
    hue = rng.uniform(0, 1)
    base = np.array([0.5 + 0.3 * math.cos(2 * math.pi * (hue + k / 3)) for k in range(3)])
    wall = np.clip(base * rng.uniform(0.6, 1.1), 0.05, 0.95)
    wall2 = np.clip(wall * rng.uniform(0.5, 0.9) + rng.uniform(-0.1, 0.1, 3), 0.03, 0.95)
    light_t = rng.uniform(-1, 1)
    light = (1.0 - 0.1 * light_t, 1.0, 1.0 + 0.1 * light_t)
    return CameraParams(
        wb=_triple(wb),
        exposure=float(rng.uniform(0.8, 1.2)),
        gamma=float(rng.uniform(0.85, 1.2)),
        saturation=float(rng.uniform(0.75, 1.25)),
        blur=float(rng.uniform(0.0, 0.7)),
        downscale=float(rng.choice([1.0, 1.0, rng.uniform(1.1, 1.5)])),
        sharpen=float(rng.uniform(0, 0.6)),
        noise=float(rng.uniform(0.004, 0.02)),
        jpeg_quality=int(rng.integers(70, 97)),
        vignette=float(rng.uniform(0, 0.35)),
        wall=_triple(wall),
        wall2=_triple(wall2),
        light=_triple(light),
        depth_noise=float(rng.uniform(0.005, 0.03)),
        depth_holes=float(rng.uniform(0, 0.02)),
        ir_gain=float(rng.uniform(0.8, 1.15)),
        ir_noise=float(rng.uniform(0.005, 0.025)),
    )


def _triple(values: Iterable[float]) -> tuple[float, float, float]:
    a, b, c = (float(x) for x in values)
    return a, b, c


def _stronger_camera(cam: CameraParams, domain: str, seed: int, shift: float) -> CameraParams:
    """The domain camera with its deviation from a neutral camera scaled by ``shift`` (>= 0).

    Gains and curves (white balance, exposure, gamma, saturation, scene light, IR gain) move away from 1 by
    ``shift`` times their default deviation; degradations (blur, sharpening, noise, vignetting, JPEG loss
    100 − q, depth noise/holes, IR noise) are multiplied by ``shift``. Resolution loss grows too: downscale
    = 1 + (d − 1)·shift + (shift − 1)·u with u ~ U(0, 0.6) drawn per domain, so for shift > 1 most domains
    lose resolution (at shift = 1 every term is the default one). Stronger shifts make domains differ
    more, and texture cues of print/replay (halftone, moiré) fade in the blurrier, lower-quality domains
    while depth/IR cues are only made noisier: the held-out domain of a leave-one-out protocol gets harder.
    """
    if shift < 0:
        raise ValueError(f"domain_shift must be >= 0, got {shift}")
    u = float(np.random.default_rng(_seed("domain-shift", str(domain), int(seed))).uniform(0, 0.6))

    def away(x: float) -> float:
        return 1.0 + (x - 1.0) * shift

    return CameraParams(
        wb=_triple(max(0.3, away(x)) for x in cam.wb),
        exposure=max(0.3, away(cam.exposure)),
        gamma=max(0.3, away(cam.gamma)),
        saturation=max(0.0, away(cam.saturation)),
        blur=cam.blur * shift,
        downscale=max(1.0, 1.0 + (cam.downscale - 1.0) * shift + (shift - 1.0) * u),
        sharpen=cam.sharpen * shift,
        noise=cam.noise * shift,
        jpeg_quality=int(np.clip(round(100 - (100 - cam.jpeg_quality) * shift), 10, 100)),
        vignette=min(0.8, cam.vignette * shift),
        wall=cam.wall,
        wall2=cam.wall2,
        light=_triple(max(0.3, away(x)) for x in cam.light),
        depth_noise=cam.depth_noise * shift,
        depth_holes=min(0.2, cam.depth_holes * shift),
        ir_gain=max(0.3, away(cam.ir_gain)),
        ir_noise=cam.ir_noise * shift,
    )


def apply_camera(rgb: np.ndarray, cam: CameraParams, rng: np.random.Generator) -> np.ndarray:
    """Domain camera: float BGR in [0, 1] → uint8 BGR (blur, resolution, vignette, WB, noise, JPEG)."""
    h, w = rgb.shape[:2]
    img: np.ndarray = rgb.astype(np.float32)
    if cam.blur > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), cam.blur)
    if cam.downscale > 1.01:
        small = cv2.resize(
            img,
            (max(8, round(w / cam.downscale)), max(8, round(h / cam.downscale))),
            interpolation=cv2.INTER_AREA,
        )
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xs - w / 2) ** 2 + (ys - h / 2) ** 2) / (0.5 * (w * w + h * h) / 2)
    img = img * (1 - cam.vignette * r2)[..., None]
    img = img * np.asarray(cam.wb, np.float32) * cam.exposure
    gray = img.mean(axis=2, keepdims=True)
    img = gray + cam.saturation * (img - gray)
    img = np.clip(img, 0, 1) ** cam.gamma
    img = img + rng.standard_normal(img.shape, np.float32) * (cam.noise * (0.5 + np.sqrt(img)))
    if cam.sharpen > 0.02:
        img = img + cam.sharpen * (img - cv2.GaussianBlur(img, (0, 0), 1.0))
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, cam.jpeg_quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return out if decoded is None else decoded


def _gray3(x: np.ndarray) -> np.ndarray:
    g = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def apply_depth_sensor(depth: np.ndarray, cam: CameraParams, rng: np.random.Generator) -> np.ndarray:
    """Depth camera: smoothing, noise and a few missing-value holes → H×W×3 uint8 (gray replicated)."""
    h, w = depth.shape
    d = cv2.GaussianBlur(depth.astype(np.float32), (0, 0), 0.8)
    d = d + rng.standard_normal(d.shape, np.float32) * cam.depth_noise
    if cam.depth_holes > 0:
        holes = cv2.GaussianBlur((rng.random((h, w)) < cam.depth_holes).astype(np.float32), (0, 0), 1.5) > 0.1
        d[holes] = 0
    return _gray3(np.clip(d, 0, 1))


def apply_ir_camera(ir: np.ndarray, cam: CameraParams, rng: np.random.Generator) -> np.ndarray:
    """NIR camera: gain, blur, vignetting and noise → H×W×3 uint8 (gray replicated)."""
    h, w = ir.shape
    x = cv2.GaussianBlur(ir.astype(np.float32), (0, 0), 0.6) * cam.ir_gain
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xs - w / 2) ** 2 + (ys - h / 2) ** 2) / (0.25 * (w * w + h * h))
    x = x * (1 - 0.3 * r2) + rng.standard_normal(x.shape, np.float32) * cam.ir_noise
    return _gray3(np.clip(x, 0, 1))


# ------------------------------------------------------------------------------------------- attacks
@dataclass(frozen=True)
class _Medium:
    """Where a paper/screen lies in the camera image (inverse map camera → source pixels)."""

    center: tuple[float, float]  # camera px of the source centre
    angle: float
    scale: float  # camera px per source px
    bend: float  # total bend angle across half the width (radians), 0 = flat
    keystone: float
    src_w: int
    src_h: int
    margin: float  # paper/bezel border around the source, source px


def _medium_coords(med: _Medium, h: int, w: int, ss: int) -> tuple[np.ndarray, ...]:
    """Source coordinates (px, origin at the source's top-left) of every supersampled camera sample.

    Returns ``sx, sy, inside_src, inside_medium, alpha`` where ``alpha`` is the surface angle of the bent
    medium (cylinder about its vertical axis): camera x = sin(alpha) / k and arc length = alpha / k.
    """
    ys, xs = np.mgrid[0 : h * ss, 0 : w * ss].astype(np.float32)
    xs, ys = (xs + 0.5) / ss, (ys + 0.5) / ss
    dx, dy = xs - med.center[0], ys - med.center[1]
    c, s = math.cos(med.angle), math.sin(med.angle)
    px = (c * dx + s * dy) / med.scale
    py = (-s * dx + c * dy) / med.scale
    px = px / (1 + med.keystone * py / max(med.src_h, 1))
    hw = med.src_w / 2 + med.margin
    if abs(med.bend) > 1e-3:
        k = med.bend / hw
        arg = px * k
        valid = np.abs(arg) < 1
        alpha = np.arcsin(np.clip(arg, -0.999999, 0.999999))
        arc = alpha / k
    else:
        valid = np.ones_like(px, dtype=bool)
        alpha = np.zeros_like(px)
        arc = px
    sx, sy = arc + med.src_w / 2, py + med.src_h / 2
    in_src = valid & (sx >= 0) & (sx < med.src_w) & (sy >= 0) & (sy < med.src_h)
    in_med = valid & (np.abs(arc) < hw) & (np.abs(py) < med.src_h / 2 + med.margin)
    return sx, sy, in_src, in_med, alpha


def _down(x: np.ndarray, ss: int) -> np.ndarray:
    h, w = x.shape[:2]
    return cv2.resize(x.astype(np.float32), (w // ss, h // ss), interpolation=cv2.INTER_AREA)


def _fingers(h: int, w: int, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and shading of ``n`` fingers (capsules) entering from one image edge."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    edge = int(rng.integers(4))
    cov = np.zeros((h, w), np.float32)
    shade = np.ones((h, w), np.float32)
    width = rng.uniform(0.09, 0.13) * w
    pos = rng.uniform(0.15, 0.85)
    length = rng.uniform(0.12, 0.25) * h
    for i in range(n):
        t = pos + (i - (n - 1) / 2) * width * 1.1 / w
        p0 = {0: (t * w, -10.0), 1: (t * w, h + 10.0), 2: (-10.0, t * h), 3: (w + 10.0, t * h)}[edge]
        d = {0: (0.0, 1.0), 1: (0.0, -1.0), 2: (1.0, 0.0), 3: (-1.0, 0.0)}[edge]
        p1 = (p0[0] + d[0] * (length + 10), p0[1] + d[1] * (length + 10))
        vx, vy = xs - p0[0], ys - p0[1]
        tt = np.clip((vx * d[0] + vy * d[1]) / (length + 10), 0, 1)
        qx, qy = xs - (p0[0] + tt * (p1[0] - p0[0])), ys - (p0[1] + tt * (p1[1] - p0[1]))
        dist = np.sqrt(qx**2 + qy**2)
        c = np.clip(0.5 - (dist - width / 2), 0, 1)
        cov = np.maximum(cov, c)
        shade = np.where(c > 0, np.sqrt(np.clip(1 - (dist / (width / 2)) ** 2, 0.05, 1)), shade)
    return cov, shade


def _source_window(
    subj: Any,
    rng: np.random.Generator,
    cam: CameraParams,
    med: _Medium,
    fb: float,
    sx: np.ndarray,
    sy: np.ndarray,
) -> tuple[Layers, int, int]:
    """The photo/video shown by the attack (the same subject under its own light, face at the source centre),
    rendered only over the window of source pixels the camera sees; returns it and the window's origin."""
    look = sample_look(
        rng,
        np.asarray(cam.wall2) * rng.uniform(0.7, 1.3),
        np.asarray(cam.wall),
        np.array([1.0, 1.0, 1.0], np.float32),
    )
    jit = sample_jitter(rng)
    x0 = int(np.clip(np.floor(sx.min()) - 2, 0, med.src_w - 1))
    x1 = int(np.clip(np.ceil(sx.max()) + 2, x0 + 1, med.src_w))
    y0 = int(np.clip(np.floor(sy.min()) - 2, 0, med.src_h - 1))
    y1 = int(np.clip(np.ceil(sy.max()) + 2, y0 + 1, med.src_h))
    lay = render_scene(
        subj, look, jit, y1 - y0, x1 - x0, med.src_w / 2 - x0, med.src_h / 2 + 0.06 * fb - y0, fb, rng
    )
    return lay, x0, y0


@dataclass(frozen=True)
class _AttackScene:
    """What an attack renderer draws into: the subject the instrument shows, the domain camera, the side of the
    square frame (px), the rendered background layers ``(rgb, ir, depth)``, the scene light, and the (jittered)
    face centre and vertical face semi-axis in frame px; ``frame_rng`` draws the per-frame noise."""

    subj: Any
    cam: CameraParams
    size: int
    bg: tuple
    look: Look
    fc: tuple[float, float]
    face_b: float
    frame_rng: np.random.Generator


def _place_medium(
    rng: np.random.Generator, scene: _AttackScene, scale: float, edges: bool, margin_frac: float
) -> tuple[_Medium, float]:
    """Choose the source size so the source face lands at the scene's face centre with its semi-axis; return
    medium and the source face semi-axis (source px)."""
    fc, face_b = scene.fc, scene.face_b
    fb_src = face_b / scale
    extent = rng.uniform(2.3, 3.0) if edges else rng.uniform(4.0, 4.6)  # medium size / face semi-axis
    src = max(16, int(extent * face_b / scale))
    med = _Medium(
        center=(fc[0], fc[1] - 0.06 * face_b),
        angle=float(rng.normal(0, 0.08)),
        scale=scale,
        bend=0.0,
        keystone=float(rng.normal(0, 0.08)),
        src_w=src,
        src_h=int(src * rng.uniform(1.0, 1.25)),
        margin=margin_frac * src,
    )
    return med, fb_src


def _render_print(scene: _AttackScene, rng: np.random.Generator) -> dict[str, np.ndarray]:
    subj, cam, size, bg, look = scene.subj, scene.cam, scene.size, scene.bg, scene.look
    edges = rng.random() < 0.35
    quality = rng.uniform(0, 1)  # RGB difficulty: high quality = sharper, finer halftone, better gamut
    scale = rng.uniform(0.75, 1.0)
    med, fb_src = _place_medium(rng, scene, scale, edges, rng.uniform(0.04, 0.1))
    bend = float(
        rng.choice([-1, 1]) * (rng.uniform(0.0, 0.25) if rng.random() < 0.6 else rng.uniform(0.4, 0.9))
    )
    med = _Medium(**{**asdict(med), "bend": bend})
    ss = _SS_PRINT
    sx, sy, in_src, in_med, alpha = _medium_coords(med, size, size, ss)
    src, ox, oy = _source_window(subj, np.random.default_rng(rng.integers(2**63)), cam, med, fb_src, sx, sy)
    # Printer: contrast/gamut compression, desaturation, warm paper tint, printer blur.
    lo, hi = rng.uniform(0.04, 0.15) * (1.2 - quality), 1 - rng.uniform(0.05, 0.15) * (1.2 - quality)
    img = lo + (hi - lo) * src.rgb
    g = img.mean(axis=2, keepdims=True)
    img = g + rng.uniform(0.6, 0.95) * (img - g)
    img = cv2.GaussianBlur(img, (0, 0), 0.6 + 1.2 * (1 - quality) / scale * 0.5)
    ink_ir = rng.uniform(0.05, 0.9)  # dye inks are transparent in NIR, carbon black is not
    src_gray = cv2.cvtColor(np.clip(img, 0, 1).astype(np.float32), cv2.COLOR_BGR2GRAY)
    mx, my = (sx - 0.5 - ox).astype(np.float32), (sy - 0.5 - oy).astype(np.float32)
    printed = cv2.remap(img.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gray_s = cv2.remap(src_gray, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # CMY halftone screens at the classic angles (C 15°, M 75°, Y 0°), pitch in source px.
    pitch = rng.uniform(1.6, 2.4) * (1.2 - 0.4 * quality)
    cmy = 1 - printed
    halftoned = np.empty_like(cmy)
    for ch, ang in zip((2, 1, 0), (15, 75, 0), strict=True):  # BGR index of the complement of C, M, Y
        a = math.radians(ang)
        hu = (math.cos(a) * sx + math.sin(a) * sy) * (2 * math.pi / pitch)
        hv = (-math.sin(a) * sx + math.cos(a) * sy) * (2 * math.pi / pitch)
        spot = 0.5 + 0.25 * (np.cos(hu) + np.cos(hv))
        halftoned[..., ch] = np.clip((cmy[..., ch] - spot) / 0.25 + 0.5, 0, 1)
    mix = rng.uniform(0.2, 0.6) * (1.1 - quality)
    ink = (1 - mix) * cmy + mix * halftoned
    paper = np.array([0.93, 0.96, 0.97], np.float32) * rng.uniform(0.92, 1.0)
    colour = paper * (1 - ink)
    colour = np.where(in_src[..., None], colour, paper)
    # Bent-paper shading under the scene light, optional gloss band.
    la = look.light_az
    shade = look.ambient + look.diffuse * np.clip(np.cos(alpha - la) * math.cos(look.light_el * 0.5), 0, 1)
    colour = colour * shade[..., None] * look.light_color
    if rng.random() < 0.3:
        colour = colour + 0.15 * np.exp(-0.5 * ((alpha - la / 2) / 0.08) ** 2)[..., None] * (abs(bend) > 0.1)
    rgb = _down(colour, ss)
    cov = _down(in_med.astype(np.float32), ss)
    ir_s = 0.8 * (1 - ink_ir * (1 - gray_s) ** 1.5) * (0.5 + 0.5 * np.cos(alpha))
    ir_s = np.where(in_src, ir_s, 0.8 * np.cos(alpha))
    ir = _down(ir_s, ss)
    d0 = rng.uniform(0.35, 0.55)
    zdepth = d0 - (1 - np.cos(alpha)) * (med.src_w / 2 + med.margin) / abs(bend or 1) * scale / size * 0.8
    depth = _down(np.where(in_med, zdepth, 0), ss)
    # Paper texture (fibres), then composite over the real background.
    fib = cv2.GaussianBlur(scene.frame_rng.standard_normal((size, size), np.float32), (0, 0), 1.2)
    rgb = rgb * (1 + rng.uniform(0.01, 0.03) * 3 * fib)[..., None]
    bg_rgb, bg_ir, bg_depth = bg
    rgb = cov[..., None] * rgb + (1 - cov[..., None]) * bg_rgb
    ir = cov * ir + (1 - cov) * bg_ir
    depth = cov * depth + (1 - cov) * bg_depth
    if edges and rng.random() < 0.6 or rng.random() < 0.1:
        rgb, ir, depth = _add_fingers(rgb, ir, depth, rng, size, look, d0)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 0.3 + 0.9 * (1 - quality))  # recapture defocus
    return {"rgb": rgb, "ir": ir, "depth": depth}


def _add_fingers(
    rgb: np.ndarray,
    ir: np.ndarray,
    depth: np.ndarray,
    rng: np.random.Generator,
    size: int,
    look: Look,
    d0: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cov, shade = _fingers(size, size, rng, int(rng.integers(1, 4)))
    skin = sample_subject(int(rng.integers(2**31))).skin
    col = skin[None, None] * (look.ambient + look.diffuse * shade)[..., None] * look.light_color
    rgb = rgb * (1 - cov[..., None]) + cov[..., None] * col
    ir = ir * (1 - cov) + cov * 0.75 * shade
    depth = depth * (1 - cov) + cov * (d0 + 0.05 + 0.03 * shade)
    return rgb.astype(np.float32), ir.astype(np.float32), depth.astype(np.float32)


def _render_replay(scene: _AttackScene, rng: np.random.Generator) -> dict[str, np.ndarray]:
    subj, cam, size, bg, look = scene.subj, scene.cam, scene.size, scene.bg, scene.look
    edges = rng.random() < 0.3
    # Screen pixel pitch in camera px, chosen so the beat with the camera grid is a visible moiré.
    pitch = float(rng.choice([-1, 1]) * rng.uniform(0.07, 0.16) + 1.0)
    pitch = 1.0 / pitch  # screen frequency 1/pitch = 1 ± (0.07..0.16) cycles per camera px
    med, fb_src = _place_medium(rng, scene, pitch, edges, rng.uniform(0.04, 0.08))
    ss = _SS
    sx, sy, in_src, in_med, _ = _medium_coords(med, size, size, ss)
    src, ox, oy = _source_window(subj, np.random.default_rng(rng.integers(2**63)), cam, med, fb_src, sx, sy)
    disp = np.clip(src.rgb, 0, 1) ** rng.uniform(0.75, 1.3)  # display gamma
    disp = disp * np.array(
        [rng.uniform(1.0, 1.15), rng.uniform(0.95, 1.05), rng.uniform(0.85, 1.0)], np.float32
    )
    disp = np.clip(disp * rng.uniform(0.85, 1.1), 0, 1)
    iu = np.clip(np.floor(sx).astype(np.int64) - ox, 0, disp.shape[1] - 1)
    iv = np.clip(np.floor(sy).astype(np.int64) - oy, 0, disp.shape[0] - 1)
    shown = disp[iv, iu]  # each screen pixel shows one source pixel
    fu, fv = sx - np.floor(sx), sy - np.floor(sy)
    strength = rng.uniform(0.6, 1.0)  # how visible the sub-pixel structure is (defocus, diffuser)
    sub = np.empty_like(shown)
    for ch, k in zip((2, 1, 0), range(3), strict=True):  # R, G, B stripes left to right
        stripe = np.clip(0.5 - (np.abs(fu - (k + 0.5) / 3) - 0.13) * 3 * ss, 0, 1)
        sub[..., ch] = stripe
    matrix = np.clip((fv - 0.3) * 3 * ss + 0.5, 0, 1)  # black matrix between pixel rows
    grid = (sub * matrix[..., None]) / (sub * matrix[..., None]).mean(axis=(0, 1), keepdims=True).clip(1e-3)
    emission = shown * ((1 - strength) + strength * grid)
    bezel = np.float32(rng.uniform(0.03, 0.12))
    colour = np.where(in_src[..., None], emission, bezel)
    colour = cv2.GaussianBlur(colour.astype(np.float32), (0, 0), 0.25 * ss)  # camera optics
    rgb = _down(colour, ss)
    cov = _down(in_med.astype(np.float32), ss)
    on_screen = _down(in_src.astype(np.float32), ss)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    if rng.random() < 0.6:  # specular glare on the glass
        gx, gy = rng.uniform(0, size, 2)
        sgx, sgy = rng.uniform(0.08, 0.3, 2) * size
        ga = rng.uniform(0, math.pi)
        rx = (xs - gx) * math.cos(ga) + (ys - gy) * math.sin(ga)
        ry = -(xs - gx) * math.sin(ga) + (ys - gy) * math.cos(ga)
        glare = rng.uniform(0.15, 0.5) * np.exp(-0.5 * ((rx / sgx) ** 2 + (ry / sgy) ** 2))
        rgb = rgb + (glare * cov)[..., None] * look.light_color
    ir = on_screen * rng.uniform(0.02, 0.08) + (cov - on_screen) * 0.1
    d0 = rng.uniform(0.35, 0.55)
    depth = cov * (d0 + 0.04 * med.keystone * (ys - size / 2) / size)
    bg_rgb, bg_ir, bg_depth = bg
    rgb = rgb + (1 - cov[..., None]) * bg_rgb
    ir = ir + (1 - cov) * bg_ir
    depth = depth + (1 - cov) * bg_depth
    if edges and rng.random() < 0.5:
        rgb, ir, depth = _add_fingers(rgb, ir, depth, rng, size, look, d0)
    return {"rgb": np.clip(rgb, 0, 1).astype(np.float32), "ir": ir.astype(np.float32), "depth": depth}


# -------------------------------------------------------------------------------------------- public
def face_geometry(subject_seed: int, frame: int, size: int, rng_seed: int = 0) -> dict[str, float]:
    """The live face ellipse of :func:`render_sample` (pixels): ``cx, cy, a, b, angle`` (radians)."""
    rng = np.random.default_rng(_seed("video", int(rng_seed), "live"))
    subj = sample_subject(subject_seed)
    look = sample_look(rng, np.zeros(3), np.zeros(3), np.ones(3))
    jit = sample_jitter(np.random.default_rng(_seed("frame", int(rng_seed), "live", int(frame))))
    b = 0.36 * size
    return {
        "cx": size / 2 + jit.dx * b,
        "cy": size / 2 + 0.04 * size + jit.dy * b,
        "a": subj.aspect * b,
        "b": b,
        "angle": look.roll + jit.droll,
    }


def render_sample(
    subject_seed: int,
    attack: str,
    domain: str,
    frame: int,
    size: int,
    modalities: Sequence[str] = ("rgb",),
    rng_seed: int = 0,
    *,
    domain_seed: int = 0,
    face_scale: float = 0.36,
    face_center: tuple[float, float] | None = None,
    height: int | None = None,
    domain_shift: float = 1.0,
) -> dict[str, np.ndarray]:
    """Render one frame: ``{"rgb": H×W×3 uint8 BGR, "depth"/"ir": H×W×3 uint8, "mask", "depth_target": H×W}``.

    ``subject_seed`` fixes the identity, ``rng_seed`` the video (light, attack instrument), ``frame`` the
    per-frame jitter, ``domain`` (+ ``domain_seed``) the camera and scene. ``mask`` (0/255, the face
    ellipse) and ``depth_target`` (relief) are zero for attacks. ``face_scale`` is the face's vertical
    semi-axis as a fraction of the height (0.36 = a face crop; smaller = a face inside a larger scene).
    ``domain_shift`` scales the domain cameras' deviation from neutral (:func:`camera_params`).
    """
    if attack not in ("live", *SYNTH_ATTACKS):
        raise ValueError(f"synthetic attack must be 'live' or one of {SYNTH_ATTACKS}, got {attack!r}")
    bad = [m for m in modalities if m not in MODALITIES]
    if bad:
        raise ValueError(f"unknown modalities {bad}; expected a subset of {MODALITIES}")
    h, w = (height or size), size
    cam = camera_params(domain, domain_seed, domain_shift)
    vid_rng = np.random.default_rng(_seed("video", int(rng_seed), attack))
    frame_rng = np.random.default_rng(_seed("frame", int(rng_seed), attack, int(frame)))
    subj = sample_subject(subject_seed)
    look = sample_look(vid_rng, np.asarray(cam.wall), np.asarray(cam.wall2), np.asarray(cam.light))
    jit = sample_jitter(frame_rng)
    b = face_scale * h
    fc = face_center if face_center is not None else (w / 2, h / 2 + 0.04 * h)
    mask = np.zeros((h, w), np.uint8)
    relief = np.zeros((h, w), np.uint8)
    if attack == "live":
        lay = render_scene(subj, look, jit, h, w, fc[0], fc[1], b, frame_rng)
        layers = {"rgb": lay.rgb, "ir": lay.ir, "depth": lay.depth}
        mask = lay.mask.astype(np.uint8) * 255
        relief = np.clip(lay.relief * 255 + 0.5, 0, 255).astype(np.uint8)
    else:
        if h != w:
            raise ValueError("attacks are rendered square; pass height=None")
        bg = render_background(h, w, look)
        # Attack-instrument motion: the whole medium jitters a little between frames.
        fcj = (fc[0] + jit.dx * b, fc[1] + jit.dy * b)
        scene = _AttackScene(subj=subj, cam=cam, size=w, bg=bg, look=look, fc=fcj, face_b=b, frame_rng=frame_rng)
        fn = _render_print if attack == "print" else _render_replay
        layers = fn(scene, vid_rng)
    out: dict[str, np.ndarray] = {"mask": mask, "depth_target": relief}
    cam_rng = np.random.default_rng(_seed("camera", int(rng_seed), attack, int(frame)))
    for m in modalities:
        if m == "rgb":
            out["rgb"] = apply_camera(layers["rgb"], cam, cam_rng)
        elif m == "depth":
            out["depth"] = apply_depth_sensor(layers["depth"], cam, cam_rng)
        else:
            out["ir"] = apply_ir_camera(layers["ir"], cam, cam_rng)
    return out


def _splits(n: int) -> list[str]:
    """Per-subject split of one domain: 50 % train, 25 % dev, the rest test (each at least one)."""
    if n < 3:
        raise ValueError(f"subjects_per_domain must be >= 3 (one per split), got {n}")
    n_train = max(1, round(0.5 * n))
    n_dev = max(1, round(0.25 * n))
    n_train = min(n_train, n - n_dev - 1)
    return ["train"] * n_train + ["dev"] * n_dev + ["test"] * (n - n_train - n_dev)


def generate_synthetic(
    cache_dir: str | Path,
    *,
    domains: Sequence[str] = ("synth_a", "synth_b", "synth_c", "synth_d"),
    subjects_per_domain: int = 6,
    videos_per_subject: int = 1,
    frames_per_video: int = 2,
    size: int = 128,
    modalities: Sequence[str] = ("rgb",),
    target: str = "mask",
    attacks: Sequence[str] = SYNTH_ATTACKS,
    seed: int = 0,
    progress: bool = True,
    domain_shift: float = 1.0,
) -> Path:
    """Write a synthetic set into a crop cache (:class:`~openfas.data.cache.CropCacheWriter`) and return it.

    One media item per (domain, subject, video, attack): ``videos_per_subject`` live videos plus as many per
    attack, ``frames_per_video`` frames each. Subjects are split per domain 50/25/25 % into train/dev/test, so
    every split of every domain holds live and every attack. Idempotent and resumable: the parameters are
    stored in ``info.json["synth"]`` (and ``"synth_complete"`` once every item is written); a re-run with the
    same parameters returns at once when complete and otherwise only fills in the media items not done yet;
    a folder holding anything else raises :class:`SynthCacheMismatch` (nothing is overwritten: delete the
    folder or choose another one).

    ``domain_shift`` (default 1.0) scales how much the domain cameras differ (:func:`camera_params`); it is
    stored in ``info.json`` only when it is not 1.0, so default sets are byte-identical to earlier ones.
    """
    cache_dir = Path(cache_dir)
    if target not in ("mask", "depth"):
        raise ValueError(f"target must be 'mask' or 'depth', got {target!r}")
    bad = [a for a in attacks if a not in SYNTH_ATTACKS]
    if bad or not attacks:
        raise ValueError(f"attacks must be a non-empty subset of {SYNTH_ATTACKS}, got {list(attacks)}")
    if not domains or len(set(domains)) != len(domains):
        raise ValueError(f"domains must be non-empty and distinct, got {list(domains)}")
    if domain_shift < 0:
        raise ValueError(f"domain_shift must be >= 0, got {domain_shift}")
    if videos_per_subject < 1 or frames_per_video < 1 or size < 16:
        raise ValueError("videos_per_subject and frames_per_video must be >= 1 and size >= 16")
    if "rgb" not in modalities or any(m not in MODALITIES for m in modalities):
        raise ValueError(
            f"modalities must include 'rgb' and be a subset of {MODALITIES}, got {list(modalities)}"
        )
    splits = _splits(subjects_per_domain)
    params = {
        "version": GENERATOR_VERSION,
        "domains": list(domains),
        "subjects_per_domain": subjects_per_domain,
        "videos_per_subject": videos_per_subject,
        "frames_per_video": frames_per_video,
        "size": size,
        "modalities": list(modalities),
        "target": target,
        "attacks": list(attacks),
        "seed": seed,
    }
    if domain_shift != 1.0:
        params["domain_shift"] = float(domain_shift)
    info_path = cache_dir / "info.json"
    if info_path.exists() or (cache_dir / "crops.lmdb").exists():
        old = json.loads(info_path.read_text()).get("synth") if info_path.exists() else None
        if old != json.loads(json.dumps(params)):
            raise SynthCacheMismatch(
                f"{cache_dir}: already holds "
                f"{'a different synthetic set' if old else 'a non-synthetic cache'} "
                f"(stored {old}, asked {params}); delete the folder or pass another cache_dir"
            )
        if json.loads(info_path.read_text()).get("synth_complete"):
            return cache_dir  # already generated: touch nothing (not even the LMDB environment)
    media = []
    for domain in domains:
        for si in range(subjects_per_domain):
            subject_seed = _seed("subject", seed, domain, si) & 0x7FFFFFFF
            for vi in range(videos_per_subject):
                for attack in ("live", *attacks):
                    media.append((domain, si, splits[si], subject_seed, vi, attack))
    info = {"synth": params, "synth_complete": False, "source": "openfas.data.synth"}
    with CropCacheWriter(cache_dir, info=info) as writer:
        done = writer.done_media()
        todo = [m for m in media if _media_id(m[0], m[1], m[4], m[5]) not in done]
        for n, (domain, si, split, subject_seed, vi, attack) in enumerate(todo):
            media_id = _media_id(domain, si, vi, attack)
            rng_seed = _seed("video", seed, domain, si, vi)
            crops = []
            for f in range(frames_per_video):
                out = render_sample(
                    subject_seed, attack, domain, f, size, tuple(modalities), rng_seed, domain_seed=seed,
                    domain_shift=domain_shift,
                )
                rec = CropRecord(
                    sample_id=f"{media_id}-f{f:02d}",
                    media_id=media_id,
                    label=LIVE if attack == "live" else SPOOF,
                    attack=attack,
                    domain=domain,
                    subject=f"{domain}-s{si:02d}",
                    video=f"v{vi}-{attack}",
                    frame=f,
                    split=split,
                    modalities=tuple(modalities),
                    target=target if attack == "live" else "",
                )
                tgt = (out["mask"] if target == "mask" else out["depth_target"]) if attack == "live" else None
                crops.append((rec, {m: out[m] for m in modalities}, tgt))
            writer.add_media(media_id, crops)
            if progress and (n + 1 == len(todo) or (n + 1) % 50 == 0):
                print(f"synth: {n + 1}/{len(todo)} videos -> {cache_dir}", file=sys.stderr)
    info_path.write_text(
        json.dumps({**json.loads(info_path.read_text()), "synth_complete": True}, indent=2, sort_keys=True)
    )
    return cache_dir


def _media_id(domain: str, si: int, vi: int, attack: str) -> str:
    return f"{domain}-s{si:02d}-v{vi}-{attack}"


def write_folder_layout(
    out_dir: str | Path,
    *,
    domain: str,
    n_live: int,
    n_print: int,
    n_replay: int,
    size: int,
    seed: int,
    as_video: bool = False,
    frames: int = 6,
) -> Path:
    """Raw media in the plain layout ``live/``, ``spoof/print/``, ``spoof/replay/`` (to exercise ``prepare``).

    Each file shows one synthetic subject whose face (semi-axis ~12–18 % of the height) sits somewhere in a
    larger scene, not a crop. Images are PNG; with ``as_video`` each item is a short MJPG ``.avi`` of
    ``frames`` frames. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    plan = [("live", "live", n_live), ("print", "spoof/print", n_print), ("replay", "spoof/replay", n_replay)]
    for attack, sub, n in plan:
        folder = out_dir / sub
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng(_seed("layout", seed, domain, attack, i))
            fs = float(rng.uniform(0.12, 0.18))
            fc = (float(rng.uniform(0.3, 0.7) * size), float(rng.uniform(0.35, 0.6) * size))
            subject_seed = _seed("subject", seed, domain, "layout", attack, i) & 0x7FFFFFFF
            rng_seed = _seed("video", seed, domain, "layout", attack, i)
            name = f"{domain}_s{i:03d}_{attack}"
            n_frames = frames if as_video else 1
            imgs = [
                render_sample(
                    subject_seed,
                    attack,
                    domain,
                    f,
                    size,
                    ("rgb",),
                    rng_seed,
                    domain_seed=seed,
                    face_scale=fs,
                    face_center=fc,
                )["rgb"]
                for f in range(n_frames)
            ]
            if not as_video:
                path = folder / f"{name}.png"
                if not cv2.imwrite(str(path), imgs[0]):
                    raise OSError(f"{path}: could not write image")
                continue
            path = folder / f"{name}.avi"
            vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (size, size))
            if not vw.isOpened():
                raise OSError(f"{path}: OpenCV could not open an MJPG video writer")
            for img in imgs:
                vw.write(img)
            vw.release()
    return out_dir
