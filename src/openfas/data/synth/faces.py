"""Procedural face scenes for the synthetic data generator (:mod:`openfas.data.synth.pad`).

Everything is drawn with vectorised implicit shapes (ellipses, bands, capsules) with one-pixel soft edges:
a subject (:class:`Subject`: skin tone, face shape, eyes/brows/nose/mouth, hair, glasses) is rendered under a
per-video look (:class:`Look`: Lambertian light direction, ambient level, background) with per-frame jitter
(:class:`Jitter`: pose, blink, mouth). A render returns aligned layers: linear-ish BGR colour in [0, 1], a
near-infrared image, a scene depth map, the binary face-ellipse mask and the face relief (pseudo-depth).

These are cartoons, not faces of people: the generator is a test and demo aid, not a benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Palettes in RGB (0..255), converted to BGR floats on use.
_SKIN = np.array(
    [
        (255, 224, 196),
        (241, 194, 160),
        (224, 172, 130),
        (198, 134, 94),
        (160, 102, 64),
        (112, 72, 46),
        (78, 52, 36),
    ],
    np.float32,
)
_HAIR = np.array(
    [(25, 20, 18), (60, 40, 28), (110, 75, 45), (200, 165, 100), (150, 70, 35), (160, 160, 155)], np.float32
)
_HAIR_IR = np.array([0.25, 0.3, 0.4, 0.6, 0.45, 0.6], np.float32)
_IRIS = np.array([(90, 55, 30), (45, 30, 20), (70, 110, 150), (80, 110, 70), (120, 95, 50)], np.float32)


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return (np.asarray(rgb, np.float32)[::-1] / 255.0).astype(np.float32)


@dataclass(frozen=True)
class Subject:
    """Identity: everything that stays fixed across videos and frames of one synthetic person."""

    skin: np.ndarray  # BGR [0, 1]
    lip: np.ndarray
    hair: np.ndarray
    hair_ir: float
    iris: np.ndarray
    clothes: np.ndarray
    clothes_ir: float
    aspect: float  # face ellipse a / b
    eye_sep: float
    eye_v: float
    eye_w: float
    eye_h: float
    brow_gap: float
    brow_th: float
    brow_arch: float
    nose_v: float
    nose_w: float
    mouth_v: float
    mouth_w: float
    lip_h: float
    hair_style: int  # 0 bald-ish, 1 short, 2 medium, 3 long
    hairline: float
    fringe_phase: float
    glasses: bool
    texture_amp: float


def sample_subject(seed: int) -> Subject:
    """Draw a subject deterministically from ``seed``."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EB])
    t = rng.uniform(0, len(_SKIN) - 1)
    i = int(t)
    skin_rgb = _SKIN[i] * (1 - (t - i)) + _SKIN[min(i + 1, len(_SKIN) - 1)] * (t - i)
    skin_rgb = np.clip(skin_rgb * rng.uniform(0.95, 1.05, 3), 0, 255)
    skin = _bgr(skin_rgb)
    lip = np.clip(skin * np.array([0.75, 0.62, 1.0], np.float32) * rng.uniform(0.8, 0.95), 0, 1)
    h = int(rng.integers(len(_HAIR)))
    clothes = rng.uniform(0.1, 0.9, 3).astype(np.float32)
    return Subject(
        skin=skin,
        lip=lip.astype(np.float32),
        hair=_bgr(_HAIR[h] * rng.uniform(0.85, 1.15)),
        hair_ir=float(_HAIR_IR[h]),
        iris=_bgr(_IRIS[rng.integers(len(_IRIS))]),
        clothes=clothes,
        clothes_ir=float(rng.uniform(0.3, 0.75)),
        aspect=float(rng.uniform(0.72, 0.86)),
        eye_sep=float(rng.uniform(0.34, 0.44)),
        eye_v=float(rng.uniform(-0.2, -0.08)),
        eye_w=float(rng.uniform(0.14, 0.19)),
        eye_h=float(rng.uniform(0.05, 0.075)),
        brow_gap=float(rng.uniform(0.12, 0.18)),
        brow_th=float(rng.uniform(0.025, 0.05)),
        brow_arch=float(rng.uniform(0.0, 1.0)),
        nose_v=float(rng.uniform(0.18, 0.3)),
        nose_w=float(rng.uniform(0.08, 0.13)),
        mouth_v=float(rng.uniform(0.46, 0.56)),
        mouth_w=float(rng.uniform(0.2, 0.3)),
        lip_h=float(rng.uniform(0.035, 0.06)),
        hair_style=int(rng.integers(4)),
        hairline=float(rng.uniform(-0.62, -0.42)),
        fringe_phase=float(rng.uniform(0, 2 * math.pi)),
        glasses=bool(rng.random() < 0.15),
        texture_amp=float(rng.uniform(0.05, 0.09)),
    )


