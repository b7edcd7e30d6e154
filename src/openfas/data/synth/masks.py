"""Procedural face-mask synthesis from five facial landmarks (no mask assets are shipped or downloaded).

The approach follows the 2-D, landmark-driven family of simulators (MaskTheFace warps RGBA templates onto
68-point anchors); here the mask outline is drawn directly in a face-aligned frame built from the five
ArcFace-style landmarks (eye centres, nose tip, mouth corners) plus an optional chin point:

* origin at the eye midpoint, ``x`` along the eye line in units of the inter-ocular distance ``d``,
  ``y`` perpendicular (towards the mouth) in units of the eye-to-mouth distance ``q``;
* in that frame the nose bridge spans ``y ≈ 0.1 … 0.35``, the nose tip sits near ``y ≈ 0.5``, the mouth at
  ``y = 1`` and the chin near ``y ≈ 1.6`` (or exactly where a sixth landmark, the chin, says);
* a mask is a closed outline: a top edge on the nose bridge (``top ∈ [0.12, 0.28]``, drawn per image, as real
  surgical / cloth / N95 masks are worn; ``under_nose`` draws a fraction worn below the nose instead), sides at
  ``±half_width·d`` and a rounded bottom just below the chin; N95 masks peak over the nose, surgical masks are
  straight with pleats, cloth masks are curved with a print.

Landmarks: five points (eye centres, nose tip, mouth corners, in image order left/right) and optionally a sixth,
the chin (e.g. point 8 of the 68-point iBUG layout, see :mod:`openfas.recognition.landmarks`); with it the
mask's bottom edge follows the real chin instead of the average face.

Styles: ``surgical`` (light blue/green/white, horizontal pleats, ear loops), ``cloth`` (random colour,
stripes / checks / dots / noise print, fabric grain), ``n95`` (white/grey dome, centre seam, optional valve).
Colour is shaded by the face's own low-frequency luminance so the mask follows the scene lighting.

:func:`apply_mask` returns the masked image, the alpha map and the coverage: the fraction of the face area
covered by the mask (``Σ alpha·face / Σ face``). The face area is the renderer's face mask when known
(synthetic faces), else an ellipse fitted to the landmarks (:func:`face_ellipse`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MASK_TYPES = ("surgical", "cloth", "n95")

# Five-point template of ArcFace-aligned 112×112 crops (insightface `arcface_dst`): left eye, right eye,
# nose tip, left and right mouth corner, in pixels. Used when an aligned crop comes without landmarks.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


def template_landmarks(width: int, height: int) -> np.ndarray:
    """The ArcFace 112×112 template scaled to an aligned crop of ``width``×``height`` (5×2)."""
    return ARCFACE_112 * np.array([width / 112.0, height / 112.0], np.float32)


@dataclass(frozen=True)
class FaceFrame:
    """Face-aligned frame: ``origin`` (eye midpoint), unit axes ``ex``/``ey``, scales ``d``/``q`` in px."""

    origin: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    d: float
    q: float

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, np.float32)
        return (self.origin + pts[:, :1] * self.d * self.ex + pts[:, 1:2] * self.q * self.ey).astype(np.float32)


def face_frame(landmarks: np.ndarray) -> FaceFrame:
    """The face-aligned frame of 5 (or more; extra points ignored) landmarks ``[[x, y], …]``."""
    lm = np.asarray(landmarks, np.float32).reshape(-1, 2)
    if lm.shape[0] < 5 or not np.isfinite(lm[:5]).all():
        raise ValueError(f"need 5 finite landmarks (eyes, nose, mouth corners), got {lm.shape[0]}")
    le, re, _, ml, mr = lm[:5]
    eye_mid, mouth_mid = (le + re) / 2, (ml + mr) / 2
    d = float(np.linalg.norm(re - le))
    if d < 1.0:
        raise ValueError("the eye landmarks coincide; cannot place a mask")
    ex = (re - le) / d
    ey = np.array([-ex[1], ex[0]], np.float32)
    if float(np.dot(mouth_mid - eye_mid, ey)) < 0:  # make y point from the eyes towards the mouth
        ey = -ey
    q = max(float(np.dot(mouth_mid - eye_mid, ey)), 0.5 * d)
    return FaceFrame(eye_mid.astype(np.float32), ex.astype(np.float32), ey, d, q)


def chin_position(frame: FaceFrame, landmarks: np.ndarray) -> float | None:
    """The chin's ``y`` in the face frame when a sixth landmark (the chin) is given, else None."""
    lm = np.asarray(landmarks, np.float32).reshape(-1, 2)
    if lm.shape[0] < 6 or not np.isfinite(lm[5]).all():
        return None
    return float(np.dot(lm[5] - frame.origin, frame.ey) / frame.q)


