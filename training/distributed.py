"""Multi-process training (``torchrun``) without hangs: equal shards and matched collectives.

Every collective call (``all_reduce``) must be made by every rank the same number of times. Two
things used to break that: ranks with unequal batch counts (the last rank ran out of patches
and stopped while the others waited in ``all_reduce``), and optimisers whose parameters had
gradients on some ranks only. :func:`shard_indices` gives every rank the same number of
indices (wrapping around, as ``DistributedSampler`` pads), and :func:`all_reduce_grads` reduces
every parameter of an optimiser on every rank, with zeros where a rank had none.
"""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

import torch
import torch.distributed as dist

__all__ = ['all_reduce_grads', 'all_reduce_mean', 'init_distributed', 'shard_indices']


def init_distributed() -> Tuple[int, int]:
    """``(rank, world_size)``; joins the process group when ``torchrun`` started us."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', '0')))
    return dist.get_rank(), world


def shard_indices(length: int, rank: int, world: int) -> List[int]:
    """This rank's indices of ``range(length)``: strided, padded so every rank gets as many."""
    if world <= 1:
        return list(range(length))
    per_rank = -(-length // world)
    padded = [index % length for index in range(per_rank * world)] if length else []
    return padded[rank::world]


def all_reduce_grads(optimizer: torch.optim.Optimizer, world: int) -> None:
    """Average the gradients of every parameter of ``optimizer`` over the ranks.

    A parameter without a gradient on this rank contributes zeros; it gets the average when
    any rank had one and keeps ``None`` (so Adam skips it) when none had.
    """
    if world <= 1:
        return
    params = [p for group in optimizer.param_groups for p in group['params']]
    present = torch.tensor([float(p.grad is not None) for p in params], dtype=torch.float32,
                           device=params[0].device if params else 'cpu')
    dist.all_reduce(present)
    for param, count in zip(params, present.tolist()):
        if count == 0:
            param.grad = None
            continue
        grad = param.grad if param.grad is not None else torch.zeros_like(param)
        dist.all_reduce(grad)
        param.grad = grad / world


def all_reduce_mean(values: Dict[str, float], world: int) -> Dict[str, float]:
    """The mean over ranks of each named number (identical on every rank afterwards)."""
    if world <= 1:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) / world for k, v in zip(keys, tensor.tolist())}