@dataclass(frozen=True)
class Look:
    """Per-video conditions: light, background and base pose/expression."""

    light_az: float  # radians, 0 = frontal
    light_el: float
    diffuse: float
    ambient: float
    light_color: np.ndarray  # BGR gains
    wall: np.ndarray  # BGR
    wall2: np.ndarray
    bg_seed: int
    roll: float
    yaw: float
    smile: float


def sample_look(
    rng: np.random.Generator, wall: np.ndarray, wall2: np.ndarray, light_color: np.ndarray
) -> Look:
    """Draw per-video conditions; ``wall``/``wall2``/``light_color`` come from the domain."""
    vary = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    return Look(
        light_az=float(rng.uniform(-1.0, 1.0)),
        light_el=float(rng.uniform(0.15, 0.8)),
        diffuse=float(rng.uniform(0.55, 0.8)),
        ambient=float(rng.uniform(0.3, 0.45)),
        light_color=np.asarray(light_color, np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32),
        wall=np.clip(np.asarray(wall, np.float32) * vary, 0, 1),
        wall2=np.clip(np.asarray(wall2) * vary, 0, 1),
        bg_seed=int(rng.integers(2**31)),
        roll=float(rng.normal(0, 0.05)),
        yaw=float(rng.normal(0, 0.08)),
        smile=float(rng.uniform(-0.3, 1.0)),
    )


@dataclass(frozen=True)
class Jitter:
    """Per-frame pose and expression jitter (small)."""

    dx: float  # fraction of face half-height
    dy: float
    droll: float
    dyaw: float
    mouth_open: float
    blink: float
    gaze: float


def sample_jitter(rng: np.random.Generator) -> Jitter:
    return Jitter(
        dx=float(rng.normal(0, 0.03)),
        dy=float(rng.normal(0, 0.03)),
        droll=float(rng.normal(0, 0.03)),
        dyaw=float(rng.normal(0, 0.03)),
        mouth_open=float(max(0.0, rng.normal(0.01, 0.02))),
        blink=float(0.85 if rng.random() < 0.08 else 0.0),
        gaze=float(rng.normal(0, 0.15)),
    )


@dataclass
class Layers:
    """Aligned renders of one scene (all H×W)."""

    rgb: np.ndarray  # H×W×3 float32 BGR in [0, 1]
    ir: np.ndarray  # H×W float32 in [0, 1]
    depth: np.ndarray  # H×W float32, 0 = far, larger = nearer
    mask: np.ndarray  # H×W bool, face ellipse
    relief: np.ndarray  # H×W float32 in [0, 1], face pseudo-depth (0 outside the face)


def _cov(sd: np.ndarray) -> np.ndarray:
    """Coverage of a shape from its signed distance in pixels (negative inside), one-pixel soft edge."""
    return np.clip(0.5 - sd, 0.0, 1.0).astype(np.float32)


