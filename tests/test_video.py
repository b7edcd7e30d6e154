"""Video/image decoding and frame sampling (openfas.data.video)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from openfas.data.video import MediaError, count_frames, read_frames, read_image, sample_frame_indices

av = pytest.importorskip("av")


def write_lossless_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """FFV1 in Matroska: lossless, so decoded frames must equal the source arrays bit for bit."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def random_frames(n: int, h: int = 24, w: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize(
    ("n", "every", "count", "expected"),
    [
        (10, 3, None, [0, 3, 6, 9]),
        (10, 1, None, list(range(10))),
        (10, 20, None, [0]),
        (10, None, 2, [2, 7]),  # floor(0.5*10/2)=2, floor(1.5*10/2)=7
        (10, None, 4, [1, 3, 6, 8]),  # floor((i+0.5)*2.5) = 1, 3, 6, 8
        (10, None, 1, [5]),
        (3, None, 5, [0, 1, 2]),
        (4, None, None, [0, 1, 2, 3]),
        (0, None, 3, []),
    ],
)
def test_sample_frame_indices_hand_computed(n: int, every: int | None, count: int | None,
                                            expected: list[int]) -> None:
    assert sample_frame_indices(n, every=every, count=count) == expected


def test_sample_frame_indices_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="either"):
        sample_frame_indices(10, every=2, count=3)
    with pytest.raises(ValueError):
        sample_frame_indices(10, every=0)
    with pytest.raises(ValueError):
        sample_frame_indices(10, count=0)


@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_read_frames_returns_the_requested_frames_exactly(tmp_path: Path, backend: str) -> None:
    src = random_frames(7)
    path = write_lossless_video(tmp_path / "clip.mkv", src)
    assert count_frames(path, backend=backend) == 7
    got = read_frames(path, [0, 3, 6], backend=backend)
    assert [i for i, _ in got] == [0, 3, 6]
    for i, frame in got:
        assert frame.dtype == np.uint8 and frame.shape == (24, 32, 3)
        np.testing.assert_array_equal(frame, src[i])
    # indices past the end are absent, not an error
    assert [i for i, _ in read_frames(path, [5, 40], backend=backend)] == [5]
    assert len(read_frames(path, None, backend=backend)) == 7


def test_corrupt_zero_byte_and_missing_files_raise_media_error_naming_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.avi"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mov"
    text.write_text("this is not a video\n" * 20)
    for path in (junk, empty, text, tmp_path / "missing.mp4"):
        with pytest.raises(MediaError, match=path.name):
            read_frames(path, [0, 1])
        with pytest.raises(MediaError, match=path.name):
            count_frames(path)
    with pytest.raises(MediaError, match="empty"):
        read_frames(empty, [0])


def test_truncated_video_gives_media_error_or_only_intact_frames(tmp_path: Path) -> None:
    src = random_frames(6, seed=3)
    full = write_lossless_video(tmp_path / "full.mkv", src)
    cut = tmp_path / "cut.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    try:
        got = read_frames(cut, list(range(6)))
    except MediaError as err:
        assert "cut.mkv" in str(err)
    else:  # whatever decoded must be genuine frames, and the tail must be missing
        assert 0 < len(got) < 6
        for i, frame in got[:-1]:  # the last decoded frame may be partial
            np.testing.assert_array_equal(frame, src[i])


def test_read_image_odd_path_and_grayscale_to_bgr(tmp_path: Path) -> None:
    folder = tmp_path / "dir with spaces ü"
    folder.mkdir()
    img = np.random.default_rng(2).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    (folder / "frame ü.png").write_bytes(buf.tobytes())
    np.testing.assert_array_equal(read_image(folder / "frame ü.png"), img)
    gray = img[:, :, 0].copy()
    (folder / "g.png").write_bytes(cv2.imencode(".png", gray)[1].tobytes())
    out = read_image(folder / "g.png")
    assert out.shape == (10, 12, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)
    got = read_frames(folder / "frame ü.png", [0])
    assert len(got) == 1 and got[0][0] == 0
    bad = folder / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(MediaError, match="bad.jpg"):
        read_image(bad)
