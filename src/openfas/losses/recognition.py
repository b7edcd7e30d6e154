"""Face-recognition losses: the CSDN consistency and distillation terms (the CosFace margin head, a module with
class centres, is :class:`openfas.ops.cosface.CosFaceHead`).

* :func:`weighted_bidirectional_kl` – the CSDN consistency constraint between sub-decisions (Zhao et al.,
  IEEE SPL 2022). The paper's exact equation is not public (closed access); this is our reconstruction:
  ``D(x) = Σ_{i<j} ŵ_ij · ½ [KL(p_i‖p_j) + KL(p_j‖p_i)]`` with pair weights ``ŵ_ij = w_i w_j / Σ_{k<l} w_k w_l``.
* :func:`consistency_value` – ``C(x) = exp(−D(x))`` (or ``1 − tanh D(x)``), in (0, 1], higher = more consistent.
* :func:`cosine_distillation_loss` – ``1 − cos(e_student, e_teacher)`` averaged over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_weights(weights: torch.Tensor) -> torch.Tensor:
    """N×n branch weights → N×P normalised weights of the P = n(n−1)/2 pairs (i<j), ``w_i w_j / Σ``."""
    n = weights.shape[1]
    i, j = torch.triu_indices(n, n, offset=1, device=weights.device)
    pw = weights[:, i] * weights[:, j]
    return pw / pw.sum(1, keepdim=True).clamp_min(1e-12)


def pairwise_symmetric_kl(log_probs: torch.Tensor) -> torch.Tensor:
    """N×n×C log-probabilities → N×P symmetric KL ``½[KL(p_i‖p_j) + KL(p_j‖p_i)]`` for every pair i<j."""
    n = log_probs.shape[1]
    i, j = torch.triu_indices(n, n, offset=1, device=log_probs.device)
    li, lj = log_probs[:, i], log_probs[:, j]  # N×P×C
    pi, pj = li.exp(), lj.exp()
    # ½[Σ p_i (log p_i − log p_j) + Σ p_j (log p_j − log p_i)] = ½ Σ (p_i − p_j)(log p_i − log p_j)
    return 0.5 * ((pi - pj) * (li - lj)).sum(-1)


def weighted_bidirectional_kl(logits: torch.Tensor, weights: torch.Tensor, temperature: float = 1.0,
                              reduce: bool = True) -> torch.Tensor:
    """CSDN consistency constraint (our reconstruction, see module docstring).

    ``logits``: N×n×C sub-decision logits; ``weights``: N×n branch weights (rows sum to 1). Returns the batch
    mean (``reduce``) or the per-sample divergence D(x) (N).
    """
    if logits.shape[1] < 2:
        raise ValueError("the bidirectional KL needs at least two sub-decisions")
    log_probs = F.log_softmax(logits.float() / temperature, dim=-1)
    d = (pairwise_weights(weights.float()) * pairwise_symmetric_kl(log_probs)).sum(1)
    return d.mean() if reduce else d


def consistency_value(divergence: torch.Tensor, activation: str = "exp") -> torch.Tensor:
    """C(x) in (0, 1] from the per-sample divergence D(x) ≥ 0: ``exp(−D)`` or ``1 − tanh(D)``."""
    d = divergence.clamp_min(0.0)
    if activation == "exp":
        return torch.exp(-d)
    if activation == "tanh":
        return 1.0 - torch.tanh(d)
    raise ValueError(f"unknown consistency activation {activation!r}; use 'exp' or 'tanh'")


def cosine_distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance ``1 − cos(student, teacher)``; the teacher side carries no gradient."""
    if student.shape != teacher.shape:
        raise ValueError(f"student embeddings {tuple(student.shape)} and teacher embeddings "
                         f"{tuple(teacher.shape)} differ in shape")
    return (1.0 - F.cosine_similarity(student.float(), teacher.detach().float(), dim=-1)).mean()


__all__ = ["consistency_value", "cosine_distillation_loss",
           "pairwise_symmetric_kl", "pairwise_weights", "weighted_bidirectional_kl"]
