"""Predictor: same scores as the training engine, crops identical to `openfas data prepare`, every input kind,
the bad-input matrix, tampered/incompatible checkpoints, videos and the `openfas predict` CLI."""

from __future__ import annotations

import csv
import io
import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from deploy_fixtures import faces_scene, synth_face
from typer.testing import CliRunner

from openfas.data.cache import CropCacheReader
from openfas.data.face import Box
from openfas.data.prepare import prepare_media
from openfas.data.sample import MediaItem
from openfas.deploy.predictor import Predictor, TorchBackend
from openfas.deploy.uploads import ImageInputError
from openfas.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from openfas.methods.restore import build_model_from_checkpoint


class FixedDetector:
    def __init__(self, boxes: list[Box]) -> None:
        self.boxes = boxes

    def detect(self, image: np.ndarray) -> list[Box]:
        return list(self.boxes)


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def test_whole_crops_score_like_the_training_engine(ckpt: Path, tiny_cache: Path) -> None:
    # scores_test.csv was written by Trainer.score_split (FaceCropDataset + method.score), not by deploy code
    with open(ckpt.parent.parent / "scores_test.csv") as f:
        engine = {r["sample_id"]: float(r["score"]) for r in csv.DictReader(f)}
    pred = Predictor.from_checkpoint(ckpt, detector="whole")
    reader = CropCacheReader(tiny_cache)
    ids = sorted(engine)[:24]
    for sid in ids:
        res = pred.predict(reader.image(sid))
        assert len(res.faces) == 1 and res.faces[0].box == Box(0, 0, 32, 32)
        assert res.faces[0].score == pytest.approx(engine[sid], abs=1e-5)
    # the decision uses the dev threshold stored by the trainer
    metrics = json.loads((ckpt.parent.parent / "metrics.json").read_text())
    assert pred.threshold == pytest.approx(metrics["threshold"]["value"])
    res = pred.predict(reader.image(ids[0])).faces[0]
    assert res.live == (res.score >= pred.threshold)
    assert res.map is not None and res.map.shape == (8, 8)
    assert float(res.map.mean()) == pytest.approx(res.score, rel=1e-5, abs=1e-7)  # score = mean of the map


def test_crop_is_identical_to_prepare(ckpt: Path, tmp_path: Path) -> None:
    frame = faces_scene(2, 96)
    src = tmp_path / "scene.png"
    cv2.imwrite(str(src), frame)
    box = Box(31.4, 52.2, 70.3, 64.8)  # not integer, not square: exercises rounding in square_region
    item = MediaItem("m0", {"rgb": src}, 1, "live", "d", "s", "v", "test", kind="image")
    prepare_media([item], tmp_path / "cache", crop_size=40, scale=1.5, detector=FixedDetector([box]),
                  progress=False)
    cached = CropCacheReader(tmp_path / "cache").image("m0/00000")
    model, info = build_model_from_checkpoint(ckpt)
    meta = json.loads(json.dumps(info["meta"]))
    # what the trainer stores for a prepared cache (crop_geometry); the Predictor must pick it up
    meta["preprocess"]["crop"] = {"source": "prepared", "crop_size": 40, "scale": 1.5, "detector": "cascade"}
    pred = Predictor(TorchBackend(model, info["method"]), meta, detector=FixedDetector([box]))
    assert (pred.crop_size, pred.crop_scale) == (40, 1.5)
    assert np.array_equal(pred.crop(frame, box), cached)
    # hand-computed: scale 1, integer square box inside the image = plain slice; outside = zero padding
    plain = Predictor(TorchBackend(model, info["method"]), info["meta"], detector=FixedDetector([]),
                      crop_scale=1.0, crop_size=32)
    assert np.array_equal(plain.crop(frame, Box(10, 20, 32, 32)), frame[20:52, 10:42])
    edge = plain.crop(frame, Box(-8, -4, 32, 32))
    assert np.array_equal(edge[4:, 8:], frame[:28, :24]) and not edge[:4].any() and not edge[:, :8].any()


def test_every_input_kind_gives_the_same_answer(predictor: Predictor, tmp_path: Path) -> None:
    from PIL import Image

    scene = faces_scene(2, 110)
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), scene)
    ref = predictor.predict(scene)
    assert len(ref.faces) == 2
    rgb = scene[:, :, ::-1].copy()
    for other in (predictor.predict(path), predictor.predict(str(path)), predictor.predict(path.read_bytes()),
                  predictor.predict(rgb, color="rgb"), predictor.predict(Image.fromarray(rgb))):
        assert [f.box for f in other.faces] == [f.box for f in ref.faces]
        assert [f.score for f in other.faces] == pytest.approx([f.score for f in ref.faces], abs=1e-6)
    with pytest.raises(ValueError, match="color"):
        predictor.predict(scene, color="hsv")


