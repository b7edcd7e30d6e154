"""The preprocessing pipeline behind `openfas data prepare` (openfas.data.prepare)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfas.data.cache import CropCacheReader
from openfas.data.face import Box, face_mask_target
from openfas.data.prepare import prepare_media
from openfas.data.sample import MediaItem
from openfas.data.video import read_frames, sample_frame_indices

av = pytest.importorskip("av")

H, W = 48, 64
FACE = Box(20, 10, 16, 16)  # the fake detector's face: centre (28, 18); scale 1.5 → 24×24 region at (16, 6)


def write_video(path: Path, n: int, seed: int, dark: tuple[int, ...] = ()) -> Path:
    """Lossless FFV1 clip of random frames; frames listed in ``dark`` are black (the fake detector finds no
    face there)."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        for i in range(n):
            img = np.zeros((H, W, 3), np.uint8) if i in dark else rng.integers(20, 256, (H, W, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class FakeDetector:
    """Returns a small box and FACE (the largest) on bright frames, nothing on black ones; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Box]:
        self.calls += 1
        if image.mean() < 5:
            return []
        return [Box(0, 0, 4, 4, 0.9), FACE]


class ForbiddenDetector:
    def detect(self, image: np.ndarray) -> list[Box]:
        raise AssertionError("the detector must not run when the dataset ships face locations")


def item(media_id: str, path: Path, live: bool, **kw) -> MediaItem:
    return MediaItem(media_id=media_id, paths={"rgb": path}, label=int(live), attack="live" if live else "print",
                     domain="dom", subject="s01", video=media_id.split("/")[-1], split="train", **kw)


def hand_crop(frame: np.ndarray, box: Box, scale: float) -> np.ndarray:
    side = round(scale * max(box.w, box.h))
    x0 = int(box.x + box.w / 2 - side / 2)
    y0 = int(box.y + box.h / 2 - side / 2)
    return frame[y0:y0 + side, x0:x0 + side]


def read_copy(cache: Path, dest: Path) -> CropCacheReader:
    """A reader on a copy of the cache: LMDB keeps one environment per path and process, so reading the
    cache itself would block the next ``prepare_media`` run on it in this process."""
    shutil.copytree(cache, dest)
    return CropCacheReader(dest)


@pytest.fixture()
def media(tmp_path: Path) -> dict[str, Path]:
    junk = tmp_path / "corrupt.avi"
    junk.write_bytes(np.random.default_rng(9).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    return {
        "live": write_video(tmp_path / "live.mkv", 6, seed=1, dark=(3,)),
        "spoof": write_video(tmp_path / "spoof.mkv", 6, seed=2),
        "black": write_video(tmp_path / "black.mkv", 4, seed=3, dark=(0, 1, 2, 3)),
        "corrupt": junk,
        "empty": empty,
    }


def test_pipeline_writes_crops_metadata_targets_skips_bad_files_and_resumes(
        tmp_path: Path, media: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    items = [item("d/live", media["live"], True), item("d/spoof", media["spoof"], False),
             item("d/black", media["black"], False), item("d/corrupt", media["corrupt"], True),
             item("d/empty", media["empty"], False)]
    cache = tmp_path / "cache"
    det = FakeDetector()
    with caplog.at_level(logging.INFO, logger="openfas.data"):
        report = prepare_media(items, cache, frames_per_video=3, crop_size=24, scale=1.5, detector=det,
                               progress=False)
    # frames_per_video=3 of 6 → floor((i+0.5)·2) = 1, 3, 5; frame 3 of the live clip is black (no face)
    assert sample_frame_indices(6, count=3) == [1, 3, 5]
    assert report.media_total == 5 and report.media_done == 2 and report.media_resumed == 0
    assert report.crops_written == 2 + 3
    assert set(report.media_skipped) == {"d/black", "d/corrupt", "d/empty"}
    assert "no face found" in report.media_skipped["d/black"]
    assert "corrupt.avi" in report.media_skipped["d/corrupt"]
    assert "empty" in report.media_skipped["d/empty"]
    logged = caplog.text
    assert "corrupt.avi" in logged and "empty.avi" in logged
    assert "live.mkv frame 3: no face found" in logged

    reader = read_copy(cache, tmp_path / "copy1")
    recs = {r.sample_id: r for r in reader.records()}
    assert sorted(recs) == ["d/live/00001", "d/live/00005", "d/spoof/00001", "d/spoof/00003", "d/spoof/00005"]
    live = recs["d/live/00005"]
    assert (live.media_id, live.label, live.attack, live.domain, live.subject, live.video, live.frame,
            live.split, live.modalities, live.target) == \
        ("d/live", 1, "live", "dom", "s01", "live", 5, "train", ("rgb",), "mask")
    assert recs["d/spoof/00003"].label == 0 and recs["d/spoof/00003"].target == ""

    frames = dict(read_frames(media["live"], [1, 5]))
    for f in (1, 5):
        crop = reader.image(f"d/live/{f:05d}")
        np.testing.assert_array_equal(crop, hand_crop(frames[f], FACE, 1.5))
    # live target: ellipse of FACE in crop coordinates: (20−16, 10−6, 16, 16) at scale 24/24 = 1
    np.testing.assert_array_equal(reader.target("d/live/00001"), face_mask_target(Box(4, 4, 16, 16), 24))
    assert reader.target("d/spoof/00001") is None
    status = reader.media_status()
    # the done record keeps the denominators: 3 frames sampled, all 3 given to the detector, 1 without a face;
    # FakeDetector returns two boxes on every bright frame (2 of the live clip's 3)
    assert {k: status["d/live"][k] for k in ("crops", "skipped", "label", "attack", "split", "kind", "frames_sampled",
                                             "frames_detected", "frames_no_face", "frames_multi_face")} == \
        {"crops": 2, "skipped": "", "label": 1, "attack": "live", "split": "train", "kind": "video",
         "frames_sampled": 3, "frames_detected": 3, "frames_no_face": 1, "frames_multi_face": 2}
    assert (status["d/black"]["frames_no_face"], status["d/black"]["crops"], status["d/black"]["label"]) == (3, 0, 0)
    assert (report.frames_detected, report.frames_no_face) == (3 + 3 + 3, 1 + 0 + 3)
    assert report.frames_multi_face == 2 + 3
    assert ("face detection (FakeDetector): 9 frames, 5 with a face (55.6 %), 4 without (dropped), 5 with more "
            "than one face") in str(report)
    assert status["d/corrupt"]["crops"] == 0 and status["d/corrupt"]["skipped"]

    calls = det.calls
    assert calls == 3 + 3 + 3  # live, spoof and black; the unreadable files never reach the detector
    again = prepare_media(items, cache, frames_per_video=3, crop_size=24, scale=1.5, detector=det,
                          progress=False)
    assert det.calls == calls
    assert again.media_resumed == 5 and again.crops_written == 0 and again.media_done == 0
    assert len(read_copy(cache, tmp_path / "copy2").records()) == 5

    # a newly listed item is the only work done on resume
    items.append(item("d/spoof2", media["spoof"], False))
    third = prepare_media(items, cache, every=2, crop_size=24, scale=1.5, detector=det, progress=False)
    assert third.media_resumed == 5 and third.media_done == 1 and det.calls == calls + 3  # frames 0, 2, 4
    assert [r.frame for r in read_copy(cache, tmp_path / "copy3").records() if r.media_id == "d/spoof2"] == \
        [0, 2, 4]


def test_resume_refuses_other_crop_size(tmp_path: Path, media: dict[str, Path]) -> None:
    items = [item("d/spoof", media["spoof"], False)]
    prepare_media(items, tmp_path / "c", frames_per_video=1, crop_size=24, detector=FakeDetector(),
                  progress=False)
    assert json.loads((tmp_path / "c" / "info.json").read_text())["prepare"]["crop_size"] == 24
    with pytest.raises(ValueError, match="crop_size=24"):
        prepare_media(items, tmp_path / "c", frames_per_video=1, crop_size=32, detector=FakeDetector(),
                      progress=False)
    with pytest.raises(ValueError, match="either"):
        prepare_media(items, tmp_path / "d", every=2, frames_per_video=2, progress=False)


def test_dataset_face_file_is_used_instead_of_the_detector(tmp_path: Path, media: dict[str, Path]) -> None:
    face_file = tmp_path / "live.face"
    # Replay-Attack style: frame x y w h; frame 3 has no face (zeros), frame 5 is not listed at all
    face_file.write_text("0 8 8 20 20\n1 10 12 20 20\n2 10 12 20 20\n3 0 0 0 0\n4 30 20 20 20\n")
    it = item("d/live", media["live"], True, face_file=face_file, extra={"face_format": "replay"})
    report = prepare_media([it], tmp_path / "c", every=1, crop_size=20, scale=1.0,
                           detector=ForbiddenDetector(), progress=False)
    # frame 3: no face in the file → takes the box of the nearest annotated frame (2); frame 5 → frame 4's
    reader = CropCacheReader(tmp_path / "c")
    assert [r.frame for r in reader.records()] == [0, 1, 2, 3, 4, 5]
    assert report.crops_written == 6
    frames = dict(read_frames(media["live"], None))
    np.testing.assert_array_equal(reader.image("d/live/00001"), frames[1][12:32, 10:30])
    np.testing.assert_array_equal(reader.image("d/live/00005"), frames[5][20:40, 30:50])
    np.testing.assert_array_equal(reader.target("d/live/00001"), face_mask_target(Box(0, 0, 20, 20), 20))


def test_depth_targets_from_per_frame_maps(tmp_path: Path, media: dict[str, Path]) -> None:
    depth_dir = tmp_path / "depth_live"
    depth_dir.mkdir()
    rng = np.random.default_rng(5)
    maps = {f: rng.integers(0, 256, (H // 2, W // 2), dtype=np.uint8) for f in (1, 5)}  # half resolution
    for f, m in maps.items():
        cv2.imwrite(str(depth_dir / f"{f:05d}.png"), m)
    live = item("d/live", media["live"], True, depth_file=depth_dir)
    no_depth = item("d/live2", media["spoof"], True)
    spoof = item("d/spoof", media["spoof"], False)
    report = prepare_media([live, no_depth, spoof], tmp_path / "c", frames_per_video=3, crop_size=24,
                           scale=1.5, detector=FakeDetector(), target="depth", progress=False)
    reader = CropCacheReader(tmp_path / "c")
    rec = {r.sample_id: r for r in reader.records()}
    assert rec["d/live/00005"].target == "depth"
    # FACE on the half-size map: (10, 5, 8, 8), centre (14, 9) → 12×12 region at (8, 3), upscaled 2× to 24
    expected = cv2.resize(maps[5][3:15, 8:20], (24, 24), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(reader.target("d/live/00005"), expected)
    assert "depth" in report.media_skipped["d/live2"]
    assert reader.target("d/spoof/00001") is None and rec["d/spoof/00001"].target == ""


def test_multimodal_images_pre_cropped_whole_frame(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    ir = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb)
    cv2.imwrite(str(tmp_path / "ir.png"), ir)
    it = MediaItem(media_id="surf/0001", paths={"rgb": tmp_path / "rgb.png", "ir": tmp_path / "ir.png"},
                   label=0, attack="print", domain="surf", subject="1", video="0001", split="train",
                   kind="image", extra={"face_format": "whole"})
    prepare_media([it], tmp_path / "c", crop_size=40, scale=1.0, detector=ForbiddenDetector(), progress=False)
    reader = CropCacheReader(tmp_path / "c")
    (rec,) = reader.records()
    assert rec.sample_id == "surf/0001/00000" and rec.modalities == ("rgb", "ir")
    np.testing.assert_array_equal(reader.image(rec.sample_id, "rgb"), rgb)
    ir_up = cv2.resize(cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR), (40, 40), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(reader.image(rec.sample_id, "ir"), ir_up)


def test_parallel_workers_give_the_same_cache(tmp_path: Path, media: dict[str, Path]) -> None:
    items = [item("d/live", media["live"], True), item("d/spoof", media["spoof"], False),
             item("d/corrupt", media["corrupt"], False)]
    kw = dict(frames_per_video=2, crop_size=24, scale=1.5, detector=FakeDetector(), progress=False)
    serial = prepare_media(items, tmp_path / "a", **kw)
    parallel = prepare_media(items, tmp_path / "b", num_workers=2, **kw)
    assert (serial.crops_written, serial.media_done, set(serial.media_skipped)) == \
        (parallel.crops_written, parallel.media_done, set(parallel.media_skipped))
    ra, rb = CropCacheReader(tmp_path / "a"), CropCacheReader(tmp_path / "b")
    assert ra.records() == rb.records() and len(ra.records()) == 4
    for r in ra.records():
        np.testing.assert_array_equal(ra.image(r.sample_id), rb.image(r.sample_id))


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path: Path, media: dict[str, Path],
                                                      capsys: pytest.CaptureFixture) -> None:
    items = [item("p/live", media["live"], True), item("p/spoof", media["spoof"], False),
             item("p/black", media["black"], False)]
    prepare_media(items, tmp_path / "cache", every=1, crop_size=24, scale=1.5, detector=FakeDetector(),
                  progress_every_s=0)  # pytest's captured stderr is not a terminal: tqdm would draw nothing
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("prepare: ")]
    assert [ln.split(",")[0] for ln in lines] == ["prepare: 1/3 media (33 %)", "prepare: 2/3 media (67 %)",
                                                  "prepare: 3/3 media (100 %)"]
    # live: 6 frames, one black (no face) → 5 crops; spoof: 6; black: none, skipped
    assert ", crops 5, skipped 0, " in lines[0] and " media/s, ETA " in lines[0]
    assert ", crops 11, skipped 1, " in lines[2] and "ETA" not in lines[2]

    prepare_media(items, tmp_path / "cache2", every=1, crop_size=24, scale=1.5, detector=FakeDetector(),
                  progress_every_s=3600)  # only the closing line, with the time taken
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("prepare: ")]
    assert len(lines) == 1 and lines[0].startswith("prepare: 3/3 media (100 %), crops 11, skipped 1, ")
    assert ", took " in lines[0]
    prepare_media(items, tmp_path / "cache3", every=1, crop_size=24, scale=1.5, detector=FakeDetector(),
                  progress=False)
    assert "prepare: " not in capsys.readouterr().err


def test_prepare_command_prints_progress_lines_into_a_log(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from openfas.cli import app

    root = tmp_path / "faces"
    for i, rel in enumerate(("live/ann/1.png", "live/ann/2.png", "spoof/print/ann/3.png")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), np.full((40, 40, 3), 60 + 40 * i, np.uint8))
    res = CliRunner().invoke(app, ["data", "prepare", "folder", str(root), str(tmp_path / "cache"), "-o",
                                   "faces=whole", "--size", "32", "--progress-every", "0"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("prepare: ")]
    assert len(lines) == 3 and lines[-1].startswith("prepare: 3/3 media (100 %), crops 3, skipped 0, ")
    res = CliRunner().invoke(app, ["data", "prepare", "folder", str(root), str(tmp_path / "c2"), "-o",
                                   "faces=whole", "--progress-every", "nan"])
    assert res.exit_code == 2 and "--progress-every must be a number of seconds >= 0" in res.stderr
