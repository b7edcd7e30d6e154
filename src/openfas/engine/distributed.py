"""Distributed training through ``torchrun``: process-group set-up, rank helpers, gradient averaging.

``torchrun --nproc_per_node=N -m openfas.cli train …`` (or the ``openfas`` script) sets RANK, WORLD_SIZE,
LOCAL_RANK and MASTER_ADDR/PORT; we pick the backend from the device (nccl on CUDA, gloo on CPU).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from openfas.devices import check_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → the local rank's CUDA device when CUDA is available, else CPU."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    return check_device(spec, f"train.device={spec!r}")


def init_distributed(device_spec: str = "auto") -> tuple[DistInfo, torch.device]:
    """Initialise the process group when launched by torchrun; a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local), device


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over ranks (for methods that cannot use the DDP wrapper, e.g. meta-learning)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    all_reduce_mean(flat)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def all_gather_object(obj: object) -> list[object]:
    if dist.is_available() and dist.is_initialized():
        out: list[object] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (e.g. BatchNorm running statistics) to every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=src)


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank.

    The DDP wrapper does this when it is built; a method trained without it (``ddp_wrap = False``, averaged by
    :func:`average_gradients`) needs it once after the model is built or loaded, since each rank seeds its
    generator with ``seed + rank`` and so initialises different weights.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    with torch.no_grad():
        for p in module.parameters():
            dist.broadcast(p.data, src=src)
    broadcast_buffers(module, src)
