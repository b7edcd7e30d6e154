"""Data loading in worker processes: the same batches as one process (fork and spawn, persistent workers, across
epochs and after an epoch cut short), worker seeding, ``num_workers: auto``, and a training run with 2 workers."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from openfas.config import load_config
from openfas.data.dataset import FaceCropDataset
from openfas.data.loading import resolve_num_workers, train_loader
from openfas.data.samplers import EpochShuffleBatchSampler
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