def face_ellipse(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Estimated face region (H×W float 0/1) from 5 landmarks: an ellipse from brow to chin, cheek to cheek."""
    fr = face_frame(landmarks)
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    rel = np.stack([xs - fr.origin[0], ys - fr.origin[1]], -1)
    u = rel @ fr.ex / fr.d  # inter-ocular units
    v = rel @ fr.ey / fr.q  # eye-to-mouth units
    cv_, rv, ru = 0.45, 1.25, 1.05  # centre between eyes and mouth; brow ≈ −0.8, chin ≈ 1.7
    return (((u / ru) ** 2 + ((v - cv_) / rv) ** 2) <= 1.0).astype(np.float32)


@dataclass(frozen=True)
class MaskStyle:
    """Geometry and look of one mask, drawn by :func:`sample_style`."""

    kind: str
    top: float  # top edge, eye-to-mouth units below the eye line
    half_width: float  # inter-ocular units
    bottom: float  # lowest point, eye-to-mouth units
    color: tuple[float, float, float]  # BGR in [0, 1]
    color2: tuple[float, float, float]
    pattern: int
    pattern_scale: float
    valve: bool
    seed: int


_SURGICAL = [(0.85, 0.72, 0.45), (0.75, 0.85, 0.55), (0.95, 0.95, 0.95), (0.90, 0.80, 0.60), (0.55, 0.55, 0.55)]


# Where the chin sits in the face frame when no chin landmark is given (eye-to-mouth units below the eye line).
DEFAULT_CHIN = 1.6


def _bgr(values: np.ndarray) -> tuple[float, float, float]:
    b, g, r = (float(x) for x in values)
    return b, g, r


def sample_style(rng: np.random.Generator, kind: str | None = None, kinds: tuple[str, ...] = MASK_TYPES,
                 under_nose: float = 0.0) -> MaskStyle:
    """Draw a mask style (type, outline, colours). The top edge lies on the nose bridge (``top`` ∈ [0.12,
    0.28] eye-to-mouth units below the eye line; the nose tip is at ≈ 0.5); with probability ``under_nose`` the
    mask is worn below the nose instead (``top`` ∈ [0.55, 0.7]). The bottom edge lies 0.05–0.25 units below the
    chin."""
    kind = kind or str(rng.choice(list(kinds)))
    if kind not in MASK_TYPES:
        raise ValueError(f"unknown mask type {kind!r}; use one of {', '.join(MASK_TYPES)}")
    if not 0.0 <= under_nose <= 1.0:
        raise ValueError(f"under_nose={under_nose} must be a probability in [0, 1]")
    top = float(rng.uniform(0.55, 0.7)) if rng.random() < under_nose else float(rng.uniform(0.12, 0.28))
    if kind == "surgical":
        c = np.array(_SURGICAL[int(rng.integers(len(_SURGICAL)))]) * rng.uniform(0.93, 1.05)
        c2 = c * 0.8
    elif kind == "n95":
        g = rng.uniform(0.75, 0.97)
        c = np.array([g, g, g * rng.uniform(0.95, 1.0)])
        c2 = c * rng.uniform(0.7, 0.9)
    else:
        c, c2 = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
    return MaskStyle(kind=kind, top=top, half_width=float(rng.uniform(1.05, 1.3)),
                     bottom=DEFAULT_CHIN + float(rng.uniform(0.05, 0.25)),
                     color=_bgr(np.clip(c, 0, 1)), color2=_bgr(np.clip(c2, 0, 1)),
                     pattern=int(rng.integers(4)), pattern_scale=float(rng.uniform(0.15, 0.35)),
                     valve=bool(kind == "n95" and rng.random() < 0.4), seed=int(rng.integers(2**31)))


def mask_outline(style: MaskStyle, points: int = 48, chin: float | None = None) -> np.ndarray:
    """Closed outline (K×2) in the face frame: top edge left→right, right side, bottom arc, left side.

    ``chin``: the chin's position (eye-to-mouth units below the eye line); the bottom edge keeps the style's
    margin below it (default :data:`DEFAULT_CHIN`)."""
    hw, top = style.half_width, style.top
    bot = style.bottom if chin is None else style.bottom - DEFAULT_CHIN + max(float(chin), 1.15)
    t = np.linspace(-1.0, 1.0, points)
    if style.kind == "n95":  # peak over the nose bridge, dropping to the cheeks
        top_y = top + 0.3 * np.abs(t) ** 1.2
    elif style.kind == "cloth":  # gentle curve
        top_y = top + 0.15 * t**2
    else:  # surgical: straight, slightly lower at the sides
        top_y = top + 0.08 * t**2
    top_edge = np.stack([t * hw, top_y], 1)
    # Sides run down to the jaw line, then a half-ellipse under the chin.
    side_y = float(top_y[-1])
    jaw = 1.05
    right = np.array([[hw, side_y], [hw * 0.98, (side_y + jaw) / 2], [hw * 0.92, jaw]])
    a = np.linspace(0.0, math.pi, points)
    bottom = np.stack([hw * 0.92 * np.cos(a), jaw + (bot - jaw) * np.sin(a)], 1)
    left = right[::-1] * np.array([-1, 1])
    return np.concatenate([top_edge, right, bottom, left], 0).astype(np.float32)


def _rasterise(poly: np.ndarray, shape: tuple[int, int], ss: int = 4) -> np.ndarray:
    """Anti-aliased polygon coverage (H×W float in [0, 1]) by ``ss``× supersampling."""
    h, w = shape
    canvas = np.zeros((h * ss, w * ss), np.uint8)
    pts = np.round(poly * ss).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(canvas, [pts], 255)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _texture(style: MaskStyle, fr: FaceFrame, shape: tuple[int, int]) -> np.ndarray:
    """Mask colour (H×W×3 BGR in [0, 1]) in face-frame coordinates: pleats, seams, prints, grain."""
    h, w = shape
    rng = np.random.default_rng(style.seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    rel = np.stack([xs - fr.origin[0], ys - fr.origin[1]], -1)
    u, v = rel @ fr.ex / fr.d, rel @ fr.ey / fr.q
    base = np.asarray(style.color, np.float32)
    col = np.broadcast_to(base, (h, w, 3)).astype(np.float32).copy()
    if style.kind == "surgical":  # three horizontal pleats: dark fold lines and a light gradient per band
        span = max(style.bottom - style.top, 1e-3)
        phase = (v - style.top) / span * 3.0
        fold = 0.5 + 0.5 * np.cos(2 * math.pi * phase)
        col *= (0.86 + 0.14 * fold)[..., None]
        loops = (np.abs(np.abs(u) - style.half_width - 0.15) < 0.03) & (v > style.top) & (v < 1.1)
        col[loops] = np.asarray(style.color2, np.float32)
    elif style.kind == "n95":  # dome shading and a centre seam
        dome = 1.0 - 0.25 * np.clip((u / style.half_width) ** 2, 0, 1)
        col *= dome[..., None]
        seam = np.abs(u) < 0.025
        col[seam] = np.asarray(style.color2, np.float32)
        if style.valve:
            valve = ((u - 0.45) ** 2 / 0.04 + (v - 1.15) ** 2 / 0.03) < 1.0
            col[valve] = np.asarray(style.color2, np.float32) * 0.8
    else:  # cloth print
        s = style.pattern_scale
        c2 = np.asarray(style.color2, np.float32)
        if style.pattern == 0:
            sel = (np.floor(v / s) % 2) == 0
        elif style.pattern == 1:
            sel = ((np.floor(u / s) + np.floor(v / s)) % 2) == 0
        elif style.pattern == 2:
            sel = ((u / s - np.round(u / s)) ** 2 + (v / s - np.round(v / s)) ** 2) < 0.09
        else:
            g = rng.uniform(-1, 1, (5, 5)).astype(np.float32)
            sel = cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC) > 0.2
        col[sel] = c2
        col *= (1 + 0.06 * rng.standard_normal((h, w)).astype(np.float32))[..., None]  # fabric grain
    return np.clip(col, 0, 1)


def apply_mask(image_bgr: np.ndarray, landmarks: np.ndarray, style: MaskStyle,
               face_region: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw ``style`` on a face; returns (masked uint8 BGR image, alpha H×W in [0, 1], coverage in [0, 1]).

    ``face_region`` (H×W, nonzero = face) defines the area for the coverage; default :func:`face_ellipse`.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 image, got shape {image_bgr.shape}")
    h, w = image_bgr.shape[:2]
    fr = face_frame(landmarks)
    alpha = _rasterise(fr.to_image(mask_outline(style, chin=chin_position(fr, landmarks))), (h, w))
    img = image_bgr.astype(np.float32) / 255.0
    # Lighting: the face's blurred luminance relative to its mean under the mask, clipped.
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    sigma = max(1.0, 0.25 * fr.d)
    light = cv2.GaussianBlur(gray, (0, 0), sigma)
    ref = float((light * alpha).sum() / max(alpha.sum(), 1e-6)) if alpha.sum() > 0 else 0.5
    shade = np.clip(light / max(ref, 1e-3), 0.6, 1.3) * (0.75 + 0.25 * min(1.0, ref / 0.5))
    col = _texture(style, fr, (h, w)) * shade[..., None]
    out = img * (1 - alpha[..., None]) + col * alpha[..., None]
    face = face_ellipse(landmarks, (h, w)) if face_region is None else (np.asarray(face_region) > 0)
    face = face.astype(np.float32)
    coverage = float((alpha * face).sum() / max(face.sum(), 1e-6))
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8), alpha, coverage


__all__ = ["ARCFACE_112", "DEFAULT_CHIN", "MASK_TYPES", "chin_position",
           "FaceFrame", "MaskStyle", "apply_mask", "face_ellipse", "face_frame",
           "mask_outline", "sample_style", "template_landmarks"]
