"""Deterministic, distributed-aware samplers.

Both samplers give each rank a disjoint share of an epoch's order, derived from (seed, epoch) only, so a
resumed run can skip the batches already consumed and see exactly the same batches afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class EpochShuffleBatchSampler(Sampler[list[int]]):
    """Shuffle per epoch, split across ranks, yield index batches; ``skip`` batches at the start (resume)."""

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, drop_last: bool = True) -> None:
        if n == 0:
            raise ValueError("cannot sample from an empty dataset")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _batches(self) -> list[list[int]]:
        order = np.arange(self.n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        per_rank = self.n // self.world_size if self.drop_last else -(-self.n // self.world_size)
        if not self.drop_last and per_rank * self.world_size > self.n:  # pad by wrapping around
            order = np.concatenate([order, order[: per_rank * self.world_size - self.n]])
        mine = order[self.rank * per_rank:(self.rank + 1) * per_rank]
        nb = len(mine) // self.batch_size if self.drop_last else -(-len(mine) // self.batch_size)
        return [mine[i * self.batch_size:(i + 1) * self.batch_size].tolist() for i in range(nb)]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()[self.skip:]

    def __len__(self) -> int:
        return max(0, len(self._batches()) - self.skip)


class DomainBalancedBatchSampler(EpochShuffleBatchSampler):
    """Every batch holds ``batch_size // (2·D)`` live and as many spoof samples of each of the D domains.

    Used by the domain-generalisation methods (RFMetaFAS, ANRL): an epoch is as long as the largest
    (domain, label) group needs; smaller groups are re-shuffled and cycled.
    """

    def __init__(self, domains: Sequence[int], labels: Sequence[int], batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        self.domains = np.asarray(domains)
        self.labels = np.asarray(labels)
        keys = sorted({(int(d), int(l)) for d, l in zip(self.domains, self.labels, strict=True)})
        doms = sorted({d for d, _ in keys})
        missing = [(d, l) for d in doms for l in (0, 1) if (d, l) not in keys]
        if missing:
            raise ValueError(f"domain-balanced sampling needs live and spoof in every domain; missing "
                             f"(domain id, label) groups: {missing}")
        self.groups = [np.flatnonzero((self.domains == d) & (self.labels == l)) for d, l in keys]
        self.per_group = max(1, batch_size // len(self.groups))
        super().__init__(len(self.domains), self.per_group * len(self.groups), seed, rank, world_size)

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        steps = max(len(g) for g in self.groups) // (self.per_group * self.world_size)
        steps = max(steps, 1)
        need = steps * self.per_group * self.world_size
        streams = []
        for g in self.groups:
            reps = -(-need // len(g))
            streams.append(np.concatenate([rng.permutation(g) for _ in range(reps)])[:need])
        batches = []
        for s in range(steps):
            start = (s * self.world_size + self.rank) * self.per_group
            batches.append([int(i) for st in streams for i in st[start:start + self.per_group]])
        return batches