def _big_png(path: Path, w: int, h: int) -> None:
    """A valid 1-bit grayscale PNG of w×h (streamed: no large array in memory)."""
    comp = zlib.compressobj()
    row = b"\x00" + b"\x00" * ((w + 7) // 8)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def bad_input_files(folder: Path) -> dict[str, Path]:
    """The bad-input matrix (shared with the HTTP tests)."""
    face = synth_face(0, 160)
    files = {}
    ok, jpg = cv2.imencode(".jpg", face)
    files["truncated_jpeg"] = folder / "truncated.jpg"
    files["truncated_jpeg"].write_bytes(jpg.tobytes()[: len(jpg) // 2])
    alpha = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
    alpha[:10, :10, 3] = 0
    files["png_alpha"] = folder / "alpha.png"
    files["png_alpha"].write_bytes(_png(alpha))
    files["grayscale"] = folder / "gray.png"
    files["grayscale"].write_bytes(_png(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)))
    files["png16"] = folder / "sixteen.png"
    files["png16"].write_bytes(_png(face.astype(np.uint16) * 257))
    files["huge"] = folder / "huge.png"
    _big_png(files["huge"], 10000, 10000)
    files["empty"] = folder / "empty.jpg"
    files["empty"].write_bytes(b"")
    files["not_image"] = folder / "notes.jpg"
    files["not_image"].write_bytes(b"this is plain text, not a picture\n" * 20)
    rng = np.random.default_rng(0)
    files["no_face"] = folder / "noface.png"
    files["no_face"].write_bytes(_png(cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8),
                                                       (0, 0), 3)))
    files["three_faces"] = folder / "three.png"
    files["three_faces"].write_bytes(_png(faces_scene(3, 110)))
    return files


# expected outcome per case: number of faces, or the ImageInputError code (and HTTP status)
BAD_INPUT_EXPECTED: dict[str, tuple[str, object]] = {
    "truncated_jpeg": ("error", ("truncated_image", 422)),
    "png_alpha": ("faces", 1),
    "grayscale": ("faces", 1),
    "png16": ("faces", 1),
    "huge": ("error", ("image_too_large", 413)),
    "empty": ("error", ("empty_file", 400)),
    "not_image": ("error", ("not_an_image", 415)),
    "no_face": ("faces", 0),
    "three_faces": ("faces", 3),
}


def test_bad_input_matrix(predictor: Predictor, tmp_path: Path) -> None:
    files = bad_input_files(tmp_path)
    reference = predictor.predict(synth_face(0, 160)).faces[0]
    for name, (kind, expected) in BAD_INPUT_EXPECTED.items():
        if kind == "error":
            with pytest.raises(ImageInputError) as err:
                predictor.predict(files[name])
            assert (err.value.code, err.value.status) == expected, name
            assert str(files[name]) in str(err.value), f"{name}: the message must name the file"
        else:
            res = predictor.predict(files[name])
            assert len(res.faces) == expected, name
            assert all(np.isfinite(f.score) for f in res.faces)
    # alpha is dropped (as `prepare` does): an opaque face scores exactly like the RGB original
    assert predictor.predict(files["png_alpha"]).faces[0].score == pytest.approx(reference.score, abs=1e-6)
    # the 10000×10000 file is refused from its header, with the limit in the message
    with pytest.raises(ImageInputError, match="10000×10000.*8192"):
        predictor.predict(files["huge"])


def _retag(src: Path, dst: Path, **meta_changes: object) -> Path:
    ck = load_checkpoint(src)
    meta = {**ck["meta"], **meta_changes}
    save_checkpoint(dst, model_state=ck["model"], meta=meta)
    return dst


