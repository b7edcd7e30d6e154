"""DataLoader construction shared by training and scoring: worker count, worker set-up, epoch-tagged batches.

Augmentation is seeded per item from (seed, epoch, index) by the datasets, so a batch does not depend on which
process made it: ``num_workers`` changes the speed, never the batches. Workers that live across epochs
(``persistent_workers``) do not see the main process's ``set_epoch``; :class:`EpochTaggedBatches` therefore sends
the epoch with every index and :class:`EpochTaggedDataset` sets it in the worker's copy of the dataset.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sized
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

# With a GPU the workers feed a device that outruns the CPU: leave one core to the main process, at most 8 each.
_GPU_MAX_WORKERS = 8
# On a CPU the model's threads and the workers share the cores; below this many cores per process one
# worker slows the model's step by more than the loading it takes off the main process.
_CPU_MIN_CORES_FOR_WORKER = 4


class _EpochSampler(Protocol):
    epoch: int

    def __iter__(self) -> Iterator[list[int]]: ...

    def __len__(self) -> int: ...


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_world_size() -> int:
    """Processes sharing this machine's cores (``torchrun`` sets LOCAL_WORLD_SIZE; 1 otherwise)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def resolve_num_workers(spec: int | str, device_type: str = "cpu", cores: int | None = None,
                        processes: int | None = None) -> int:
    """``data.num_workers`` as a number: an int is kept; ``"auto"`` is derived from the cores per process.

    ``auto``: with a GPU, the cores of this process minus one (at most 8); on a CPU, where the model itself needs
    the cores, one worker per four cores (none on a 2- or 3-core machine).
    """
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 0:
            raise ValueError(f"num_workers must be >= 0, got {spec}")
        return spec
    if spec != "auto":
        raise ValueError(f"num_workers must be an int >= 0 or 'auto', got {spec!r}")
    per_process = max(1, (cores or available_cores()) // (processes or local_world_size()))
    if device_type == "cuda":
        return max(0, min(_GPU_MAX_WORKERS, per_process - 1))
    if per_process < _CPU_MIN_CORES_FOR_WORKER:
        return 0
    return min(_GPU_MAX_WORKERS, per_process // _CPU_MIN_CORES_FOR_WORKER)


def worker_init(worker_id: int) -> None:
    """Run in each worker: one OpenCV thread, and numpy/random seeded from the worker's torch seed.

    torch gives every worker of every epoch its own seed (base seed from the loader's generator + worker id);
    deriving numpy's and Python's from it keeps draws from the global generators distinct across workers and
    epochs. The datasets' augmentation does not use them (it is seeded per item).
    """
    cv2.setNumThreads(1)
    seed = torch.initial_seed()
    np.random.seed(seed % (2**32))
    random.seed(seed)


class EpochTaggedBatches(Sampler[list[tuple[int, int]]]):
    """A batch sampler's batches with its epoch attached to every index: ``[(epoch, index), ...]``."""

    def __init__(self, batches: _EpochSampler) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = int(self.batches.epoch)
        for batch in self.batches:
            yield [(epoch, int(i)) for i in batch]

    def __len__(self) -> int:
        return len(self.batches)


class EpochTaggedDataset(Dataset):
    """Items by ``(epoch, index)``: sets the epoch of the wrapped dataset (a worker's copy) before reading."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if getattr(self.dataset, "epoch", None) != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def train_loader(dataset: Any, batch_sampler: _EpochSampler, num_workers: int = 0, *, seed: int = 0,
                 pin_memory: bool = False, persistent_workers: bool = True, prefetch_factor: int | None = None,
                 multiprocessing_context: str | None = None) -> DataLoader:
    """The training DataLoader: ``batch_sampler`` (with ``epoch`` and ``set_epoch``) over ``dataset``.

    Without workers the dataset is read as is (its ``set_epoch`` is the caller's); with workers every index
    carries the sampler's epoch, so persistent workers augment each epoch as the main process would.
    The loader has its own generator (seeded ``seed``): iterating a DataLoader draws the workers' base seed from
    it, and drawing from the global generator would shift later global draws (dropout) after a resume.
    """
    generator = torch.Generator().manual_seed(seed)
    if num_workers <= 0:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=0, pin_memory=pin_memory,
                          generator=generator)
    return DataLoader(EpochTaggedDataset(dataset), batch_sampler=EpochTaggedBatches(batch_sampler),
                      num_workers=num_workers, pin_memory=pin_memory, generator=generator,
                      persistent_workers=persistent_workers, prefetch_factor=prefetch_factor,
                      worker_init_fn=worker_init, multiprocessing_context=multiprocessing_context)


def eval_loader(dataset: Sized, batch_size: int, num_workers: int = 0, *, pin_memory: bool = False,
                multiprocessing_context: str | None = None) -> DataLoader:
    """An in-order DataLoader for scoring (no shuffling, no augmentation; workers start per call)."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs = {"worker_init_fn": worker_init, "multiprocessing_context": multiprocessing_context}
    return DataLoader(dataset, batch_size=max(1, batch_size), shuffle=False,  # type: ignore[arg-type]
                      num_workers=num_workers, pin_memory=pin_memory, **kwargs)


__all__ = ["EpochTaggedBatches", "EpochTaggedDataset", "available_cores", "eval_loader", "local_world_size",
           "resolve_num_workers", "train_loader", "worker_init"]
