"""A user's own prepared cache works with the packaged demo config first time; dev problems stop the run before
training; train.select keeps the best dev epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openfas.config import ConfigError, load_config
from openfas.data.cache import CropCacheReader, CropCacheWriter
from openfas.engine.data_check import adapt_to_cache, check_dev_split
from openfas.engine.trainer import Trainer

DEMO = Path(__file__).resolve().parents[1] / "src" / "openfas" / "configs" / "demo.yaml"
TINY = ["data.image_size=32", "data.map_size=8", "model.width=8", "data.batch_size=4", "optim.lr=0.003",
        "train.log_every=1", "eval.report=false"]


def _copy_without(src: Path, dst: Path, drop: set[str] | None = None, keep_label: int | None = None) -> Path:
    """A copy of a crop cache without the splits in ``drop`` (and with only label ``keep_label`` on dev)."""
    reader = CropCacheReader(src)
    by_media: dict[str, list] = {}
    for r in reader.records():
        if r.split in (drop or set()) or (r.split == "dev" and keep_label is not None and r.label != keep_label):
            continue
        by_media.setdefault(r.media_id, []).append((r, {"rgb": reader.image(r.sample_id)}, reader.target(r.sample_id)))
    with CropCacheWriter(dst, info={"kind": "test-copy"}) as w:
        for media, crops in by_media.items():
            w.add_media(media, crops)
    return dst


def test_demo_config_on_own_cache_drops_synthetic_settings(tiny_cache: Path) -> None:
    cfg = load_config(DEMO, [f"data.cache={tiny_cache}"])
    assert cfg.data.train_domains == ["synth_a", "synth_b", "synth_c"] and cfg.data.test_split == "all"
    notes = adapt_to_cache(cfg)
    assert (cfg.data.train_domains, cfg.data.test_domains, cfg.data.test_split) == (None, None, "test")
    assert len(notes) == 3 and "synthetic domains" in notes[0] and "da, db" in notes[0]
    # a real domain name is the user's choice: kept (and a missing one stays the dataset's error)
    cfg = load_config(DEMO, [f"data.cache={tiny_cache}", "data.train_domains=[da]", "data.test_domains=[db]"])
    assert adapt_to_cache(cfg) == [] and cfg.data.train_domains == ["da"] and cfg.data.test_split == "all"
    # the synthetic cache itself is untouched
    cfg = load_config(DEMO, [])
    assert adapt_to_cache(cfg) == [] and cfg.data.train_domains == ["synth_a", "synth_b", "synth_c"]


def test_missing_or_one_class_dev_split_fails_before_training(tiny_cache: Path, tmp_path: Path) -> None:
    no_dev = _copy_without(tiny_cache, tmp_path / "nodev", drop={"dev"})
    cfg = load_config(DEMO, [f"data.cache={no_dev}", *TINY])
    with pytest.raises(ConfigError, match=r"no samples in dev split 'dev' \(the cache has splits: test \(48\), "
                                          r"train \(48\)\); eval.threshold=dev_eer choose on dev"):
        Trainer(cfg, run_dir=tmp_path / "run1", progress=False)
    assert not (tmp_path / "run1" / "checkpoints" / "last.safetensors").exists()
    live_only = _copy_without(tiny_cache, tmp_path / "liveonly", keep_label=1)
    cfg = load_config(DEMO, [f"data.cache={live_only}", *TINY, "eval.threshold=eer", "train.select=auc"])
    adapt_to_cache(cfg)
    with pytest.raises(ConfigError, match="dev split 'dev' has no attack samples .* train.select=auc"):
        check_dev_split(cfg, live_only)
    # the oracle threshold and the last epoch need no dev split
    check_dev_split(load_config(DEMO, [f"data.cache={no_dev}", "eval.threshold=eer"]), no_dev)


def test_demo_config_trains_on_own_cache_and_keeps_best_dev_epoch(tiny_cache: Path, tmp_path: Path) -> None:
    cfg = load_config(DEMO, [f"data.cache={tiny_cache}", *TINY, "train.epochs=3", "train.select=eer",
                             "train.patience=1"])
    trainer = Trainer(cfg, run_dir=tmp_path / "run", progress=False)
    result = trainer.fit()
    hist = trainer.state.history
    # the selected epoch is the one with the lowest dev EER (ties: the earlier epoch)
    best = min(range(len(hist)), key=lambda i: (hist[i]["dev_eer"], i))
    sel = result["checkpoint_selection"]
    assert sel["epoch"] == best + 1 and sel["metric"] == "eer" and sel["split"] == "dev"
    assert sel["value"] == pytest.approx(hist[best]["dev_eer"])
    # patience 1: training stops one epoch after the last improvement
    assert len(hist) == min(3, best + 2)
    assert (tmp_path / "run" / "checkpoints" / "best.safetensors").exists()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["checkpoint_selection"]["epoch"] == best + 1
    assert saved["n_test_frames"] == 48  # both domains' test split


def test_crop_fraction_and_real_recipe(tiny_cache: Path) -> None:
    import numpy as np

    from openfas.data.dataset import FaceCropDataset, center_fraction

    img = np.arange(100, dtype=np.uint8).reshape(10, 10)
    # 0.5 of 10 px = the 5 centre rows/columns starting at (10 - 5) // 2 = 2
    np.testing.assert_array_equal(center_fraction(img, 0.5), img[2:7, 2:7])
    assert center_fraction(img, 1.0).shape == (10, 10)
    ds = FaceCropDataset(tiny_cache, split="test", image_size=16, crop_fraction=0.5)
    crop = ds.reader.image(ds.records[0].sample_id)  # 32 px stored → centre 16 px, no resize needed at 16
    expected = crop[8:24, 8:24, ::-1].astype(np.float32) / 255.0
    np.testing.assert_allclose(ds[0]["image"].numpy().transpose(1, 2, 0), (expected - 0.5) / 0.5, atol=1e-6)
    # training with the real-data recipe: right size, repeatable for a seed/epoch/index, changed from the input
    tr = FaceCropDataset(tiny_cache, split="train", image_size=24, train=True, augment="real", seed=3)
    a, b = tr[1]["image"], tr[1]["image"]
    assert a.shape == (3, 24, 24) and bool((a == b).all())
    tr.set_epoch(1)
    assert not bool((tr[1]["image"] == a).all())
