"""Store a checkpoint's weights in fp16: half the file, for the lent GPU's transfer limits.

Why: a lent machine returns files of at most 16 MiB and takes a working tree of at most
64 MiB, and the paper-size net's fp32 checkpoint is 28.7 MB; a one-off script that did this
on a lease failed on an import path after training, and that run's weights were lost. The
node and training load fp16 weights and widen them to fp32 (:func:`dsr_ros.checkpoint.
load_checkpoint`). The source is checked first (a corrupt file is refused with its path and
reason), a weight outside fp16's range is refused rather than stored as infinity, the
SHA-256 is recomputed for the stored tensors, the provenance gains a revision saying the
weights were rounded, and the output is written atomically and loaded back before the
function returns.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dsr_ros.checkpoint import (CheckpointError, atomic_torch_save, load_checkpoint,
                                revised_provenance, weights_sha256)

__all__ = ['FP16_MAX', 'REASON', 'store_half']

REASON = 'stored in fp16 to halve the file (a lent machine returns files of at most 16 MiB)'
FP16_MAX = float(torch.finfo(torch.float16).max)


def store_half(source: Path, target: Path, reason: str = REASON) -> None:
    """Write ``source``'s checkpoint to ``target`` with fp16 weights (see the module docstring)."""
    _, metadata = load_checkpoint(source)  # every check of the node's loader, first
    payload = torch.load(source, map_location='cpu', weights_only=True)
    state = {}
    for key, tensor in payload['state_dict'].items():
        largest = float(tensor.abs().max()) if tensor.numel() else 0.0
        if largest > FP16_MAX:
            raise CheckpointError(source, f'weight {key!r} reaches {largest:.3g}, beyond '
                                          f'fp16\'s {FP16_MAX:.0f}: not stored in fp16')
        state[key] = tensor.to(torch.float16)
    before = sorted({str(t.dtype).replace('torch.', '') for t in payload['state_dict'].values()})
    payload['state_dict'] = state
    payload['weights_sha256'] = weights_sha256(state)
    payload['provenance'] = revised_provenance(metadata, 'weights dtype', before, ['float16'],
                                               reason, weights='rounded to float16')
    atomic_torch_save(payload, target)
    load_checkpoint(target)  # the file it leaves must load, hash verified
