"""Data loading in worker processes: the same batches as one process (fork and spawn, persistent workers, across
epochs and after an epoch cut short), worker seeding, ``num_workers: auto``, and a training run with 2 workers;
the fast item path (decoded crops in memory, zero targets not transformed, relight by table) against the plain
computation."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from conftest import build_tiny_cache
from torch.utils.data import Dataset

from openfas.config import load_config
from openfas.data.dataset import FaceCropDataset, center_fraction
from openfas.data.loading import resolve_num_workers, train_loader
from openfas.data.samplers import EpochShuffleBatchSampler
from openfas.data.transforms import (
    RandomRelight,
    build_color_transform,
    build_transform,
    central_window,
    face_fraction,
    relight,
    to_chw_float,
)
from openfas.engine.trainer import Trainer

TINY = ["data.image_size=32", "data.map_size=8", "model.width=8", "data.batch_size=4", "optim.lr=0.003",
        "train.log_every=1", "eval.report=false"]


def _epochs(dataset: Any, sampler: EpochShuffleBatchSampler, loader: Any, plan: list[tuple[int, int | None]],
            ) -> list[list[dict[str, torch.Tensor]]]:
    """Batches of each (epoch, batches to take or None for all) in ``plan``, set up as the trainer does."""
    out = []
    for epoch, take in plan:
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        batches = []
        for batch in loader:
            if take is not None and len(batches) == take:
                break
            batches.append(batch)
        out.append(batches)
    return out


def _assert_same(a: list[list[dict[str, torch.Tensor]]], b: list[list[dict[str, torch.Tensor]]]) -> None:
    assert [len(e) for e in a] == [len(e) for e in b]
    for ea, eb in zip(a, b, strict=True):
        for ba, bb in zip(ea, eb, strict=True):
            assert ba.keys() == bb.keys()
            for k in ba:
                assert ba[k].dtype == bb[k].dtype and torch.equal(ba[k], bb[k]), k


@pytest.mark.parametrize("context", ["fork", "spawn"])
@pytest.mark.parametrize("augment", ["openfas", "relight"])
def test_two_workers_give_the_single_process_batches(tiny_cache: Path, context: str, augment: str) -> None:
    # epoch 0 is cut short (as train.max_steps_per_epoch does): persistent workers must drop what they prefetched
    plan = [(0, 3), (1, None), (2, 2)]

    def run(workers: int) -> list[list[dict[str, torch.Tensor]]]:
        ds = FaceCropDataset(tiny_cache, split="train", image_size=24, map_size=8, train=True, augment=augment,
                             seed=5)
        sampler = EpochShuffleBatchSampler(len(ds), 5, seed=5)
        loader = train_loader(ds, sampler, workers, seed=5, persistent_workers=True,
                              multiprocessing_context=context if workers else None)
        return _epochs(ds, sampler, loader, plan)

    single, two = run(0), run(2)
    _assert_same(single, two)
    # the augmentation changes with the epoch: the same items, differently augmented
    first = {int(i): img for b in single[1] for i, img in zip(b["index"], b["image"], strict=True)}
    second = {int(i): img for b in single[2] for i, img in zip(b["index"], b["image"], strict=True)}
    assert any(not torch.equal(first[i], second[i]) for i in second.keys() & first.keys())


def test_workers_without_persistence_match_too(tiny_cache: Path) -> None:
    def run(workers: int) -> list[list[dict[str, torch.Tensor]]]:
        ds = FaceCropDataset(tiny_cache, split="train", image_size=24, train=True, seed=1)
        sampler = EpochShuffleBatchSampler(len(ds), 8, seed=1)
        loader = train_loader(ds, sampler, workers, seed=1, persistent_workers=False, prefetch_factor=1)
        return _epochs(ds, sampler, loader, [(0, None), (1, None)])

    _assert_same(run(0), run(2))


class _GlobalDraws(Dataset):
    """Items are draws from the global generators of the process that reads them."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([np.random.random(), random.random(), float(torch.rand(()))], dtype=torch.float64)


@pytest.mark.parametrize("persistent", [True, False])
def test_worker_seeds_do_not_repeat_across_workers_or_epochs(persistent: bool) -> None:
    ds = _GlobalDraws()
    sampler = EpochShuffleBatchSampler(len(ds), 2, seed=0)
    loader = train_loader(ds, sampler, 2, seed=0, persistent_workers=persistent)
    draws = torch.cat([b for e in _epochs(ds, sampler, loader, [(0, None), (1, None)]) for b in e])
    assert draws.shape == (32, 3)
    for column in range(3):  # numpy, random, torch: 32 draws, 2 workers × 2 epochs, none repeated
        assert len(set(draws[:, column].tolist())) == 32


