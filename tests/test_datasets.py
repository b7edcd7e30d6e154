"""Dataset adapters on small fake trees in each dataset's published layout (empty media files: adapters only list).

Expected values are written out by hand from the datasets' documented naming conventions, not derived from
the adapters' own tables.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfas.data.datasets import (
    DG_PROTOCOLS,
    CasiaFASD,
    DatasetError,
    FolderDataset,
    dg_protocol,
    get_dataset,
    list_datasets,
)

FIXTURE_P1 = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "oulu_npu" / "Protocols"


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ registry


def test_registry_names_aliases_and_unknown() -> None:
    assert set(list_datasets()) == {"oulu-npu", "casia-fasd", "replay-attack", "msu-mfsd", "casia-surf", "cefa",
                                    "nuaa", "folder"}
    assert get_dataset("oulu") is get_dataset("oulu-npu")
    assert get_dataset("Replay") is get_dataset("replay-attack")
    assert get_dataset("surf").name == "casia-surf"
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*oulu-npu.*replay-attack"):
        get_dataset("nope")


def test_wrong_roots_name_the_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root folder not found"):
        get_dataset("oulu-npu")(tmp_path / "missing")
    for name, hint in [("oulu-npu", "no Protocols/ folder; is this the OULU-NPU root"),
                       ("casia-fasd", "no train_release/"), ("replay-attack", "no train/, devel/ or test/"),
                       ("msu-mfsd", "no train_sub_list.txt"), ("casia-surf", "no train_list.txt"),
                       ("cefa", "no 4@N_train.txt"), ("folder", "no live/ or spoof/")]:
        with pytest.raises(DatasetError, match=hint) as err:
            get_dataset(name)(tmp_path)
        assert str(tmp_path) in str(err.value)


# ------------------------------------------------------------------------------------------ OULU-NPU


def oulu_tree(root: Path, users: dict[str, range], phones: range = range(1, 4), sessions: range = range(1, 4),
              faces: bool = True) -> None:
    """Videos P_S_U_F.avi (+ .txt eye file) in <Split>_files/ for the given users of each split."""
    for split, us in users.items():
        for u in us:
            for p in phones:
                for s in sessions:
                    for f in range(1, 6):
                        name = f"{p}_{s}_{u:02d}_{f}"
                        touch(root / f"{split}_files" / f"{name}.avi")
                        if faces:
                            touch(root / f"{split}_files" / f"{name}.txt", "0,10,10,30,10\n")


def write_list(path: Path, names: list[str], test_labels: bool = False) -> None:
    lines = []
    for n in names:
        f = n[-1]
        lab = "+1" if f == "1" else ("-2" if (test_labels and f in "45") else "-1")
        lines.append(f"{lab},{n}")
    touch(path, "\n".join(lines) + "\n")


@pytest.fixture()
def oulu(tmp_path: Path) -> Path:
    root = tmp_path / "oulu"
    users = {"Train": range(1, 3), "Dev": range(21, 22), "Test": range(36, 38)}
    oulu_tree(root, users)
    vids = {k: [f"{p}_{s}_{u:02d}_{f}" for u in us for p in range(1, 4) for s in range(1, 4) for f in range(1, 6)]
            for k, us in users.items()}
    pr = root / "Protocols"
    # P1: sessions 1,2 for train/dev, session 3 for test, all PAIs
    for k in ("Train", "Dev", "Test"):
        sess = "3" if k == "Test" else "12"
        write_list(pr / "Protocol_1" / f"{k}.txt", [v for v in vids[k] if v[2] in sess], test_labels=k == "Test")
    # P2: PAI 1 (files 2, 4) for train/dev, PAI 2 (files 3, 5) for test
    for k in ("Train", "Dev", "Test"):
        files = "135" if k == "Test" else "124"
        write_list(pr / "Protocol_2" / f"{k}.txt", [v for v in vids[k] if v[-1] in files], test_labels=k == "Test")
    # P3_1: leave phone 1 out
    for k in ("Train", "Dev", "Test"):
        keep = (lambda v: v[0] == "1") if k == "Test" else (lambda v: v[0] != "1")
        write_list(pr / "Protocol_3" / f"{k}_1.txt", [v for v in vids[k] if keep(v)], test_labels=k == "Test")
    return root


def test_oulu_p1_labels_attacks_extras(oulu: Path) -> None:
    ds = get_dataset("oulu-npu")(oulu)
    assert ds.domain == "O" and ds.splits == ("train", "dev", "test")
    assert ds.protocols[:3] == ("1", "2", "3_1") and "4_6" in ds.protocols
    train = ds.list_media("train", protocol="1")
    # 2 users x 3 phones x 2 sessions x 5 files
    assert len(train) == 60
    by_id = {m.media_id: m for m in train}
    m = by_id["O/2_1_01_1"]
    assert (m.label, m.attack, m.subject, m.split, m.kind) == (1, "live", "01", "train", "video")
    assert m.paths["rgb"] == oulu / "Train_files" / "2_1_01_1.avi"
    assert m.face_file == oulu / "Train_files" / "2_1_01_1.txt" and m.extra["face_format"] == "oulu"
    assert (m.extra["phone"], m.extra["session"], m.extra["file"]) == ("2", "1", "1")
    expected = {"2": ("print", "print1"), "3": ("print", "print2"), "4": ("replay", "replay1"),
                "5": ("replay", "replay2")}
    for f, (attack, pai) in expected.items():
        m = by_id[f"O/3_2_02_{f}"]
        assert (m.label, m.attack, m.extra["pai"]) == (0, attack, pai)
    assert {m.extra["session"] for m in train} == {"1", "2"}
    test = ds.list_media("test")  # default protocol = "1"
    assert {m.extra["session"] for m in test} == {"3"} and {m.subject for m in test} == {"36", "37"}
    assert Counter(m.attack for m in test) == {"live": 6, "print": 12, "replay": 12}


def test_oulu_p2_excludes_other_pai_and_p3_leaves_phone_out(oulu: Path) -> None:
    ds = get_dataset("oulu-npu")(oulu)
    assert {m.extra["pai"] for m in ds.list_media("train", "2")} == {"live", "print1", "replay1"}
    assert {m.extra["pai"] for m in ds.list_media("test", "2")} == {"live", "print2", "replay2"}
    tr = ds.list_media("train", "3_1")
    te = ds.list_media("test", "3_1")
    assert {m.extra["phone"] for m in tr} == {"2", "3"} and {m.extra["phone"] for m in te} == {"1"}
    assert len(te) == 2 * 3 * 5  # 2 test users x 3 sessions x 5 files on phone 1
    with pytest.raises(DatasetError, match=r"Protocol_4.*Train_2\.txt: protocol list not found"):
        ds.list_media("train", "4_2")
    # "all": every video of the split folder (2 users x 3 phones x 3 sessions x 5 files)
    assert len(ds.list_media("train", "all")) == 90


def test_oulu_errors_and_missing_video(oulu: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = get_dataset("oulu-npu")(oulu)
    with pytest.raises(ValueError, match="unknown split 'val'; valid splits: train, dev, test"):
        ds.list_media("val")
    with pytest.raises(ValueError, match="unknown protocol '5'.*3_1"):
        ds.list_media("train", "5")
    p = oulu / "Protocols" / "Protocol_1" / "Dev.txt"
    good = p.read_text()
    # a replay video labelled -1 is accepted (the official Train/Dev lists do this) …
    assert "-1,1_1_21_4" in good
    for bad, msg in [("+1,1_1_21_2", "disagrees with the video name 1_1_21_2"),
                     ("-1,1_1_21_1", "disagrees"), ("-2,1_1_21_3", "disagrees"),
                     ("+1;1_1_21_1", "expected 'label,video'"), ("+1,1_1_21_9", "not an OULU-NPU video name"),
                     ("+3,1_1_21_1", "not \\+1, -1 or -2")]:
        p.write_text(good + bad + "\n")
        n = len(good.splitlines()) + 1
        with pytest.raises(DatasetError, match=f"Dev.txt:{n}: .*{msg}"):
            ds.list_media("dev", "1")
    # a listed video that is absent: skipped with one warning; no eye file: face_file None
    p.write_text(good)
    (oulu / "Dev_files" / "1_1_21_3.avi").unlink()
    (oulu / "Dev_files" / "1_1_21_4.txt").unlink()
    with caplog.at_level(logging.WARNING):
        dev = ds.list_media("dev", "1")
    assert len(dev) == len(good.splitlines()) - 1 and "O/1_1_21_3" not in {m.media_id for m in dev}
    assert "1 media listed" in caplog.text and "1_1_21_3" in caplog.text
    m = next(m for m in dev if m.video == "1_1_21_4")
    assert m.face_file is None and "face_format" not in m.extra
    shutil.rmtree(oulu / "Dev_files")
    with pytest.raises(DatasetError, match="no Dev_files/ folder"):
        ds.list_media("dev", "1")


@pytest.mark.skipif(not FIXTURE_P1.is_dir(), reason="shared OULU-NPU protocol fixture not available")
def test_oulu_real_protocol_1_lists(tmp_path: Path) -> None:
    """The distributed P1 lists; counts per split and attack counted by hand from the files (`cut`/`awk`)."""
    root = tmp_path / "oulu"
    shutil.copytree(FIXTURE_P1, root / "Protocols")
    for split in ("Train", "Dev", "Test"):
        folder = root / f"{split}_files"
        folder.mkdir()
        for line in (root / "Protocols" / "Protocol_1" / f"{split}.txt").read_text().split():
            (folder / (line.split(",")[1] + ".avi")).touch()
    ds = get_dataset("oulu-npu")(root)
    counts = {s: Counter(m.attack for m in ds.list_media(s, "1")) for s in ("train", "dev", "test")}
    assert counts["train"] == {"live": 240, "print": 480, "replay": 480}
    assert counts["dev"] == {"live": 180, "print": 359, "replay": 360}
    assert counts["test"] == {"live": 120, "print": 240, "replay": 240}
    labels = {s: Counter(m.label for m in ds.list_media(s, "1")) for s in ("train", "dev", "test")}
    assert labels == {"train": {1: 240, 0: 960}, "dev": {1: 180, 0: 719}, "test": {1: 120, 0: 480}}
    subjects = {s: {int(m.subject) for m in ds.list_media(s, "1")} for s in ("train", "dev", "test")}
    assert subjects == {"train": set(range(1, 21)), "dev": set(range(21, 36)), "test": set(range(36, 56))}


# ---------------------------------------------------------------------------------------- CASIA-FASD


@pytest.fixture()
def casia(tmp_path: Path) -> Path:
    root = tmp_path / "casia"
    for rel, n in (("train_release", 3), ("test_release", 2)):
        for s in range(1, n + 1):
            for v in [*map(str, range(1, 9)), "HR_1", "HR_2", "HR_3", "HR_4"]:
                touch(root / rel / str(s) / f"{v}.avi")
            touch(root / rel / str(s) / "notes.txt")
    return root


def test_casia_fasd(casia: Path) -> None:
    ds = get_dataset("casia-fasd")(casia)
    assert ds.splits == ("train", "test") and ds.domain == "C"
    train = ds.list_media("train")
    assert len(train) == 3 * 12
    by = {m.media_id: m for m in train}
    truth = {"1": ("live", "live", "low"), "2": ("live", "live", "normal"), "HR_1": ("live", "live", "high"),
             "3": ("print", "warped_photo", "low"), "HR_2": ("print", "warped_photo", "high"),
             "6": ("print", "cut_photo", "normal"), "HR_3": ("print", "cut_photo", "high"),
             "7": ("replay", "video", "low"), "8": ("replay", "video", "normal")}
    for stem, (attack, pai, quality) in truth.items():
        m = by[f"C/train_release/2/{stem}"]
        assert (m.attack, m.extra["pai"], m.extra["quality"], m.label) == (attack, pai, quality, int(attack == "live"))
        assert m.subject == "train_2" and m.face_file is None
    test = ds.list_media("test")
    assert {m.subject for m in test} == {"test_1", "test_2"}  # numbered from 1 again, other people
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        ds.list_media("dev")
    ds2 = CasiaFASD(casia, dev_subjects=1)
    assert ds2.splits == ("train", "dev", "test")
    assert {m.subject for m in ds2.list_media("dev")} == {"train_3"}
    assert {m.subject for m in ds2.list_media("train")} == {"train_1", "train_2"}


# ------------------------------------------------------------------------------------- Replay-Attack


@pytest.fixture()
def replay(tmp_path: Path) -> Path:
    root = tmp_path / "replay"
    for folder in ("train", "devel", "test"):
        base = root / folder
        for light in ("controlled", "adverse"):
            touch(base / "real" / f"client001_session01_webcam_authenticate_{light}_1.mov")
            for support in ("fixed", "hand"):
                for name in (f"attack_print_client001_session01_highdef_photo_{light}",
                             f"attack_mobile_client001_session01_mobile_photo_{light}",
                             f"attack_mobile_client001_session01_mobile_video_{light}",
                             f"attack_highdef_client001_session01_highdef_photo_{light}",
                             f"attack_highdef_client001_session01_highdef_video_{light}"):
                    touch(base / "attack" / support / f"{name}.mov")
    touch(root / "face-locations" / "train" / "real" / "client001_session01_webcam_authenticate_adverse_1.face",
          "0 10 10 50 50\n")
    touch(root / "enroll" / "train" / "client001_session01_webcam_enroll_controlled_1.mov")
    return root


def test_replay_attack(replay: Path) -> None:
    ds = get_dataset("replay-attack")(replay)
    train = ds.list_media("train")
    assert len(train) == 2 + 2 * 2 * 5 and all("enroll" not in m.media_id for m in train)
    by = {m.media_id: m for m in train}
    m = by["I/train/real/client001_session01_webcam_authenticate_adverse_1"]
    assert (m.label, m.attack, m.subject, m.extra["light"]) == (1, "live", "001", "adverse")
    assert m.face_file == replay / "face-locations/train/real/client001_session01_webcam_authenticate_adverse_1.face"
    assert m.extra["face_format"] == "replay"
    assert by["I/train/real/client001_session01_webcam_authenticate_controlled_1"].face_file is None
    m = by["I/train/attack/hand/attack_print_client001_session01_highdef_photo_controlled"]
    assert (m.label, m.attack, m.extra["support"], m.extra["pai"]) == (0, "print", "hand", "print")
    m = by["I/train/attack/fixed/attack_highdef_client001_session01_highdef_photo_adverse"]
    assert (m.attack, m.extra["pai"], m.extra["support"]) == ("replay", "highdef_photo", "fixed")
    assert by["I/train/attack/fixed/attack_mobile_client001_session01_mobile_video_adverse"].attack == "replay"
    assert {m.split for m in ds.list_media("dev")} == {"dev"}
    assert Counter(m.attack for m in ds.list_media("test", "print")) == {"live": 2, "print": 4}
    photo = ds.list_media("test", "photo")
    assert Counter(m.extra["pai"] for m in photo) == {"live": 2, "print": 4, "mobile_photo": 4, "highdef_photo": 4}
    video = ds.list_media("test", "video")
    assert Counter(m.extra["pai"] for m in video) == {"live": 2, "mobile_video": 4, "highdef_video": 4}
    touch(replay / "test" / "attack" / "fixed" / "attack_paper_client001_session01_x_photo_adverse.mov")
    with pytest.raises(DatasetError, match="attack_paper_client001.*not a Replay-Attack file name"):
        ds.list_media("test")


# ------------------------------------------------------------------------------------------ MSU-MFSD


def test_msu_mfsd(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "msu"
    touch(root / "train_sub_list.txt", "02\n03\n")
    touch(root / "test_sub_list.txt", "01\n")
    for c in ("001", "002", "003", "055"):
        for dev, ext in (("android", "mp4"), ("laptop", "mov")):
            touch(root / "scene01" / "real" / f"real_client{c}_{dev}_SD_scene01.{ext}")
            for a in ("ipad_video", "iphone_video", "printed_photo"):
                touch(root / "scene01" / "attack" / f"attack_client{c}_{dev}_SD_{a}_scene01.{ext}")
    ds = get_dataset("msu-mfsd")(root)
    assert ds.domain == "M" and ds.splits == ("train", "test")
    with caplog.at_level(logging.WARNING):
        train = ds.list_media("train")
    assert "055" in caplog.text  # in neither list
    assert {m.subject for m in train} == {"002", "003"} and len(train) == 2 * 2 * 4
    by = {m.media_id: m for m in train}
    m = by["M/attack_client002_laptop_SD_printed_photo_scene01"]
    assert (m.label, m.attack, m.extra["device"], m.extra["pai"]) == (0, "print", "laptop", "printed_photo")
    assert by["M/attack_client003_android_SD_iphone_video_scene01"].attack == "replay"
    assert by["M/real_client002_android_SD_scene01"].label == 1
    assert {m.subject for m in ds.list_media("test")} == {"001"}


# ------------------------------------------------------------------------------- CASIA-SURF and CeFA


def test_casia_surf(tmp_path: Path) -> None:
    root = tmp_path / "surf"
    rows = []
    for part, subj, vid, lab in (("real_part", "CLKJ_AS0137", "real.rssdk", 1),
                                 ("fake_part", "CLKJ_AS0005", "04_en_b.rssdk", 0)):
        for i in (1, 2):
            rel = [f"Training/{part}/{subj}/{vid}/{m}/{i}.jpg" for m in ("color", "depth", "ir")]
            for r in rel:
                touch(root / r)
            rows.append(" ".join(rel) + f" {lab}")
    touch(root / "train_list.txt", "\n".join(rows) + "\n")
    ds = get_dataset("casia-surf")(root)
    items = ds.list_media("train")
    assert [m.label for m in items] == [1, 1, 0, 0]
    m = items[2]
    assert (m.attack, m.kind, m.subject, m.extra["face_format"], m.extra["attack_code"]) == \
           ("print", "image", "CLKJ_AS0005", "whole", "04_en_b")
    assert m.paths == {"rgb": root / "Training/fake_part/CLKJ_AS0005/04_en_b.rssdk/color/1.jpg",
                       "depth": root / "Training/fake_part/CLKJ_AS0005/04_en_b.rssdk/depth/1.jpg",
                       "ir": root / "Training/fake_part/CLKJ_AS0005/04_en_b.rssdk/ir/1.jpg"}
    assert m.video == "Training/fake_part/CLKJ_AS0005/04_en_b.rssdk"
    with pytest.raises(DatasetError, match="no val_private_list.txt"):
        ds.list_media("dev")
    # a list file given as the protocol
    touch(root / "mine.txt", rows[0] + "\n")
    assert len(ds.list_media("dev", protocol="mine.txt")) == 1
    touch(root / "bad.txt", rows[0].rsplit(" ", 1)[0] + "\n")
    with pytest.raises(DatasetError, match="bad.txt:1: no label"):
        ds.list_media("train", protocol=str(root / "bad.txt"))
    touch(root / "bad.txt", rows[0][:-1] + "2\n")
    with pytest.raises(DatasetError, match="bad.txt:1: label '2' is not 1"):
        ds.list_media("train", protocol="bad.txt")


def test_cefa(tmp_path: Path) -> None:
    root = tmp_path / "cefa"
    p1 = root / "phase1"
    train = []
    for folder, lab in (("1_000_1_1_1", 1), ("1_000_1_1_4", 0)):
        for i in (1, 2):
            for mod in ("profile", "depth", "ir"):
                touch(p1 / "train" / folder / mod / f"{i:04d}.jpg")
            train.append(f"train/{folder}/profile/{i:04d}.jpg {lab}")
    touch(p1 / "4@1_train.txt", "\n".join(train) + "\n")
    for split, folder in (("dev", "003000"), ("test", "000010")):
        for i in range(3):
            for mod in ("profile", "depth", "ir"):
                touch(p1 / split / folder / mod / f"{i:04d}.jpg")
    touch(p1 / "4@1_dev_res.txt", "dev/003000 0\n")
    touch(p1 / "4@1_test_res.txt", "test/000010 0\n")
    ds = get_dataset("cefa")(root)
    assert ds.protocols == ("4@1", "4@2", "4@3")
    tr = ds.list_media("train", "4@1")
    assert [(m.label, m.attack, m.extra["ethnicity"], m.extra["pai"]) for m in tr] == \
           [(1, "live", "AF", "live")] * 2 + [(0, "replay", "AF", "screen")] * 2
    assert tr[0].paths["ir"] == p1 / "train/1_000_1_1_1/ir/0001.jpg" and tr[0].subject == "1_000"
    dev = ds.list_media("dev", "4@1")
    assert len(dev) == 3 and {(m.attack, m.extra["ethnicity"], m.video) for m in dev} == \
           {("replay", "AF", "dev/003000")}
    test = ds.list_media("test", "4@1")
    assert {(m.attack, m.extra["ethnicity"]) for m in test} == {("print", "unknown")}
    assert all(m.extra["face_format"] == "whole" and m.kind == "image" for m in test)
    with pytest.raises(DatasetError, match="no 4@2_train.txt"):
        ds.list_media("train", "4@2")
    touch(p1 / "4@1_train.txt", "train/1_000_1_1_1/profile/0001.jpg 0\n")
    with pytest.raises(DatasetError, match="4@1_train.txt:1: label 0 disagrees with the folder name 1_000_1_1_1"):
        ds.list_media("train", "4@1")
    touch(p1 / "4@1_dev_res.txt", "dev/003000\n")
    with pytest.raises(DatasetError, match="4@1_dev_res.txt:1: .*unlabelled"):
        ds.list_media("dev", "4@1")


# -------------------------------------------------------------------------------------------- folder


def test_folder_layout_and_errors(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    touch(root / "live" / "alice" / "a.jpg")
    touch(root / "live" / "b.png")
    touch(root / "live" / "clip.mp4")
    touch(root / "spoof" / "print" / "bob" / "p.jpg")
    touch(root / "spoof" / "mask" / "m.avi")
    touch(root / "live" / "readme.txt")
    ds = FolderDataset(root)
    assert ds.splits == ("all",)
    items = {m.media_id: m for m in ds.list_media("all")}
    assert set(items) == {"folder/live/alice/a.jpg", "folder/live/b.png", "folder/live/clip.mp4",
                          "folder/spoof/print/bob/p.jpg", "folder/spoof/mask/m.avi"}
    assert (items["folder/live/alice/a.jpg"].subject, items["folder/live/alice/a.jpg"].kind) == ("alice", "image")
    assert items["folder/live/clip.mp4"].kind == "video"
    m = items["folder/spoof/mask/m.avi"]
    assert (m.label, m.attack, m.kind, m.subject) == (0, "mask", "video", "m")
    assert "face_format" not in m.extra
    assert FolderDataset(root, faces="whole").list_media("all")[0].extra["face_format"] == "whole"
    (root / "spoof" / "cutout").mkdir()
    with pytest.raises(DatasetError, match="unknown attack folder 'cutout'"):
        FolderDataset(root)
    (root / "spoof" / "cutout").rmdir()
    split_root = tmp_path / "splits"
    touch(split_root / "train" / "live" / "x.jpg")
    touch(split_root / "test" / "spoof" / "replay" / "y.jpg")
    ds = get_dataset("folder")(split_root)
    assert ds.splits == ("train", "test")
    assert [m.split for m in ds.list_media("test")] == ["test"]
    with pytest.raises(ValueError, match="unknown split 'dev'; valid splits: train, test"):
        ds.list_media("dev")


# ---------------------------------------------------------------------------------------- DG protocols


def test_dg_protocols(tmp_path: Path, casia: Path, replay: Path) -> None:
    assert set(DG_PROTOCOLS) == {"OCI-M", "OMI-C", "OCM-I", "ICM-O"}
    p = dg_protocol("O&C&I->M")
    assert (p.name, sorted(p.sources), p.target) == ("OCI-M", ["casia-fasd", "oulu-npu", "replay-attack"], "msu-mfsd")
    assert dg_protocol("ICM2O").target == "oulu-npu" and dg_protocol("MIO-C").name == "OMI-C"
    with pytest.raises(ValueError, match="unknown DG protocol 'OC-M'.*OCI-M"):
        dg_protocol("OC-M")
    with pytest.raises(ValueError, match="unknown DG convention"):
        dg_protocol("OCI-M", "everything")
    # sources C + I of OCI-M are listable: "all" uses every split, "train_test" only train
    strict = dg_protocol("OCI-M", "train_test")
    assert (strict.source_splits, strict.target_splits) == (("train",), ("test",))
    roots = {"C": casia, "I": replay, "oulu-npu": tmp_path / "nowhere"}
    with pytest.raises(DatasetError, match="nowhere"):
        p.list_media(roots, "source")
    sub = dg_protocol("OCM-I")  # target I
    assert {m.split for m in sub.list_media(roots, "target")} == {"train", "dev", "test"}
    assert {m.split for m in dg_protocol("OCM-I", "train_test").list_media(roots, "target")} == {"test"}


# -------------------------------------------------------------------------------------- end to end


def test_folder_to_cache_end_to_end(tmp_path: Path) -> None:
    """Folder tree of small PNG face crops → prepare_media (faces="whole", scale 1, crop = image size) → the
    cache holds exactly the original pixels, labels and attacks."""
    from openfas.data.cache import CropCacheReader
    from openfas.data.prepare import prepare_media

    rng = np.random.default_rng(0)
    root = tmp_path / "faces"
    images: dict[str, np.ndarray] = {}
    for rel in ("train/live/s1/a.png", "train/spoof/print/s2/b.png", "test/live/s3/c.png",
                "test/spoof/replay/s3/d.png"):
        img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        cv2.ellipse(img, (16, 16), (9, 12), 0, 0, 360, (200, 180, 160), -1)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / rel), img)
        images[f"faces/{rel}"] = img
    ds = FolderDataset(root, faces="whole", domain="faces")
    items = ds.list_media("train") + ds.list_media("test")
    report = prepare_media(items, tmp_path / "cache", crop_size=32, scale=1.0, detector="none-needed",
                           progress=False)
    assert report.media_done == 4 and report.crops_written == 4 and not report.media_skipped
    reader = CropCacheReader(tmp_path / "cache")
    recs = {r.media_id: r for r in reader.records()}
    assert set(recs) == set(images)
    truth = {"faces/train/live/s1/a.png": (1, "live", "train", "s1"),
             "faces/train/spoof/print/s2/b.png": (0, "print", "train", "s2"),
             "faces/test/live/s3/c.png": (1, "live", "test", "s3"),
             "faces/test/spoof/replay/s3/d.png": (0, "replay", "test", "s3")}
    for mid, (label, attack, split, subject) in truth.items():
        r = recs[mid]
        assert (r.label, r.attack, r.split, r.subject, r.domain, r.frame) == (label, attack, split, subject, "faces", 0)
        np.testing.assert_array_equal(reader.image(r.sample_id), images[mid])
        assert (reader.target(r.sample_id) is not None) == (label == 1)


def test_cli_prepare_folder_with_adapter_option_and_default_splits(tmp_path: Path) -> None:
    """`openfas data prepare folder ROOT OUT -o faces=whole` prepares every split the layout has."""
    from typer.testing import CliRunner

    from openfas.cli import app
    from openfas.data.cache import CropCacheReader

    rng = np.random.default_rng(1)
    root = tmp_path / "faces"
    for rel in ("train/live/a.png", "train/spoof/print/b.png", "test/live/c.png", "test/spoof/replay/d.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / rel), rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    res = CliRunner().invoke(app, ["data", "prepare", "folder", str(root), str(tmp_path / "c"), "-o", "faces=whole",
                                   "--size", "24", "--scale", "1.0"])
    assert res.exit_code == 0, res.output
    recs = CropCacheReader(tmp_path / "c").records()
    assert sorted((r.split, r.attack) for r in recs) == [("test", "live"), ("test", "replay"), ("train", "live"),
                                                           ("train", "print")]
    bad = CliRunner().invoke(app, ["data", "prepare", "folder", str(root), str(tmp_path / "d"), "-o", "nope=1"])
    assert bad.exit_code == 2 and "bad adapter option" in bad.output
