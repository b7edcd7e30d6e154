"""Light shortcuts (openfas.data.light): statistics of a crop's light, their AUCs per split, the inspect warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from openfas.cli import app
from openfas.data.cache import CropCacheReader, CropCacheWriter
from openfas.data.light import face_window, light_shortcuts, light_statistics, shortcut_lines
from openfas.data.sample import CropRecord


def _crop(rng: np.random.Generator, level: float, cast: tuple[float, float, float], noise: float) -> np.ndarray:
    """A 48 px crop of smooth texture at brightness ``level`` with a per-channel cast and Gaussian sensor noise."""
    tex = 0.75 + 0.25 * np.sin(np.linspace(0, 6, 48))[:, None] * np.cos(np.linspace(0, 4, 48))[None, :]
    img = level * tex[..., None] * np.array(cast) + rng.normal(0, noise, (48, 48, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def test_light_statistics_by_hand() -> None:
    assert face_window(128, 1.5) == slice(32, 96)   # 0.75 / 1.5 = the central half
    assert face_window(100, 2.7) == slice(36, 64)   # 0.278 of 100 = 28 px
    crop = np.zeros((8, 8, 3), np.uint8)
    crop[..., 0], crop[..., 1], crop[..., 2] = 30, 60, 90            # B, G, R
    crop[4, 4] = (90, 90, 90)                                       # one bright pixel inside the window (rows 2–5)
    st = light_statistics(crop, crop_scale=1.5)
    face = crop[2:6, 2:6].astype(float)
    assert st["brightness"][0] == pytest.approx(face.mean())
    np.testing.assert_allclose(st["colour"], face.reshape(-1, 3).mean(0) / face.reshape(-1, 3).mean(0).sum())
    grey = face.mean(-1)  # 4×4: the Laplacian's interior is 2×2; one value is the bright pixel's 4·(90−60) = 120
    lap = [4 * grey[i, j] - grey[i - 1, j] - grey[i + 1, j] - grey[i, j - 1] - grey[i, j + 1]
           for i in (1, 2) for j in (1, 2)]
    assert sorted(lap) == [-30.0, -30.0, 0.0, 120.0]
    assert st["noise"][0] == pytest.approx(np.log(np.median(np.abs(lap)) + 1e-3))
    assert st["noise/brightness"][0] == pytest.approx(np.log((30 + 1e-3) / face.mean()))
    with pytest.raises(ValueError, match="H×W×3"):
        light_statistics(np.zeros((8, 8), np.uint8))


def _cache(path: Path, live_light: tuple[float, tuple, float], attack_light: tuple[float, tuple, float],
           n: int = 24, domain: str = "d") -> Path:
    rng = np.random.default_rng(0)
    with CropCacheWriter(path, info={"prepare": {"scale": 1.5}}) as w:
        for i in range(2 * n):
            live = i % 2 == 0
            level, cast, noise = live_light if live else attack_light
            rec = CropRecord(sample_id=f"{domain}s{i}", media_id=f"{domain}m{i}", label=1 if live else 0,
                             attack="none" if live else "print", domain=domain, subject=f"p{i % 5}", video=f"v{i}",
                             frame=0, split="train" if i < n else "dev" if i < 3 * n // 2 else "test")
            level = level * rng.uniform(0.9, 1.1)
            w.add_media(f"{domain}m{i}", [(rec, {"rgb": _crop(rng, level, cast, noise)}, None)])
    return path


def test_a_light_that_tells_the_label_is_found_and_warned(tmp_path: Path) -> None:
    # live crops darker, warmer and noisier than the attacks (as in NUAA's training sessions)
    path = _cache(tmp_path / "c", live_light=(70, (0.8, 1.0, 1.3), 4.0), attack_light=(150, (1.2, 1.0, 0.8), 1.0))
    reports = light_shortcuts(CropCacheReader(path))
    by = {(r.split, r.statistic): r for r in reports}
    stats = ("brightness", "colour", "noise", "noise/brightness")
    assert set(by) == {(s, k) for s in ("train", "dev", "test") for k in stats}
    # independent truth: the raw statistic's AUC computed here with scikit-learn
    reader = CropCacheReader(path)
    recs = [r for r in reader.records() if r.split == "train"]
    bright = [light_statistics(reader.image(r.sample_id), 1.5)["brightness"][0] for r in recs]
    assert by[("train", "brightness")].auc == pytest.approx(roc_auc_score([r.label for r in recs], bright))
    assert by[("train", "brightness")].auc < 0.05            # live darker: AUC near 0
    assert by[("train", "colour")].auc > 0.95 and by[("train", "noise/brightness")].auc > 0.95
    lines = shortcut_lines(reports)
    warnings = [ln for ln in lines if ln.startswith("WARNING")]
    assert len(warnings) == 3 and "data.augment=relight" in warnings[0]
    assert "brightness (AUC" in warnings[0] and "colour (AUC" in warnings[0]


def test_the_same_light_for_both_classes_is_not_warned(tmp_path: Path) -> None:
    same = (120.0, (1.0, 1.0, 1.0), 2.0)
    path = _cache(tmp_path / "c", live_light=same, attack_light=same, n=120)
    reports = light_shortcuts(CropCacheReader(path))
    assert all(r.strength < 0.6 for r in reports)
    assert not [ln for ln in shortcut_lines(reports) if ln.startswith("WARNING")]


def test_inspect_reports_light_shortcuts_but_not_of_the_test_split(tmp_path: Path) -> None:
    path = _cache(tmp_path / "c", live_light=(70, (0.8, 1.0, 1.3), 4.0), attack_light=(150, (1.2, 1.0, 0.8), 1.0))
    out = CliRunner().invoke(app, ["data", "inspect", str(path)])
    assert out.exit_code == 0, out.output
    assert "light shortcuts" in out.output and "WARNING: in split 'train'" in out.output
    assert "'dev'" in out.output and "test " not in out.output.split("light shortcuts")[1]
    out = CliRunner().invoke(app, ["data", "inspect", str(path), "--light-test"])
    assert "WARNING: in split 'test'" in out.output
    out = CliRunner().invoke(app, ["data", "inspect", str(path), "--no-light"])
    assert "light shortcuts" not in out.output


def test_training_on_a_light_shortcut_logs_a_warning(tmp_path: Path) -> None:
    from openfas.config import load_config
    from openfas.engine.data_check import light_shortcut_warnings

    path = _cache(tmp_path / "c", live_light=(70, (0.8, 1.0, 1.3), 4.0), attack_light=(150, (1.2, 1.0, 0.8), 1.0))
    cfg = load_config(None, [f"data.cache={path}", "data.augment=openfas"])
    warn = light_shortcut_warnings(cfg, path)
    assert len(warn) == 1 and "split 'train'" in warn[0] and "relight" in warn[0]
    # data.train_split=all trains on every split, so every split is measured; a split the cache lacks warns nothing
    every = light_shortcut_warnings(load_config(None, [f"data.cache={path}", "data.train_split=all"]), path)
    assert sorted(w.split("'")[1] for w in every) == ["dev", "test", "train"]
    assert light_shortcut_warnings(load_config(None, [f"data.cache={path}", "data.train_split=nosuch"]), path) == []
    # a run that already draws the light independently of the label, or reads an order-only input, is not warned
    assert light_shortcut_warnings(load_config(None, [f"data.cache={path}", "data.augment=relight"]), path) == []
    assert light_shortcut_warnings(load_config(None, [f"data.cache={path}", "data.augment=real"]), path) == []
    assert light_shortcut_warnings(load_config(None, [f"data.cache={path}", "model.input_code=lbp"]), path) == []
    same = (120.0, (1.0, 1.0, 1.0), 2.0)
    fair = _cache(tmp_path / "f", live_light=same, attack_light=same, n=120)
    assert light_shortcut_warnings(load_config(None, [f"data.cache={fair}"]), fair) == []
    # the texture model (model lbp, no augmentation by design) is not told to relight
    assert light_shortcut_warnings(load_config("cross/lbp_is_n.yaml", [f"data.cache={path}",
                                                                       "data.train_domains=null"]), path) == []


def test_several_datasets_are_measured_one_domain_at_a_time(tmp_path: Path) -> None:
    """Dataset a's light tells its labels, b's does not: the report names a's splits only, per domain."""
    from openfas.config import load_config
    from openfas.engine.data_check import light_shortcut_warnings

    path = tmp_path / "c"
    _cache(path, live_light=(70, (0.8, 1.0, 1.3), 4.0), attack_light=(150, (1.2, 1.0, 0.8), 1.0), domain="a")
    same = (120.0, (1.0, 1.0, 1.0), 2.0)
    _cache(path, live_light=same, attack_light=same, n=120, domain="b")
    reports = light_shortcuts(CropCacheReader(path))
    assert {r.split for r in reports} == {f"{d}/{s}" for d in "ab" for s in ("train", "dev", "test")}
    reader = CropCacheReader(path)
    recs = [r for r in reader.records() if r.split == "train" and r.domain == "a"]
    bright = [light_statistics(reader.image(r.sample_id), 1.5)["brightness"][0] for r in recs]
    by = {(r.split, r.statistic): r.auc for r in reports}
    assert by[("a/train", "brightness")] == pytest.approx(roc_auc_score([r.label for r in recs], bright))
    warned = {ln.split("'")[1] for ln in shortcut_lines(reports) if ln.startswith("WARNING")}
    assert warned == {"a/train", "a/dev", "a/test"}
    only_b = light_shortcuts(CropCacheReader(path), ["train"], domains=["b"])
    assert {r.split for r in only_b} == {"train"} and all(r.strength < 0.6 for r in only_b)
    cfg = load_config(None, [f"data.cache={path}", "data.augment=openfas", "data.train_domains=[b]"])
    assert light_shortcut_warnings(cfg, path) == []
    cfg = load_config(None, [f"data.cache={path}", "data.augment=openfas", "data.train_domains=[a, b]"])
    assert [w.split("'")[1] for w in light_shortcut_warnings(cfg, path)] == ["a/train"]
