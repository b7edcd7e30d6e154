"""Samplers: deterministic per (seed, epoch), disjoint across ranks, resumable, domain-balanced."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from openfas.data.samplers import DomainBalancedBatchSampler, EpochShuffleBatchSampler


def test_shuffle_is_deterministic_and_changes_with_epoch() -> None:
    a = EpochShuffleBatchSampler(50, 5, seed=3)
    b = EpochShuffleBatchSampler(50, 5, seed=3)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    b.set_epoch(2)
    assert list(a) != list(b)
    assert sorted(i for batch in a for i in batch) == list(range(50))


def test_ranks_are_disjoint_and_cover_the_epoch() -> None:
    ranks = [EpochShuffleBatchSampler(40, 4, seed=0, rank=r, world_size=2) for r in range(2)]
    seen = [set(i for batch in s for i in batch) for s in ranks]
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 40
    assert len(ranks[0]) == len(ranks[1]) == 5


def test_skip_resumes_mid_epoch() -> None:
    s = EpochShuffleBatchSampler(30, 4, seed=1)
    s.set_epoch(4)
    full = list(s)
    s.set_epoch(4, skip=3)
    assert list(s) == full[3:]
    assert len(s) == len(full) - 3


def test_domain_balanced_batches_hold_every_domain_live_and_spoof() -> None:
    domains = np.array([0] * 10 + [1] * 30 + [2] * 6)
    labels = np.array(([1] * 4 + [0] * 6) + ([1] * 10 + [0] * 20) + ([1] * 3 + [0] * 3))
    s = DomainBalancedBatchSampler(domains, labels, batch_size=12, seed=0)
    batches = list(s)
    assert len(batches) == 20 // 2  # largest group (domain 1 spoof, 20) / 2 per group
    for batch in batches:
        counts = Counter((int(domains[i]), int(labels[i])) for i in batch)
        assert counts == {(d, l): 2 for d in range(3) for l in (0, 1)}


def test_domain_balanced_requires_both_classes_everywhere() -> None:
    with pytest.raises(ValueError, match=r"missing \(domain id, label\) groups: \[\(1, 1\)\]"):
        DomainBalancedBatchSampler([0, 0, 1, 1], [0, 1, 0, 0], batch_size=4)
