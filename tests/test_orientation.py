"""EXIF orientation: every image reader (data.video.read_image used by prepare and the datasets, the Predictor's
files/bytes/PIL inputs, the HTTP service and `openfas predict`) returns the upright image.

The rotated files are real JPEGs written here with Pillow: the upright picture is stored turned the way a
phone stores it, and the EXIF tag 274 says how to turn it back.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from deploy_fixtures import faces_scene
from PIL import Image, ImageOps
from typer.testing import CliRunner

from openfas.data.video import apply_exif_orientation, exif_orientation, read_image
from openfas.deploy.predictor import Predictor
from openfas.deploy.uploads import decode_image_bytes

# How a camera stores the upright picture U for each orientation value (the inverse of what a reader must do),
# written with plain numpy indexing. Reader truth, per TIFF/EXIF tag 274, for stored pixels S of height H, width W:
#   2: U[i, j] = S[i, W-1-j]       3: U[i, j] = S[H-1-i, W-1-j]   4: U[i, j] = S[H-1-i, j]
#   5: U[i, j] = S[j, i]           6: U[i, j] = S[H-1-j, i]       7: U[i, j] = S[H-1-j, W-1-i]
#   8: U[i, j] = S[j, W-1-i]


def upright_from_stored(s: np.ndarray, orientation: int) -> np.ndarray:
    h, w = s.shape[:2]
    uh, uw = (w, h) if orientation >= 5 else (h, w)
    out = np.empty((uh, uw) + s.shape[2:], s.dtype)
    for i in range(uh):
        for j in range(uw):
            src = {1: (i, j), 2: (i, w - 1 - j), 3: (h - 1 - i, w - 1 - j), 4: (h - 1 - i, j), 5: (j, i),
                   6: (h - 1 - j, i), 7: (h - 1 - j, w - 1 - i), 8: (j, w - 1 - i)}[orientation]
            out[i, j] = s[src]
    return out


def stored_from_upright(u: np.ndarray, orientation: int) -> np.ndarray:
    """Invert :func:`upright_from_stored` by brute force over the (tiny) index map: S such that reading S gives U."""
    h, w = (u.shape[1], u.shape[0]) if orientation >= 5 else u.shape[:2]
    idx = np.arange(h * w).reshape(h, w)
    where = upright_from_stored(idx, orientation)  # upright position -> flat stored index
    s = np.empty((h * w,) + u.shape[2:], u.dtype)
    s[where.ravel()] = u.reshape((-1,) + u.shape[2:])
    return s.reshape((h, w) + u.shape[2:])


def rotated_jpeg(upright_bgr: np.ndarray, orientation: int, quality: int = 95) -> bytes:
    """A JPEG whose pixels are stored turned and whose EXIF orientation says how to turn them upright."""
    stored = stored_from_upright(upright_bgr, orientation)
    im = Image.fromarray(stored[:, :, ::-1].copy())
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_exif_orientation_matches_the_tag_definition(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    stored = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(apply_exif_orientation(stored, orientation), upright_from_stored(stored, orientation))
    gray = stored[:, :, 0]
    assert np.array_equal(apply_exif_orientation(gray, orientation), upright_from_stored(gray, orientation))


@pytest.mark.parametrize("orientation", [3, 5, 6, 7, 8])
def test_read_image_and_decode_bytes_turn_real_jpegs_upright(orientation: int, tmp_path: Path) -> None:
    # upright picture: a bright block top-left, smooth gradient elsewhere (JPEG-friendly, clearly asymmetric)
    yy, xx = np.mgrid[:48, :64]
    upright = np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=2).astype(np.uint8)
    upright[:12, :16] = 255
    data = rotated_jpeg(upright, orientation)
    assert exif_orientation(data) == orientation
    path = tmp_path / f"rot{orientation}.jpg"
    path.write_bytes(data)
    # Pillow's own exif_transpose is an independent reader of the same file
    with Image.open(path) as im:
        pil_upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))[:, :, ::-1]
    for got in (read_image(path), decode_image_bytes(data)):
        assert got.shape == upright.shape
        assert np.abs(got.astype(int) - upright.astype(int)).mean() < 3
        assert np.abs(got.astype(int) - pil_upright.astype(int)).mean() < 2
        assert got[:12, :16].min() > 200 and got[-12:, -16:].max() < 250


def test_no_or_bad_exif_is_as_stored(tmp_path: Path) -> None:
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :5] = 255
    png = cv2.imencode(".png", img)[1].tobytes()
    assert exif_orientation(png) == 1 and exif_orientation(b"not an image") == 1
    assert np.array_equal(decode_image_bytes(png), img)
    im = Image.new("RGB", (8, 4))
    exif = Image.Exif()
    exif[0x0112] = 42  # out of range: ignored
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes())
    assert exif_orientation(buf.getvalue()) == 1
    assert decode_image_bytes(buf.getvalue()).shape == (4, 8, 3)


def test_rotated_phone_photo_finds_the_faces_everywhere(predictor: Predictor, ckpt: Path, tmp_path: Path) -> None:
    scene = faces_scene(2, 110)  # landscape, two upright faces
    upright_jpg = cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    want = predictor.predict(upright_jpg)
    assert len(want.faces) == 2
    data = rotated_jpeg(scene, 6)
    path = tmp_path / "phone.jpg"
    path.write_bytes(data)
    # what the fix is about: the stored (sideways) pixels have no face for the detector
    stored = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert stored.shape[:2] == scene.shape[1::-1] and predictor.detect(stored) == []
    pil = Image.open(path)
    pil.load()
    inputs = {"path": path, "bytes": data, "pil": pil}
    for name, inp in inputs.items():
        got = predictor.predict(inp)
        assert (got.width, got.height) == (scene.shape[1], scene.shape[0]), name
        assert len(got.faces) == 2, name
        for g, w in zip(got.faces, want.faces, strict=True):
            assert abs(g.box.x - w.box.x) < 6 and abs(g.box.y - w.box.y) < 6, name

    from fastapi.testclient import TestClient

    from openfas.deploy.server import ServeSettings, create_app

    client = TestClient(create_app(predictor, ServeSettings()))
    res = client.post("/v1/liveness", files={"image": ("phone.jpg", data, "image/jpeg")})
    assert res.status_code == 200, res.text
    assert len(res.json()["faces"]) == 2 and res.json()["width"] == scene.shape[1]

    from openfas.cli import app

    out = CliRunner().invoke(app, ["predict", str(ckpt), str(path), "--no-progress"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)["results"]
    assert len([r for r in rows if "score" in r]) == 2


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_video_display_rotation(degrees: int, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    from openfas.data.video import read_frames

    upright = np.zeros((24, 32, 3), np.uint8)
    upright[:8, :8] = 255  # bright top-left corner
    upright[-4:, :, 2] = 200  # red bottom edge
    # the display turns stored frames counter-clockwise by `degrees`: store them turned the other way
    stored = np.ascontiguousarray(np.rot90(upright, -round(degrees / 90)))
    path = tmp_path / "phone.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = stored.shape[1], stored.shape[0], "bgr0"
        stream.set_display_rotation(degrees)
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    for backend in ("pyav", "opencv"):  # OpenCV applies the display matrix itself: an independent reader
        frames = read_frames(path, backend=backend)
        assert len(frames) == 2
        assert np.array_equal(frames[0][1], upright), backend