def _ellipse_sd(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
    q = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return (q - 1.0) * min(ru, rv)


def _gauss(u: np.ndarray, v: np.ndarray, cu: float, cv: float, su: float, sv: float) -> np.ndarray:
    return np.exp(-0.5 * (((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2)).astype(np.float32)


def _blend(dst: np.ndarray, alpha: np.ndarray, value: np.ndarray | np.floating | float) -> np.ndarray:
    a = alpha[..., None] if dst.ndim == 3 else alpha
    return dst * (1 - a) + a * value


def lowfreq_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: a coarse random grid upsampled bicubically."""
    g = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
    return np.clip(cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC), -1, 1)


def render_background(h: int, w: int, look: Look) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The wall behind the subject: colour gradient, soft blobs, an optional vertical edge, fine texture."""
    rng = np.random.default_rng([look.bg_seed, 7])
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    rgb = look.wall[None, None] * (1 - yy) + look.wall2[None, None] * yy
    rgb = rgb * (1 + 0.18 * lowfreq_noise(rng, h, w, 3))[..., None]
    if rng.random() < 0.5:  # door frame / shelf edge
        x0 = rng.uniform(0.05, 0.95) * w
        xs = np.arange(w, dtype=np.float32)[None, :] + 0.5
        band = _cov(np.abs(xs - x0) - rng.uniform(1, 0.04 * w + 1.5))
        rgb = _blend(rgb, np.broadcast_to(band, (h, w)), look.wall2 * 0.6)
    rgb = rgb * (1 + 0.02 * rng.standard_normal((h, w), np.float32))[..., None]
    ir = np.full((h, w), 0.15, np.float32) * (1 + 0.2 * lowfreq_noise(rng, h, w, 2))
    depth = np.full((h, w), 0.06, np.float32)
    return np.clip(rgb, 0, 1).astype(np.float32), ir.astype(np.float32), depth


def render_scene(
    subj: Subject,
    look: Look,
    jit: Jitter,
    h: int,
    w: int,
    cx: float,
    cy: float,
    b: float,
    rng: np.random.Generator,
) -> Layers:
    """Render the subject with face-ellipse centre ``(cx, cy)`` px and vertical semi-axis ``b`` px.

    Shading is Lambertian on a height field (ellipsoid head + nose, sockets, lips, chin), plus a small
    specular lobe on skin; skin carries fine multiplicative noise (the high-frequency detail that print and
    replay recapture destroy).
    """
    cx, cy = cx + jit.dx * b, cy + jit.dy * b
    a = subj.aspect * b
    roll = look.roll + jit.droll
    yaw = look.yaw + jit.dyaw
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    dx, dy = xs - cx, ys - cy
    c, s = math.cos(roll), math.sin(roll)
    u = c * dx + s * dy  # face-local pixels, u to the right, v down
    v = -s * dx + c * dy
    un, vn = u / a, v / b
    du = yaw * 0.25 * a  # features shift with yaw

    rgb, ir, depth = render_background(h, w, look)
    height = np.zeros((h, w), np.float32)

    # Clothes / shoulders and neck.
    sh = _cov(_ellipse_sd(u, v, 0, 2.45 * b, 2.3 * a, 1.15 * b))
    rgb = _blend(rgb, sh, subj.clothes)
    ir = _blend(ir, sh, subj.clothes_ir)
    height = _blend(height, sh, 0.2 * np.sqrt(np.clip(1 - (u / (2.3 * a)) ** 2, 0, 1)))
    if subj.hair_style == 3:  # long hair behind the neck
        hb = _cov(np.maximum(np.abs(u) - 1.2 * a, np.maximum(-0.1 * b - v, v - 1.55 * b)))
        rgb = _blend(rgb, hb, subj.hair * 0.8)
        ir = _blend(ir, hb, subj.hair_ir * 0.8)
        height = _blend(height, hb, 0.15)
    neck = _cov(np.maximum(np.abs(u) - 0.45 * a, np.maximum(0.4 * b - v, v - 1.6 * b)))
    rgb = _blend(rgb, neck, subj.skin * 0.85)
    ir = _blend(ir, neck, 0.7)
    height = _blend(height, neck, 0.35 * np.sqrt(np.clip(1 - (u / (0.45 * a)) ** 2, 0, 1)))
    # Ears.
    ears = np.maximum(
        _cov(_ellipse_sd(u, v, -0.98 * a, 0.05 * b, 0.13 * a, 0.2 * b)),
        _cov(_ellipse_sd(u, v, 0.98 * a, 0.05 * b, 0.13 * a, 0.2 * b)),
    )
    rgb = _blend(rgb, ears, subj.skin * 0.95)
    ir = _blend(ir, ears, 0.75)
    height = _blend(height, ears, 0.3)

    # Face: ellipse, relief and albedo.
    q2 = un**2 + vn**2
    face_sd = (np.sqrt(q2) - 1.0) * b * subj.aspect
    face = _cov(face_sd)
    mask = q2 <= 1.0
    ev, es = subj.eye_v, subj.eye_sep
    rel = 0.6 * np.sqrt(np.clip(1 - q2, 0, 1))
    tip = subj.nose_v
    t = np.clip((vn + 0.15) / (tip + 0.15), 0, 1)
    fade = np.exp(-0.5 * (np.maximum(vn - tip, 0) / 0.04) ** 2) * (vn > -0.2)
    rel = rel + (0.06 + 0.14 * t) * fade * np.exp(-0.5 * ((u - du) / (subj.nose_w * a)) ** 2)
    for side in (-1, 1):
        rel = rel - 0.07 * _gauss(un, vn, side * es + du / a, ev, 0.13, 0.08)
        rel = rel + 0.04 * _gauss(un, vn, side * 0.45 + du / a, 0.15, 0.15, 0.12)
    rel = rel + 0.03 * _gauss(un, vn, du / a, ev - subj.brow_gap, 0.45, 0.05)
    rel = rel + 0.03 * _gauss(un, vn, du / a, subj.mouth_v, 0.2, 0.06)
    rel = rel + 0.04 * _gauss(un, vn, du / a, 0.82, 0.25, 0.1)
    rel = (rel * face).astype(np.float32)
    height = _blend(height, face, 0.25 + rel)
    relief = np.where(mask, rel / max(float(rel.max()), 1e-6), 0.0).astype(np.float32)

    skin: np.ndarray = np.broadcast_to(subj.skin, (h, w, 3)).astype(np.float32)
    for side in (-1, 1):  # cheek blush
        g = 0.12 * _gauss(un, vn, side * 0.45 + du / a, 0.22, 0.18, 0.12)
        skin = skin * (1 - g[..., None] * np.array([0.5, 0.4, 0.0], np.float32))
    rgb = _blend(rgb, face, skin)
    ir = _blend(ir, face, 0.78)
    skin_a = np.maximum(face, np.maximum(neck, ears))

    # Eyes, irises, pupils, lids.
    for side in (-1, 1):
        ecu, ecv = side * es * a + du, ev * b
        ew, eh = subj.eye_w * a, max(subj.eye_h * b * (1 - jit.blink), 0.6)
        eye = _cov(_ellipse_sd(u, v, ecu, ecv, ew, eh)) * face
        rgb = _blend(rgb, eye, np.array([0.88, 0.9, 0.92], np.float32))
        ir = _blend(ir, eye, 0.72)
        ri = 0.75 * subj.eye_h * b
        icu = ecu + jit.gaze * ew * 0.4
        iris = _cov(np.hypot(u - icu, v - ecv) - ri) * eye
        rgb = _blend(rgb, iris, subj.iris)
        ir = _blend(ir, iris, 0.45)
        pupil = _cov(np.hypot(u - icu, v - ecv) - 0.45 * ri) * eye
        rgb = _blend(rgb, pupil, np.float32(0.03))
        ir = _blend(ir, pupil, 0.04)
        qe = np.sqrt(((u - ecu) / (ew * 1.05)) ** 2 + ((v - ecv) / (eh * 1.15 + 0.8)) ** 2)
        lid = _cov(np.abs(qe - 1.0) * eh - max(0.6, 0.012 * b)) * (v < ecv + 0.2 * eh) * face
        rgb = _blend(rgb, lid, subj.hair * 0.5)
        ir = _blend(ir, lid, 0.3)
        # Brow: an arched band tapering outwards.
        tb = (u - ecu) / (subj.eye_w * a * 1.3)
        vc = (ev - subj.brow_gap) * b - subj.brow_arch * 0.05 * b * (1 - tb**2)
        th = subj.brow_th * b * (1 - 0.35 * np.clip(side * tb, 0, 1))
        brow = _cov(np.maximum(np.abs(v - vc) - th, (np.abs(tb) - 1) * subj.eye_w * a)) * face
        rgb = _blend(rgb, brow, subj.hair * 0.9)
        ir = _blend(ir, brow, subj.hair_ir)
        # Nostril.
        nos = (
            _cov(
                _ellipse_sd(
                    u, v, side * 0.55 * subj.nose_w * a + du, (tip + 0.02) * b, 0.045 * a, 0.022 * b + 0.4
                )
            )
            * face
        )
        rgb = _blend(rgb, nos, subj.skin * 0.35)
        ir = _blend(ir, nos, 0.4)

    # Mouth: upper/lower lips around a smile-curved centre line, dark opening.
    tm = (u - du) / (subj.mouth_w * a)
    inside_t = np.clip(1 - tm**2, 0, 1)
    vl = subj.mouth_v * b - look.smile * 0.05 * b * tm**2
    opening = jit.mouth_open * b
    lh = subj.lip_h * b
    edge = (np.abs(tm) - 1) * subj.mouth_w * a
    upper = _cov(np.maximum(np.maximum(vl - v - lh * np.sqrt(inside_t) - 0.3, v - vl), edge))
    lower = _cov(
        np.maximum(np.maximum(v - vl - opening - 1.2 * lh * np.sqrt(inside_t) - 0.3, vl + opening - v), edge)
    )
    gap = _cov(np.maximum(np.maximum(np.abs(v - vl - opening / 2) - opening / 2 - 0.4, edge), -inside_t))
    lips = np.maximum(upper, lower) * face
    rgb = _blend(rgb, lips, subj.lip)
    ir = _blend(ir, lips, 0.7)
    rgb = _blend(rgb, gap * face, subj.lip * 0.25)

    # Hair: sides (outside the face) and top/fringe.
    if subj.hair_style > 0:
        outer_sd = _ellipse_sd(u, v, 0, -0.12 * b, 1.13 * a, 1.08 * b)
        side_lim = {1: 0.05, 2: 0.45, 3: 0.9}[subj.hair_style] * b
        hs = _cov(np.maximum(np.maximum(outer_sd, -face_sd), v - side_lim))
        hline = (subj.hairline + 0.35 * un**2 + 0.03 * np.sin(9 * un + subj.fringe_phase)) * b
        hf = _cov(np.maximum(outer_sd, v - hline))
        hair = np.maximum(hs, hf)
        strands = cv2.GaussianBlur(
            rng.standard_normal((h, w), np.float32), (0, 0), sigmaX=0.6, sigmaY=max(1.0, 0.04 * b)
        )
        hair_col = subj.hair[None, None] * (1 + 0.6 * strands)[..., None]
        rgb = _blend(rgb, hair, hair_col)
        ir = _blend(ir, hair, subj.hair_ir * (1 + 0.3 * strands))
        hz = 0.62 * np.sqrt(np.clip(1 - (u / (1.13 * a)) ** 2 - ((v + 0.12 * b) / (1.08 * b)) ** 2, 0, 1))
        height = _blend(height, hair, 0.27 + hz)
        skin_a = skin_a * (1 - hair)
    if subj.glasses:
        ring = np.zeros((h, w), np.float32)
        for side in (-1, 1):
            ecu = side * es * a + du
            ring = np.maximum(
                ring,
                _cov(
                    np.abs(
                        np.hypot((u - ecu) / (1.35 * subj.eye_w * a), (v - ev * b) / (2.2 * subj.eye_h * b))
                        - 1
                    )
                    * 2.2
                    * subj.eye_h
                    * b
                    - max(0.6, 0.015 * b)
                ),
            )
        bridge = _cov(
            np.maximum(np.abs(u - du) - (es - 1.35 * subj.eye_w) * a, np.abs(v - ev * b) - 0.015 * b)
        )
        ring = np.maximum(ring, bridge) * (np.abs(un) < 1.05)
        rgb = _blend(rgb, ring, np.float32(0.08))
        ir = _blend(ir, ring, 0.1)
        height = _blend(height, ring, height + 0.04)

    # Lambertian shading of the height field (height in units of b px).
    hs_px = cv2.GaussianBlur(height, (0, 0), 1.0) * b
    gy, gx = np.gradient(hs_px)
    gx, gy = np.clip(gx, -4, 4), np.clip(gy, -4, 4)
    inv = 1.0 / np.sqrt(gx**2 + gy**2 + 1)
    nx, ny, nz = -gx * inv, -gy * inv, inv
    lx = math.sin(look.light_az) * math.cos(look.light_el)
    ly = -math.sin(look.light_el) * 0.6
    lz = math.cos(look.light_az) * math.cos(look.light_el)
    ln = math.sqrt(lx * lx + ly * ly + lz * lz)
    ndl = np.clip((nx * lx + ny * ly + nz * lz) / ln, 0, 1)
    fg = (height > 1e-3).astype(np.float32)
    shade = look.ambient + look.diffuse * ndl
    shade = fg * shade + (1 - fg) * (look.ambient + 0.6 * look.diffuse)
    hz = (lz / ln + 1) / 2  # Blinn half-vector z for a viewer at +z
    hx, hy = lx / ln / 2, ly / ln / 2
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    spec = 0.18 * np.clip((nx * hx + ny * hy + nz * hz) / hn, 0, 1) ** 24 * skin_a
    # Fine skin texture (pores, micro-shading) and sparse dark pores.
    tex = rng.standard_normal((h, w), np.float32)
    tex = 0.7 * tex + 0.5 * cv2.GaussianBlur(rng.standard_normal((h, w), np.float32), (0, 0), 0.8) * 2.0
    pores = (rng.random((h, w)) < 0.03).astype(np.float32)
    skin_tex = 1 + skin_a * (subj.texture_amp * tex - 0.12 * pores)
    rgb = rgb * (shade * skin_tex)[..., None] * look.light_color + spec[..., None]
    # Near-IR: active illuminator at the camera (frontal light, distance fall-off); skin is smoother in NIR.
    ir_shade = fg * (0.35 + 0.65 * nz) + (1 - fg)
    ir = ir * ir_shade * (1 + skin_a * 0.3 * subj.texture_amp * tex)
    depth = np.where(height > 1e-3, 0.3 + 0.6 * height, depth).astype(np.float32)
    return Layers(
        rgb=np.clip(rgb, 0, 1).astype(np.float32),
        ir=np.clip(ir, 0, 1).astype(np.float32),
        depth=np.clip(depth, 0, 1),
        mask=mask,
        relief=relief,
    )