def test_incompatible_or_tampered_files_fail_clearly(ckpt: Path, tmp_path: Path) -> None:
    raw = bytearray(ckpt.read_bytes())
    header_len = struct.unpack("<Q", raw[:8])[0]
    cases = {}
    flipped = bytearray(raw)
    for i in range(20, 40):  # inside the JSON header
        flipped[i] ^= 0xFF
    cases["flipped_header"] = flipped
    bad_len = bytearray(raw)
    bad_len[0:8] = struct.pack("<Q", header_len + 1000)
    cases["flipped_length"] = bad_len
    cases["truncated"] = raw[: len(raw) // 2]
    cases["text"] = bytearray(b"hello, I am not a checkpoint\n")
    for name, data in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(bytes(data))
        with pytest.raises(CheckpointError) as err:
            Predictor.from_checkpoint(p)
        assert str(p) in str(err.value), name
    major = int(__import__("openfas").__version__.split(".")[0])
    with pytest.raises(CheckpointError, match="major version"):
        Predictor.from_checkpoint(_retag(ckpt, tmp_path / "v.safetensors", openfas_version=f"{major + 1}.0.0"))
    with pytest.raises(CheckpointError, match="not found"):
        Predictor.from_checkpoint(tmp_path / "missing.safetensors")
    # a safetensors file that is not an openfas checkpoint
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="openfas"):
        Predictor.from_checkpoint(tmp_path / "plain.safetensors")


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_predict_video_per_frame_and_mean(predictor: Predictor, tmp_path: Path) -> None:
    frames = [synth_face(i % 3, 128) for i in range(7)]
    frames[4] = np.full_like(frames[4], 90)  # no face in frame 4
    path = tmp_path / "clip.mkv"
    _write_video(path, frames)
    res = predictor.predict_video(path, every=2)
    assert res.frame_indices == [0, 2, 4, 6]
    expected = []
    for i in res.frame_indices:  # lossless codec: the decoded frames are the originals
        faces = predictor.predict(frames[i]).faces
        expected.append(max(faces, key=lambda f: f.box.area).score if faces else None)
    assert expected[2] is None and None not in (expected[0], expected[1], expected[3])
    for got, want in zip(res.frame_scores, expected, strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            assert got == pytest.approx(want, abs=1e-6)
    valid = [s for s in expected if s is not None]
    assert res.mean_score == pytest.approx(sum(valid) / len(valid), abs=1e-6)
    assert res.live == (res.mean_score >= predictor.threshold)


def test_predict_cli_json_and_csv(ckpt: Path, tmp_path: Path) -> None:
    from openfas.cli import app

    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), faces_scene(2, 100))
    cv2.imwrite(str(folder / "b.jpg"), synth_face(1, 140))
    (folder / "c.png").write_bytes(b"\x89PNG broken")
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(ckpt), str(folder), "--no-progress"])
    assert res.exit_code == 1  # one unreadable file
    data = json.loads(res.stdout)
    rows = data["results"]
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(Path(r["file"]).name, []).append(r)
    assert len(by_file["a.png"]) == 2 and len(by_file["b.jpg"]) == 1
    assert "error" in by_file["c.png"][0]
    p = Predictor.from_checkpoint(ckpt)
    direct = p.predict(folder / "b.jpg").faces[0]
    assert by_file["b.jpg"][0]["score"] == pytest.approx(direct.score, abs=1e-6)
    assert data["threshold"] == pytest.approx(p.threshold)

    out = tmp_path / "o.csv"
    res = runner.invoke(app, ["predict", str(ckpt), str(folder / "a.png"), "--format", "csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(table) == 2 and {"file", "x", "y", "w", "h", "score", "live"} <= set(table[0])
    res = runner.invoke(app, ["predict", str(tmp_path / "nope.safetensors"), str(folder)])
    assert res.exit_code == 2 and "not found" in res.output


class MeanBackend:
    """Scores a crop by the mean of its preprocessed pixels: different crops, different scores."""

    name = "mean"

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, None]:
        return batch.reshape(len(batch), -1).mean(axis=1), None


def test_prepare_and_predict_keep_the_same_face_of_a_frame(ckpt: Path, tmp_path: Path) -> None:
    from openfas.deploy.calibrate import score_files

    frame = faces_scene(2, 96)  # 192×302, faces at x = 20 and x = 151
    hand = Box(10.0, 10.0, 280.0, 170.0, 60.0)  # large, low confidence (the hand holding a print)
    face = Box(151.0, 48.0, 96.0, 96.0, 95.0)  # smaller, confident
    src = tmp_path / "frame.png"
    cv2.imwrite(str(src), frame)
    item = MediaItem("m0", {"rgb": src}, 1, "live", "d", "s", "v", "test", kind="image")
    prepare_media([item], tmp_path / "cache", crop_size=40, scale=1.5, detector=FixedDetector([hand, face]),
                  progress=False)
    cached = CropCacheReader(tmp_path / "cache").image("m0/00000")
    meta = load_checkpoint(ckpt)["meta"]
    meta["preprocess"]["crop"] = {"source": "prepared", "crop_size": 40, "scale": 1.5, "detector": "cascade"}
    backend = MeanBackend()  # a crop's score tells which pixels it holds
    pred = Predictor(backend, meta, detector=FixedDetector([hand, face]))
    whole = Predictor(backend, meta, detector="whole")
    prepared_score = whole.predict(cached).faces[0].score  # the score of exactly the crop prepare kept

    res = pred.predict(frame)
    assert len(res.faces) == 2  # every face is still scored
    main = res.main_face()
    assert main is not None and main.box == face
    assert np.array_equal(pred.crop(frame, main.box), cached)
    other = next(f for f in res.faces if f.box == hand)
    assert abs(other.score - prepared_score) > 0.01  # the two boxes score apart: the choice is visible

    clip = tmp_path / "clip.mkv"
    _write_video(clip, [frame, frame])
    video = pred.predict_video(clip)
    assert video.frame_scores == pytest.approx([prepared_score] * 2, abs=1e-5)
    assert video.mean_score == pytest.approx(prepared_score, abs=1e-5)
    assert score_files(pred, [src, clip]).scores == pytest.approx([prepared_score] * 2, abs=1e-5)
