"""Batch-hard triplet loss (Hermans et al. 2017) as used by LDCNet (Huang et al., BMVC 2022, L_trip; official
``loss/hard_triplet_loss.py`` from SSDG with ``hardest=True, squared=False, margin=0.1``).

For every anchor a of the batch with at least one positive and one negative:

    L_trip = mean_a  max(0, max_{p: y_p = y_a, p ≠ a} d(a, p) − min_{n: y_n ≠ y_a} d(a, n) + margin)

with d the Euclidean (not squared) distance between embeddings. Built from pytorch-metric-learning parts: a
:class:`~pytorch_metric_learning.miners.BatchHardMiner` picks each anchor's hardest positive and negative, a
:class:`~pytorch_metric_learning.losses.TripletMarginLoss` with a plain mean reducer consumes them (the official
code averages over all anchors, zero-loss ones included, so the default "average of non-zero losses" reducer is
replaced). One deviation: anchors without any positive in the batch are skipped here, while the official code
counts them with a positive distance of 0; with LDCNet's domain-balanced batches every class has several members,
so the two agree.
"""

from __future__ import annotations

import torch


class BatchHardTripletLoss(torch.nn.Module):
    """``loss(embeddings B×D, labels B)``: batch-hard triplet loss with Euclidean distance (see module docstring)."""

    def __init__(self, margin: float = 0.1) -> None:
        super().__init__()
        # imported here: pytorch-metric-learning takes ~0.5 s to import and only LDCNet needs it
        from pytorch_metric_learning.distances import LpDistance
        from pytorch_metric_learning.losses import TripletMarginLoss
        from pytorch_metric_learning.miners import BatchHardMiner
        from pytorch_metric_learning.reducers import MeanReducer

        distance = LpDistance(normalize_embeddings=False, p=2, power=1)
        self.miner = BatchHardMiner(distance=distance)
        self.loss = TripletMarginLoss(margin=margin, distance=distance, reducer=MeanReducer())

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = embeddings.float()
        triplets = self.miner(embeddings, labels)
        return self.loss(embeddings, labels, triplets)


def batch_hard_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Functional form of :class:`BatchHardTripletLoss`."""
    return BatchHardTripletLoss(margin)(embeddings, labels)
