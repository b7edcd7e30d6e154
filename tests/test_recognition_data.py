"""Mask synthesis, synthetic identities and the identity-folder dataset (including its error messages)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfas.data.synth.faces import sample_subject
from openfas.data.synth.identities import _render, _to_uint8, generate_identities
from openfas.data.synth.masks import MASK_TYPES, apply_mask, face_frame, sample_style, template_landmarks
from openfas.data.video import MediaError
from openfas.recognition.data import IdentityDataError, MaskedIdentityDataset, read_landmarks
from openfas.recognition.pairs import read_pairs


@pytest.mark.parametrize("kind", MASK_TYPES)
def test_mask_covers_lower_face_only(kind: str) -> None:
    rng = np.random.default_rng(0)
    layers, lm = _render(sample_subject(3), 96, rng)
    img = _to_uint8(layers)
    style = sample_style(rng, kind=kind)
    out, alpha, coverage = apply_mask(img, lm, style, face_region=layers.mask)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert 0.1 < coverage < 0.8
    assert coverage == pytest.approx(float((alpha * layers.mask).sum() / layers.mask.sum()), rel=1e-5)
    eye_y = int(lm[:2, 1].min())
    assert alpha[: eye_y].max() == 0.0  # nothing drawn above the eyes
    assert np.array_equal(out[: eye_y], img[: eye_y])
    mouth = lm[3:5].mean(0).round().astype(int)
    assert alpha[mouth[1], mouth[0]] > 0.99  # the mouth is covered
    assert np.abs(out.astype(int) - img.astype(int))[alpha > 0.99].mean() > 5


def test_mask_geometry_follows_rotation_and_coverage_varies() -> None:
    lm = template_landmarks(112, 112)
    img = np.full((112, 112, 3), 128, np.uint8)
    style = sample_style(np.random.default_rng(1), kind="surgical")
    _, _, c0 = apply_mask(img, lm, style)
    rot = cv2.getRotationMatrix2D((56, 56), 20, 1.0)
    lm_r = (np.c_[lm, np.ones(5)] @ rot.T).astype(np.float32)
    _, _, c1 = apply_mask(img, lm_r, style)
    assert c1 == pytest.approx(c0, abs=0.03)
    covs = [apply_mask(img, lm, sample_style(np.random.default_rng(s)))[2] for s in range(12)]
    assert max(covs) - min(covs) > 0.1
    fr = face_frame(lm)
    assert fr.d == pytest.approx(35.24, abs=0.05) and fr.ey[1] > 0.99
    with pytest.raises(ValueError, match="5 finite landmarks"):
        face_frame(np.zeros((3, 2)))


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_identities(tmp_path_factory.mktemp("ids") / "set", identities=3, images_per_identity=2,
                               test_identities=3, test_images_per_identity=2, size=48, pairs_per_identity=3)


def test_synthetic_identities_layout(synth_root: Path) -> None:
    assert sorted(p.name for p in (synth_root / "train").iterdir() if p.is_dir()) == \
        ["TrainPerson000", "TrainPerson001", "TrainPerson002"]
    lms = read_landmarks(synth_root / "train" / "landmarks.csv")
    assert len(lms) == 6 and all(v.shape == (5, 2) for v in lms.values())
    with open(synth_root / "test" / "masks.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and all(r["degraded"] in ("0", "1") for r in rows)
    for r in rows:
        assert (float(r["coverage"]) > 0.1) == (r["masked"] == "1")
        assert (synth_root / "test" / r["file"]).is_file()
    pairs = read_pairs(synth_root / "test" / "pairs.txt")
    assert pairs.format == "mfr2" and sum(pairs.labels) == len(pairs) - sum(pairs.labels) == 9
    masked = {r["file"] for r in rows if r["masked"] == "1"}
    assert all((a in masked) != (b in masked) for a, b in zip(pairs.left, pairs.right, strict=True))
    # generating again with the same parameters is a no-op; other parameters are refused
    assert generate_identities(synth_root, identities=3, images_per_identity=2, test_identities=3,
                               test_images_per_identity=2, size=48, pairs_per_identity=3) == synth_root
    with pytest.raises(FileExistsError, match="different synthetic set"):
        generate_identities(synth_root, identities=4)


def test_dataset_items_are_paired_and_deterministic(synth_root: Path) -> None:
    ds = MaskedIdentityDataset(synth_root / "train", image_size=32, mask_prob=1.0, seed=3)
    assert ds.num_classes == 3 and len(ds) == 6
    a, b = ds[4], ds[4]
    assert a["image"].shape == a["image_normal"].shape == (3, 32, 32)
    assert a["label"].item() == 2 and a["masked"].item() == 1.0 and 0.1 < a["coverage"].item() < 0.9
    assert (a["image"] != a["image_normal"]).any()
    for k in a:
        assert np.array_equal(a[k].numpy(), b[k].numpy(), equal_nan=True)
    ds.set_epoch(1)
    assert not np.array_equal(ds[4]["image"].numpy(), a["image"].numpy())
    plain = MaskedIdentityDataset(synth_root / "train", image_size=32, mask_prob=0.0, train=False)
    item = plain[0]
    assert item["masked"].item() == 0.0 and item["coverage"].item() == 0.0
    assert np.array_equal(item["image"].numpy(), item["image_normal"].numpy())


def test_dataset_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(IdentityDataError, match="identity folder root not found"):
        MaskedIdentityDataset(tmp_path / "nope")
    (tmp_path / "root").mkdir()
    with pytest.raises(IdentityDataError, match="no identity folders"):
        MaskedIdentityDataset(tmp_path / "root")
    (tmp_path / "root" / "alice").mkdir()
    with pytest.raises(IdentityDataError, match=r"alice: identity folder holds no images"):
        MaskedIdentityDataset(tmp_path / "root")
    (tmp_path / "root" / "alice" / "broken.png").write_bytes(b"not an image")
    ds = MaskedIdentityDataset(tmp_path / "root", mask_prob=0.0)
    with pytest.raises(MediaError, match=r"broken\.png: not a readable image"):
        ds[0]
    lm = tmp_path / "lm.csv"
    lm.write_text("file,lx,ly,rx,ry,nx,ny,mlx,mly,mrx,mry\nalice/broken.png,1,2,3\n")
    with pytest.raises(IdentityDataError, match=r"lm\.csv:2: expected file \+ 10 coordinates"):
        MaskedIdentityDataset(tmp_path / "root", landmarks=lm)
