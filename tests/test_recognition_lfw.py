"""Real faces in, masks on: landmarks, ArcFace alignment and mask geometry (independent checks), dlib on a
handful of shared LFW images (skipped when ../shared or dlib is absent)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import dlib_models_available

from openfas.data.synth.masks import ARCFACE_112, MASK_TYPES, apply_mask, face_frame, sample_style
from openfas.recognition.landmarks import align_face, reduce_68_to_5, similarity_transform, transform_points

SHARED = Path(__file__).resolve().parents[2] / "shared"
LFW = SHARED / "data" / "lfw"
LFW_FILES = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0013.jpg",
             "Serena_Williams/Serena_Williams_0002.jpg", "Colin_Powell/Colin_Powell_0005.jpg"]
needs_lfw = pytest.mark.skipif(not (LFW / "lfw-deepfunneled").is_dir(), reason="shared LFW not available")


needs_dlib = pytest.mark.skipif(not dlib_models_available(),
                                reason="dlib extra not installed (pip install 'openfas[dlib]')")


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


# ---------------------------------------------------------------- the LFW route: protocol files and data
def test_view1_readers_and_selection(tmp_path: Path) -> None:
    from openfas.recognition.lfw import LFWError, read_people, read_view1_pairs, select_train, subsample_pairs

    people = tmp_path / "peopleDevTrain.txt"
    people.write_text("3\nAnn\t5\nBob\t2\nCid\t9\n")
    got = read_people(people)
    assert got == [("Ann", 5), ("Bob", 2), ("Cid", 9)]
    assert select_train(got, 3, 4, None) == [f"Ann/Ann_{i:04d}" for i in range(1, 5)] + \
        [f"Cid/Cid_{i:04d}" for i in range(1, 5)]
    assert select_train(got, 2, 2, 1) == ["Cid/Cid_0001", "Cid/Cid_0002"]  # the person with the most images
    people.write_text("4\nAnn\t5\n")
    with pytest.raises(LFWError, match="header says 4 people"):
        read_people(people)
    pairs = tmp_path / "pairsDevTest.txt"
    pairs.write_text("2\nAnn\t1\t3\nBob\t2\t4\nAnn\t1\tBob\t2\nCid\t3\tAnn\t12\n")
    p = read_view1_pairs(pairs)
    assert p == [("Ann/Ann_0001", "Ann/Ann_0003", 1), ("Bob/Bob_0002", "Bob/Bob_0004", 1),
                 ("Ann/Ann_0001", "Bob/Bob_0002", 0), ("Cid/Cid_0003", "Ann/Ann_0012", 0)]
    sub = subsample_pairs(p, 2)
    assert [y for *_, y in sub] == [1, 0] and sub[0] == p[0] and sub[1] == p[2]
    pairs.write_text("1\nAnn\t1\n")
    with pytest.raises(LFWError, match="pairsDevTest.txt:2"):
        read_view1_pairs(pairs)


def test_validation_split_is_held_out_balanced_and_deterministic() -> None:
    from openfas.recognition.lfw import LFWError, make_val_pairs, select_train, select_val_people

    people = [(f"P{k:02d}", 1 + k % 7) for k in range(40)]  # 1..7 images; the 1-image people cannot be held out
    held = select_val_people(people, 6, seed=0)
    assert len(held) == 6 and held == sorted(held) and len(set(held)) == 6
    assert all(dict(people)[n] >= 2 for n in held)
    assert held == select_val_people(list(reversed(people)), 6, seed=0)  # independent of the list order
    assert {tuple(select_val_people(people, 6, seed=s)) for s in range(5)} != {tuple(held)}  # the seed matters
    train = select_train([p for p in people if p[0] not in held], 4, 6, None)
    assert not {s.split("/")[0] for s in train} & set(held)
    assert {s.split("/")[0] for s in train} == {n for n, c in people if c >= 4 and n not in held}

    vp = [(n, c) for n, c in people if n in held]
    pairs = make_val_pairs(vp, 6, 10, seed=0)
    assert pairs == make_val_pairs(vp, 6, 10, seed=0)
    assert [y for *_, y in pairs] == [1] * 5 + [0] * 5
    n_img = {n: min(c, 6) for n, c in vp}
    for a, b, y in pairs:
        (na, ia), (nb, ib) = (a.split("/")[0], int(a[-4:])), (b.split("/")[0], int(b[-4:]))
        assert na in n_img and nb in n_img and 1 <= ia <= n_img[na] and 1 <= ib <= n_img[nb]
        assert (na == nb and ia != ib) if y == 1 else na != nb
    assert len({frozenset(p[:2]) for p in pairs}) == 10  # no pair twice
    n_same = sum(c * (c - 1) // 2 for c in n_img.values())
    with pytest.raises(LFWError, match="same pairs"):
        make_val_pairs(vp, 6, 2 * n_same + 2, seed=0)
    with pytest.raises(LFWError, match="val_people=1"):
        select_val_people(people, 1, seed=0)


def test_test_masks_depend_only_on_seed_and_file() -> None:
    from openfas.recognition.lfw import mask_style_for

    a = mask_style_for("Ann/Ann_0001", 0, MASK_TYPES)
    assert a == mask_style_for("Ann/Ann_0001", 0, MASK_TYPES)
    others = {mask_style_for("Ann/Ann_0001", s, MASK_TYPES) for s in range(1, 6)}
    assert a not in others


@pytest.fixture(scope="module")
def lfw_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (LFW / "lfw-deepfunneled").is_dir() or not dlib_models_available():
        pytest.skip("needs ../shared LFW and the dlib extra")
    from typer.testing import CliRunner

    from openfas.cli import app

    out = tmp_path_factory.mktemp("lfw") / "prep"
    res = CliRunner().invoke(app, ["data", "lfw", str(LFW), str(out), "--min-images", "2", "--max-images", "2",
                                   "--max-identities", "2", "--test-pairs", "4", "--size", "64",
                                   "--val-people", "2", "--val-pairs", "4"])
    assert res.exit_code == 0, res.output
    return out


def test_lfw_route_prepares_trains_and_evaluates(lfw_small: Path, tmp_path: Path) -> None:
    import csv
    import json

    from typer.testing import CliRunner

    from openfas.cli import app
    from openfas.config import load_config
    from openfas.engine.trainer import Trainer
    from openfas.recognition.data import read_landmarks, scan_identity_folder
    from openfas.recognition.embedding_table import EmbeddingTable
    from openfas.recognition.pairs import read_pairs

    info = json.loads((lfw_small / "info.json").read_text())
    assert info["train_identities"] == 2 and info["train_images"] == 4 and info["test_pairs"] == 4
    classes, samples = scan_identity_folder(lfw_small / "train")
    assert len(classes) == 2 and len(samples) == 4
    lms = read_landmarks(lfw_small / "train" / "landmarks.csv")
    assert set(lms) == {rel for rel, _ in samples}
    for v in lms.values():  # crop coordinates: five points near the template (scaled to 64 px), chin below
        assert v.shape == (6, 2) and np.abs(v[:5] - ARCFACE_112 * 64 / 112).max() < 6 and v[5, 1] > v[3:5, 1].max()
    table = EmbeddingTable.load(lfw_small / "teacher" / "dlib_train.safetensors")
    assert sorted(table.files) == sorted(rel for rel, _ in samples) and table.dim == 128
    # three protocols over the same pairs: clean/clean, clean/masked, masked/masked
    lists = {p: read_pairs(lfw_small / "test" / f"pairs_{p}.txt", "mlfw")
             for p in ("clean", "one_masked", "both_masked")}
    assert lists["clean"].labels == lists["one_masked"].labels == lists["both_masked"].labels == [1, 1, 0, 0]
    assert all(a.startswith("clean/") and b.startswith("masked/")
               for a, b in zip(lists["one_masked"].left, lists["one_masked"].right, strict=True))
    assert all(a.startswith("masked/") and b.startswith("masked/")
               for a, b in zip(lists["both_masked"].left, lists["both_masked"].right, strict=True))
    with open(lfw_small / "test" / "masks.csv") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    for rel in lists["both_masked"].left + lists["both_masked"].right:
        assert float(rows[rel]["coverage"]) > 0.2 and (lfw_small / "test" / rel).is_file()
        clean = cv2.imread(str(lfw_small / "test" / rel.replace("masked/", "clean/", 1)))
        masked = cv2.imread(str(lfw_small / "test" / rel))
        assert np.abs(clean.astype(int) - masked.astype(int))[40:].mean() > 10  # the lower face differs
        assert np.abs(clean.astype(int) - masked.astype(int))[:16].mean() < 2  # the forehead does not
    tm = json.loads((lfw_small / "teacher" / "metrics.json").read_text())
    assert set(tm) >= {"clean", "one_masked", "both_masked"}
    assert (lfw_small / "masks_contact_sheet.png").is_file()
    # the validation split: its people are out of train/ and the table; its lists are laid out like the test ones
    held = (lfw_small / "val" / "people.txt").read_text().split()
    assert len(held) == 2 and not set(held) & set(classes)
    assert not {f.split("/")[0] for f in table.files} & set(held)
    vl = {p: read_pairs(lfw_small / "val" / f"pairs_{p}.txt", "mlfw") for p in ("clean", "one_masked", "both_masked")}
    assert vl["clean"].labels == vl["one_masked"].labels == [1, 1, 0, 0]
    for a, b in zip(vl["one_masked"].left, vl["one_masked"].right, strict=True):
        assert a.startswith("clean/") and b.startswith("masked/") and (lfw_small / "val" / b).is_file()
        assert a.split("/")[1] in held and b.split("/")[1] in held
    assert set(json.loads((lfw_small / "teacher" / "val_metrics.json").read_text())) >= {"clean", "one_masked"}

    # train CSDN from the packaged config on the prepared folder, distilling from the table, then eval --pairs
    run = tmp_path / "run"
    cfg = load_config("recognition/csdn_lfw.yaml", [
        f"data.identities.root={lfw_small / 'train'}",
        f"data.identities.pairs={lfw_small / 'test' / 'pairs_one_masked.txt'}",
        f"data.identities.pairs_root={lfw_small / 'test'}",
        f"method.teacher_table={lfw_small / 'teacher' / 'dlib_train.safetensors'}",
        "model.num_classes=2", "data.image_size=32", "data.batch_size=4", "model.layers=[1,1]",
        "model.widths=[8,16]", "model.concept_hidden=8", "train.epochs=1", "train.device=cpu",
        f"experiment.output_dir={tmp_path}"])
    Trainer(cfg, run_dir=run, progress=False).fit()
    m = json.loads((run / "metrics.json").read_text())
    assert m["pairs"] == 4 and "quality_vs_coverage" in m
    res = CliRunner().invoke(app, ["eval", str(run / "checkpoints" / "final.safetensors"), "--pairs",
                                   str(lfw_small / "test" / "pairs_clean.txt"), "--root", str(lfw_small / "test"),
                                   "--pairs-format", "mlfw", "--aligned", "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["pairs"] == 4


def test_quality_vs_errors_by_hand() -> None:
    from openfas.recognition.evaluate import pair_correctness, quality_vs_errors

    q = np.array([0.1, 0.2, 0.9, 0.8, 0.7, 0.95, 0.85, 0.6])
    ok = np.array([False, False, True, True, True, True, True, True])
    r = quality_vs_errors(q, ok)
    assert r["auc_wrong_by_low_quality"] == 1.0  # both wrong pairs have the two lowest qualities
    assert r["error_rate_lowest_quartile"] == 1.0 and r["error_rate_other_pairs"] == 0.0
    assert r["wrong_pairs"] == 2
    assert quality_vs_errors(q, np.ones(8, bool)) is None  # no errors: nothing to flag
    scores = np.array([0.9, 0.1, 0.4, 0.6])
    labels = np.array([1, 1, 0, 0])
    report = {"fold_thresholds": [0.5, 0.3]}
    np.testing.assert_array_equal(pair_correctness(scores, labels, report, [0, 0, 1, 1]),
                                  [True, False, False, False])
