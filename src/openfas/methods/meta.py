"""Shared pieces of the meta-learning domain-generalisation methods (RFMetaFAS, ANRL).

Each iteration the source domains present in a domain-balanced batch are split at random into meta-train
and meta-test domains. The inner step adapts a chosen subset of parameters on the meta-train loss,
θ' = θ − α ∇_θ L_mtrn(θ), keeping the graph (``create_graph=True``), and the outer loss is evaluated with
θ' on the meta-test domains, so its backward gives the second-order meta-gradient. The adapted weights are
substituted into the real modules with :func:`torch.func.functional_call`; there are no functional copies
of the networks.

The random split draws from torch's global generator, whose state every checkpoint stores, so a resumed
run makes the same splits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn
from torch.func import functional_call

from openfas.methods.base import Batch


def tensor_sum(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """``t₁ + t₂ + …`` of one or more tensors (the builtin ``sum`` starts from the int 0)."""
    it = iter(terms)
    total = next(it, None)
    if total is None:
        raise ValueError("tensor_sum: no terms")
    for t in it:
        total = total + t
    return total


def split_meta_domains(batch: Batch, n_meta_train: int) -> tuple[list[int], list[int]]:
    """Random split of the domain ids present in ``batch`` into (meta-train, meta-test) lists."""
    domains = sorted(int(d) for d in torch.unique(batch["domain"]).tolist())
    if len(domains) <= n_meta_train:
        raise ValueError(f"meta-learning needs more than {n_meta_train} source domains per batch "
                         f"(meta_train_domains), the batch holds {len(domains)}: {domains}; use the "
                         "domain_balanced sampler and at least one more training domain")
    order = torch.randperm(len(domains)).tolist()
    shuffled = [domains[i] for i in order]
    return shuffled[:n_meta_train], shuffled[n_meta_train:]


def domain_batch(batch: Batch, domain: int) -> Batch:
    """The part of ``batch`` that belongs to one domain (every per-sample tensor is indexed)."""
    keep = batch["domain"] == domain
    n = keep.shape[0]
    return {k: (v[keep] if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == n else v) for k, v in batch.items()}


def inner_update(params: dict[str, torch.Tensor], loss: torch.Tensor, step_size: float,
                 create_graph: bool = True) -> dict[str, torch.Tensor]:
    """One SGD step θ' = θ − α ∇_θ loss on ``params`` (name → tensor), differentiable w.r.t. θ.

    A parameter the loss does not reach keeps its value (gradient taken as zero).
    """
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph, allow_unused=True)
    return {n: (params[n] if g is None else params[n] - step_size * g) for n, g in zip(names, grads, strict=True)}


def named_params(module: nn.Module, keep: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """``{name: parameter}`` of ``module`` (optionally filtered by name), for :func:`inner_update`."""
    return {n: p for n, p in module.named_parameters() if p.requires_grad and (keep is None or keep(n))}


def call_with(module: nn.Module, weights: dict[str, torch.Tensor], *args: Any,
              fresh_buffers: bool = False, **kwargs: Any) -> Any:
    """``module(*args)`` with some parameters replaced by ``weights`` (the rest are the module's own).

    ``fresh_buffers=True`` passes clones of the module's buffers, so BatchNorm running statistics updated by
    this forward are thrown away (the official RFMetaFAS code runs adapted classifiers on cloned state).
    """
    subs = dict(weights)
    if fresh_buffers:
        subs.update({n: b.clone() for n, b in module.named_buffers()})
    return functional_call(module, subs, args, kwargs, strict=False)
