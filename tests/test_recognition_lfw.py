"""Real faces in, masks on: landmarks, ArcFace alignment and mask geometry (independent checks), dlib on a
handful of shared LFW images (skipped when ../shared or dlib is absent)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfas.recognition.landmarks import align_face, reduce_68_to_5, similarity_transform, transform_points
from openfas.recognition.masks import ARCFACE_112, MASK_TYPES, apply_mask, face_frame, sample_style

SHARED = Path(__file__).resolve().parents[2] / "shared"
LFW = SHARED / "data" / "lfw"
LFW_FILES = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0013.jpg",
             "Serena_Williams/Serena_Williams_0002.jpg", "Colin_Powell/Colin_Powell_0005.jpg"]
needs_lfw = pytest.mark.skipif(not (LFW / "lfw-deepfunneled").is_dir(), reason="shared LFW not available")


def _has_dlib() -> bool:
    try:
        import dlib  # noqa: F401

        from openfas.recognition.landmarks import dlib_model_dir
        dlib_model_dir()
    except Exception:  # noqa: BLE001
        return False
    return True


needs_dlib = pytest.mark.skipif(not _has_dlib(), reason="dlib extra not installed (pip install 'openfas[dlib]')")


def test_similarity_transform_recovers_a_known_transform() -> None:
    src = np.array([[10, 20], [40, 22], [25, 40], [12, 60], [38, 61]], np.float64)
    a, s, t = math.radians(17.0), 1.7, np.array([5.0, -3.0])
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    dst = src @ (s * rot).T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], s * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)
    np.testing.assert_allclose(transform_points(m, src), dst, atol=1e-4)
    # a reflection is never returned: mirrored targets still give a proper rotation (det > 0)
    assert np.linalg.det(similarity_transform(src, dst * [-1, 1])[:, :2]) > 0
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.zeros((5, 2)), dst)


def test_reduce_68_to_5_takes_eye_means_nose_mouth_corners_and_chin() -> None:
    pts = np.arange(136, dtype=np.float32).reshape(68, 2)
    out = reduce_68_to_5(pts)
    np.testing.assert_array_equal(out[0], [(72 + 82) / 2, (73 + 83) / 2])  # mean of points 36..41
    np.testing.assert_array_equal(out[1], [(84 + 94) / 2, (85 + 95) / 2])  # mean of points 42..47
    np.testing.assert_array_equal(out[2:], pts[[30, 48, 54, 8]])
    with pytest.raises(ValueError, match="68"):
        reduce_68_to_5(pts[:5])


def test_align_face_puts_the_landmarks_on_the_template() -> None:
    img = np.zeros((200, 200, 3), np.uint8)
    lm = ARCFACE_112 * 1.5 + [30, 10]  # a face at scale 1.5, shifted
    rot = cv2.getRotationMatrix2D((100, 100), 25, 1.0)
    lm = np.c_[lm, np.ones(5)] @ rot.T
    for x, y in lm:
        cv2.circle(img, (round(x), round(y)), 3, (255, 255, 255), -1)
    crop, m = align_face(img, lm, 112)
    assert crop.shape == (112, 112, 3)
    np.testing.assert_allclose(transform_points(m, lm), ARCFACE_112, atol=1e-3)
    for x, y in ARCFACE_112:  # every dot lands on its template position
        assert crop[round(y), round(x)].max() > 200


def test_masks_start_on_the_nose_bridge_and_follow_the_chin() -> None:
    lm = ARCFACE_112.copy()
    img = np.full((160, 112, 3), 128, np.uint8)  # tall enough to hold the chin
    fr = face_frame(lm)

    def at(u: float, v: float) -> tuple[int, int]:
        p = fr.to_image(np.array([[u, v]]))[0]
        return int(p[1]), int(p[0])

    for seed in range(30):
        style = sample_style(np.random.default_rng(seed), kind=MASK_TYPES[seed % 3])
        _, alpha, _ = apply_mask(img, lm, style)
        assert alpha[at(0.0, 0.36)] > 0.99  # the nose bridge above the nose tip (v = 0.5) is covered
        assert alpha[at(0.0, 1.55)] > 0.99  # down to the chin
        assert alpha[at(-0.5, 0.0)] == 0.0 and alpha[at(0.5, 0.0)] == 0.0  # the eyes are not
    # a chin landmark moves the bottom edge: a long chin is covered to its tip, a short one not beyond
    style = sample_style(np.random.default_rng(0), kind="surgical")
    long_chin = np.vstack([lm, fr.to_image(np.array([[0.0, 2.1]]))])
    _, a_long, _ = apply_mask(np.zeros((160, 112, 3), np.uint8), long_chin, style)
    _, a_avg, _ = apply_mask(np.zeros((160, 112, 3), np.uint8), lm, style)
    assert a_long[at(0.0, 2.1)] > 0.99 and a_avg[at(0.0, 2.1)] == 0.0
    under = sample_style(np.random.default_rng(0), kind="surgical", under_nose=1.0)
    assert under.top > 0.5  # worn below the nose tip when asked for
    with pytest.raises(ValueError, match="under_nose"):
        sample_style(np.random.default_rng(0), under_nose=1.5)


@needs_lfw
@needs_dlib
def test_dlib_landmarks_alignment_and_masks_on_real_lfw_faces() -> None:
    from openfas.recognition.landmarks import DlibLandmarker

    lmk = DlibLandmarker()
    for k, rel in enumerate(LFW_FILES):
        img = cv2.imread(str(LFW / "lfw-deepfunneled" / rel))
        assert img is not None, rel
        found = lmk(img)
        assert found.detected, rel  # deep-funneled LFW: a frontal face in the middle
        x0, y0, x1, y1 = found.box
        five = found.five
        le, re, nose, ml, mr, chin = five
        assert le[0] < nose[0] < re[0] and ml[0] < mr[0], rel  # image-left eye first
        assert (le[1] + re[1]) / 2 < nose[1] < (ml[1] + mr[1]) / 2 < chin[1], rel
        assert x0 - 10 <= five[:5, 0].min() and five[:5, 0].max() <= x1 + 10, rel
        crop, m = align_face(img, five, 112)
        # a similarity cannot fit a real face exactly, but the residual is a few pixels at 112 px
        assert np.abs(transform_points(m, five[:5]) - ARCFACE_112).max() < 8.0, rel
        style = sample_style(np.random.default_rng(k), kind=MASK_TYPES[k % 3])
        masked, alpha, coverage = apply_mask(img, five, style)
        a = alpha[found.points68[:, 1].astype(int), found.points68[:, 0].astype(int)]  # alpha at the 68 points
        assert a[[29, 30, 33, 57, 8]].min() > 0.99, rel  # nose bridge, nose tip, under the nose, lip, chin
        assert a[36:48].max() == 0.0, rel  # the eyes stay visible
        assert 0.25 < coverage < 0.75, rel
        assert np.array_equal(masked[alpha == 0], img[alpha == 0])