def test_num_workers_auto_follows_cores_device_and_ranks() -> None:
    assert resolve_num_workers(3, "cpu", cores=2) == 3
    assert resolve_num_workers("auto", "cpu", cores=2, processes=1) == 0
    assert resolve_num_workers("auto", "cuda", cores=2, processes=1) == 1
    assert resolve_num_workers("auto", "cuda", cores=16, processes=1) == 8
    assert resolve_num_workers("auto", "cuda", cores=16, processes=4) == 3  # 4 cores per rank, 1 for the rank
    assert resolve_num_workers("auto", "cuda", cores=2, processes=2) == 0
    assert resolve_num_workers("auto", "cpu", cores=16, processes=1) >= 1
    with pytest.raises(ValueError):
        resolve_num_workers("many")


def test_config_accepts_auto_and_rejects_negative_workers() -> None:
    assert load_config("demo.yaml", ["data.num_workers=auto"]).data.num_workers == "auto"
    with pytest.raises(ValueError):
        load_config("demo.yaml", ["data.num_workers=-1"])


def test_training_with_two_workers_matches_one_process(tiny_cache: Path, tmp_path: Path) -> None:
    results = {}
    for workers in (0, 2):
        cfg = load_config("demo.yaml", [f"data.cache={tiny_cache}", *TINY, "train.epochs=2",
                                        "train.max_steps_per_epoch=5", f"data.num_workers={workers}"])
        trainer = Trainer(cfg, run_dir=tmp_path / f"w{workers}", progress=False)
        result = trainer.fit()
        results[workers] = (trainer.state.history, result["headline"],
                            json.loads((tmp_path / f"w{workers}" / "metrics.json").read_text())["headline"],
                            {k: v.clone() for k, v in trainer.model.state_dict().items()})
    (h0, r0, m0, w0), (h2, r2, m2, w2) = results[0], results[2]
    assert len(h0) == 2 and "dev_auc" in h0[-1]
    assert h0 == h2
    assert r0 == r2 and m0 == m2
    assert all(torch.equal(w0[k], w2[k]) for k in w0)


# ---------------------------------------------------------------- the fast item path gives today's items
def _relight_as_before(image: np.ndarray, brightness: float, chroma: Any = (0.0, 0.0, 0.0), gamma: float = 1.0,
                       noise_std: float = 0.0, rng: np.random.Generator | None = None,
                       centre: float = 0.5) -> np.ndarray:
    """:func:`openfas.data.transforms.relight` written as the formula reads: per-pixel power, gen.normal noise."""
    x = (image.astype(np.float32) / 255.0) ** np.float32(gamma)
    mean = x[central_window(x.shape[0], centre), central_window(x.shape[1], centre)].reshape(-1, 3).mean(0)
    u = np.asarray(chroma, np.float32)
    goal = np.float32(brightness / 255.0) * np.exp(u - u.mean())
    x = x * (goal / np.maximum(mean, 1.0 / 255.0))
    if noise_std > 0:
        assert rng is not None
        x = x + rng.normal(0.0, noise_std / 255.0, size=x.shape).astype(np.float32)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


class _RelightAsBefore(RandomRelight):
    def apply(self, img: np.ndarray, brightness: float = 128.0, chroma: Any = (0.0, 0.0, 0.0), gamma: float = 1.0,
              noise_std: float = 0.0, noise_seed: int = 0, **params: object) -> np.ndarray:
        return _relight_as_before(img, brightness, chroma, gamma, noise_std, np.random.default_rng(noise_seed),
                                  self.centre)


def _reference_item(ds: FaceCropDataset, index: int, recipe: str) -> dict[str, np.ndarray]:
    """An item computed the plain way: decode from the cache, zero target for spoof, every transform on every
    target, the relight formula as written."""
    rec = ds.records[index]
    images = {m: ds.reader.image(rec.sample_id, m) for m in ds.modalities}
    h, w = images[ds.modalities[0]].shape[:2]
    stored = ds.reader.target(rec.sample_id) if rec.label == 1 else None
    target = stored if stored is not None else np.zeros((h, w), np.uint8)
    if target.shape != (h, w):
        target = cv2.resize(target, (w, h), interpolation=cv2.INTER_LINEAR)
    if ds.crop_fraction < 1.0:
        images = {m: center_fraction(im, ds.crop_fraction) for m, im in images.items()}
        target = center_fraction(target, ds.crop_fraction)
    geometric = build_transform(ds.image_size, ds.train, ds.modalities, recipe)
    color = build_color_transform(ds.train, recipe)
    if recipe in ("relight", "light"):
        color = A.Compose([_RelightAsBefore(centre=face_fraction(1.5))])
    seed = ds._seed_for(index)
    if ds.train:
        geometric.set_random_seed(seed)
    out = geometric(image=images[ds.modalities[0]], mask=target, **{m: images[m] for m in ds.modalities[1:]})
    if color is not None and "rgb" in ds.modalities:
        key = "image" if ds.modalities[0] == "rgb" else "rgb"
        color.set_random_seed(seed + 1)
        out[key] = color(image=out[key])["image"]
    chans = [to_chw_float(out["image"], ds.mean, ds.std)]
    chans += [to_chw_float(out[m], ds.mean, ds.std) for m in ds.modalities[1:]]
    tmap = cv2.resize(out["mask"], (ds.map_size, ds.map_size), interpolation=cv2.INTER_AREA)
    return {"image": np.concatenate(chans, axis=0), "target": tmap.astype(np.float32) / 255.0}


