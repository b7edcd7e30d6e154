"""Three real datasets as one set of domains: Replay-Attack read from folders of extracted frames (as shipped in
``../shared/data/replayattack``) or from videos, its official protocol, and the fixed identity split of a folder
tree (CelebA-Spoof crops). Tests on shared data are skipped when ``../shared`` is absent."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfas.data.cache import CropCacheReader
from openfas.data.datasets import DatasetError, get_dataset
from openfas.data.datasets.folder import FolderDataset, identity_split_of, parse_identity_split
from openfas.data.face import Box
from openfas.data.prepare import prepare_media
from openfas.data.video import MediaError, count_frames, frame_folder_files, read_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REPLAY_ROOT = SHARED / "replayattack"
CELEBA_ROOT = SHARED / "celeba_spoof_subset"
needs_replay = pytest.mark.skipif(not (REPLAY_ROOT / "train").is_dir(), reason="shared Replay-Attack not available")
needs_celeba = pytest.mark.skipif(not (CELEBA_ROOT / "live").is_dir(), reason="shared CelebA-Spoof not available")

REAL = "client001_session01_webcam_authenticate_adverse_1"
PRINT = "attack_print_client001_session01_highdef_photo_adverse"


def _write_frame(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((24, 32, 3), value, np.uint8)
    img[value % 24, :, 1] = 255  # a row that tells frames apart
    cv2.imwrite(str(path), img)
    return path


# ----------------------------------------------------------------------------------------- frame folders


def test_frame_folder_reads_like_a_video_and_keeps_frame_numbers(tmp_path: Path) -> None:
    folder = tmp_path / REAL
    for n, v in ((177, 10), (12, 20), (40, 30)):
        _write_frame(folder / f"frame_{n:05d}.jpg", v)
    (folder / "notes.txt").write_text("not a frame")
    assert [n for n, _ in frame_folder_files(folder)] == [12, 40, 177]
    assert count_frames(folder) == 3
    got = read_frames(folder, [0, 2, 7])  # positions; 7 is past the end and silently absent
    assert [n for n, _ in got] == [12, 177]
    direct = cv2.imread(str(folder / "frame_00177.jpg"))
    assert np.array_equal(got[1][1], direct)
    assert [n for n, _ in read_frames(folder)] == [12, 40, 177]


def test_frame_folder_errors_name_the_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MediaError, match="empty: a frame folder with no image files"):
        count_frames(empty)
    _write_frame(tmp_path / "nonum" / "frame_a.jpg")
    with pytest.raises(MediaError, match="frame_a.jpg: a frame file name must end in its frame number"):
        read_frames(tmp_path / "nonum")
    _write_frame(tmp_path / "dup" / "frame_7.jpg")
    _write_frame(tmp_path / "dup" / "frame_007.png")
    with pytest.raises(MediaError, match="both claim frame 7"):
        count_frames(tmp_path / "dup")


def _replay_tree(root: Path) -> None:
    for split in ("train", "devel", "test"):
        _write_frame(root / split / "real" / REAL / "frame_00177.jpg")
        _write_frame(root / split / "attack" / "hand" / PRINT / "frame_00003.jpg")
        (root / split / "attack" / "fixed").mkdir(parents=True)


def test_replay_attack_frame_folders_and_videos_mixed(tmp_path: Path) -> None:
    root = tmp_path / "replay"
    _replay_tree(root)
    mov = root / "test" / "attack" / "fixed" / "attack_mobile_client001_session01_mobile_video_adverse.mov"
    mov.write_bytes(b"x")
    both = root / "test" / "attack" / "hand" / f"{PRINT}.mov"  # the same video as a file and as a folder
    both.write_bytes(b"x")
    ds = get_dataset("replay-attack")(root)
    train = {m.media_id: m for m in ds.list_media("train")}
    assert set(train) == {f"I/train/real/{REAL}", f"I/train/attack/hand/{PRINT}"}
    live = train[f"I/train/real/{REAL}"]
    assert (live.kind, live.paths["rgb"], live.label, live.subject) == ("video", root / "train/real" / REAL, 1, "001")
    att = train[f"I/train/attack/hand/{PRINT}"]
    assert (att.attack, att.extra["pai"], att.extra["support"], att.extra["medium"], att.extra["light"]) == \
        ("print", "print", "hand", "photo", "adverse")
    test = {m.media_id: m for m in ds.list_media("test")}
    assert test[f"I/test/attack/hand/{PRINT}"].paths["rgb"] == both  # the file wins over the folder
    assert test["I/test/attack/fixed/attack_mobile_client001_session01_mobile_video_adverse"].extra["medium"] == \
        "video"
    _write_frame(root / "test" / "real" / "holiday_pictures" / "frame_1.jpg")
    with pytest.raises(DatasetError, match="holiday_pictures.*not a Replay-Attack file name"):
        ds.list_media("test")


def test_prepare_reads_frame_folders_with_face_files(tmp_path: Path) -> None:
    """A frame folder's frame keeps its own number, so the database's ``.face`` file (per original frame) applies."""
    root = tmp_path / "replay"
    _replay_tree(root)
    face = root / "face-locations" / "train" / "real" / f"{REAL}.face"
    face.parent.mkdir(parents=True)
    face.write_text("176 4 2 12 12\n177 8 4 16 16\n")  # frame x y w h
    items = get_dataset("replay-attack")(root).list_media("train")
    report = prepare_media(items, tmp_path / "cache", frames_per_video=10, crop_size=16, scale=1.0,
                           detector=_FixedDetector(), progress=False)
    assert report.crops_written == 2
    recs = {r.media_id: r for r in CropCacheReader(tmp_path / "cache").records()}
    assert recs[f"I/train/real/{REAL}"].frame == 177
    assert recs[f"I/train/attack/hand/{PRINT}"].frame == 3
    assert report.frames_detected == 1  # the live folder used its face file, only the attack needed the detector


class _FixedDetector:
    def detect(self, image: np.ndarray) -> list[Box]:
        return [Box(2, 2, 10, 10, 0.9)]


# ----------------------------------------------------------------------------------- shared Replay-Attack


@needs_replay
def test_shared_replay_attack_official_protocol_counts_and_disjoint_clients() -> None:
    """README of the shared copy: train 60 real / 300 attack, devel 60 / 300, test 80 / 400, clients disjoint."""
    ds = get_dataset("replay-attack")(REPLAY_ROOT)
    counts, clients = {}, {}
    for split in ("train", "dev", "test"):
        items = ds.list_media(split)
        counts[split] = Counter("live" if m.label == 1 else "attack" for m in items)
        clients[split] = {m.subject for m in items}
        assert all(m.kind == "video" and m.paths["rgb"].is_dir() for m in items)
        support = Counter(m.extra["support"] for m in items if m.label == 0)
        assert support["hand"] == support["fixed"]
        assert Counter(m.extra["light"] for m in items) == {"controlled": len(items) // 2, "adverse": len(items) // 2}
    assert counts == {"train": {"live": 60, "attack": 300}, "dev": {"live": 60, "attack": 300},
                      "test": {"live": 80, "attack": 400}}
    assert [len(clients[s]) for s in ("train", "dev", "test")] == [15, 15, 20]
    assert not (clients["train"] & clients["dev"] or clients["train"] & clients["test"] or
                clients["dev"] & clients["test"])
    kinds = Counter((m.extra["device"], m.extra["medium"]) for m in ds.list_media("test") if m.label == 0)
    assert kinds == {("print", "photo"): 80, ("mobile", "photo"): 80, ("mobile", "video"): 80,
                     ("highdef", "photo"): 80, ("highdef", "video"): 80}


@needs_replay
def test_shared_replay_frames_crop_end_to_end(tmp_path: Path) -> None:
    """A few shared frame folders through ``prepare_media`` with the real default detector."""
    root = tmp_path / "replay"
    picked = [REPLAY_ROOT / "train" / "real" / REAL,
              REPLAY_ROOT / "train" / "attack" / "hand" / PRINT]
    for src in picked:
        shutil.copytree(src, root / src.relative_to(REPLAY_ROOT))
    for split in ("devel", "test"):
        (root / split / "real").mkdir(parents=True)
        (root / split / "attack").mkdir(parents=True)
    items = get_dataset("replay-attack")(root).list_media("train")
    report = prepare_media(items, tmp_path / "cache", frames_per_video=10, crop_size=32, scale=1.1, progress=False)
    assert report.crops_written == 2 and report.frames_no_face == 0
    expected = {f"I/train/real/{REAL}": int(next((root / "train/real" / REAL).glob("frame_*.jpg")).stem[6:])}
    recs = {r.media_id: r for r in CropCacheReader(tmp_path / "cache").records()}
    assert recs[f"I/train/real/{REAL}"].frame == expected[f"I/train/real/{REAL}"]
    assert recs[f"I/train/attack/hand/{PRINT}"].attack == "print"


# ------------------------------------------------------------------------------------ identity split


def _hash_unit(name: str) -> float:
    return int(hashlib.sha256(name.encode()).hexdigest()[:16], 16) / 16 ** 16


def test_identity_split_rule() -> None:
    assert parse_identity_split("60/20/20") == pytest.approx((0.6, 0.2, 0.2))
    assert parse_identity_split("3,1,1") == pytest.approx((0.6, 0.2, 0.2))
    for bad in ("60/40", "a/b/c", "-1/1/1", "0/0/0"):
        with pytest.raises(ValueError, match="identity_split must be three percentages"):
            parse_identity_split(bad)
    for name in ("10044", "alice", "Ünïcode", "x" * 200):
        u = _hash_unit(name)
        want = "train" if u < 0.6 else "dev" if u < 0.8 else "test"
        assert identity_split_of(name, (0.6, 0.2, 0.2)) == want


def test_folder_identity_split_keeps_each_subject_on_one_side(tmp_path: Path) -> None:
    root = tmp_path / "crops"
    names = [f"id{i:03d}" for i in range(60)]
    for n in names:
        _write_frame(root / "live" / n / "a.jpg")
        _write_frame(root / "spoof" / "other" / n / "b.jpg")
    ds = FolderDataset(root, faces="whole", domain="S", identity_split="60/20/20")
    assert ds.splits == ("train", "dev", "test")
    by_split = {s: ds.list_media(s) for s in ds.splits}
    subjects = {s: {m.subject for m in items} for s, items in by_split.items()}
    assert set.union(*subjects.values()) == set(names)
    assert sum(len(v) for v in subjects.values()) == len(names)  # disjoint
    for s, items in by_split.items():
        assert all(m.split == s and m.domain == "S" and m.media_id.startswith("S/") for m in items)
        assert Counter(m.label for m in items)[1] == Counter(m.label for m in items)[0]  # live and attack together
    # the split of a subject depends on its name alone: removing other subjects changes nothing
    shutil.rmtree(root / "live" / names[0])
    shutil.rmtree(root / "spoof" / "other" / names[0])
    again = FolderDataset(root, faces="whole", domain="S", identity_split="60/20/20")
    assert {s: {m.subject for m in again.list_media(s)} for s in again.splits} == \
        {s: v - {names[0]} for s, v in subjects.items()}
    _write_frame(tmp_path / "split" / "train" / "live" / "a.jpg")
    with pytest.raises(DatasetError, match="identity_split splits a tree without train/ dev/ test/ folders"):
        FolderDataset(tmp_path / "split", identity_split="60/20/20")


@needs_celeba
def test_shared_celeba_spoof_identity_split_counts() -> None:
    """The documented split of the shared CelebA-Spoof subset (docs: crops per split and class)."""
    ds = get_dataset("folder")(CELEBA_ROOT, faces="detect", domain="S", identity_split="60/20/20")
    counts = {s: Counter(m.attack for m in ds.list_media(s)) for s in ds.splits}
    assert counts == {"train": {"live": 523, "other": 526}, "dev": {"live": 175, "other": 170},
                      "test": {"live": 188, "other": 186}}
    subjects = {s: {m.subject for m in ds.list_media(s)} for s in ds.splits}
    assert not (subjects["train"] & subjects["dev"] or subjects["train"] & subjects["test"] or
                subjects["dev"] & subjects["test"])


# ------------------------------------------------------------------------------------- packaged protocols


def _cross_configs() -> list[str]:
    from openfas.config import list_packaged_configs

    return [n for n in list_packaged_configs() if n.startswith("cross/")]


def test_every_cross_config_is_a_leave_one_dataset_out_or_intra_protocol() -> None:
    """Sources train and choose (their dev split: epoch and threshold); the target is never trained or chosen on."""
    from openfas.config import load_config

    protocols = {"is_n": (["I", "S"], ["N"]), "ns_i": (["N", "S"], ["I"]), "ni_s": (["N", "I"], ["S"]),
                 "replay": (["I"], ["I"])}
    names = _cross_configs()
    seen = Counter()
    for name in names:
        cfg = load_config(name)
        proto = next(p for p in protocols if name.endswith(f"_{p}.yaml"))
        seen[proto] += 1
        assert (cfg.data.train_domains, cfg.data.test_domains) == protocols[proto], name
        assert (cfg.data.train_split, cfg.data.dev_split, cfg.data.test_split) == ("train", "dev", "test"), name
        assert cfg.eval.threshold == "dev_eer" and cfg.train.select == "auc", name
        assert cfg.experiment.name == Path(name).stem, name
        if proto != "replay":
            assert not set(cfg.data.train_domains) & set(cfg.data.test_domains), name
    # every model on the three leave-one-out protocols; the meta-learners also as plain aggregation
    assert seen["is_n"] == seen["ns_i"] == seen["ni_s"] == 10
    for base in ("rfmeta", "anrl"):
        for proto in ("is_n", "ns_i", "ni_s"):
            meta = load_config(f"cross/{base}_{proto}.yaml")
            agg = load_config(f"cross/{base}_agg_{proto}.yaml")
            assert (meta.method.kwargs()["meta"], agg.method.kwargs()["meta"]) == (True, False)
            assert meta.model == agg.model and meta.data == agg.data and meta.optim == agg.optim
