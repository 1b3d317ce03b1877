#!/usr/bin/env python3
"""Store a checkpoint's weights in fp16: half the file, for the lent GPU's transfer limits.

    python tools/store_half.py runs_gpu9/paper_x4/best_dsrnet.pt $OUT/paper_x4_fp16.pt

Why a tool: a lent machine returns files of at most 16 MiB and takes a working tree of at most
64 MiB, and the paper-size net's fp32 checkpoint is 28.7 MB; a one-off script that did this
on a lease failed on an import path after training, and that run's weights were lost. The
node and training load fp16 weights and widen them to fp32 (:func:`dsr_ros.checkpoint.
load_checkpoint`). The source is checked first (a corrupt file is refused with its path and
reason), a weight outside fp16's range is refused rather than stored as infinity, the
SHA-256 is recomputed for the stored tensors, the provenance gains a revision saying the
weights were rounded, and the output is written atomically and loaded back before the tool
says it is done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere, on a bare lent machine too
    sys.path.insert(0, str(REPO))

from dsr_ros.checkpoint import (CheckpointError, atomic_torch_save, load_checkpoint,  # noqa: E402
                                revised_provenance, weights_sha256)

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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('source', type=Path, help='checkpoint to read')
    parser.add_argument('target', type=Path, help='checkpoint to write (fp16 weights)')
    parser.add_argument('--why', default=REASON, help='the reason, kept in the revision')
    args = parser.parse_args(argv)
    try:
        store_half(args.source, args.target, args.why)
    except ValueError as error:  # CheckpointError is a ValueError
        print(f'store_half: {error}', file=sys.stderr)
        return 2
    print(f'wrote {args.target} ({args.target.stat().st_size / 2**20:.1f} MiB, fp16 weights)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