@pytest.fixture(scope="module")
def two_modality_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cache(tmp_path_factory.mktemp("mm") / "cache", per_group=2, domains=("da",),
                            modalities=("rgb", "depth"))


@pytest.mark.parametrize("recipe", ["openfas", "relight", "light", "cdcn", "real", "anrl", "none"])
@pytest.mark.parametrize("in_memory", [False, True])
def test_items_equal_the_plain_computation(tiny_cache: Path, recipe: str, in_memory: bool) -> None:
    ds = FaceCropDataset(tiny_cache, split="train", image_size=28, map_size=6, train=True, augment=recipe,
                         seed=3, in_memory=in_memory, crop_fraction=0.9 if recipe == "openfas" else 1.0)
    assert ds.in_memory == in_memory
    labels = set()
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item, ref = ds[i], _reference_item(ds, i, recipe)
            labels.add(int(item["label"]))
            assert np.array_equal(item["image"].numpy(), ref["image"]), (recipe, epoch, i)
            assert np.array_equal(item["target"].numpy(), ref["target"]), (recipe, epoch, i)
    assert labels == {0, 1}


def test_items_equal_the_plain_computation_with_two_modalities(two_modality_cache: Path) -> None:
    ds = FaceCropDataset(two_modality_cache, modalities=["rgb", "depth"], image_size=24, map_size=8, train=True,
                         augment="real", in_memory="auto")
    assert ds.in_memory
    for i in range(len(ds)):
        item, ref = ds[i], _reference_item(ds, i, "real")
        assert item["image"].shape == (6, 24, 24)
        assert np.array_equal(item["image"].numpy(), ref["image"])
        assert np.array_equal(item["target"].numpy(), ref["target"])


@pytest.mark.parametrize("recipe", ["real", "openfas"])
def test_rgb_after_another_modality_is_augmented_as_when_first(two_modality_cache: Path, recipe: str) -> None:
    def items(modalities: list[str], augment: str) -> list[np.ndarray]:
        ds = FaceCropDataset(two_modality_cache, modalities=modalities, image_size=24, map_size=8, train=True,
                             augment=augment, seed=5)
        return [ds[i]["image"].numpy() for i in range(len(ds))]

    rgb_first, depth_first = items(["rgb", "depth"], recipe), items(["depth", "rgb"], recipe)
    for a, b in zip(rgb_first, depth_first, strict=True):
        assert b.shape == (6, 24, 24)
        assert np.array_equal(b[3:], a[:3]) and np.array_equal(b[:3], a[3:])  # rgb and depth, each as before
    if recipe == "real":  # its geometric part alone is "geometric": same warps, no colour
        plain = items(["depth", "rgb"], "geometric")
        assert all(np.array_equal(b[:3], g[:3]) for b, g in zip(depth_first, plain, strict=True))  # depth: no colour
        assert any(not np.array_equal(b[3:], g[3:]) for b, g in zip(depth_first, plain, strict=True))  # rgb: colour


def test_relight_equals_its_formula() -> None:
    rng = np.random.default_rng(0)
    for i in range(200):
        image = rng.integers(0, 256, (int(rng.integers(4, 90)), int(rng.integers(4, 90)), 3)).astype(np.uint8)
        args = (float(rng.uniform(40, 200)), list(rng.uniform(-0.3, 0.3, 3)),
                float(np.exp(rng.uniform(np.log(0.7), np.log(1.4)))), float(rng.uniform(0, 6)))
        assert np.array_equal(relight(image, *args, rng=np.random.default_rng(i)),
                              _relight_as_before(image, *args, rng=np.random.default_rng(i)))


DDP_SCRIPT = """
import os, sys, torch
from safetensors.torch import save_file
from openfas.config import load_config
from openfas.engine.trainer import Trainer
cfg = load_config(None, sys.argv[2:])
t = Trainer(cfg, run_dir=sys.argv[1], progress=False)
t.fit()
save_file({k: v.contiguous() for k, v in t.model.state_dict().items()},
          f"{sys.argv[1]}/rank{os.environ['RANK']}-w{t.num_workers}.safetensors")
"""


@pytest.mark.slow
def test_ddp_ranks_with_their_own_workers_match_ranks_without(tiny_cache: Path, tmp_path: Path) -> None:
    from conftest import run_torchrun
    from safetensors.torch import load_file

    for workers in (0, 1):
        run_torchrun(DDP_SCRIPT, tmp_path, [str(tmp_path / f"ddp{workers}"), f"data.cache={tiny_cache}", *TINY,
                                            "train.epochs=2", f"data.num_workers={workers}"])
    files = [load_file(str(tmp_path / f"ddp{w}" / f"rank{r}-w{w}.safetensors")) for r in (0, 1) for w in (0, 1)]
    for other in files[1:]:
        assert files[0].keys() == other.keys()
        assert all(torch.equal(files[0][k], other[k]) for k in files[0])
